//! Unit tests of keeping a session across a restart: what [`Registry::export_session`] gives, replayed through the
//! restore planners on a fresh registry (as `crate::state::restore` does), gives the same session back — latched
//! addresses, learned SSRCs, switched and paused subscriptions, pinned out SSRCs, chains and RTX included — and a
//! restored subscription's `AddSubscription` carries the numbering it continues.
//!
//! Uses the fixtures of `tests`. Must never use a socket or a clock.

use std::time::Instant;

use ringfwd_dataplane::control::{owner_of, Command, Numbering};

use super::tests::{addr, apply, endpoint, limits, media, room, stream, subscription};
use super::*;

/// Replays `state` into `reg` as the state restore does, each subscription going on as `resume` says.
fn restore(reg: &mut Registry, state: &SessionState, resume: Resume) {
    let sid = state.session_id.as_str();
    apply(reg, |r| r.plan_create_session(sid, state.created_unix_ms));
    for e in &state.endpoints {
        apply(reg, |r| r.plan_create_endpoint(e.spec(sid)));
        if let Some(address) = e.latched_address {
            apply(reg, |r| r.plan_restore_latch(sid, &e.endpoint_id, address));
        }
    }
    for s in &state.streams {
        apply(reg, |r| r.plan_restore_stream(s.spec(sid), s.learns_ssrc));
    }
    for s in &state.subscriptions {
        apply(reg, |r| r.plan_restore_subscription(s.spec(sid), resume));
    }
}

#[test]
fn an_exported_session_restores_as_it_was() {
    let mut reg = room(); // alice, bob, carol; dave latches
                          // dave latched; a learning stream learned an SSRC; a subscription was switched (its out SSRC pinned), one
                          // paused, one with RTX and a payload-type map.
    apply(&mut reg, |r| r.plan_create_stream(stream("room", "d-audio", "dave", 8)));
    let d_audio = reg.get_stream("room", "d-audio").unwrap().data_plane_id;
    let latched = addr("127.0.0.1:6000");
    apply(&mut reg, |r| Ok(r.plan_latch(d_audio, latched).expect("dave latches")));
    let learning = StreamSpec { payload_types: vec![0], ..stream("room", "mic", "alice", 0) };
    apply(&mut reg, |r| r.plan_create_stream(learning));
    let (_, _, learn) = reg.plan_learn(addr("127.0.0.1:5000"), 0x5151, 0).expect("mic learns");
    apply(&mut reg, |_| Ok(learn));
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "to-bob", "a-audio", "bob")));
    apply(&mut reg, |r| {
        r.plan_update(
            "room",
            "to-bob",
            &SubscriptionUpdate { stream_id: Some("a-video".into()), ..SubscriptionUpdate::default() },
        )
    });
    let paused = SubscriptionSpec { paused: true, ..subscription("room", "to-dave", "b-audio", "dave") };
    apply(&mut reg, |r| r.plan_create_subscription(paused));
    let fancy = SubscriptionSpec {
        payload_type_map: vec![PayloadTypeMapping { from: 111, to: 100 }],
        rtx: Some(RtxSpec { ssrc: 0x7777, payload_type: 97 }),
        out_ssrc: 0x4242,
        ..subscription("room", "to-carol", "mic", "carol")
    };
    apply(&mut reg, |r| r.plan_create_subscription(fancy));

    let state = reg.export_session("room").expect("room");
    assert_eq!(state.endpoints.iter().find(|e| e.endpoint_id == "dave").unwrap().latched_address, Some(latched));
    let mic = state.streams.iter().find(|s| s.stream_id == "mic").unwrap();
    assert_eq!((mic.ssrc, mic.learns_ssrc), (0x5151, true));
    let to_bob = state.subscriptions.iter().find(|s| s.subscription_id == "to-bob").unwrap();
    assert_eq!((to_bob.stream_id.as_str(), to_bob.out_ssrc), ("a-video", 10), "switched, pinned to a-audio's SSRC");
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<SessionState>(&json).unwrap(), state, "it round-trips through the store");

    let mut fresh = Registry::new(limits(), media(), 2);
    restore(&mut fresh, &state, Resume::Fresh);
    assert_eq!(fresh.export_session("room"), Some(state.clone()), "the same session, member by member");
    let dave = fresh.get_endpoint("room", "dave").unwrap();
    assert_eq!(dave.latched_address, Some(latched));
    let to_dave = fresh.get_subscription("room", "to-dave").unwrap();
    assert_eq!((to_dave.destination, to_dave.paused), (Some(latched), true), "it receives where dave latched");
    let mic = fresh.get_stream("room", "mic").unwrap();
    assert_eq!((mic.ssrc, mic.learns_ssrc, mic.worker), (0x5151, true, owner_of(0x5151, 2)));
    assert_eq!(fresh.usage(), reg.usage());
}

#[test]
fn a_restored_subscription_continues_its_numbering_and_a_latch_needs_a_latching_endpoint() {
    let mut reg = room();
    let at = Instant::now();
    let continues = Numbering { seq: 4000, ts: 123_456, at };
    let spec = || SubscriptionSpec { seq_offset: 5, ts_offset: 6, ..subscription("room", "s", "a-audio", "bob") };
    let plan = reg.plan_restore_subscription(spec(), Resume::After(continues)).unwrap();
    let Some((_, Command::AddSubscription { continues: got, rewrite, .. })) = plan.commands.first() else {
        panic!("{:?}", plan.commands)
    };
    assert_eq!((*got, rewrite.seq_offset, rewrite.ts_offset), (Some(continues), 5, 6));
    let exact = Resume::Offsets { seq_offset: 700, ts_offset: 800 };
    let plan = reg.plan_restore_subscription(spec(), exact).unwrap();
    let Some((_, Command::AddSubscription { continues: None, rewrite, .. })) = plan.commands.first() else {
        panic!("{:?}", plan.commands)
    };
    assert_eq!((rewrite.seq_offset, rewrite.ts_offset), (700, 800), "a takeover numbers on by the offsets it had");
    let Outcome::Created(View::Subscription(view)) = plan.outcome else { panic!() };
    assert_eq!((view.seq_offset, view.ts_offset), (5, 6), "the view keeps the creation offsets");
    let fresh = reg.plan_create_subscription(subscription("room", "s", "a-audio", "bob")).unwrap();
    assert!(matches!(fresh.commands.first(), Some((_, Command::AddSubscription { continues: None, .. }))));

    let refused = reg.plan_restore_latch("room", "alice", addr("127.0.0.1:6000")).unwrap_err();
    assert!(refused.to_string().contains("does not latch"), "{refused}");
    apply(&mut reg, |r| r.plan_create_endpoint(endpoint("room", "eve", None)));
    let wrong_family = reg.plan_restore_latch("room", "eve", addr("[::1]:6000"));
    assert!(wrong_family.is_ok(), "the node has an IPv6 media address");
}
