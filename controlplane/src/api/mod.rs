//! The gRPC control API (`ringfwd.v1.Ringfwd`), served by tonic on the control plane's runtime.
//!
//! Owns the service: authentication and authorization of every call ([`auth`]), the translation between the
//! wire and the registry ([`convert`], [`status`]), and running registry plans against the workers
//! ([`apply`]): a change is validated and planned under the registry lock, its commands are sent to the workers
//! one by one, each acknowledged before the next, and only then committed. Creates and updates that fail
//! midway are undone on the workers and leave the registry as it was; deletes send every command and commit
//! (a removal a worker did not acknowledge in time is still queued to it). Never runs on a worker core.

mod apply;
mod auth;
mod convert;
mod service;
mod status;

pub use convert::media_address;

use std::net::SocketAddr;
use std::sync::Arc;

use ringfwd_dataplane::runtime::WorkerHandle;
use ringfwd_proto::v1::ringfwd_server::RingfwdServer;
use tokio::sync::Mutex;

use crate::auth::Verifier;
use crate::commands::CommandClient;
use crate::registry::Registry;

/// What the API reports about the node that never changes while it runs.
#[derive(Debug, Clone)]
pub struct NodeStatic {
    /// ringfwd's version.
    pub version: &'static str,
    /// "io_uring" or "mmsg".
    pub driver: &'static str,
    /// Bound media addresses.
    pub media: Vec<SocketAddr>,
    /// Addresses peers are told to send to (the bound ones when none are configured).
    pub advertise: Vec<SocketAddr>,
    /// The workers and their counters.
    pub workers: Vec<WorkerHandle>,
    /// `admission.max_packets_per_second_per_source` (0: unlimited), enforced by the workers.
    pub max_packets_per_second_per_source: u32,
}

/// The service state shared by every call.
pub struct Api {
    registry: Mutex<Registry>,
    client: Arc<CommandClient>,
    verifier: Verifier,
    node: NodeStatic,
}

impl Api {
    /// A service over `registry`, sending commands with `client` and checking tokens with `verifier`.
    pub fn new(registry: Registry, client: Arc<CommandClient>, verifier: Verifier, node: NodeStatic) -> Api {
        Api { registry: Mutex::new(registry), client, verifier, node }
    }

    /// The registry's current usage (for reports).
    pub async fn usage(&self) -> crate::registry::Usage {
        self.registry.lock().await.usage()
    }
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(RingfwdServer::from_arc(api))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await
}
