//! The directory the nodes of a cluster share: which nodes are alive (a lease each, renewed with the node's load)
//! and which node each stream is published on; and the changes to both, for whoever watches.
//!
//! Owns the [`Directory`] trait, its records ([`NodeRecord`], [`Load`], [`NodeLease`], [`StreamKey`]), its
//! [`Change`]s and [`DirectoryError`]. The backends implement it: [`super::embedded`] (this process, a single node)
//! and [`super::redis`] (a shared Redis server). Must never know the registry, the API or the data plane: the node
//! ([`super::node`]) tells the directory what this node holds.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::metadata::{Entry, Member};
use tokio::sync::broadcast;

/// How long the directory remembers a deleted session (its id and creation time), so that a node that was away when
/// it was deleted deletes its copy instead of writing it back.
pub const ENDED_SESSIONS_KEPT_MS: u64 = 24 * 60 * 60 * 1000;

/// What a directory call answers.
pub type DirectoryFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DirectoryError>> + Send + 'a>>;

/// Why a directory call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The backend could not be reached, or refused the call; what it said.
    #[error("the {backend} directory: {message}")]
    Backend {
        /// "embedded" or "redis".
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The backend holds a record this node cannot read (written by another version, or by hand).
    #[error("the {backend} directory holds a record that cannot be read at {key}: {message}")]
    BadRecord {
        /// "embedded" or "redis".
        backend: &'static str,
        /// Where.
        key: String,
        /// Why.
        message: String,
    },
}

/// What a node holds, as its lease says (renewed every heartbeat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Sessions.
    pub sessions: u64,
    /// Streams published on it.
    pub streams: u64,
    /// Subscriptions.
    pub subscriptions: u64,
    /// Data-plane workers.
    pub workers: u64,
}

/// A node as the others know it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its id, unique in the cluster.
    pub id: String,
    /// Where other nodes send it relayed media (UDP).
    pub relay_address: SocketAddr,
    /// Its control API.
    pub api_address: SocketAddr,
    /// Whether its control API speaks TLS (`[api.tls]`): the other nodes call it over TLS.
    #[serde(default)]
    pub api_tls: bool,
    /// When it started, Unix milliseconds (a restart shows as a new value).
    pub started_unix_ms: u64,
    /// Drawn at random when its process started: tells apart two processes that renew one node id (two nodes
    /// configured with the same id; or, for a heartbeat or two, a takeover).
    #[serde(default)]
    pub instance: u64,
    /// What it holds.
    pub load: Load,
}

/// A live node and what is left of its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLease {
    /// The record it last renewed its lease with.
    pub record: NodeRecord,
    /// Milliseconds until the lease runs out unless renewed.
    pub remaining_ms: u64,
}

/// A stream, cluster-wide: its session and its id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// Its session.
    pub session_id: String,
    /// Its id in the session.
    pub stream_id: String,
}

impl StreamKey {
    /// `session/stream`: ids hold no `/` (A-Z, a-z, 0-9, `.`, `_`, `-`), so the form is unambiguous.
    pub fn encode(&self) -> String {
        format!("{}/{}", self.session_id, self.stream_id)
    }

    /// The key [`StreamKey::encode`] wrote, if `text` is one.
    pub fn decode(text: &str) -> Option<StreamKey> {
        let (session, stream) = text.split_once('/')?;
        (!session.is_empty() && !stream.is_empty() && !stream.contains('/'))
            .then(|| StreamKey { session_id: session.to_owned(), stream_id: stream.to_owned() })
    }
}

/// A session, cluster-wide: which node created it, and which creation it is (a session deleted and created again
/// under one id is another one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The node whose API created it.
    pub node: String,
    /// When, Unix milliseconds.
    pub created_unix_ms: u64,
    /// Drawn at random by the node that created it.
    pub incarnation: u64,
}

/// A change to the directory, as every node's watchers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A node took a lease (it started, or came back after its lease had run out).
    NodeUp {
        /// Which.
        node: String,
    },
    /// A node left (it stopped) or its lease ran out; the streams it published left the directory with it.
    NodeDown {
        /// Which.
        node: String,
        /// `true` when its lease ran out, `false` when it left.
        expired: bool,
    },
    /// A stream is published on a node.
    StreamPlaced {
        /// `session/stream`.
        stream: String,
        /// Where.
        node: String,
    },
    /// A stream is no longer published on a node.
    StreamRemoved {
        /// `session/stream`.
        stream: String,
        /// Where it was.
        node: String,
    },
    /// A session was created on a node: every node holds it from now on.
    SessionCreated {
        /// Its id.
        session: String,
        /// Its record.
        record: SessionRecord,
    },
    /// A session was deleted on a node: every node deletes its copy of that creation.
    SessionDeleted {
        /// Its id.
        session: String,
        /// The creation deleted.
        incarnation: u64,
    },
    /// Node `node` wrote metadata of a member of a session: every node that holds that member merges the entries.
    MetadataShared {
        /// The session.
        session: String,
        /// Which of its members.
        member: Member,
        /// What was written (deletions as tombstones), each at its version.
        entries: Vec<Entry>,
        /// The node that wrote it.
        node: String,
    },
}

/// The directory, whichever backend holds it. Every call is bounded in time by the backend.
pub trait Directory: Send + Sync {
    /// "embedded" or "redis".
    fn backend(&self) -> &'static str;

    /// Takes or renews `node`'s lease for `lease_ms`, with its record; answers the record the lease held before:
    /// `None` when it had none (it just joined, or its lease had run out and its streams left the directory: the
    /// caller places them again), a record of another `instance` when another process renews the same id.
    fn renew<'a>(&'a self, node: &'a NodeRecord, lease_ms: u32) -> DirectoryFuture<'a, Option<NodeRecord>>;

    /// `node` leaves: its lease and the streams placed on it go now.
    fn leave<'a>(&'a self, node: &'a str) -> DirectoryFuture<'a, ()>;

    /// The live nodes, by id. A node whose lease ran out without the backend saying so yet is left out, and its
    /// streams are removed.
    fn nodes(&self) -> DirectoryFuture<'_, Vec<NodeLease>>;

    /// `stream` is published on `node`.
    fn place<'a>(&'a self, stream: &'a StreamKey, node: &'a str) -> DirectoryFuture<'a, ()>;

    /// `stream` is no longer published on `node` (nothing happens when the directory places it elsewhere).
    fn remove<'a>(&'a self, stream: &'a StreamKey, node: &'a str) -> DirectoryFuture<'a, ()>;

    /// Where `stream` is published, if anywhere.
    fn locate<'a>(&'a self, stream: &'a StreamKey) -> DirectoryFuture<'a, Option<String>>;

    /// Every placed stream with its node, by stream.
    fn streams(&self) -> DirectoryFuture<'_, Vec<(StreamKey, String)>>;

    /// Writes session `id` with `record` unless the directory holds it already; answers the record it holds now
    /// (`record`, or the one of the node that created it first).
    fn claim_session<'a>(&'a self, id: &'a str, record: &'a SessionRecord) -> DirectoryFuture<'a, SessionRecord>;

    /// Removes session `id` when it is that `incarnation` (any, with `None`), and remembers it as ended for
    /// [`ENDED_SESSIONS_KEPT_MS`] after `now_unix_ms` (forgetting what ended longer ago); answers the record removed.
    fn end_session<'a>(
        &'a self,
        id: &'a str,
        incarnation: Option<u64>,
        now_unix_ms: u64,
    ) -> DirectoryFuture<'a, Option<SessionRecord>>;

    /// The sessions deleted within [`ENDED_SESSIONS_KEPT_MS`]: each one's id and creation time
    /// ([`SessionRecord::created_unix_ms`]).
    fn ended_sessions(&self) -> DirectoryFuture<'_, BTreeSet<(String, u64)>>;

    /// Session `id`'s record, if the directory holds it.
    fn session<'a>(&'a self, id: &'a str) -> DirectoryFuture<'a, Option<SessionRecord>>;

    /// Every session of the cluster, by id.
    fn sessions(&self) -> DirectoryFuture<'_, Vec<(String, SessionRecord)>>;

    /// Keeps metadata `entries` that node `node` wrote for `member` of session `session` (per key, the greatest in
    /// [`crate::metadata::merge_order`] stays) and tells every node ([`Change::MetadataShared`]). What is kept goes
    /// with the session ([`Directory::end_session`]).
    fn share_metadata<'a>(
        &'a self,
        session: &'a str,
        member: &'a Member,
        entries: &'a [Entry],
        node: &'a str,
    ) -> DirectoryFuture<'a, ()>;

    /// The metadata kept for the members of session `session`: each entry with its member.
    fn metadata<'a>(&'a self, session: &'a str) -> DirectoryFuture<'a, Vec<(Member, Entry)>>;

    /// The changes from now on. A watcher that falls behind by more than the backend's buffer
    /// (`cluster.update_queue`) is told how many it missed ([`broadcast::error::RecvError::Lagged`]).
    fn watch(&self) -> broadcast::Receiver<Change>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_key_reads_back_and_a_malformed_one_is_refused() {
        let key = StreamKey { session_id: "conf-1".into(), stream_id: "alice.cam".into() };
        assert_eq!(StreamKey::decode(&key.encode()), Some(key));
        for bad in ["", "/", "a/", "/b", "ab", "a/b/c"] {
            assert_eq!(StreamKey::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn changes_are_tagged_json() {
        let change = Change::NodeDown { node: "b".into(), expired: true };
        let json = serde_json::to_string(&change).expect("json");
        assert_eq!(json, r#"{"change":"node_down","node":"b","expired":true}"#);
        assert_eq!(serde_json::from_str::<Change>(&json).expect("back"), change);
    }
}
