//! Unit tests of creating subscriptions: commands, rollback order, references, idempotency, limits.
//!
//! Uses the fixtures of `tests` (the "room" on two workers). Must never use a socket or a clock.

use ringfwd_dataplane::control::{Command, Rewrite};

use super::tests::{addr, apply, exhausted, invalid_field, not_found, room, subscription};
use super::*;

pub(super) fn created_subscription(outcome: Outcome) -> SubscriptionView {
    match outcome {
        Outcome::Created(View::Subscription(view)) | Outcome::Updated(View::Subscription(view)) => view,
        other => panic!("expected a subscription, got {other:?}"),
    }
}

#[test]
fn a_subscription_forwards_on_its_streams_worker_from_the_socket_of_its_family() {
    let mut reg = room();
    let spec = SubscriptionSpec {
        out_ssrc: 98, // owned by worker 0 like the stream: no feedback route
        payload_type_map: vec![PayloadTypeMapping { from: 111, to: 100 }],
        ..subscription("room", "to-carol", "a-audio", "carol")
    };
    let plan = reg.plan_create_subscription(spec).unwrap();
    let [(0, Command::AddSubscription { id, stream, dest, socket: 1, rewrite, paused: false, .. })] =
        plan.commands.as_slice()
    else {
        panic!("{:?}", plan.commands)
    };
    assert_eq!(*dest, addr("[::1]:5004"));
    assert_eq!(*stream, reg.get_stream("room", "a-audio").unwrap().data_plane_id);
    assert_eq!((rewrite.out_ssrc, rewrite.seq_offset, rewrite.ts_offset), (Some(98), 0, 0));
    assert_eq!((rewrite.payload_type_map[111], rewrite.payload_type_map[96]), (100, 96));
    assert_eq!(plan.undo, vec![(0, Command::RemoveSubscription { id: *id })]);
    let view = created_subscription(apply(&mut reg, |_| Ok(plan.clone())));
    assert_eq!((view.worker, view.data_plane_id, view.destination), (0, *id, Some(addr("[::1]:5004"))));
    assert_eq!((view.seq_offset, view.ts_offset, view.paused), (0, 0, false));
    assert_eq!(reg.get_subscription("room", "to-carol").unwrap(), view);
    assert_eq!(reg.get_stream("room", "a-audio").unwrap().subscriptions, 1);

    let plan = reg.plan_create_subscription(subscription("room", "to-bob", "a-audio", "bob")).unwrap();
    let Command::AddSubscription { socket: 0, ref rewrite, .. } = plan.commands[0].1 else { panic!() };
    assert_eq!(*rewrite, Rewrite::default(), "out_ssrc 0 keeps the publisher's");
}

#[test]
fn an_out_ssrc_another_worker_owns_gets_a_feedback_route_there_and_loses_it_on_delete() {
    let mut reg = room();
    // a-audio is on worker 0; out SSRC 99 is owned by worker 1, where bob's feedback about it lands.
    let spec = SubscriptionSpec { out_ssrc: 99, ..subscription("room", "to-bob", "a-audio", "bob") };
    let plan = reg.plan_create_subscription(spec).unwrap();
    let [(0, Command::AddSubscription { id, .. }), (1, Command::AddFeedbackRoute { id: routed, dest, out_ssrc: 99, owner: 0 })] =
        plan.commands.as_slice()
    else {
        panic!("{:?}", plan.commands)
    };
    assert_eq!((routed, *dest), (id, addr("127.0.0.1:5002")));
    let remove_route = Command::RemoveFeedbackRoute { id: *id, dest: *dest, out_ssrc: 99 };
    assert_eq!(plan.rollback(1), vec![(0, Command::RemoveSubscription { id: *id })], "the route failed");
    assert_eq!(plan.rollback(2), vec![(1, remove_route.clone()), (0, Command::RemoveSubscription { id: *id })]);
    apply(&mut reg, |_| Ok(plan.clone()));

    // Deleting the stream takes the subscription and its route.
    let delete = reg.plan_delete_stream("room", "a-audio").unwrap();
    assert!(delete.commands.contains(&(0, Command::RemoveSubscription { id: *id })), "{:?}", delete.commands);
    assert!(delete.commands.contains(&(1, remove_route)), "{:?}", delete.commands);
    // The publisher's own SSRC, or one its worker owns, needs no route.
    for out_ssrc in [0, 98] {
        let spec = SubscriptionSpec { out_ssrc, ..subscription("room", "to-carol", "a-audio", "carol") };
        assert_eq!(reg.plan_create_subscription(spec).unwrap().commands.len(), 1, "out_ssrc {out_ssrc}");
    }
}

#[test]
fn a_paused_subscription_is_added_paused_in_one_command() {
    let reg = room();
    let spec = SubscriptionSpec { paused: true, ..subscription("room", "s", "b-audio", "alice") };
    let plan = reg.plan_create_subscription(spec).unwrap();
    assert_eq!(plan.commands.len(), 1, "no window in which packets flow before the pause");
    let Command::AddSubscription { id, paused: true, .. } = plan.commands[0].1 else { panic!() };
    assert_eq!(plan.rollback(0), vec![]);
    assert_eq!(plan.rollback(1), vec![(1, Command::RemoveSubscription { id })]);
    assert!(created_subscription(plan.outcome).paused);
}

#[test]
fn subscription_references_are_checked() {
    let mut reg = room();
    let spec = subscription("room", "s", "a-audio", "bob");
    let missing = SubscriptionSpec { stream_id: "zed".into(), ..spec.clone() };
    assert_eq!(
        reg.plan_create_subscription(missing).unwrap_err(),
        RegistryError::NotFound { kind: "stream", id: "zed".into() }
    );
    let missing = SubscriptionSpec { endpoint_id: "zed".into(), ..spec.clone() };
    assert_eq!(
        reg.plan_create_subscription(missing).unwrap_err(),
        RegistryError::NotFound { kind: "endpoint", id: "zed".into() }
    );
    let own = SubscriptionSpec { endpoint_id: "alice".into(), ..spec.clone() };
    let err = reg.plan_create_subscription(own).unwrap_err();
    assert!(err.to_string().contains("cannot subscribe"), "{err}");
    assert_eq!(invalid_field::<()>(Err(err)), "endpoint_id");
    assert_eq!(
        invalid_field(reg.plan_create_subscription(SubscriptionSpec { subscription_id: "".into(), ..spec.clone() })),
        "subscription_id"
    );
    let map = |from, to| vec![PayloadTypeMapping { from: 96, to: 97 }, PayloadTypeMapping { from, to }];
    let bad = SubscriptionSpec { payload_type_map: map(100, 128), ..spec.clone() };
    assert_eq!(invalid_field(reg.plan_create_subscription(bad)), "payload_type_map[1].to");
    let bad = SubscriptionSpec { payload_type_map: map(96, 98), ..spec.clone() };
    assert_eq!(invalid_field(reg.plan_create_subscription(bad)), "payload_type_map[1].from");
    // 64..=95 read as RTCP with the marker set (RFC 5761): never a rewrite's target, nor RTX; identity stays.
    let bad = SubscriptionSpec { payload_type_map: map(100, 72), ..spec.clone() };
    let err = reg.plan_create_subscription(bad).unwrap_err();
    assert!(err.to_string().contains("RFC 5761"), "{err}");
    assert_eq!(invalid_field::<()>(Err(err)), "payload_type_map[1].to");
    assert!(reg.plan_create_subscription(SubscriptionSpec { payload_type_map: map(72, 72), ..spec.clone() }).is_ok());
    let bad = SubscriptionSpec { rtx: Some(RtxSpec { ssrc: 9, payload_type: 80 }), ..spec.clone() };
    assert_eq!(invalid_field(reg.plan_create_subscription(bad)), "rtx.payload_type");
    let other_session = SubscriptionSpec { session_id: "nope".into(), ..spec.clone() };
    assert_eq!(not_found(reg.plan_create_subscription(other_session)), "session");
    apply(&mut reg, |r| r.plan_create_subscription(spec.clone()));
    let same = reg.plan_create_subscription(spec.clone()).unwrap();
    assert!(same.commands.is_empty() && matches!(same.outcome, Outcome::Existing(_)));
    let different = SubscriptionSpec { out_ssrc: 5, ..spec };
    assert_eq!(
        reg.plan_create_subscription(different).unwrap_err(),
        RegistryError::AlreadyExists { kind: "subscription", id: "s".into() }
    );
}

#[test]
fn subscription_limits_total_per_stream_and_per_worker() {
    let mut reg = room();
    reg.limits.max_subscriptions_per_stream = 1;
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s1", "a-audio", "bob")));
    let limit = exhausted(reg.plan_create_subscription(subscription("room", "s2", "a-audio", "carol")));
    assert_eq!(limit, "limits.max_subscriptions_per_stream");
    reg.limits.max_subscriptions_per_worker = 1;
    let limit = exhausted(reg.plan_create_subscription(subscription("room", "s2", "a-video", "carol")));
    assert_eq!(limit, "limits.max_subscriptions_per_worker");
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s2", "b-audio", "carol")));
    reg.limits.max_subscriptions = 2;
    reg.limits.max_subscriptions_per_worker = 32;
    let limit = exhausted(reg.plan_create_subscription(subscription("room", "s3", "a-video", "carol")));
    assert_eq!(limit, "admission.max_subscriptions");
}

#[test]
fn offsets_from_a_static_route_reach_the_rewrite_and_the_view() {
    let mut reg = room();
    let spec = SubscriptionSpec { seq_offset: 1000, ts_offset: 70_000, ..subscription("room", "s", "a-audio", "bob") };
    let plan = reg.plan_create_subscription(spec.clone()).unwrap();
    let Command::AddSubscription { ref rewrite, .. } = plan.commands[0].1 else { panic!() };
    assert_eq!((rewrite.seq_offset, rewrite.ts_offset), (1000, 70_000));
    let view = created_subscription(apply(&mut reg, |_| Ok(plan)));
    assert_eq!((view.seq_offset, view.ts_offset), (1000, 70_000));
    let other = SubscriptionSpec { seq_offset: 0, ..spec };
    assert_eq!(
        reg.plan_create_subscription(other).unwrap_err(),
        RegistryError::AlreadyExists { kind: "subscription", id: "s".into() }
    );
}
