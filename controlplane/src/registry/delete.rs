//! Deletes: what goes with a session, an endpoint, a stream or a subscription, and the commands that
//! remove it from the workers.
//!
//! Owns the cascade rule (computed by [`Registry::cascade`] once when planning and again when committing, so
//! both always agree) and the delete plans. Must never change the registry (only `commit` does).

use std::collections::BTreeSet;

use ringfwd_dataplane::control::Command;

use super::create::FeedbackRoute;
use super::error::RegistryError;
use super::model::{count, SessionRecord, Usage};
use super::plan::{Change, ChangeKind, Outcome, Plan, Target};
use super::validate;
use super::Registry;

/// The ids a delete removes from one session.
#[derive(Debug, Default)]
pub(crate) struct Cascade {
    /// The whole session goes.
    pub(crate) session: bool,
    pub(crate) endpoints: BTreeSet<String>,
    pub(crate) streams: BTreeSet<String>,
    pub(crate) subscriptions: BTreeSet<String>,
}

impl Cascade {
    /// How many of each kind go.
    pub(crate) fn counts(&self) -> Usage {
        Usage {
            sessions: u32::from(self.session),
            endpoints: count(self.endpoints.len()),
            streams: count(self.streams.len()),
            subscriptions: count(self.subscriptions.len()),
        }
    }
}

impl Registry {
    /// What deleting `target` from `session` removes: a session everything in it; an endpoint the
    /// streams it publishes, their subscriptions and the subscriptions it receives; a stream its
    /// subscriptions. Ids that do not exist are left out.
    pub(crate) fn cascade(session: &SessionRecord, target: &Target) -> Cascade {
        let mut cascade = Cascade::default();
        match target {
            Target::Session => {
                cascade.session = true;
                cascade.endpoints.extend(session.endpoints.keys().cloned());
                cascade.streams.extend(session.streams.keys().cloned());
                cascade.subscriptions.extend(session.subscriptions.keys().cloned());
            }
            Target::Endpoint(id) => {
                if session.endpoints.contains_key(id) {
                    cascade.endpoints.insert(id.clone());
                }
                let published = session.streams.iter().filter(|(_, s)| s.endpoint_id == *id);
                cascade.streams.extend(published.map(|(k, _)| k.clone()));
                let gone = session
                    .subscriptions
                    .iter()
                    .filter(|(_, s)| s.endpoint_id == *id || cascade.streams.contains(&s.stream_id));
                cascade.subscriptions.extend(gone.map(|(k, _)| k.clone()));
            }
            Target::Stream(id) => {
                if session.streams.contains_key(id) {
                    cascade.streams.insert(id.clone());
                }
                let gone = session.subscriptions.iter().filter(|(_, s)| s.stream_id == *id);
                cascade.subscriptions.extend(gone.map(|(k, _)| k.clone()));
            }
            Target::Subscription(id) => {
                if session.subscriptions.contains_key(id) {
                    cascade.subscriptions.insert(id.clone());
                }
            }
        }
        cascade
    }

    /// Plans `DeleteSession`: removes every subscription, then every stream, of the session.
    pub fn plan_delete_session(&self, session_id: &str) -> Result<Plan, RegistryError> {
        self.plan_delete(session_id, Target::Session)
    }

    /// Plans `DeleteEndpoint`: removes the subscriptions it receives, the streams it publishes and
    /// their subscriptions.
    pub fn plan_delete_endpoint(&self, session_id: &str, id: &str) -> Result<Plan, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("endpoint_id", id)?;
        let session = self.session(session_id)?;
        if !session.endpoints.contains_key(id) {
            return Err(RegistryError::not_found("endpoint", id));
        }
        self.plan_delete(session_id, Target::Endpoint(id.to_owned()))
    }

    /// Plans `DeleteStream`: removes its subscriptions, then the stream.
    pub fn plan_delete_stream(&self, session_id: &str, id: &str) -> Result<Plan, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("stream_id", id)?;
        let session = self.session(session_id)?;
        if !session.streams.contains_key(id) {
            return Err(RegistryError::not_found("stream", id));
        }
        self.plan_delete(session_id, Target::Stream(id.to_owned()))
    }

    /// Plans `DeleteSubscription`.
    pub fn plan_delete_subscription(&self, session_id: &str, id: &str) -> Result<Plan, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("subscription_id", id)?;
        let session = self.session(session_id)?;
        if !session.subscriptions.contains_key(id) {
            return Err(RegistryError::not_found("subscription", id));
        }
        self.plan_delete(session_id, Target::Subscription(id.to_owned()))
    }

    /// The delete plan of `target` (which exists): `RemoveSubscription`s (each with its feedback route, if it
    /// has one) first, then `RemoveStream`s (each with its SSRC alias, if it has one).
    fn plan_delete(&self, session_id: &str, target: Target) -> Result<Plan, RegistryError> {
        let session = self.session(session_id)?;
        let cascade = Registry::cascade(session, &target);
        let workers = self.loads.len();
        let subscriptions = cascade.subscriptions.iter().filter_map(|id| session.subscriptions.get(id)).flat_map(|s| {
            let route = FeedbackRoute::of(s, workers).and_then(|route| Some((route.worker, route.remove()?)));
            std::iter::once((s.worker, Command::RemoveSubscription { id: s.data_plane_id })).chain(route)
        });
        let streams = cascade.streams.iter().filter_map(|id| session.streams.get(id)).flat_map(|s| {
            let alias = s.alias(workers).map(|at| (at, Command::RemoveSsrcAlias { ssrc: s.ssrc }));
            std::iter::once((s.worker, Command::RemoveStream { id: s.data_plane_id })).chain(alias)
        });
        Ok(Plan {
            commands: subscriptions.chain(streams).collect(),
            undo: Vec::new(),
            change: Change(ChangeKind::Remove { session_id: session_id.to_owned(), target }),
            outcome: Outcome::Deleted(cascade.counts()),
        })
    }
}
