//! The built-in interceptors, one file each, every one a sans-IO state machine with its
//! [`super::Interceptor`] implementation and deterministic tests on virtual time.
//!
//! Must never do I/O, read a clock or allocate per packet: time comes from the context, packets
//! leave through it, memory is reserved when an instance is bound.

pub mod keyframe;
pub mod nack_cache;
pub mod nack_generator;
pub mod payload_filter;
pub mod rate_limit;
pub mod reports;
pub mod stats;
pub mod tap;
pub mod twcc;
pub mod wire_compound;
pub mod wire_feedback;
pub mod wire_reports;

use std::time::Duration;

/// `elapsed` in RTP ticks at `clock_rate_hz`, modulo 2^32: whole seconds times the rate plus the fraction's ticks,
/// which equals `nanos × rate / 10^9` rounded down but needs no 128-bit division (statistics run it per packet).
pub(crate) fn rtp_ticks(elapsed: Duration, clock_rate_hz: u32) -> u32 {
    let rate = u64::from(clock_rate_hz);
    // subsec_nanos < 2^30 and rate < 2^32: the product fits.
    let fraction = u64::from(elapsed.subsec_nanos()) * rate / 1_000_000_000;
    elapsed.as_secs().wrapping_mul(rate).wrapping_add(fraction) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_ticks_equals_the_exact_division_modulo_2_32() {
        let exact = |d: Duration, rate: u32| (d.as_nanos() * u128::from(rate) / 1_000_000_000) as u32;
        let durations = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(11_111),
            Duration::from_millis(20),
            Duration::new(1, 999_999_999),
            Duration::new(47_721, 858_835), // 90 kHz ticks wrap 2^32 near here
            Duration::new(86_400 * 400, 123_456_789),
            Duration::new(u64::MAX / 2, 999_999_999),
        ];
        for d in durations {
            for rate in [8_000, 48_000, 90_000, 1, u32::MAX] {
                assert_eq!(rtp_ticks(d, rate), exact(d, rate), "{d:?} at {rate} Hz");
            }
        }
    }
}
