//! Helpers shared by the data-plane tests that start a real `Dataplane`: sending a command to the
//! worker that owns an SSRC and waiting (bounded) for its acknowledgement, and the tap directory of tests that
//! record nothing.

use std::time::{Duration, Instant};

use ringfwd_dataplane::core::Command;
use ringfwd_dataplane::runtime::mailbox::Envelope;
use ringfwd_dataplane::runtime::Dataplane;

/// Sends `command` (sequence number `seq`) to the worker that owns `ssrc` and waits up to 5 s for it to
/// be applied; fails the test if it is refused or not acknowledged.
#[allow(dead_code)] // Not every test binary that includes this module sends commands this way.
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

/// The pcap directory for a data plane whose streams are never tapped: the recorder creates it only with a first
/// file, so nothing appears there.
#[allow(dead_code)] // Not every test binary that includes this module starts an untapped data plane.
pub fn untapped_directory() -> std::path::PathBuf {
    std::env::temp_dir().join("ringfwd-untapped")
}

/// Starts a data plane as the daemon does: `config`'s placement resolved against the cores this process may run on,
/// converted into the data plane's settings, recording (if the config taps) into `tap_directory`.
#[allow(dead_code)] // Not every test binary that includes this module starts a data plane.
pub fn start(config: &ringfwd_tuning::Config, tap_directory: &std::path::Path) -> Dataplane {
    let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    let topology = ringfwd_tuning::read_topology(std::path::Path::new("/")).restricted_to(&allowed);
    let cores = config.resolve_placement(&topology).expect("the default placement fits this host");
    Dataplane::start(config.dataplane_settings(cores, tap_directory, ringfwd_dataplane::control::Plugins::none()))
        .expect("start data plane")
}

/// A data plane on one loopback media address with no interceptor chains, holding the stream `ssrc` (id 1) whose
/// packets come from `publisher` (added with command sequence number 1).
#[allow(dead_code)] // Not every test binary that includes this module wants a plain data plane.
pub fn start_plain_with_stream(publisher: &std::net::UdpSocket, ssrc: u32) -> Dataplane {
    use ringfwd_dataplane::core::{SourcePolicy, StreamId};
    let mut config = ringfwd_tuning::Config::default();
    config.media.addresses = vec!["127.0.0.1:0".parse().expect("an address")];
    config.interceptors.ingress.clear();
    config.interceptors.egress.clear();
    let dataplane = start(&config, &untapped_directory());
    let source = SourcePolicy::Fixed(publisher.local_addr().expect("the publisher's address"));
    let stream =
        Command::AddStream { id: StreamId(1), ssrc, source, clock_rate_hz: 90_000, ingress: Default::default() };
    send_command(&dataplane, ssrc, 1, stream);
    dataplane
}
