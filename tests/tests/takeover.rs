//! Upgrade without loss: a second `ringfwd --take-over` takes over from the running one under traffic, and the
//! subscribers lose nothing — every packet the publisher sent arrives once, sequence numbers step by +1 across the
//! handover (also for a subscription whose numbering the worker had rebased on a switch), timestamps stay the
//! publisher's — while the API keeps its address and everything accepted; the old daemon exits on its own.
//!
//! The rate is `RINGFWD_TAKEOVER_PPS` input packets per second (default 50 000, two streams of 25 000).

use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, subscription, video_stream, wait_until, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::flow::{seq_breaks, Collector, Got, Publisher, Stream};
use ringfwd_tests::peer::Peer;

const A: u32 = 0x0a0a_0a0a;
const B: u32 = 0x0b0b_0b0b;
const WAIT: Duration = Duration::from_secs(30);

fn rate() -> u32 {
    std::env::var("RINGFWD_TAKEOVER_PPS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000)
}

/// The indexes of `ssrc`'s packets in `got`, in arrival order.
fn indexes(got: &[Got], ssrc: u32) -> Vec<u64> {
    got.iter().filter(|g| g.ssrc == ssrc).map(|g| g.index).collect()
}

#[test]
fn a_takeover_under_traffic_loses_no_packet_and_numbering_steps_by_one() {
    // Receive buffers that hold the handover's pause at this rate.
    let config = "[media]\naddresses = [\"127.0.0.1:0\"]\nrecv_buffer_bytes = 67108864\n";
    let old = Daemon::start(config);
    let (media, api_address) = (old.media[0], old.api);
    let (publisher, bob, carol) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let api = Api::dev(&old);
    api.session("call").expect("session");
    api.create_endpoint(endpoint("call", "alice", publisher.addr())).expect("alice");
    api.create_endpoint(endpoint("call", "bob", bob.addr())).expect("bob");
    api.create_endpoint(endpoint("call", "carol", carol.addr())).expect("carol");
    api.create_stream(video_stream("call", "a", "alice", A)).expect("stream a");
    api.create_stream(video_stream("call", "b", "alice", B)).expect("stream b");
    api.create_subscription(subscription("call", "bob-a", "a", "bob", 0)).expect("bob's");
    api.create_subscription(subscription("call", "carol-b", "b", "carol", 0x00c0_ffee)).expect("carol's");

    let (bobs, carols) = (Collector::start(bob.try_clone()), Collector::start(carol.try_clone()));
    let per_stream = rate() / 2;
    let streams = vec![
        Stream { ssrc: A, seq: 1_000, ts: 5_000, ticks: 90 },
        Stream { ssrc: B, seq: 40_000, ts: 3_000_000, ticks: 90 },
    ];
    let flow = Publisher::start(publisher.try_clone(), media, streams, per_stream);
    let second = u64::from(per_stream);
    assert!(wait_until(WAIT, || carols.count() as u64 >= second / 2), "carol receives stream b");
    // Carol switches to stream a: her numbering is rebased on a's first packet, away from her creation offsets.
    api.switch("call", "carol-b", "a").expect("switch");
    assert!(wait_until(WAIT, || flow.sent() >= second * 3 / 2), "traffic flows");
    let before = (bobs.count(), carols.count());
    drop(api);

    let (new, old_exit) = old.take_over(config);
    assert!(old_exit.success, "the old daemon exits cleanly: {}", old_exit.stderr);
    assert!(old_exit.counters.is_some(), "the old daemon printed its final counters: {}", old_exit.stdout);
    let after = flow.sent();
    assert!(wait_until(WAIT, || flow.sent() >= after + second), "a second more of traffic after the takeover");
    let sent = flow.stop();
    // Everything sent arrives (bounded wait, then checked).
    wait_until(WAIT, || bobs.count() as u64 >= sent);
    let (bob_got, carol_got) = (bobs.stop(), carols.stop());

    // Bob: stream a, every packet once, in order, numbered +1 throughout.
    let bob_indexes = indexes(&bob_got, A);
    let expected: Vec<u64> = (0..sent).collect();
    assert_eq!(bob_got.len(), bob_indexes.len(), "bob gets stream a only");
    assert!(bob_indexes == expected, "bob lost or repeated packets: got {} of {sent}", bob_indexes.len());
    assert_eq!(seq_breaks(&bob_got), [], "bob's numbering steps by one");
    assert!(bob_got.iter().all(|g| g.ts == 5_000 + 90 * g.index as u32), "bob's timestamps are the publisher's");
    // Carol: b, then a from the switch on; the same SSRC; +1 throughout; nothing lost after the switch.
    assert!(carol_got.iter().all(|g| g.ssrc == 0x00c0_ffee));
    assert_eq!(seq_breaks(&carol_got), [], "carol's numbering steps by one, across the switch and the takeover");
    let from = carol_got.iter().position(|g| g.stream == 0).expect("carol got stream a");
    assert!(carol_got[from..].iter().all(|g| g.stream == 0), "only stream a after the switch");
    let carol_a: Vec<u64> = carol_got[from..].iter().map(|g| g.index).collect();
    let first = carol_a[0];
    assert_eq!(carol_a, (first..sent).collect::<Vec<_>>(), "carol lost or repeated packets of stream a");
    let ts_step = carol_got[from..].windows(2).all(|w| w[1].ts.wrapping_sub(w[0].ts) == 90);
    assert!(ts_step, "carol's timestamps step as the publisher's, across the takeover");
    let pause = bob_got.windows(2).map(|w| w[1].at.duration_since(w[0].at)).max().unwrap_or_default();
    eprintln!(
        "takeover at {} pps in: bob {} -> {} packets, carol {} -> {}, none lost; longest pause {pause:?}",
        rate(),
        before.0,
        bob_got.len(),
        before.1,
        carol_got.len()
    );

    // The new daemon serves the API on the listener it took over, with everything accepted before.
    assert_eq!(new.api, api_address, "the same API address");
    let api = Api::dev(&new);
    let sub = api
        .get_subscription(v1::GetSubscriptionRequest { session_id: "call".into(), subscription_id: "carol-b".into() })
        .expect("carol's subscription");
    assert_eq!(sub.stream_id, "a");
    let exit = new.stop();
    assert!(exit.success, "{}", exit.stderr);
    let total = exit.total("kernel_rx_dropped");
    assert_eq!(total, 0, "no datagram dropped by the kernel");
}

#[test]
fn a_takeover_needs_a_daemon_to_take_over_from_unless_if_running() {
    let config = "[media]\naddresses = [\"127.0.0.1:0\"]\n";
    let refused = Daemon::start_with_args(config, &["--take-over"]).err().expect("nothing to take over from");
    assert!(refused.contains("handover.sock"), "the error names the handover socket: {refused}");
    let daemon = Daemon::start_with_args(config, &["--take-over=if-running"]).expect("starts on its own");
    Api::dev(&daemon).session("s").expect("serves");
    let off = format!("{config}[state]\npersist = false\n");
    let off = Daemon::start_with_args(&off, &["--take-over"]).err().expect("refused");
    assert!(off.contains("state.persist = false"), "{off}");
    assert!(daemon.stop().success);
}
