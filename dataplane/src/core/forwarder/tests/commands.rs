//! Commands: validation, limits and gauges.

use super::*;

#[test]
fn every_limit_is_named_when_reached() {
    let mut h = Harness::new();
    for i in 0..4 {
        h.stream(i, 0x100 + i as u32 * 2, SourcePolicy::Fixed(publisher()));
    }
    let err = h.fwd.apply(
        h.start,
        Command::AddStream {
            id: StreamId(99),
            ssrc: 0x900,
            source: SourcePolicy::Fixed(publisher()),
            clock_rate_hz: 90_000,
            ingress: Default::default(),
        },
    );
    assert_eq!(err, Err(CommandError::LimitReached { limit: "max_streams", value: 4 }));
    for i in 0..4 {
        h.sub(i, 0, &format!("127.0.0.1:{}", 7000 + i), Rewrite::default()).expect("sub");
    }
    assert_eq!(
        h.sub(4, 0, "127.0.0.1:7100", Rewrite::default()),
        Err(CommandError::LimitReached { limit: "max_subscriptions_per_stream", value: 4 })
    );
    h.sub(4, 1, "127.0.0.1:7101", Rewrite::default()).expect("sub");
    h.sub(5, 1, "127.0.0.1:7102", Rewrite::default()).expect("sub");
    assert_eq!(
        h.sub(6, 2, "127.0.0.1:7103", Rewrite::default()),
        Err(CommandError::LimitReached { limit: "max_subscriptions", value: 6 })
    );
    let c = h.fwd.counters();
    assert_eq!((c.commands_applied, c.commands_failed, c.streams, c.subscriptions), (10, 3, 4, 6));
    // Removing a stream removes its subscriptions and frees room.
    h.fwd.apply(h.start, Command::RemoveStream { id: StreamId(0) }).expect("remove");
    assert_eq!((h.fwd.stream_count(), h.fwd.subscription_count()), (3, 2));
    assert_eq!((h.fwd.counters().streams, h.fwd.counters().subscriptions), (3, 2));
    assert_eq!(
        h.fwd.apply(h.start, Command::RemoveSubscription { id: SubscriptionId(0) }),
        Err(CommandError::SubscriptionNotFound { id: SubscriptionId(0) })
    );
    h.sub(6, 2, "127.0.0.1:7103", Rewrite::default()).expect("room again");
}

#[test]
fn commands_are_validated() {
    let mut h = Harness::new();
    let fixed = SourcePolicy::Fixed(publisher());
    h.stream(1, SSRC, fixed);
    let latch = SourcePolicy::Latch { window: Duration::from_secs(1), fallback: None };
    let apply = |h: &mut Harness, cmd| h.fwd.apply(h.start, cmd);
    assert_eq!(
        apply(
            &mut h,
            Command::AddStream {
                id: StreamId(1),
                ssrc: 2,
                source: fixed,
                clock_rate_hz: 90_000,
                ingress: Default::default()
            }
        ),
        Err(CommandError::StreamExists { id: StreamId(1) })
    );
    assert_eq!(
        apply(
            &mut h,
            Command::AddStream {
                id: StreamId(2),
                ssrc: SSRC,
                source: fixed,
                clock_rate_hz: 90_000,
                ingress: Default::default()
            }
        ),
        Err(CommandError::SsrcInUse { ssrc: SSRC, source_addr: Some(publisher()) })
    );
    // Same SSRC from another address, or waiting to latch, is a different stream.
    apply(
        &mut h,
        Command::AddStream {
            id: StreamId(2),
            ssrc: SSRC,
            source: SourcePolicy::Fixed(addr("127.0.0.1:5009")),
            clock_rate_hz: 90_000,
            ingress: Default::default(),
        },
    )
    .unwrap();
    apply(
        &mut h,
        Command::AddStream {
            id: StreamId(3),
            ssrc: SSRC,
            source: latch,
            clock_rate_hz: 90_000,
            ingress: Default::default(),
        },
    )
    .unwrap();
    assert_eq!(
        apply(
            &mut h,
            Command::AddStream {
                id: StreamId(4),
                ssrc: SSRC,
                source: latch,
                clock_rate_hz: 90_000,
                ingress: Default::default()
            }
        ),
        Err(CommandError::SsrcInUse { ssrc: SSRC, source_addr: None })
    );
    assert_eq!(
        apply(&mut h, Command::RemoveStream { id: StreamId(7) }),
        Err(CommandError::StreamNotFound { id: StreamId(7) })
    );
    assert_eq!(h.sub(1, 7, "127.0.0.1:1", Rewrite::default()), Err(CommandError::StreamNotFound { id: StreamId(7) }));
    h.sub(1, 1, "127.0.0.1:1", Rewrite::default()).unwrap();
    assert_eq!(
        h.sub(1, 1, "127.0.0.1:2", Rewrite::default()),
        Err(CommandError::SubscriptionExists { id: SubscriptionId(1) })
    );
    assert_eq!(
        h.sub(2, 1, "127.0.0.1:2", rewrite(1, 0, 0, 128)),
        Err(CommandError::PayloadTypeOutOfRange { from: 96, to: 128 })
    );
    assert_eq!(
        apply(&mut h, Command::SetPaused { id: SubscriptionId(5), paused: true }),
        Err(CommandError::SubscriptionNotFound { id: SubscriptionId(5) })
    );
    assert_eq!(h.fwd.subscription_count(), 1);
    // The stream from 127.0.0.1:5009 wins over the latching one for that source.
    let mut egress = Recorder::new();
    let pkt = rtp(SSRC, 1, 1, b"x");
    assert_eq!(h.send(0, addr("127.0.0.1:5009"), &pkt, &mut egress), Outcome::Consumed);
    assert_eq!(h.fwd.counters().latched, 0);
}

#[test]
fn clock_rate_is_validated() {
    let mut h = Harness::new();
    let add = |h: &mut Harness, id, clock_rate_hz| {
        let cmd = Command::AddStream {
            id: StreamId(id),
            ssrc: 0x100 + 2 * id as u32,
            source: SourcePolicy::Fixed(publisher()),
            clock_rate_hz,
            ingress: Default::default(),
        };
        h.fwd.apply(h.start, cmd)
    };
    for bad in [0, 1_000_001, u32::MAX] {
        assert_eq!(add(&mut h, 1, bad), Err(CommandError::ClockRateOutOfRange { id: StreamId(1), clock_rate_hz: bad }));
    }
    assert_eq!(h.fwd.stream_count(), 0);
    add(&mut h, 1, 1).unwrap();
    add(&mut h, 2, 1_000_000).unwrap();
    assert_eq!(h.fwd.stream_count(), 2);
}

#[test]
fn a_reconfiguration_applies_between_two_packets_or_not_at_all() {
    use crate::core::interceptor::spec::{EgressSpec, StatsParams};
    use crate::core::IDENTITY_PAYLOAD_TYPE_MAP;
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    h.sub(1, 1, "127.0.0.21:7001", Rewrite::default()).unwrap();
    let mut egress = Recorder::new();
    let mut payload_type_out = |h: &mut Harness, seq: u16| {
        h.send(u64::from(seq), publisher(), &rtp(SSRC, seq, 0, b"x"), &mut egress);
        let sent = egress.sent().pop().expect("one copy");
        parse(&sent.bytes).header.payload_type
    };
    assert_eq!(payload_type_out(&mut h, 1), 96);

    let mut map = IDENTITY_PAYLOAD_TYPE_MAP;
    map[96] = 100;
    let stats = EgressSpec { stats: Some(StatsParams { bitrate_window_ms: 1000 }), ..EgressSpec::default() };
    let reconfigure =
        |payload_type_map, egress| Command::ReconfigureSubscription { id: SubscriptionId(1), payload_type_map, egress };
    h.fwd.apply(h.at(5), reconfigure(map, stats)).unwrap();
    assert_eq!(payload_type_out(&mut h, 2), 100, "the very next packet");

    let mut bad = map;
    bad[97] = 200;
    let refused = h.fwd.apply(h.at(6), reconfigure(bad, EgressSpec::default()));
    assert_eq!(refused, Err(CommandError::PayloadTypeOutOfRange { from: 97, to: 200 }));
    assert_eq!(payload_type_out(&mut h, 3), 100, "nothing changed");
    let unknown = Command::ReconfigureSubscription { id: SubscriptionId(9), payload_type_map: map, egress: stats };
    assert_eq!(h.fwd.apply(h.at(7), unknown), Err(CommandError::SubscriptionNotFound { id: SubscriptionId(9) }));
    h.fwd.apply(h.at(8), reconfigure(IDENTITY_PAYLOAD_TYPE_MAP, stats)).unwrap();
    assert_eq!(payload_type_out(&mut h, 4), 96);
}
