//! Unit tests of endpoints without rtcp-mux: validation shared by create and update, the commands that set a
//! stream's RTCP source and a subscription's RTCP destination, their undo, and port + 1 following a latch.
//!
//! Uses the fixtures of `tests` (the "room" on two workers). Must never use a socket or a clock.

use ringfwd_dataplane::control::Command;

use super::tests::{addr, apply, endpoint, invalid_field, room, stream, subscription};
use super::*;

fn plus_one() -> RtcpSpec {
    RtcpSpec { address: None, port_plus_one: true }
}

#[test]
fn rtcp_fields_are_validated_alike_on_create_and_update() {
    let mut reg = room();
    let both = RtcpSpec { address: Some(addr("127.0.0.1:7001")), port_plus_one: true };
    let cases = [
        (both, "rtcp_port_plus_one"),
        (RtcpSpec { address: Some(addr("127.0.0.1:0")), ..RtcpSpec::default() }, "rtcp_address"),
        (RtcpSpec { address: Some(addr("0.0.0.0:7001")), ..RtcpSpec::default() }, "rtcp_address"),
        (RtcpSpec { address: Some(addr("[::1]:7001")), ..RtcpSpec::default() }, "rtcp_address"),
    ];
    for (rtcp, field) in cases {
        let spec = EndpointSpec { rtcp, ..endpoint("room", "erin", Some("127.0.0.1:7000")) };
        assert_eq!(invalid_field(reg.plan_create_endpoint(spec)), field, "create {rtcp:?}");
        let update = reg.plan_update_endpoint("room", "bob", Some(addr("127.0.0.1:5002")), rtcp);
        assert_eq!(invalid_field(update), field, "update {rtcp:?}");
    }
    let top = EndpointSpec { rtcp: plus_one(), ..endpoint("room", "erin", Some("127.0.0.1:65535")) };
    assert_eq!(invalid_field(reg.plan_create_endpoint(top)), "rtcp_port_plus_one");
    let fine = EndpointSpec { rtcp: plus_one(), ..endpoint("room", "erin", Some("127.0.0.1:7000")) };
    let Outcome::Created(View::Endpoint(view)) = apply(&mut reg, |r| r.plan_create_endpoint(fine.clone())) else {
        panic!("created")
    };
    assert_eq!(view.rtcp_address, Some(addr("127.0.0.1:7001")), "the effective RTCP address");
    assert!(matches!(reg.plan_create_endpoint(fine.clone()).unwrap().outcome, Outcome::Existing(_)));
    let muxed = EndpointSpec { rtcp: RtcpSpec::default(), ..fine };
    assert!(reg.plan_create_endpoint(muxed).is_err(), "the same id with another RTCP address");
}

#[test]
fn streams_and_subscriptions_of_an_unmuxed_endpoint_use_its_rtcp_address() {
    let mut reg = room();
    let erin = EndpointSpec { rtcp: plus_one(), ..endpoint("room", "erin", Some("127.0.0.1:7000")) };
    apply(&mut reg, |r| r.plan_create_endpoint(erin));
    let plan = reg.plan_create_stream(stream("room", "e-audio", "erin", 20)).unwrap();
    let [(w, Command::AddStream { id, .. }), (w2, Command::SetRtcpSource { id: id2, source })] =
        plan.commands.as_slice()
    else {
        panic!("AddStream then SetRtcpSource: {:?}", plan.commands)
    };
    assert_eq!((w, id, *source), (w2, id2, Some(addr("127.0.0.1:7001"))));
    assert_eq!(plan.undo.len(), plan.commands.len());
    apply(&mut reg, |_| Ok(plan));
    let plan = reg.plan_create_subscription(subscription("room", "to-erin", "a-audio", "erin")).unwrap();
    let rtcp_dest: Vec<_> = plan
        .commands
        .iter()
        .filter_map(|(_, c)| matches!(c, Command::SetRtcpDestination { .. }).then_some(c))
        .collect();
    assert!(
        matches!(rtcp_dest.as_slice(), [Command::SetRtcpDestination { dest: Some(d), .. }] if *d == addr("127.0.0.1:7001")),
        "{:?}",
        plan.commands
    );
    assert_eq!(plan.undo.len(), plan.commands.len());
    apply(&mut reg, |_| Ok(plan));
    // Muxed again by an update without RTCP fields: both follow, with their undo.
    let plan = reg.plan_update_endpoint("room", "erin", Some(addr("127.0.0.1:7000")), RtcpSpec::default()).unwrap();
    assert!(plan.commands.iter().any(|(_, c)| matches!(c, Command::SetRtcpSource { source: None, .. })));
    assert!(plan.commands.iter().any(|(_, c)| matches!(c, Command::SetRtcpDestination { dest: None, .. })));
    assert!(plan.undo.iter().any(|(_, c)| matches!(c, Command::SetRtcpSource { source: Some(_), .. })));
    apply(&mut reg, |_| Ok(plan));
    assert_eq!(reg.get_endpoint("room", "erin").unwrap().rtcp_address, None);
}

#[test]
fn port_plus_one_follows_the_latched_address() {
    let mut reg = room();
    let frank = EndpointSpec { latching: true, rtcp: plus_one(), ..endpoint("room", "frank", None) };
    apply(&mut reg, |r| r.plan_create_endpoint(frank));
    let plan = reg.plan_create_stream(stream("room", "f-audio", "frank", 30)).unwrap();
    assert_eq!(plan.commands.len(), 1, "no RTCP address before it latches: {:?}", plan.commands);
    apply(&mut reg, |_| Ok(plan));
    let id = reg.get_stream("room", "f-audio").unwrap().data_plane_id;
    let plan = reg.plan_latch(id, addr("127.0.0.1:9000")).expect("a latch plan");
    let rtcp = Some(addr("127.0.0.1:9001"));
    assert!(
        plan.commands.iter().any(|(_, c)| *c == Command::SetRtcpSource { id, source: rtcp }),
        "{:?}",
        plan.commands
    );
    assert_eq!(plan.undo.len(), plan.commands.len());
}

#[test]
fn a_learned_ssrc_keeps_the_rtcp_addresses_of_unmuxed_peers() {
    use ringfwd_dataplane::control::owner_of;
    // Two SIP user agents without rtcp-mux, each publishing a stream that learns its SSRC, each hearing the other.
    let mut reg = room();
    for (id, address) in [("uac", "127.0.0.1:7000"), ("uas", "127.0.0.1:7100")] {
        apply(&mut reg, |r| {
            r.plan_create_endpoint(EndpointSpec { rtcp: plus_one(), ..endpoint("room", id, Some(address)) })
        });
        let learning = StreamSpec { payload_types: vec![0], ..stream("room", &format!("{id}-audio"), id, 0) };
        apply(&mut reg, |r| r.plan_create_stream(learning));
    }
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "uas-hears", "uac-audio", "uas")));
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "uac-hears", "uas-audio", "uac")));
    let stream = reg.get_stream("room", "uac-audio").unwrap();
    let sub = reg.get_subscription("room", "uas-hears").unwrap().data_plane_id;

    // Adopting the first SSRC binds the stream and its subscription anew, on another worker: their RTCP addresses
    // must be set again, and the undo (newest first) must restore them where they were.
    let ssrc = (100..).find(|&s| owner_of(s, 2) != stream.worker).unwrap();
    let (_, _, plan) = reg.plan_learn(addr("127.0.0.1:7000"), ssrc, 0).expect("learns");
    assert_eq!(plan.commands.len(), plan.undo.len());
    let new = owner_of(ssrc, 2);
    let (id, uac_rtcp, uas_rtcp) = (stream.data_plane_id, addr("127.0.0.1:7001"), addr("127.0.0.1:7101"));
    let position = |command: &Command| plan.commands.iter().position(|(w, c)| *w == new && c == command);
    let added = plan.commands.iter().position(|(w, c)| *w == new && matches!(c, Command::AddStream { .. }));
    let source = position(&Command::SetRtcpSource { id, source: Some(uac_rtcp) });
    assert!(added.is_some() && source > added, "the new stream takes RTCP from port + 1: {:?}", plan.commands);
    let added = plan.commands.iter().position(|(w, c)| *w == new && matches!(c, Command::AddSubscription { .. }));
    let dest = position(&Command::SetRtcpDestination { id: sub, dest: Some(uas_rtcp) });
    assert!(added.is_some() && dest > added, "the new subscription sends RTCP to port + 1: {:?}", plan.commands);
    let rollback = plan.rollback(plan.commands.len());
    let restored = |command: &Command, readded: fn(&Command) -> bool| {
        let at = rollback.iter().position(|(w, c)| *w == stream.worker && c == command);
        let readded = rollback.iter().position(|(w, c)| *w == stream.worker && readded(c));
        readded.is_some() && at > readded
    };
    assert!(restored(&Command::SetRtcpSource { id, source: Some(uac_rtcp) }, |c| matches!(
        c,
        Command::AddStream { .. }
    )));
    assert!(restored(&Command::SetRtcpDestination { id: sub, dest: Some(uas_rtcp) }, |c| {
        matches!(c, Command::AddSubscription { .. })
    }));
}

/// Where the copies the forwarder queued go, in order.
fn destinations(queue: &mut ringfwd_dataplane::core::Transmits) -> Vec<std::net::SocketAddr> {
    use ringfwd_dataplane::core::Transmit;
    let mut dests = Vec::new();
    queue.drain(|transmit| {
        dests.push(match transmit {
            Transmit::Forward { dest, .. } | Transmit::Copy { dest, .. } => dest,
        });
        true
    });
    dests
}

#[test]
fn a_stream_that_adopts_its_ssrc_keeps_the_rtcp_addresses_on_its_new_worker() {
    use ringfwd_dataplane::control::owner_of;
    use ringfwd_dataplane::core::{Forwarder, ForwarderLimits, Outcome as Fate};
    let mut reg = room();
    for (id, port) in [("erin", 7000), ("fred", 7100)] {
        let spec = EndpointSpec { rtcp: plus_one(), ..endpoint("room", id, Some(&format!("127.0.0.1:{port}"))) };
        apply(&mut reg, |r| r.plan_create_endpoint(spec));
    }
    let mut setup = Vec::new();
    let learning = StreamSpec { payload_types: vec![0], ..stream("room", "e-audio", "erin", 0) };
    let plan = reg.plan_create_stream(learning).unwrap();
    setup.extend(plan.commands.clone());
    apply(&mut reg, |_| Ok(plan));
    let plan = reg.plan_create_subscription(subscription("room", "to-fred", "e-audio", "fred")).unwrap();
    setup.extend(plan.commands.clone());
    apply(&mut reg, |_| Ok(plan));
    let before = reg.get_stream("room", "e-audio").unwrap();
    let sub = reg.get_subscription("room", "to-fred").unwrap().data_plane_id;
    let ssrc = (100..).find(|&ssrc| owner_of(ssrc, 2) != before.worker).unwrap();
    let (_, _, plan) = reg.plan_learn(addr("127.0.0.1:7000"), ssrc, 0).expect("adopts");
    let (id, new) = (before.data_plane_id, owner_of(ssrc, 2));
    let source = Command::SetRtcpSource { id, source: Some(addr("127.0.0.1:7001")) };
    let dest = Command::SetRtcpDestination { id: sub, dest: Some(addr("127.0.0.1:7101")) };
    assert!(plan.commands.contains(&(new, source)), "{:?}", plan.commands);
    assert!(plan.commands.contains(&(new, dest)), "{:?}", plan.commands);
    assert_eq!(plan.undo.len(), plan.commands.len());

    // On real workers: every command applies, and a rollback after any of them leaves them as they were.
    let limits = ForwarderLimits {
        max_streams: 8,
        max_subscriptions: 8,
        max_subscriptions_per_stream: 8,
        max_packet_bytes: 1500,
        max_packets_per_second_per_source: 0,
    };
    let now = std::time::Instant::now();
    let workers = || -> Vec<Forwarder> {
        let mut workers: Vec<Forwarder> = (0..2).map(|w| Forwarder::with_hash_seed(w, 2, limits, 1)).collect();
        for (worker, command) in &setup {
            workers[*worker].apply(now, command.clone()).expect("setup");
        }
        workers
    };
    for failed_at in 0..plan.commands.len() {
        let mut workers = workers();
        for (worker, command) in &plan.commands[..failed_at] {
            workers[*worker].apply(now, command.clone()).unwrap_or_else(|e| panic!("{command:?}: {e}"));
        }
        for (worker, command) in plan.rollback(failed_at) {
            workers[worker].apply(now, command.clone()).unwrap_or_else(|e| panic!("undo {command:?}: {e}"));
        }
        let counts: Vec<_> = workers.iter().map(|w| (w.stream_count(), w.subscription_count())).collect();
        assert_eq!((counts[before.worker], counts[new]), ((1, 1), (0, 0)), "rolled back after {failed_at}");
    }
    // Applied: the publisher's SR from its RTCP address is its stream's, the subscriber's PLI from its RTCP address
    // is recognised as its feedback and goes on to the publisher's RTCP address.
    let mut workers = workers();
    for (worker, command) in &plan.commands {
        workers[*worker].apply(now, command.clone()).unwrap_or_else(|e| panic!("{command:?}: {e}"));
    }
    let mut sr = vec![0x80, 200, 0, 6];
    sr.extend_from_slice(&ssrc.to_be_bytes());
    sr.extend_from_slice(&[0; 20]);
    let mut queue = ringfwd_dataplane::core::Transmits::with_capacity(8, 8, 8 * 1500);
    let fate = workers[new].on_datagram(now, 0, addr("127.0.0.1:7001"), &sr, &mut queue);
    assert!(!matches!(fate, Fate::Dropped(_)), "{fate:?}");
    let mut pli = vec![0x81, 206, 0, 2, 0, 0, 0xbe, 0xef];
    pli.extend_from_slice(&ssrc.to_be_bytes());
    destinations(&mut queue);
    let fate = workers[new].on_datagram(now, 0, addr("127.0.0.1:7101"), &pli, &mut queue);
    assert!(!matches!(fate, Fate::Dropped(_)), "{fate:?}");
    assert_eq!((workers[new].counters().rx_feedback, destinations(&mut queue)), (1, vec![addr("127.0.0.1:7001")]));
}
