//! Planning `UpdateStream`: a new SSRC or new payload types for a published stream (a re-INVITE, a restarted
//! user agent), new ingress interceptors (a plugin attached or detached), or, for the cluster, a new publishing
//! endpoint (a relayed stream moved to another path), in place, so its subscriptions live on.
//!
//! Owns the rules of a stream update and its commands: `ChangeStreamSsrc` on the stream's worker (its subscribers
//! keep their SSRC and continuous numbering), the SSRC aliases that go with it (when the kernel steers the new SSRC
//! to another worker, that worker gets an `AliasSsrc` naming the stream's; the old SSRC's alias, if any, goes; see
//! `learn`), the feedback routes of subscriptions whose out SSRC is pinned to an aliased SSRC, then a
//! `ReconfigureSubscription` for each subscription whose payload-type filter follows the new payload types, and a
//! `ReconfigureStream` when the ingress chain changes; a new publisher is a `SetSource` (and `SetRtcpSource`). Must
//! never change the registry (only `commit` does) nor move a stream to another worker: its subscriptions' numbering
//! lives there.

use ringfwd_dataplane::control::Command;

use super::create::{egress_spec, ingress_spec, payload_type_map};
use super::error::RegistryError;
use super::model::StreamRecord;
use super::plan::{admit, Change, ChangeKind, Outcome, Plan, View};
use super::validate;
use super::Registry;
use ringfwd_tuning::ChainSide;

/// What an `UpdateStream` changes; `None` leaves a property as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamUpdate {
    /// The publisher's SSRC from now on (unique on the node).
    pub ssrc: Option<u32>,
    /// The payload types it uses from now on (each `0..=127`, no duplicates; empty: any).
    pub payload_types: Option<Vec<u32>>,
    /// Its ingress interceptors by name from now on (empty: none).
    pub interceptors: Option<Vec<String>>,
    /// The endpoint that publishes it from now on: the cluster's move of a relayed stream to another path (not in
    /// the API's `UpdateStream`). Both endpoints need a fixed media address of one family; the stream takes its
    /// packets from the new one (`SetSource` with an overlap of the two for a moment: see the data plane's table) and
    /// its subscribers' feedback goes there.
    pub endpoint_id: Option<String>,
}

impl Registry {
    /// Plans `UpdateStream`. When the SSRC changes: the feedback routes of subscriptions pinned to an old SSRC
    /// another worker owns, then an `AliasSsrc` on the new SSRC's owner when that is not the stream's worker (admitted
    /// against `limits.max_streams_per_worker (ssrc aliases)`), `ChangeStreamSsrc` on the stream's worker and the old
    /// SSRC's `RemoveSsrcAlias`; then one `ReconfigureSubscription` per subscription whose egress spec changes with
    /// the payload types. A subscription with an unset out SSRC is pinned to the old SSRC, as the worker pins it, so
    /// the subscriber keeps seeing one stream. Unchanged values plan no command.
    pub fn plan_update_stream(
        &self,
        session_id: &str,
        stream_id: &str,
        update: &StreamUpdate,
    ) -> Result<Plan, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("stream_id", stream_id)?;
        if let Some(types) = &update.payload_types {
            validate::payload_types(types)?;
        }
        let interceptors = match &update.interceptors {
            Some(names) => {
                let (default, plugins) = (&self.interceptors.ingress, &self.interceptors.plugins);
                Some(validate::interceptors(Some(names), default, ChainSide::Ingress, plugins)?)
            }
            None => None,
        };
        if update.ssrc == Some(0) {
            return Err(RegistryError::invalid(
                "ssrc",
                "0 is not an SSRC here (a stream declared with 0 learns its own)",
            ));
        }
        let session = self.session(session_id)?;
        let current = session.streams.get(stream_id).ok_or_else(|| RegistryError::not_found("stream", stream_id))?;
        if let Some(ssrc) = update.ssrc.filter(|_| !current.ssrc_known) {
            if interceptors.is_some() {
                let why = "set the interceptors of a stream that has not learned its SSRC in another request";
                return Err(RegistryError::invalid("interceptors", why));
            }
            // Nothing was sent for a stream that has not learned its SSRC yet: it is bound afresh where `ssrc` goes.
            if self.ssrcs.contains_key(&ssrc) {
                return Err(RegistryError::AlreadyExists { kind: "ssrc", id: ssrc.to_string() });
            }
            return self.plan_adopt(session_id, session, stream_id, ssrc, update.payload_types.clone());
        }
        let mut updated = current.clone();
        if let Some(ssrc) = update.ssrc.filter(|&ssrc| ssrc != current.ssrc) {
            if self.ssrcs.contains_key(&ssrc) {
                return Err(RegistryError::AlreadyExists { kind: "ssrc", id: ssrc.to_string() });
            }
            updated.ssrc = ssrc;
        }
        if let Some(types) = &update.payload_types {
            updated.payload_types.clone_from(types);
        }
        if let Some(names) = interceptors {
            updated.interceptors = names;
        }
        let (mut commands, mut undo) = (Vec::new(), Vec::new());
        if let Some(endpoint_id) = update.endpoint_id.as_deref().filter(|&id| id != current.endpoint_id) {
            self.plan_publisher_move(session, (stream_id, current), endpoint_id, &mut commands, &mut undo)?;
            updated.endpoint_id = endpoint_id.to_owned();
        }
        let mut subscriptions = Vec::new();
        for (subscription_id, sub) in session.subscriptions.iter().filter(|(_, s)| s.stream_id == stream_id) {
            let mut record = sub.clone();
            if updated.ssrc != current.ssrc && record.out_ssrc == 0 {
                record.out_ssrc = current.ssrc;
            }
            subscriptions.push((subscription_id, sub, record));
        }
        if updated.ssrc != current.ssrc {
            // Their subscribers' feedback about the old SSRC went along its alias; from now on along a route.
            let pinned = subscriptions.iter().map(|(_, sub, record)| (*sub, record));
            self.plan_reroutes(pinned, &mut commands, &mut undo)?;
            self.plan_ssrc_change(current, &updated, &mut commands, &mut undo)?;
        }
        let (before, after) = (ingress_spec(current, &self.interceptors), ingress_spec(&updated, &self.interceptors));
        if before != after {
            let id = current.data_plane_id;
            commands.push((current.worker, Command::ReconfigureStream { id, ingress: after }));
            undo.push((current.worker, Command::ReconfigureStream { id, ingress: before }));
        }
        let mut changed = Vec::new();
        for (subscription_id, sub, record) in subscriptions {
            let (before, after) =
                (egress_spec(sub, current, &self.interceptors), egress_spec(&record, &updated, &self.interceptors));
            if before != after {
                let map = payload_type_map(sub);
                let reconfigure =
                    |egress| Command::ReconfigureSubscription { id: sub.data_plane_id, payload_type_map: map, egress };
                commands.push((sub.worker, reconfigure(after)));
                undo.push((sub.worker, reconfigure(before)));
            }
            if record != *sub {
                changed.push((subscription_id.clone(), record));
            }
        }
        let view = updated.view(session_id, stream_id);
        Ok(Plan {
            commands,
            undo,
            change: Change(ChangeKind::UpdateStream {
                session_id: session_id.to_owned(),
                stream_id: stream_id.to_owned(),
                record: updated,
                subscriptions: changed,
            }),
            outcome: Outcome::Updated(View::Stream(view)),
        })
    }

    /// The commands that make stream `stream_id` (`current`) take its packets (RTP, and RTCP when the endpoints send it
    /// apart) from endpoint `endpoint_id` instead of its publisher, with their undo. `InvalidArgument` (field
    /// `endpoint_id`) unless both endpoints have a fixed media address (not latching) of one family and the new one
    /// does not subscribe to the stream; `NotFound` when there is no such endpoint.
    fn plan_publisher_move(
        &self,
        session: &super::model::SessionRecord,
        (stream_id, current): (&str, &StreamRecord),
        endpoint_id: &str,
        commands: &mut Vec<(usize, Command)>,
        undo: &mut Vec<(usize, Command)>,
    ) -> Result<(), RegistryError> {
        validate::id("endpoint_id", endpoint_id)?;
        let to = session.endpoints.get(endpoint_id).ok_or_else(|| RegistryError::not_found("endpoint", endpoint_id))?;
        let from = session.endpoints.get(&current.endpoint_id);
        let fixed = |endpoint: &super::model::EndpointRecord| endpoint.media_address.filter(|_| !endpoint.latching);
        let (Some(old), Some(new)) = (from.and_then(fixed), fixed(to)) else {
            let why = "a stream moves only between endpoints with a fixed media address (not latching)";
            return Err(RegistryError::invalid("endpoint_id", why));
        };
        let subscribes =
            session.subscriptions.values().any(|s| s.stream_id == stream_id && s.endpoint_id == endpoint_id);
        if subscribes {
            let why = format!("{endpoint_id} subscribes to the stream: it would receive its own packets");
            return Err(RegistryError::invalid("endpoint_id", why));
        }
        if old.is_ipv4() != new.is_ipv4() {
            let why = format!("{endpoint_id}'s media address {new} is not of the family of {old}, the stream's source");
            return Err(RegistryError::invalid("endpoint_id", why));
        }
        let (id, worker) = (current.data_plane_id, current.worker);
        // The new path carries the packets the old one does: overlapped, so none is lost or repeated.
        commands.push((worker, Command::SetSource { id, source: new, overlap: true }));
        undo.push((worker, Command::SetSource { id, source: old, overlap: false }));
        let (old_rtcp, new_rtcp) = (from.and_then(|e| e.rtcp_address()), to.rtcp_address());
        if old_rtcp != new_rtcp {
            commands.push((worker, Command::SetRtcpSource { id, source: new_rtcp }));
            undo.push((worker, Command::SetRtcpSource { id, source: old_rtcp }));
        }
        Ok(())
    }

    /// The commands that move stream `current` to `updated`'s SSRC on its worker, with their undo: the new SSRC's
    /// alias first (so its packets find the stream as soon as it has the SSRC), the change, then the old SSRC's
    /// alias removed. A worker that holds the old alias needs room for the new one for a moment.
    fn plan_ssrc_change(
        &self,
        current: &StreamRecord,
        updated: &StreamRecord,
        commands: &mut Vec<(usize, Command)>,
        undo: &mut Vec<(usize, Command)>,
    ) -> Result<(), RegistryError> {
        let (id, worker) = (current.data_plane_id, current.worker);
        if let Some(at) = updated.alias(self.workers) {
            let limit = self.limits.max_streams_per_worker;
            admit(self.loads[at].aliases, limit, "limits.max_streams_per_worker (ssrc aliases)")?;
            commands.push((at, Command::AliasSsrc { ssrc: updated.ssrc, owner: worker }));
            undo.push((at, Command::RemoveSsrcAlias { ssrc: updated.ssrc }));
        }
        commands.push((worker, Command::ChangeStreamSsrc { id, ssrc: updated.ssrc }));
        undo.push((worker, Command::ChangeStreamSsrc { id, ssrc: current.ssrc }));
        if let Some(at) = current.alias(self.workers) {
            commands.push((at, Command::RemoveSsrcAlias { ssrc: current.ssrc }));
            undo.push((at, Command::AliasSsrc { ssrc: current.ssrc, owner: worker }));
        }
        Ok(())
    }
}
