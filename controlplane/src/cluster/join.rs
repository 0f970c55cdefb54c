//! Joining the cluster at start-up as `[cluster]` says: this node's id (or the host's name), the directory's backend,
//! the addresses other nodes are told.
//!
//! Owns [`join`] and [`JoinError`] (which names the config key at fault). Must never retry a failed first
//! connection: a node that cannot reach its directory does not start, and says why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringfwd_tuning::{Config, DirectoryBackend};

use super::directory::{Directory, Load, NodeRecord};
use super::embedded::Embedded;
use super::node::{Cluster, ClusterCounters, NodeSettings};
use super::redis::RedisDirectory;
use crate::api::Api;

/// The node id of a single node (the embedded directory) whose host's name cannot be a node id.
pub const EMBEDDED_FALLBACK_ID: &str = "local";

/// Why this node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// `cluster.node_id` is unset and the host's name is not a valid node id.
    #[error(
        "cluster.node_id is unset and the host's name {hostname:?} cannot be a node id ({reason}): set cluster.node_id"
    )]
    Hostname {
        /// The host's name.
        hostname: String,
        /// Why not.
        reason: String,
    },
    /// A TLS file for calls to other nodes cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsFileError),
    /// The directory could not be reached or refused the node.
    #[error("cluster.redis_url = {url}: {message}")]
    Directory {
        /// The URL, its password redacted.
        url: String,
        /// What failed.
        message: String,
    },
}

/// Joins the cluster `config` describes: the directory (a Redis server is connected to and must answer), this node's
/// record (its id; `relay` and `api_address` unless the config names others; `workers`), the first renewal, and the
/// tasks of [`Cluster::start`]; calls to other nodes carry tokens minted with `keys`.
#[allow(clippy::too_many_arguments)]
pub async fn join(
    config: &Config,
    api: &Arc<Api>,
    keys: crate::auth::Keys,
    relay: SocketAddr,
    api_address: SocketAddr,
    workers: usize,
    counters: Arc<ClusterCounters>,
) -> Result<Arc<Cluster>, JoinError> {
    let settings = &config.cluster;
    let id = match &settings.node_id {
        Some(id) => id.clone(),
        None => {
            let hostname = hostname();
            match ringfwd_tuning::validate::check_node_id(&hostname) {
                Ok(()) => hostname,
                // A single node needs no name the others know.
                Err(_) if settings.directory == DirectoryBackend::Embedded => EMBEDDED_FALLBACK_ID.to_owned(),
                Err(reason) => return Err(JoinError::Hostname { hostname, reason }),
            }
        }
    };
    let buffer = settings.update_queue as usize;
    let url = ringfwd_tuning::validate::redact_password(&settings.redis_url);
    let directory: Arc<dyn Directory> = match settings.directory {
        DirectoryBackend::Embedded => Arc::new(Embedded::new(buffer)),
        DirectoryBackend::Redis => Arc::new(
            RedisDirectory::connect(&settings.redis_url, &settings.namespace, buffer)
                .await
                .map_err(|e| JoinError::Directory { url: url.clone(), message: e.to_string() })?,
        ),
    };
    let record = NodeRecord {
        id,
        relay_address: settings.relay_address.unwrap_or(relay),
        api_address: settings.api_address.unwrap_or(api_address),
        api_tls: config.api.tls.is_some(),
        started_unix_ms: crate::clock::unix_ms(),
        instance: rand::random(),
        load: Load { workers: workers as u64, ..Load::default() },
    };
    let node = NodeSettings {
        record,
        heartbeat: Duration::from_millis(u64::from(settings.heartbeat_ms)),
        lease_ms: settings.lease_ms,
        update_queue: buffer,
        unreachable: settings.unreachable_nodes.iter().cloned().collect(),
        finish_inactive: settings.finish_inactive_streams,
    };
    let tls = crate::tls::node_client_config(settings.tls_ca_file.as_deref(), config.api.tls.as_ref())?;
    Cluster::start(directory, node, super::relay::Relays::new(keys, tls), api, counters)
        .await
        .map_err(|e| JoinError::Directory { url, message: e.to_string() })
}

/// The host's name as the kernel has it (what `hostname` prints), empty when it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_owned()).unwrap_or_default()
}
