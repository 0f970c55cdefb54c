//! Planning `UpdateSubscription`: pause, resume, switch to another stream of the same worker, and replace the
//! payload-type map, the egress interceptors and RTX (a renegotiation).
//!
//! Owns the rules of an update and the order of its commands (a switch that pins the out SSRC to a stream's SSRC
//! another worker owns, an aliased one, adds the subscription's feedback route there). Must never change the registry (only
//! `commit` does) nor plan a switch across workers: the subscription's state lives on its stream's worker,
//! and moving it is not supported yet.

use ringfwd_dataplane::control::Command;
use ringfwd_tuning::ChainSide;

use super::create::{egress_spec, payload_type_map, receives_once};
use super::error::RegistryError;
use super::model::{PayloadTypeMapping, RtxSpec};
use super::plan::{admit, Change, ChangeKind, Outcome, Plan, View};
use super::validate;
use super::Registry;

/// What an `UpdateSubscription` changes; `None` leaves a property as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionUpdate {
    /// Pause (true) or resume (false).
    pub paused: Option<bool>,
    /// Switch to this stream of the session.
    pub stream_id: Option<String>,
    /// Replace the payload-type map (empty: identity).
    pub payload_type_map: Option<Vec<PayloadTypeMapping>>,
    /// Replace the egress interceptors by name (empty: none).
    pub interceptors: Option<Vec<String>>,
    /// Replace RTX (`Some(None)`: no RTX from now on).
    pub rtx: Option<Option<RtxSpec>>,
}

impl Registry {
    /// [`Registry::plan_update`] of the paused state and the stream only.
    pub fn plan_update_subscription(
        &self,
        session_id: &str,
        subscription_id: &str,
        paused: Option<bool>,
        stream: Option<&str>,
    ) -> Result<Plan, RegistryError> {
        let update =
            SubscriptionUpdate { paused, stream_id: stream.map(String::from), ..SubscriptionUpdate::default() };
        self.plan_update(session_id, subscription_id, &update)
    }

    /// Plans `UpdateSubscription`. `paused` sets the paused state (`SetPaused`); `stream` switches to
    /// another stream of the session owned by the same worker (`SwitchSubscription`, the worker keeps
    /// the subscriber's sequence numbers and timestamps continuous). Unset or unchanged values plan no
    /// command. When pausing, the pause goes first (nothing of the new stream leaks); when resuming, the
    /// switch goes first (nothing of the old stream does). A switch or a resume that leaves a video
    /// subscription running ends with a keyframe request (`RequestKeyframe`, see [`Plan::request_keyframe`]).
    /// A new payload-type map, interceptors or RTX, or a switch to a stream with other payload types (the
    /// payload-type filter lets the stream's types through), are applied by one `ReconfigureSubscription` right
    /// after the switch (before a resume), validated as `CreateSubscription` validates them.
    pub fn plan_update(
        &self,
        session_id: &str,
        subscription_id: &str,
        update: &SubscriptionUpdate,
    ) -> Result<Plan, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("subscription_id", subscription_id)?;
        let (paused, stream) = (update.paused, update.stream_id.as_deref());
        if let Some(stream_id) = stream {
            validate::id("stream_id", stream_id)?;
        }
        if let Some(map) = &update.payload_type_map {
            validate::payload_type_map(map)?;
        }
        if let Some(rtx) = &update.rtx {
            validate::rtx(rtx.as_ref())?;
        }
        let interceptors = match &update.interceptors {
            Some(names) => {
                let (default, plugins) = (&self.interceptors.egress, &self.interceptors.plugins);
                Some(validate::interceptors(Some(names), default, ChainSide::Egress, plugins)?)
            }
            None => None,
        };
        let session = self.session(session_id)?;
        let current = session
            .subscriptions
            .get(subscription_id)
            .ok_or_else(|| RegistryError::not_found("subscription", subscription_id))?;
        let id = current.data_plane_id;
        let worker = current.worker;
        let mut updated = current.clone();
        let mut commands = Vec::new();
        let mut undo = Vec::new();
        if let Some(paused) = paused.filter(|&p| p != current.paused) {
            commands.push((worker, Command::SetPaused { id, paused }));
            undo.push((worker, Command::SetPaused { id, paused: !paused }));
            updated.paused = paused;
        }
        if let Some(stream_id) = stream.filter(|&s| s != current.stream_id) {
            let old = session.streams.get(&current.stream_id).ok_or_else(|| {
                RegistryError::FailedPrecondition(format!(
                    "subscription {subscription_id} has lost its stream {}",
                    current.stream_id
                ))
            })?;
            let new = session.streams.get(stream_id).ok_or_else(|| RegistryError::not_found("stream", stream_id))?;
            if new.endpoint_id == current.endpoint_id {
                return Err(RegistryError::invalid(
                    "stream_id",
                    format!("stream {stream_id} is published by {}, the subscriber itself", current.endpoint_id),
                ));
            }
            if new.worker != worker {
                return Err(RegistryError::FailedPrecondition(format!(
                    "stream {stream_id} (ssrc {}) is owned by worker {}, subscription \
                     {subscription_id} lives on worker {worker}: switching across workers is not \
                     supported yet",
                    new.ssrc, new.worker
                )));
            }
            receives_once(session, &current.endpoint_id, (stream_id, None), Some(subscription_id))?;
            admit(new.subscriptions, self.limits.max_subscriptions_per_stream, "limits.max_subscriptions_per_stream")?;
            let switch = (worker, Command::SwitchSubscription { id, stream: new.data_plane_id });
            let back = (worker, Command::SwitchSubscription { id, stream: old.data_plane_id });
            // Pausing: pause, then switch. Resuming or unchanged: switch, then resume.
            let at = if updated.paused { commands.len() } else { 0 };
            commands.insert(at, switch);
            undo.insert(at, back);
            // The worker pins an unset outgoing SSRC to the one the subscriber saw so far.
            if updated.out_ssrc == 0 {
                updated.out_ssrc = old.ssrc;
            }
            stream_id.clone_into(&mut updated.stream_id);
        }
        if let Some(map) = &update.payload_type_map {
            updated.payload_type_map.clone_from(map);
        }
        if let Some(names) = interceptors {
            updated.interceptors = names;
        }
        if let Some(rtx) = update.rtx {
            updated.rtx = rtx;
        }
        let (old_stream, new_stream) =
            (session.streams.get(&current.stream_id), session.streams.get(&updated.stream_id));
        if let (Some(old_stream), Some(new_stream)) = (old_stream, new_stream) {
            let (before, after) = (
                egress_spec(current, old_stream, &self.interceptors),
                egress_spec(&updated, new_stream, &self.interceptors),
            );
            if before != after || current.payload_type_map != updated.payload_type_map {
                let reconfigure = |record, egress| Command::ReconfigureSubscription {
                    id,
                    payload_type_map: payload_type_map(record),
                    egress,
                };
                // After a switch; before a resume (which goes last), after a pause (which goes first).
                let at = match commands.iter().position(|(_, c)| matches!(c, Command::SwitchSubscription { .. })) {
                    Some(switch) => switch + 1,
                    None if updated.paused => commands.len(),
                    None => 0,
                };
                commands.insert(at, (worker, reconfigure(&updated, after)));
                undo.insert(at, (worker, reconfigure(current, before)));
            }
        }
        // Pinned to a stream's SSRC another worker owns (an aliased one): its feedback is routed from there.
        self.plan_reroutes([(current, &updated)], &mut commands, &mut undo)?;
        let view = updated.view(session_id, subscription_id);
        // The subscriber starts receiving mid-way: after a switch it would otherwise decode the new stream's delta
        // frames on the old picture; after a pause its decoder has lost its references.
        let switched = updated.stream_id != current.stream_id;
        let starts = !updated.paused && (switched || current.paused);
        let kind = new_stream.map(|stream| stream.kind);
        let mut plan = Plan {
            commands,
            undo,
            change: Change(ChangeKind::UpdateSubscription {
                session_id: session_id.to_owned(),
                subscription_id: subscription_id.to_owned(),
                record: updated,
            }),
            outcome: Outcome::Updated(View::Subscription(view)),
        };
        if let Some(kind) = kind.filter(|_| starts) {
            plan.request_keyframe(worker, id, kind);
        }
        Ok(plan)
    }
}
