//! Helpers shared by the data-plane tests that start a real `Dataplane`: sending a command to the
//! worker that owns an SSRC and waiting (bounded) for its acknowledgement.

use std::time::{Duration, Instant};

use ringfwd_dataplane::core::Command;
use ringfwd_dataplane::runtime::mailbox::Envelope;
use ringfwd_dataplane::runtime::Dataplane;

/// Sends `command` (sequence number `seq`) to the worker that owns `ssrc` and waits up to 5 s for it to
/// be applied; fails the test if it is refused or not acknowledged.
pub fn send_command(dataplane: &Dataplane, ssrc: u32, seq: u64, command: Command) {
    let worker = &dataplane.workers()[dataplane.owner_of(ssrc)];
    worker.mailbox.send(Envelope { seq, command }).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(ack) = worker.mailbox.take_ack() {
            ack.result.expect("command applied");
            return;
        }
        assert!(Instant::now() < deadline, "no acknowledgement");
        std::thread::sleep(Duration::from_millis(1));
    }
}
