//! A crash loses nothing: SIGKILL under traffic, restart on the same state directory, and the subscriber's stream
//! goes on — the same SSRC, sequence numbers that continue past the last ones it saw (no number reused), timestamps
//! advanced by the time that passed — after a gap of about a second; the API shows everything that was accepted.
//!
//! The subscriber was switched to a second stream before the crash, so its numbering was rebased by the worker (not
//! its creation offsets): only the numbering kept by the state store can continue it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, metadata_target, subscription, video_stream, wait_until, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtp_fields, rtp_packet, Peer};

const A: u32 = 0x0a0a_0a0a;
const B: u32 = 0x0b0b_0b0b;
/// Each stream's packet rate: one packet of each stream every 4 ms.
const PPS: f64 = 250.0;
/// The longest a test waits for packets.
const WAIT: Duration = Duration::from_secs(20);

/// One packet the subscriber received.
#[derive(Clone, Copy, Debug)]
struct Got {
    ssrc: u32,
    seq: u16,
    ts: u32,
    at: Instant,
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Sends streams A and B (different sequence and timestamp bases) from `publisher` to `media` at [`PPS`] each, until
/// `stop` is set or 60 s passed.
fn publish(publisher: Peer, media: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let period = Duration::from_secs_f64(1.0 / PPS);
        let mut n: u32 = 0;
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
            let seq = n as u16;
            let ts = n.wrapping_mul(360); // 90 kHz at 250 pps
            publisher.send(&rtp_packet(A, seq.wrapping_add(1000), ts.wrapping_add(5_000), 96, false, &[1; 160]), media);
            publisher.send(
                &rtp_packet(B, seq.wrapping_add(40_000), ts.wrapping_add(3_000_000), 96, false, &[2; 160]),
                media,
            );
            n += 1;
            if let Some(wait) = (start + period * n).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait); // pacing, not synchronisation
            }
        }
    })
}

/// Collects what `subscriber` receives into `got` until `stop` is set.
fn collect(subscriber: Peer, got: Arc<Mutex<Vec<Got>>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            // One at a time: each packet's arrival time is its own.
            for packet in subscriber.recv(1, Duration::from_millis(50)) {
                let f = rtp_fields(&packet);
                got.lock().unwrap().push(Got { ssrc: f.ssrc, seq: f.seq, ts: f.timestamp, at: Instant::now() });
            }
        }
    })
}

fn received(got: &Mutex<Vec<Got>>) -> usize {
    got.lock().unwrap().len()
}

#[test]
fn a_sigkill_under_traffic_loses_no_state_and_the_subscriber_numbering_continues() {
    let port = free_udp_port();
    let config = format!("[media]\naddresses = [\"127.0.0.1:{port}\"]\n");
    let daemon = Daemon::start(&config);
    let media = daemon.media[0];
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let api = Api::dev(&daemon);
    api.session("call").expect("session");
    api.create_endpoint(endpoint("call", "alice", publisher.addr())).expect("alice");
    api.create_endpoint(endpoint("call", "bob", subscriber.addr())).expect("bob");
    api.create_stream(video_stream("call", "a", "alice", A)).expect("stream a");
    api.create_stream(video_stream("call", "b", "alice", B)).expect("stream b");
    api.create_subscription(subscription("call", "bob-video", "a", "bob", 0)).expect("subscription");

    let (stop, got) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let collector = collect(subscriber.try_clone(), Arc::clone(&got), Arc::clone(&stop));
    let sender = publish(publisher.try_clone(), media, Arc::clone(&stop));
    assert!(wait_until(WAIT, || received(&got) >= 200), "the subscriber receives stream a");
    api.switch("call", "bob-video", "b").expect("switch to b");
    let switched = received(&got);
    // A second of stream b, so that several numbering rounds kept it.
    assert!(wait_until(WAIT, || received(&got) >= switched + 250), "the subscriber receives stream b");
    drop(api);

    let dir = daemon.crash();
    let before = received(&got);
    let daemon = Daemon::restart_in(&config, dir);
    assert!(wait_until(WAIT, || received(&got) >= before + 250), "forwarding resumes after the restart");
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    collector.join().unwrap();

    let got = got.lock().unwrap().clone();
    assert!(got.iter().all(|g| g.ssrc == A), "one SSRC throughout (pinned by the switch, kept across the crash)");
    // Every step is +1 but one: the restart's, which skips ahead (no number reused).
    let steps: Vec<(usize, u16)> = got
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i, w[1].seq.wrapping_sub(w[0].seq)))
        .filter(|&(_, d)| d != 1)
        .collect();
    assert_eq!(steps.len(), 1, "one discontinuity, at the restart: {steps:?}");
    let (i, skip) = steps[0];
    let (last, first) = (got[i], got[i + 1]);
    let gap = first.at.duration_since(last.at);
    assert!(gap <= Duration::from_millis(1500), "the subscriber waited {gap:?}");
    assert!(skip < 0x8000, "the numbers go forward: +{skip}");
    // What the kept rate could have sent since the kept packet (at most a numbering round plus the gap before it).
    let bound = (PPS * (gap.as_secs_f64() + 0.3) * 1.25).ceil() as u16 + 16;
    assert!(skip <= bound, "skipped {skip} > {bound} for a {gap:?} gap");
    let ticks = first.ts.wrapping_sub(last.ts);
    let (low, high) = ((gap.as_secs_f64() * 90_000.0 * 0.9) as u32, ((gap.as_secs_f64() + 0.3) * 90_000.0) as u32);
    assert!((low..=high).contains(&ticks), "the timestamp advanced {ticks} ticks over {gap:?}");

    // Everything accepted is back, as it was.
    let api = Api::dev(&daemon);
    let sub = api
        .get_subscription(v1::GetSubscriptionRequest { session_id: "call".into(), subscription_id: "bob-video".into() })
        .expect("the subscription is back");
    assert_eq!((sub.stream_id.as_str(), sub.out_ssrc), ("b", A));
    assert_eq!(api.session_ids(), ["call"]);
    let streams = api.list_streams(v1::ListStreamsRequest { session_id: "call".into() }).expect("streams");
    assert_eq!(streams.streams.len(), 2);
    eprintln!("restart: gap {gap:?}, sequence numbers skipped {skip} (bound {bound}), timestamp +{ticks}");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}

#[test]
fn deletes_and_metadata_are_kept_and_persist_false_keeps_nothing() {
    let daemon = Daemon::start("");
    let api = Api::dev(&daemon);
    let peer = Peer::bind("127.0.0.1");
    for id in ["kept", "gone"] {
        api.session(id).expect("session");
        api.create_endpoint(endpoint(id, "e", peer.addr())).expect("endpoint");
    }
    api.delete_session(v1::DeleteSessionRequest { session_id: "gone".into() }).expect("delete");
    let (on_session, on_endpoint) = (metadata_target("kept", "", ""), metadata_target("kept", "e", ""));
    api.set_pairs(&on_session, &[("app.room", "blue"), ("app.gone", "x")]);
    let deletions = vec![v1::MetadataDeletion { key: "app.gone".into(), expected_version: None }];
    let request = v1::DeleteMetadataRequest { target: Some(on_session.clone()), deletions };
    api.delete_metadata(request).expect("DeleteMetadata");
    let endpoint_version = api.set_pairs(&on_endpoint, &[("sip.call_id", "abc@host")]);
    drop(api);
    let dir = daemon.crash();
    let daemon = Daemon::restart_in("", dir);
    let api = Api::dev(&daemon);
    assert_eq!(api.session_ids(), ["kept"]);
    let endpoint = api
        .get_endpoint(v1::GetEndpointRequest { session_id: "kept".into(), endpoint_id: "e".into() })
        .expect("its endpoint");
    assert_eq!(endpoint.media_address, peer.addr().to_string());
    assert_eq!(api.metadata_pairs(&on_session), [("app.room".to_owned(), "blue".to_owned())]);
    assert_eq!(api.metadata_pairs(&on_endpoint), [("sip.call_id".to_owned(), "abc@host".to_owned())]);
    let got = api.get_metadata(v1::GetMetadataRequest { target: Some(on_endpoint.clone()), keys: Vec::new() });
    assert_eq!(got.expect("GetMetadata").version, Some(endpoint_version), "the version is kept");
    let later = api.set_pairs(&on_endpoint, &[("app.more", "1")]);
    assert!(
        (later.wall_us, later.counter) > (endpoint_version.wall_us, endpoint_version.counter),
        "a write after the restart is newer"
    );
    drop(api);

    // With persistence off, the next start is empty (and the file is left alone).
    let exit_dir = daemon.crash();
    let daemon = Daemon::restart_in("[state]\npersist = false\n", exit_dir);
    assert!(Api::dev(&daemon).session_ids().is_empty());
}
