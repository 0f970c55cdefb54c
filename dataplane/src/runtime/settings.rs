//! What the data plane is started with: resolved settings of its own types.
//!
//! Owns [`DataplaneSettings`] and its parts: the worker cores (already resolved), the media addresses, the backend,
//! socket buffer sizes, ring capacities, each worker's [`WorkerSettings`] and the pcap recorder's. The control
//! plane builds them (the config crate converts its config into them); the data plane must never read a config
//! file, know its schema or defaults, or look at the host (`/sys`, `/proc`) to fill them in.

use std::net::SocketAddr;

use crate::core::interceptor::Plugins;

pub use super::recorder::RecorderSettings;
pub use super::worker::WorkerSettings;

/// The I/O backend the workers run. Serialized by name (`io_uring`, `mmsg`): the config crate reads `media.driver`
/// with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// io_uring: multishot receive into a provided-buffer ring, zero-copy fan-out, UDP GSO.
    #[default]
    IoUring,
    /// `recvmmsg`/`sendmmsg`: the portable fallback.
    Mmsg,
}

impl BackendKind {
    /// Its name in logs, metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::IoUring => "io_uring",
            BackendKind::Mmsg => "mmsg",
        }
    }
}

/// The pcap tap: one ring per worker, drained by the recorder thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapSettings {
    /// Packets each worker's tap ring holds (at least 1).
    pub ring_packets: usize,
    /// Bytes kept of each tapped packet.
    pub snap_bytes: u16,
    /// Where and how the recorder writes.
    pub recorder: RecorderSettings,
    /// The core the recorder thread is pinned to (`None`: wherever the process's own threads may run).
    pub core: Option<usize>,
}

/// Everything [`super::Dataplane`] starts with.
#[derive(Debug, Clone)]
pub struct DataplaneSettings {
    /// One worker per core, in worker order (resolved by the caller against the host).
    pub cores: Vec<usize>,
    /// The media addresses, bound in this order (port 0: any free port).
    pub media_addresses: Vec<SocketAddr>,
    /// Also bind each media address's port + 1 for RTCP (peers that do not multiplex RTP and RTCP).
    pub rtcp_port_plus_one: bool,
    /// The I/O backend.
    pub backend: BackendKind,
    /// `SO_RCVBUF` of each media socket, in bytes.
    pub recv_buffer_bytes: usize,
    /// `SO_SNDBUF` of each media socket, in bytes.
    pub send_buffer_bytes: usize,
    /// Commands (and acknowledgements) in flight per worker.
    pub command_ring_capacity: usize,
    /// Packets one worker may hand over to another at once.
    pub handover_ring_capacity: usize,
    /// Events a worker may publish before the control plane drains them (beyond: dropped and counted).
    pub event_ring_capacity: usize,
    /// What each worker runs with (`rtcp_socket_offset` is set by the start-up, from the sockets it binds).
    pub worker: WorkerSettings,
    /// The pcap tap (`None`: recording is off).
    pub tap: Option<TapSettings>,
    /// The native plugins chains may name (registered by the program that starts the data plane).
    pub plugins: Plugins,
}
