//! Unit tests of SSRC aliases: a stream that takes an SSRC another worker owns stays on its worker, the SSRC's owner
//! holds an alias, and every later change, delete and limit keeps the aliases and feedback routes in step.
//!
//! Uses the fixtures of `tests`. Must never use a socket or a clock.

use ringfwd_dataplane::control::{owner_of, Command};

use super::tests::{addr, apply, exhausted, room, snapshot, stream, subscription};
use super::*;

fn to(ssrc: u32) -> StreamUpdate {
    StreamUpdate { ssrc: Some(ssrc), ..StreamUpdate::default() }
}

fn aliases(reg: &Registry) -> Vec<u32> {
    reg.worker_loads().iter().map(|l| l.aliases).collect()
}

fn routes(reg: &Registry) -> Vec<u32> {
    reg.worker_loads().iter().map(|l| l.feedback_routes).collect()
}

#[test]
fn a_new_ssrc_of_another_worker_is_taken_in_place_with_an_alias_there() {
    let mut reg = room(); // 2 workers; a-audio has ssrc 10 on worker 0
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "a-audio", "bob")));
    let id = reg.get_stream("room", "a-audio").unwrap().data_plane_id;
    assert_eq!(owner_of(21, 2), 1);

    let plan = reg.plan_update_stream("room", "a-audio", &to(21)).unwrap();
    assert_eq!(
        plan.commands,
        [(1, Command::AliasSsrc { ssrc: 21, owner: 0 }), (0, Command::ChangeStreamSsrc { id, ssrc: 21 })]
    );
    assert_eq!(
        plan.undo,
        [(1, Command::RemoveSsrcAlias { ssrc: 21 }), (0, Command::ChangeStreamSsrc { id, ssrc: 10 })]
    );
    apply(&mut reg, |_| Ok(plan));
    let view = reg.get_stream("room", "a-audio").unwrap();
    assert_eq!((view.ssrc, view.worker), (21, 0), "the stream stays where its subscription's numbering is");
    assert_eq!(aliases(&reg), [0, 1]);
    let s = reg.get_subscription("room", "s").unwrap();
    assert_eq!((s.out_ssrc, s.worker), (10, 0), "pinned to an SSRC its own worker owns: no route");
    assert_eq!(routes(&reg), [0, 0]);
    // The SSRC index holds the new SSRC: no other stream takes it; the old one is free.
    let taken = reg.plan_create_stream(stream("room", "c", "carol", 21)).unwrap_err();
    assert_eq!(taken, RegistryError::AlreadyExists { kind: "ssrc", id: "21".into() });
    apply(&mut reg, |r| r.plan_create_stream(stream("room", "c", "carol", 10)));

    // A subscription made now receives 21 unrewritten (its feedback goes along the alias). The next change, to
    // another SSRC of worker 1, pins it to 21, so its feedback gets a route there before the alias goes.
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "t", "a-audio", "carol")));
    let t = reg.get_subscription("room", "t").unwrap();
    let plan = reg.plan_update_stream("room", "a-audio", &to(23)).unwrap();
    let route = Command::AddFeedbackRoute { id: t.data_plane_id, dest: addr("[::1]:5004"), out_ssrc: 21, owner: 0 };
    assert_eq!(
        plan.commands,
        [
            (1, route),
            (1, Command::AliasSsrc { ssrc: 23, owner: 0 }),
            (0, Command::ChangeStreamSsrc { id, ssrc: 23 }),
            (1, Command::RemoveSsrcAlias { ssrc: 21 }),
        ]
    );
    assert_eq!(plan.undo.len(), plan.commands.len());
    apply(&mut reg, |_| Ok(plan));
    assert_eq!(reg.get_subscription("room", "t").unwrap().out_ssrc, 21);
    assert_eq!((aliases(&reg), routes(&reg)), (vec![0, 1], vec![0, 1]));

    // Back to an SSRC of its own worker: the alias goes, the route stays with its subscription.
    let plan = reg.plan_update_stream("room", "a-audio", &to(12 + 2)).unwrap();
    assert_eq!(
        plan.commands,
        [(0, Command::ChangeStreamSsrc { id, ssrc: 14 }), (1, Command::RemoveSsrcAlias { ssrc: 23 })]
    );
    apply(&mut reg, |_| Ok(plan));
    assert_eq!((aliases(&reg), routes(&reg)), (vec![0, 0], vec![0, 1]));
    assert!(reg.plan_create_stream(stream("room", "d", "dave", 23)).is_ok(), "23 is free again");
}

#[test]
fn deleting_the_stream_endpoint_or_session_removes_its_alias() {
    for delete in ["stream", "endpoint", "session"] {
        let mut reg = room();
        apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "a-audio", "bob")));
        apply(&mut reg, |r| r.plan_update_stream("room", "a-audio", &to(21)));
        apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "t", "a-audio", "carol")));
        apply(&mut reg, |r| r.plan_update_stream("room", "a-audio", &to(23)));
        assert_eq!((aliases(&reg), routes(&reg)), (vec![0, 1], vec![0, 1]));
        let plan = match delete {
            "stream" => reg.plan_delete_stream("room", "a-audio"),
            "endpoint" => reg.plan_delete_endpoint("room", "alice"),
            _ => reg.plan_delete_session("room"),
        }
        .unwrap();
        assert!(plan.commands.contains(&(1, Command::RemoveSsrcAlias { ssrc: 23 })), "{delete}");
        let t = plan.commands.iter().filter(|(w, c)| *w == 1 && matches!(c, Command::RemoveFeedbackRoute { .. }));
        assert_eq!(t.count(), 1, "{delete}: the pinned subscription's route goes with it");
        apply(&mut reg, |_| Ok(plan));
        assert_eq!((aliases(&reg), routes(&reg)), (vec![0, 0], vec![0, 0]), "{delete}");
        if delete != "session" {
            apply(&mut reg, |r| r.plan_create_stream(stream("room", "c", "carol", 23)));
        }
    }
}

#[test]
fn a_switch_that_pins_an_aliased_ssrc_routes_the_feedback() {
    let mut reg = room();
    apply(&mut reg, |r| r.plan_update_stream("room", "a-audio", &to(21)));
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "a-audio", "carol")));
    let s = reg.get_subscription("room", "s").unwrap();
    // From a-audio (21, aliased on worker 1) to a-video (12, worker 0): the subscriber keeps seeing 21.
    let plan = reg.plan_update_subscription("room", "s", None, Some("a-video")).unwrap();
    let route = Command::AddFeedbackRoute { id: s.data_plane_id, dest: addr("[::1]:5004"), out_ssrc: 21, owner: 0 };
    assert!(plan.commands.contains(&(1, route)), "{:?}", plan.commands);
    apply(&mut reg, |_| Ok(plan));
    assert_eq!(reg.get_subscription("room", "s").unwrap().out_ssrc, 21);
    assert_eq!((aliases(&reg), routes(&reg)), (vec![0, 1], vec![0, 1]));
}

#[test]
fn aliases_are_bounded_by_the_stream_limit_and_refused_plans_change_nothing() {
    let mut reg = room(); // worker 1 holds b-audio
    apply(&mut reg, |r| r.plan_update_stream("room", "a-audio", &to(21)));
    apply(&mut reg, |r| r.plan_create_stream(StreamSpec { payload_types: vec![0], ..stream("room", "mic", "bob", 0) }));
    reg.limits.max_streams_per_worker = 1;
    let full = reg.plan_update_stream("room", "a-video", &to(23));
    assert_eq!(exhausted(full), "limits.max_streams_per_worker (ssrc aliases)");
    let err = reg.plan_update_stream("room", "a-video", &to(23)).unwrap_err();
    assert_eq!(err.to_string(), "limit limits.max_streams_per_worker (ssrc aliases) = 1 reached");
    // Learning a restart is refused the same way (the unknown_ssrc event still tells the controller).
    reg.limits.max_streams_per_worker = 16;
    let first = (100..).find(|&ssrc| owner_of(ssrc, 2) == 0).unwrap();
    apply(&mut reg, |r| Ok(r.plan_learn(addr("127.0.0.1:5002"), first, 0).expect("adopts").2));
    reg.limits.max_streams_per_worker = 1;
    let before = snapshot(&reg);
    assert!(reg.plan_learn(addr("127.0.0.1:5002"), first + 1, 0).is_none());
    assert_eq!(snapshot(&reg), before);
    reg.limits.max_streams_per_worker = 16;
    apply(&mut reg, |r| Ok(r.plan_learn(addr("127.0.0.1:5002"), first + 1, 0).expect("follows").2));
    assert_eq!(aliases(&reg), [0, 2]);
}
