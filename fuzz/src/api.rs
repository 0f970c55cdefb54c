//! Target `api`: the control API's requests, from protobuf to the workers' tables.
//!
//! A sequence of requests (creates, updates and deletes of sessions, endpoints, streams and subscriptions, built
//! from fields drawn from small pools so that they collide, or any protobuf bytes decoded as the request type),
//! drain toggles, and the worker events the control plane acts on (a latched source, an unknown SSRC to learn).
//! Each request goes through the conversion layer ([`convert`]) into the registry as the API serves it; each plan
//! is applied to one real [`Forwarder`] per worker, where every command must be accepted (the registry validated
//! the request, so a refusal is an inconsistency), or fails midway when the input says so and is rolled back,
//! leaving the registry as it was. After every request the registry's invariants hold and the workers' tables
//! are the sizes the registry says. A refusal names a field of the request (as the schema spells it), a kind
//! and id, or a limit by its config key.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use prost::Message;
use ringfwd::api::convert;
use ringfwd::registry::{Outcome, Plan, Registry, RegistryError, RegistryLimits};
use ringfwd_dataplane::core::{Command, Forwarder, ForwarderLimits, StreamId};
use ringfwd_proto::v1;
use ringfwd_tuning::{InterceptorName, Interceptors};
use tonic::Status;

const WORKERS: usize = 2;
const SESSIONS: [&str; 3] = ["s0", "s1", "s2"];
const ENDPOINTS: [&str; 5] = ["e0", "e1", "e2", "e3", "e4"];
const STREAMS: [&str; 4] = ["t0", "t1", "t2", "t3"];
const SUBSCRIPTIONS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];
const ADDRESSES: [&str; 6] =
    ["127.0.0.1:5000", "127.0.0.1:5001", "[::1]:5002", "127.0.0.1:0", "0.0.0.0:5004", "[::1]:5005"];

const LIMITS: RegistryLimits = RegistryLimits {
    max_sessions: 2,
    max_endpoints: 6,
    max_streams: 4,
    max_subscriptions: 5,
    max_subscriptions_per_stream: 2,
    max_streams_per_worker: 3,
    max_subscriptions_per_worker: 3,
    latch_window: Duration::from_secs(1),
};

#[derive(Arbitrary, Debug)]
enum Op<'a> {
    CreateSession(Id<3>),
    DeleteSession(Id<3>),
    CreateEndpoint {
        session: Id<3>,
        endpoint: Id<5>,
        address: Addr,
        rtcp: Addr,
        plus_one: bool,
        latching: bool,
    },
    UpdateEndpoint {
        session: Id<3>,
        endpoint: Id<5>,
        address: Addr,
        rtcp: Addr,
        plus_one: bool,
    },
    DeleteEndpoint {
        session: Id<3>,
        endpoint: Id<5>,
    },
    CreateStream {
        session: Id<3>,
        stream: Id<4>,
        endpoint: Id<5>,
        ssrc: u8,
        kind: u8,
        payload_types: Vec<u8>,
        clock: u8,
        interceptors: Option<Vec<Name>>,
    },
    UpdateStream {
        session: Id<3>,
        stream: Id<4>,
        ssrc: Option<u8>,
        payload_types: Option<Vec<u8>>,
        interceptors: Option<Vec<Name>>,
    },
    DeleteStream {
        session: Id<3>,
        stream: Id<4>,
    },
    CreateSubscription {
        session: Id<3>,
        subscription: Id<5>,
        stream: Id<4>,
        endpoint: Id<5>,
        out_ssrc: u8,
        map: Vec<(u8, u8)>,
        paused: bool,
        interceptors: Option<Vec<Name>>,
        rtx: Option<(u8, u8)>,
    },
    UpdateSubscription {
        session: Id<3>,
        subscription: Id<5>,
        paused: Option<bool>,
        stream: Option<Id<4>>,
        map: Option<Vec<(u8, u8)>>,
        interceptors: Option<Vec<Name>>,
        rtx: Option<(u8, u8)>,
    },
    DeleteSubscription {
        session: Id<3>,
        subscription: Id<5>,
    },
    /// Any protobuf bytes as the request of RPC `rpc`.
    Raw {
        rpc: u8,
        bytes: &'a [u8],
    },
    Drain(bool),
    /// A worker reports that stream `stream` (by creation order) latched to `address`.
    Latch {
        stream: u8,
        address: Addr,
    },
    /// A worker reports RTP from `address` with an SSRC no stream has.
    Learn {
        address: Addr,
        ssrc: u8,
        payload_type: u8,
    },
    /// The next plan's command `index` fails (refused, or timed out after it was applied).
    Fail {
        index: u8,
        timed_out: bool,
    },
}

/// An id: one of a pool of `N`, or any text.
#[derive(Arbitrary, Debug)]
enum Id<const N: usize> {
    Pool(u8),
    Text(String),
}

impl<const N: usize> Id<N> {
    fn text(&self, pool: &[&str; N]) -> String {
        match self {
            Id::Pool(i) => pool[usize::from(*i) % N].to_owned(),
            Id::Text(text) => text.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Addr {
    None,
    Pool(u8),
    Text(String),
}

impl Addr {
    fn text(&self) -> String {
        match self {
            Addr::None => String::new(),
            Addr::Pool(i) => ADDRESSES[usize::from(*i) % ADDRESSES.len()].to_owned(),
            Addr::Text(text) => text.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Text(String),
}

fn names(list: &Option<Vec<Name>>) -> Option<v1::InterceptorChain> {
    let all = InterceptorName::ALL;
    let name = |n: &Name| match n {
        Name::Known(i) => all[usize::from(*i) % all.len()].as_str().to_owned(),
        Name::Text(text) => text.clone(),
    };
    list.as_ref().map(|list| v1::InterceptorChain { names: list.iter().map(name).collect() })
}

fn mappings(map: &[(u8, u8)]) -> Vec<v1::PayloadTypeMapping> {
    map.iter().map(|&(from, to)| v1::PayloadTypeMapping { from: u32::from(from), to: u32::from(to) }).collect()
}

/// A request as the API receives it.
#[derive(Debug)]
enum Request {
    CreateSession(v1::CreateSessionRequest),
    DeleteSession(v1::DeleteSessionRequest),
    CreateEndpoint(v1::CreateEndpointRequest),
    UpdateEndpoint(v1::UpdateEndpointRequest),
    DeleteEndpoint(v1::DeleteEndpointRequest),
    CreateStream(v1::CreateStreamRequest),
    UpdateStream(v1::UpdateStreamRequest),
    DeleteStream(v1::DeleteStreamRequest),
    CreateSubscription(v1::CreateSubscriptionRequest),
    UpdateSubscription(v1::UpdateSubscriptionRequest),
    DeleteSubscription(v1::DeleteSubscriptionRequest),
}

impl Request {
    /// Decodes `bytes` as the request of RPC number `rpc` (modulo the RPCs that change the registry).
    fn decode(rpc: u8, bytes: &[u8]) -> Option<Request> {
        Some(match rpc % 11 {
            0 => Request::CreateSession(Message::decode(bytes).ok()?),
            1 => Request::DeleteSession(Message::decode(bytes).ok()?),
            2 => Request::CreateEndpoint(Message::decode(bytes).ok()?),
            3 => Request::UpdateEndpoint(Message::decode(bytes).ok()?),
            4 => Request::DeleteEndpoint(Message::decode(bytes).ok()?),
            5 => Request::CreateStream(Message::decode(bytes).ok()?),
            6 => Request::UpdateStream(Message::decode(bytes).ok()?),
            7 => Request::DeleteStream(Message::decode(bytes).ok()?),
            8 => Request::CreateSubscription(Message::decode(bytes).ok()?),
            9 => Request::UpdateSubscription(Message::decode(bytes).ok()?),
            _ => Request::DeleteSubscription(Message::decode(bytes).ok()?),
        })
    }

    /// The schema's name of the request message.
    fn message_name(&self) -> &'static str {
        match self {
            Request::CreateSession(_) => "CreateSessionRequest",
            Request::DeleteSession(_) => "DeleteSessionRequest",
            Request::CreateEndpoint(_) => "CreateEndpointRequest",
            Request::UpdateEndpoint(_) => "UpdateEndpointRequest",
            Request::DeleteEndpoint(_) => "DeleteEndpointRequest",
            Request::CreateStream(_) => "CreateStreamRequest",
            Request::UpdateStream(_) => "UpdateStreamRequest",
            Request::DeleteStream(_) => "DeleteStreamRequest",
            Request::CreateSubscription(_) => "CreateSubscriptionRequest",
            Request::UpdateSubscription(_) => "UpdateSubscriptionRequest",
            Request::DeleteSubscription(_) => "DeleteSubscriptionRequest",
        }
    }

    /// The registry's plan for it, as the API's handlers make it: the conversion first (its refusal as the
    /// status it answers), then the registry's plan.
    fn plan(self, reg: &Registry) -> Result<Result<Plan, RegistryError>, Status> {
        Ok(match self {
            Request::CreateSession(r) => reg.plan_create_session(&r.session_id, 1),
            Request::DeleteSession(r) => reg.plan_delete_session(&r.session_id),
            Request::CreateEndpoint(r) => reg.plan_create_endpoint(convert::endpoint_spec(r)?),
            Request::UpdateEndpoint(r) => {
                let address = convert::media_address(&r.media_address)?;
                let rtcp = convert::rtcp(&r.rtcp_address, r.rtcp_port_plus_one)?;
                reg.plan_update_endpoint(&r.session_id, &r.endpoint_id, address, rtcp)
            }
            Request::DeleteEndpoint(r) => reg.plan_delete_endpoint(&r.session_id, &r.endpoint_id),
            Request::CreateStream(r) => reg.plan_create_stream(convert::stream_spec(r)?),
            Request::UpdateStream(r) => {
                reg.plan_update_stream(&r.session_id, &r.stream_id, &convert::stream_update(&r))
            }
            Request::DeleteStream(r) => reg.plan_delete_stream(&r.session_id, &r.stream_id),
            Request::CreateSubscription(r) => reg.plan_create_subscription(convert::subscription_spec(r)),
            Request::UpdateSubscription(r) => {
                let update = convert::subscription_update(&r);
                reg.plan_update(&r.session_id, &r.subscription_id, &update)
            }
            Request::DeleteSubscription(r) => reg.plan_delete_subscription(&r.session_id, &r.subscription_id),
        })
    }
}

fn build(op: &Op<'_>) -> Option<Request> {
    let ssrc = |s: u8| u32::from(s % 8);
    Some(match op {
        Op::CreateSession(s) => {
            Request::CreateSession(v1::CreateSessionRequest { session_id: s.text(&SESSIONS), metadata: vec![] })
        }
        Op::DeleteSession(s) => Request::DeleteSession(v1::DeleteSessionRequest { session_id: s.text(&SESSIONS) }),
        Op::CreateEndpoint { session, endpoint, address, rtcp, plus_one, latching } => {
            Request::CreateEndpoint(v1::CreateEndpointRequest {
                session_id: session.text(&SESSIONS),
                endpoint_id: endpoint.text(&ENDPOINTS),
                media_address: address.text(),
                latching: *latching,
                metadata: vec![],
                rtcp_address: rtcp.text(),
                rtcp_port_plus_one: *plus_one,
            })
        }
        Op::UpdateEndpoint { session, endpoint, address, rtcp, plus_one } => {
            Request::UpdateEndpoint(v1::UpdateEndpointRequest {
                session_id: session.text(&SESSIONS),
                endpoint_id: endpoint.text(&ENDPOINTS),
                media_address: address.text(),
                rtcp_address: rtcp.text(),
                rtcp_port_plus_one: *plus_one,
            })
        }
        Op::DeleteEndpoint { session, endpoint } => Request::DeleteEndpoint(v1::DeleteEndpointRequest {
            session_id: session.text(&SESSIONS),
            endpoint_id: endpoint.text(&ENDPOINTS),
        }),
        Op::CreateStream { session, stream, endpoint, ssrc: s, kind, payload_types, clock, interceptors } => {
            Request::CreateStream(v1::CreateStreamRequest {
                session_id: session.text(&SESSIONS),
                stream_id: stream.text(&STREAMS),
                endpoint_id: endpoint.text(&ENDPOINTS),
                ssrc: ssrc(*s),
                kind: i32::from(*kind % 4),
                payload_types: payload_types.iter().map(|&pt| u32::from(pt % 130)).collect(),
                clock_rate_hz: [90_000, 48_000, 8_000, 0, 1_000_001][usize::from(*clock % 5)],
                metadata: vec![],
                interceptors: names(interceptors),
            })
        }
        Op::UpdateStream { session, stream, ssrc: s, payload_types, interceptors } => {
            Request::UpdateStream(v1::UpdateStreamRequest {
                session_id: session.text(&SESSIONS),
                stream_id: stream.text(&STREAMS),
                ssrc: s.map(ssrc),
                payload_types: payload_types
                    .as_ref()
                    .map(|types| v1::PayloadTypes { values: types.iter().map(|&pt| u32::from(pt % 130)).collect() }),
                interceptors: names(interceptors),
            })
        }
        Op::DeleteStream { session, stream } => Request::DeleteStream(v1::DeleteStreamRequest {
            session_id: session.text(&SESSIONS),
            stream_id: stream.text(&STREAMS),
        }),
        Op::CreateSubscription {
            session,
            subscription,
            stream,
            endpoint,
            out_ssrc,
            map,
            paused,
            interceptors,
            rtx,
        } => Request::CreateSubscription(v1::CreateSubscriptionRequest {
            session_id: session.text(&SESSIONS),
            subscription_id: subscription.text(&SUBSCRIPTIONS),
            stream_id: stream.text(&STREAMS),
            endpoint_id: endpoint.text(&ENDPOINTS),
            out_ssrc: ssrc(*out_ssrc),
            payload_type_map: mappings(map),
            paused: *paused,
            interceptors: names(interceptors),
            rtx: rtx.map(|(s, pt)| v1::Rtx { ssrc: 100 + u32::from(s % 4), payload_type: u32::from(pt % 130) }),
        }),
        Op::UpdateSubscription { session, subscription, paused, stream, map, interceptors, rtx } => {
            Request::UpdateSubscription(v1::UpdateSubscriptionRequest {
                session_id: session.text(&SESSIONS),
                subscription_id: subscription.text(&SUBSCRIPTIONS),
                paused: *paused,
                stream_id: stream.as_ref().map(|s| s.text(&STREAMS)),
                payload_type_map: map.as_ref().map(|m| v1::PayloadTypeMap { mappings: mappings(m) }),
                interceptors: names(interceptors),
                rtx: rtx.map(|(s, pt)| v1::Rtx { ssrc: u32::from(s % 4) * 100, payload_type: u32::from(pt % 130) }),
            })
        }
        Op::DeleteSubscription { session, subscription } => {
            Request::DeleteSubscription(v1::DeleteSubscriptionRequest {
                session_id: session.text(&SESSIONS),
                subscription_id: subscription.text(&SUBSCRIPTIONS),
            })
        }
        Op::Raw { rpc, bytes } => return Request::decode(*rpc, bytes),
        Op::Drain(_) | Op::Latch { .. } | Op::Learn { .. } | Op::Fail { .. } => return None,
    })
}

/// The field names of every message of the schema, by message name.
fn schema() -> &'static prost_reflect::DescriptorPool {
    static POOL: OnceLock<prost_reflect::DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| prost_reflect::DescriptorPool::decode(ringfwd_proto::FILE_DESCRIPTOR_SET).expect("the schema"))
}

/// `field` (e.g. `payload_type_map[1].to`, `rtx.payload_type`) starts with a field of `message`.
fn names_a_field(message: &str, field: &str) -> bool {
    let first = field.split(['.', '[']).next().unwrap_or_default();
    let descriptor = schema().get_message_by_name(&format!("ringfwd.v1.{message}")).expect("a request message");
    let found = descriptor.fields().any(|f| f.name() == first);
    found
}

struct World {
    reg: Registry,
    forwarders: Vec<Forwarder>,
    now: Instant,
    /// Data-plane stream ids in the order their `AddStream` was applied.
    streams: Vec<StreamId>,
    fail: Option<(usize, bool)>,
}

/// The input `data` decodes to, as text.
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", crate::structured::<Vec<Op<'_>>>(data))
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some(ops) = crate::structured::<Vec<Op>>(data) else {
        return;
    };
    let mut interceptors = Interceptors::default();
    interceptors.nack_cache.max_packets = 16;
    let media: Vec<SocketAddr> = vec!["127.0.0.1:40000".parse().expect("v4"), "[::1]:40000".parse().expect("v6")];
    let table = ForwarderLimits {
        max_streams: LIMITS.max_streams_per_worker,
        max_subscriptions: LIMITS.max_subscriptions_per_worker,
        max_subscriptions_per_stream: LIMITS.max_subscriptions_per_stream,
        max_packet_bytes: 1500,
        max_packets_per_second_per_source: 0,
    };
    let mut world = World {
        reg: Registry::new(LIMITS, media, WORKERS).with_interceptors(interceptors),
        forwarders: (0..WORKERS).map(|w| Forwarder::with_hash_seed(w, WORKERS, table, 7)).collect(),
        now: crate::epoch(),
        streams: Vec::new(),
        fail: None,
    };
    for op in ops.iter().take(128) {
        world.now += Duration::from_millis(10);
        if crate::tracing() {
            eprintln!("op {op:?}");
        }
        match op {
            Op::Drain(on) => world.reg.set_draining(*on),
            Op::Fail { index, timed_out } => world.fail = Some((usize::from(*index), *timed_out)),
            Op::Latch { stream, address } => {
                let (Some(&id), Ok(source)) =
                    (world.streams.get(usize::from(*stream) % world.streams.len().max(1)), address.text().parse())
                else {
                    continue;
                };
                if let Some(plan) = world.reg.plan_latch(id, source) {
                    world.execute(plan);
                }
            }
            Op::Learn { address, ssrc, payload_type } => {
                let Ok(source) = address.text().parse() else { continue };
                if let Some((_, _, plan)) = world.reg.plan_learn(source, u32::from(ssrc % 8), payload_type % 128) {
                    world.execute(plan);
                }
            }
            op => {
                let Some(request) = build(op) else { continue };
                let message = request.message_name();
                match request.plan(&world.reg) {
                    Err(status) => {
                        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
                        let field = status.message().strip_prefix("invalid ").and_then(|m| m.split(':').next());
                        assert!(field.is_some_and(|f| names_a_field(message, f)), "{message}: {}", status.message());
                    }
                    Ok(Err(error)) => check_refusal(message, &error),
                    Ok(Ok(plan)) => {
                        if crate::tracing() {
                            eprintln!("  plan {:?} -> {:?}", plan.commands, plan.outcome);
                        }
                        world.execute(plan)
                    }
                }
            }
        }
        world.check();
    }
}

fn check_refusal(message: &str, error: &RegistryError) {
    match error {
        RegistryError::InvalidArgument { field, reason } => {
            assert!(names_a_field(message, field) && !reason.is_empty(), "{message}: {error}");
        }
        RegistryError::NotFound { kind, id: _ } | RegistryError::AlreadyExists { kind, id: _ } => {
            assert!(["session", "endpoint", "stream", "subscription", "ssrc"].contains(kind), "{error}");
        }
        RegistryError::ResourceExhausted { limit, .. } => {
            assert!(limit.starts_with("admission.") || limit.starts_with("limits."), "{error}");
        }
        RegistryError::FailedPrecondition(reason) | RegistryError::Unavailable(reason) => {
            assert!(!reason.is_empty());
        }
    }
}

impl World {
    /// Runs a plan's commands on the workers and commits it, or fails it midway as asked and rolls it back.
    fn execute(&mut self, plan: Plan) {
        let deleting = matches!(plan.outcome, Outcome::Deleted(_));
        assert!(deleting || plan.undo.len() == plan.commands.len(), "an undo per command");
        if plan.change.is_noop() {
            assert!(plan.commands.is_empty() && matches!(plan.outcome, Outcome::Existing(_)));
        }
        let fail = self.fail.take().filter(|&(index, _)| !deleting && index < plan.commands.len());
        let applied = match fail {
            Some((index, timed_out)) => index + usize::from(timed_out),
            None => plan.commands.len(),
        };
        for (worker, command) in &plan.commands[..applied] {
            self.apply(*worker, command.clone(), "");
        }
        if fail.is_some() {
            let (usage, loads) = (self.reg.usage(), self.reg.worker_loads());
            for (worker, command) in plan.rollback(applied) {
                self.apply(worker, command, "undo ");
            }
            assert_eq!((self.reg.usage(), self.reg.worker_loads()), (usage, loads), "a failed plan changes nothing");
        } else {
            self.reg.commit(plan.change);
        }
    }

    fn apply(&mut self, worker: usize, command: Command, what: &str) {
        if let Command::AddStream { id, .. } = &command {
            self.streams.push(*id);
        }
        let result = self.forwarders[worker].apply(self.now, command.clone());
        assert!(result.is_ok(), "{what}{command:?} on worker {worker}: {result:?}");
    }

    /// The registry is consistent and the workers hold what it says.
    fn check(&self) {
        if let Err(e) = self.reg.check_invariants() {
            panic!("registry invariant: {e}");
        }
        for (forwarder, load) in self.forwarders.iter().zip(self.reg.worker_loads()) {
            assert_eq!(forwarder.stream_count(), load.streams as usize, "streams");
            assert_eq!(forwarder.subscription_count(), load.subscriptions as usize, "subscriptions");
            assert_eq!(forwarder.alias_count(), load.aliases as usize, "aliases");
        }
        let usage = self.reg.usage();
        let streams: usize = self.forwarders.iter().map(Forwarder::stream_count).sum();
        assert_eq!(streams, usage.streams as usize);
    }
}
