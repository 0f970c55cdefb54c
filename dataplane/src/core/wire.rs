//! Wire identifiers of RTP as newtypes with wraparound-aware arithmetic.
//!
//! Owns [`Ssrc`], [`SeqNo`] and [`RtpTimestamp`] (RFC 1982 serial-number comparison, wrapping add and
//! distance), [`rtp_ticks`] (a duration in clock ticks) and [`SeqUnwrapper`], which extends 16-bit sequence
//! numbers to monotonic 64-bit ones.
//! Must never compare sequence numbers or timestamps with plain `<`: they wrap.

use std::fmt;
use std::time::Duration;

/// A synchronization source identifier (RFC 3550 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// A 16-bit RTP sequence number, compared as an RFC 1982 serial number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// True when `self` comes after `other` in serial-number order: the forward distance from `other` is
    /// in `1..2^15`. Exactly half the space apart counts as not newer, in either direction.
    pub fn is_newer_than(self, other: SeqNo) -> bool {
        let forward = self.0.wrapping_sub(other.0);
        forward != 0 && forward < 0x8000
    }

    /// `self + n`, wrapping at 2^16.
    #[allow(clippy::should_implement_trait)] // wrapping, on purpose not `Add`
    pub fn add(self, n: u16) -> SeqNo {
        SeqNo(self.0.wrapping_add(n))
    }

    /// The forward distance from `earlier` to `self`, wrapping: `earlier.add(self.distance(earlier)) == self`.
    pub fn distance(self, earlier: SeqNo) -> u16 {
        self.0.wrapping_sub(earlier.0)
    }
}

/// A 32-bit RTP media timestamp, compared as an RFC 1982 serial number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RtpTimestamp(pub u32);

impl RtpTimestamp {
    /// True when `self` comes after `other`: the forward distance from `other` is in `1..2^31`.
    pub fn is_newer_than(self, other: RtpTimestamp) -> bool {
        let forward = self.0.wrapping_sub(other.0);
        forward != 0 && forward < 0x8000_0000
    }

    /// `self + n`, wrapping at 2^32.
    #[allow(clippy::should_implement_trait)] // wrapping, on purpose not `Add`
    pub fn add(self, n: u32) -> RtpTimestamp {
        RtpTimestamp(self.0.wrapping_add(n))
    }

    /// The forward distance from `earlier` to `self`, wrapping.
    pub fn distance(self, earlier: RtpTimestamp) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }
}

/// `elapsed` in ticks of a `clock_rate_hz` clock, rounded down, modulo 2^32 (timestamps wrap; only the low bits
/// matter): whole seconds times the rate plus the fraction's ticks, which equals `nanos × rate / 10^9` without a
/// 128-bit division (statistics run it per packet).
pub(crate) fn rtp_ticks(elapsed: Duration, clock_rate_hz: u32) -> u32 {
    let rate = u64::from(clock_rate_hz);
    // subsec_nanos < 2^30 and rate < 2^32: the product fits.
    let fraction = u64::from(elapsed.subsec_nanos()) * rate / 1_000_000_000;
    elapsed.as_secs().wrapping_mul(rate).wrapping_add(fraction) as u32
}

/// Turns 16-bit sequence numbers into extended (64-bit) ones that grow monotonically with the stream.
///
/// The first packet gets `2^16 + seq` (cycle 1), so packets reordered to before it (at most 2^15 back)
/// still get a value below it instead of underflowing. Each later packet is placed within 2^15 of the
/// highest extended number seen: newer ones advance it (crossing 65535 -> 0 adds a cycle), older ones
/// (reordered or duplicates) get their own, lower, extended number and leave the highest unchanged.
/// The low 16 bits of the result are always the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqUnwrapper {
    highest: Option<u64>,
}

impl SeqUnwrapper {
    /// An unwrapper that has seen no packet.
    pub fn new() -> SeqUnwrapper {
        SeqUnwrapper { highest: None }
    }

    /// The highest extended sequence number seen so far, if any.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// The extended sequence number of `seq`; advances the highest when `seq` is newer.
    pub fn unwrap(&mut self, seq: SeqNo) -> u64 {
        let extended = self.extended(seq);
        if self.highest.is_none_or(|highest| extended > highest) {
            self.highest = Some(extended);
        }
        extended
    }

    /// The extended sequence number [`SeqUnwrapper::unwrap`] would give `seq` now, without advancing anything.
    pub fn extended(&self, seq: SeqNo) -> u64 {
        let Some(highest) = self.highest else {
            return (1u64 << 16) | u64::from(seq.0);
        };
        // Signed distance in -2^15..2^15 from the highest seen (2^15 apart counts as older).
        let delta = i64::from(seq.0.wrapping_sub(highest as u16) as i16);
        // `highest >= 2^16 > 2^15 >= -delta`, so this never underflows.
        highest.wrapping_add_signed(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn seq_ordering_across_wrap() {
        assert!(SeqNo(0).is_newer_than(SeqNo(65535)));
        assert!(!SeqNo(65535).is_newer_than(SeqNo(0)));
        assert!(SeqNo(10).is_newer_than(SeqNo(65530)));
        assert!(!SeqNo(5).is_newer_than(SeqNo(5)));
        // Exactly half apart: neither is newer.
        assert!(!SeqNo(0x8000).is_newer_than(SeqNo(0)));
        assert!(!SeqNo(0).is_newer_than(SeqNo(0x8000)));
        assert_eq!(SeqNo(65535).add(1), SeqNo(0));
        assert_eq!(SeqNo(3).distance(SeqNo(65534)), 5);
    }

    #[test]
    fn timestamp_ordering_across_wrap() {
        assert!(RtpTimestamp(100).is_newer_than(RtpTimestamp(u32::MAX - 100)));
        assert!(!RtpTimestamp(u32::MAX).is_newer_than(RtpTimestamp(0)));
        assert_eq!(RtpTimestamp(u32::MAX).add(2), RtpTimestamp(1));
        assert_eq!(RtpTimestamp(1).distance(RtpTimestamp(u32::MAX)), 2);
    }

    #[test]
    fn unwrapper_wrap_and_reorder() {
        let mut u = SeqUnwrapper::new();
        assert_eq!(u.unwrap(SeqNo(65534)), 65536 + 65534);
        assert_eq!(u.unwrap(SeqNo(65535)), 65536 + 65535);
        assert_eq!(u.unwrap(SeqNo(0)), 2 * 65536);
        // Reordered old packet from before the wrap.
        assert_eq!(u.unwrap(SeqNo(65533)), 65536 + 65533);
        // Duplicate of the newest.
        assert_eq!(u.unwrap(SeqNo(0)), 2 * 65536);
        assert_eq!(u.highest(), Some(2 * 65536));
        assert_eq!(u.unwrap(SeqNo(1)), 2 * 65536 + 1);
    }

    #[test]
    fn unwrapper_packet_before_first() {
        let mut u = SeqUnwrapper::new();
        assert_eq!(u.unwrap(SeqNo(2)), 65538);
        // Arrives late, was sent before the first one seen, across the wrap.
        assert_eq!(u.unwrap(SeqNo(65535)), 65535);
        assert_eq!(u.highest(), Some(65538));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn newer_is_antisymmetric(a: u16, b: u16) {
            let (a, b) = (SeqNo(a), SeqNo(b));
            prop_assert!(!(a.is_newer_than(b) && b.is_newer_than(a)));
            prop_assert_eq!(b.add(a.distance(b)), a);
        }

        #[test]
        fn add_small_step_is_newer(start: u16, step in 1u16..0x8000) {
            prop_assert!(SeqNo(start).add(step).is_newer_than(SeqNo(start)));
            prop_assert_eq!(SeqNo(start).add(step).distance(SeqNo(start)), step);
        }

        #[test]
        fn timestamp_add_small_step_is_newer(start: u32, step in 1u32..0x8000_0000) {
            let t = RtpTimestamp(start);
            prop_assert!(t.add(step).is_newer_than(t));
            prop_assert!(!t.is_newer_than(t.add(step)));
            prop_assert_eq!(t.add(step).distance(t), step);
        }

        #[test]
        fn unwrap_in_order_is_monotone(start: u16, steps in proptest::collection::vec(1u16..2000, 1..200)) {
            let mut u = SeqUnwrapper::new();
            let mut seq = SeqNo(start);
            let mut previous = u.unwrap(seq);
            for step in steps {
                seq = seq.add(step);
                let extended = u.unwrap(seq);
                prop_assert_eq!(extended, previous + u64::from(step));
                prop_assert_eq!(extended as u16, seq.0);
                previous = extended;
            }
        }

        #[test]
        fn unwrap_round_trips_with_reorder(start: u16, jitter in proptest::collection::vec(-300i32..300, 1..300)) {
            // Packets sent in order, received with bounded reordering: the extended number is the
            // send index plus a constant, whatever the arrival order.
            let mut u = SeqUnwrapper::new();
            let first = u.unwrap(SeqNo(start));
            for (i, j) in jitter.iter().enumerate() {
                let sent_index = (i as i64 + 400 + i64::from(*j)) as u64;
                let seq = SeqNo(start.wrapping_add(sent_index as u16));
                let extended = u.unwrap(seq);
                prop_assert_eq!(extended as u16, seq.0);
                prop_assert_eq!(extended, first + sent_index);
            }
        }

        #[test]
        fn extended_is_unwrap_without_advancing(seqs in proptest::collection::vec(any::<u16>(), 1..100)) {
            let mut u = SeqUnwrapper::new();
            for seq in seqs {
                let before = u;
                let peeked = u.extended(SeqNo(seq));
                prop_assert_eq!(u, before);
                prop_assert_eq!(u.unwrap(SeqNo(seq)), peeked);
            }
        }
    }
}
