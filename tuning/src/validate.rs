//! Start-up validation of a whole [`Config`]: accepted ranges and cross-field rules.
//!
//! Owns every accepted range (as named consts) and [`Config::validate`], which checks the
//! sections in order and returns the first problem as [`ConfigError::Invalid`] naming the dotted
//! key and the value. Placement rules live beside their types (an explicit worker list's packet
//! memory is checked against `limits.max_pool_bytes_total` here too), the control API's sections
//! in `api` (a child module); all are called from here. This module must never change a value to
//! make it fit, nor look at the host, nor judge the static sessions (`[[sessions]]`): the control
//! plane's registry does, with the rules it applies to the API's creates (`ringfwd --check-config`
//! runs them).

mod api;
mod api_tls;
mod cluster;
mod events;
mod interceptors;

use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

pub use api::{MAX_ID_BYTES, MIN_AUTH_SECRET_BYTES};
pub use cluster::{check_node_id, redact_password, MAX_UNREACHABLE_NODES};

use crate::error::ConfigError;
use crate::placement::{check_pool_fits, WorkerCores};
use crate::schema::{Config, Control, Idle, Limits, Media, Pool};
use crate::state::State;

/// Accepted `media.max_packet_bytes` (the largest UDP payload over IPv4 is 65507).
pub const MAX_PACKET_BYTES_RANGE: RangeInclusive<usize> = 64..=65507;
/// Accepted `media.recv_buffer_bytes` and `media.send_buffer_bytes`.
pub const SOCKET_BUFFER_BYTES_RANGE: RangeInclusive<usize> = 4096..=1 << 30;
/// Largest accepted `media.latch_window_ms`: one hour.
pub const MAX_LATCH_WINDOW_MS: u64 = 3_600_000;
/// Accepted `pool.buffers_per_worker` (also a power of two).
pub const BUFFERS_PER_WORKER_RANGE: RangeInclusive<u32> = 16..=32768;
/// Accepted `pool.spare_buffers_per_worker`: with the largest receive ring, every buffer of a worker keeps a 16-bit id.
pub const SPARE_BUFFERS_RANGE: RangeInclusive<u32> = 16..=32767;
/// Room kept in each pool buffer beyond `media.max_packet_bytes`, in bytes (recvmsg header).
pub const BUFFER_HEADROOM_BYTES: u32 = 256;
/// Largest accepted `pool.buffer_bytes`.
pub const MAX_BUFFER_BYTES: u32 = 65536 + 512;
/// Accepted `pool.send_slots_per_worker`.
pub const SEND_SLOTS_RANGE: RangeInclusive<u32> = 16..=1 << 20;
/// Accepted `pool.gso_max_segments` (the kernel's UDP GSO limit is 64 segments).
pub const GSO_MAX_SEGMENTS_RANGE: RangeInclusive<u16> = 1..=64;
/// Accepted `pool.recv_batch`.
pub const RECV_BATCH_RANGE: RangeInclusive<u32> = 1..=1024;
/// Accepted value of every `limits.*` key.
pub const LIMIT_RANGE: RangeInclusive<u32> = 1..=1 << 20;
/// Accepted `limits.max_pool_bytes_total`: 1 MiB to 1 TiB.
pub const MAX_POOL_BYTES_TOTAL_RANGE: RangeInclusive<u64> = 1 << 20..=1 << 40;
/// Largest accepted `idle.spin_us`: one second.
pub const MAX_SPIN_US: u64 = 1_000_000;
/// Largest accepted `idle.batch_window_us`: 10 ms (latency a worker may add to batch packets).
pub const MAX_BATCH_WINDOW_US: u32 = 10_000;
/// Accepted `control.command_timeout_ms`.
pub const COMMAND_TIMEOUT_MS_RANGE: RangeInclusive<u64> = 1..=60_000;
/// Largest accepted `control.stats_log_interval_s`: one day.
pub const MAX_STATS_LOG_INTERVAL_S: u64 = 86_400;
/// Accepted `auth.dev_token_ttl_s`: one minute to 365 days.
pub const DEV_TOKEN_TTL_S_RANGE: RangeInclusive<u64> = 60..=31_536_000;
/// Accepted value of every `admission.*` key.
pub const ADMISSION_RANGE: RangeInclusive<u32> = 1..=1 << 20;

/// Accepted `metadata.max_key_bytes` (the shortest valid key, `a.b`, has 3 bytes).
pub const METADATA_KEY_BYTES_RANGE: RangeInclusive<u32> = 3..=1024;
/// Accepted `metadata.max_value_bytes`: up to 1 MiB.
pub const METADATA_VALUE_BYTES_RANGE: RangeInclusive<u32> = 1..=1 << 20;
/// Largest accepted `metadata.max_object_bytes` and `metadata.log_retention_bytes`: 16 MiB.
pub const MAX_METADATA_OBJECT_BYTES: u32 = 16 << 20;
/// Accepted `metadata.max_watchers` (as `events.max_watchers`).
pub const METADATA_MAX_WATCHERS_RANGE: RangeInclusive<u32> = 1..=4096;
/// Accepted `metadata.max_tombstones_per_object` and `metadata.watch_buffer_events`.
pub const METADATA_COUNT_RANGE: RangeInclusive<u32> = 1..=65_536;

impl Config {
    /// Checks every rule; the first violation is returned, naming its key and value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.placement.validate()?;
        validate_media(&self.media)?;
        validate_pool(&self.pool, &self.media)?;
        validate_limits(&self.limits)?;
        if let WorkerCores::List(cores) = &self.placement.worker_cores {
            check_pool_fits(cores, self, &self.limits)?;
        }
        validate_load(&self.load)?;
        validate_telemetry(&self.telemetry)?;
        validate_idle(&self.idle)?;
        validate_control(&self.control)?;
        api::validate_api(&self.api, &self.media)?;
        api::validate_auth(&self.auth, &self.api)?;
        api_tls::validate_api_tls(&self.api)?;
        api::validate_admission(&self.admission)?;
        validate_metadata(&self.metadata)?;
        validate_metrics(&self.metrics, &self.api)?;
        events::validate_events(&self.events)?;
        events::validate_webhooks(&self.webhooks)?;
        interceptors::validate_interceptors(&self.interceptors, &self.media, &self.limits)?;
        crate::plugins::validate_plugins(&self.plugins)?;
        cluster::validate_cluster(&self.cluster)?;
        validate_state(&self.state)
    }
}

fn in_range<T: PartialOrd + Display>(key: &str, value: T, range: RangeInclusive<T>) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        let reason = format!("must be in {}..={}", range.start(), range.end());
        Err(ConfigError::invalid(key, value, reason))
    }
}

fn at_most(key: &str, value: u64, max: u64) -> Result<(), ConfigError> {
    in_range(key, value, 0..=max)
}

/// Accepted `state.numbering_interval_ms`.
pub const NUMBERING_INTERVAL_MS_RANGE: RangeInclusive<u32> = 10..=10_000;

/// `state.directory`, when set, is an absolute path: the daemon's working directory is no place for state;
/// `state.numbering_interval_ms` is in [`NUMBERING_INTERVAL_MS_RANGE`].
fn validate_state(state: &State) -> Result<(), ConfigError> {
    in_range("state.numbering_interval_ms", state.numbering_interval_ms, NUMBERING_INTERVAL_MS_RANGE)?;
    match &state.directory {
        Some(directory) if !directory.is_absolute() => Err(ConfigError::invalid(
            "state.directory",
            format!("{:?}", directory.display().to_string()),
            "must be an absolute path, e.g. \"/var/lib/ringfwd\"",
        )),
        _ => Ok(()),
    }
}

fn validate_media(media: &Media) -> Result<(), ConfigError> {
    if media.addresses.is_empty() {
        return Err(ConfigError::invalid("media.addresses", "[]", "needs at least one address"));
    }
    for (i, address) in media.addresses.iter().enumerate() {
        // Port 0 would pick a port whose + 1 may be taken: refused rather than resolved by retries.
        if media.rtcp_port_plus_one && !(1..u16::MAX).contains(&address.port()) {
            let why = "media.rtcp_port_plus_one needs an explicit port in 1..=65534";
            return Err(ConfigError::invalid(format!("media.addresses[{i}]"), address, why));
        }
        let plus_one = |a: &SocketAddr| media.rtcp_port_plus_one && a.port().checked_add(1) == Some(address.port());
        if let Some(first) = media.addresses[..i].iter().position(plus_one) {
            let why = format!("its port is media.addresses[{first}]'s port + 1 (media.rtcp_port_plus_one)");
            return Err(ConfigError::invalid(format!("media.addresses[{i}]"), address, why));
        }
        if let Some(first) = media.addresses[..i].iter().position(|a| a == address) {
            return Err(ConfigError::invalid(
                format!("media.addresses[{i}]"),
                address,
                format!("duplicate of media.addresses[{first}]"),
            ));
        }
    }
    if let Some(bytes) = media.recv_buffer_bytes {
        in_range("media.recv_buffer_bytes", bytes, SOCKET_BUFFER_BYTES_RANGE)?;
    }
    if let Some(bytes) = media.send_buffer_bytes {
        in_range("media.send_buffer_bytes", bytes, SOCKET_BUFFER_BYTES_RANGE)?;
    }
    in_range("media.max_packet_bytes", media.max_packet_bytes, MAX_PACKET_BYTES_RANGE)?;
    at_most("media.latch_window_ms", media.latch_window_ms, MAX_LATCH_WINDOW_MS)
}

fn validate_pool(pool: &Pool, media: &Media) -> Result<(), ConfigError> {
    let key = "pool.buffers_per_worker";
    if let Some(buffers) = pool.buffers_per_worker {
        in_range(key, buffers, BUFFERS_PER_WORKER_RANGE)?;
        if !buffers.is_power_of_two() {
            return Err(ConfigError::invalid(key, buffers, "must be a power of two"));
        }
    }
    // max_packet_bytes is already checked to be <= 65507, so this cannot overflow.
    let min_buffer_bytes = media.max_packet_bytes as u64 + u64::from(BUFFER_HEADROOM_BYTES);
    if u64::from(pool.buffer_bytes) < min_buffer_bytes || pool.buffer_bytes > MAX_BUFFER_BYTES {
        return Err(ConfigError::invalid(
            "pool.buffer_bytes",
            pool.buffer_bytes,
            format!(
                "must be in {min_buffer_bytes}..={MAX_BUFFER_BYTES} \
                 (media.max_packet_bytes + {BUFFER_HEADROOM_BYTES} at least)"
            ),
        ));
    }
    if let Some(slots) = pool.send_slots_per_worker {
        in_range("pool.send_slots_per_worker", slots, SEND_SLOTS_RANGE)?;
    }
    in_range("pool.spare_buffers_per_worker", pool.spare_buffers_per_worker, SPARE_BUFFERS_RANGE)?;
    in_range("pool.gso_max_segments", pool.gso_max_segments, GSO_MAX_SEGMENTS_RANGE)?;
    in_range("pool.recv_batch", pool.recv_batch, RECV_BATCH_RANGE)
}

fn validate_limits(limits: &Limits) -> Result<(), ConfigError> {
    let all = [
        ("limits.max_streams_per_worker", limits.max_streams_per_worker),
        ("limits.max_subscriptions_per_worker", limits.max_subscriptions_per_worker),
        ("limits.max_subscriptions_per_stream", limits.max_subscriptions_per_stream),
        ("limits.command_ring_capacity", limits.command_ring_capacity),
        ("limits.event_ring_capacity", limits.event_ring_capacity),
        ("limits.handover_ring_capacity", limits.handover_ring_capacity),
    ];
    for (key, value) in all {
        in_range(key, value, LIMIT_RANGE)?;
    }
    in_range("limits.max_pool_bytes_total", limits.max_pool_bytes_total, MAX_POOL_BYTES_TOTAL_RANGE)?;
    if limits.max_subscriptions_per_stream > limits.max_subscriptions_per_worker {
        return Err(ConfigError::invalid(
            "limits.max_subscriptions_per_stream",
            limits.max_subscriptions_per_stream,
            format!("must not exceed limits.max_subscriptions_per_worker = {}", limits.max_subscriptions_per_worker),
        ));
    }
    Ok(())
}

/// Accepted `load.expected_packets_per_second`.
pub const EXPECTED_PACKETS_PER_SECOND_RANGE: RangeInclusive<u64> = 1..=100_000_000;
/// Accepted `load.burst_ms`.
pub const BURST_MS_RANGE: RangeInclusive<u32> = 1..=1000;

fn validate_load(load: &crate::sizes::Load) -> Result<(), ConfigError> {
    let key = "load.expected_packets_per_second";
    in_range(key, load.expected_packets_per_second, EXPECTED_PACKETS_PER_SECOND_RANGE)?;
    in_range("load.burst_ms", load.burst_ms, BURST_MS_RANGE)
}

/// Accepted `telemetry.stats_interval_ms`.
pub const STATS_INTERVAL_MS_RANGE: RangeInclusive<u32> = 100..=60_000;
/// Longest accepted `telemetry.stats_grace_ms` (and it is at least `telemetry.stats_interval_ms`).
pub const MAX_STATS_GRACE_MS: u32 = 3_600_000;
/// Accepted `telemetry.inactive_after_ms`.
pub const INACTIVE_AFTER_MS_RANGE: RangeInclusive<u32> = 100..=3_600_000;

fn validate_telemetry(telemetry: &crate::telemetry::Telemetry) -> Result<(), ConfigError> {
    in_range("telemetry.stats_interval_ms", telemetry.stats_interval_ms, STATS_INTERVAL_MS_RANGE)?;
    let key = "telemetry.stats_grace_ms";
    if telemetry.stats_grace_ms < telemetry.stats_interval_ms || telemetry.stats_grace_ms > MAX_STATS_GRACE_MS {
        let reason = format!("must be at least telemetry.stats_interval_ms and at most {MAX_STATS_GRACE_MS}");
        return Err(ConfigError::invalid(key, telemetry.stats_grace_ms, reason));
    }
    in_range("telemetry.inactive_after_ms", telemetry.inactive_after_ms, INACTIVE_AFTER_MS_RANGE)
}

fn validate_idle(idle: &Idle) -> Result<(), ConfigError> {
    at_most("idle.spin_us", idle.spin_us, MAX_SPIN_US)?;
    in_range("idle.batch_window_us", idle.batch_window_us, 0..=MAX_BATCH_WINDOW_US)
}

fn validate_control(control: &Control) -> Result<(), ConfigError> {
    in_range("control.command_timeout_ms", control.command_timeout_ms, COMMAND_TIMEOUT_MS_RANGE)?;
    at_most("control.stats_log_interval_s", control.stats_log_interval_s, MAX_STATS_LOG_INTERVAL_S)
}

/// Accepted `metrics.max_connections`.
pub const METRICS_MAX_CONNECTIONS_RANGE: RangeInclusive<u32> = 1..=1024;

/// `[metrics]`: a connection bound, and an address of its own (not the control API's).
fn validate_metrics(metrics: &crate::metrics::Metrics, api: &crate::api::Api) -> Result<(), ConfigError> {
    if !metrics.enabled {
        return Ok(());
    }
    in_range("metrics.max_connections", metrics.max_connections, METRICS_MAX_CONNECTIONS_RANGE)?;
    if metrics.listen.port() != 0 && metrics.listen == api.listen {
        return Err(ConfigError::invalid("metrics.listen", metrics.listen, "must differ from api.listen"));
    }
    Ok(())
}

/// `[metadata]`: a node id, and bounds where one largest key with one largest value fits an object.
fn validate_metadata(metadata: &crate::schema::Metadata) -> Result<(), ConfigError> {
    if metadata.node_id == 0 {
        return Err(ConfigError::invalid("metadata.node_id", 0, "must not be 0 (the version of nothing)"));
    }
    in_range("metadata.max_key_bytes", metadata.max_key_bytes, METADATA_KEY_BYTES_RANGE)?;
    in_range("metadata.max_value_bytes", metadata.max_value_bytes, METADATA_VALUE_BYTES_RANGE)?;
    let smallest = metadata.max_key_bytes + metadata.max_value_bytes;
    let key = "metadata.max_object_bytes";
    if metadata.max_object_bytes < smallest || metadata.max_object_bytes > MAX_METADATA_OBJECT_BYTES {
        let reason = format!(
            "must be in {smallest}..={MAX_METADATA_OBJECT_BYTES} (metadata.max_key_bytes + metadata.max_value_bytes \
             at least)"
        );
        return Err(ConfigError::invalid(key, metadata.max_object_bytes, reason));
    }
    let key = "metadata.log_retention_bytes";
    in_range(key, metadata.log_retention_bytes, 1..=MAX_METADATA_OBJECT_BYTES)?;
    let key = "metadata.max_tombstones_per_object";
    in_range(key, metadata.max_tombstones_per_object, METADATA_COUNT_RANGE)?;
    in_range("metadata.watch_buffer_events", metadata.watch_buffer_events, METADATA_COUNT_RANGE)?;
    in_range("metadata.max_watchers", metadata.max_watchers, METADATA_MAX_WATCHERS_RANGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_bounds_are_checked_by_key() {
        assert_eq!(key_after(|c| c.metadata.node_id = 0), "metadata.node_id");
        assert_eq!(key_after(|c| c.metadata.max_key_bytes = 2), "metadata.max_key_bytes");
        assert_eq!(key_after(|c| c.metadata.max_value_bytes = 0), "metadata.max_value_bytes");
        let key = key_after(|c| c.metadata.max_object_bytes = c.metadata.max_value_bytes);
        assert_eq!(key, "metadata.max_object_bytes", "one largest key and value must fit");
        assert_eq!(key_after(|c| c.metadata.max_object_bytes = MAX_METADATA_OBJECT_BYTES + 1), key);
        assert_eq!(key_after(|c| c.metadata.log_retention_bytes = 0), "metadata.log_retention_bytes");
        let key = "metadata.max_tombstones_per_object";
        assert_eq!(key_after(|c| c.metadata.max_tombstones_per_object = 0), key);
        assert_eq!(key_after(|c| c.metadata.watch_buffer_events = 65_537), "metadata.watch_buffer_events");
        assert_eq!(key_after(|c| c.metadata.max_watchers = 0), "metadata.max_watchers");
        assert_eq!(key_after(|c| c.metadata.max_watchers = 4097), "metadata.max_watchers");
        assert_eq!(key_after(|c| c.metadata.max_object_bytes = 128 + 4096), "<valid>");
    }

    /// Applies `change` to the default config and returns the key the validation error names
    /// (`"<valid>"` when there is none). Shared with the [`super::api`] tests.
    pub(super) fn key_after(change: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        change(&mut config);
        match config.validate() {
            Ok(()) => "<valid>".to_owned(),
            Err(e) => e.key().unwrap_or("<no key>").to_owned(),
        }
    }

    #[test]
    fn default_config_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn placement_rules_are_applied() {
        let key = key_after(|c| c.placement.worker_cores = WorkerCores::List(vec![]));
        assert_eq!(key, "placement.worker_cores");
        let key = key_after(|c| {
            c.placement.worker_cores = WorkerCores::List(vec![1]);
            c.placement.control_cores = vec![1];
        });
        assert_eq!(key, "placement.control_cores");
    }

    #[test]
    fn media_addresses_must_be_non_empty() {
        assert_eq!(key_after(|c| c.media.addresses.clear()), "media.addresses");
    }

    #[test]
    fn media_addresses_must_be_unique() {
        let key = key_after(|c| {
            let first = c.media.addresses[0];
            c.media.addresses.push(first);
        });
        assert_eq!(key, "media.addresses[2]");
    }

    #[test]
    fn media_port_zero_is_allowed() {
        let key = key_after(|c| c.media.addresses = vec!["127.0.0.1:0".parse().unwrap()]);
        assert_eq!(key, "<valid>");
    }

    #[test]
    fn max_packet_bytes_range() {
        assert_eq!(key_after(|c| c.media.max_packet_bytes = 63), "media.max_packet_bytes");
        let key = key_after(|c| {
            c.media.max_packet_bytes = 65508;
            c.pool.buffer_bytes = MAX_BUFFER_BYTES;
        });
        assert_eq!(key, "media.max_packet_bytes");
        let key = key_after(|c| {
            c.media.max_packet_bytes = 65507;
            c.pool.buffer_bytes = MAX_BUFFER_BYTES;
        });
        assert_eq!(key, "interceptors.nack_cache.max_packets", "the cache bound counts packet size");
        let key = key_after(|c| {
            c.media.max_packet_bytes = 65507;
            c.pool.buffer_bytes = MAX_BUFFER_BYTES;
            c.limits.max_cache_bytes_per_worker = u64::MAX;
        });
        assert_eq!(key, "<valid>");
    }

    #[test]
    fn socket_buffer_ranges() {
        let key = key_after(|c| c.media.recv_buffer_bytes = Some(4095));
        assert_eq!(key, "media.recv_buffer_bytes");
        let key = key_after(|c| c.media.send_buffer_bytes = Some((1 << 30) + 1));
        assert_eq!(key, "media.send_buffer_bytes");
    }

    #[test]
    fn latch_window_at_most_one_hour() {
        let key = key_after(|c| c.media.latch_window_ms = MAX_LATCH_WINDOW_MS + 1);
        assert_eq!(key, "media.latch_window_ms");
        assert_eq!(key_after(|c| c.media.latch_window_ms = 0), "<valid>");
        let port_zero = |c: &mut Config| {
            c.media.rtcp_port_plus_one = true;
            c.media.addresses = vec!["127.0.0.1:0".parse().unwrap()];
        };
        assert_eq!(key_after(port_zero), "media.addresses[0]");
        let fixed = |c: &mut Config| {
            c.media.rtcp_port_plus_one = true;
            c.media.addresses = vec!["127.0.0.1:40000".parse().unwrap()];
        };
        assert_eq!(key_after(fixed), "<valid>");
    }

    #[test]
    fn buffers_per_worker_power_of_two_in_range() {
        let key = "pool.buffers_per_worker";
        assert_eq!(key_after(|c| c.pool.buffers_per_worker = Some(100)), key);
        assert_eq!(key_after(|c| c.pool.buffers_per_worker = Some(8)), key);
        assert_eq!(key_after(|c| c.pool.buffers_per_worker = Some(65536)), key);
        assert_eq!(key_after(|c| c.pool.buffers_per_worker = Some(16)), "<valid>");
    }

    #[test]
    fn buffer_bytes_leaves_header_room() {
        let key = "pool.buffer_bytes";
        assert_eq!(key_after(|c| c.pool.buffer_bytes = 1500 + 255), key);
        assert_eq!(key_after(|c| c.pool.buffer_bytes = 1500 + 256), "<valid>");
        assert_eq!(key_after(|c| c.pool.buffer_bytes = MAX_BUFFER_BYTES + 1), key);
    }

    #[test]
    fn send_slots_range() {
        let key = "pool.send_slots_per_worker";
        assert_eq!(key_after(|c| c.pool.send_slots_per_worker = Some(15)), key);
        assert_eq!(key_after(|c| c.pool.send_slots_per_worker = Some((1 << 20) + 1)), key);
    }

    #[test]
    fn spare_buffers_range() {
        let key = "pool.spare_buffers_per_worker";
        assert_eq!(key_after(|c| c.pool.spare_buffers_per_worker = 15), key);
        assert_eq!(key_after(|c| c.pool.spare_buffers_per_worker = 32768), key);
        assert_eq!(key_after(|c| c.pool.spare_buffers_per_worker = 32767), "<valid>");
        assert_eq!(key_after(|c| c.pool.spare_buffers_per_worker = 16), "<valid>");
    }

    #[test]
    fn gso_max_segments_range() {
        assert_eq!(key_after(|c| c.pool.gso_max_segments = 0), "pool.gso_max_segments");
        assert_eq!(key_after(|c| c.pool.gso_max_segments = 65), "pool.gso_max_segments");
        assert_eq!(key_after(|c| c.pool.gso_max_segments = 1), "<valid>");
    }

    #[test]
    fn recv_batch_range() {
        assert_eq!(key_after(|c| c.pool.recv_batch = 0), "pool.recv_batch");
        assert_eq!(key_after(|c| c.pool.recv_batch = 1025), "pool.recv_batch");
    }

    type SetLimit = fn(&mut Limits, u32);

    #[test]
    fn every_limit_is_range_checked() {
        let setters: [(&str, SetLimit); 6] = [
            ("limits.max_streams_per_worker", |l, v| l.max_streams_per_worker = v),
            ("limits.max_subscriptions_per_worker", |l, v| l.max_subscriptions_per_worker = v),
            ("limits.max_subscriptions_per_stream", |l, v| l.max_subscriptions_per_stream = v),
            ("limits.command_ring_capacity", |l, v| l.command_ring_capacity = v),
            ("limits.event_ring_capacity", |l, v| l.event_ring_capacity = v),
            ("limits.handover_ring_capacity", |l, v| l.handover_ring_capacity = v),
        ];
        for (key, set) in setters {
            assert_eq!(key_after(|c| set(&mut c.limits, 0)), key);
            let too_big = key_after(|c| {
                c.limits.max_subscriptions_per_worker = 1 << 20;
                set(&mut c.limits, (1 << 20) + 1);
            });
            assert_eq!(too_big, key);
        }
    }

    #[test]
    fn max_pool_bytes_total_range() {
        let key = "limits.max_pool_bytes_total";
        assert_eq!(key_after(|c| c.limits.max_pool_bytes_total = (1 << 20) - 1), key);
        assert_eq!(key_after(|c| c.limits.max_pool_bytes_total = (1 << 40) + 1), key);
        assert_eq!(key_after(|c| c.limits.max_pool_bytes_total = 1 << 40), "<valid>");
    }

    #[test]
    fn metrics_is_checked_only_when_enabled() {
        assert_eq!(key_after(|c| c.metrics.max_connections = 0), "metrics.max_connections");
        assert_eq!(key_after(|c| c.metrics.listen = c.api.listen), "metrics.listen");
        assert_eq!(key_after(|c| c.metrics.listen = "127.0.0.1:0".parse().unwrap()), "<valid>");
        assert_eq!(
            key_after(|c| {
                c.metrics.enabled = false;
                c.metrics.listen = c.api.listen;
            }),
            "<valid>"
        );
    }

    #[test]
    fn telemetry_is_range_checked() {
        assert_eq!(key_after(|c| c.telemetry.stats_interval_ms = 99), "telemetry.stats_interval_ms");
        assert_eq!(key_after(|c| c.telemetry.stats_grace_ms = 500), "telemetry.stats_grace_ms");
        assert_eq!(key_after(|c| c.telemetry.stats_interval_ms = 100), "<valid>");
        assert_eq!(key_after(|c| c.telemetry.inactive_after_ms = 99), "telemetry.inactive_after_ms");
    }

    #[test]
    fn load_is_range_checked() {
        assert_eq!(key_after(|c| c.load.expected_packets_per_second = 0), "load.expected_packets_per_second");
        assert_eq!(key_after(|c| c.load.burst_ms = 1001), "load.burst_ms");
        assert_eq!(key_after(|c| c.load.burst_ms = 1), "<valid>");
    }

    #[test]
    fn listed_workers_beyond_the_pool_bound_are_refused_without_the_host() {
        // Pools of 8 MiB per worker: 16 MiB holds two workers, not three.
        let fits = key_after(|c| {
            c.limits.max_pool_bytes_total = 16 << 20;
            c.pool.buffers_per_worker = Some(4096);
            c.placement.worker_cores = WorkerCores::List(vec![1, 2]);
        });
        assert_eq!(fits, "<valid>");
        let mut config = Config::default();
        config.limits.max_pool_bytes_total = 16 << 20;
        config.pool.buffers_per_worker = Some(4096);
        config.placement.worker_cores = WorkerCores::List(vec![1, 2, 3]);
        let err = config.validate().unwrap_err();
        assert_eq!(err.key(), Some("placement.worker_cores"));
        assert!(err.to_string().contains("3 workers") && err.to_string().contains("25165824 bytes"), "{err}");
    }

    #[test]
    fn subscriptions_per_stream_at_most_per_worker() {
        let key = key_after(|c| {
            c.limits.max_subscriptions_per_worker = 10;
            c.limits.max_subscriptions_per_stream = 11;
        });
        assert_eq!(key, "limits.max_subscriptions_per_stream");
    }

    #[test]
    fn spin_us_at_most_one_second() {
        assert_eq!(key_after(|c| c.idle.spin_us = MAX_SPIN_US + 1), "idle.spin_us");
        assert_eq!(key_after(|c| c.idle.batch_window_us = MAX_BATCH_WINDOW_US + 1), "idle.batch_window_us");
    }

    #[test]
    fn command_timeout_range() {
        let key = "control.command_timeout_ms";
        assert_eq!(key_after(|c| c.control.command_timeout_ms = 0), key);
        assert_eq!(key_after(|c| c.control.command_timeout_ms = 60_001), key);
    }

    #[test]
    fn stats_log_interval_at_most_one_day() {
        let key = key_after(|c| c.control.stats_log_interval_s = MAX_STATS_LOG_INTERVAL_S + 1);
        assert_eq!(key, "control.stats_log_interval_s");
        assert_eq!(key_after(|c| c.control.stats_log_interval_s = 0), "<valid>");
    }

    #[test]
    fn state_directory_must_be_absolute() {
        let err = Config::from_toml_str("[state]\ndirectory = \"var/lib/ringfwd\"\n").unwrap_err();
        assert_eq!(err.key(), Some("state.directory"));
        assert!(err.to_string().contains("\"var/lib/ringfwd\"") && err.to_string().contains("absolute"), "{err}");
        assert_eq!(key_after(|c| c.state.directory = Some("".into())), "state.directory");
        assert_eq!(key_after(|c| c.state.directory = Some("/srv/ringfwd".into())), "<valid>");
        assert_eq!(key_after(|c| c.state.numbering_interval_ms = 9), "state.numbering_interval_ms");
        assert_eq!(key_after(|c| c.state.numbering_interval_ms = 10_001), "state.numbering_interval_ms");
    }

    #[test]
    fn error_names_the_value() {
        let mut config = Config::default();
        config.pool.recv_batch = 4096;
        let text = config.validate().unwrap_err().to_string();
        assert_eq!(text, "invalid config: pool.recv_batch = 4096: must be in 1..=1024");
    }
}
