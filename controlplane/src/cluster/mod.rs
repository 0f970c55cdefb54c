//! The cluster: this node among several, and the directory they share (`[cluster]`).
//!
//! Owns the [`directory::Directory`] trait and its two backends ([`embedded::Embedded`], the default, a single node
//! with nothing to install; [`redis::RedisDirectory`], a Redis server the nodes share), and this node's part in it
//! ([`node::Cluster`]: its lease with its load, the streams it publishes). What is built: nodes, leases, loads and
//! where each stream is published, visible in `GetNodeInfo`, `ringfwd ctl node list` and the metrics; sessions held
//! by every node ([`sessions`]); streams relayed from the node that publishes them to the nodes that have subscribers
//! for them ([`relay`]: Sub / Data / Finish / Cancel), over the direct path while it works and through another node
//! while it does not ([`paths`]); metadata written on any node, merged on every node that holds the object
//! ([`metadata`]).
//! Must never reach the data plane, nor hold the registry while it talks to the directory.

pub mod directory;
pub mod embedded;
pub mod join;
pub mod metadata;
pub mod node;
pub mod paths;
pub mod redis;
pub mod relay;
pub mod sessions;

pub use directory::{Change, Directory, DirectoryError, Load, NodeLease, NodeRecord, SessionRecord, StreamKey};
pub use join::{join, JoinError};
pub use node::{Cluster, ClusterCounters, NodeSettings};
pub use sessions::Claim;
