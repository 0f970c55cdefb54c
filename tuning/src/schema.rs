//! The configuration structs and their serde form (TOML sections and keys).
//!
//! Owns [`Config`] and its sections except placement ([`crate::placement`]) and the control API's
//! sections ([`crate::api`]), including the shape of the static sessions ([`SessionSpec`] and its
//! parts). Every struct denies unknown keys, so a typo is an error naming the key, and takes
//! missing keys from its `Default` impl, which reads [`crate::defaults`] only. This module must
//! never check ranges (that is [`crate::validate`]) nor hold a literal default, and never judge
//! the static sessions: the control plane's registry does, as it judges the API's creates.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::api::{Admission, Api, Auth};
use crate::defaults;
use crate::placement::Placement;

/// The whole ringfwd configuration. `Config::default()` is the built-in config.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Core pinning (`[placement]`).
    pub placement: Placement,
    /// Media sockets (`[media]`).
    pub media: Media,
    /// Per-worker packet pool and send slots (`[pool]`).
    pub pool: Pool,
    /// The load the sizes not set in `[pool]` and `[media]` are derived from (`[load]`).
    pub load: crate::sizes::Load,
    /// Table and ring bounds (`[limits]`).
    pub limits: Limits,
    /// What a worker does when it has no work (`[idle]`).
    pub idle: Idle,
    /// Control-plane timing (`[control]`).
    pub control: Control,
    /// The gRPC control API's addresses (`[api]`).
    pub api: Api,
    /// Bearer-token keys of the control API (`[auth]`).
    pub auth: Auth,
    /// Registry admission limits (`[admission]`).
    pub admission: Admission,
    /// Key/value metadata on sessions, endpoints and streams (`[metadata]`).
    pub metadata: Metadata,
    /// Default interceptor chains and their parameters (`[interceptors]`).
    pub interceptors: crate::interceptors::Interceptors,
    /// Statistics from the workers (`[telemetry]`).
    pub telemetry: crate::telemetry::Telemetry,
    /// The Prometheus endpoint (`[metrics]`).
    pub metrics: crate::metrics::Metrics,
    /// Lifecycle events: history, watchers (`[events]`).
    pub events: crate::events::Events,
    /// Where lifecycle events are POSTed (`[webhooks]`).
    pub webhooks: crate::webhooks::Webhooks,
    /// Where files that outlive the process go (`[state]`).
    pub state: crate::state::State,
    /// This node among several, and the directory they share (`[cluster]`).
    pub cluster: crate::cluster::Cluster,
    /// WebAssembly plugins loaded at start-up (`[[plugins]]`).
    pub plugins: Vec<crate::plugins::PluginConfig>,
    /// Static routes installed at start-up (`[[sessions]]`).
    pub sessions: Vec<SessionSpec>,
}

/// Media sockets: where publishers send and from where subscribers receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Media {
    /// Local UDP addresses; each is one `SO_REUSEPORT` group with one socket per worker.
    /// Port 0 picks a free port, shared by all workers.
    pub addresses: Vec<SocketAddr>,
    /// Which I/O driver the workers run.
    pub driver: Driver,
    /// `SO_RCVBUF` of each worker socket, in bytes (`SO_RCVBUFFORCE` when running as root).
    /// Unset: derived from the expected load (see [`Config::sizes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recv_buffer_bytes: Option<usize>,
    /// `SO_SNDBUF` of each worker socket, in bytes. Unset: derived from the expected load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_buffer_bytes: Option<usize>,
    /// Largest accepted datagram, in bytes; larger ones are dropped as oversize.
    pub max_packet_bytes: usize,
    /// How long a latching endpoint keeps its learned address without traffic, in milliseconds.
    pub latch_window_ms: u64,
    /// Also bind each media address's port + 1 (same `SO_REUSEPORT` group and steering): RTCP received there is
    /// taken like RTCP on the media port, and RTCP to peers with an RTCP address (no rtcp-mux) leaves from it.
    /// Needs explicit media ports (not 0) below 65535.
    pub rtcp_port_plus_one: bool,
}

impl Media {
    /// Whether some media address has the address family of `address` (a peer at `address`
    /// can only be sent to, or told to send to, an address of its own family).
    pub(crate) fn serves_family_of(&self, address: &SocketAddr) -> bool {
        self.addresses.iter().any(|m| m.is_ipv4() == address.is_ipv4())
    }
}

impl Default for Media {
    fn default() -> Self {
        Media {
            addresses: defaults::MEDIA_ADDRESSES.to_vec(),
            driver: Driver::default(),
            recv_buffer_bytes: None,
            send_buffer_bytes: None,
            max_packet_bytes: defaults::MAX_PACKET_BYTES,
            latch_window_ms: defaults::LATCH_WINDOW_MS,
            rtcp_port_plus_one: defaults::RTCP_PORT_PLUS_ONE,
        }
    }
}

/// The worker I/O driver (`media.driver`): the data plane's own backend list, serialized by name (`"io_uring"`, with
/// multishot receive and provided buffers; `"mmsg"`, the `recvmmsg`/`sendmmsg` fallback and benchmark baseline).
pub use ringfwd_dataplane::control::BackendKind as Driver;

/// Per-worker packet pool and send slots; everything is allocated once at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pool {
    /// Receive buffers per worker; a power of two. Unset: derived from the expected load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffers_per_worker: Option<u32>,
    /// Size of one buffer, in bytes: room for the largest packet plus the `recvmsg` header.
    pub buffer_bytes: u32,
    /// Send operations one worker may have in flight. Unset: derived from the expected load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_slots_per_worker: Option<u32>,
    /// Buffers per worker outside the receive ring, for the packets a worker assembles itself (RTCP copies, a
    /// plugin's rewritten packet before its fan-out, packets handed over by other workers).
    pub spare_buffers_per_worker: u32,
    /// Most segments coalesced into one UDP GSO send; 1 disables GSO.
    pub gso_max_segments: u16,
    /// Receive batch: the mmsg driver's batch size.
    pub recv_batch: u32,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            buffers_per_worker: None,
            buffer_bytes: defaults::BUFFER_BYTES,
            send_slots_per_worker: None,
            spare_buffers_per_worker: defaults::SPARE_BUFFERS_PER_WORKER,
            gso_max_segments: defaults::GSO_MAX_SEGMENTS,
            recv_batch: defaults::RECV_BATCH,
        }
    }
}

/// Fixed bounds of the worker tables and the rings between threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Streams one worker may own.
    pub max_streams_per_worker: u32,
    /// Subscriptions one worker may own.
    pub max_subscriptions_per_worker: u32,
    /// Subscriptions one stream may have.
    pub max_subscriptions_per_stream: u32,
    /// Entries of each control-plane → worker command ring.
    pub command_ring_capacity: u32,
    /// Entries of each worker → control-plane event ring.
    pub event_ring_capacity: u32,
    /// Entries of each cross-worker packet handover ring.
    pub handover_ring_capacity: u32,
    /// Packet memory of all workers together (`workers × pool.buffers_per_worker ×
    /// pool.buffer_bytes`) may not exceed this, in bytes.
    pub max_pool_bytes_total: u64,
    /// Retransmission-cache memory of one worker with every stream slot in use
    /// (`max_streams_per_worker × interceptors.nack_cache.max_packets × media.max_packet_bytes`), in bytes.
    pub max_cache_bytes_per_worker: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams_per_worker: defaults::MAX_STREAMS_PER_WORKER,
            max_subscriptions_per_worker: defaults::MAX_SUBSCRIPTIONS_PER_WORKER,
            max_subscriptions_per_stream: defaults::MAX_SUBSCRIPTIONS_PER_STREAM,
            command_ring_capacity: defaults::COMMAND_RING_CAPACITY,
            event_ring_capacity: defaults::EVENT_RING_CAPACITY,
            handover_ring_capacity: defaults::HANDOVER_RING_CAPACITY,
            max_pool_bytes_total: defaults::MAX_POOL_BYTES_TOTAL,
            max_cache_bytes_per_worker: defaults::MAX_CACHE_BYTES_PER_WORKER,
        }
    }
}

/// What a worker does when an iteration found no work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Idle {
    /// The idle strategy.
    pub strategy: IdleStrategy,
    /// Busy-spin time before sleeping with `spin_then_sleep`, in microseconds.
    pub spin_us: u64,
    /// Longest batch window of a sleeping worker, in microseconds (io_uring driver, Linux >= 6.12): the latency
    /// budget a worker may spend gathering a batch. Packets that arrive within the window after the worker went
    /// to sleep are handled together when it ends, so the worker wakes once per window instead of once per
    /// arrival and a destination's packets leave in wider GSO sends. The window adapts to the arrival rate: none
    /// while the rate would gather fewer than 2 packets within this bound (light traffic is handled at once), then
    /// the time to gather 16, at most this. Adds up to this much latency; 0 handles every arrival at once.
    pub batch_window_us: u32,
}

impl Default for Idle {
    fn default() -> Self {
        Idle {
            strategy: IdleStrategy::default(),
            spin_us: defaults::IDLE_SPIN_US,
            batch_window_us: defaults::IDLE_BATCH_WINDOW_US,
        }
    }
}

/// Idle strategy of a worker (`idle.strategy`): the data plane's own, serialized by name (`"sleep"`: block until a
/// completion arrives, cheapest CPU; `"spin"`: never block, one full core per worker; `"spin_then_sleep"`: spin
/// for `spin_us`, then block).
pub use ringfwd_dataplane::control::IdleStrategy;

/// Control-plane timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Control {
    /// How long the control plane waits for a worker to acknowledge a command, in milliseconds.
    pub command_timeout_ms: u64,
    /// Period of the counters log line, in seconds; 0 disables it.
    pub stats_log_interval_s: u64,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            command_timeout_ms: defaults::COMMAND_TIMEOUT_MS,
            stats_log_interval_s: defaults::STATS_LOG_INTERVAL_S,
        }
    }
}

/// Key/value metadata that controllers attach to sessions, endpoints and streams: its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metadata {
    /// This node's id in every metadata version it writes, breaking ties between writers; not 0.
    pub node_id: u32,
    /// Longest key, in bytes.
    pub max_key_bytes: u32,
    /// Longest value, in bytes.
    pub max_value_bytes: u32,
    /// Live metadata of one object (the sum of its keys and values), in bytes.
    pub max_object_bytes: u32,
    /// Deletion tombstones kept per object; beyond it the oldest is forgotten.
    pub max_tombstones_per_object: u32,
    /// Recent changes kept per object for watchers that resume, in bytes (keys plus values).
    pub log_retention_bytes: u32,
    /// Changes one watcher may fall behind before it is cut off.
    pub watch_buffer_events: u32,
    /// Metadata watchers open at once (`WatchMetadata` streams); more are refused.
    pub max_watchers: u32,
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata {
            node_id: defaults::METADATA_NODE_ID,
            max_key_bytes: defaults::METADATA_MAX_KEY_BYTES,
            max_value_bytes: defaults::METADATA_MAX_VALUE_BYTES,
            max_object_bytes: defaults::METADATA_MAX_OBJECT_BYTES,
            max_tombstones_per_object: defaults::METADATA_MAX_TOMBSTONES_PER_OBJECT,
            log_retention_bytes: defaults::METADATA_LOG_RETENTION_BYTES,
            watch_buffer_events: defaults::METADATA_WATCH_BUFFER_EVENTS,
            max_watchers: defaults::METADATA_MAX_WATCHERS,
        }
    }
}

// ---- static sessions (`[[sessions]]`) ----
// Their shape only. Whether they make sense (ids, references, SSRCs, address families, limits, duplicates) is
// judged by the control plane's registry, the same code that judges the control API's creates: `ringfwd
// --check-config` and the daemon's start run the config's sessions through it.

/// One session (room, call): endpoints, the streams they publish and who receives what.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// Session id (declared once in the config).
    pub id: String,
    /// The session's endpoints (`[[sessions.endpoints]]`).
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
    /// Streams published by the endpoints (`[[sessions.streams]]`).
    #[serde(default)]
    pub streams: Vec<StreamSpec>,
    /// Streams forwarded to endpoints (`[[sessions.subscriptions]]`).
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSpec>,
}

/// One remote peer of a session.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Endpoint id (declared once in its session).
    pub id: String,
    /// The peer's media address; absent means it is learned from the first packet (latching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
    /// Learn (and follow) the peer's address from its packets within `media.latch_window_ms`.
    #[serde(default)]
    pub latching: bool,
}

/// One RTP stream published by an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// Stream id (declared once in its session).
    pub id: String,
    /// Id of the publishing endpoint in the same session.
    pub endpoint: String,
    /// The stream's SSRC.
    pub ssrc: u32,
    /// "audio" (default) or "video".
    #[serde(default)]
    pub kind: MediaKind,
    /// RTP clock rate in Hz; default 48000 for audio, 90000 for video ([`StreamSpec::clock_rate_hz`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_rate_hz: Option<u32>,
}

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// Audio (default clock rate 48000 Hz).
    #[default]
    Audio,
    /// Video (default clock rate 90000 Hz).
    Video,
}

impl StreamSpec {
    /// The configured clock rate, or the kind's default.
    pub fn clock_rate_hz(&self) -> u32 {
        self.clock_rate_hz.unwrap_or(match self.kind {
            MediaKind::Audio => 48_000,
            MediaKind::Video => 90_000,
        })
    }
}

/// One stream forwarded to one endpoint, with its egress rewriting.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// Id of the forwarded stream in the same session.
    pub stream: String,
    /// Id of the receiving endpoint in the same session.
    pub endpoint: String,
    /// SSRC written on egress; absent keeps the stream's SSRC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_ssrc: Option<u32>,
    /// Added (wrapping) to every forwarded sequence number.
    #[serde(default)]
    pub seq_offset: u16,
    /// Added (wrapping) to every forwarded RTP timestamp.
    #[serde(default)]
    pub ts_offset: u32,
    /// Payload-type rewrites `[incoming, outgoing]`, e.g. `[[96, 100]]`.
    #[serde(default)]
    pub payload_type_map: Vec<[u8; 2]>,
}
