//! Committing a plan's change: the only code that mutates the registry's resources.
//!
//! Owns [`Registry::commit`] (and [`Registry::dry_run`], which commits a plan no worker ran) and the bookkeeping that goes with every insert and removal (totals, per-worker
//! loads with their feedback routes and SSRC aliases, per-stream subscription counts, the node's SSRC index). Must never fail nor panic: a change made
//! stale by another commit in between (which the caller's serialisation should prevent) is applied as far
//! as it still makes sense, never half-way into an inconsistent state.

use std::collections::btree_map::Entry;

use super::create::FeedbackRoute;
use super::error::RegistryError;
use super::model::{SessionRecord, SubscriptionRecord, WorkerLoad};
use super::plan::{Change, ChangeKind, Outcome, Plan};
use super::Registry;

impl Registry {
    /// Plans a change with `plan` and commits it at once, without running its commands: the registry then holds
    /// what it would once workers applied them. A dry run, for a registry of one's own that no worker follows:
    /// `ringfwd --check-config` (and the daemon, before it starts any worker) runs the config's static sessions
    /// so, to refuse what the registry would refuse. A registry that workers follow must never use it: its workers
    /// would not hold what it says.
    pub fn dry_run(
        &mut self,
        plan: impl FnOnce(&Registry) -> Result<Plan, RegistryError>,
    ) -> Result<Outcome, RegistryError> {
        let plan = plan(self)?;
        self.commit(plan.change);
        Ok(plan.outcome)
    }

    /// Applies a plan's change. Call it after the plan's commands were all acknowledged (creates,
    /// updates), or after they were all sent (deletes, also when some failed).
    pub fn commit(&mut self, change: Change) {
        match change.0 {
            ChangeKind::Nothing => {}
            ChangeKind::CreateSession { session_id, created_unix_ms } => {
                if let Entry::Vacant(slot) = self.sessions.entry(session_id) {
                    slot.insert(SessionRecord::new(created_unix_ms));
                    self.usage.sessions += 1;
                }
            }
            ChangeKind::CreateEndpoint { session_id, endpoint_id, record } => {
                if let Some(session) = self.sessions.get_mut(&session_id) {
                    if let Entry::Vacant(slot) = session.endpoints.entry(endpoint_id) {
                        slot.insert(record);
                        self.usage.endpoints += 1;
                    }
                }
            }
            ChangeKind::CreateStream { session_id, stream_id, record } => {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return;
                };
                let fits = !session.streams.contains_key(&stream_id)
                    && session.endpoints.contains_key(&record.endpoint_id)
                    && !self.ssrcs.contains_key(&record.ssrc)
                    && record.worker < self.loads.len();
                if fits {
                    self.ssrcs.insert(record.ssrc, (session_id, stream_id.clone()));
                    self.loads[record.worker].streams += 1;
                    self.usage.streams += 1;
                    session.streams.insert(stream_id, record);
                }
            }
            ChangeKind::CreateSubscription { session_id, subscription_id, record } => {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return;
                };
                if session.subscriptions.contains_key(&subscription_id)
                    || !session.endpoints.contains_key(&record.endpoint_id)
                {
                    return;
                }
                let Some(stream) = session.streams.get_mut(&record.stream_id) else {
                    return;
                };
                stream.subscriptions += 1;
                if let Some(load) = self.loads.get_mut(record.worker) {
                    load.subscriptions += 1;
                }
                if let Some(load) =
                    FeedbackRoute::of(&record, self.loads.len()).and_then(|r| self.loads.get_mut(r.worker))
                {
                    load.feedback_routes += 1;
                }
                self.usage.subscriptions += 1;
                session.subscriptions.insert(subscription_id, record);
            }
            ChangeKind::UpdateStream { session_id, stream_id, record, subscriptions } => {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return;
                };
                let Some(stream) = session.streams.get_mut(&stream_id) else {
                    return;
                };
                if stream.ssrc != record.ssrc {
                    if self.ssrcs.contains_key(&record.ssrc) {
                        return;
                    }
                    self.ssrcs.remove(&stream.ssrc);
                    self.ssrcs.insert(record.ssrc, (session_id.clone(), stream_id.clone()));
                }
                let workers = self.loads.len();
                move_alias(&mut self.loads, stream.alias(workers), record.alias(workers));
                *stream = record;
                for (subscription_id, sub) in subscriptions {
                    if let Some(existing) = session.subscriptions.get_mut(&subscription_id) {
                        move_route(&mut self.loads, existing, &sub);
                        *existing = sub;
                    }
                }
            }
            ChangeKind::AdoptSsrc { session_id, stream_id, record, subscriptions } => {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return;
                };
                let Some(stream) = session.streams.get_mut(&stream_id) else {
                    return;
                };
                if self.ssrcs.contains_key(&record.ssrc) || record.worker >= self.loads.len() {
                    return;
                }
                self.ssrcs.remove(&stream.ssrc);
                self.ssrcs.insert(record.ssrc, (session_id.clone(), stream_id.clone()));
                self.loads[stream.worker].streams = self.loads[stream.worker].streams.saturating_sub(1);
                self.loads[record.worker].streams += 1;
                let workers = self.loads.len();
                move_alias(&mut self.loads, stream.alias(workers), record.alias(workers));
                *stream = record;
                for (subscription_id, moved) in subscriptions {
                    let Some(sub) = session.subscriptions.get_mut(&subscription_id) else {
                        continue;
                    };
                    move_route(&mut self.loads, sub, &moved);
                    self.loads[sub.worker].subscriptions = self.loads[sub.worker].subscriptions.saturating_sub(1);
                    self.loads[moved.worker].subscriptions += 1;
                    *sub = moved;
                }
            }
            ChangeKind::UpdateSubscription { session_id, subscription_id, record } => {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return;
                };
                let Some(sub) = session.subscriptions.get_mut(&subscription_id) else {
                    return;
                };
                if sub.stream_id != record.stream_id {
                    let Some(new) = session.streams.get_mut(&record.stream_id) else {
                        return;
                    };
                    new.subscriptions += 1;
                    if let Some(old) = session.streams.get_mut(&sub.stream_id) {
                        old.subscriptions = old.subscriptions.saturating_sub(1);
                    }
                }
                move_route(&mut self.loads, sub, &record);
                *sub = record;
            }
            ChangeKind::UpdateEndpoint { session_id, endpoint_id, media_address, rtcp, socket } => {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return;
                };
                let Some(endpoint) = session.endpoints.get_mut(&endpoint_id) else {
                    return;
                };
                endpoint.media_address = media_address;
                endpoint.rtcp = rtcp;
                if let (Some(address), Some(socket)) = (media_address, socket) {
                    for sub in session.subscriptions.values_mut().filter(|s| s.endpoint_id == endpoint_id) {
                        sub.destination = Some(address);
                        sub.socket = socket;
                    }
                } else if media_address.is_none() && endpoint.latched_address.is_none() {
                    // Its address went before it latched: what it receives is held (see `hold_subscriptions`).
                    for sub in session.subscriptions.values_mut().filter(|s| s.endpoint_id == endpoint_id) {
                        sub.destination = None;
                        sub.socket = 0;
                    }
                }
            }
            ChangeKind::Latch { session_id, endpoint_id, address, socket } => {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return;
                };
                let Some(endpoint) = session.endpoints.get_mut(&endpoint_id) else {
                    return;
                };
                endpoint.latched_address = Some(address);
                for sub in session.subscriptions.values_mut().filter(|s| s.endpoint_id == endpoint_id) {
                    sub.destination = Some(address);
                    sub.socket = socket;
                }
            }
            ChangeKind::Remove { session_id, target } => {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return;
                };
                let cascade = Registry::cascade(session, &target);
                for id in &cascade.subscriptions {
                    let Some(sub) = session.subscriptions.remove(id) else {
                        continue;
                    };
                    if let Some(stream) = session.streams.get_mut(&sub.stream_id) {
                        stream.subscriptions = stream.subscriptions.saturating_sub(1);
                    }
                    if let Some(load) = self.loads.get_mut(sub.worker) {
                        load.subscriptions = load.subscriptions.saturating_sub(1);
                    }
                    if let Some(load) =
                        FeedbackRoute::of(&sub, self.loads.len()).and_then(|r| self.loads.get_mut(r.worker))
                    {
                        load.feedback_routes = load.feedback_routes.saturating_sub(1);
                    }
                    self.usage.subscriptions = self.usage.subscriptions.saturating_sub(1);
                }
                for id in &cascade.streams {
                    let Some(stream) = session.streams.remove(id) else {
                        continue;
                    };
                    self.ssrcs.remove(&stream.ssrc);
                    if let Some(load) = self.loads.get_mut(stream.worker) {
                        load.streams = load.streams.saturating_sub(1);
                    }
                    let alias = stream.alias(self.loads.len());
                    move_alias(&mut self.loads, alias, None);
                    self.usage.streams = self.usage.streams.saturating_sub(1);
                }
                for id in &cascade.endpoints {
                    if session.endpoints.remove(id).is_some() {
                        self.usage.endpoints = self.usage.endpoints.saturating_sub(1);
                    }
                }
                if cascade.session {
                    self.sessions.remove(&session_id);
                    self.usage.sessions = self.usage.sessions.saturating_sub(1);
                }
            }
        }
    }
}

/// Moves the count of a stream's SSRC alias from the worker that held it (if any) to the one that holds it now.
fn move_alias(loads: &mut [WorkerLoad], before: Option<usize>, after: Option<usize>) {
    if before == after {
        return;
    }
    if let Some(load) = before.and_then(|at| loads.get_mut(at)) {
        load.aliases = load.aliases.saturating_sub(1);
    }
    if let Some(load) = after.and_then(|at| loads.get_mut(at)) {
        load.aliases += 1;
    }
}

/// Moves the count of a subscription's feedback route when its record goes from `before` to `after`.
fn move_route(loads: &mut [WorkerLoad], before: &SubscriptionRecord, after: &SubscriptionRecord) {
    let workers = loads.len();
    if let Some(load) = FeedbackRoute::of(before, workers).and_then(|r| loads.get_mut(r.worker)) {
        load.feedback_routes = load.feedback_routes.saturating_sub(1);
    }
    if let Some(load) = FeedbackRoute::of(after, workers).and_then(|r| loads.get_mut(r.worker)) {
        load.feedback_routes += 1;
    }
}
