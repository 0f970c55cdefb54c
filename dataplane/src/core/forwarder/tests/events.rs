//! Events the forwarder queues: a stream's first packet, a latch, inactivity, rate limiting, a BYE.

use super::*;
use crate::core::event::WorkerEventKind;

fn drained(h: &mut Harness) -> Vec<WorkerEventKind> {
    let mut events = Vec::new();
    h.fwd.drain_events(|event| events.push(event));
    events
}

#[test]
fn first_packet_latch_inactivity_and_restart_are_reported_once_each() {
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Latch { window: Duration::from_secs(10), fallback: None });
    h.sub(1, 1, "127.0.0.20:7000", Rewrite::default()).expect("sub");
    let mut egress = Recorder::new();
    assert!(drained(&mut h).is_empty(), "nothing before the first packet");
    for (i, ms) in [0u64, 10, 20].into_iter().enumerate() {
        h.send(ms, publisher(), &rtp(SSRC, i as u16, 0, b"x"), &mut egress);
    }
    assert_eq!(
        drained(&mut h),
        [
            WorkerEventKind::SourceChanged { stream: StreamId(1), source: publisher() },
            WorkerEventKind::StreamStarted { stream: StreamId(1) },
        ]
    );
    let inactive_after = Duration::from_secs(5);
    h.fwd.check_activity(h.at(5_019), inactive_after);
    assert!(drained(&mut h).is_empty(), "4.999 s after the last packet it is still active");
    h.fwd.check_activity(h.at(5_020), inactive_after);
    assert_eq!(drained(&mut h), [WorkerEventKind::StreamInactive { stream: StreamId(1) }]);
    h.fwd.check_activity(h.at(9_000), inactive_after);
    assert!(drained(&mut h).is_empty(), "reported once");
    h.send(9_100, publisher(), &rtp(SSRC, 3, 0, b"x"), &mut egress);
    assert_eq!(drained(&mut h), [WorkerEventKind::StreamStarted { stream: StreamId(1) }], "started again");
}

#[test]
fn rate_limiting_is_reported_per_round_with_the_count() {
    let limits = ForwarderLimits { max_packets_per_second_per_source: 2, ..limits() };
    let mut h = Harness { fwd: Forwarder::with_hash_seed(0, 2, limits, 7), start: Instant::now() };
    fixed_stream_with_subs(&mut h, 1);
    let mut egress = Recorder::new();
    for seq in 0..5u16 {
        h.send(0, publisher(), &rtp(SSRC, seq, 0, b"x"), &mut egress);
    }
    h.fwd.check_activity(h.at(100), Duration::from_secs(5));
    let events = drained(&mut h);
    assert!(events.contains(&WorkerEventKind::RateLimited { stream: StreamId(1), dropped: 3 }), "{events:?}");
    h.fwd.check_activity(h.at(200), Duration::from_secs(5));
    assert!(drained(&mut h).is_empty(), "nothing new to report");
}

#[test]
fn an_unreachable_destination_is_reported_for_its_subscriptions_once_per_round() {
    let mut h = Harness::new();
    fixed_stream_with_subs(&mut h, 2);
    let dest = addr("127.0.0.11:6001");
    h.fwd.note_unreachable(dest, 111);
    h.fwd.note_unreachable(dest, 111);
    assert_eq!(
        drained(&mut h),
        [WorkerEventKind::SubscriberUnreachable { subscription: SubscriptionId(1), errno: 111 }],
        "once, for the subscription sending there"
    );
    h.fwd.check_activity(h.at(1000), Duration::from_secs(5));
    h.fwd.note_unreachable(dest, 111);
    assert_eq!(drained(&mut h).len(), 1, "again in the next round");
    h.fwd.note_unreachable(addr("127.0.0.99:1"), 111);
    assert!(drained(&mut h).is_empty(), "nobody sends there");
}

#[test]
fn a_publishers_bye_for_its_stream_is_reported() {
    let mut h = Harness::new();
    fixed_stream_with_subs(&mut h, 1);
    let mut egress = Recorder::new();
    h.send(0, publisher(), &rtp(SSRC, 0, 0, b"x"), &mut egress);
    let _ = drained(&mut h);
    let goodbye = |sources: Vec<u32>| -> Vec<u8> {
        let packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> = vec![
            Box::new(rtcp::sender_report::SenderReport { ssrc: SSRC, ..Default::default() }),
            Box::new(rtcp::goodbye::Goodbye { sources, reason: Bytes::new() }),
        ];
        rtcp::packet::marshal(&packets).expect("marshal").to_vec()
    };
    h.send(10, publisher(), &goodbye(vec![SSRC + 1]), &mut egress);
    assert!(drained(&mut h).is_empty(), "a BYE for another SSRC is not the stream's");
    h.send(20, publisher(), &goodbye(vec![SSRC + 1, SSRC]), &mut egress);
    assert_eq!(drained(&mut h), [WorkerEventKind::StreamBye { stream: StreamId(1) }]);
}

#[test]
fn an_unknown_ssrc_is_reported_once_per_source_and_round_and_boundedly() {
    use crate::core::forwarder::stats::UNKNOWN_SSRCS_PER_ROUND;
    let mut h = Harness::new();
    let mut egress = Recorder::new();
    // SSRCs owned by worker 0 of 2 (even), so none is handed over.
    let unknown = |k: u32| 0x0000_7000 + 2 * k;
    for _ in 0..3 {
        let outcome = h.send(0, publisher(), &rtp(unknown(0), 1, 0, b"x"), &mut egress);
        assert_eq!(outcome, Outcome::Dropped(DropReason::UnknownSsrc), "still dropped");
    }
    let report = |ssrc, source| WorkerEventKind::UnknownSsrc { source, ssrc, payload_type: 96 };
    assert_eq!(drained(&mut h), [report(unknown(0), publisher())], "once for the pair");
    h.send(1, addr("127.0.0.9:9"), &rtp(unknown(0), 1, 0, b"x"), &mut egress);
    assert_eq!(drained(&mut h), [report(unknown(0), addr("127.0.0.9:9"))], "another source is another pair");
    for k in 1..40 {
        h.send(2, publisher(), &rtp(unknown(k), 1, 0, b"x"), &mut egress);
    }
    assert_eq!(drained(&mut h).len(), UNKNOWN_SSRCS_PER_ROUND - 2, "bounded per round");
    h.fwd.check_activity(h.at(1_000), Duration::from_secs(5));
    h.send(1_001, publisher(), &rtp(unknown(0), 2, 0, b"x"), &mut egress);
    assert_eq!(drained(&mut h), [report(unknown(0), publisher())], "reported again the next round");
    assert_eq!(h.fwd.counters().drop_unknown_ssrc, 3 + 1 + 39 + 1);
}
