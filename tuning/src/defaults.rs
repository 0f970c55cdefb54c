//! Every default value of the ringfwd configuration, written down once.
//!
//! The `Default` impls in `schema`, `api` and `placement` read these constants and
//! nothing else; `examples/dev-2core.toml` repeats them as the commented reference (a unit test
//! checks that file equals `Config::default()`). This module must never hold logic or limits:
//! the accepted ranges live in [`crate::validate`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Default UDP port of the media addresses.
pub const MEDIA_PORT: u16 = 40000;

/// Default media addresses: loopback IPv4 and IPv6 on [`MEDIA_PORT`].
pub const MEDIA_ADDRESSES: [SocketAddr; 2] = [
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), MEDIA_PORT),
    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), MEDIA_PORT),
];

/// Default socket receive buffer per worker socket (`SO_RCVBUF`), in bytes: 8 MiB.
pub const RECV_BUFFER_BYTES: usize = 8 << 20;

/// Default socket send buffer per worker socket (`SO_SNDBUF`), in bytes: 8 MiB.
pub const SEND_BUFFER_BYTES: usize = 8 << 20;

/// Default largest accepted datagram, in bytes; larger ones are dropped as oversize.
pub const MAX_PACKET_BYTES: usize = 1500;

/// Default time a latching endpoint keeps its learned address without traffic, in milliseconds.
pub const LATCH_WINDOW_MS: u64 = 10_000;

/// Default number of receive buffers in each worker's pool.
pub const BUFFERS_PER_WORKER: u32 = 4096;

/// Default size of one pool buffer, in bytes (packet plus `recvmsg` header room).
pub const BUFFER_BYTES: u32 = 2048;

/// Default number of send operations a worker may have in flight.
pub const SEND_SLOTS_PER_WORKER: u32 = 4096;

/// Default maximum number of segments coalesced into one UDP GSO send.
pub const GSO_MAX_SEGMENTS: u16 = 16;

/// Default receive batch (mmsg driver batch size, io_uring completion batch).
pub const RECV_BATCH: u32 = 64;

/// Default maximum number of streams owned by one worker.
pub const MAX_STREAMS_PER_WORKER: u32 = 4096;

/// Default maximum number of subscriptions owned by one worker.
pub const MAX_SUBSCRIPTIONS_PER_WORKER: u32 = 16384;

/// Default maximum number of subscriptions of one stream.
pub const MAX_SUBSCRIPTIONS_PER_STREAM: u32 = 1024;

/// Default capacity of each control-plane → worker command ring, in entries.
pub const COMMAND_RING_CAPACITY: u32 = 1024;

/// Default capacity of each worker → control-plane event ring, in entries.
pub const EVENT_RING_CAPACITY: u32 = 4096;

/// Default capacity of each cross-worker packet handover ring, in entries.
pub const HANDOVER_RING_CAPACITY: u32 = 1024;

/// Default bound on the packet memory of all workers together, in bytes: 4 GiB.
pub const MAX_POOL_BYTES_TOTAL: u64 = 4 << 30;

/// Default busy-spin time before a worker sleeps (used by `spin_then_sleep`), in microseconds.
pub const IDLE_SPIN_US: u64 = 50;

/// Default time the control plane waits for a worker to acknowledge a command, in milliseconds.
pub const COMMAND_TIMEOUT_MS: u64 = 2000;

/// Default period of the counters log line, in seconds (0 disables it).
pub const STATS_LOG_INTERVAL_S: u64 = 10;

/// Default address of the gRPC control API: loopback only, so the generated development key
/// (see [`AUTH_KEYS`]) never serves another host.
pub const API_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 50051);

/// Default advertised media addresses: none, so peers are told the bound media addresses.
pub const API_ADVERTISE_ADDRESSES: [SocketAddr; 0] = [];

/// Default token-signing keys: none, so the daemon generates a development key at start.
pub const AUTH_KEYS: [crate::api::AuthKey; 0] = [];

/// Default file the daemon writes the development token to (mode 0600) and `ringfwd ctl` reads.
pub const AUTH_DEV_TOKEN_FILE: &str = "/tmp/ringfwd-dev-token";

/// Default lifetime of the development token, in seconds: one day.
pub const AUTH_DEV_TOKEN_TTL_S: u64 = 86_400;

/// Default admission limit on sessions in the registry.
pub const ADMISSION_MAX_SESSIONS: u32 = 1000;

/// Default admission limit on endpoints in the registry, all sessions together.
pub const ADMISSION_MAX_ENDPOINTS: u32 = 10_000;

/// Default admission limit on streams in the registry, all sessions together.
pub const ADMISSION_MAX_STREAMS: u32 = 10_000;

/// Default admission limit on subscriptions in the registry, all sessions together.
pub const ADMISSION_MAX_SUBSCRIPTIONS: u32 = 100_000;

/// Default packet-rate limit per stream source: 0, unlimited.
pub const ADMISSION_MAX_PACKETS_PER_SECOND_PER_SOURCE: u32 = 0;
