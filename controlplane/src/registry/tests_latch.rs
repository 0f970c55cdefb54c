//! Unit tests of latching endpoints as receivers: a subscription held until its endpoint latches, the move of
//! its destination and feedback route on a latch and a re-latch, and `latched_address` in the endpoint's view.
//!
//! Uses the fixtures of `tests` (the "room" on two workers; dave latches and has no address). Must never use a
//! socket or a clock.

use ringfwd_dataplane::control::{owner_of, Command, NO_DESTINATION};

use super::tests::{addr, apply, endpoint, room, stream, subscription};
use super::*;

#[test]
fn a_latching_endpoint_is_subscribed_held_then_receives_where_it_latched() {
    let mut reg = room();
    let out_ssrc = 99;
    assert_eq!(owner_of(out_ssrc, 2), 1, "its feedback lands on worker 1: the subscription has a route there");
    let spec = SubscriptionSpec { out_ssrc, ..subscription("room", "to-dave", "a-audio", "dave") };
    let plan = reg.plan_create_subscription(spec).unwrap();
    let [(0, Command::AddSubscription { id, dest, socket: 0, .. })] = plan.commands.as_slice() else {
        panic!("held, no route before an address: {:?}", plan.commands)
    };
    let id = *id;
    assert_eq!(*dest, NO_DESTINATION);
    apply(&mut reg, |_| Ok(plan.clone()));
    assert_eq!(reg.get_subscription("room", "to-dave").unwrap().destination, None);
    assert_eq!(reg.get_endpoint("room", "dave").unwrap().latched_address, None);

    apply(&mut reg, |r| r.plan_create_stream(stream("room", "d-audio", "dave", 8)));
    let d_audio = reg.get_stream("room", "d-audio").unwrap().data_plane_id;
    let first = addr("127.0.0.1:6000");
    let plan = reg.plan_latch(d_audio, first).expect("dave latched");
    assert_eq!(
        plan.commands,
        [
            (0, Command::SetDestination { id, dest: first, socket: 0 }),
            (1, Command::AddFeedbackRoute { id, dest: first, out_ssrc, owner: 0 }),
        ]
    );
    assert_eq!(plan.rollback(2)[1], (0, Command::SetDestination { id, dest: NO_DESTINATION, socket: 0 }));
    let Outcome::Updated(View::Endpoint(view)) = apply(&mut reg, |_| Ok(plan.clone())) else { panic!() };
    assert_eq!(view.latched_address, Some(first));
    assert_eq!(reg.get_endpoint("room", "dave").unwrap(), view);
    assert_eq!(reg.get_subscription("room", "to-dave").unwrap().destination, Some(first));
    assert!(reg.plan_latch(d_audio, first).is_none(), "the same address again: nothing to do");

    // The NAT rebinds: the route moves with the destination.
    let second = addr("127.0.0.1:6002");
    let plan = reg.plan_latch(d_audio, second).expect("re-latched");
    assert_eq!(
        plan.commands,
        [
            (0, Command::SetDestination { id, dest: second, socket: 0 }),
            (1, Command::RemoveFeedbackRoute { id, dest: first, out_ssrc }),
            (1, Command::AddFeedbackRoute { id, dest: second, out_ssrc, owner: 0 }),
        ]
    );
    apply(&mut reg, |_| Ok(plan));
    // A later subscription goes to the latched address from the start; re-creating dave stays idempotent.
    let plan = reg.plan_create_subscription(subscription("room", "b-dave", "b-audio", "dave")).unwrap();
    assert!(matches!(plan.commands[0].1, Command::AddSubscription { dest, .. } if dest == second));
    apply(&mut reg, |_| Ok(plan));
    let again = reg.plan_create_endpoint(endpoint("room", "dave", None)).unwrap();
    assert!(matches!(again.outcome, Outcome::Existing(View::Endpoint(ref e)) if e.latched_address == Some(second)));
}

#[test]
fn a_held_video_subscription_asks_for_a_keyframe_when_it_latches_not_before() {
    let mut reg = room();
    let video =
        |id, publisher, ssrc| StreamSpec { kind: Some(MediaKind::Video), ..stream("room", id, publisher, ssrc) };
    apply(&mut reg, |r| r.plan_create_stream(video("a-cam", "alice", 14)));
    apply(&mut reg, |r| r.plan_create_stream(video("d-video", "dave", 8)));
    let plan = reg.plan_create_subscription(subscription("room", "v-dave", "a-cam", "dave")).unwrap();
    assert_eq!(plan.commands.len(), 1, "held: no keyframe request yet ({:?})", plan.commands);
    apply(&mut reg, |_| Ok(plan));
    apply(&mut reg, |r| r.plan_create_stream(video("b-cam", "bob", 16)));
    let paused = SubscriptionSpec { paused: true, ..subscription("room", "v-dave-paused", "b-cam", "dave") };
    apply(&mut reg, |r| r.plan_create_subscription(paused));
    let [live, paused] = ["v-dave", "v-dave-paused"].map(|s| reg.get_subscription("room", s).unwrap().data_plane_id);
    let d_video = reg.get_stream("room", "d-video").unwrap().data_plane_id;
    let plan = reg.plan_latch(d_video, addr("127.0.0.1:6000")).expect("latched");
    let keyframes: Vec<_> =
        plan.commands.iter().filter_map(|(_, c)| matches!(c, Command::RequestKeyframe { .. }).then_some(c)).collect();
    assert_eq!(keyframes, [&Command::RequestKeyframe { id: live }], "not for {paused:?}, which receives nothing");
    assert!(matches!(plan.commands.last(), Some((0, Command::RequestKeyframe { .. }))), "planned last");
    apply(&mut reg, |_| Ok(plan));
    let plan = reg.plan_latch(d_video, addr("127.0.0.1:6002")).expect("re-latched");
    let keyframes = plan.commands.iter().filter(|(_, c)| matches!(c, Command::RequestKeyframe { .. })).count();
    assert_eq!(keyframes, 1, "what went to the old NAT binding was lost: asked again");
}

#[test]
fn reports_about_fixed_or_deleted_streams_change_nothing() {
    let reg = room();
    let a_audio = reg.get_stream("room", "a-audio").unwrap().data_plane_id;
    assert!(reg.plan_latch(a_audio, addr("127.0.0.1:7000")).is_none(), "alice does not latch");
    assert!(reg.plan_latch(StreamId(999), addr("127.0.0.1:7000")).is_none(), "no such stream");
}
