//! Admission: which datagrams reach a stream (sources, latching, handover, malformed input).

use super::*;

#[test]
fn unknown_ssrc_and_wrong_source_forward_nothing() {
    let mut h = Harness::new();
    fixed_stream_with_subs(&mut h, 1);
    let mut egress = Recorder::new();
    let unknown = rtp(0x2000, 1, 1, b"u"); // even: owned here
    assert_eq!(h.send(0, publisher(), &unknown, &mut egress), Outcome::Dropped(DropReason::UnknownSsrc));
    let known = rtp(SSRC, 1, 1, b"k");
    assert_eq!(h.send(0, addr("127.0.0.1:5001"), &known, &mut egress), Outcome::Dropped(DropReason::WrongSource));
    assert_eq!(h.send(0, addr("127.0.0.2:5000"), &known, &mut egress), Outcome::Dropped(DropReason::WrongSource));
    assert!(egress.sent().is_empty());
    let c = h.fwd.counters();
    assert_eq!((c.drop_unknown_ssrc, c.drop_wrong_source, c.forwarded_packets), (1, 2, 0));
    assert_eq!(c.rx_packets, 3);
}

#[test]
fn latching_locks_to_the_first_rtp_source() {
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Latch { window: Duration::from_secs(10), fallback: None });
    h.sub(1, 1, "127.0.0.20:7000", Rewrite::default()).expect("sub");
    let mut egress = Recorder::new();
    let first = addr("127.0.0.1:5000");
    let second = addr("127.0.0.1:5002");
    // RTCP does not latch.
    let sr = rtcp::packet::marshal(&[Box::new(rtcp::sender_report::SenderReport { ssrc: SSRC, ..Default::default() })
        as Box<dyn rtcp::packet::Packet + Send + Sync>])
    .expect("sr")
    .to_vec();
    assert_eq!(h.send(100, first, &sr, &mut egress), Outcome::Dropped(DropReason::WrongSource));
    let pkt = rtp(SSRC, 1, 1, b"x");
    assert_eq!(h.send(200, first, &pkt, &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(h.fwd.counters().latched, 1);
    assert_eq!(h.send(300, second, &pkt, &mut egress), Outcome::Dropped(DropReason::WrongSource));
    // Now RTCP from the latched source is forwarded, and the lock outlives the window.
    assert_eq!(h.send(400, first, &sr, &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(h.send(60_000, first, &pkt, &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(egress.sent().len(), 3);
    assert_eq!(h.fwd.counters().latched, 1);
}

#[test]
fn latch_window_expiry_without_fallback_drops() {
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Latch { window: Duration::from_secs(10), fallback: None });
    h.sub(1, 1, "127.0.0.20:7000", Rewrite::default()).expect("sub");
    let mut egress = Recorder::new();
    let pkt = rtp(SSRC, 1, 1, b"x");
    assert_eq!(h.send(10_000, publisher(), &pkt, &mut egress), Outcome::Dropped(DropReason::LatchExpired));
    assert_eq!(h.send(20_000, publisher(), &pkt, &mut egress), Outcome::Dropped(DropReason::LatchExpired));
    assert!(egress.sent().is_empty());
    assert_eq!((h.fwd.counters().drop_latch_expired, h.fwd.counters().latched), (2, 0));
}

#[test]
fn latch_window_expiry_accepts_only_the_fallback() {
    let mut h = Harness::new();
    let fallback = addr("127.0.0.1:5004");
    h.stream(1, SSRC, SourcePolicy::Latch { window: Duration::from_secs(10), fallback: Some(fallback) });
    h.sub(1, 1, "127.0.0.20:7000", Rewrite::default()).expect("sub");
    let mut egress = Recorder::new();
    let pkt = rtp(SSRC, 1, 1, b"x");
    assert_eq!(h.send(10_001, publisher(), &pkt, &mut egress), Outcome::Dropped(DropReason::LatchExpired));
    assert_eq!(h.send(10_002, fallback, &pkt, &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(h.fwd.counters().latched, 1);
    // Locked to the fallback now: anyone else is a wrong source.
    assert_eq!(h.send(10_003, publisher(), &pkt, &mut egress), Outcome::Dropped(DropReason::WrongSource));
}

#[test]
fn non_owned_ssrc_is_handed_over() {
    let mut h = Harness::new();
    let mut egress = Recorder::new();
    let pkt = rtp(FOREIGN_SSRC, 1, 1, b"x");
    assert_eq!(h.send(0, publisher(), &pkt, &mut egress), Outcome::Handover { owner: 1 });
    assert_eq!(h.fwd.counters().handover_out, 1);

    // The owner (worker 1) forwards it and counts it as handed in, not as received.
    let mut owner = Forwarder::with_hash_seed(1, 2, limits(), 7);
    owner
        .apply(
            h.start,
            Command::AddStream {
                id: StreamId(9),
                ssrc: FOREIGN_SSRC,
                source: SourcePolicy::Fixed(publisher()),
                clock_rate_hz: 90_000,
                ingress: Default::default(),
            },
        )
        .unwrap();
    let sub = Command::AddSubscription {
        id: SubscriptionId(1),
        stream: StreamId(9),
        dest: addr("127.0.0.30:1"),
        socket: 0,
        rewrite: Rewrite::default(),
        paused: false,
        egress: Default::default(),
        continues: None,
    };
    owner.apply(h.start, sub).unwrap();
    egress.set_current(&pkt);
    assert_eq!(owner.on_handover(h.start, 0, publisher(), &pkt, 1, &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!((owner.counters().handover_in, owner.counters().rx_packets), (1, 0));
    // A handed-over packet the owner does not know is dropped there, never handed over again.
    let mut stranger = Forwarder::with_hash_seed(0, 2, limits(), 7);
    assert_eq!(
        stranger.on_handover(h.start, 0, publisher(), &pkt, 1, &mut egress),
        Outcome::Dropped(DropReason::UnknownSsrc)
    );
}

#[test]
fn oversize_malformed_and_not_rtp_are_counted() {
    let mut h = Harness::new();
    fixed_stream_with_subs(&mut h, 1);
    let mut egress = Recorder::new();
    let mut big = rtp(SSRC, 1, 1, &[0u8; 1489]);
    assert_eq!(big.len(), 1501);
    assert_eq!(h.send(0, publisher(), &big, &mut egress), Outcome::Dropped(DropReason::Oversize));
    big.pop();
    assert_eq!(h.send(0, publisher(), &big, &mut egress), Outcome::Forwarded { copies: 1 });
    let stun = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    assert_eq!(h.send(0, publisher(), &stun, &mut egress), Outcome::Dropped(DropReason::NotRtp));
    assert_eq!(h.send(0, publisher(), &[22, 0xfe, 0xfd], &mut egress), Outcome::Dropped(DropReason::NotRtp));
    assert_eq!(h.send(0, publisher(), &[], &mut egress), Outcome::Dropped(DropReason::NotRtp));
    assert_eq!(h.send(0, publisher(), &[0x80, 96, 0, 1], &mut egress), Outcome::Dropped(DropReason::Malformed));
    assert_eq!(
        h.send(0, publisher(), &[0x80, 200, 0, 9, 0, 0, 0x10, 0], &mut egress),
        Outcome::Dropped(DropReason::Malformed)
    );
    let c = h.fwd.counters();
    assert_eq!((c.drop_oversize, c.drop_not_rtp, c.drop_malformed), (1, 3, 2));
    assert_eq!((c.rx_packets, c.rx_rtp, c.rx_rtcp), (7, 1, 0));
    assert_eq!(egress.sent().len(), 1);
}

#[test]
fn a_source_over_its_packet_rate_loses_only_the_excess() {
    let limits = ForwarderLimits { max_packets_per_second_per_source: 50, ..limits() };
    let mut h = Harness { fwd: Forwarder::with_hash_seed(0, 2, limits, 7), start: Instant::now() };
    fixed_stream_with_subs(&mut h, 1);
    let mut egress = Recorder::new();
    // 200 packets within the first second: the bucket holds 50, plus what refills while they arrive (5 ms apart
    // for the first 100 packets: 0.5 s, 25 more tokens).
    let mut forwarded = 0;
    for seq in 0..200u16 {
        let ms = u64::from(seq.min(100)) * 5;
        if let Outcome::Forwarded { .. } = h.send(ms, publisher(), &rtp(SSRC, seq, 0, b"r"), &mut egress) {
            forwarded += 1;
        }
    }
    assert_eq!(forwarded, 75);
    assert_eq!(h.fwd.counters().drop_rate_limited, 125);
    // A second later the source may send again.
    assert!(matches!(h.send(2_000, publisher(), &rtp(SSRC, 300, 0, b"r"), &mut egress), Outcome::Forwarded { .. }));
}

#[test]
fn a_subscribers_feedback_about_a_rewritten_ssrc_follows_its_route_to_the_subscription() {
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    // Three workers: the stream on 0, its subscription's out SSRC owned by 1, the subscriber's own SSRC
    // (which steers its RTCP) by 2.
    let (stream_ssrc, out_ssrc, subscriber_ssrc) = (0x3000u32, 0x3001u32, 0x3002u32);
    let start = Instant::now();
    let mut workers: Vec<Forwarder> = (0..3).map(|w| Forwarder::with_hash_seed(w, 3, limits(), 7)).collect();
    let subscriber = addr("127.0.0.40:4000");
    let add_stream = Command::AddStream {
        id: StreamId(1),
        ssrc: stream_ssrc,
        source: SourcePolicy::Fixed(publisher()),
        clock_rate_hz: 90_000,
        ingress: Default::default(),
    };
    workers[0].apply(start, add_stream).unwrap();
    let add_sub = Command::AddSubscription {
        id: SubscriptionId(5),
        stream: StreamId(1),
        dest: subscriber,
        socket: 0,
        rewrite: Rewrite { out_ssrc: Some(out_ssrc), ..Rewrite::default() },
        paused: false,
        egress: Default::default(),
        continues: None,
    };
    workers[0].apply(start, add_sub).unwrap();
    let pli = PictureLossIndication { sender_ssrc: subscriber_ssrc, media_ssrc: out_ssrc }.marshal().unwrap();
    let mut egress = Recorder::new();
    egress.set_current(&pli);

    // Steered to worker 2, which hands it to the out SSRC's owner; without a route that is where it ends.
    assert_eq!(workers[2].on_datagram(start, 0, subscriber, &pli, &mut egress), Outcome::Handover { owner: 1 });
    let unrouted = workers[1].on_handover(start, 0, subscriber, &pli, 1, &mut egress);
    assert_eq!(unrouted, Outcome::Dropped(DropReason::UnknownSsrc));

    // A route names another worker that exists (the `forwarder` fuzz target's commands could name any).
    for owner in [1, 3] {
        let misplaced = Command::AddFeedbackRoute { id: SubscriptionId(5), dest: subscriber, out_ssrc, owner };
        let refused = Err(CommandError::MisplacedRoute { id: SubscriptionId(5), out_ssrc, owner, workers: 3 });
        assert_eq!(workers[1].apply(start, misplaced), refused);
    }
    let route = Command::AddFeedbackRoute { id: SubscriptionId(5), dest: subscriber, out_ssrc, owner: 0 };
    workers[1].apply(start, route).unwrap();
    assert_eq!(workers[1].on_handover(start, 0, subscriber, &pli, 1, &mut egress), Outcome::Handover { owner: 0 });
    // Landing on the route's worker directly goes straight there too.
    assert_eq!(workers[1].on_datagram(start, 0, subscriber, &pli, &mut egress), Outcome::Handover { owner: 0 });
    let at_subscription = workers[0].on_handover(start, 0, subscriber, &pli, 1, &mut egress);
    assert!(!matches!(at_subscription, Outcome::Dropped(_) | Outcome::Handover { .. }), "{at_subscription:?}");
    assert_eq!(workers[0].counters().rx_feedback, 1);
    // Another subscriber address is not routed.
    let stranger = addr("127.0.0.41:4000");
    assert_eq!(
        workers[1].on_handover(start, 0, stranger, &pli, 1, &mut egress),
        Outcome::Dropped(DropReason::UnknownSsrc)
    );

    // Only the subscription's own removal takes the route away.
    let other = Command::RemoveFeedbackRoute { id: SubscriptionId(6), dest: subscriber, out_ssrc };
    workers[1].apply(start, other).unwrap();
    assert_eq!(workers[1].on_handover(start, 0, subscriber, &pli, 1, &mut egress), Outcome::Handover { owner: 0 });
    workers[1]
        .apply(start, Command::RemoveFeedbackRoute { id: SubscriptionId(5), dest: subscriber, out_ssrc })
        .unwrap();
    assert_eq!(
        workers[1].on_handover(start, 0, subscriber, &pli, 1, &mut egress),
        Outcome::Dropped(DropReason::UnknownSsrc)
    );
}
