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

/// Default expected load: packets per second arriving on all media sockets together. With one
/// worker this derives the 4096 buffers and 8 MiB socket buffers the benches were tuned with.
pub const EXPECTED_PACKETS_PER_SECOND: u64 = 200_000;

/// Default burst a worker must absorb without being scheduled (receive buffers, socket buffers), in
/// milliseconds of its share of the expected load.
pub const BURST_MS: u32 = 20;

/// Socket buffer bytes charged per queued datagram when deriving socket buffer sizes (the kernel
/// accounts the whole socket buffer, about 2 KiB for a 1200-byte RTP packet).
pub const SOCKET_BYTES_PER_PACKET: usize = 2048;

/// Default largest accepted datagram, in bytes; larger ones are dropped as oversize.
pub const MAX_PACKET_BYTES: usize = 1500;

/// Default time a latching endpoint keeps its learned address without traffic, in milliseconds.
pub const LATCH_WINDOW_MS: u64 = 10_000;
/// `media.rtcp_port_plus_one`: RTCP only on the media ports (peers without rtcp-mux send theirs there too).
pub const RTCP_PORT_PLUS_ONE: bool = false;

/// Default size of one pool buffer, in bytes (packet plus `recvmsg` header room).
pub const BUFFER_BYTES: u32 = 2048;

/// Default maximum number of segments coalesced into one UDP GSO send.
pub const GSO_MAX_SEGMENTS: u16 = 16;

/// Default spare pool buffers per worker (outside the receive ring).
pub const SPARE_BUFFERS_PER_WORKER: u32 = 512;

/// Default receive batch (the mmsg driver's batch size).
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

/// Default bound of a sleeping worker's adaptive batch window, in microseconds: the latency a worker may spend
/// gathering a batch. At 50 k packets/s (flat, 200 B, one core, `ringfwd-bench run`, 2026-12-04) 50 µs gave
/// 9.4–9.9 µs of CPU per copy at p50 41 µs and p99 110–140 µs, against 11.4–12.4 µs at p50 16 µs with no window
/// and 7.8–8.6 µs at p50 55–70 µs with 100 µs. Light traffic gets no window at all.
pub const IDLE_BATCH_WINDOW_US: u32 = 50;

/// Default time the control plane waits for a worker to acknowledge a command, in milliseconds.
pub const COMMAND_TIMEOUT_MS: u64 = 2000;

/// Default period of the counters log line, in seconds (0 disables it).
pub const STATS_LOG_INTERVAL_S: u64 = 10;

/// Default address of the gRPC control API: loopback only, so the generated development key
/// (see [`AUTH_KEYS`]) never serves another host.
pub const API_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 50051);

/// Default advertised media addresses: none, so peers are told the bound media addresses.
pub const API_ADVERTISE_ADDRESSES: [SocketAddr; 0] = [];

/// Default number of API connections served at once.
pub const API_MAX_CONNECTIONS: u32 = 256;

/// Default time a new API connection has to send the HTTP/2 preface, in milliseconds.
pub const API_HANDSHAKE_TIMEOUT_MS: u32 = 10_000;

/// Default `[api.tls]`: none, so the API serves plaintext HTTP/2 (allowed on loopback only, see
/// [`API_ALLOW_PLAINTEXT`]).
pub const API_TLS: Option<crate::api::ApiTls> = None;

/// Default `api.allow_plaintext`: off, so a non-loopback `api.listen` needs `[api.tls]`.
pub const API_ALLOW_PLAINTEXT: bool = false;

/// Default token-signing keys: none, so the daemon generates a development key at start.
pub const AUTH_KEYS: [crate::api::AuthKey; 0] = [];

/// Default `auth.dev_token_file`: none, so the daemon and `ringfwd ctl` both find the development token by the rule
/// of [`crate::dev_token`] (a private runtime directory of the user), never in a shared one.
pub const AUTH_DEV_TOKEN_FILE: Option<&str> = None;

/// File name of the development token in the directory [`crate::dev_token`] picks.
pub const DEV_TOKEN_FILE_NAME: &str = "dev-token";

/// Subdirectory of `$XDG_RUNTIME_DIR` that holds the development token.
pub const DEV_TOKEN_XDG_SUBDIR: &str = "ringfwd";

/// Directory of the development token of a daemon running as root without `RUNTIME_DIRECTORY` or
/// `XDG_RUNTIME_DIR`.
pub const DEV_TOKEN_ROOT_DIR: &str = "/run/ringfwd";

/// Directory of the development token of any other user without those variables: this prefix and the uid
/// (`/tmp/ringfwd-1000`), created 0700 by the daemon.
pub const DEV_TOKEN_TMP_DIR_PREFIX: &str = "/tmp/ringfwd-";

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

/// Default node id stamped into every metadata version this node writes (the tie-breaker between writers).
pub const METADATA_NODE_ID: u32 = 1;

/// Default longest metadata key, in bytes.
pub const METADATA_MAX_KEY_BYTES: u32 = 128;

/// Default longest metadata value, in bytes.
pub const METADATA_MAX_VALUE_BYTES: u32 = 4096;

/// Default bound on the live metadata of one session, endpoint or stream (keys plus values), in bytes.
pub const METADATA_MAX_OBJECT_BYTES: u32 = 65_536;

/// Default number of deletion tombstones kept per object (the oldest goes first).
pub const METADATA_MAX_TOMBSTONES_PER_OBJECT: u32 = 256;

/// Default bytes of recent changes kept per object for watchers that resume.
pub const METADATA_LOG_RETENTION_BYTES: u32 = 65_536;

/// Default number of changes one watcher may fall behind before it is cut off.
pub const METADATA_WATCH_BUFFER_EVENTS: u32 = 256;

/// Default number of metadata watchers open at once.
pub const METADATA_MAX_WATCHERS: u32 = 64;

/// Default ingress interceptors of every stream: statistics, the retransmission cache, keyframe-request
/// throttling and receiver reports (the chain issue 4 calls the default).
pub const INTERCEPTORS_INGRESS: &[&str] = &["stats", "keyframe_throttle", "nack_cache", "receiver_reports"];

/// Default egress interceptors of every subscription: statistics and sender reports.
pub const INTERCEPTORS_EGRESS: &[&str] = &["stats", "sender_reports"];

/// Default bit-rate measurement window of the stats interceptor, in milliseconds.
pub const STATS_BITRATE_WINDOW_MS: u32 = 1000;

/// Default packets kept per stream by the retransmission cache (about 1.7 s of 30 fps video at 5 packets a frame).
pub const NACK_CACHE_MAX_PACKETS: u16 = 256;

/// Default age past which a cached packet is not retransmitted, in milliseconds.
pub const NACK_CACHE_MAX_AGE_MS: u32 = 1000;

/// Default cap on retransmissions of one packet.
pub const NACK_CACHE_MAX_RETRANSMITS_PER_PACKET: u8 = 3;

/// Default least wait between two requests the retransmission cache sends the publisher for one packet it never
/// received, in milliseconds (about one RTT on a continental path; GStreamer and libwebrtc re-ask about as often).
pub const NACK_CACHE_UPSTREAM_RETRY_INTERVAL_MS: u32 = 100;

/// Default times one missing packet is asked for by the NACK generator.
pub const NACK_GENERATOR_MAX_RETRIES: u8 = 5;

/// Default least wait between two NACKs for one packet (the wait without an RTT), in milliseconds.
pub const NACK_GENERATOR_MIN_RETRY_INTERVAL_MS: u32 = 20;

/// Default age past which the NACK generator gives a missing packet up, in milliseconds.
pub const NACK_GENERATOR_MAX_AGE_MS: u32 = 1000;

/// Default number of missing packets the NACK generator tracks per stream.
pub const NACK_GENERATOR_MAX_MISSING: u16 = 512;

/// Default RTCP report interval (receiver reports to publishers, sender reports to subscribers), in milliseconds.
pub const REPORT_INTERVAL_MS: u32 = 1000;

/// Default least interval between two keyframe requests to one publisher, in milliseconds.
pub const KEYFRAME_MIN_INTERVAL_MS: u32 = 500;

/// Default transport-wide sequence number header extension id (as commonly negotiated by browsers).
pub const TWCC_EXTENSION_ID: u8 = 3;

/// Default transport-wide feedback interval, in milliseconds.
pub const TWCC_FEEDBACK_INTERVAL_MS: u32 = 100;

/// Default bytes of each packet the recording tap keeps (pcap snaplen).
pub const TAP_SNAP_BYTES: u16 = 1500;

/// Default bound on one worker's retransmission-cache memory with every stream slot in use
/// (`limits.max_streams_per_worker × interceptors.nack_cache.max_packets × media.max_packet_bytes`), in bytes: 2 GiB.
pub const MAX_CACHE_BYTES_PER_WORKER: u64 = 2 << 30;

/// Default directory of the pcap recordings: relative, so it is `pcap` under the state directory (see
/// [`STATE_DIRECTORY`]), whatever the daemon's working directory.
pub const TAP_DIRECTORY: &str = "pcap";

/// Default packets each worker's tap ring holds for the recorder (the recorder sleeps at most 10 ms when
/// idle, so this absorbs ≈ 200 k tapped packets per second per worker): 3 MB per worker at 1500 bytes.
pub const TAP_RING_PACKETS: u32 = 2048;

/// Default size at which a recording file is closed and the next one started, in bytes: 100 MiB.
pub const TAP_MAX_FILE_BYTES: u64 = 100 << 20;

/// Default number of recording files open at once (each with a 64 KiB write buffer).
pub const TAP_MAX_OPEN_FILES: u32 = 64;

/// Default interval at which workers publish per-stream and per-subscription statistics, in milliseconds.
pub const STATS_INTERVAL_MS: u32 = 1000;

/// Default time the statistics of a stream or subscription that stopped reporting (it ended) are kept, in
/// milliseconds.
pub const STATS_GRACE_MS: u32 = 10_000;

/// Default time without packets after which a stream is reported inactive, in milliseconds.
pub const INACTIVE_AFTER_MS: u32 = 5000;

/// Default: the Prometheus endpoint is served.
pub const METRICS_ENABLED: bool = true;

/// Default address of the Prometheus endpoint: loopback only, since it has no authentication.
pub const METRICS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

/// Default scrape connections served at once.
pub const METRICS_MAX_CONNECTIONS: u32 = 16;

/// Default number of lifecycle events kept for watchers that resume from a sequence number.
pub const EVENTS_HISTORY: u32 = 4096;

/// Default number of events one event watcher may have waiting before it is cut off.
pub const EVENTS_WATCH_BUFFER: u32 = 1024;

/// Default number of event watchers open at once.
pub const EVENTS_MAX_WATCHERS: u32 = 64;

/// Default interval at which the workers' event rings are drained, in milliseconds.
pub const EVENTS_WORKER_POLL_MS: u32 = 100;

/// Default time one webhook delivery attempt may take, in milliseconds.
pub const WEBHOOK_TIMEOUT_MS: u32 = 5000;

/// Default number of events waiting for delivery per webhook URL.
pub const WEBHOOK_QUEUE: u32 = 1024;

/// Default number of retries of one webhook delivery.
pub const WEBHOOK_MAX_RETRIES: u32 = 5;

/// Default wait before the first webhook retry, in milliseconds.
pub const WEBHOOK_BACKOFF_INITIAL_MS: u32 = 500;

/// Default longest wait between two webhook attempts, in milliseconds.
pub const WEBHOOK_BACKOFF_MAX_MS: u32 = 30_000;

/// Default `state.directory`: unset, so the daemon finds it at start-up with
/// [`crate::default_state_directory`]: `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else
/// [`STATE_DIRECTORY_AS_ROOT`] as root, else `$XDG_STATE_HOME/`[`STATE_DIRECTORY_NAME`], else
/// `$HOME/.local/state/`[`STATE_DIRECTORY_NAME`].
pub const STATE_DIRECTORY: Option<&str> = None;

/// Default `state.persist`: accepted sessions (with everything in them and their metadata) survive a restart.
pub const STATE_PERSIST: bool = true;

/// Default `state.numbering_interval_ms`: how often each worker publishes what every subscription last sent, and the
/// state store keeps it (so a restart after a crash continues each subscriber's numbering, skipping ahead by what may
/// have gone out since; a stop or a takeover keeps the exact numbering whatever the interval). Each round is one
/// durable write (an fsync): a second, not 100 ms, because a disk interrupt served on a worker core delays forwarding
/// (measured: median p99 one-way latency at 50 k pps 279 µs with 100 ms, 194 µs with 1 s; bench/RESULTS.md), while
/// the longer interval only widens the skip after a crash by up to 1.25 s of packets.
pub const STATE_NUMBERING_INTERVAL_MS: u32 = 1000;

/// The state directory of a daemon running as root outside systemd (the one `StateDirectory=ringfwd` makes).
pub const STATE_DIRECTORY_AS_ROOT: &str = "/var/lib/ringfwd";

/// The state directory's name under `$XDG_STATE_HOME` or `$HOME/.local/state` for a daemon run by another user.
pub const STATE_DIRECTORY_NAME: &str = "ringfwd";

/// `plugins[].fuel_per_call`: about a hundred microseconds of WebAssembly per packet at most.
pub const PLUGIN_FUEL_PER_CALL: u64 = ringfwd_dataplane::wasm::DEFAULT_FUEL_PER_CALL;
/// `plugins[].memory_max_bytes`: 16 MiB per instance.
pub const PLUGIN_MEMORY_MAX_BYTES: u64 = ringfwd_dataplane::wasm::DEFAULT_MEMORY_BYTES;

/// Default `cluster.redis_url`: a Redis server on this host's loopback, database 0.
pub const CLUSTER_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// Default `cluster.namespace`.
pub const CLUSTER_NAMESPACE: &str = "ringfwd";

/// Default `cluster.heartbeat_ms`.
pub const CLUSTER_HEARTBEAT_MS: u32 = 1000;

/// Default `cluster.lease_ms`: three heartbeats.
pub const CLUSTER_LEASE_MS: u32 = 3000;

/// Default `cluster.update_queue`.
pub const CLUSTER_UPDATE_QUEUE: u32 = 4096;

/// Default `cluster.finish_inactive_streams`: a silence ends no relay (a local stream's subscriptions live on
/// through one too).
pub const CLUSTER_FINISH_INACTIVE_STREAMS: bool = false;
