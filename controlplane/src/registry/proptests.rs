//! Property test: random operation sequences keep the registry consistent and in step with the data plane.
//!
//! Draws sequences of creates, updates, deletes and drain toggles over small id pools (so they collide; some
//! endpoints without rtcp-mux),
//! commits every successful plan after replaying its commands into one real `Forwarder` per worker (all
//! must succeed), sometimes fails a plan midway (replays its rollback instead and does not commit; the
//! registry must read exactly as before) and, after every step, checks the invariants, that the
//! forwarders' table sizes equal the registry's counts, worker by worker, and that the SSRC aliases of streams that
//! took another worker's SSRC (`UpdateStream` and `Learn` may pick any) are exactly those the registry records: none
//! is missing, none stale after a delete or a later change. Bounded in cases and length.

use std::time::Instant;

use proptest::prelude::*;
use ringfwd_dataplane::core::{Forwarder, ForwarderLimits};

use super::tests::{addr, media, snapshot};
use super::*;

const SESSIONS: [&str; 4] = ["s0", "s1", "s2", "bad id"];
const ENDPOINTS: [&str; 5] = ["e0", "e1", "e2", "e3", "e4"];
const STREAMS: [&str; 5] = ["t0", "t1", "t2", "t3", "t4"];
const SUBSCRIPTIONS: [&str; 6] = ["u0", "u1", "u2", "u3", "u4", "u5"];
const ADDRESSES: [Option<&str>; 5] =
    [Some("127.0.0.1:5000"), Some("127.0.0.1:5001"), Some("[::1]:5002"), None, Some("127.0.0.1:0")];
const WORKERS: usize = 2;

fn limits() -> RegistryLimits {
    RegistryLimits {
        max_sessions: 2,
        max_endpoints: 7,
        max_streams: 4,
        max_subscriptions: 5,
        max_subscriptions_per_stream: 2,
        max_streams_per_worker: 3,
        max_subscriptions_per_worker: 3,
        ..super::tests::limits()
    }
}

/// A reference to a resource: mostly one that exists in the session now, sometimes any id of the pool
/// (which may not exist), so that most requests get past the lookups and some do not.
#[derive(Clone, Debug)]
enum Pick {
    Existing(prop::sample::Index),
    Pool(prop::sample::Index),
}

impl Pick {
    fn resolve(&self, existing: Vec<String>, pool: &[&str]) -> String {
        match self {
            Pick::Existing(i) if !existing.is_empty() => existing[i.index(existing.len())].clone(),
            Pick::Existing(i) | Pick::Pool(i) => pool[i.index(pool.len())].to_owned(),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    CreateSession(usize),
    DeleteSession(usize),
    CreateEndpoint(usize, usize, usize, bool, bool),
    DeleteEndpoint(usize, Pick),
    CreateStream(usize, usize, Pick, u32, u32),
    DeleteStream(usize, Pick),
    CreateSubscription(usize, usize, Pick, Pick, u32, Option<(u32, u32)>, bool),
    UpdateSubscription(usize, Pick, Option<bool>, Option<Pick>),
    UpdateStream(usize, Pick, Option<u32>, Option<Vec<u32>>),
    Learn(usize, u32, u8),
    DeleteSubscription(usize, Pick),
    Drain(bool),
}

/// A session index: mostly the first two, sometimes a third (over `max_sessions`) or an invalid id.
fn session() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![8 => Just(0usize), 3 => Just(1usize), 1 => Just(2usize), 1 => Just(3usize)]
}

fn pick() -> impl Strategy<Value = Pick> + Clone {
    prop_oneof![
        5 => any::<prop::sample::Index>().prop_map(Pick::Existing),
        1 => any::<prop::sample::Index>().prop_map(Pick::Pool),
    ]
}

/// An address index: mostly valid ones, sometimes none or port 0.
fn address() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![8 => 0..3usize, 1 => 3..ADDRESSES.len()]
}

/// A clock rate: mostly valid, sometimes 0.
fn clock_rate_hz() -> impl Strategy<Value = u32> + Clone {
    prop_oneof![9 => prop::sample::select(vec![8_000u32, 48_000, 90_000]), 1 => Just(0u32)]
}

fn create_endpoint() -> impl Strategy<Value = Op> {
    (session(), 0..ENDPOINTS.len(), address(), prop::bool::weighted(0.2), prop::bool::weighted(0.3))
        .prop_map(|(s, e, a, l, plus_one)| Op::CreateEndpoint(s, e, a, l, plus_one))
}

fn create_stream() -> impl Strategy<Value = Op> {
    (session(), 0..STREAMS.len(), pick(), 0..8u32, clock_rate_hz())
        .prop_map(|(s, t, e, ssrc, rate)| Op::CreateStream(s, t, e, ssrc, rate))
}

fn create_subscription() -> impl Strategy<Value = Op> {
    let map = prop::option::of((90..100u32, 90..130u32));
    (session(), 0..SUBSCRIPTIONS.len(), pick(), pick(), 0..3u32, map, prop::bool::weighted(0.3))
        .prop_map(|(s, u, t, e, o, m, p)| Op::CreateSubscription(s, u, t, e, o, m, p))
}

/// Any operation.
fn op() -> impl Strategy<Value = Op> {
    let s = session();
    prop_oneof![
        3 => s.clone().prop_map(Op::CreateSession),
        1 => prop_oneof![1 => Just(0usize), 3 => 1..SESSIONS.len()].prop_map(Op::DeleteSession),
        1 => (s.clone(), pick()).prop_map(|(s, e)| Op::DeleteEndpoint(s, e)),
        1 => (s.clone(), pick()).prop_map(|(s, t)| Op::DeleteStream(s, t)),
        3 => create_endpoint(),
        4 => create_stream(),
        6 => create_subscription(),
        8 => (s.clone(), pick(), prop::option::of(any::<bool>()), prop::option::of(pick()))
            .prop_map(|(s, u, p, t)| Op::UpdateSubscription(s, u, p, t)),
        3 => (s.clone(), pick(), prop::option::of(0..8u32), prop::option::of(prop::collection::vec(94..98u32, 0..3)))
            .prop_map(|(s, t, ssrc, types)| Op::UpdateStream(s, t, ssrc, types)),
        3 => (0..3usize, 0..8u32, 95..98u8).prop_map(|(a, ssrc, pt)| Op::Learn(a, ssrc, pt)),
        3 => (s, pick()).prop_map(|(s, u)| Op::DeleteSubscription(s, u)),
        1 => prop::bool::weighted(0.3).prop_map(Op::Drain),
    ]
}

/// How a plan's command `index` fails: refused (the worker applied nothing), or timed out after the
/// worker applied it (its fate unknown to the server, which rolls it back too).
#[derive(Clone, Copy, Debug)]
struct Failure {
    index: usize,
    applied: bool,
}

/// An operation and, sometimes, how one of its plan's commands fails.
fn step(op: impl Strategy<Value = Op>) -> impl Strategy<Value = (Op, Option<Failure>)> {
    let failure = (0..3usize, any::<bool>()).prop_map(|(index, applied)| Failure { index, applied });
    (op, prop::option::of(failure))
}

fn ids<T>(list: Result<Vec<T>, RegistryError>, id: impl Fn(T) -> String) -> Vec<String> {
    list.map(|l| l.into_iter().map(id).collect()).unwrap_or_default()
}

fn plan(reg: &mut Registry, op: &Op, step: u64) -> Option<Result<Plan, RegistryError>> {
    let endpoints = |reg: &Registry, s: usize| ids(reg.list_endpoints(SESSIONS[s]), |e| e.endpoint_id);
    let streams = |reg: &Registry, s: usize| ids(reg.list_streams(SESSIONS[s]), |t| t.stream_id);
    let subs = |reg: &Registry, s: usize| ids(reg.list_subscriptions(SESSIONS[s]), |u| u.subscription_id);
    Some(match op {
        Op::CreateSession(s) => reg.plan_create_session(SESSIONS[*s], step),
        Op::DeleteSession(s) => reg.plan_delete_session(SESSIONS[*s]),
        Op::CreateEndpoint(s, e, a, latching, plus_one) => reg.plan_create_endpoint(EndpointSpec {
            session_id: SESSIONS[*s].into(),
            endpoint_id: ENDPOINTS[*e].into(),
            media_address: ADDRESSES[*a].map(addr),
            latching: *latching,
            rtcp: RtcpSpec { address: None, port_plus_one: *plus_one },
        }),
        Op::DeleteEndpoint(s, e) => {
            let e = e.resolve(endpoints(reg, *s), &ENDPOINTS);
            reg.plan_delete_endpoint(SESSIONS[*s], &e)
        }
        Op::CreateStream(s, t, e, ssrc, clock_rate_hz) => reg.plan_create_stream(StreamSpec {
            session_id: SESSIONS[*s].into(),
            stream_id: STREAMS[*t].into(),
            endpoint_id: e.resolve(endpoints(reg, *s), &ENDPOINTS),
            ssrc: *ssrc,
            kind: Some(MediaKind::Video),
            payload_types: vec![96],
            clock_rate_hz: *clock_rate_hz,
            interceptors: None,
        }),
        Op::DeleteStream(s, t) => {
            let t = t.resolve(streams(reg, *s), &STREAMS);
            reg.plan_delete_stream(SESSIONS[*s], &t)
        }
        Op::CreateSubscription(s, u, t, e, out_ssrc, map, paused) => reg.plan_create_subscription(SubscriptionSpec {
            session_id: SESSIONS[*s].into(),
            subscription_id: SUBSCRIPTIONS[*u].into(),
            stream_id: t.resolve(streams(reg, *s), &STREAMS),
            endpoint_id: e.resolve(endpoints(reg, *s), &ENDPOINTS),
            out_ssrc: *out_ssrc,
            payload_type_map: map.iter().map(|&(from, to)| PayloadTypeMapping { from, to }).collect(),
            paused: *paused,
            seq_offset: 0,
            ts_offset: 0,
            interceptors: None,
            rtx: None,
        }),
        Op::UpdateSubscription(s, u, paused, t) => {
            let u = u.resolve(subs(reg, *s), &SUBSCRIPTIONS);
            let t = t.as_ref().map(|t| t.resolve(streams(reg, *s), &STREAMS));
            reg.plan_update_subscription(SESSIONS[*s], &u, *paused, t.as_deref())
        }
        Op::UpdateStream(s, t, ssrc, payload_types) => {
            let t = t.resolve(streams(reg, *s), &STREAMS);
            let update = StreamUpdate { ssrc: *ssrc, payload_types: payload_types.clone(), ..StreamUpdate::default() };
            reg.plan_update_stream(SESSIONS[*s], &t, &update)
        }
        Op::Learn(a, ssrc, pt) => {
            let source = addr(ADDRESSES[*a]?);
            return reg.plan_learn(source, *ssrc, *pt).map(|(_, _, plan)| Ok(plan));
        }
        Op::DeleteSubscription(s, u) => {
            let u = u.resolve(subs(reg, *s), &SUBSCRIPTIONS);
            reg.plan_delete_subscription(SESSIONS[*s], &u)
        }
        Op::Drain(on) => {
            reg.set_draining(*on);
            return None;
        }
    })
}

/// Checks the registry and that every worker's tables hold what the registry says they hold.
fn check(reg: &Registry, forwarders: &[Forwarder]) -> Result<(), TestCaseError> {
    reg.check_invariants().map_err(TestCaseError::fail)?;
    let usage = reg.usage();
    let streams: usize = forwarders.iter().map(Forwarder::stream_count).sum();
    let subscriptions: usize = forwarders.iter().map(Forwarder::subscription_count).sum();
    prop_assert_eq!(streams, usage.streams as usize);
    prop_assert_eq!(subscriptions, usage.subscriptions as usize);
    for (load, forwarder) in reg.worker_loads().iter().zip(forwarders) {
        prop_assert_eq!(forwarder.stream_count(), load.streams as usize);
        prop_assert_eq!(forwarder.subscription_count(), load.subscriptions as usize);
        prop_assert_eq!(forwarder.alias_count(), load.aliases as usize, "a stale or missing SSRC alias");
    }
    for stream in reg.sessions.values().flat_map(|s| s.streams.values()) {
        if let Some(at) = stream.alias(forwarders.len()) {
            prop_assert_eq!(forwarders[at].ssrc_alias(stream.ssrc), Some(stream.worker));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_registry_and_workers_consistent(
        endpoints in prop::collection::vec(step(create_endpoint()), 3..10),
        streams in prop::collection::vec(step(create_stream()), 2..8),
        subscriptions in prop::collection::vec(step(create_subscription()), 4..16),
        mix in prop::collection::vec(step(op()), 20..120),
    ) {
        let now = Instant::now();
        let mut reg = Registry::new(limits(), media(), WORKERS);
        let table = ForwarderLimits {
            max_streams: limits().max_streams_per_worker,
            max_subscriptions: limits().max_subscriptions_per_worker,
            max_subscriptions_per_stream: limits().max_subscriptions_per_stream,
            max_packet_bytes: 1500,
            max_packets_per_second_per_source: 0,
        };
        let mut forwarders: Vec<Forwarder> =
            (0..WORKERS).map(|w| Forwarder::with_hash_seed(w, WORKERS, table, 7)).collect();
        // Most requests need a session: start with both that fit.
        for id in &SESSIONS[..2] {
            let plan = reg.plan_create_session(id, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
            reg.commit(plan.change);
        }
        for (step, (op, failure)) in endpoints.iter().chain(&streams).chain(&subscriptions).chain(&mix).enumerate() {
            let Some(result) = plan(&mut reg, op, step as u64) else {
                check(&reg, &forwarders)?;
                continue;
            };
            let Ok(plan) = result else {
                check(&reg, &forwarders)?;
                continue;
            };
            if plan.change.is_noop() {
                prop_assert!(plan.commands.is_empty() && matches!(plan.outcome, Outcome::Existing(_)));
            }
            let deleting = matches!(plan.outcome, Outcome::Deleted(_));
            prop_assert!(deleting == plan.undo.is_empty() || plan.commands.is_empty());
            match failure {
                Some(Failure { index, applied }) if !deleting && *index < plan.commands.len() => {
                    // Refused: `index` commands succeeded. Timed out after applying: one more.
                    let succeeded = index + usize::from(*applied);
                    let before = snapshot(&reg);
                    for (worker, command) in &plan.commands[..succeeded] {
                        let result = forwarders[*worker].apply(now, command.clone());
                        prop_assert!(result.is_ok(), "{:?} on {}: {:?}", command, worker, result);
                    }
                    for (worker, command) in plan.rollback(succeeded) {
                        let undone = forwarders[worker].apply(now, command.clone());
                        prop_assert!(undone.is_ok(), "undo {:?} on {}: {:?}", command, worker, undone);
                    }
                    prop_assert_eq!(snapshot(&reg), before);
                }
                _ => {
                    for (worker, command) in &plan.commands {
                        let applied = forwarders[*worker].apply(now, command.clone());
                        prop_assert!(applied.is_ok(), "{:?} on {}: {:?}", command, worker, applied);
                    }
                    reg.commit(plan.change);
                }
            }
            check(&reg, &forwarders)?;
        }
    }
}
