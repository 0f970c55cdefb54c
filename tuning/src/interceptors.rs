//! The `[interceptors]` section: which built-in interceptors run by default, and their parameters.
//!
//! Owns [`Interceptors`], [`InterceptorName`] and one parameter struct per built-in. These are the
//! defaults of every stream (ingress) and subscription (egress); the control API may override them per
//! stream or subscription. Values come from [`crate::defaults`]; ranges are checked in
//! [`crate::validate`]. This module must never hold a literal default nor check a range.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::defaults;

/// A built-in interceptor, by its config and API name (`nack_cache`, ...): the data plane's own list of built-ins,
/// in chain order, serialized by name.
pub use ringfwd_dataplane::control::InterceptorKind as InterceptorName;

/// `[interceptors]`: the default chains and every built-in's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Interceptors {
    /// Built-ins on every stream's ingress chain (they always run in the documented order, whatever
    /// the order here).
    pub ingress: Vec<InterceptorName>,
    /// Built-ins on every subscription's egress chain.
    pub egress: Vec<InterceptorName>,
    /// `stats`.
    pub stats: StatsConfig,
    /// `nack_cache`.
    pub nack_cache: NackCacheConfig,
    /// `nack_generator`.
    pub nack_generator: NackGeneratorConfig,
    /// `receiver_reports` and `sender_reports`.
    pub reports: ReportsConfig,
    /// `keyframe_throttle`.
    pub keyframe_throttle: KeyframeThrottleConfig,
    /// `rate_limit`.
    pub rate_limit: RateLimitConfig,
    /// `twcc`.
    pub twcc: TwccConfig,
    /// `tap`.
    pub tap: TapConfig,
}

impl Default for Interceptors {
    fn default() -> Interceptors {
        let names = |list: &[&str]| list.iter().filter_map(|name| InterceptorName::parse(name)).collect();
        Interceptors {
            ingress: names(defaults::INTERCEPTORS_INGRESS),
            egress: names(defaults::INTERCEPTORS_EGRESS),
            stats: StatsConfig::default(),
            nack_cache: NackCacheConfig::default(),
            nack_generator: NackGeneratorConfig::default(),
            reports: ReportsConfig::default(),
            keyframe_throttle: KeyframeThrottleConfig::default(),
            rate_limit: RateLimitConfig::default(),
            twcc: TwccConfig::default(),
            tap: TapConfig::default(),
        }
    }
}

/// `[interceptors.stats]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// Window the bit rate is measured over, in milliseconds.
    pub bitrate_window_ms: u32,
}

impl Default for StatsConfig {
    fn default() -> StatsConfig {
        StatsConfig { bitrate_window_ms: defaults::STATS_BITRATE_WINDOW_MS }
    }
}

/// `[interceptors.nack_cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NackCacheConfig {
    /// Packets kept per stream (a power of two); each slot is `media.max_packet_bytes` long.
    pub max_packets: u16,
    /// A packet older than this is not retransmitted, in milliseconds.
    pub max_age_ms: u32,
    /// Retransmissions of one packet at most; also how often one packet the cache never received is asked for
    /// from the publisher on the subscribers' behalf.
    pub max_retransmits_per_packet: u8,
    /// Least wait between two requests to the publisher for one packet the cache never received, in
    /// milliseconds: subscribers' NACKs for it within this interval are merged into the request already sent.
    pub upstream_retry_interval_ms: u32,
}

impl Default for NackCacheConfig {
    fn default() -> NackCacheConfig {
        NackCacheConfig {
            max_packets: defaults::NACK_CACHE_MAX_PACKETS,
            max_age_ms: defaults::NACK_CACHE_MAX_AGE_MS,
            max_retransmits_per_packet: defaults::NACK_CACHE_MAX_RETRANSMITS_PER_PACKET,
            upstream_retry_interval_ms: defaults::NACK_CACHE_UPSTREAM_RETRY_INTERVAL_MS,
        }
    }
}

/// `[interceptors.nack_generator]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NackGeneratorConfig {
    /// Times one missing packet is asked for.
    pub max_retries: u8,
    /// Least wait between two requests for one packet (the wait while no RTT is known), in milliseconds.
    pub min_retry_interval_ms: u32,
    /// A missing packet older than this is given up, in milliseconds.
    pub max_age_ms: u32,
    /// Missing packets tracked at once per stream.
    pub max_missing: u16,
}

impl Default for NackGeneratorConfig {
    fn default() -> NackGeneratorConfig {
        NackGeneratorConfig {
            max_retries: defaults::NACK_GENERATOR_MAX_RETRIES,
            min_retry_interval_ms: defaults::NACK_GENERATOR_MIN_RETRY_INTERVAL_MS,
            max_age_ms: defaults::NACK_GENERATOR_MAX_AGE_MS,
            max_missing: defaults::NACK_GENERATOR_MAX_MISSING,
        }
    }
}

/// `[interceptors.reports]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Mean interval between two reports, in milliseconds (each is sent at 0.5–1.5 × it).
    pub interval_ms: u32,
}

impl Default for ReportsConfig {
    fn default() -> ReportsConfig {
        ReportsConfig { interval_ms: defaults::REPORT_INTERVAL_MS }
    }
}

/// `[interceptors.keyframe_throttle]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyframeThrottleConfig {
    /// At most one PLI/FIR per this interval goes to a publisher, in milliseconds.
    pub min_interval_ms: u32,
}

impl Default for KeyframeThrottleConfig {
    fn default() -> KeyframeThrottleConfig {
        KeyframeThrottleConfig { min_interval_ms: defaults::KEYFRAME_MIN_INTERVAL_MS }
    }
}

/// `[interceptors.rate_limit]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Packets per second one source may send (0: unlimited).
    pub max_packets_per_second: u32,
    /// Bits per second one source may send, whole datagrams (0: unlimited).
    pub max_bits_per_second: u64,
}

/// `[interceptors.twcc]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwccConfig {
    /// The negotiated one-byte header extension id of the transport-wide sequence number (1..=14).
    pub extension_id: u8,
    /// Feedback interval, in milliseconds.
    pub feedback_interval_ms: u32,
}

impl Default for TwccConfig {
    fn default() -> TwccConfig {
        TwccConfig {
            extension_id: defaults::TWCC_EXTENSION_ID,
            feedback_interval_ms: defaults::TWCC_FEEDBACK_INTERVAL_MS,
        }
    }
}

/// `[interceptors.tap]`: what the recording tap keeps and where the pcap recorder writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TapConfig {
    /// Bytes of each packet kept (pcap snaplen); also the size of each tap ring slot.
    pub snap_bytes: u16,
    /// Where the recorder writes `ringfwd-<ssrc as 8 hex>-<unix seconds>.pcap` files (created, mode 0750, when
    /// the first file is). A relative path is under the state directory (`state.directory`), never the
    /// working directory: see [`Config::tap_directory`](crate::Config::tap_directory).
    pub directory: PathBuf,
    /// Packets each worker's tap ring holds for the recorder; a full ring drops and counts
    /// (`tap_dropped`). Memory: `ring_packets × snap_bytes` per worker. 0 disables recording: no rings,
    /// no recorder thread, and streams naming `tap` record nothing.
    pub ring_packets: u32,
    /// A recording file is closed and a new one started before it would exceed this, in bytes.
    pub max_file_bytes: u64,
    /// Recording files open at once; opening one more closes the least recently written.
    pub max_open_files: u32,
}

impl Default for TapConfig {
    fn default() -> TapConfig {
        TapConfig {
            snap_bytes: defaults::TAP_SNAP_BYTES,
            directory: PathBuf::from(defaults::TAP_DIRECTORY),
            ring_packets: defaults::TAP_RING_PACKETS,
            max_file_bytes: defaults::TAP_MAX_FILE_BYTES,
            max_open_files: defaults::TAP_MAX_OPEN_FILES,
        }
    }
}
