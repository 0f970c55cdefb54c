//! Plans: what a change needs the workers to do, and what it does to the registry once they did it.
//!
//! Owns [`Plan`], [`Change`], [`Outcome`], [`View`] and the admission check shared by the planners
//! (`create`, `update`, `delete`). Plain data and pure helpers: it must never read or change the registry.

use ringfwd_dataplane::control::{Command, SubscriptionId};

use super::error::RegistryError;
use super::model::{
    EndpointRecord, EndpointView, MediaKind, SessionView, StreamRecord, StreamView, SubscriptionRecord,
    SubscriptionView, Usage,
};

impl Plan {
    /// Appends the keyframe request a subscriber needs when it starts receiving a video stream mid-way (a
    /// subscription created unpaused, switched, resumed): without one, its decoder waits for the publisher's next
    /// natural keyframe (seconds) or decodes the new stream's delta frames on an old picture. Planned last, on
    /// subscription `id`'s worker; audio asks nothing. Its undo is the same request (it changes nothing).
    pub(crate) fn request_keyframe(&mut self, worker: usize, id: SubscriptionId, kind: MediaKind) {
        if kind == MediaKind::Video {
            self.commands.push((worker, Command::RequestKeyframe { id }));
            self.undo.push((worker, Command::RequestKeyframe { id }));
        }
    }
}

/// A validated change: the worker commands that realise it, how to take them back, and what it does to
/// the registry once they were applied. See the module docs of [`crate::registry`] for how to run one.
#[derive(Clone, Debug)]
#[must_use = "a plan does nothing until its commands ran and its change was committed"]
pub struct Plan {
    /// `(worker, command)` pairs to apply in this order, each after the previous one was acknowledged.
    pub commands: Vec<(usize, Command)>,
    /// For creates and updates, `undo[i]` takes back `commands[i]` (same length); empty for deletes.
    /// Use [`Plan::rollback`] to get the undo commands in the order to run them.
    pub undo: Vec<(usize, Command)>,
    /// What [`Registry::commit`](super::Registry::commit) applies.
    pub change: Change,
    /// What the RPC answers once the change is committed.
    pub outcome: Outcome,
}

impl Plan {
    /// A plan with no worker commands.
    pub(crate) fn local(change: ChangeKind, outcome: Outcome) -> Plan {
        Plan { commands: Vec::new(), undo: Vec::new(), change: Change(change), outcome }
    }

    /// The undo commands of the first `succeeded` commands, newest first: what to run when
    /// `commands[succeeded]` failed. Empty for deletes (they are committed anyway).
    pub fn rollback(&self, succeeded: usize) -> Vec<(usize, Command)> {
        let n = succeeded.min(self.undo.len());
        self.undo[..n].iter().rev().cloned().collect()
    }
}

/// The registry side of a [`Plan`], applied by [`Registry::commit`](super::Registry::commit). Opaque.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change(pub(crate) ChangeKind);

impl Change {
    /// True when committing it changes nothing (an idempotent create that found its resource).
    pub fn is_noop(&self) -> bool {
        self.0 == ChangeKind::Nothing
    }

    /// The session it changes (`None`: it changes nothing). A change never reaches beyond one session.
    pub fn session_id(&self) -> Option<&str> {
        match &self.0 {
            ChangeKind::Nothing => None,
            ChangeKind::CreateSession { session_id, .. }
            | ChangeKind::CreateEndpoint { session_id, .. }
            | ChangeKind::CreateStream { session_id, .. }
            | ChangeKind::CreateSubscription { session_id, .. }
            | ChangeKind::UpdateStream { session_id, .. }
            | ChangeKind::AdoptSsrc { session_id, .. }
            | ChangeKind::UpdateSubscription { session_id, .. }
            | ChangeKind::UpdateEndpoint { session_id, .. }
            | ChangeKind::Latch { session_id, .. }
            | ChangeKind::Remove { session_id, .. } => Some(session_id),
        }
    }
}

/// What a [`Change`] does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// Nothing (an idempotent create).
    Nothing,
    /// Adds a session.
    CreateSession { session_id: String, created_unix_ms: u64 },
    /// Adds an endpoint.
    CreateEndpoint { session_id: String, endpoint_id: String, record: EndpointRecord },
    /// Adds a stream.
    CreateStream { session_id: String, stream_id: String, record: StreamRecord },
    /// Adds a subscription.
    CreateSubscription { session_id: String, subscription_id: String, record: SubscriptionRecord },
    /// Replaces a stream's record (SSRC, payload types) and the records of subscriptions it changed (out SSRC
    /// pinned to the old SSRC).
    UpdateStream {
        session_id: String,
        stream_id: String,
        record: StreamRecord,
        subscriptions: Vec<(String, SubscriptionRecord)>,
    },
    /// A stream adopted its first SSRC: its record (SSRC, worker) and its subscriptions' records (worker) replaced,
    /// the placeholder SSRC freed and the loads moved.
    AdoptSsrc {
        session_id: String,
        stream_id: String,
        record: StreamRecord,
        subscriptions: Vec<(String, SubscriptionRecord)>,
    },
    /// Replaces a subscription's record (paused state, stream, outgoing SSRC, payload-type map, interceptors, RTX).
    UpdateSubscription { session_id: String, subscription_id: String, record: SubscriptionRecord },
    /// Sets an endpoint's signalled media address; with `socket`, its subscriptions go there from that socket.
    UpdateEndpoint {
        session_id: String,
        endpoint_id: String,
        media_address: Option<std::net::SocketAddr>,
        rtcp: super::model::RtcpSpec,
        socket: Option<usize>,
    },
    /// Records the address a latching endpoint latched to, and sends its subscriptions there from `socket`.
    Latch { session_id: String, endpoint_id: String, address: std::net::SocketAddr, socket: usize },
    /// Removes `target` of the session and everything that goes with it.
    Remove { session_id: String, target: Target },
}

/// What a delete names; the cascade is computed from it (at planning and again at commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Session,
    Endpoint(String),
    Stream(String),
    Subscription(String),
}

/// What the RPC answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The resource was created.
    Created(View),
    /// The resource already existed with the same spec: nothing to do, nothing changes.
    Existing(View),
    /// What the delete removed.
    Deleted(Usage),
    /// The subscription after the update.
    Updated(View),
}

/// A resource as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// A session.
    Session(SessionView),
    /// An endpoint.
    Endpoint(EndpointView),
    /// A stream.
    Stream(StreamView),
    /// A subscription.
    Subscription(SubscriptionView),
}

/// `ResourceExhausted` naming `limit` when `used` has reached `max`.
pub(crate) fn admit(used: u32, max: u32, limit: &'static str) -> Result<(), RegistryError> {
    if used < max {
        Ok(())
    } else {
        Err(RegistryError::ResourceExhausted { limit, value: max })
    }
}
