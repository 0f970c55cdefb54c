//! Unit tests of subscription updates (pause, resume, switch), deletes and stale changes.
//!
//! Uses the fixtures of `tests`. Must never use a socket or a clock.

use ringfwd_dataplane::control::Command;

use super::tests::{apply, exhausted, invalid_field, not_found, room, snapshot, stream, subscription};
use super::tests_subscriptions::created_subscription;
use super::*;

#[test]
fn pause_and_resume() {
    let mut reg = room();
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "b-audio", "alice")));
    let id = reg.get_subscription("room", "s").unwrap().data_plane_id;
    let plan = reg.plan_update_subscription("room", "s", Some(true), None).unwrap();
    assert_eq!(plan.commands, vec![(1, Command::SetPaused { id, paused: true })]);
    assert_eq!(plan.undo, vec![(1, Command::SetPaused { id, paused: false })]);
    assert!(created_subscription(apply(&mut reg, |_| Ok(plan))).paused);
    let unchanged = reg.plan_update_subscription("room", "s", Some(true), Some("b-audio")).unwrap();
    assert!(unchanged.commands.is_empty());
    assert!(created_subscription(unchanged.outcome).paused);
    assert!(
        !created_subscription(apply(&mut reg, |r| r.plan_update_subscription("room", "s", Some(false), None))).paused
    );
    assert_eq!(not_found(reg.plan_update_subscription("room", "zed", Some(true), None)), "subscription");
    assert_eq!(invalid_field(reg.plan_update_subscription("room", "s", None, Some(""))), "stream_id");
}

#[test]
fn switching_stays_on_one_worker() {
    let mut reg = room();
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "a-audio", "carol")));
    let id = reg.get_subscription("room", "s").unwrap().data_plane_id;
    let (audio, video) = (reg.get_stream("room", "a-audio").unwrap(), reg.get_stream("room", "a-video").unwrap());
    let plan = reg.plan_update_subscription("room", "s", None, Some("a-video")).unwrap();
    assert_eq!(plan.commands, vec![(0, Command::SwitchSubscription { id, stream: video.data_plane_id })]);
    assert_eq!(plan.undo, vec![(0, Command::SwitchSubscription { id, stream: audio.data_plane_id })]);
    let view = created_subscription(apply(&mut reg, |_| Ok(plan)));
    assert_eq!((view.stream_id.as_str(), view.out_ssrc), ("a-video", 10), "the subscriber keeps seeing ssrc 10");
    assert_eq!(reg.get_stream("room", "a-audio").unwrap().subscriptions, 0);
    assert_eq!(reg.get_stream("room", "a-video").unwrap().subscriptions, 1);

    let err = reg.plan_update_subscription("room", "s", None, Some("b-audio")).unwrap_err();
    assert!(matches!(err, RegistryError::FailedPrecondition(ref m) if m.contains("not supported yet")), "{err}");
    assert_eq!(not_found(reg.plan_update_subscription("room", "s", None, Some("zed"))), "stream");
    apply(&mut reg, |r| r.plan_create_stream(stream("room", "c-video", "carol", 14)));
    assert_eq!(invalid_field(reg.plan_update_subscription("room", "s", None, Some("c-video"))), "stream_id");
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "t", "a-audio", "bob")));
    reg.limits.max_subscriptions_per_stream = 1;
    let limit = exhausted(reg.plan_update_subscription("room", "s", None, Some("a-audio")));
    assert_eq!(limit, "limits.max_subscriptions_per_stream");
}

#[test]
fn a_pause_goes_before_a_switch_and_a_resume_after() {
    let mut reg = room();
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "a-audio", "bob")));
    let plan = reg.plan_update_subscription("room", "s", Some(true), Some("a-video")).unwrap();
    assert!(matches!(plan.commands[0].1, Command::SetPaused { paused: true, .. }));
    assert!(matches!(plan.commands[1].1, Command::SwitchSubscription { .. }));
    assert!(matches!(plan.rollback(2)[0].1, Command::SwitchSubscription { .. }));
    apply(&mut reg, |_| Ok(plan));
    let plan = reg.plan_update_subscription("room", "s", Some(false), Some("a-audio")).unwrap();
    assert!(matches!(plan.commands[0].1, Command::SwitchSubscription { .. }));
    assert!(matches!(plan.commands[1].1, Command::SetPaused { paused: false, .. }));
    assert!(matches!(plan.undo[1].1, Command::SetPaused { paused: true, .. }));
}

#[test]
fn deletes_cascade_and_remove_subscriptions_before_streams() {
    let mut reg = room();
    for (id, s, to) in
        [("1", "a-audio", "bob"), ("2", "a-video", "carol"), ("3", "b-audio", "alice"), ("4", "b-audio", "carol")]
    {
        apply(&mut reg, |r| r.plan_create_subscription(subscription("room", id, s, to)));
    }
    let plan = reg.plan_delete_stream("room", "b-audio").unwrap();
    assert!(plan.undo.is_empty() && plan.rollback(1).is_empty());
    let kinds: Vec<_> = plan.commands.iter().map(|(w, c)| (*w, std::mem::discriminant(c))).collect();
    let sub =
        std::mem::discriminant(&Command::RemoveSubscription { id: ringfwd_dataplane::control::SubscriptionId(0) });
    let stream_rm = std::mem::discriminant(&Command::RemoveStream { id: ringfwd_dataplane::control::StreamId(0) });
    assert_eq!(kinds, vec![(1, sub), (1, sub), (1, stream_rm)]);
    let Outcome::Deleted(counts) = apply(&mut reg, |_| Ok(plan)) else { panic!() };
    assert_eq!(counts, DeleteCounts { sessions: 0, endpoints: 0, streams: 1, subscriptions: 2 });

    // alice publishes a-audio (sub 1) and a-video (sub 2); she received 3, already gone.
    let plan = reg.plan_delete_endpoint("room", "alice").unwrap();
    assert_eq!(plan.commands.len(), 4);
    assert!(matches!(plan.commands[2].1, Command::RemoveStream { .. }));
    let Outcome::Deleted(counts) = apply(&mut reg, |_| Ok(plan)) else { panic!() };
    assert_eq!(counts, DeleteCounts { sessions: 0, endpoints: 1, streams: 2, subscriptions: 2 });
    assert_eq!(reg.usage(), Usage { sessions: 1, endpoints: 3, streams: 0, subscriptions: 0 });
    assert_eq!(not_found(reg.plan_delete_endpoint("room", "alice")), "endpoint");
}

#[test]
fn deleting_a_receiver_removes_what_it_receives_and_a_session_removes_all() {
    let mut reg = room();
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "1", "a-audio", "carol")));
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "2", "b-audio", "carol")));
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "3", "a-audio", "bob")));
    let Outcome::Deleted(counts) = apply(&mut reg, |r| r.plan_delete_endpoint("room", "carol")) else { panic!() };
    assert_eq!(counts, DeleteCounts { sessions: 0, endpoints: 1, streams: 0, subscriptions: 2 });
    let Outcome::Deleted(counts) = apply(&mut reg, |r| r.plan_delete_subscription("room", "3")) else { panic!() };
    assert_eq!(counts.subscriptions, 1);
    assert_eq!(not_found(reg.plan_delete_subscription("room", "3")), "subscription");
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "4", "a-audio", "bob")));
    let plan = reg.plan_delete_session("room").unwrap();
    assert_eq!(plan.commands.len(), 1 + 3);
    let Outcome::Deleted(counts) = apply(&mut reg, |_| Ok(plan)) else { panic!() };
    assert_eq!(counts, DeleteCounts { sessions: 1, endpoints: 3, streams: 3, subscriptions: 1 });
    assert_eq!(reg.usage(), Usage::default());
    assert!(reg.worker_loads().iter().all(|l| *l == WorkerLoad::default()));
    assert_eq!(not_found(reg.plan_delete_stream("room", "a-audio")), "session");
}

#[test]
fn a_stale_change_commits_consistently() {
    let mut reg = room();
    let create = reg.plan_create_subscription(subscription("room", "s", "a-audio", "bob")).unwrap();
    apply(&mut reg, |r| r.plan_delete_stream("room", "a-audio"));
    let before = snapshot(&reg);
    reg.commit(create.change);
    assert_eq!(snapshot(&reg), before, "a subscription to a deleted stream is not committed");
    reg.check_invariants().unwrap();
}

#[test]
fn an_invalid_id_is_reported_before_a_missing_session() {
    let reg = room();
    assert_eq!(invalid_field(reg.plan_delete_endpoint("nope", "a b")), "endpoint_id");
    assert_eq!(invalid_field(reg.get_stream("a b", "x")), "session_id");
    assert_eq!(invalid_field(reg.get_subscription("nope", "")), "subscription_id");
}

#[test]
fn a_video_subscriber_starting_mid_way_gets_a_keyframe_request() {
    use ringfwd_dataplane::control::owner_of;
    let mut reg = room();
    // A video stream on a-audio's worker, so a subscription can switch between them.
    let ssrc = (20..).find(|&ssrc| owner_of(ssrc, 2) == owner_of(10, 2)).unwrap();
    let cam = StreamSpec { kind: Some(MediaKind::Video), ..stream("room", "a-cam", "alice", ssrc) };
    apply(&mut reg, |r| r.plan_create_stream(cam));
    let worker = reg.get_stream("room", "a-cam").unwrap().worker;
    let keyframe =
        |plan: &Plan| plan.commands.iter().filter(|(_, c)| matches!(c, Command::RequestKeyframe { .. })).count();

    let plan = reg.plan_create_subscription(subscription("room", "s", "a-cam", "bob")).unwrap();
    let id = match plan.commands[0].1 {
        Command::AddSubscription { id, .. } => id,
        ref other => panic!("expected AddSubscription first, got {other:?}"),
    };
    assert_eq!(plan.commands.last(), Some(&(worker, Command::RequestKeyframe { id })), "asked last");
    assert_eq!(plan.commands.len(), plan.undo.len());
    apply(&mut reg, |_| Ok(plan));
    let audio = reg.plan_create_subscription(subscription("room", "t", "a-audio", "bob")).unwrap();
    assert_eq!(keyframe(&audio), 0, "audio asks nothing");
    let paused = SubscriptionSpec { paused: true, ..subscription("room", "u", "a-cam", "carol") };
    assert_eq!(keyframe(&reg.plan_create_subscription(paused).unwrap()), 0, "created paused: nothing yet");

    let pause = reg.plan_update_subscription("room", "s", Some(true), None).unwrap();
    assert_eq!(keyframe(&pause), 0);
    apply(&mut reg, |_| Ok(pause));
    let resume = reg.plan_update_subscription("room", "s", Some(false), None).unwrap();
    assert_eq!(resume.commands.last(), Some(&(worker, Command::RequestKeyframe { id })), "resumed");
    apply(&mut reg, |_| Ok(resume));
    let to_audio = reg.plan_update_subscription("room", "s", None, Some("a-audio")).unwrap();
    assert_eq!(keyframe(&to_audio), 0, "switched to audio");
    apply(&mut reg, |_| Ok(to_audio));
    let to_video = reg.plan_update_subscription("room", "s", None, Some("a-cam")).unwrap();
    assert_eq!(to_video.commands.last(), Some(&(worker, Command::RequestKeyframe { id })), "switched to video");
    assert!(matches!(to_video.commands[0].1, Command::SwitchSubscription { .. }), "after the switch");
    assert_eq!(keyframe(&reg.plan_update_subscription("room", "s", Some(false), None).unwrap()), 0, "no change");
}

#[test]
fn a_renegotiation_is_one_reconfigure_after_the_switch_with_its_undo() {
    use ringfwd_dataplane::control::owner_of;
    let mut reg = room();
    // Two audio streams of alice on one worker: 111 and, the second, 0 and 8 (G.711).
    let ssrc = (20..).find(|&ssrc| owner_of(ssrc, 2) == owner_of(10, 2)).unwrap();
    let g711 = StreamSpec { payload_types: vec![0, 8], ..stream("room", "a-g711", "alice", ssrc) };
    apply(&mut reg, |r| r.plan_create_stream(g711));
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "a-audio", "bob")));
    let id = reg.get_subscription("room", "s").unwrap().data_plane_id;
    let maps = |plan: &Plan| -> Vec<(u8, u8)> {
        plan.commands
            .iter()
            .chain(&plan.undo)
            .filter_map(|(_, c)| match c {
                Command::ReconfigureSubscription { id: got, payload_type_map, .. } if *got == id => {
                    Some((payload_type_map[111], payload_type_map[8]))
                }
                _ => None,
            })
            .collect()
    };

    let map = vec![PayloadTypeMapping { from: 111, to: 100 }];
    let update = SubscriptionUpdate {
        payload_type_map: Some(map.clone()),
        interceptors: Some(vec!["payload_type_filter".into(), "stats".into()]),
        ..SubscriptionUpdate::default()
    };
    let plan = reg.plan_update("room", "s", &update).unwrap();
    assert_eq!(plan.commands.len(), 1);
    assert_eq!(maps(&plan), [(100, 8), (111, 8)], "the new map, and the old one as its undo");
    assert_eq!(created_subscription(apply(&mut reg, |_| Ok(plan))).payload_type_map, map);
    let same = reg.plan_update("room", "s", &update).unwrap();
    assert!(same.commands.is_empty(), "unchanged: no command");

    // A switch to a stream with other payload types re-binds the filter right after the switch.
    let to_g711 = SubscriptionUpdate { stream_id: Some("a-g711".into()), ..SubscriptionUpdate::default() };
    let plan = reg.plan_update("room", "s", &to_g711).unwrap();
    assert!(matches!(plan.commands[0].1, Command::SwitchSubscription { .. }));
    let Command::ReconfigureSubscription { egress, .. } = plan.commands[1].1 else {
        panic!("expected a reconfigure after the switch: {:?}", plan.commands);
    };
    let filter = egress.payload_type_filter.expect("the chain filters payload types");
    assert_eq!(filter.allowed, (1u128 << 0) | (1u128 << 8), "the new stream's payload types pass");
    assert_eq!(plan.commands.len(), plan.undo.len());

    // Validated like a create, naming the field.
    let bad_map = SubscriptionUpdate {
        payload_type_map: Some(vec![PayloadTypeMapping { from: 111, to: 128 }]),
        ..SubscriptionUpdate::default()
    };
    assert_eq!(invalid_field(reg.plan_update("room", "s", &bad_map)), "payload_type_map[0].to");
    let ingress_name =
        SubscriptionUpdate { interceptors: Some(vec!["nack_cache".into()]), ..SubscriptionUpdate::default() };
    assert_eq!(invalid_field(reg.plan_update("room", "s", &ingress_name)), "interceptors.names[0]");
    let bad_rtx =
        SubscriptionUpdate { rtx: Some(Some(RtxSpec { ssrc: 0, payload_type: 97 })), ..SubscriptionUpdate::default() };
    assert_eq!(invalid_field(reg.plan_update("room", "s", &bad_rtx)), "rtx.ssrc");
}

#[test]
fn an_endpoint_moves_with_its_streams_and_subscriptions() {
    use super::tests::addr;
    let mut reg = room();
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "a-audio", "bob")));
    let sub = reg.get_subscription("room", "s").unwrap().data_plane_id;
    let audio = reg.get_stream("room", "a-audio").unwrap();
    let new_alice = addr("127.0.0.1:6000");
    let plan = reg.plan_update_endpoint("room", "alice", Some(new_alice), Default::default()).unwrap();
    let sources: Vec<_> = plan.commands.iter().filter(|(_, c)| matches!(c, Command::SetSource { .. })).collect();
    assert_eq!(sources.len(), 2, "a-audio and a-video follow: {:?}", plan.commands);
    assert!(plan
        .commands
        .contains(&(audio.worker, Command::SetSource { id: audio.data_plane_id, source: new_alice, overlap: false })));
    assert!(plan.undo.contains(&(
        audio.worker,
        Command::SetSource { id: audio.data_plane_id, source: addr("127.0.0.1:5000"), overlap: false }
    )));
    apply(&mut reg, |_| Ok(plan));

    let new_bob = addr("127.0.0.1:6002");
    let plan = reg.plan_update_endpoint("room", "bob", Some(new_bob), Default::default()).unwrap();
    assert!(plan.commands.iter().any(|(_, c)| *c == Command::SetDestination { id: sub, dest: new_bob, socket: 0 }));
    apply(&mut reg, |_| Ok(plan));
    assert_eq!(reg.get_subscription("room", "s").unwrap().destination, Some(new_bob));
    assert!(
        reg.plan_update_endpoint("room", "bob", Some(new_bob), Default::default()).unwrap().commands.is_empty(),
        "unchanged"
    );
    assert_eq!(invalid_field(reg.plan_update_endpoint("room", "bob", None, Default::default())), "media_address");
    assert_eq!(not_found(reg.plan_update_endpoint("room", "zed", Some(new_bob), Default::default())), "endpoint");
}

/// Found by the `api` fuzz target: removing the address of a latching endpoint that had not latched planned nothing,
/// so what it receives went on being sent to the address it no longer has (the registry's invariant broke).
#[test]
fn a_latching_endpoint_whose_address_goes_has_what_it_receives_held() {
    use super::tests::addr;
    use ringfwd_dataplane::control::NO_DESTINATION;
    let mut reg = room();
    let erin = EndpointSpec { latching: true, ..super::tests::endpoint("room", "erin", Some("127.0.0.1:7000")) };
    apply(&mut reg, |r| r.plan_create_endpoint(erin));
    // Out SSRC 13 is worker 1's, a-audio (SSRC 10) worker 0's: the subscription has a feedback route on worker 1.
    let spec = SubscriptionSpec { out_ssrc: 13, ..subscription("room", "s", "a-audio", "erin") };
    apply(&mut reg, |r| r.plan_create_subscription(spec));
    let view = reg.get_subscription("room", "s").unwrap();
    assert_eq!(view.destination, Some(addr("127.0.0.1:7000")));
    let plan = reg.plan_update_endpoint("room", "erin", None, Default::default()).unwrap();
    let held = Command::SetDestination { id: view.data_plane_id, dest: NO_DESTINATION, socket: 0 };
    assert!(plan.commands.contains(&(view.worker, held)), "{:?}", plan.commands);
    assert!(plan.commands.iter().any(|(w, c)| *w == 1 && matches!(c, Command::RemoveFeedbackRoute { .. })));
    assert_eq!(plan.undo.len(), plan.commands.len());
    apply(&mut reg, |_| Ok(plan)); // checks the invariants
    assert_eq!(reg.get_subscription("room", "s").unwrap().destination, None, "held until erin latches");
}
