//! The `[cluster]` section: this node's identity among several, and the directory the nodes share.
//!
//! Owns [`Cluster`] and [`DirectoryBackend`]. Values come from [`crate::defaults`]; ranges, the node id's
//! characters, the Redis URL's form and the lease against the heartbeat are checked in [`crate::validate`].
//! Must never hold a literal default nor check a value, and never connect anywhere (the daemon does).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::defaults;

/// Where the nodes of a cluster find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryBackend {
    /// In this process: a single node, nothing to install.
    #[default]
    Embedded,
    /// A Redis server the nodes share (`redis_url`).
    Redis,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// `"embedded"` (a single node) or `"redis"`.
    pub directory: DirectoryBackend,
    /// This node's id: 1 to 64 bytes of A-Z, a-z, 0-9, `.`, `_` and `-`, unique in the cluster. Unset: the host's
    /// name (as the kernel has it), which must then follow the same rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The Redis server: `redis://[user[:password]@]host[:port][/db]`, `rediss://...` (TLS) or
    /// `unix:///path/to/redis.sock`. Used with `directory = "redis"`.
    pub redis_url: String,
    /// The prefix of every key and channel this cluster uses in Redis (several clusters may share one server):
    /// 1 to 32 bytes of a-z, 0-9, `_` and `-`.
    pub namespace: String,
    /// How often this node renews its lease (with its load), in milliseconds.
    pub heartbeat_ms: u32,
    /// How long a lease lasts without renewal, in milliseconds; a node that has not renewed it for this long is
    /// gone for the others, and the streams it published are removed from the directory. At least twice
    /// `heartbeat_ms`.
    pub lease_ms: u32,
    /// The UDP address other nodes send this node's relayed media to. Unset: the first media address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_address: Option<SocketAddr>,
    /// The control API address other nodes and controllers reach this node at. Unset: `api.listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_address: Option<SocketAddr>,
    /// Directory updates (a stream published or removed here) waiting to be written; when full, the next
    /// heartbeat writes this node's whole list of streams again instead.
    pub update_queue: u32,
    /// Nodes this node cannot reach directly (a firewall, a route that does not exist): it subscribes to their
    /// streams through another node, which relays them. Node ids, at most [`crate::validate::MAX_UNREACHABLE_NODES`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreachable_nodes: Vec<String>,
    /// CA certificates (PEM, an absolute path) the API certificates of the other nodes chain to: a node whose API
    /// has `[api.tls]` is called over TLS, its certificate verified against these (unset: the system's trust store).
    /// A node that has `[api.tls]` itself presents its certificate when the other asks for one (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Whether a stream published here that goes inactive (nothing for `telemetry.inactive_after_ms`) sends Finish to
    /// every node it is relayed to, as its deletion does: they delete their copies with the subscriptions to them.
    pub finish_inactive_streams: bool,
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster {
            directory: DirectoryBackend::default(),
            node_id: None,
            redis_url: defaults::CLUSTER_REDIS_URL.to_owned(),
            namespace: defaults::CLUSTER_NAMESPACE.to_owned(),
            heartbeat_ms: defaults::CLUSTER_HEARTBEAT_MS,
            lease_ms: defaults::CLUSTER_LEASE_MS,
            relay_address: None,
            api_address: None,
            update_queue: defaults::CLUSTER_UPDATE_QUEUE,
            unreachable_nodes: Vec::new(),
            tls_ca_file: None,
            finish_inactive_streams: defaults::CLUSTER_FINISH_INACTIVE_STREAMS,
        }
    }
}
