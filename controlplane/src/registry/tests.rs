//! Unit tests of sessions, endpoints and drain, plus the fixtures the other test files share.
//!
//! Owns the shared fixtures (a two-worker node with an IPv4 and an IPv6 media address, a small room).
//! Must never use a socket or a clock.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

pub(super) fn limits() -> RegistryLimits {
    RegistryLimits {
        max_sessions: 8,
        max_endpoints: 32,
        max_streams: 32,
        max_subscriptions: 64,
        max_subscriptions_per_stream: 8,
        max_streams_per_worker: 16,
        max_subscriptions_per_worker: 32,
        latch_window: Duration::from_millis(1500),
    }
}

pub(super) fn media() -> Vec<SocketAddr> {
    vec![addr("127.0.0.1:40000"), addr("[::1]:40000")]
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// Commits a successful plan (a dry run: no workers here), checks the invariants, returns the outcome.
pub(super) fn apply(reg: &mut Registry, plan: impl FnOnce(&Registry) -> Result<Plan, RegistryError>) -> Outcome {
    let outcome = reg.dry_run(plan).expect("plan");
    reg.check_invariants().expect("invariants");
    outcome
}

pub(crate) fn endpoint(session: &str, id: &str, address: Option<&str>) -> EndpointSpec {
    EndpointSpec {
        session_id: session.into(),
        endpoint_id: id.into(),
        media_address: address.map(addr),
        latching: address.is_none(),
        rtcp: RtcpSpec::default(),
    }
}

pub(crate) fn stream(session: &str, id: &str, publisher: &str, ssrc: u32) -> StreamSpec {
    StreamSpec {
        session_id: session.into(),
        stream_id: id.into(),
        endpoint_id: publisher.into(),
        ssrc,
        kind: Some(MediaKind::Audio),
        payload_types: vec![111],
        clock_rate_hz: 48_000,
        interceptors: None,
    }
}

pub(crate) fn subscription(session: &str, id: &str, stream: &str, to: &str) -> SubscriptionSpec {
    SubscriptionSpec {
        session_id: session.into(),
        subscription_id: id.into(),
        stream_id: stream.into(),
        endpoint_id: to.into(),
        out_ssrc: 0,
        payload_type_map: vec![],
        paused: false,
        seq_offset: 0,
        ts_offset: 0,
        interceptors: None,
        rtx: None,
    }
}

/// Session "room" on a 2-worker node: alice 127.0.0.1:5000, bob 127.0.0.1:5002, carol [::1]:5004, dave
/// (latching, no address); streams a-audio (alice, ssrc 10, worker 0), a-video (alice, 12, worker 0),
/// b-audio (bob, 11, worker 1).
pub(super) fn room() -> Registry {
    let mut reg = Registry::new(limits(), media(), 2);
    apply(&mut reg, |r| r.plan_create_session("room", 1_000));
    for (id, address) in [
        ("alice", Some("127.0.0.1:5000")),
        ("bob", Some("127.0.0.1:5002")),
        ("carol", Some("[::1]:5004")),
        ("dave", None),
    ] {
        apply(&mut reg, |r| r.plan_create_endpoint(endpoint("room", id, address)));
    }
    for (id, publisher, ssrc) in [("a-audio", "alice", 10), ("a-video", "alice", 12), ("b-audio", "bob", 11)] {
        apply(&mut reg, |r| r.plan_create_stream(stream("room", id, publisher, ssrc)));
    }
    reg
}

/// The field of an `InvalidArgument`.
pub(super) fn invalid_field<T: std::fmt::Debug>(result: Result<T, RegistryError>) -> String {
    match result {
        Err(RegistryError::InvalidArgument { field, .. }) => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// The limit named by a `ResourceExhausted`.
pub(super) fn exhausted<T: std::fmt::Debug>(result: Result<T, RegistryError>) -> &'static str {
    match result {
        Err(RegistryError::ResourceExhausted { limit, .. }) => limit,
        other => panic!("expected ResourceExhausted, got {other:?}"),
    }
}

/// The kind named by a `NotFound`.
pub(super) fn not_found<T: std::fmt::Debug>(result: Result<T, RegistryError>) -> &'static str {
    match result {
        Err(RegistryError::NotFound { kind, .. }) => kind,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Everything a client can read.
pub(super) fn snapshot(reg: &Registry) -> String {
    let mut out = format!("{:?} {:?} {}\n", reg.usage(), reg.worker_loads(), reg.draining());
    for session in reg.list_sessions() {
        let id = &session.session_id;
        out += &format!("{session:?}\n{:?}\n", reg.list_endpoints(id).unwrap());
        out += &format!("{:?}\n{:?}\n", reg.list_streams(id).unwrap(), reg.list_subscriptions(id).unwrap());
    }
    out
}

#[test]
fn sessions_are_created_idempotently_and_listed() {
    let mut reg = Registry::new(limits(), media(), 2);
    let plan = reg.plan_create_session("call-1", 42).unwrap();
    assert!(plan.commands.is_empty() && plan.undo.is_empty());
    let Outcome::Created(View::Session(view)) = apply(&mut reg, |_| Ok(plan)) else { panic!() };
    assert_eq!((view.session_id.as_str(), view.created_unix_ms, view.endpoints), ("call-1", 42, 0));
    let again = reg.plan_create_session("call-1", 99).unwrap();
    assert!(again.change.is_noop() && again.commands.is_empty());
    assert!(matches!(again.outcome, Outcome::Existing(View::Session(ref v)) if v.created_unix_ms == 42));
    assert_eq!(reg.get_session("call-1").unwrap(), view);
    assert_eq!(reg.list_sessions(), vec![view]);
    assert_eq!(reg.usage().sessions, 1);
}

#[test]
fn session_ids_are_validated_and_unknown_ones_not_found() {
    let reg = Registry::new(limits(), media(), 1);
    assert_eq!(invalid_field(reg.plan_create_session("", 0)), "session_id");
    assert_eq!(invalid_field(reg.plan_create_session("a b", 0)), "session_id");
    assert_eq!(invalid_field(reg.plan_create_session(&"x".repeat(65), 0)), "session_id");
    assert!(reg.plan_create_session(&"x".repeat(64), 0).is_ok());
    assert_eq!(invalid_field(reg.get_session("a/b")), "session_id");
    assert_eq!(reg.get_session("nope").unwrap_err(), RegistryError::NotFound { kind: "session", id: "nope".into() });
    assert_eq!(not_found(reg.plan_delete_session("nope")), "session");
    assert_eq!(not_found(reg.list_streams("nope")), "session");
}

#[test]
fn max_sessions_is_enforced_and_freed_by_delete() {
    let mut reg = Registry::new(RegistryLimits { max_sessions: 2, ..limits() }, media(), 1);
    apply(&mut reg, |r| r.plan_create_session("a", 0));
    apply(&mut reg, |r| r.plan_create_session("b", 0));
    assert_eq!(exhausted(reg.plan_create_session("c", 0)), "admission.max_sessions");
    assert!(reg.plan_create_session("a", 0).is_ok(), "an existing session is not a new one");
    apply(&mut reg, |r| r.plan_delete_session("a"));
    apply(&mut reg, |r| r.plan_create_session("c", 0));
}

#[test]
fn draining_refuses_new_sessions_only() {
    let mut reg = room();
    reg.set_draining(true);
    assert!(reg.draining());
    let err = reg.plan_create_session("other", 0).unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable(ref m) if m.contains("draining")), "{err}");
    assert!(matches!(reg.plan_create_session("room", 0).unwrap().outcome, Outcome::Existing(_)));
    apply(&mut reg, |r| r.plan_create_endpoint(endpoint("room", "erin", Some("127.0.0.1:6000"))));
    apply(&mut reg, |r| r.plan_create_stream(stream("room", "e-audio", "erin", 100)));
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "s", "e-audio", "bob")));
    apply(&mut reg, |r| r.plan_delete_session("room"));
    reg.set_draining(false);
    apply(&mut reg, |r| r.plan_create_session("other", 0));
}

#[test]
fn endpoints_need_a_usable_media_address_unless_latching() {
    let mut reg = room();
    let outcome = apply(&mut reg, |r| r.plan_create_endpoint(endpoint("room", "erin", None)));
    assert!(matches!(outcome, Outcome::Created(View::Endpoint(ref e)) if e.latching && e.media_address.is_none()));
    let mut spec = endpoint("room", "frank", Some("127.0.0.1:7000"));
    spec.latching = false;
    spec.media_address = None;
    assert_eq!(invalid_field(reg.plan_create_endpoint(spec.clone())), "media_address");
    for bad in ["127.0.0.1:0", "0.0.0.0:7000", "[::]:7000"] {
        spec.media_address = Some(addr(bad));
        assert_eq!(invalid_field(reg.plan_create_endpoint(spec.clone())), "media_address", "{bad}");
    }
    let v4_only = Registry::new(limits(), vec![addr("127.0.0.1:40000")], 1);
    let err = v4_only.plan_create_endpoint(endpoint("room", "x", Some("[::1]:7000"))).unwrap_err();
    assert!(err.to_string().contains("no IPv6 media address"), "{err}");
    assert_eq!(invalid_field(reg.plan_create_endpoint(endpoint("room", "a b", None))), "endpoint_id");
    assert_eq!(not_found(reg.plan_create_endpoint(endpoint("nope", "x", None))), "session");
}

#[test]
fn endpoint_create_is_idempotent_and_limited() {
    let mut reg = room();
    let same = reg.plan_create_endpoint(endpoint("room", "alice", Some("127.0.0.1:5000"))).unwrap();
    assert!(same.change.is_noop());
    assert!(matches!(same.outcome, Outcome::Existing(View::Endpoint(_))));
    assert_eq!(
        reg.plan_create_endpoint(endpoint("room", "alice", Some("127.0.0.1:5999"))).unwrap_err(),
        RegistryError::AlreadyExists { kind: "endpoint", id: "alice".into() }
    );
    reg.limits.max_endpoints = 5;
    apply(&mut reg, |r| r.plan_create_endpoint(endpoint("room", "erin", None)));
    let full = reg.plan_create_endpoint(endpoint("room", "frank", None));
    assert_eq!(exhausted(full), "admission.max_endpoints");
    assert_eq!(reg.get_endpoint("room", "bob").unwrap().media_address, Some(addr("127.0.0.1:5002")));
    assert_eq!(reg.list_endpoints("room").unwrap().len(), 5);
    assert_eq!(not_found(reg.get_endpoint("room", "zed")), "endpoint");
}

#[test]
fn a_plan_that_is_not_committed_changes_nothing() {
    let reg = room();
    let before = snapshot(&reg);
    let plans = [
        reg.plan_create_session("new", 5),
        reg.plan_create_endpoint(endpoint("room", "erin", None)),
        reg.plan_create_stream(stream("room", "c", "carol", 40)),
        reg.plan_create_subscription(subscription("room", "s", "a-audio", "bob")),
        reg.plan_delete_session("room"),
        reg.plan_delete_endpoint("room", "alice"),
    ];
    assert!(plans.iter().all(Result::is_ok));
    assert_eq!(snapshot(&reg), before);
    reg.check_invariants().unwrap();
}

#[test]
fn an_endpoint_receives_a_stream_and_an_out_ssrc_by_one_subscription_only() {
    let mut reg = room();
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "bob-a", "a-audio", "bob")));
    // The same stream again: the subscriber would get every packet twice.
    let twice = reg.plan_create_subscription(subscription("room", "bob-a-again", "a-audio", "bob")).unwrap_err();
    assert!(matches!(&twice, RegistryError::InvalidArgument { field, .. } if field == "stream_id"), "{twice:?}");
    assert!(twice.to_string().contains("bob-a"), "names the subscription it already has: {twice}");
    // Another stream under an out SSRC the endpoint already receives: its feedback could not be told apart.
    let clash = SubscriptionSpec { out_ssrc: 10, ..subscription("room", "bob-v", "a-video", "bob") };
    let clash = reg.plan_create_subscription(clash).unwrap_err();
    assert!(matches!(&clash, RegistryError::InvalidArgument { field, .. } if field == "out_ssrc"), "{clash:?}");
    // Another endpoint may, and so may another out SSRC.
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "carol-a", "a-audio", "carol")));
    apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "bob-v", "a-video", "bob")));
    // A switch to a stream the endpoint already receives is refused the same way.
    let update = SubscriptionUpdate { stream_id: Some("a-audio".into()), ..SubscriptionUpdate::default() };
    let switch = reg.plan_update("room", "bob-v", &update).unwrap_err();
    assert!(matches!(&switch, RegistryError::InvalidArgument { field, .. } if field == "stream_id"), "{switch:?}");
}
