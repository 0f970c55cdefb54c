//! The C example `plugins/examples/jitter.c`, a delay and reorder buffer built on the `inject` import, loaded from
//! the config by the plain `ringfwd` binary, in sync mode (inline on the worker) and in async mode (on its own thread,
//! `async_pass = "consume"`): a publisher sends a paced burst whose sequence numbers are shuffled (adjacent pairs
//! swapped); the subscriber receives every packet exactly once, byte for byte what was sent under the header its
//! subscription rewrites, in increasing sequence order, each no sooner than `delay_ms` after it was sent. In async
//! mode the plugin's thread runs on the control plane's cores, never on the worker's.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringfwd_tests::api::{endpoint, subscription, video_stream, wait_until, worker_total, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtp_packet, Peer};

const SSRC: u32 = 0x6a69_7431;
const OUT_SSRC: u32 = 0x6a69_7432;
const COUNT: u16 = 60;
const DELAY_MS: u64 = 80;
const PACE: Duration = Duration::from_millis(4);

fn packet(seq: u16) -> Vec<u8> {
    rtp_packet(SSRC, seq, u32::from(seq) * 3000, 96, false, &[seq as u8; 200])
}

#[test]
fn the_c_jitter_buffer_delivers_a_shuffled_burst_once_in_order_after_its_delay() {
    shuffled_burst_comes_out_in_order("");
}

#[test]
fn the_c_jitter_buffer_in_async_mode_does_the_same_from_its_own_thread() {
    let daemon = shuffled_burst_comes_out_in_order("mode = \"async\"\nasync_pass = \"consume\"\n");
    let Some(daemon) = daemon else { return };
    let info = Api::dev(&daemon).node();
    let plugin = info.plugins.iter().find(|p| p.name == "jitter").expect("listed");
    assert_eq!(plugin.mode, "async");
    let counter = |name: &str| plugin.counters.get(name).copied().unwrap_or_default();
    assert_eq!((counter("async_queued"), counter("async_queue_full")), (u64::from(COUNT), 0), "{:?}", plugin.counters);
    assert_eq!((counter("instances"), counter("injected")), (1, u64::from(COUNT)), "one instance, on its thread");
    // Its thread: allowed on the control plane's cores (the main thread's), none of them the worker's.
    let allowed = |task: &str| -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/task/{task}/status", daemon.pid())).expect("status");
        let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).expect("Cpus_allowed_list");
        line.split(':').nth(1).unwrap_or_default().trim().to_owned()
    };
    let tasks = std::fs::read_dir(format!("/proc/{}/task", daemon.pid())).expect("tasks");
    let thread = tasks
        .filter_map(Result::ok)
        .map(|task| task.file_name().to_string_lossy().into_owned())
        .find(|task| {
            let comm = std::fs::read_to_string(format!("/proc/{}/task/{task}/comm", daemon.pid())).unwrap_or_default();
            comm.trim() == "plugin-jitter"
        })
        .expect("the plugin's thread, named plugin-jitter");
    let main = allowed(&daemon.pid().to_string());
    assert_eq!(allowed(&thread), main, "the plugin's thread runs where the control plane does");
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        assert!(!main.split(',').any(|part| part == "0" || part.starts_with("0-")), "not on worker core 0: {main}");
    }
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}

/// Runs the burst through a daemon whose `[[plugins]]` entry for the jitter buffer has `mode_keys` too; the daemon,
/// still running, for more checks (`None` when the C examples cannot be built here).
fn shuffled_burst_comes_out_in_order(mode_keys: &str) -> Option<Daemon> {
    let modules = ringfwd_tests::wasm::build_c_examples()?;
    let jitter = modules.path().join("jitter.wasm");
    let config = format!(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[[plugins]]\nname = \"jitter\"\npath \
         = \"{}\"\nchains = [\"ingress\"]\n{mode_keys}[plugins.params]\ndelay_ms = \"{DELAY_MS}\"\n[interceptors]\n\
         ingress = [\"jitter\"]\negress = []\n",
        jitter.display()
    );
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api.create_endpoint(endpoint("s", "pub", publisher.addr())).expect("publisher");
    api.create_stream(video_stream("s", "v", "pub", SSRC)).expect("stream");
    api.create_endpoint(endpoint("s", "sub", subscriber.addr())).expect("subscriber");
    api.create_subscription(subscription("s", "sub", "v", "sub", OUT_SSRC)).expect("subscription");

    // The subscriber stamps each RTP packet as it arrives, on its own thread (the sender paces meanwhile).
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let receiver = subscriber.try_clone();
    let stamping = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rtp = 0;
        while rtp < usize::from(COUNT) && Instant::now() < deadline {
            for datagram in receiver.recv(1, Duration::from_millis(50)) {
                let at = Instant::now();
                if !(200..=204).contains(&datagram[1]) {
                    rtp += 1;
                    let _ = tx.send((at, datagram));
                }
            }
        }
    });

    // Pairs swapped: 1, 0, 3, 2, ...
    let order: Vec<u16> = (0..COUNT).map(|i| i ^ 1).collect();
    let mut sent_at = vec![None; usize::from(COUNT)];
    for &seq in &order {
        sent_at[usize::from(seq)] = Some(Instant::now());
        publisher.send(&packet(seq), daemon.media[0]);
        std::thread::sleep(PACE);
    }
    stamping.join().expect("the receiving thread");
    let mut got: Vec<(Instant, Vec<u8>)> = rx.try_iter().collect();
    got.extend(subscriber.drain(Duration::from_millis(300)).into_iter().map(|d| (Instant::now(), d)));
    got.retain(|(_, datagram)| !(200..=204).contains(&datagram[1]));

    assert_eq!(got.len(), usize::from(COUNT), "every packet exactly once");
    for (index, (at, datagram)) in got.iter().enumerate() {
        let seq = index as u16;
        let mut expected = packet(seq);
        expected[8..12].copy_from_slice(&OUT_SSRC.to_be_bytes());
        assert!(*datagram == expected, "packet {index}: not sequence number {seq} as sent, under the rewrite");
        let held = at.saturating_duration_since(sent_at[index].expect("sent"));
        assert!(held >= Duration::from_millis(DELAY_MS), "sequence number {seq} held only {held:?}");
    }
    let mut consumed = 0;
    wait_until(Duration::from_secs(5), || {
        consumed = worker_total(&api.node(), "injected");
        consumed >= u64::from(COUNT)
    });
    assert_eq!(consumed, u64::from(COUNT), "every packet injected once");
    let originals = worker_total(&api.node(), "consumed_by_interceptor");
    assert_eq!(originals, u64::from(COUNT), "the originals went no further");
    Some(daemon)
}
