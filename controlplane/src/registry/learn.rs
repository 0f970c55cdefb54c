//! Streams that learn their SSRC: SIP SDP rarely carries `a=ssrc`, and user agents change SSRC when they restart.
//!
//! Owns the rules of a stream declared without an SSRC (`ssrc = 0`): it must be recognisable on the shared media
//! port by its source (its endpoint has a media or latched address) and by its payload types (declared, and disjoint
//! from those of the endpoint's other such streams); until it learns, it holds a placeholder SSRC no packet carries,
//! so it lives in the data plane like any stream. When a worker reports RTP with an unknown SSRC from the endpoint's
//! address with one of the stream's payload types ([`Registry::plan_learn`]):
//! - the first SSRC is adopted: the stream and its subscriptions are bound anew on the worker that owns the SSRC
//!   (nothing was sent yet, so nothing is lost by binding them afresh), with the RTCP addresses of peers without
//!   rtcp-mux set again;
//! - a later one (the user agent restarted) is followed in place, with `ChangeStreamSsrc` (see `update_stream`): the
//!   subscribers keep their SSRC and continuous numbering, because the stream stays on its worker, where their
//!   numbering lives.
//!
//! # SSRC aliases
//! The kernel steers a datagram to the worker that owns its SSRC (`owner_of(ssrc) = ssrc % workers`), so with two
//! workers half of all restarts pick an SSRC the stream's worker does not own. That worker (and `UpdateStream` with
//! such an SSRC does the same) keeps the stream; the SSRC's owner gets an `AliasSsrc` naming it, and hands over what
//! the kernel steers to it about the SSRC: the publisher's RTP and RTCP, and the feedback of subscribers that receive
//! the SSRC unrewritten. The registry records the alias on the stream (`StreamRecord::alias`, counted per worker and
//! bounded by `limits.max_streams_per_worker`, as the data plane's alias table is), and its SSRC index holds the new
//! SSRC, so no other stream can take it. Deleting the stream (or its endpoint or session) removes the alias; changing
//! its SSRC again moves it (or removes it, back on an SSRC the stream's worker owns). Subscriptions pinned to an
//! aliased SSRC by such a change (their out SSRC was unset) get a feedback route on its owner instead.
//!
//! The cost: every packet of such a stream is copied once through the handover ring (bounded; a full ring is a
//! counted `handover_full` drop) and counted as `handover_out` on the SSRC's owner and `handover_in` on the stream's
//! worker, until the stream changes its SSRC again or goes. Packets of streams at home pay nothing: the alias table is
//! looked up only when no stream of the receiving worker has the packet's SSRC.
//!
//! A worker reports each unknown (source, SSRC) once per statistics round; what no stream took is offered again
//! after every commit for one round (`api::unclaimed`), so a stream declared just after its first packets takes
//! their SSRC at once. Two live SSRCs from one source with the same payload types would make the stream follow
//! each at most once a round: the newest wins. Must never change the registry (only `commit` does).

use std::net::SocketAddr;

use ringfwd_dataplane::control::{owner_of, Command, StreamId};

use super::create::{add_stream, add_subscription, egress_spec, FeedbackRoute, Resume};
use super::error::RegistryError;
use super::model::{EndpointRecord, SessionRecord, StreamRecord, SubscriptionRecord};
use super::plan::{admit, Change, ChangeKind, Outcome, Plan, View};
use super::update_stream::StreamUpdate;
use super::Registry;

impl Registry {
    /// Checks that a stream of `endpoint_id` declared without an SSRC can be recognised by its source and its
    /// `payload_types`.
    pub(super) fn check_learnable(
        &self,
        session: &SessionRecord,
        endpoint_id: &str,
        payload_types: &[u32],
    ) -> Result<(), RegistryError> {
        let has_address = session
            .endpoints
            .get(endpoint_id)
            .is_some_and(|e| e.media_address.is_some() || e.latched_address.is_some());
        if !has_address {
            return Err(RegistryError::invalid(
                "ssrc",
                format!(
                    "0 (learn it) needs a publisher with a media address: endpoint {endpoint_id} has none yet, so its \
                     packets could not be told apart on the shared media port"
                ),
            ));
        }
        if payload_types.is_empty() {
            return Err(RegistryError::invalid("payload_types", "required for a stream that learns its ssrc (ssrc 0)"));
        }
        let others = session.streams.iter().filter(|(_, s)| s.endpoint_id == endpoint_id && s.learns_ssrc);
        for (other_id, other) in others {
            if let Some(pt) = payload_types.iter().find(|pt| other.payload_types.contains(pt)) {
                return Err(RegistryError::invalid(
                    "payload_types",
                    format!("{pt} is also in stream {other_id}, which learns its ssrc from the same endpoint"),
                ));
            }
        }
        Ok(())
    }

    /// A placeholder SSRC for stream `id` until it learns its own: free on the node, derived from the id.
    pub(super) fn placeholder_ssrc(&self, id: StreamId) -> u32 {
        let mut ssrc = (id.0 as u32).wrapping_mul(0x9e37_79b9) | 1;
        while self.ssrcs.contains_key(&ssrc) {
            ssrc = ssrc.wrapping_add(2);
        }
        ssrc
    }

    /// Plans what a worker's report "RTP with the unknown `ssrc` and `payload_type` came from `source`" changes:
    /// `None` when no stream learns from there with that payload type, another stream has `ssrc`, or the change
    /// cannot be admitted (an alias over `limits.max_streams_per_worker`). A stream that learned its SSRC already
    /// follows in place, with an alias when `ssrc` belongs to another worker. Answers the session and stream ids with
    /// the plan.
    pub fn plan_learn(&self, source: SocketAddr, ssrc: u32, payload_type: u8) -> Option<(String, String, Plan)> {
        if self.ssrcs.contains_key(&ssrc) {
            return None;
        }
        let (session_id, session, stream_id) = self.sessions.iter().find_map(|(session_id, session)| {
            let at = |e: &EndpointRecord| e.media_address == Some(source) || e.latched_address == Some(source);
            let (stream_id, _) = session.streams.iter().find(|(_, s)| {
                s.learns_ssrc
                    && s.payload_types.contains(&u32::from(payload_type))
                    && session.endpoints.get(&s.endpoint_id).is_some_and(at)
            })?;
            Some((session_id, session, stream_id))
        })?;
        let stream = session.streams.get(stream_id)?;
        let plan = if stream.ssrc_known {
            self.plan_update_stream(
                session_id,
                stream_id,
                &StreamUpdate { ssrc: Some(ssrc), ..StreamUpdate::default() },
            )
            .ok()?
        } else {
            self.plan_adopt(session_id, session, stream_id, ssrc, None).ok()?
        };
        Some((session_id.clone(), stream_id.clone(), plan))
    }

    /// The first SSRC of a stream that learns it: its subscriptions (and their feedback routes) and the stream
    /// removed where the placeholder put them, then added anew on `ssrc`'s worker (subscriptions keep their ids,
    /// offsets and out SSRC; RTCP addresses of peers without rtcp-mux are set again), each step with its undo, then
    /// the keyframe requests of unpaused video subscriptions.
    /// With `payload_types`, they replace the stream's at the same time.
    pub(super) fn plan_adopt(
        &self,
        session_id: &str,
        session: &SessionRecord,
        stream_id: &str,
        ssrc: u32,
        payload_types: Option<Vec<u32>>,
    ) -> Result<Plan, RegistryError> {
        let stream = session.streams.get(stream_id).ok_or_else(|| RegistryError::not_found("stream", stream_id))?;
        let publisher = session
            .endpoints
            .get(&stream.endpoint_id)
            .ok_or_else(|| RegistryError::not_found("endpoint", &stream.endpoint_id))?;
        let source = self.source_policy(publisher);
        let (old, new) = (stream.worker, owner_of(ssrc, self.workers));
        let workers = self.loads.len();
        let mut learned = stream.clone();
        // Bound afresh on the SSRC's owner: no alias (a stream that has not learned its SSRC never has one).
        (learned.ssrc, learned.ssrc_known, learned.worker) = (ssrc, true, new);
        if let Some(types) = payload_types {
            learned.payload_types = types;
        }
        if new != old {
            let (streams, subscriptions) = (self.loads[new].streams, self.loads[new].subscriptions);
            admit(streams, self.limits.max_streams_per_worker, "limits.max_streams_per_worker")?;
            admit(
                subscriptions + stream.subscriptions,
                self.limits.max_subscriptions_per_worker + 1,
                "limits.max_subscriptions_per_worker",
            )
            .map_err(|_| RegistryError::ResourceExhausted {
                limit: "limits.max_subscriptions_per_worker",
                value: self.limits.max_subscriptions_per_worker,
            })?;
        }
        let add_stream = |record: &StreamRecord| add_stream(record, source, &self.interceptors);
        let (mut commands, mut undo) = (Vec::new(), Vec::new());
        // A peer without rtcp-mux: its RTCP address is set again where the stream and subscriptions are added (each
        // unset before the removal too, so that the undo of the removal is followed by setting it again).
        let (id, rtcp_source) = (stream.data_plane_id, publisher.rtcp_address());
        let rtcp_dest = |sub: &SubscriptionRecord| session.endpoints.get(&sub.endpoint_id)?.rtcp_address();
        let mut moved = Vec::new();
        for (subscription_id, sub) in session.subscriptions.iter().filter(|(_, s)| s.stream_id == stream_id) {
            if let Some(route) = FeedbackRoute::of(sub, workers) {
                if let (Some(remove), Some(add)) = (route.remove(), route.add()) {
                    commands.push((route.worker, remove));
                    undo.push((route.worker, add));
                }
            }
            let sub_id = sub.data_plane_id;
            if let Some(dest) = rtcp_dest(sub) {
                commands.push((old, Command::SetRtcpDestination { id: sub_id, dest: None }));
                undo.push((old, Command::SetRtcpDestination { id: sub_id, dest: Some(dest) }));
            }
            commands.push((old, Command::RemoveSubscription { id: sub_id }));
            let egress = egress_spec(sub, stream, &self.interceptors);
            undo.push((old, add_subscription(sub, id, egress, Resume::Fresh)));
            let mut record = sub.clone();
            record.worker = new;
            moved.push((subscription_id.clone(), record));
        }
        if let Some(source) = rtcp_source {
            commands.push((old, Command::SetRtcpSource { id, source: None }));
            undo.push((old, Command::SetRtcpSource { id, source: Some(source) }));
        }
        commands.push((old, Command::RemoveStream { id }));
        undo.push((old, add_stream(stream)));
        commands.push((new, add_stream(&learned)));
        undo.push((new, Command::RemoveStream { id }));
        if let Some(source) = rtcp_source {
            commands.push((new, Command::SetRtcpSource { id, source: Some(source) }));
            undo.push((new, Command::SetRtcpSource { id, source: None }));
        }
        for (_, record) in &moved {
            let egress = egress_spec(record, &learned, &self.interceptors);
            commands.push((new, add_subscription(record, id, egress, Resume::Fresh)));
            undo.push((new, Command::RemoveSubscription { id: record.data_plane_id }));
            if let Some(dest) = rtcp_dest(record) {
                let sub_id = record.data_plane_id;
                commands.push((new, Command::SetRtcpDestination { id: sub_id, dest: Some(dest) }));
                undo.push((new, Command::SetRtcpDestination { id: sub_id, dest: None }));
            }
            if let Some(route) = FeedbackRoute::of(record, workers) {
                if let (Some(add), Some(remove)) = (route.add(), route.remove()) {
                    commands.push((route.worker, add));
                    undo.push((route.worker, remove));
                }
            }
        }
        let starting: Vec<_> =
            moved.iter().filter(|(_, r)| !r.paused && r.destination.is_some()).map(|(_, r)| r.data_plane_id).collect();
        let (kind, view) = (learned.kind, learned.view(session_id, stream_id));
        let mut plan = Plan {
            commands,
            undo,
            change: Change(ChangeKind::AdoptSsrc {
                session_id: session_id.to_owned(),
                stream_id: stream_id.to_owned(),
                record: learned,
                subscriptions: moved,
            }),
            outcome: Outcome::Updated(View::Stream(view)),
        };
        for id in starting {
            plan.request_keyframe(new, id, kind);
        }
        Ok(plan)
    }
}
