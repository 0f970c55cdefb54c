//! The registry: the control plane's source of truth for sessions, endpoints, streams and subscriptions.
//!
//! Pure and sans-IO (no tokio, no tonic, no clock: the creation time is passed in). It validates every
//! request, enforces the admission limits and drain, and turns each change into the worker commands that
//! realise it. It must never talk to a worker, block, or change its resources outside [`Registry::commit`].
//!
//! # Two phases
//! Every change is first *planned* (`plan_*`, on `&self`): the request is validated completely against
//! the current state and a [`Plan`] comes back with the `(worker, command)` list, its undo list, the
//! registry [`Change`] and the RPC's [`Outcome`]. The server then:
//! 1. executes `plan.commands` in order, each acknowledged before the next;
//! 2. creates and updates: if all succeeded, [`Registry::commit`]s `plan.change`. If `commands[i]` failed,
//!    it executes [`Plan::rollback`]`(i)` (the undo of the commands that succeeded, newest first) and does
//!    **not** commit: the registry and the data plane are as before. On a timeout the command's fate is
//!    unknown: roll back `i + 1` commands; an undo answered "not found" is harmless;
//! 3. deletes: `undo` is empty. It executes every command even after one failed (each removal stands
//!    alone; "not found" means already gone) and commits anyway: a removal already queued to a worker
//!    will still be applied, so the registry must not go on showing what the data plane is removing.
//!
//! Plans read the state they were made from, so the server serialises changes: plan, execute, commit
//! (or drop the plan) before planning the next one. Reads may run at any time. A registry no worker follows
//! plans and commits in one step, [`Registry::dry_run`]: that is how the config's static sessions are judged
//! before any worker runs, by the rules below and nothing else.
//!
//! # Rules
//! - Ids: 1..=64 bytes of `[A-Za-z0-9._-]`; endpoint, stream and subscription ids are unique within their
//!   session. Invalid fields are `InvalidArgument` naming the protobuf field (`session_id`,
//!   `media_address`, `payload_type_map[1].to`, ...).
//! - Idempotent create: the same id with the same spec is [`Outcome::Existing`] with no commands (also
//!   for a session while draining); the same id with another spec is `AlreadyExists` naming kind and id.
//!   A subscription compares against its current state (paused, stream and `out_ssrc` after updates).
//! - Endpoint: `media_address` is required unless `latching`; its port is not 0, its IP not unspecified,
//!   and the node has a media address of its family. Endpoints exist only here: no commands. A latching
//!   endpoint's `latched_address` is set when a stream it publishes latches or re-latches (the worker's
//!   `SourceChanged`, followed by [`Registry::plan_latch`]): it receives there from then on.
//! - Stream: its publisher endpoint exists; its SSRC is unique on the node (`AlreadyExists`, kind `ssrc`);
//!   `kind` is required; `payload_types` are each below 128, none twice; `clock_rate_hz` is
//!   1..=1 000 000. It lives on worker `owner_of(ssrc, workers)`: `AddStream` with source policy
//!   `Fixed(address)`, or for a latching publisher `Latch { window: latch_window, fallback: address }`. A new SSRC
//!   (`UpdateStream`, or a restart the stream learns) is taken in place: the stream stays on its worker, and when
//!   another worker owns the new SSRC, that worker holds an SSRC alias to it (see `learn`).
//! - Subscription: its stream and endpoint exist in the session; the endpoint is not the stream's
//!   publisher and has a media address, the destination (`InvalidArgument`, field `endpoint_id`): its latched
//!   address once it latched, else its `media_address`; a latching endpoint with neither is accepted and held
//!   (sent nothing, `NO_DESTINATION`) until it latches. It sends from the first media socket of the
//!   destination's family. `out_ssrc` 0 keeps the publisher's;
//!   each `payload_type_map` entry is below 128 and maps each `from` once. Created with the spec's
//!   `seq_offset` and `ts_offset` (0 from the API: only static config routes set them); the worker
//!   rebases them on a switch. One `AddSubscription` on the stream's worker, paused from
//!   the start when created paused; when `out_ssrc` is owned by another worker (where the subscriber's
//!   feedback about it lands), an `AddFeedbackRoute` there names the stream's worker (removed with the
//!   subscription; see `create::FeedbackRoute`).
//! - Update: `paused` plans `SetPaused`; `stream` plans `SwitchSubscription` to another stream of the
//!   session owned by the same worker (else `FailedPrecondition`: switching across workers is not
//!   supported yet), within the per-stream limit. An unset `out_ssrc` becomes the SSRC the subscriber saw
//!   so far, as the worker pins it.
//! - Deletes cascade: a session removes everything in it; an endpoint the streams it publishes (with
//!   their subscriptions) and the subscriptions it receives; a stream its subscriptions. Commands remove
//!   every subscription before any stream. [`Outcome::Deleted`] counts what went.
//! - Admission: totals `admission.max_sessions`, `admission.max_endpoints`, `admission.max_streams`,
//!   `admission.max_subscriptions`, and `limits.max_subscriptions_per_stream`,
//!   `limits.max_streams_per_worker` (also for a worker's SSRC aliases), `limits.max_subscriptions_per_worker`
//!   (also for its feedback routes) answer `ResourceExhausted` naming the key and its value. Draining refuses new sessions (`Unavailable`); all else still works.
//! - Data-plane ids ([`StreamId`](ringfwd_dataplane::control::StreamId),
//!   [`SubscriptionId`](ringfwd_dataplane::control::SubscriptionId)) are drawn when planning and never reused, not even
//!   those of plans that were rolled back (a late acknowledgement can then never hit a newer entry).
//!
//! Files: [`model`] (specs, views), `validate` (field checks), `plan` (plan types), `create`, `update`, `latch`,
//! `delete` (cascade), `commit`, `invariants`, [`export`] (a session as kept across a restart), [`error`]; tests in
//! `tests*` and `proptests`.

use ringfwd_dataplane::control::{Plugins, StreamId, SubscriptionId};
use ringfwd_tuning::{Config, Interceptors};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;

mod chains;
mod commit;
mod create;
mod delete;
pub mod error;
pub mod export;
mod invariants;
mod latch;
mod learn;
pub mod model;
mod plan;
mod plugins;
mod rtcp;
mod update;
mod update_endpoint;
mod update_stream;
pub(crate) mod validate;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_aliases;
#[cfg(test)]
mod tests_interceptors;
#[cfg(test)]
mod tests_latch;
#[cfg(test)]
mod tests_restore;
#[cfg(test)]
mod tests_rtcp;
#[cfg(test)]
mod tests_streams;
#[cfg(test)]
mod tests_subscriptions;
#[cfg(test)]
mod tests_updates;

pub use chains::Chains;
pub use create::Resume;
pub use error::RegistryError;
pub use export::{EndpointState, SessionState, StreamState, SubscriptionState};
pub use model::{
    DeleteCounts, EndpointSpec, EndpointView, MediaKind, PayloadTypeMapping, RegistryLimits, RtcpSpec, RtxSpec,
    SessionView, StreamSpec, StreamView, SubscriptionSpec, SubscriptionView, Usage, WorkerLoad,
};
pub use plan::{Change, Outcome, Plan, View};
pub use update::SubscriptionUpdate;
pub use update_stream::StreamUpdate;
pub(crate) use validate::id as validate_id;
pub(crate) use validate::new_id as validate_new_id;
pub use validate::{MAX_ID_BYTES, RELAY_ID_PREFIX};

use model::SessionRecord;
use plan::ChangeKind;

/// Sessions and everything in them, with the bookkeeping that admission needs. See the module docs.
#[derive(Debug)]
pub struct Registry {
    limits: RegistryLimits,
    /// The default interceptor chains, their parameters (`[interceptors]`) and the registered plugins.
    interceptors: Chains,
    /// Bound media addresses in config order: a destination's socket is the first of its family.
    media: Vec<SocketAddr>,
    /// Number of data-plane workers (at least 1).
    workers: usize,
    draining: bool,
    sessions: BTreeMap<String, SessionRecord>,
    /// Every stream's SSRC: `(session, stream)`.
    ssrcs: BTreeMap<u32, (String, String)>,
    /// Totals.
    usage: Usage,
    /// Per worker.
    loads: Vec<WorkerLoad>,
    /// The next data-plane ids to draw (atomics so `&self` planning can draw them).
    next_stream_id: AtomicU64,
    next_subscription_id: AtomicU64,
}

impl Registry {
    /// An empty registry for a node with `media` addresses (bound, in config order) and `workers`
    /// workers (0 is taken as 1).
    pub fn new(limits: RegistryLimits, media: Vec<SocketAddr>, workers: usize) -> Registry {
        let workers = workers.max(1);
        Registry {
            limits,
            interceptors: Chains::default(),
            media,
            workers,
            draining: false,
            sessions: BTreeMap::new(),
            ssrcs: BTreeMap::new(),
            usage: Usage::default(),
            loads: vec![WorkerLoad::default(); workers],
            next_stream_id: AtomicU64::new(1),
            next_subscription_id: AtomicU64::new(1),
        }
    }

    /// The registry a node running `config` starts with: its limits and default interceptor chains, with `media`
    /// addresses (bound, in config order; for a dry run the config's own, which have the same families) and
    /// `workers` workers. The daemon's registry and the dry run of `ringfwd --check-config` are both this one.
    /// `chains` are the config's chains checked against the registered plugins ([`Chains::new`]).
    pub fn from_config(config: &Config, media: Vec<SocketAddr>, workers: usize, chains: Chains) -> Registry {
        Registry::new(RegistryLimits::from_config(config), media, workers).with_chains(chains)
    }

    /// The same registry with the default interceptor chains and parameters of `interceptors` (no plugins).
    pub fn with_interceptors(self, interceptors: Interceptors) -> Registry {
        let (ingress, egress) = interceptors.resolve_defaults(None).unwrap_or_default();
        self.with_chains(Chains { params: interceptors, plugins: Plugins::none(), ingress, egress })
    }

    /// The same registry with the chain context `chains`.
    pub fn with_chains(mut self, chains: Chains) -> Registry {
        self.interceptors = chains;
        self
    }

    /// Starts (`true`) or stops draining: while draining, new sessions are refused.
    pub fn set_draining(&mut self, on: bool) {
        self.draining = on;
    }

    /// Whether new sessions are refused.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &RegistryLimits {
        &self.limits
    }

    /// How many of each resource it holds.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// What each worker holds, indexed by worker.
    pub fn worker_loads(&self) -> Vec<WorkerLoad> {
        self.loads.clone()
    }

    /// The session `id`.
    pub fn get_session(&self, id: &str) -> Result<SessionView, RegistryError> {
        Ok(self.session(id)?.view(id))
    }

    /// Every session, by id.
    pub fn list_sessions(&self) -> Vec<SessionView> {
        self.sessions.iter().map(|(id, s)| s.view(id)).collect()
    }

    /// The endpoint `id` of `session_id`.
    pub fn get_endpoint(&self, session_id: &str, id: &str) -> Result<EndpointView, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("endpoint_id", id)?;
        let endpoint = self.session(session_id)?.endpoints.get(id);
        let endpoint = endpoint.ok_or_else(|| RegistryError::not_found("endpoint", id))?;
        Ok(endpoint.view(session_id, id))
    }

    /// The endpoints of `session_id`, by id.
    pub fn list_endpoints(&self, session_id: &str) -> Result<Vec<EndpointView>, RegistryError> {
        let endpoints = &self.session(session_id)?.endpoints;
        Ok(endpoints.iter().map(|(id, e)| e.view(session_id, id)).collect())
    }

    /// The stream `id` of `session_id`.
    pub fn get_stream(&self, session_id: &str, id: &str) -> Result<StreamView, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("stream_id", id)?;
        let stream = self.session(session_id)?.streams.get(id);
        let stream = stream.ok_or_else(|| RegistryError::not_found("stream", id))?;
        Ok(stream.view(session_id, id))
    }

    /// The data-plane ids of stream `id` of `session_id` and of its subscriptions (by subscription id):
    /// the keys of their statistics.
    pub fn stats_keys(
        &self,
        session_id: &str,
        id: &str,
    ) -> Result<(StreamId, Vec<(String, SubscriptionId)>), RegistryError> {
        validate::id("stream_id", id)?;
        let session = self.session(session_id)?;
        let stream = session.streams.get(id).ok_or_else(|| RegistryError::not_found("stream", id))?;
        let subscriptions = session
            .subscriptions
            .iter()
            .filter(|(_, sub)| sub.stream_id == id)
            .map(|(sub_id, sub)| (sub_id.clone(), sub.data_plane_id))
            .collect();
        Ok((stream.data_plane_id, subscriptions))
    }

    /// The data-plane ids of the streams and subscriptions of `session_id`, or with `endpoint_id` only
    /// those it publishes and receives.
    pub fn aggregate_keys(
        &self,
        session_id: &str,
        endpoint_id: Option<&str>,
    ) -> Result<(Vec<StreamId>, Vec<SubscriptionId>), RegistryError> {
        let session = self.session(session_id)?;
        if let Some(endpoint) = endpoint_id {
            validate::id("endpoint_id", endpoint)?;
            if !session.endpoints.contains_key(endpoint) {
                return Err(RegistryError::not_found("endpoint", endpoint));
            }
        }
        let mine = |owner: &str| endpoint_id.is_none_or(|e| e == owner);
        let streams = session.streams.values().filter(|s| mine(&s.endpoint_id)).map(|s| s.data_plane_id).collect();
        let subscriptions =
            session.subscriptions.values().filter(|s| mine(&s.endpoint_id)).map(|s| s.data_plane_id).collect();
        Ok((streams, subscriptions))
    }

    /// The streams of `session_id`, by id.
    pub fn list_streams(&self, session_id: &str) -> Result<Vec<StreamView>, RegistryError> {
        let streams = &self.session(session_id)?.streams;
        Ok(streams.iter().map(|(id, s)| s.view(session_id, id)).collect())
    }

    /// The subscription `id` of `session_id`.
    pub fn get_subscription(&self, session_id: &str, id: &str) -> Result<SubscriptionView, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("subscription_id", id)?;
        let sub = self.session(session_id)?.subscriptions.get(id);
        let sub = sub.ok_or_else(|| RegistryError::not_found("subscription", id))?;
        Ok(sub.view(session_id, id))
    }

    /// The subscriptions of `session_id`, by id.
    pub fn list_subscriptions(&self, session_id: &str) -> Result<Vec<SubscriptionView>, RegistryError> {
        let subs = &self.session(session_id)?.subscriptions;
        Ok(subs.iter().map(|(id, s)| s.view(session_id, id)).collect())
    }
}

/// What a delete removes, read before its commit: ids for the lifecycle events of everything that goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removal {
    /// The session the delete is in.
    pub session_id: String,
    /// The session itself goes.
    pub session: bool,
    /// Endpoints that go, by id.
    pub endpoints: Vec<String>,
    /// Streams that go, by id.
    pub streams: Vec<StreamView>,
    /// Subscriptions that go, by id.
    pub subscriptions: Vec<SubscriptionView>,
}

/// The registry's names of the data plane's stream ids: `(session, stream, publishing endpoint)`.
pub type StreamNames = BTreeMap<StreamId, (String, String, String)>;

/// The registry's names of the endpoints at some addresses: `(session, endpoint)` by the address they send from.
pub type EndpointNames = BTreeMap<SocketAddr, (String, String)>;

/// The registry's names of the data plane's subscription ids: `(session, subscription, stream, endpoint)`.
pub type SubscriptionNames = BTreeMap<SubscriptionId, (String, String, String, String)>;

impl Registry {
    /// What committing `change` removes (`None` for a change that removes nothing): read-only, so call it
    /// between planning and committing, when the registry still holds what goes.
    pub fn removal(&self, change: &Change) -> Option<Removal> {
        let ChangeKind::Remove { session_id, target } = &change.0 else {
            return None;
        };
        let session = self.sessions.get(session_id)?;
        let cascade = Registry::cascade(session, target);
        Some(Removal {
            session_id: session_id.clone(),
            session: cascade.session,
            endpoints: cascade.endpoints.into_iter().collect(),
            streams: cascade
                .streams
                .iter()
                .filter_map(|id| session.streams.get(id).map(|s| s.view(session_id, id)))
                .collect(),
            subscriptions: cascade
                .subscriptions
                .iter()
                .filter_map(|id| session.subscriptions.get(id).map(|s| s.view(session_id, id)))
                .collect(),
        })
    }

    /// The subscription an `UpdateSubscription` change replaces, as it is before the commit (`None` for any other
    /// change): read-only, so call it between planning and committing. Its events compare it with the outcome.
    pub fn replaced_subscription(&self, change: &Change) -> Option<SubscriptionView> {
        let ChangeKind::UpdateSubscription { session_id, subscription_id, .. } = &change.0 else {
            return None;
        };
        self.get_subscription(session_id, subscription_id).ok()
    }

    /// The endpoints whose media address or latched address is one of `addresses` (the first one found for an
    /// address two endpoints share).
    pub fn endpoints_at(&self, addresses: &BTreeSet<SocketAddr>) -> EndpointNames {
        let mut names = EndpointNames::new();
        if addresses.is_empty() {
            return names;
        }
        for (session_id, session) in &self.sessions {
            for (endpoint_id, endpoint) in &session.endpoints {
                for address in [endpoint.media_address, endpoint.latched_address].into_iter().flatten() {
                    if addresses.contains(&address) && !names.contains_key(&address) {
                        names.insert(address, (session_id.clone(), endpoint_id.clone()));
                    }
                }
            }
        }
        names
    }

    /// The names of those of `streams` and `subscriptions` the registry holds (the others were deleted), in one
    /// pass over every session.
    pub fn names_of(
        &self,
        streams: &BTreeSet<StreamId>,
        subscriptions: &BTreeSet<SubscriptionId>,
    ) -> (StreamNames, SubscriptionNames) {
        let (mut stream_names, mut subscription_names) = (StreamNames::new(), SubscriptionNames::new());
        for (session_id, session) in &self.sessions {
            if !streams.is_empty() {
                for (id, s) in session.streams.iter().filter(|(_, s)| streams.contains(&s.data_plane_id)) {
                    stream_names.insert(s.data_plane_id, (session_id.clone(), id.clone(), s.endpoint_id.clone()));
                }
            }
            if !subscriptions.is_empty() {
                let wanted = session.subscriptions.iter().filter(|(_, s)| subscriptions.contains(&s.data_plane_id));
                for (id, s) in wanted {
                    let name = (session_id.clone(), id.clone(), s.stream_id.clone(), s.endpoint_id.clone());
                    subscription_names.insert(s.data_plane_id, name);
                }
            }
        }
        (stream_names, subscription_names)
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::tests::{apply, room, subscription};
    use super::*;

    #[test]
    fn a_removal_names_everything_a_delete_takes_and_a_create_none() {
        let mut reg = room();
        apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "b-a", "a-audio", "bob")));
        apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "a-b", "b-audio", "alice")));
        assert_eq!(reg.removal(&reg.plan_create_session("x", 1).unwrap().change), None);
        let removal = reg.removal(&reg.plan_delete_endpoint("room", "alice").unwrap().change).unwrap();
        assert!(!removal.session);
        assert_eq!(removal.endpoints, ["alice"]);
        let streams: Vec<_> = removal.streams.iter().map(|s| s.stream_id.as_str()).collect();
        assert_eq!(streams, ["a-audio", "a-video"]);
        let subs: Vec<_> = removal.subscriptions.iter().map(|s| s.subscription_id.as_str()).collect();
        assert_eq!(subs, ["a-b", "b-a"], "the one it received and the one of its stream");
        let removal = reg.removal(&reg.plan_delete_session("room").unwrap().change).unwrap();
        assert!(removal.session);
        assert_eq!(removal.endpoints, ["alice", "bob", "carol", "dave"]);
        assert_eq!((removal.streams.len(), removal.subscriptions.len()), (3, 2));
    }

    #[test]
    fn data_plane_ids_resolve_to_names_until_deleted() {
        let mut reg = room();
        apply(&mut reg, |r| r.plan_create_subscription(subscription("room", "b-a", "a-audio", "bob")));
        let (sid, subs) = reg.stats_keys("room", "a-audio").unwrap();
        let subid = subs[0].1;
        let (streams, subs) = reg.names_of(&BTreeSet::from([sid]), &BTreeSet::from([subid]));
        assert_eq!(streams[&sid], ("room".into(), "a-audio".into(), "alice".into()));
        assert_eq!(subs[&subid], ("room".into(), "b-a".into(), "a-audio".into(), "bob".into()));
        assert_eq!(streams.len() + subs.len(), 2, "only what was asked for");
        apply(&mut reg, |r| r.plan_delete_stream("room", "a-audio"));
        let (streams, subs) = reg.names_of(&BTreeSet::from([sid]), &BTreeSet::from([subid]));
        assert!(streams.is_empty() && subs.is_empty());
    }
}
