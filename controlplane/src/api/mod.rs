//! The gRPC control API (`ringfwd.v1.Ringfwd`), served by tonic on the control plane's runtime.
//!
//! Owns the service: authentication and authorization of every call ([`auth`], one layer around the whole
//! service, from one table of the access each RPC needs), the translation between the
//! wire and the registry ([`convert`], [`status`]), and running registry plans against the workers
//! ([`apply`]): a change is validated and planned under the registry lock, its commands are sent to the workers
//! one by one, each acknowledged before the next, and only then committed. Creates and updates that fail
//! midway are undone on the workers and leave the registry as it was; deletes send every command and commit
//! (a removal a worker did not acknowledge in time is still queued to it). Never runs on a worker core.
//!
//! Metadata ([`metadata`], [`metadata_hub`], [`metadata_wire`]) lives beside the registry: an object's metadata
//! changes only while the registry lock shows the object exists, is written right after the commit of a create
//! that carried some, and is dropped (its watchers told) right after the commit of the delete that removed it.
//!
//! Lifecycle events ([`events`]) are published right after each commit, under the registry lock, before the
//! commit's metadata hook runs: so they are in commit order and a create's metadata event follows its create.
//! The same module drains the workers' event rings and serves WatchEvents.
//!
//! Plugins loaded and unloaded while the node runs ([`plugins`]) change the registry's plugins and every worker's
//! under the same lock.
//!
//! Beside the API, on the same listener, [`probes`] serves the standard gRPC health service (its status follows
//! `Drain` and shutdown) and server reflection; both without a token, and only they.

mod apply;
mod auth;
mod cluster;
pub mod convert;
mod events;
mod metadata;
mod metadata_hub;
pub mod metadata_wire;
mod plugins;
mod probes;
mod relay;
mod service;
pub(crate) mod status;
mod unclaimed;

pub use convert::media_address;
pub use events::{event_to_wire, EventStream, MAX_WORKER_EVENTS_PER_ROUND};
pub use plugins::{MAX_MODULE_BYTES, MAX_REQUEST_BYTES};
pub use probes::{ReflectionError, METHODS as PROBE_METHODS};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringfwd_dataplane::control::WorkerHandle;
use ringfwd_proto::v1::ringfwd_server::RingfwdServer;
use tokio::sync::Mutex;

use crate::auth::Verifier;
use crate::commands::CommandClient;
use crate::events::EventBus;
use crate::metadata::MetadataLimits;
use crate::registry::Registry;
use crate::telemetry::StatsStore;
use auth::Authorized;
use unclaimed::UnclaimedSsrcs;

/// What the API reports about the node that never changes while it runs.
#[derive(Debug, Clone)]
pub struct NodeStatic {
    /// ringfwd's version.
    pub version: &'static str,
    /// Random per start of the daemon (also in event ids): a change tells a controller the node restarted.
    pub boot_id: u64,
    /// When the daemon started, Unix milliseconds.
    pub started_unix_ms: u64,
    /// "io_uring" or "mmsg".
    pub driver: &'static str,
    /// Bound media addresses.
    pub media: Vec<SocketAddr>,
    /// Addresses peers are told to send to (the bound ones when none are configured).
    pub advertise: Vec<SocketAddr>,
    /// Bound RTCP addresses (media port + 1; empty unless `media.rtcp_port_plus_one`).
    pub rtcp: Vec<SocketAddr>,
    /// Where peers without rtcp-mux are told to send RTCP: each advertised address's port + 1 when RTCP
    /// addresses are bound, else the advertised addresses.
    pub advertise_rtcp: Vec<SocketAddr>,
    /// The workers and their counters.
    pub workers: Vec<WorkerHandle>,
    /// `admission.max_packets_per_second_per_source` (0: unlimited), enforced by the workers.
    pub max_packets_per_second_per_source: u32,
    /// The plugins chains may name, native and WebAssembly: the only part that changes while the node runs
    /// (`LoadPlugin`, `UnloadPlugin`, replaced under the registry lock).
    pub plugins: crate::plugins::LivePlugins,
}

/// The service state shared by every call.
pub struct Api {
    registry: Mutex<Registry>,
    client: Arc<CommandClient>,
    node: NodeStatic,
    /// Locked after the registry when both are needed, and never across an `.await`.
    metadata: std::sync::Mutex<metadata_hub::MetadataHub>,
    /// The workers' latest statistics; locked after the registry, never across an `.await`.
    stats: Arc<std::sync::Mutex<StatsStore>>,
    /// Lifecycle events: published right after each commit, under the registry lock.
    events: Arc<EventBus>,
    /// What the health service answers; published under the registry lock.
    health: probes::HealthStatus,
    /// Unknown SSRCs no stream took yet, offered again after each commit; locked under the registry lock,
    /// never across an `.await`.
    unclaimed: std::sync::Mutex<UnclaimedSsrcs>,
    /// One permit per open metadata watcher (`metadata.max_watchers`).
    metadata_watchers: Arc<tokio::sync::Semaphore>,
    /// Where each commit's session is kept ([`crate::state`]), once attached (after the restore).
    state: std::sync::OnceLock<Arc<crate::state::StateStore>>,
    /// This node in the cluster ([`crate::cluster`]), once joined.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Api {
    /// A service over `registry`, sending commands with `client`, keeping
    /// metadata within `metadata`, answering statistics from `stats` (which the collector fills) and
    /// publishing its lifecycle events on `events`, keeping unknown SSRCs for `stats_interval` (the workers'
    /// statistics round, after which they report them again).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: Registry,
        client: Arc<CommandClient>,
        node: NodeStatic,
        metadata: MetadataLimits,
        stats: Arc<std::sync::Mutex<StatsStore>>,
        events: Arc<EventBus>,
        stats_interval: Duration,
    ) -> Api {
        let metadata_watchers = Arc::new(tokio::sync::Semaphore::new(metadata.max_watchers));
        let metadata = std::sync::Mutex::new(metadata_hub::MetadataHub::new(metadata));
        let health = probes::HealthStatus::new();
        let unclaimed = std::sync::Mutex::new(UnclaimedSsrcs::new(node.workers.len(), stats_interval));
        let registry = Mutex::new(registry);
        let state = std::sync::OnceLock::new();
        let cluster = std::sync::OnceLock::new();
        Api { registry, client, node, metadata, stats, events, health, unclaimed, metadata_watchers, state, cluster }
    }

    /// The lifecycle event bus.
    pub fn events(&self) -> &Arc<EventBus> {
        &self.events
    }

    /// `GetNodeInfo` reports the cluster through `cluster` from now on. Attached once, when the node joined.
    pub fn attach_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// From now on, every commit's session is written to `store` before the call answers (see `apply`). Attached
    /// once, after the restore.
    pub fn keep_state(&self, store: Arc<crate::state::StateStore>) {
        let _ = self.state.set(store);
    }

    /// The names of those of `ids` the registry holds.
    pub async fn subscription_names(
        &self,
        ids: std::collections::BTreeSet<ringfwd_dataplane::control::SubscriptionId>,
    ) -> crate::registry::SubscriptionNames {
        self.registry.lock().await.names_of(&Default::default(), &ids).1
    }

    /// The registry's current usage (for reports).
    pub async fn usage(&self) -> crate::registry::Usage {
        self.registry.lock().await.usage()
    }
}

/// Why the API server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection services could not be built.
    #[error(transparent)]
    Reflection(#[from] ReflectionError),
    /// The server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How often a connection past its handshake is pinged (HTTP/2 PING), and how long its answer may take before the
/// connection is closed: a peer gone silent does not keep its place.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// See [`KEEPALIVE_INTERVAL`].
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API (every call checked against `verifier`), the health service and reflection on `listener`, over
/// `tls` when given, until `shutdown` completes, counting every request into `metrics`, within `limits` (see
/// `incoming`; the TLS handshake is within the handshake timeout).
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: tokio::net::TcpListener,
    limits: crate::incoming::ConnectionLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    api: Arc<Api>,
    verifier: Verifier,
    metrics: Arc<crate::metrics::ApiMetrics>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (reflection_v1, reflection_v1alpha) = probes::reflection_services()?;
    let health = probes::health_service(&api).await;
    // From the socket in: the bounded accept (connection cap; TLS handshake and HTTP/2 preface within the handshake
    // timeout) comes first, so no connection is served beyond the cap or before its handshake; the metrics layer
    // wraps every service, so calls the token check refuses are counted by their code too; the token check wraps
    // `ringfwd.v1.Ringfwd` alone, so health and reflection stay open to probes without a token.
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(crate::metrics::ApiMetricsLayer::new(metrics))
        .add_service(Authorized::new(
            // LoadPlugin carries a module of up to MAX_MODULE_BYTES (tonic's default limit is 4 MiB); the token is
            // checked before a request's body is read.
            RingfwdServer::from_arc(api).max_decoding_message_size(MAX_REQUEST_BYTES),
            Arc::new(verifier),
        ))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            crate::incoming::connections(listener, limits, tls.map(tokio_rustls::TlsAcceptor::from)),
            shutdown,
        )
        .await?;
    Ok(())
}
