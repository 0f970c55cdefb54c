//! Switching a subscription to another stream: continuous numbering, SSRC kept, RTCP, validation.

use super::*;
use crate::core::continuity::Numbering;

const SSRC_B: u32 = 0x0000_2000; // owned by worker 0 of 2, like SSRC

/// `(ssrc, seq, ts)` of every RTP copy recorded, in order; clears the recorder.
fn drain_rtp(egress: &mut Recorder) -> Vec<(u32, u16, u32)> {
    egress
        .sent()
        .drain(..)
        .map(|sent| {
            let out = parse(&sent.bytes);
            (out.header.ssrc, out.header.sequence_number, out.header.timestamp)
        })
        .collect()
}

fn sender_report(ssrc: u32, rtp_time: u32) -> Vec<u8> {
    let packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> =
        vec![Box::new(rtcp::sender_report::SenderReport { ssrc, rtp_time, packet_count: 3, ..Default::default() })];
    rtcp::packet::marshal(&packets).unwrap().to_vec()
}

/// `(ssrc, rtp_time)` of the SR in an RTCP copy.
fn sr_fields(bytes: &[u8]) -> (u32, u32) {
    let decoded = rtcp::packet::unmarshal(&mut &bytes[..]).expect("valid rtcp out");
    let sr = decoded[0].as_any().downcast_ref::<rtcp::sender_report::SenderReport>().expect("sr");
    (sr.ssrc, sr.rtp_time)
}

/// Stream 1 (`SSRC`, 90 kHz) and stream 2 (`SSRC_B`, 48 kHz), both from the publisher.
fn two_streams(h: &mut Harness) {
    h.stream_at_rate(1, SSRC, SourcePolicy::Fixed(publisher()), 90_000);
    h.stream_at_rate(2, SSRC_B, SourcePolicy::Fixed(publisher()), 48_000);
}

#[test]
fn numbering_continues_across_switch_and_wrap() {
    let mut h = Harness::new();
    two_streams(&mut h);
    let seq_offset_only = Rewrite { seq_offset: 1, ..Rewrite::default() };
    h.sub(1, 1, "127.0.0.21:7001", seq_offset_only).unwrap();
    h.sub(2, 2, "127.0.0.22:7002", Rewrite::default()).unwrap();
    let mut egress = Recorder::new();
    // Stream 1: seqs 65530.. (out 65531..65534), every 20 ms, 1800 ticks apart at 90 kHz.
    for k in 0..4u16 {
        let pkt = rtp(SSRC, 65_530 + k, 1_000 + 1_800 * u32::from(k), b"a");
        h.send(20 * u64::from(k), publisher(), &pkt, &mut egress);
    }
    let before: Vec<_> = drain_rtp(&mut egress);
    assert_eq!(before.iter().map(|&(_, seq, _)| seq).collect::<Vec<_>>(), [65_531, 65_532, 65_533, 65_534]);
    assert_eq!(before[3], (SSRC, 65_534, 1_000 + 3 * 1_800));

    h.switch(70, 1, 2).expect("switch");
    // Stream 1 now has no subscriber.
    let pkt = rtp(SSRC, 65_534, 1_000 + 4 * 1_800, b"a");
    assert_eq!(h.send(80, publisher(), &pkt, &mut egress), Outcome::Consumed);
    // Its SR before stream 2's first RTP is withheld from the switched subscription only.
    let sr = sender_report(SSRC_B, u32::MAX - 2_000);
    assert_eq!(h.send(90, publisher(), &sr, &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(egress.sent().drain(..).next().unwrap().dest, addr("127.0.0.22:7002"));
    assert_eq!(h.fwd.counters().drop_rebase_pending, 1);

    // Stream 2 is numbered far away (seq 30000, ts near 2^32), 960 ticks per 20 ms at 48 kHz. The first
    // packet comes 40 ms after the last one sent to subscription 1: 40 ms x 48 kHz = 1920 ticks.
    let last_ts = 1_000 + 3 * 1_800;
    for k in 0..4u16 {
        let in_ts = (u32::MAX - 1_000).wrapping_add(960 * u32::from(k));
        let pkt = rtp(SSRC_B, 30_000 + k, in_ts, b"b");
        let outcome = h.send(100 + 20 * u64::from(k), publisher(), &pkt, &mut egress);
        assert_eq!(outcome, Outcome::Forwarded { copies: 2 });
        let sent: Vec<_> = egress.sent().iter().map(|s| (s.forwarded, s.dest, s.socket)).collect();
        assert_eq!(sent[1], (true, addr("127.0.0.21:7001"), 1), "same dest, socket");
        let copies = drain_rtp(&mut egress);
        assert_eq!(copies[0], (SSRC_B, 30_000 + k, in_ts), "subscription 2 untouched");
        let expected_ts = last_ts + 1_920 + 960 * u32::from(k);
        let expected_seq = 65_535u16.wrapping_add(k); // 65535, 0, 1, 2
        assert_eq!(copies[1], (SSRC, expected_seq, expected_ts), "packet {k}");
    }
    // Now stream 2's SR reaches subscription 1 on its timeline: its RTP time maps like the packets.
    let sr_time = (u32::MAX - 1_000).wrapping_add(480);
    assert_eq!(
        h.send(200, publisher(), &sender_report(SSRC_B, sr_time), &mut egress),
        Outcome::Forwarded { copies: 2 }
    );
    let srs: Vec<_> = egress.sent().drain(..).map(|s| sr_fields(&s.bytes)).collect();
    assert_eq!(srs, [(SSRC_B, sr_time), (SSRC, last_ts + 1_920 + 480)]);
    assert_eq!(h.fwd.counters().drop_rebase_pending, 1);
}

#[test]
fn switch_before_anything_sent_keeps_the_offsets() {
    let mut h = Harness::new();
    two_streams(&mut h);
    h.sub(1, 1, "127.0.0.21:7001", rewrite(0xabc, 100, 7, 97)).unwrap();
    h.sub(2, 1, "127.0.0.22:7002", Rewrite::default()).unwrap();
    h.switch(0, 1, 2).unwrap();
    h.switch(0, 2, 2).unwrap();
    let mut egress = Recorder::new();
    // No rebase pending: RTCP goes through at once, with the configured offset.
    assert_eq!(h.send(5, publisher(), &sender_report(SSRC_B, 50), &mut egress), Outcome::Forwarded { copies: 2 });
    let srs: Vec<_> = egress.sent().drain(..).map(|s| sr_fields(&s.bytes)).collect();
    // Subscription 2 had no out_ssrc: it keeps presenting stream 1's SSRC.
    assert_eq!(srs, [(0xabc, 57), (SSRC, 50)]);
    let pkt = rtp(SSRC_B, 500, 9_000, b"b");
    h.send(10, publisher(), &pkt, &mut egress);
    let first = parse(&egress.sent()[0].bytes);
    assert_eq!(first.header.payload_type, 97);
    assert_eq!(drain_rtp(&mut egress), [(0xabc, 600, 9_007), (SSRC, 500, 9_000)]);
    assert_eq!(h.fwd.counters().drop_rebase_pending, 0);
}

#[test]
fn switch_to_missing_stream_or_subscription_changes_nothing() {
    let mut h = Harness::new();
    two_streams(&mut h);
    h.sub(1, 1, "127.0.0.21:7001", Rewrite::default()).unwrap();
    // A stream on another worker is not in this table either.
    assert_eq!(h.switch(0, 1, 9), Err(CommandError::StreamNotFound { id: StreamId(9) }));
    assert_eq!(h.switch(0, 4, 2), Err(CommandError::SubscriptionNotFound { id: SubscriptionId(4) }));
    assert_eq!(h.fwd.counters().commands_failed, 2);
    let mut egress = Recorder::new();
    assert_eq!(h.send(0, publisher(), &rtp(SSRC, 1, 1, b"a"), &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(h.send(0, publisher(), &rtp(SSRC_B, 1, 1, b"b"), &mut egress), Outcome::Consumed);
}

#[test]
fn switch_to_the_same_stream_is_a_no_op() {
    let mut h = Harness::new();
    two_streams(&mut h);
    h.sub(1, 1, "127.0.0.21:7001", Rewrite::default()).unwrap();
    let mut egress = Recorder::new();
    h.send(0, publisher(), &rtp(SSRC, 10, 100, b"a"), &mut egress);
    assert_eq!(h.switch(5, 1, 1), Ok(()));
    assert_eq!(h.fwd.counters().commands_applied, 4);
    // No rebase: a gap in the publisher's numbering stays a gap, RTCP flows, the SSRC is not pinned.
    h.send(1_000, publisher(), &rtp(SSRC, 20, 5_000, b"a"), &mut egress);
    assert_eq!(drain_rtp(&mut egress), [(SSRC, 10, 100), (SSRC, 20, 5_000)]);
    assert_eq!(h.send(1_001, publisher(), &sender_report(SSRC, 1), &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(sr_fields(&egress.sent()[0].bytes), (SSRC, 1));
}

#[test]
fn per_stream_limit_applies_to_the_new_stream() {
    let mut h = Harness::new();
    two_streams(&mut h);
    h.sub(1, 1, "127.0.0.21:7001", Rewrite::default()).unwrap();
    for i in 2..6 {
        h.sub(i, 2, &format!("127.0.0.22:{}", 7000 + i), Rewrite::default()).unwrap();
    }
    assert_eq!(h.switch(0, 1, 2), Err(CommandError::LimitReached { limit: "max_subscriptions_per_stream", value: 4 }));
    let mut egress = Recorder::new();
    assert_eq!(h.send(0, publisher(), &rtp(SSRC, 1, 1, b"a"), &mut egress), Outcome::Forwarded { copies: 1 });
    // With room made on stream 2, the switch goes through.
    h.fwd.apply(h.start, Command::RemoveSubscription { id: SubscriptionId(5) }).unwrap();
    h.switch(0, 1, 2).unwrap();
    assert_eq!(h.send(0, publisher(), &rtp(SSRC_B, 1, 1, b"b"), &mut egress), Outcome::Forwarded { copies: 4 });
}

#[test]
fn removing_either_stream_after_a_switch() {
    let mut h = Harness::new();
    two_streams(&mut h);
    h.sub(1, 1, "127.0.0.21:7001", Rewrite::default()).unwrap();
    h.switch(0, 1, 2).unwrap();
    // The old stream goes alone; the subscription stays with the new one.
    h.fwd.apply(h.start, Command::RemoveStream { id: StreamId(1) }).unwrap();
    assert_eq!(h.fwd.subscription_count(), 1);
    let mut egress = Recorder::new();
    assert_eq!(h.send(0, publisher(), &rtp(SSRC_B, 1, 1, b"b"), &mut egress), Outcome::Forwarded { copies: 1 });
    // The new stream takes the subscription with it.
    h.fwd.apply(h.start, Command::RemoveStream { id: StreamId(2) }).unwrap();
    assert_eq!(h.fwd.subscription_count(), 0);
    assert_eq!(h.fwd.counters().subscriptions, 0);
}

#[test]
fn paused_back_and_forth_switch_rebases_on_the_first_forwarded_packet() {
    let mut h = Harness::new();
    two_streams(&mut h);
    h.sub(1, 1, "127.0.0.21:7001", Rewrite::default()).unwrap();
    let mut egress = Recorder::new();
    h.send(0, publisher(), &rtp(SSRC, 100, 10_000, b"a"), &mut egress);
    let pause = |h: &mut Harness, paused| {
        let cmd = Command::SetPaused { id: SubscriptionId(1), paused };
        h.fwd.apply(h.start, cmd).unwrap();
    };
    pause(&mut h, true);
    h.switch(10, 1, 2).unwrap();
    h.switch(20, 1, 1).unwrap(); // back to stream 1 before stream 2 sent anything
    assert_eq!(h.send(500, publisher(), &rtp(SSRC, 7_000, 1, b"a"), &mut egress), Outcome::Consumed, "still paused");
    pause(&mut h, false);
    // Rebased on stream 1 again: 1 s after the last send, at 90 kHz.
    h.send(1_000, publisher(), &rtp(SSRC, 7_001, 2, b"a"), &mut egress);
    assert_eq!(drain_rtp(&mut egress), [(SSRC, 100, 10_000), (SSRC, 101, 100_000)]);
}

/// Media SSRC of the PLI of every compound (RR + SDES + PLI) recorded to `dest`; clears the recorder.
fn drain_plis(egress: &mut Recorder, dest: SocketAddr) -> Vec<u32> {
    egress
        .sent()
        .drain(..)
        .filter(|sent| sent.dest == dest)
        .map(|sent| {
            let decoded = rtcp::packet::unmarshal(&mut &sent.bytes[..]).expect("valid rtcp out");
            assert_eq!(decoded.len(), 3, "RR + SDES CNAME + PLI");
            let pli = decoded[2]
                .as_any()
                .downcast_ref::<rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>()
                .expect("a PLI");
            pli.media_ssrc
        })
        .collect()
}

#[test]
fn a_keyframe_request_reaches_the_publisher_through_the_throttle() {
    use crate::core::interceptor::spec::{IngressSpec, KeyframeThrottleParams};
    let mut h = Harness::new();
    let throttled = IngressSpec {
        keyframe_throttle: Some(KeyframeThrottleParams { min_interval_ms: 500 }),
        ..IngressSpec::default()
    };
    let add = Command::AddStream {
        id: StreamId(1),
        ssrc: SSRC,
        source: SourcePolicy::Fixed(publisher()),
        clock_rate_hz: 90_000,
        ingress: throttled,
    };
    h.fwd.apply(h.start, add).unwrap();
    h.stream(2, SSRC_B, SourcePolicy::Fixed(publisher()));
    h.sub(1, 1, "127.0.0.21:7001", Rewrite::default()).unwrap();
    h.sub(2, 1, "127.0.0.22:7002", Rewrite::default()).unwrap();
    h.sub(3, 2, "127.0.0.23:7003", Rewrite::default()).unwrap();
    let mut egress = Recorder::new();
    let request =
        |h: &mut Harness, ms: u64, id: u64| h.fwd.apply(h.at(ms), Command::RequestKeyframe { id: SubscriptionId(id) });

    request(&mut h, 10, 1).unwrap();
    assert!(h.fwd.next_timer().is_some_and(|at| at <= h.at(10)), "the outbox is drained by the next sweep");
    h.fwd.on_timers(h.at(10), &mut egress);
    assert_eq!(drain_plis(&mut egress, publisher()), [SSRC], "at once");
    // A second subscriber's request within the interval is merged: one PLI when the interval ends.
    request(&mut h, 20, 2).unwrap();
    h.fwd.on_timers(h.at(20), &mut egress);
    assert!(egress.sent().is_empty());
    h.fwd.on_timers(h.at(510), &mut egress);
    assert_eq!(drain_plis(&mut egress, publisher()), [SSRC], "when the interval ends");
    // Without a throttle the PLI goes straight on.
    request(&mut h, 520, 3).unwrap();
    h.fwd.on_timers(h.at(520), &mut egress);
    assert_eq!(drain_plis(&mut egress, publisher()), [SSRC_B]);
    assert_eq!(h.fwd.counters().keyframe_requests, 3);

    // Paused: nothing is asked; unknown: an error.
    h.fwd.apply(h.at(530), Command::SetPaused { id: SubscriptionId(3), paused: true }).unwrap();
    request(&mut h, 530, 3).unwrap();
    h.fwd.on_timers(h.at(2_000), &mut egress);
    assert!(egress.sent().is_empty());
    assert_eq!(request(&mut h, 540, 9), Err(CommandError::SubscriptionNotFound { id: SubscriptionId(9) }));
}

#[test]
fn a_new_ssrc_of_the_same_stream_continues_for_its_subscribers() {
    const SSRC_NEW: u32 = 0x0000_4000; // owned by worker 0 of 2, like SSRC
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    h.sub(1, 1, "127.0.0.21:7001", Rewrite::default()).unwrap();
    let mut egress = Recorder::new();
    for k in 0..3u16 {
        h.send(20 * u64::from(k), publisher(), &rtp(SSRC, 100 + k, 9_000 + 1_800 * u32::from(k), b"a"), &mut egress);
    }
    let before = drain_rtp(&mut egress);
    assert_eq!(before[2], (SSRC, 102, 9_000 + 3_600));

    let change = |h: &mut Harness, ms, ssrc| h.fwd.apply(h.at(ms), Command::ChangeStreamSsrc { id: StreamId(1), ssrc });
    change(&mut h, 50, SSRC_NEW).expect("change");
    // The old SSRC is no longer this stream's; the new one continues the subscriber's numbering (60 ms after the
    // last packet sent: 5 400 ticks at 90 kHz), with the SSRC it saw so far.
    let old = rtp(SSRC, 103, 9_000 + 5_400, b"a");
    assert_eq!(h.send(55, publisher(), &old, &mut egress), Outcome::Dropped(DropReason::UnknownSsrc));
    for k in 0..3u16 {
        let pkt = rtp(SSRC_NEW, 7_000 + k, 500_000 + 1_800 * u32::from(k), b"b");
        assert_eq!(h.send(100 + 20 * u64::from(k), publisher(), &pkt, &mut egress), Outcome::Forwarded { copies: 1 });
    }
    let after = drain_rtp(&mut egress);
    assert_eq!(after[0], (SSRC, 103, 9_000 + 3_600 + 5_400), "continuous");
    assert_eq!(after[2], (SSRC, 105, 9_000 + 3_600 + 5_400 + 3_600));

    // Another stream from the same source holds the SSRC: refused, nothing changed.
    h.stream(2, 0x0000_5000, SourcePolicy::Fixed(publisher()));
    let taken = change(&mut h, 200, 0x0000_5000);
    assert_eq!(taken, Err(CommandError::SsrcInUse { ssrc: 0x0000_5000, source_addr: Some(publisher()) }));
    let pkt = rtp(SSRC_NEW, 7_003, 500_000 + 5_400, b"b");
    assert_eq!(h.send(210, publisher(), &pkt, &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(change(&mut h, 220, SSRC_NEW), Ok(()), "the same SSRC: nothing to do");
    assert_eq!(
        h.fwd.apply(h.at(230), Command::ChangeStreamSsrc { id: StreamId(9), ssrc: 1 }),
        Err(CommandError::StreamNotFound { id: StreamId(9) })
    );
}

#[test]
fn a_subscription_added_to_continue_numbering_rebases_on_its_first_packet_and_publishes_it() {
    let mut h = Harness::new();
    two_streams(&mut h);
    // What the subscriber saw last before a restart: seq 65530, ts 7000, 100 ms before the subscription's start.
    let continues = Numbering { seq: 65_530, ts: 7_000, at: h.start - Duration::from_millis(100) };
    let cmd = Command::AddSubscription {
        id: SubscriptionId(1),
        stream: StreamId(1),
        dest: addr("127.0.0.21:7001"),
        socket: 1,
        rewrite: Rewrite { seq_offset: 9, ..Rewrite::default() },
        paused: false,
        egress: Default::default(),
        continues: Some(continues),
    };
    h.fwd.apply(h.start, cmd).unwrap();
    let mut published = Vec::new();
    h.fwd.for_each_numbering(|id, n, offsets| published.push((id, n.seq, n.ts, offsets)));
    assert_eq!(published, [(SubscriptionId(1), 65_530, 7_000, None)], "what its next packet continues from");
    let mut egress = Recorder::new();
    // The publisher numbers far away; its first packet comes 20 ms after the start: 120 ms x 90 kHz later.
    for k in 0..3u16 {
        let pkt = rtp(SSRC, 1_000 + k, 50_000 + 1_800 * u32::from(k), b"a");
        h.send(20 + 20 * u64::from(k), publisher(), &pkt, &mut egress);
    }
    let expected: Vec<_> =
        (0..3u16).map(|k| (SSRC, 65_531u16.wrapping_add(k), 7_000 + 10_800 + 1_800 * u32::from(k))).collect();
    assert_eq!(drain_rtp(&mut egress), expected, "seq + 1, + 2, ...; ts advanced by the time since");
    let mut published = Vec::new();
    h.fwd.for_each_numbering(|id, n, offsets| published.push((id, n.seq, offsets)));
    // 1000 + offset = 65531: offset 64531; 50000 + offset = 17800 (wrapping).
    let offsets = (64_531, 17_800u32.wrapping_sub(50_000));
    assert_eq!(published, [(SubscriptionId(1), 65_533, Some(offsets))], "the last one sent, and the rebased offsets");
}
