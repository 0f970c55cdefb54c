//! Validation of `[interceptors]`: which built-ins may run where, and every parameter's range.
//!
//! Owns the accepted ranges of the interceptor parameters and [`validate_interceptors`]. Must never
//! change a value, only name the first one that is wrong.

use std::ops::RangeInclusive;

use super::in_range;
use crate::error::ConfigError;
use crate::interceptors::Interceptors;
use crate::schema::{Limits, Media};

/// Accepted timer intervals (report, feedback, keyframe, retry, window), in milliseconds.
pub const INTERVAL_MS_RANGE: RangeInclusive<u32> = 10..=60_000;
/// Accepted `interceptors.nack_cache.max_packets` (also a power of two).
pub const NACK_CACHE_PACKETS_RANGE: RangeInclusive<u16> = 16..=32_768;
/// Accepted `max_retransmits_per_packet` and `max_retries`.
pub const RETRIES_RANGE: RangeInclusive<u8> = 1..=20;
/// Accepted `interceptors.nack_generator.max_missing`.
pub const MAX_MISSING_RANGE: RangeInclusive<u16> = 16..=32_768;
/// Accepted one-byte header extension ids (RFC 8285 §4.2; 15 is reserved).
pub const EXTENSION_ID_RANGE: RangeInclusive<u8> = 1..=14;
/// Accepted `interceptors.tap.snap_bytes`.
pub const SNAP_BYTES_RANGE: RangeInclusive<u16> = 64..=65_535;
/// Accepted `interceptors.tap.ring_packets` (0: recording off).
pub const TAP_RING_PACKETS_RANGE: RangeInclusive<u32> = 0..=65_536;
/// The most memory one worker's tap ring may take (`ring_packets × snap_bytes`), in bytes: 256 MiB.
pub const TAP_RING_MAX_BYTES: u64 = 256 << 20;
/// Accepted `interceptors.tap.max_file_bytes`: 1 MiB (far above one record) to 1 TiB.
pub const TAP_MAX_FILE_BYTES_RANGE: RangeInclusive<u64> = (1 << 20)..=(1 << 40);
/// Accepted `interceptors.tap.max_open_files`.
pub const TAP_MAX_OPEN_FILES_RANGE: RangeInclusive<u32> = 1..=4096;

/// Checks the chains and every parameter; the first violation is returned.
pub fn validate_interceptors(config: &Interceptors, media: &Media, limits: &Limits) -> Result<(), ConfigError> {
    // The chains by the rules every API request is checked by; plugins are checked against the registry at start-up.
    config.resolve_defaults(None)?;
    in_range("interceptors.stats.bitrate_window_ms", config.stats.bitrate_window_ms, INTERVAL_MS_RANGE)?;
    let cache = &config.nack_cache;
    let key = "interceptors.nack_cache.max_packets";
    in_range(key, cache.max_packets, NACK_CACHE_PACKETS_RANGE)?;
    if !cache.max_packets.is_power_of_two() {
        return Err(ConfigError::invalid(key, cache.max_packets, "must be a power of two"));
    }
    let worst_bytes =
        u128::from(limits.max_streams_per_worker) * u128::from(cache.max_packets) * media.max_packet_bytes as u128;
    if worst_bytes > u128::from(limits.max_cache_bytes_per_worker) {
        let reason = format!(
            "limits.max_streams_per_worker {} × {key} {} × media.max_packet_bytes {} = {worst_bytes} bytes of cache per \
             worker, more than limits.max_cache_bytes_per_worker = {}",
            limits.max_streams_per_worker, cache.max_packets, media.max_packet_bytes, limits.max_cache_bytes_per_worker
        );
        return Err(ConfigError::invalid(key, cache.max_packets, reason));
    }
    in_range("interceptors.nack_cache.max_age_ms", cache.max_age_ms, INTERVAL_MS_RANGE)?;
    let key = "interceptors.nack_cache.max_retransmits_per_packet";
    in_range(key, cache.max_retransmits_per_packet, RETRIES_RANGE)?;
    let key = "interceptors.nack_cache.upstream_retry_interval_ms";
    in_range(key, cache.upstream_retry_interval_ms, INTERVAL_MS_RANGE)?;
    let generator = &config.nack_generator;
    in_range("interceptors.nack_generator.max_retries", generator.max_retries, RETRIES_RANGE)?;
    let key = "interceptors.nack_generator.min_retry_interval_ms";
    in_range(key, generator.min_retry_interval_ms, INTERVAL_MS_RANGE)?;
    in_range("interceptors.nack_generator.max_age_ms", generator.max_age_ms, INTERVAL_MS_RANGE)?;
    in_range("interceptors.nack_generator.max_missing", generator.max_missing, MAX_MISSING_RANGE)?;
    in_range("interceptors.reports.interval_ms", config.reports.interval_ms, INTERVAL_MS_RANGE)?;
    let key = "interceptors.keyframe_throttle.min_interval_ms";
    in_range(key, config.keyframe_throttle.min_interval_ms, INTERVAL_MS_RANGE)?;
    in_range("interceptors.twcc.extension_id", config.twcc.extension_id, EXTENSION_ID_RANGE)?;
    in_range("interceptors.twcc.feedback_interval_ms", config.twcc.feedback_interval_ms, INTERVAL_MS_RANGE)?;
    validate_tap(config)
}

/// `[interceptors.tap]`: every range, the ring's memory, a directory named.
fn validate_tap(config: &Interceptors) -> Result<(), ConfigError> {
    let tap = &config.tap;
    in_range("interceptors.tap.snap_bytes", tap.snap_bytes, SNAP_BYTES_RANGE)?;
    let key = "interceptors.tap.ring_packets";
    in_range(key, tap.ring_packets, TAP_RING_PACKETS_RANGE)?;
    let ring_bytes = u64::from(tap.ring_packets) * u64::from(tap.snap_bytes);
    if ring_bytes > TAP_RING_MAX_BYTES {
        let reason = format!(
            "{key} {} × interceptors.tap.snap_bytes {} = {ring_bytes} bytes of tap ring per worker, more than \
             {TAP_RING_MAX_BYTES}",
            tap.ring_packets, tap.snap_bytes
        );
        return Err(ConfigError::invalid(key, tap.ring_packets, reason));
    }
    in_range("interceptors.tap.max_file_bytes", tap.max_file_bytes, TAP_MAX_FILE_BYTES_RANGE)?;
    in_range("interceptors.tap.max_open_files", tap.max_open_files, TAP_MAX_OPEN_FILES_RANGE)?;
    if tap.directory.as_os_str().is_empty() {
        return Err(ConfigError::invalid("interceptors.tap.directory", "\"\"", "must name a directory"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn key_of(toml: &str) -> String {
        match Config::from_toml_str(toml) {
            Ok(_) => "<valid>".to_owned(),
            Err(e) => e.key().map(str::to_owned).unwrap_or_else(|| e.to_string()),
        }
    }

    #[test]
    fn chains_are_checked_by_position() {
        assert_eq!(key_of("[interceptors]\ningress = [\"stats\", \"sender_reports\"]\n"), "interceptors.ingress[1]");
        assert_eq!(key_of("[interceptors]\negress = [\"stats\", \"stats\"]\n"), "interceptors.egress[1]");
        assert_eq!(key_of("[interceptors]\negress = [\"nack_cache\"]\n"), "interceptors.egress[0]");
        let five_plugins = "[interceptors]\ningress = [\"a\", \"b\", \"c\", \"d\", \"e\"]\n";
        assert_eq!(key_of(five_plugins), "interceptors.ingress[4]", "at most four plugins per chain");
        let plugin = key_of("[interceptors]\ningress = [\"jitter_buffer\", \"stats\"]\n");
        assert_eq!(plugin, "<valid>", "a plugin's name: checked against the registry at start-up");
        assert_eq!(key_of("[interceptors]\ningress = []\negress = []\n"), "<valid>");
    }

    #[test]
    fn every_parameter_is_range_checked() {
        for (toml, key) in [
            ("[interceptors.stats]\nbitrate_window_ms = 5\n", "interceptors.stats.bitrate_window_ms"),
            ("[interceptors.nack_cache]\nmax_packets = 300\n", "interceptors.nack_cache.max_packets"),
            ("[interceptors.nack_cache]\nmax_packets = 8\n", "interceptors.nack_cache.max_packets"),
            ("[interceptors.nack_cache]\nmax_age_ms = 0\n", "interceptors.nack_cache.max_age_ms"),
            (
                "[interceptors.nack_cache]\nmax_retransmits_per_packet = 0\n",
                "interceptors.nack_cache.max_retransmits_per_packet",
            ),
            ("[interceptors.nack_generator]\nmax_retries = 21\n", "interceptors.nack_generator.max_retries"),
            (
                "[interceptors.nack_generator]\nmin_retry_interval_ms = 1\n",
                "interceptors.nack_generator.min_retry_interval_ms",
            ),
            ("[interceptors.nack_generator]\nmax_age_ms = 70000\n", "interceptors.nack_generator.max_age_ms"),
            ("[interceptors.nack_generator]\nmax_missing = 1\n", "interceptors.nack_generator.max_missing"),
            ("[interceptors.reports]\ninterval_ms = 1\n", "interceptors.reports.interval_ms"),
            (
                "[interceptors.keyframe_throttle]\nmin_interval_ms = 0\n",
                "interceptors.keyframe_throttle.min_interval_ms",
            ),
            ("[interceptors.twcc]\nextension_id = 15\n", "interceptors.twcc.extension_id"),
            ("[interceptors.twcc]\nfeedback_interval_ms = 1\n", "interceptors.twcc.feedback_interval_ms"),
            ("[interceptors.tap]\nsnap_bytes = 10\n", "interceptors.tap.snap_bytes"),
            ("[interceptors.tap]\nring_packets = 65537\n", "interceptors.tap.ring_packets"),
            ("[interceptors.tap]\nmax_file_bytes = 1000\n", "interceptors.tap.max_file_bytes"),
            ("[interceptors.tap]\nmax_file_bytes = 2000000000000\n", "interceptors.tap.max_file_bytes"),
            ("[interceptors.tap]\nmax_open_files = 0\n", "interceptors.tap.max_open_files"),
            ("[interceptors.tap]\nmax_open_files = 5000\n", "interceptors.tap.max_open_files"),
            ("[interceptors.tap]\ndirectory = \"\"\n", "interceptors.tap.directory"),
        ] {
            assert_eq!(key_of(toml), key, "{toml}");
        }
    }

    #[test]
    fn tap_ring_memory_is_bounded_and_zero_turns_recording_off() {
        let toml = "[interceptors.tap]\nring_packets = 65536\nsnap_bytes = 9000\n";
        let err = Config::from_toml_str(toml).unwrap_err().to_string();
        assert!(err.contains("interceptors.tap.ring_packets") && err.contains("65536"), "{err}");
        assert!(err.contains("589824000 bytes"), "{err}");
        assert_eq!(key_of("[interceptors.tap]\nring_packets = 65536\nsnap_bytes = 4096\n"), "<valid>");
        assert_eq!(key_of("[interceptors.tap]\nring_packets = 0\n"), "<valid>");
        let config = Config::from_toml_str("[interceptors.tap]\ndirectory = \"/var/lib/ringfwd/pcap\"\n").unwrap();
        assert_eq!(config.interceptors.tap.directory, std::path::Path::new("/var/lib/ringfwd/pcap"));
        assert_eq!(Config::default().interceptors.tap.directory, std::path::Path::new("pcap"));
    }

    #[test]
    fn cache_memory_is_bounded_per_worker() {
        let toml = "[interceptors.nack_cache]\nmax_packets = 32768\n";
        let err = Config::from_toml_str(toml).unwrap_err().to_string();
        assert!(err.contains("limits.max_cache_bytes_per_worker"), "{err}");
        let raised =
            "[interceptors.nack_cache]\nmax_packets = 32768\n[limits]\nmax_cache_bytes_per_worker = 1099511627776\n";
        assert_eq!(key_of(raised), "<valid>");
    }
}
