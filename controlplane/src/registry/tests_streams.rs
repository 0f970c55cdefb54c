//! Unit tests of streams: placement, source policy, validation, idempotency, SSRC uniqueness, limits
//! and data-plane ids.
//!
//! Uses the fixtures of `tests`. Must never use a socket or a clock.

use ringfwd_dataplane::control::{owner_of, Command, SourcePolicy, StreamId};

use super::tests::{addr, apply, endpoint, exhausted, invalid_field, limits, room, stream};
use super::*;

#[test]
fn a_stream_goes_to_its_ssrc_owner_with_its_source_policy() {
    let mut reg = room();
    let plan = reg.plan_create_stream(stream("room", "c-audio", "carol", 7)).unwrap();
    let worker = owner_of(7, 2);
    let [(w, Command::AddStream { id, ssrc: 7, source, clock_rate_hz: 48_000, .. })] = plan.commands.as_slice() else {
        panic!("{:?}", plan.commands)
    };
    assert_eq!((*w, *source), (worker, SourcePolicy::Fixed(addr("[::1]:5004"))));
    assert_eq!(plan.undo, vec![(worker, Command::RemoveStream { id: *id })]);
    let Outcome::Created(View::Stream(view)) = apply(&mut reg, |_| Ok(plan.clone())) else { panic!() };
    assert_eq!((view.worker, view.data_plane_id, view.ssrc), (worker, *id, 7));
    assert_eq!(reg.get_stream("room", "c-audio").unwrap(), view);

    let plan = reg.plan_create_stream(stream("room", "d-audio", "dave", 8)).unwrap();
    let Command::AddStream { source, .. } = &plan.commands[0].1 else { panic!() };
    let window = limits().latch_window;
    assert_eq!(*source, SourcePolicy::Latch { window, fallback: None });
    apply(&mut reg, |r| {
        r.plan_create_endpoint(EndpointSpec { latching: true, ..endpoint("room", "erin", Some("127.0.0.1:6000")) })
    });
    let plan = reg.plan_create_stream(stream("room", "e-audio", "erin", 9)).unwrap();
    let Command::AddStream { source, .. } = &plan.commands[0].1 else { panic!() };
    assert_eq!(*source, SourcePolicy::Latch { window, fallback: Some(addr("127.0.0.1:6000")) });
}

#[test]
fn stream_fields_are_validated() {
    let reg = room();
    let spec = stream("room", "x", "carol", 7);
    assert_eq!(invalid_field(reg.plan_create_stream(StreamSpec { kind: None, ..spec.clone() })), "kind");
    for rate in [0, 1_000_001] {
        let bad = StreamSpec { clock_rate_hz: rate, ..spec.clone() };
        assert_eq!(invalid_field(reg.plan_create_stream(bad)), "clock_rate_hz");
    }
    assert!(reg.plan_create_stream(StreamSpec { clock_rate_hz: 1_000_000, ..spec.clone() }).is_ok());
    let bad = StreamSpec { payload_types: vec![96, 128], ..spec.clone() };
    assert_eq!(invalid_field(reg.plan_create_stream(bad)), "payload_types[1]");
    let bad = StreamSpec { payload_types: vec![96, 97, 96], ..spec.clone() };
    assert_eq!(invalid_field(reg.plan_create_stream(bad)), "payload_types[2]");
    assert_eq!(invalid_field(reg.plan_create_stream(StreamSpec { stream_id: "".into(), ..spec.clone() })), "stream_id");
    let bad = StreamSpec { endpoint_id: "?".into(), ..spec.clone() };
    assert_eq!(invalid_field(reg.plan_create_stream(bad)), "endpoint_id");
    let missing = StreamSpec { endpoint_id: "zed".into(), ..spec };
    assert_eq!(
        reg.plan_create_stream(missing).unwrap_err(),
        RegistryError::NotFound { kind: "endpoint", id: "zed".into() }
    );
}

#[test]
fn stream_create_is_idempotent_and_ssrcs_are_unique_on_the_node() {
    let mut reg = room();
    let same = reg.plan_create_stream(stream("room", "a-audio", "alice", 10)).unwrap();
    assert!(same.commands.is_empty() && same.change.is_noop());
    assert!(matches!(same.outcome, Outcome::Existing(View::Stream(ref s)) if s.ssrc == 10));
    let other = StreamSpec { clock_rate_hz: 8_000, ..stream("room", "a-audio", "alice", 10) };
    assert_eq!(
        reg.plan_create_stream(other).unwrap_err(),
        RegistryError::AlreadyExists { kind: "stream", id: "a-audio".into() }
    );
    let taken = RegistryError::AlreadyExists { kind: "ssrc", id: "11".into() };
    assert_eq!(reg.plan_create_stream(stream("room", "c-audio", "carol", 11)).unwrap_err(), taken);
    apply(&mut reg, |r| r.plan_create_session("other", 0));
    apply(&mut reg, |r| r.plan_create_endpoint(endpoint("other", "x", Some("127.0.0.1:9000"))));
    assert_eq!(reg.plan_create_stream(stream("other", "s", "x", 11)).unwrap_err(), taken);
    apply(&mut reg, |r| r.plan_delete_stream("room", "b-audio"));
    apply(&mut reg, |r| r.plan_create_stream(stream("other", "s", "x", 11)));
}

#[test]
fn stream_limits_total_and_per_worker() {
    let mut reg = room(); // 3 streams: two on worker 0, one on worker 1
    reg.limits.max_streams_per_worker = 2;
    assert_eq!(exhausted(reg.plan_create_stream(stream("room", "c", "carol", 20))), "limits.max_streams_per_worker");
    apply(&mut reg, |r| r.plan_create_stream(stream("room", "c", "carol", 21)));
    reg.limits.max_streams_per_worker = 16;
    reg.limits.max_streams = 4;
    assert_eq!(exhausted(reg.plan_create_stream(stream("room", "d", "dave", 22))), "admission.max_streams");
    let err = reg.plan_create_stream(stream("room", "d", "dave", 22)).unwrap_err();
    assert_eq!(err.to_string(), "limit admission.max_streams = 4 reached");
}

#[test]
fn data_plane_ids_are_never_reused() {
    let mut reg = room();
    let dropped = reg.plan_create_stream(stream("room", "c", "carol", 30)).unwrap();
    let Command::AddStream { id: first, .. } = dropped.commands[0].1 else { panic!() };
    let plan = reg.plan_create_stream(stream("room", "c", "carol", 30)).unwrap();
    let Command::AddStream { id: second, .. } = plan.commands[0].1 else { panic!() };
    assert!(second > first, "a rolled-back plan's id is not drawn again");
    apply(&mut reg, |_| Ok(plan));
    apply(&mut reg, |r| r.plan_delete_stream("room", "c"));
    let plan = reg.plan_create_stream(stream("room", "c", "carol", 30)).unwrap();
    let Command::AddStream { id: third, .. } = plan.commands[0].1 else { panic!() };
    assert!(third > second && third > StreamId(3));
}

#[test]
fn a_stream_takes_a_new_ssrc_in_place_on_its_worker() {
    use super::tests::subscription;
    let mut reg = room(); // 2 workers; a-audio has ssrc 10
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "a-audio", "bob")));
    let (id, worker) = {
        let stream = reg.get_stream("room", "a-audio").unwrap();
        (stream.data_plane_id, stream.worker)
    };
    let same_worker = (20..).find(|&ssrc| owner_of(ssrc, 2) == worker).unwrap();
    let other_worker = (20..).find(|&ssrc| owner_of(ssrc, 2) != worker).unwrap();
    let to = |ssrc| StreamUpdate { ssrc: Some(ssrc), ..StreamUpdate::default() };

    let plan = reg.plan_update_stream("room", "a-audio", &to(same_worker)).unwrap();
    assert_eq!(plan.commands, vec![(worker, Command::ChangeStreamSsrc { id, ssrc: same_worker })]);
    assert_eq!(plan.undo, vec![(worker, Command::ChangeStreamSsrc { id, ssrc: 10 })]);
    apply(&mut reg, |_| Ok(plan));
    assert_eq!(reg.get_stream("room", "a-audio").unwrap().ssrc, same_worker);
    assert_eq!(reg.get_subscription("room", "s").unwrap().out_ssrc, 10, "the subscriber keeps seeing ssrc 10");
    // The old SSRC is free again, the new one taken.
    apply(&mut reg, |r| r.plan_create_stream(stream("room", "z", "carol", 10)));
    let taken = reg.plan_update_stream("room", "b-audio", &to(same_worker)).unwrap_err();
    assert!(matches!(taken, RegistryError::AlreadyExists { kind: "ssrc", .. }), "{taken}");

    // Another worker's SSRC is taken in place too (see `tests_aliases`).
    let plan = reg.plan_update_stream("room", "a-audio", &to(other_worker)).unwrap();
    assert!(plan.commands.contains(&(worker, Command::ChangeStreamSsrc { id, ssrc: other_worker })));
    let bad = StreamUpdate { payload_types: Some(vec![111, 111]), ..StreamUpdate::default() };
    assert_eq!(invalid_field(reg.plan_update_stream("room", "a-audio", &bad)), "payload_types[1]");
    let types = StreamUpdate { payload_types: Some(vec![0, 8]), ..StreamUpdate::default() };
    let plan = reg.plan_update_stream("room", "a-audio", &types).unwrap();
    assert!(plan.commands.is_empty(), "no payload-type filter in the chain: nothing to tell the worker");
    apply(&mut reg, |_| Ok(plan));
    assert_eq!(reg.get_stream("room", "a-audio").unwrap().payload_types, [0, 8]);
    assert!(reg.plan_update_stream("room", "a-audio", &StreamUpdate::default()).unwrap().commands.is_empty());
}

#[test]
fn a_stream_declared_without_ssrc_adopts_the_first_and_follows_in_place() {
    use super::tests::{addr, subscription};
    let mut reg = room(); // 2 workers; alice at 127.0.0.1:5000
    let learning = |id: &str, types: Vec<u32>| StreamSpec { payload_types: types, ..stream("room", id, "alice", 0) };
    assert_eq!(invalid_field(reg.plan_create_stream(learning("l", Vec::new()))), "payload_types");
    let dave = StreamSpec { endpoint_id: "dave".into(), ..learning("d", vec![0]) };
    assert_eq!(invalid_field(reg.plan_create_stream(dave)), "ssrc", "dave has no address to learn from");
    apply(&mut reg, |r| r.plan_create_stream(learning("mic", vec![0, 8])));
    assert_eq!(invalid_field(reg.plan_create_stream(learning("mic2", vec![8, 9]))), "payload_types", "8 is mic's");
    let mic = reg.get_stream("room", "mic").unwrap();
    assert_eq!((mic.ssrc, mic.learns_ssrc), (0, true), "nothing learned yet");
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "mic", "bob")));

    // Unknown SSRCs with another payload type or from another address are not the stream's.
    assert!(reg.plan_learn(addr("127.0.0.1:5000"), 0x1234, 96).is_none());
    assert!(reg.plan_learn(addr("127.0.0.1:5999"), 0x1234, 0).is_none());
    // The first one: the stream and its subscription are bound anew where the SSRC goes.
    let first = (100..).find(|&ssrc| owner_of(ssrc, 2) != mic.worker).unwrap();
    let (session, stream_id, plan) = reg.plan_learn(addr("127.0.0.1:5000"), first, 8).expect("learns");
    assert_eq!((session.as_str(), stream_id.as_str()), ("room", "mic"));
    assert_eq!(plan.commands.len(), plan.undo.len());
    let new_worker = owner_of(first, 2);
    assert!(plan.commands.contains(&(mic.worker, Command::RemoveStream { id: mic.data_plane_id })));
    assert!(plan
        .commands
        .iter()
        .any(|(w, c)| *w == new_worker && matches!(c, Command::AddStream { ssrc, .. } if *ssrc == first)));
    apply(&mut reg, |_| Ok(plan));
    let mic = reg.get_stream("room", "mic").unwrap();
    assert_eq!((mic.ssrc, mic.worker), (first, new_worker));
    assert_eq!(reg.get_subscription("room", "s").unwrap().worker, new_worker, "its subscription moved along");
    assert_eq!(reg.get_subscription("room", "s").unwrap().out_ssrc, 0, "nothing was sent: nothing to pin");
    assert!(reg.plan_learn(addr("127.0.0.1:5000"), first, 8).is_none(), "its own SSRC is not unknown");

    // A restart is followed in place, with an SSRC of the same worker or, through an alias, of another one.
    let same = (first + 1..).find(|&ssrc| owner_of(ssrc, 2) == new_worker).unwrap();
    let other = (same + 1..).find(|&ssrc| owner_of(ssrc, 2) != new_worker).unwrap();
    let (_, _, plan) = reg.plan_learn(addr("127.0.0.1:5000"), same, 0).expect("follows");
    assert_eq!(plan.commands, [(new_worker, Command::ChangeStreamSsrc { id: mic.data_plane_id, ssrc: same })]);
    apply(&mut reg, |_| Ok(plan));
    assert_eq!(reg.get_subscription("room", "s").unwrap().out_ssrc, first, "the subscriber keeps its SSRC");
    let (_, _, plan) = reg.plan_learn(addr("127.0.0.1:5000"), other, 0).expect("follows across workers");
    let alias = Command::AliasSsrc { ssrc: other, owner: new_worker };
    let change = Command::ChangeStreamSsrc { id: mic.data_plane_id, ssrc: other };
    assert_eq!(plan.commands, [(owner_of(other, 2), alias), (new_worker, change)]);
    apply(&mut reg, |_| Ok(plan));
    let mic = reg.get_stream("room", "mic").unwrap();
    assert_eq!((mic.ssrc, mic.worker), (other, new_worker), "it stays where its subscriber's numbering is");
    assert_eq!(reg.get_subscription("room", "s").unwrap().out_ssrc, first, "the subscriber keeps its SSRC");
    assert!(reg.plan_learn(addr("127.0.0.1:5000"), other, 0).is_none(), "its own SSRC is not unknown");
    assert_eq!(
        invalid_field(reg.plan_update_stream(
            "room",
            "mic",
            &StreamUpdate { ssrc: Some(0), ..StreamUpdate::default() }
        )),
        "ssrc"
    );
}

#[test]
fn a_stream_moves_to_another_publishing_endpoint_in_place() {
    use super::tests::subscription;
    let mut reg = room(); // a-audio from alice (127.0.0.1:5000); bob (subscribing) 127.0.0.1:5002; carol [::1]:5004
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "a-audio", "bob")));
    let (id, worker) = {
        let stream = reg.get_stream("room", "a-audio").unwrap();
        (stream.data_plane_id, stream.worker)
    };
    let to = |endpoint: &str| StreamUpdate { endpoint_id: Some(endpoint.to_owned()), ..StreamUpdate::default() };
    assert_eq!(invalid_field(reg.plan_update_stream("room", "a-audio", &to("bob"))), "endpoint_id", "its subscriber");
    apply(&mut reg, |r| r.plan_create_endpoint(endpoint("room", "erin", Some("127.0.0.1:5006"))));

    let plan = reg.plan_update_stream("room", "a-audio", &to("erin")).unwrap();
    assert_eq!(plan.commands, vec![(worker, Command::SetSource { id, source: addr("127.0.0.1:5006"), overlap: true })]);
    assert_eq!(plan.undo, vec![(worker, Command::SetSource { id, source: addr("127.0.0.1:5000"), overlap: false })]);
    apply(&mut reg, |_| Ok(plan));
    let moved = reg.get_stream("room", "a-audio").unwrap();
    assert_eq!((moved.endpoint_id.as_str(), moved.subscriptions), ("erin", 1), "its subscription lives on");
    assert!(reg.plan_update_stream("room", "a-audio", &to("erin")).unwrap().commands.is_empty(), "unchanged");

    assert_eq!(invalid_field(reg.plan_update_stream("room", "a-audio", &to("dave"))), "endpoint_id", "latching");
    assert_eq!(invalid_field(reg.plan_update_stream("room", "a-audio", &to("carol"))), "endpoint_id", "IPv6");
    assert_eq!(invalid_field(reg.plan_update_stream("room", "a-audio", &to("no such"))), "endpoint_id");
    let missing = reg.plan_update_stream("room", "a-audio", &to("frank")).unwrap_err();
    assert!(matches!(missing, RegistryError::NotFound { kind: "endpoint", .. }), "{missing}");
}
