//! Registry tests of interceptor chains: defaults from the config, overrides per stream and
//! subscription, validation naming the field, RTX, and the payload-type filter's allowed set.

use ringfwd_dataplane::control::Command;
use ringfwd_tuning::{ChainName, InterceptorName, Interceptors};

use super::tests::{room, stream, subscription};
use super::{RegistryError, RtxSpec, StreamSpec, SubscriptionSpec};

fn invalid_field(err: RegistryError) -> String {
    match err {
        RegistryError::InvalidArgument { field, .. } => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn streams_and_subscriptions_get_the_config_chains_unless_they_name_their_own() {
    let reg = room();
    let plan = reg.plan_create_stream(stream("room", "v", "alice", 40)).unwrap();
    let Command::AddStream { ingress, .. } = &plan.commands[0].1 else { panic!() };
    let defaults = Interceptors::default();
    assert!(ingress.stats.is_some() && ingress.nack_cache.is_some() && ingress.receiver_reports.is_some());
    assert_eq!(ingress.nack_cache.map(|c| c.max_packets), Some(defaults.nack_cache.max_packets));

    let own = StreamSpec {
        interceptors: Some(vec!["nack_generator".into(), "stats".into()]),
        ..stream("room", "w", "alice", 42)
    };
    let plan = reg.plan_create_stream(own).unwrap();
    let Command::AddStream { ingress, .. } = &plan.commands[0].1 else { panic!() };
    assert!(ingress.stats.is_some() && ingress.nack_generator.is_some());
    assert!(ingress.nack_cache.is_none() && ingress.receiver_reports.is_none());

    let none = StreamSpec { interceptors: Some(vec![]), ..stream("room", "x", "alice", 44) };
    let plan = reg.plan_create_stream(none).unwrap();
    let Command::AddStream { ingress, .. } = &plan.commands[0].1 else { panic!() };
    assert_eq!(*ingress, Default::default(), "an empty list runs nothing");
}

#[test]
fn bad_chains_name_the_field() {
    let reg = room();
    let unknown =
        StreamSpec { interceptors: Some(vec!["stats".into(), "jitter".into()]), ..stream("room", "v", "alice", 40) };
    assert_eq!(invalid_field(reg.plan_create_stream(unknown).unwrap_err()), "interceptors.names[1]");
    let wrong_side =
        StreamSpec { interceptors: Some(vec!["sender_reports".into()]), ..stream("room", "v", "alice", 40) };
    assert_eq!(invalid_field(reg.plan_create_stream(wrong_side).unwrap_err()), "interceptors.names[0]");
    let twice = SubscriptionSpec {
        interceptors: Some(vec!["stats".into(), "stats".into()]),
        ..subscription("room", "s", "a-audio", "bob")
    };
    assert_eq!(invalid_field(reg.plan_create_subscription(twice).unwrap_err()), "interceptors.names[1]");
    let rtx_zero = SubscriptionSpec {
        rtx: Some(RtxSpec { ssrc: 0, payload_type: 97 }),
        ..subscription("room", "s", "a-audio", "bob")
    };
    assert_eq!(invalid_field(reg.plan_create_subscription(rtx_zero).unwrap_err()), "rtx.ssrc");
    let rtx_pt = SubscriptionSpec {
        rtx: Some(RtxSpec { ssrc: 5, payload_type: 128 }),
        ..subscription("room", "s", "a-audio", "bob")
    };
    assert_eq!(invalid_field(reg.plan_create_subscription(rtx_pt).unwrap_err()), "rtx.payload_type");
}

#[test]
fn a_live_streams_ingress_chain_is_replaced_in_place_and_checked_as_at_creation() {
    use super::tests::apply;
    use super::StreamUpdate;
    let mut reg = room();
    apply(&mut reg, |r| r.plan_create_stream(stream("room", "v", "alice", 40)));
    let view = reg.get_stream("room", "v").unwrap();
    let names = |list: &[&str]| StreamUpdate {
        interceptors: Some(list.iter().map(|n| n.to_string()).collect()),
        ..StreamUpdate::default()
    };
    let plan = reg.plan_update_stream("room", "v", &names(&["stats"])).unwrap();
    let [(worker, Command::ReconfigureStream { id, ingress })] = plan.commands.as_slice() else {
        panic!("{:?}", plan.commands)
    };
    assert_eq!((*worker, *id), (view.worker, view.data_plane_id), "on the stream's worker, the stream in place");
    assert!(ingress.stats.is_some() && ingress.nack_cache.is_none());
    let [(_, Command::ReconfigureStream { ingress: before, .. })] = plan.undo.as_slice() else { panic!() };
    assert!(before.nack_cache.is_some(), "the undo binds the config's chain again");
    apply(&mut reg, |_| Ok(plan));
    assert_eq!(reg.get_stream("room", "v").unwrap().interceptors, [ChainName::Builtin(InterceptorName::Stats)]);
    assert!(reg.plan_update_stream("room", "v", &names(&["stats"])).unwrap().commands.is_empty(), "unchanged");
    let unknown = reg.plan_update_stream("room", "v", &names(&["stats", "jitter"])).unwrap_err();
    assert_eq!(invalid_field(unknown), "interceptors.names[1]");
    let wrong_side = reg.plan_update_stream("room", "v", &names(&["sender_reports"])).unwrap_err();
    assert_eq!(invalid_field(wrong_side), "interceptors.names[0]");
}

#[test]
fn subscriptions_carry_rtx_and_filter_the_streams_payload_types() {
    let reg = room();
    let spec = SubscriptionSpec {
        interceptors: Some(vec!["payload_type_filter".into(), "stats".into()]),
        rtx: Some(RtxSpec { ssrc: 0xabc, payload_type: 97 }),
        ..subscription("room", "s", "a-audio", "bob")
    };
    let plan = reg.plan_create_subscription(spec.clone()).unwrap();
    let Command::AddSubscription { egress, .. } = &plan.commands[0].1 else { panic!() };
    assert_eq!(egress.payload_type_filter.map(|f| f.allowed), Some(1u128 << 111), "a-audio declares 111 only");
    assert!(egress.stats.is_some() && egress.sender_reports.is_none());
    assert_eq!(egress.rtx.map(|r| (r.ssrc, r.payload_type)), Some((0xabc, 97)));
    let super::Outcome::Created(super::View::Subscription(view)) = plan.outcome else { panic!() };
    assert_eq!(
        view.interceptors,
        [ChainName::Builtin(InterceptorName::PayloadTypeFilter), ChainName::Builtin(InterceptorName::Stats)],
        "chain order"
    );
}

#[test]
fn the_config_sets_the_defaults() {
    let config = Interceptors {
        ingress: vec![ChainName::Builtin(InterceptorName::RateLimit)],
        egress: vec![],
        ..Interceptors::default()
    };
    let reg = room().with_interceptors(config);
    let plan = reg.plan_create_stream(stream("room", "v", "alice", 40)).unwrap();
    let Command::AddStream { ingress, .. } = &plan.commands[0].1 else { panic!() };
    assert!(ingress.rate_limit.is_some() && ingress.stats.is_none());
    let plan = reg.plan_create_subscription(subscription("room", "s", "a-audio", "bob")).unwrap();
    let Command::AddSubscription { egress, .. } = &plan.commands[0].1 else { panic!() };
    assert_eq!(*egress, Default::default());
}
