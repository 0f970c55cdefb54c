//! The config turned into the data plane's own settings: the one place that maps config keys onto
//! [`DataplaneSettings`] and interceptor specs.
//!
//! Owns [`Config::dataplane_settings`] (what `Dataplane::start` takes), [`specs`] (the `[interceptors]` parameters
//! for the built-ins a chain names, as the registry hands them to the workers), and the pcap recorder's
//! settings. Pure conversion of a validated
//! config: it must never validate (that is [`crate::validate`]), read the host, or start anything.

use std::path::Path;
use std::time::Duration;

use ringfwd_dataplane::control::ForwarderLimits;
use ringfwd_dataplane::control::{DataplaneSettings, Plugins, RecorderSettings, TapSettings, WorkerSettings};

use crate::Config;

impl Config {
    /// What the data plane starts with: one worker per core of `cores` (the placement the caller resolved against
    /// the host, see [`Config::resolve_placement`]), the pcap recorder writing into `tap_directory` (an absolute
    /// path the caller resolved, `interceptors.tap.directory` under `state.directory`), binding the native `plugins`
    /// the program registered.
    pub fn dataplane_settings(&self, cores: Vec<usize>, tap_directory: &Path, plugins: Plugins) -> DataplaneSettings {
        let sizes = self.sizes(cores.len());
        let tap = &self.interceptors.tap;
        let tap = (tap.ring_packets > 0).then(|| TapSettings {
            ring_packets: tap.ring_packets as usize,
            snap_bytes: tap.snap_bytes,
            recorder: RecorderSettings {
                directory: tap_directory.to_path_buf(),
                max_file_bytes: tap.max_file_bytes,
                max_open_files: tap.max_open_files as usize,
            },
            // The last control core; wherever the control threads may run when none is configured.
            core: self.placement.control_cores.last().copied(),
        });
        DataplaneSettings {
            cores,
            media_addresses: self.media.addresses.clone(),
            rtcp_port_plus_one: self.media.rtcp_port_plus_one,
            backend: self.media.driver,
            recv_buffer_bytes: sizes.recv_buffer_bytes,
            send_buffer_bytes: sizes.send_buffer_bytes,
            command_ring_capacity: self.limits.command_ring_capacity as usize,
            handover_ring_capacity: self.limits.handover_ring_capacity as usize,
            event_ring_capacity: self.limits.event_ring_capacity as usize,
            worker: WorkerSettings {
                limits: ForwarderLimits {
                    max_streams: self.limits.max_streams_per_worker,
                    max_subscriptions: self.limits.max_subscriptions_per_worker,
                    max_subscriptions_per_stream: self.limits.max_subscriptions_per_stream,
                    max_packet_bytes: self.media.max_packet_bytes,
                    max_packets_per_second_per_source: self.admission.max_packets_per_second_per_source,
                },
                pool_buffers: sizes.buffers_per_worker as u16,
                spare_buffers: self.pool.spare_buffers_per_worker as u16,
                buffer_bytes: self.pool.buffer_bytes as usize,
                send_slots: sizes.send_slots_per_worker as usize,
                gso_max_segments: usize::from(self.pool.gso_max_segments),
                recv_batch: self.pool.recv_batch as usize,
                idle: self.idle.strategy,
                spin: Duration::from_micros(self.idle.spin_us),
                batch_window: Duration::from_micros(u64::from(self.idle.batch_window_us)),
                stats_interval: Duration::from_millis(u64::from(self.telemetry.stats_interval_ms)),
                numbering_interval: Duration::from_millis(u64::from(self.state.numbering_interval_ms)),
                inactive_after: Duration::from_millis(u64::from(self.telemetry.inactive_after_ms)),
                rtcp_socket_offset: None,
            },
            tap,
            plugins,
        }
    }
}

/// Interceptor specs from the `[interceptors]` config: its parameters for the built-ins a chain names, and the
/// registered plugins it names.
pub mod specs {
    use ringfwd_dataplane::control::{
        parse_attachment, Attachment, EgressSpec, IngressSpec, KeyframeThrottleParams, NackCacheParams,
        NackGeneratorParams, PayloadTypeFilterParams, PluginList, Plugins, RateLimitParams, ReportParams, StatsParams,
        TapParams, TwccParams,
    };

    use crate::{ChainName, InterceptorName, Interceptors};

    /// The plugins `names` names, in order, with the chain's options for each (names `plugins` does not hold,
    /// options that do not parse, and any beyond a chain's bound, are skipped: [`crate::resolve_chain`] has refused
    /// them before).
    fn plugin_list(names: &[ChainName], plugins: &Plugins) -> PluginList {
        let mut list = PluginList::default();
        for name in names {
            if let ChainName::Plugin(spelled) = name {
                if let Ok((name, attach)) = parse_attachment(spelled) {
                    if let Some(id) = plugins.find(name) {
                        let _ = list.attach(Attachment { id, attach });
                    }
                }
            }
        }
        list
    }

    /// The ingress spec running the built-ins in `names` (egress-only names are ignored) with the
    /// parameters of `config`, and the plugins it names.
    pub fn ingress(names: &[ChainName], config: &Interceptors, plugins: &Plugins) -> IngressSpec {
        let on = |kind| names.contains(&ChainName::Builtin(kind));
        IngressSpec {
            rate_limit: on(InterceptorName::RateLimit).then_some(RateLimitParams {
                max_packets_per_second: config.rate_limit.max_packets_per_second,
                max_bits_per_second: config.rate_limit.max_bits_per_second,
            }),
            stats: on(InterceptorName::Stats).then_some(stats(config)),
            twcc: on(InterceptorName::Twcc).then_some(TwccParams {
                extension_id: config.twcc.extension_id,
                feedback_interval_ms: config.twcc.feedback_interval_ms,
            }),
            nack_generator: on(InterceptorName::NackGenerator).then_some(NackGeneratorParams {
                max_retries: config.nack_generator.max_retries,
                min_retry_interval_ms: config.nack_generator.min_retry_interval_ms,
                max_age_ms: config.nack_generator.max_age_ms,
                max_missing: config.nack_generator.max_missing,
            }),
            keyframe_throttle: on(InterceptorName::KeyframeThrottle)
                .then_some(KeyframeThrottleParams { min_interval_ms: config.keyframe_throttle.min_interval_ms }),
            plugins: plugin_list(names, plugins),
            nack_cache: on(InterceptorName::NackCache).then_some(NackCacheParams {
                max_packets: config.nack_cache.max_packets,
                max_age_ms: config.nack_cache.max_age_ms,
                max_retransmits_per_packet: config.nack_cache.max_retransmits_per_packet,
                upstream_retry_interval_ms: config.nack_cache.upstream_retry_interval_ms,
            }),
            receiver_reports: on(InterceptorName::ReceiverReports).then_some(reports(config)),
            tap: on(InterceptorName::Tap).then_some(TapParams { snap_bytes: config.tap.snap_bytes }),
        }
    }

    /// The egress spec running the built-ins in `names` (ingress-only names are ignored) with the
    /// parameters of `config`, and the plugins it names; the payload-type filter lets `allowed` through (bit `pt`
    /// set: `pt` passes). RTX is negotiated per subscription, never from config.
    pub fn egress(names: &[ChainName], config: &Interceptors, allowed: u128, plugins: &Plugins) -> EgressSpec {
        let on = |kind| names.contains(&ChainName::Builtin(kind));
        EgressSpec {
            payload_type_filter: on(InterceptorName::PayloadTypeFilter).then_some(PayloadTypeFilterParams { allowed }),
            plugins: plugin_list(names, plugins),
            stats: on(InterceptorName::Stats).then_some(stats(config)),
            sender_reports: on(InterceptorName::SenderReports).then_some(reports(config)),
            rtx: None,
        }
    }

    fn stats(config: &Interceptors) -> StatsParams {
        StatsParams { bitrate_window_ms: config.stats.bitrate_window_ms }
    }

    fn reports(config: &Interceptors) -> ReportParams {
        ReportParams { interval_ms: config.reports.interval_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::specs;
    use crate::{Config, InterceptorName, Interceptors};
    use ringfwd_dataplane::control::Plugins;

    #[test]
    fn the_default_config_gives_the_default_chains() {
        let config = Interceptors::default();
        let ingress = specs::ingress(&config.ingress, &config, &Plugins::none());
        assert!(ingress.stats.is_some() && ingress.nack_cache.is_some() && ingress.receiver_reports.is_some());
        assert!(ingress.keyframe_throttle.is_some());
        assert!(ingress.rate_limit.is_none() && ingress.twcc.is_none() && ingress.tap.is_none());
        assert_eq!(ingress.nack_cache.map(|c| c.max_packets), Some(config.nack_cache.max_packets));
        let egress = specs::egress(&config.egress, &config, u128::MAX, &Plugins::none());
        assert!(egress.stats.is_some() && egress.sender_reports.is_some());
        assert!(egress.payload_type_filter.is_none() && egress.rtx.is_none());
        let filtered = specs::egress(&[InterceptorName::PayloadTypeFilter.into()], &config, 1 << 96, &Plugins::none());
        assert_eq!(filtered.payload_type_filter.map(|f| f.allowed), Some(1 << 96));
    }

    #[test]
    fn the_settings_carry_the_config_and_the_tap_only_when_it_records() {
        let mut config = Config::default();
        config.interceptors.tap.ring_packets = 0;
        let off = config.dataplane_settings(vec![1], std::path::Path::new("/tmp/pcap"), Plugins::none());
        assert_eq!(off.cores, vec![1]);
        assert_eq!(off.media_addresses, config.media.addresses);
        assert_eq!(off.worker.limits.max_packet_bytes, config.media.max_packet_bytes);
        assert!(off.tap.is_none(), "ring_packets = 0 records nothing");
        config.interceptors.tap.ring_packets = 64; // the default records
        config.placement.control_cores = vec![0, 3];
        let on = config.dataplane_settings(vec![1], std::path::Path::new("/tmp/pcap"), Plugins::none());
        let tap = on.tap.expect("a tap");
        assert_eq!((tap.ring_packets, tap.core), (64, Some(3)));
        assert_eq!(tap.recorder.directory, std::path::Path::new("/tmp/pcap"));
    }
}
