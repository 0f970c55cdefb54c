//! Planning creates: sessions, endpoints, streams and subscriptions.
//!
//! Owns the rules of each create (references, idempotency, SSRC uniqueness, admission) and the commands
//! that realise it. Planning validates the request completely and reads the registry; it must never
//! change it (only `commit` does), except for drawing fresh data-plane ids, which are never reused.

use std::sync::atomic::Ordering;

use ringfwd_dataplane::control::{
    owner_of, Command, EgressSpec, Numbering, Rewrite, RtxParams, SourcePolicy, StreamId, SubscriptionId,
    IDENTITY_PAYLOAD_TYPE_MAP, NO_DESTINATION,
};
use ringfwd_tuning::{specs, ChainSide};

use super::chains::Chains;

use super::error::RegistryError;
use super::model::{
    EndpointRecord, EndpointSpec, SessionRecord, StreamRecord, StreamSpec, SubscriptionRecord, SubscriptionSpec,
};
use super::plan::{admit, Change, ChangeKind, Outcome, Plan, View};
use super::validate;
use super::Registry;

/// Checks that `endpoint_id` would receive `stream_id` (and, when given, `out_ssrc`) by one subscription only,
/// `except` the subscription being changed: the same stream twice would reach it twice, and two subscriptions with
/// one out SSRC would share one key for its feedback (the config's static sessions come through here too).
pub(super) fn receives_once(
    session: &SessionRecord,
    endpoint_id: &str,
    (stream_id, out_ssrc): (&str, Option<u32>),
    except: Option<&str>,
) -> Result<(), RegistryError> {
    let others =
        session.subscriptions.iter().filter(|(id, s)| s.endpoint_id == endpoint_id && Some(id.as_str()) != except);
    for (other_id, other) in others {
        if other.stream_id == stream_id {
            return Err(RegistryError::invalid(
                "stream_id",
                format!("endpoint {endpoint_id} already receives stream {stream_id} by subscription {other_id}"),
            ));
        }
        let other_out = match other.out_ssrc {
            0 => session.streams.get(&other.stream_id).map_or(0, |s| s.ssrc),
            explicit => explicit,
        };
        if let Some(out_ssrc) = out_ssrc.filter(|&out| out == other_out) {
            return Err(RegistryError::invalid(
                "out_ssrc",
                format!(
                    "{out_ssrc:#x}: endpoint {endpoint_id} already receives this SSRC by subscription {other_id} \
                     (its feedback could not be told apart)"
                ),
            ));
        }
    }
    Ok(())
}

/// `Existing(view)` if `existing` equals what the request asks for, else `AlreadyExists`.
fn idempotent(same: bool, kind: &'static str, id: &str, view: View) -> Result<Plan, RegistryError> {
    if same {
        Ok(Plan::local(ChangeKind::Nothing, Outcome::Existing(view)))
    } else {
        Err(RegistryError::AlreadyExists { kind, id: id.to_owned() })
    }
}

impl Registry {
    /// Plans `CreateSession`. No worker commands. Refused with `Unavailable` while draining.
    pub fn plan_create_session(&self, id: &str, now_unix_ms: u64) -> Result<Plan, RegistryError> {
        validate::id("session_id", id)?;
        if let Some(session) = self.sessions.get(id) {
            let view = View::Session(session.view(id));
            return idempotent(true, "session", id, view);
        }
        if self.draining {
            return Err(RegistryError::Unavailable("the node is draining: it accepts no new sessions".to_owned()));
        }
        admit(self.usage.sessions, self.limits.max_sessions, "admission.max_sessions")?;
        let record = SessionRecord::new(now_unix_ms);
        let change = ChangeKind::CreateSession { session_id: id.to_owned(), created_unix_ms: now_unix_ms };
        Ok(Plan::local(change, Outcome::Created(View::Session(record.view(id)))))
    }

    /// Plans `CreateEndpoint`. No worker commands: endpoints live only in the registry.
    pub fn plan_create_endpoint(&self, spec: EndpointSpec) -> Result<Plan, RegistryError> {
        validate::id("session_id", &spec.session_id)?;
        validate::id("endpoint_id", &spec.endpoint_id)?;
        validate::media_address(spec.media_address, spec.latching, &self.media)?;
        validate::rtcp(spec.rtcp, spec.media_address, &self.media)?;
        let session = self.session(&spec.session_id)?;
        let record = EndpointRecord {
            media_address: spec.media_address,
            latching: spec.latching,
            latched_address: None,
            rtcp: spec.rtcp,
        };
        if let Some(existing) = session.endpoints.get(&spec.endpoint_id) {
            let view = View::Endpoint(existing.view(&spec.session_id, &spec.endpoint_id));
            let same = existing.media_address == record.media_address
                && existing.latching == record.latching
                && existing.rtcp == record.rtcp;
            return idempotent(same, "endpoint", &spec.endpoint_id, view);
        }
        admit(self.usage.endpoints, self.limits.max_endpoints, "admission.max_endpoints")?;
        let view = View::Endpoint(record.view(&spec.session_id, &spec.endpoint_id));
        let change = ChangeKind::CreateEndpoint { session_id: spec.session_id, endpoint_id: spec.endpoint_id, record };
        Ok(Plan::local(change, Outcome::Created(view)))
    }

    /// Plans `CreateStream`: one `AddStream` to the worker that owns the SSRC.
    pub fn plan_create_stream(&self, spec: StreamSpec) -> Result<Plan, RegistryError> {
        self.plan_stream(spec, false)
    }

    /// Plans restoring a stream as it was before a restart (see `crate::state`): [`Registry::plan_create_stream`],
    /// but a stream declared without an SSRC that had learned `spec.ssrc` (not 0) is created with it and goes on
    /// following its publisher's changes (`learned`), as it did.
    pub fn plan_restore_stream(&self, spec: StreamSpec, learned: bool) -> Result<Plan, RegistryError> {
        self.plan_stream(spec, learned)
    }

    fn plan_stream(&self, spec: StreamSpec, learned: bool) -> Result<Plan, RegistryError> {
        validate::id("session_id", &spec.session_id)?;
        validate::id("stream_id", &spec.stream_id)?;
        validate::id("endpoint_id", &spec.endpoint_id)?;
        let kind = validate::kind(spec.kind)?;
        validate::payload_types(&spec.payload_types)?;
        validate::clock_rate_hz(spec.clock_rate_hz)?;
        let interceptors = validate::interceptors(
            spec.interceptors.as_deref(),
            &self.interceptors.ingress,
            ChainSide::Ingress,
            &self.interceptors.plugins,
        )?;
        let session = self.session(&spec.session_id)?;
        if let Some(existing) = session.streams.get(&spec.stream_id) {
            let same = existing.endpoint_id == spec.endpoint_id
                && (if existing.learns_ssrc { spec.ssrc == 0 } else { existing.ssrc == spec.ssrc })
                && existing.kind == kind
                && existing.payload_types == spec.payload_types
                && existing.clock_rate_hz == spec.clock_rate_hz
                && existing.interceptors == interceptors;
            let view = View::Stream(existing.view(&spec.session_id, &spec.stream_id));
            return idempotent(same, "stream", &spec.stream_id, view);
        }
        let publisher = session
            .endpoints
            .get(&spec.endpoint_id)
            .ok_or_else(|| RegistryError::not_found("endpoint", &spec.endpoint_id))?;
        if self.ssrcs.contains_key(&spec.ssrc) {
            return Err(RegistryError::AlreadyExists { kind: "ssrc", id: spec.ssrc.to_string() });
        }
        let learned = learned && spec.ssrc != 0;
        let learns_ssrc = spec.ssrc == 0 || learned;
        if learns_ssrc {
            self.check_learnable(session, &spec.endpoint_id, &spec.payload_types)?;
        }
        admit(self.usage.streams, self.limits.max_streams, "admission.max_streams")?;
        let id = StreamId(self.next_stream_id.fetch_add(1, Ordering::Relaxed));
        let ssrc = if spec.ssrc == 0 { self.placeholder_ssrc(id) } else { spec.ssrc };
        let worker = owner_of(ssrc, self.workers);
        admit(self.loads[worker].streams, self.limits.max_streams_per_worker, "limits.max_streams_per_worker")?;
        let source = self.source_policy(publisher);
        let record = StreamRecord {
            endpoint_id: spec.endpoint_id,
            ssrc,
            learns_ssrc,
            ssrc_known: spec.ssrc != 0,
            kind,
            payload_types: spec.payload_types,
            clock_rate_hz: spec.clock_rate_hz,
            worker,
            data_plane_id: id,
            subscriptions: 0,
            interceptors,
        };
        let add = add_stream(&record, source, &self.interceptors);
        let (mut commands, mut undo) = (vec![(worker, add)], vec![(worker, Command::RemoveStream { id })]);
        // A peer without rtcp-mux: its RTCP comes from (and goes to) its RTCP address.
        if let Some(rtcp) = publisher.rtcp_address() {
            commands.push((worker, Command::SetRtcpSource { id, source: Some(rtcp) }));
            undo.push((worker, Command::SetRtcpSource { id, source: None }));
        }
        Ok(Plan {
            commands,
            undo,
            outcome: Outcome::Created(View::Stream(record.view(&spec.session_id, &spec.stream_id))),
            change: Change(ChangeKind::CreateStream { session_id: spec.session_id, stream_id: spec.stream_id, record }),
        })
    }

    /// Plans `CreateSubscription`: one `AddSubscription` to the stream's worker (paused from the start when
    /// asked, so not a single packet reaches a subscription created paused).
    pub fn plan_create_subscription(&self, spec: SubscriptionSpec) -> Result<Plan, RegistryError> {
        self.plan_subscription(spec, Resume::Fresh)
    }

    /// Plans restoring a subscription as it was before a restart or a takeover (see `crate::state`):
    /// [`Registry::plan_create_subscription`], its subscriber's numbering going on as `resume` says.
    pub fn plan_restore_subscription(&self, spec: SubscriptionSpec, resume: Resume) -> Result<Plan, RegistryError> {
        self.plan_subscription(spec, resume)
    }

    fn plan_subscription(&self, spec: SubscriptionSpec, resume: Resume) -> Result<Plan, RegistryError> {
        validate::id("session_id", &spec.session_id)?;
        validate::id("subscription_id", &spec.subscription_id)?;
        validate::id("stream_id", &spec.stream_id)?;
        validate::id("endpoint_id", &spec.endpoint_id)?;
        validate::payload_type_map(&spec.payload_type_map)?;
        validate::rtx(spec.rtx.as_ref())?;
        let interceptors = validate::interceptors(
            spec.interceptors.as_deref(),
            &self.interceptors.egress,
            ChainSide::Egress,
            &self.interceptors.plugins,
        )?;
        let session = self.session(&spec.session_id)?;
        if let Some(existing) = session.subscriptions.get(&spec.subscription_id) {
            let same = existing.stream_id == spec.stream_id
                && existing.endpoint_id == spec.endpoint_id
                && existing.out_ssrc == spec.out_ssrc
                && existing.payload_type_map == spec.payload_type_map
                && existing.paused == spec.paused
                && existing.seq_offset == spec.seq_offset
                && existing.ts_offset == spec.ts_offset
                && existing.interceptors == interceptors
                && existing.rtx == spec.rtx;
            let view = existing.view(&spec.session_id, &spec.subscription_id);
            return idempotent(same, "subscription", &spec.subscription_id, View::Subscription(view));
        }
        let stream =
            session.streams.get(&spec.stream_id).ok_or_else(|| RegistryError::not_found("stream", &spec.stream_id))?;
        let endpoint = session
            .endpoints
            .get(&spec.endpoint_id)
            .ok_or_else(|| RegistryError::not_found("endpoint", &spec.endpoint_id))?;
        if stream.endpoint_id == spec.endpoint_id {
            return Err(RegistryError::invalid(
                "endpoint_id",
                format!("endpoint {} publishes stream {}: it cannot subscribe to it", spec.endpoint_id, spec.stream_id),
            ));
        }
        let out_ssrc = if spec.out_ssrc == 0 { stream.ssrc } else { spec.out_ssrc };
        receives_once(session, &spec.endpoint_id, (&spec.stream_id, Some(out_ssrc)), None)?;
        let no_destination = || {
            RegistryError::invalid(
                "endpoint_id",
                format!("endpoint {} has no media address to send to", spec.endpoint_id),
            )
        };
        // A latching endpoint receives where it sends from; with no address yet, the subscription is held.
        let destination = endpoint.latched_address.or(endpoint.media_address);
        let socket = match destination {
            Some(destination) => validate::socket_for(destination, &self.media).ok_or_else(no_destination)?,
            None if endpoint.latching => 0,
            None => return Err(no_destination()),
        };
        admit(self.usage.subscriptions, self.limits.max_subscriptions, "admission.max_subscriptions")?;
        admit(stream.subscriptions, self.limits.max_subscriptions_per_stream, "limits.max_subscriptions_per_stream")?;
        let worker = stream.worker;
        admit(
            self.loads[worker].subscriptions,
            self.limits.max_subscriptions_per_worker,
            "limits.max_subscriptions_per_worker",
        )?;
        let id = SubscriptionId(self.next_subscription_id.fetch_add(1, Ordering::Relaxed));
        let record = SubscriptionRecord {
            stream_id: spec.stream_id,
            endpoint_id: spec.endpoint_id,
            out_ssrc: spec.out_ssrc,
            payload_type_map: spec.payload_type_map,
            paused: spec.paused,
            seq_offset: spec.seq_offset,
            ts_offset: spec.ts_offset,
            destination,
            socket,
            worker,
            data_plane_id: id,
            interceptors,
            rtx: spec.rtx,
        };
        let egress = egress_spec(&record, stream, &self.interceptors);
        let mut commands = vec![(worker, add_subscription(&record, stream.data_plane_id, egress, resume))];
        let mut undo = vec![(worker, Command::RemoveSubscription { id })];
        if let Some(rtcp) = endpoint.rtcp_address() {
            commands.push((worker, Command::SetRtcpDestination { id, dest: Some(rtcp) }));
            undo.push((worker, Command::SetRtcpDestination { id, dest: None }));
        }
        if let Some(route) = FeedbackRoute::of(&record, self.loads.len()) {
            // A worker's route table is as large as its subscription table.
            admit(
                self.loads[route.worker].feedback_routes,
                self.limits.max_subscriptions_per_worker,
                "limits.max_subscriptions_per_worker (feedback routes)",
            )?;
            if let (Some(add), Some(remove)) = (route.add(), route.remove()) {
                commands.push((route.worker, add));
                undo.push((route.worker, remove));
            }
        }
        let view = record.view(&spec.session_id, &spec.subscription_id);
        // A held subscription (no address yet) asks when its endpoint latches (see `latch`).
        let starts = !record.paused && record.destination.is_some();
        let mut plan = Plan {
            commands,
            undo,
            change: Change(ChangeKind::CreateSubscription {
                session_id: spec.session_id,
                subscription_id: spec.subscription_id,
                record,
            }),
            outcome: Outcome::Created(View::Subscription(view)),
        };
        if starts {
            plan.request_keyframe(worker, id, stream.kind);
        }
        Ok(plan)
    }

    /// Where a stream of `publisher` takes its packets from: its address, or the first that sends (latching; its
    /// address, if any, is the fallback).
    pub(crate) fn source_policy(&self, publisher: &EndpointRecord) -> SourcePolicy {
        match (publisher.latching, publisher.media_address) {
            (false, Some(address)) => SourcePolicy::Fixed(address),
            (_, fallback) => SourcePolicy::Latch { window: self.limits.latch_window, fallback },
        }
    }

    /// The session `id` (validated), or `NotFound`.
    pub(crate) fn session(&self, id: &str) -> Result<&SessionRecord, RegistryError> {
        validate::id("session_id", id)?;
        self.sessions.get(id).ok_or_else(|| RegistryError::not_found("session", id))
    }
}

/// The egress interceptors of `record` on `stream`: its chain with the config's parameters, the
/// payload-type filter letting the stream's declared payload types through (all when it declares
/// none), and its RTX.
pub(crate) fn egress_spec(record: &SubscriptionRecord, stream: &StreamRecord, chains: &Chains) -> EgressSpec {
    let allowed = if stream.payload_types.is_empty() {
        u128::MAX
    } else {
        stream.payload_types.iter().filter(|&&pt| pt < 128).fold(0u128, |bits, &pt| bits | 1u128 << pt)
    };
    let mut spec = specs::egress(&record.interceptors, &chains.params, allowed, &chains.plugins);
    spec.rtx = record.rtx.map(|rtx| RtxParams { ssrc: rtx.ssrc, payload_type: (rtx.payload_type & 0x7f) as u8 });
    spec
}

/// The data plane's payload-type table of `record`'s (validated) map: identity but for its entries.
pub(crate) fn payload_type_map(record: &SubscriptionRecord) -> [u8; 128] {
    let mut map = IDENTITY_PAYLOAD_TYPE_MAP;
    for entry in &record.payload_type_map {
        // Validated: both are below 128, so this always writes.
        let slot = usize::try_from(entry.from).ok().and_then(|from| map.get_mut(from));
        if let (Some(slot), Ok(to)) = (slot, u8::try_from(entry.to)) {
            *slot = to;
        }
    }
    map
}

/// Where a subscription's subscriber feedback lands when that is not the subscription's own worker: feedback
/// names the out SSRC, and the data plane steers (and hands over) by it. That worker gets a route to the
/// subscription's (see the data plane's `core::routes`).
pub(crate) struct FeedbackRoute<'a> {
    /// The worker that owns the out SSRC.
    pub(crate) worker: usize,
    record: &'a SubscriptionRecord,
}

impl<'a> FeedbackRoute<'a> {
    /// The route `record` needs on a node of `workers` workers, if any (none when the out SSRC is unset: the
    /// publisher's SSRC is owned by the subscription's worker).
    pub(crate) fn of(record: &'a SubscriptionRecord, workers: usize) -> Option<FeedbackRoute<'a>> {
        let worker = owner_of(record.out_ssrc, workers);
        (record.out_ssrc != 0 && worker != record.worker).then_some(FeedbackRoute { worker, record })
    }

    /// The command that sets the route up (`None` while the subscription has no destination: it is set up when
    /// the subscriber latches, see `latch`).
    pub(crate) fn add(&self) -> Option<Command> {
        let r = self.record;
        let dest = r.destination?;
        Some(Command::AddFeedbackRoute { id: r.data_plane_id, dest, out_ssrc: r.out_ssrc, owner: r.worker })
    }

    /// The command that takes it away (`None` while the subscription has no destination).
    pub(crate) fn remove(&self) -> Option<Command> {
        let r = self.record;
        let dest = r.destination?;
        Some(Command::RemoveFeedbackRoute { id: r.data_plane_id, dest, out_ssrc: r.out_ssrc })
    }
}

impl Registry {
    /// Plans the feedback routes of subscriptions whose records change from `before` to `after` (an out SSRC pinned
    /// to an SSRC another worker owns): each route that goes is removed and each that comes is added, with their undo;
    /// the new ones are admitted on their workers together (`limits.max_subscriptions_per_worker (feedback routes)`).
    pub(crate) fn plan_reroutes<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a SubscriptionRecord, &'a SubscriptionRecord)>,
        commands: &mut Vec<(usize, Command)>,
        undo: &mut Vec<(usize, Command)>,
    ) -> Result<(), RegistryError> {
        let workers = self.loads.len();
        let mut added = vec![0u32; workers];
        for (before, after) in changes {
            let (old, new) = (FeedbackRoute::of(before, workers), FeedbackRoute::of(after, workers));
            let key = |route: &FeedbackRoute<'_>| (route.worker, route.add());
            if old.as_ref().map(key) == new.as_ref().map(key) {
                continue;
            }
            if let Some(old) = &old {
                if let (Some(remove), Some(add)) = (old.remove(), old.add()) {
                    commands.push((old.worker, remove));
                    undo.push((old.worker, add));
                }
            }
            let Some(new) = new else {
                continue;
            };
            if old.as_ref().is_none_or(|old| old.worker != new.worker) {
                let used = self.loads[new.worker].feedback_routes + added[new.worker];
                admit(
                    used,
                    self.limits.max_subscriptions_per_worker,
                    "limits.max_subscriptions_per_worker (feedback routes)",
                )?;
                added[new.worker] += 1;
            }
            if let (Some(add), Some(remove)) = (new.add(), new.remove()) {
                commands.push((new.worker, add));
                undo.push((new.worker, remove));
            }
        }
        Ok(())
    }
}

/// The `AddStream` that realises `record` on its worker, its source checked by `source` and its ingress chain
/// from the node's chain context.
pub(crate) fn add_stream(record: &StreamRecord, source: SourcePolicy, chains: &Chains) -> Command {
    Command::AddStream {
        id: record.data_plane_id,
        ssrc: record.ssrc,
        source,
        clock_rate_hz: record.clock_rate_hz,
        ingress: ingress_spec(record, chains),
    }
}

/// The ingress spec stream `record`'s chain is bound with, from the node's chain context.
pub(crate) fn ingress_spec(record: &StreamRecord, chains: &Chains) -> ringfwd_dataplane::control::IngressSpec {
    specs::ingress(&record.interceptors, &chains.params, &chains.plugins)
}

/// How a subscription numbers the packets it sends first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// By its spec's offsets: a new subscription.
    Fresh,
    /// On from what its subscriber last received: the first packet goes out as `seq + 1`, its timestamp advanced by
    /// the time since (see `Command::AddSubscription::continues`): after a crash.
    After(Numbering),
    /// By the offsets it had: after a takeover, where the last process stopped exactly there.
    Offsets {
        /// The sequence-number offset.
        seq_offset: u16,
        /// The timestamp offset.
        ts_offset: u32,
    },
}

/// The `AddSubscription` that realises `record` on stream `stream` of its worker.
pub(crate) fn add_subscription(
    record: &SubscriptionRecord,
    stream: StreamId,
    egress: EgressSpec,
    resume: Resume,
) -> Command {
    let (seq_offset, ts_offset, continues) = match resume {
        Resume::Fresh => (record.seq_offset, record.ts_offset, None),
        Resume::After(numbering) => (record.seq_offset, record.ts_offset, Some(numbering)),
        Resume::Offsets { seq_offset, ts_offset } => (seq_offset, ts_offset, None),
    };
    let rewrite = Rewrite {
        out_ssrc: (record.out_ssrc != 0).then_some(record.out_ssrc),
        seq_offset,
        ts_offset,
        payload_type_map: payload_type_map(record),
    };
    Command::AddSubscription {
        id: record.data_plane_id,
        stream,
        dest: record.destination.unwrap_or(NO_DESTINATION),
        socket: record.socket,
        rewrite,
        paused: record.paused,
        egress,
        continues,
    }
}
