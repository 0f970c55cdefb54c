//! A crash loses nothing: SIGKILL under traffic, restart on the same state directory, and the subscriber's stream
//! goes on — the same SSRC, sequence numbers that continue past the last ones it saw (no number reused), timestamps
//! advanced by the time that passed — after a gap of about a second; the API shows everything that was accepted.
//!
//! The subscriber was switched to a second stream before the crash, so its numbering was rebased by the worker (not
//! its creation offsets): only the numbering kept by the state store can continue it. A stop (SIGTERM) keeps the
//! exact numbering: after a restart the subscriber's numbers and timestamps jump by exactly what the publisher sent
//! meanwhile.

use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, metadata_target, subscription, video_stream, wait_until, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::flow::{seq_breaks, Collector, Publisher, Stream};
use ringfwd_tests::gst::free_port;
use ringfwd_tests::peer::Peer;
use ringfwd_tuning::defaults::STATE_NUMBERING_INTERVAL_MS;

/// How often the workers' numbering is kept (the default `state.numbering_interval_ms`).
const NUMBERING_INTERVAL: Duration = Duration::from_millis(STATE_NUMBERING_INTERVAL_MS as u64);
const A: u32 = 0x0a0a_0a0a;
const B: u32 = 0x0b0b_0b0b;
/// Each stream's packet rate.
const PPS: u32 = 250;
/// The longest a test waits for packets.
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_sigkill_under_traffic_loses_no_state_and_the_subscriber_numbering_continues() {
    // Two numbering rounds of stream b, so that at least one kept it.
    let rounds = (f64::from(PPS) * 2.0 * NUMBERING_INTERVAL.as_secs_f64()).ceil() as usize;
    let Call { config, daemon, collector, flow } = call_switched_to_b(200, rounds);
    let dir = daemon.crash();
    let before = collector.count();
    let daemon = Daemon::restart_in(&config, dir);
    assert!(wait_until(WAIT, || collector.count() >= before + 250), "forwarding resumes after the restart");
    flow.stop();
    let got = collector.stop();

    assert!(got.iter().all(|g| g.ssrc == A), "one SSRC throughout (pinned by the switch, kept across the crash)");
    // Every step is +1 but one: the restart's, which skips ahead (no number reused).
    let steps = seq_breaks(&got);
    assert_eq!(steps.len(), 1, "one discontinuity, at the restart: {steps:?}");
    let (i, skip) = steps[0];
    let (last, first) = (got[i], got[i + 1]);
    let gap = first.at.duration_since(last.at);
    assert!(gap <= Duration::from_millis(1500), "the subscriber waited {gap:?}");
    assert!(skip < 0x8000, "the numbers go forward: +{skip}");
    // What the kept rate could have sent since the kept packet (at most a numbering round plus the gap before it).
    let since_kept = gap.as_secs_f64() + NUMBERING_INTERVAL.as_secs_f64() + 0.3;
    let bound = (f64::from(PPS) * since_kept * 1.25).ceil() as u16 + 16;
    assert!(skip <= bound, "skipped {skip} > {bound} for a {gap:?} gap");
    let ticks = first.ts.wrapping_sub(last.ts);
    let (low, high) = ((gap.as_secs_f64() * 90_000.0 * 0.9) as u32, (since_kept * 90_000.0) as u32);
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
fn a_stop_keeps_the_exact_numbering_and_the_restart_goes_on_by_the_same_offsets() {
    let Call { config, daemon, collector, flow } = call_switched_to_b(100, 50);
    let (exit, dir) = daemon.stop_for_restart();
    assert!(exit.success, "{}", exit.stderr);
    let before = collector.count();
    let daemon = Daemon::restart_in(&config, dir);
    assert!(wait_until(WAIT, || collector.count() >= before + 100), "forwarding resumes after the restart");
    flow.stop();
    let got = collector.stop();

    let steps = seq_breaks(&got);
    assert_eq!(steps.len(), 1, "one discontinuity, at the restart: {steps:?}");
    let (i, skip) = steps[0];
    let (last, first) = (got[i], got[i + 1]);
    assert!(skip > 1 && skip < 0x8000, "the numbers go forward past what the publisher sent meanwhile: +{skip}");
    // The same offsets: the timestamp moved with the sequence number, exactly as the publisher's did (360 a packet),
    // not by a crash's estimate.
    let ticks = first.ts.wrapping_sub(last.ts);
    assert_eq!(ticks, u32::from(skip) * 360, "timestamp +{ticks} for +{skip} sequence numbers");
    eprintln!("stop and restart: gap {:?}, +{skip} sequence numbers, +{ticks} ticks", first.at.duration_since(last.at));
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}

/// A daemon forwarding alice's streams a and b to bob, with bob switched from a to b: the switch rebases his numbering,
/// so his creation offsets no longer hold and only what the state store keeps can continue it.
struct Call {
    config: String,
    daemon: Daemon,
    collector: Collector,
    flow: Publisher,
}

/// Starts a [`Call`]: switches bob to b once he received `on_a` packets of a, returns once he received `on_b` of b.
fn call_switched_to_b(on_a: usize, on_b: usize) -> Call {
    let port = free_port();
    let config = format!("[media]\naddresses = [\"127.0.0.1:{port}\"]\n");
    let daemon = Daemon::start(&config);
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let api = Api::dev(&daemon);
    api.session("call").expect("session");
    api.create_endpoint(endpoint("call", "alice", publisher.addr())).expect("alice");
    api.create_endpoint(endpoint("call", "bob", subscriber.addr())).expect("bob");
    api.create_stream(video_stream("call", "a", "alice", A)).expect("stream a");
    api.create_stream(video_stream("call", "b", "alice", B)).expect("stream b");
    api.create_subscription(subscription("call", "bob-video", "a", "bob", 0)).expect("subscription");

    let collector = Collector::start(subscriber.try_clone());
    let streams = vec![
        Stream { ssrc: A, seq: 1_000, ts: 5_000, ticks: 360 },
        Stream { ssrc: B, seq: 40_000, ts: 3_000_000, ticks: 360 },
    ];
    let flow = Publisher::start(publisher.try_clone(), daemon.media[0], streams, PPS);
    assert!(wait_until(WAIT, || collector.count() >= on_a), "the subscriber receives stream a");
    api.switch("call", "bob-video", "b").expect("switch to b");
    let switched = collector.count();
    assert!(wait_until(WAIT, || collector.count() >= switched + on_b), "the subscriber receives stream b");
    Call { config, daemon, collector, flow }
}

#[test]
fn deletes_and_metadata_are_kept_and_persist_false_keeps_nothing() {
    let config = "[media]\naddresses = [\"127.0.0.1:0\"]\n";
    let daemon = Daemon::start(config);
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
    let daemon = Daemon::restart_in(config, dir);
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
    let daemon = Daemon::restart_in(&format!("{config}[state]\npersist = false\n"), exit_dir);
    assert!(Api::dev(&daemon).session_ids().is_empty());
}
