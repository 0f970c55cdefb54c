//! Fan-out: one copy per active subscription, each with its own rewrite (RTP and RTCP).

use super::*;

#[test]
fn forwards_to_each_subscription_with_its_rewrite() {
    let mut h = Harness::new();
    fixed_stream_with_subs(&mut h, 3);
    let pkt = rtp(SSRC, 65_500, 1000, b"hello media");
    let mut egress = Recorder::new();
    assert_eq!(h.send(0, publisher(), &pkt, &mut egress), Outcome::Forwarded { copies: 3 });
    assert_eq!(egress.sent().len(), 3);
    for (i, sent) in egress.sent().iter().enumerate() {
        let n = i as u64 + 1;
        let out = parse(&sent.bytes);
        assert_eq!(sent.dest, addr(&format!("127.0.0.{}:{}", 10 + n, 6000 + n)));
        assert_eq!(sent.socket, n as usize % 2);
        assert!(sent.forwarded);
        assert_eq!(out.header.ssrc, 0xa000 + n as u32);
        assert_eq!(out.header.sequence_number, 65_500u16.wrapping_add(n as u16 * 100));
        assert_eq!(out.header.timestamp, 1000);
        assert_eq!(out.header.payload_type, 96 + n as u8);
        assert!(out.header.marker);
        assert_eq!(&out.payload[..], b"hello media");
        assert_eq!(
            h.fwd.last_out(SubscriptionId(n)),
            Some((SeqNo(65_500u16.wrapping_add(n as u16 * 100)), RtpTimestamp(1000)))
        );
    }
    let c = h.fwd.counters();
    assert_eq!((c.rx_packets, c.rx_rtp, c.forwarded_packets), (1, 1, 3));
    assert_eq!(c.rx_bytes, pkt.len() as u64);
    assert_eq!(c.forwarded_bytes, 3 * pkt.len() as u64);
}

#[test]
fn paused_and_removed_subscriptions_get_nothing() {
    let mut h = Harness::new();
    fixed_stream_with_subs(&mut h, 3);
    let pkt = rtp(SSRC, 1, 1, b"p");
    let mut egress = Recorder::new();
    h.fwd.apply(h.start, Command::SetPaused { id: SubscriptionId(2), paused: true }).expect("pause");
    assert_eq!(h.send(0, publisher(), &pkt, &mut egress), Outcome::Forwarded { copies: 2 });
    let dests: Vec<_> = egress.sent().drain(..).map(|s| s.dest).collect();
    assert_eq!(dests, [addr("127.0.0.11:6001"), addr("127.0.0.13:6003")]);

    h.fwd.apply(h.start, Command::RemoveSubscription { id: SubscriptionId(3) }).expect("remove");
    assert_eq!(h.send(1, publisher(), &pkt, &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(egress.sent().drain(..).map(|s| s.dest).collect::<Vec<_>>(), [addr("127.0.0.11:6001")]);

    h.fwd.apply(h.start, Command::SetPaused { id: SubscriptionId(1), paused: true }).expect("pause");
    assert_eq!(h.send(2, publisher(), &pkt, &mut egress), Outcome::Consumed);
    assert!(egress.sent().is_empty());
    assert_eq!(h.fwd.counters().consumed_no_subscriber, 1);

    h.fwd.apply(h.start, Command::SetPaused { id: SubscriptionId(2), paused: false }).expect("resume");
    assert_eq!(h.send(3, publisher(), &pkt, &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(egress.sent()[0].dest, addr("127.0.0.12:6002"));
    assert_eq!(h.fwd.subscription_count(), 2);
}

#[test]
fn rtcp_sender_report_is_rewritten_per_subscriber() {
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    h.sub(1, 1, "127.0.0.21:7001", rewrite(0xaaaa, 0, 100, 96)).unwrap();
    h.sub(2, 1, "127.0.0.22:7002", Rewrite::default()).unwrap();
    h.sub(3, 1, "127.0.0.23:7003", rewrite(0xcccc, 5, u32::MAX, 96)).unwrap();
    let packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> = vec![
        Box::new(rtcp::sender_report::SenderReport { ssrc: SSRC, rtp_time: 50, packet_count: 7, ..Default::default() }),
        Box::new(rtcp::goodbye::Goodbye { sources: vec![SSRC], reason: Bytes::new() }),
    ];
    let pkt = rtcp::packet::marshal(&packets).unwrap().to_vec();
    let mut egress = Recorder::new();
    assert_eq!(h.send(0, publisher(), &pkt, &mut egress), Outcome::Forwarded { copies: 3 });
    let expected = [(0xaaaa, 150), (SSRC, 50), (0xcccc, 49)];
    for (sent, (ssrc, rtp_time)) in egress.sent().iter().zip(expected) {
        assert!(!sent.forwarded);
        assert_eq!(sent.bytes.len(), pkt.len());
        let decoded = rtcp::packet::unmarshal(&mut &sent.bytes[..]).expect("valid rtcp out");
        let sr = decoded[0].as_any().downcast_ref::<rtcp::sender_report::SenderReport>().expect("sr");
        assert_eq!((sr.ssrc, sr.rtp_time, sr.packet_count), (ssrc, rtp_time, 7));
        let bye = decoded[1].as_any().downcast_ref::<rtcp::goodbye::Goodbye>().expect("bye");
        assert_eq!(bye.sources, [ssrc]);
    }
    assert_eq!(egress.sent()[1].bytes, pkt);
    assert_eq!(h.fwd.counters().rx_rtcp, 1);
}

#[test]
fn refused_copies_count_as_tx_full() {
    let mut h = Harness::new();
    fixed_stream_with_subs(&mut h, 2);
    let pkt = rtp(SSRC, 1, 1, b"x");
    let mut egress = Recorder::new();
    egress.refuse = true;
    assert_eq!(h.send(0, publisher(), &pkt, &mut egress), Outcome::CopiesDropped(DropReason::TxFull));
    let c = h.fwd.counters();
    assert_eq!((c.drop_tx_full, c.forwarded_packets), (2, 0));
}

#[test]
fn last_out_follows_the_rewritten_header_across_wrap() {
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    h.sub(1, 1, "127.0.0.21:7001", rewrite(1, 10, 20, 96)).unwrap();
    assert_eq!(h.fwd.last_out(SubscriptionId(1)), None);
    let mut egress = Recorder::new();
    for (seq, ts) in [(65_524u16, u32::MAX - 19), (65_525, u32::MAX - 10)] {
        let pkt = rtp(SSRC, seq, ts, b"x");
        h.send(0, publisher(), &pkt, &mut egress);
    }
    assert_eq!(h.fwd.last_out(SubscriptionId(1)), Some((SeqNo(65_535), RtpTimestamp(9))));
    let pkt = rtp(SSRC, 65_526, u32::MAX, b"x");
    h.send(0, publisher(), &pkt, &mut egress);
    assert_eq!(h.fwd.last_out(SubscriptionId(1)), Some((SeqNo(0), RtpTimestamp(19))));
    assert_eq!(h.fwd.last_out(SubscriptionId(2)), None);
}
