//! Which interceptors run on a stream or a subscription, with which parameters: plain data.
//!
//! Owns the parameter struct of every built-in, [`IngressSpec`] and [`EgressSpec`] (carried by the
//! add-stream and add-subscription commands, filled from config defaults and API overrides), and the
//! identity a chain is bound with ([`StreamInfo`], [`SubscriptionInfo`]). Must hold no behaviour
//! beyond validation of its own values; the built-ins interpret them.

use std::time::Instant;

use super::plugin::PluginList;
use crate::core::wire::Ssrc;

/// Seconds from the NTP era (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET_S: u32 = 2_208_988_800;

/// Ties the worker's monotonic clock to wall-clock NTP time, so sans-IO code can write NTP
/// timestamps (sender reports, LSR/DLSR) without reading a clock: `at` and `ntp` were read together
/// once, when the worker started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpEpoch {
    /// A monotonic instant.
    pub at: Instant,
    /// The wall-clock time at `at`, as a 64-bit NTP timestamp (seconds since 1900 in the high 32 bits,
    /// the fraction in the low 32).
    pub ntp: u64,
}

impl NtpEpoch {
    /// The NTP timestamp of `now` (`now` before the epoch gives the epoch itself).
    pub fn ntp_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.at);
        let fraction = (u64::from(elapsed.subsec_nanos()) << 32) / 1_000_000_000;
        self.ntp.wrapping_add((elapsed.as_secs() << 32).wrapping_add(fraction))
    }
}

/// What a stream's ingress chain is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// The publisher's SSRC.
    pub ssrc: Ssrc,
    /// RTP timestamp ticks per second.
    pub clock_rate_hz: u32,
    /// The SSRC ringfwd uses as the sender of the RTCP it sends to this publisher (RR, NACK, PLI, FIR,
    /// transport-wide feedback).
    pub local_ssrc: Ssrc,
    /// The worker's NTP epoch.
    pub epoch: NtpEpoch,
}

/// What a subscription's egress chain is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// The subscription's flow key.
    pub flow: u32,
    /// The publisher's SSRC.
    pub source_ssrc: Ssrc,
    /// The SSRC the subscriber receives.
    pub out_ssrc: Ssrc,
    /// RTP timestamp ticks per second.
    pub clock_rate_hz: u32,
    /// The worker's NTP epoch.
    pub epoch: NtpEpoch,
}

/// Per-source rate limit: a token bucket of packets and one of bits (RFC-free, ringfwd's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitParams {
    /// Packets per second the source may send; 0: unlimited. Bursts up to one second's worth.
    pub max_packets_per_second: u32,
    /// Bits per second (whole datagrams) the source may send; 0: unlimited. Bursts up to one second.
    pub max_bits_per_second: u64,
}

/// Statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsParams {
    /// Length of the window the bit rate is measured over, in milliseconds.
    pub bitrate_window_ms: u32,
}

/// Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwccParams {
    /// The negotiated one-byte header extension id (1..=14) of the transport-wide sequence number.
    pub extension_id: u8,
    /// How often feedback is sent, in milliseconds.
    pub feedback_interval_ms: u32,
}

/// NACKs toward the publisher for missing packets (RFC 4585 generic NACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NackGeneratorParams {
    /// Times one missing packet is asked for before giving up.
    pub max_retries: u8,
    /// Wait before asking again while no RTT is known, and the least wait ever, in milliseconds
    /// (with an RTT, the wait is the RTT, doubled at each retry).
    pub min_retry_interval_ms: u32,
    /// A missing packet older than this is given up, in milliseconds.
    pub max_age_ms: u32,
    /// Missing packets tracked at once; older ones are given up first.
    pub max_missing: u16,
}

/// Keyframe-request throttling (PLI, FIR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyframeThrottleParams {
    /// At most one PLI or FIR per this interval goes to the publisher, in milliseconds.
    pub min_interval_ms: u32,
}

/// Retransmission cache answering subscribers' generic NACKs (RFC 4585).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NackCacheParams {
    /// Packets kept (a power of two); memory is `max_packets × max_packet_bytes` per stream.
    pub max_packets: u16,
    /// A packet older than this is not retransmitted, in milliseconds.
    pub max_age_ms: u32,
    /// Times one packet is retransmitted at most (all subscribers together); also how often one packet
    /// the cache never received is asked for from the publisher.
    pub max_retransmits_per_packet: u8,
    /// Least wait between two requests to the publisher for one packet the cache never received, in
    /// milliseconds.
    pub upstream_retry_interval_ms: u32,
}

/// RTCP receiver reports to the publisher or sender reports to the subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportParams {
    /// Report interval, in milliseconds (each report is sent at a random point of 0.5–1.5 × it).
    pub interval_ms: u32,
}

/// Copy of the stream's packets to a side thread (the pcap recorder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapParams {
    /// Bytes of each packet copied (longer packets are truncated, as pcap's snaplen).
    pub snap_bytes: u16,
}

/// Payload types a subscriber receives; others are dropped and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadTypeFilterParams {
    /// Bit `pt` set: payload type `pt` (the publisher's, before mapping) passes.
    pub allowed: u128,
}

/// RTX (RFC 4588) for retransmissions to one subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtxParams {
    /// The RTX stream's SSRC.
    pub ssrc: u32,
    /// The RTX payload type (below 128).
    pub payload_type: u8,
}

/// The ingress chain of one stream: each built-in that runs, with its parameters, and its plugins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngressSpec {
    /// Rate limit.
    pub rate_limit: Option<RateLimitParams>,
    /// Statistics of what the publisher delivers.
    pub stats: Option<StatsParams>,
    /// Transport-wide feedback to the publisher.
    pub twcc: Option<TwccParams>,
    /// NACKs to the publisher.
    pub nack_generator: Option<NackGeneratorParams>,
    /// Keyframe-request throttling.
    pub keyframe_throttle: Option<KeyframeThrottleParams>,
    /// Plugins, in the order they run (after `keyframe_throttle`, before `nack_cache`).
    pub plugins: PluginList,
    /// Retransmission cache.
    pub nack_cache: Option<NackCacheParams>,
    /// Receiver reports to the publisher.
    pub receiver_reports: Option<ReportParams>,
    /// Copy to the recorder.
    pub tap: Option<TapParams>,
}

/// The egress chain of one subscription: each built-in that runs, with its parameters, and its plugins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressSpec {
    /// Payload-type filter.
    pub payload_type_filter: Option<PayloadTypeFilterParams>,
    /// Plugins, in the order they run (after `payload_type_filter`, before `stats`).
    pub plugins: PluginList,
    /// Statistics of what the subscriber is sent and reports.
    pub stats: Option<StatsParams>,
    /// Sender reports to the subscriber.
    pub sender_reports: Option<ReportParams>,
    /// RTX for retransmissions (applied by the forwarder when it sends a retransmission).
    pub rtx: Option<RtxParams>,
}

impl EgressSpec {
    /// Refuses RTX with a payload type ringfwd may not send ([`crate::core::packet::sendable_payload_type`]).
    pub fn check_rtx(&self) -> Result<(), crate::core::CommandError> {
        match self.rtx {
            Some(rtx) if !crate::core::packet::sendable_payload_type(rtx.payload_type) => {
                Err(crate::core::CommandError::RtxPayloadType { payload_type: rtx.payload_type })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ntp_epoch_advances_with_the_monotonic_clock() {
        let at = Instant::now();
        let epoch = NtpEpoch { at, ntp: 3_900_000_000u64 << 32 };
        assert_eq!(epoch.ntp_at(at), epoch.ntp);
        assert_eq!(epoch.ntp_at(at + Duration::from_millis(1500)), (3_900_000_001u64 << 32) + (1u64 << 31));
        assert_eq!(epoch.ntp_at(at - Duration::from_secs(1)), epoch.ntp, "before the epoch: the epoch");
    }
}
