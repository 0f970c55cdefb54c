//! Per-source rate limit: a packets-per-second and a bits-per-second token bucket on the publisher's RTP.
//!
//! Owns [`RateLimit`] (ingress, kind `RateLimit`, first in the chain) and [`BitBucket`], the bits
//! counterpart of the packets bucket [`crate::core::rate::TokenBucket`], which it reuses. Each bucket
//! holds one second's worth (so a source may burst to its rate, then sustain it); 0 means unlimited. A
//! packet passes only if both buckets have room for it (whole datagram bits); otherwise it is
//! `Drop(RateLimited)` and neither bucket is charged. RTCP is never limited. Must never allocate, read a
//! clock (time is the packet's arrival) or delay a packet.

use std::time::Instant;

use crate::core::counters::DropReason;
use crate::core::interceptor::spec::{RateLimitParams, StreamInfo};
use crate::core::interceptor::{Context, Interceptor, RtpAttrs, Snapshot, Verdict};
use crate::core::rate::TokenBucket;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// A bits-per-second token bucket holding at most one second's worth, refilled from the passed-in
/// time. Exact integer arithmetic in nano-bits (a bit is 10^9 units, one nanosecond at `rate` adds
/// `rate` units). A rate of 0 means unlimited.
#[derive(Clone, Copy, Debug)]
pub struct BitBucket {
    rate_bps: u64,
    nano_bits: u128,
    last: Option<Instant>,
}

impl BitBucket {
    /// A full bucket of `rate_bps` bits per second (0: unlimited).
    pub fn new(rate_bps: u64) -> BitBucket {
        BitBucket { rate_bps, nano_bits: Self::capacity(rate_bps), last: None }
    }

    fn capacity(rate_bps: u64) -> u128 {
        u128::from(rate_bps) * NANOS_PER_SECOND
    }

    /// Whether `bits` more may pass at `now`; takes them if so. Time going backwards adds nothing.
    pub fn take(&mut self, now: Instant, bits: u64) -> bool {
        if self.rate_bps == 0 {
            return true;
        }
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_nanos().saturating_mul(u128::from(self.rate_bps));
            self.nano_bits = self.nano_bits.saturating_add(refill).min(Self::capacity(self.rate_bps));
        }
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
        let cost = u128::from(bits) * NANOS_PER_SECOND;
        if self.nano_bits >= cost {
            self.nano_bits -= cost;
            true
        } else {
            false
        }
    }

    /// Gives back `bits` taken by a [`BitBucket::take`] whose packet was dropped after all.
    pub fn refund(&mut self, bits: u64) {
        if self.rate_bps != 0 {
            let refunded = self.nano_bits.saturating_add(u128::from(bits) * NANOS_PER_SECOND);
            self.nano_bits = refunded.min(Self::capacity(self.rate_bps));
        }
    }
}

/// The rate limit of one publisher.
#[derive(Debug)]
pub struct RateLimit {
    packets: TokenBucket,
    bits: BitBucket,
    rate_limited: u64,
}

impl RateLimit {
    /// A limit of `params.max_packets_per_second` and `params.max_bits_per_second` (0: unlimited) for
    /// the stream; both buckets start full.
    pub fn new(params: &RateLimitParams, _info: &StreamInfo) -> RateLimit {
        RateLimit {
            packets: TokenBucket::new(params.max_packets_per_second),
            bits: BitBucket::new(params.max_bits_per_second),
            rate_limited: 0,
        }
    }
}

impl Interceptor for RateLimit {
    fn on_rtp(&mut self, _pkt: &[u8], attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
        let bits = attrs.len_bytes as u64 * 8;
        if !self.bits.take(attrs.arrival, bits) {
            self.rate_limited += 1;
            return Verdict::Drop(DropReason::RateLimited);
        }
        if !self.packets.take(attrs.arrival) {
            self.bits.refund(bits);
            self.rate_limited += 1;
            return Verdict::Drop(DropReason::RateLimited);
        }
        Verdict::Continue
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.rate_limited += self.rate_limited;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rtcp::receiver_report::ReceiverReport;

    use super::super::wire_feedback::test_support::*;
    use super::*;
    use crate::core::interceptor::RtcpFrom;

    /// Offers `count` packets of `len_bytes` every `step_us` from `start`; returns how many passed.
    fn offer(
        limit: &mut RateLimit,
        h: &mut Harness,
        start: Instant,
        count: u64,
        step_us: u64,
        len_bytes: usize,
    ) -> u64 {
        let pkt = rtp(1, 96, len_bytes - 12, None);
        assert_eq!(pkt.len(), len_bytes);
        (0..count)
            .filter(|i| {
                let arrival = start + Duration::from_micros(i * step_us);
                match h.rtp(limit, &pkt, &attrs(&pkt, 1 << 16, arrival)) {
                    Verdict::Continue => true,
                    Verdict::Drop(DropReason::RateLimited) => false,
                    other => panic!("unexpected {other:?}"),
                }
            })
            .count() as u64
    }

    fn limit(pps: u32, bps: u64) -> RateLimit {
        RateLimit::new(
            &RateLimitParams { max_packets_per_second: pps, max_bits_per_second: bps },
            &stream_info(Instant::now()),
        )
    }

    #[test]
    fn packets_per_second_exact_over_virtual_time() {
        let mut rl = limit(100, 0);
        let mut h = Harness::ingress();
        // 1000 packets every 2 ms: a burst of 100, then 0.2 tokens per packet: floor(100 + 999 × 0.2).
        let passed = offer(&mut rl, &mut h, Instant::now(), 1000, 2_000, 100);
        assert_eq!(passed, 299);
        assert_eq!(snapshot(&rl).rate_limited, 701);
    }

    #[test]
    fn bits_per_second_exact_over_virtual_time() {
        let mut rl = limit(0, 80_000);
        let mut h = Harness::ingress();
        // 100-byte datagrams are 800 bits: the same 100 per second as above.
        let passed = offer(&mut rl, &mut h, Instant::now(), 1000, 2_000, 100);
        assert_eq!(passed, 299);
        // 1000-byte datagrams: 10 per second; after 10 s idle the bucket is full again (10 packets).
        let mut rl = limit(0, 80_000);
        let t0 = Instant::now();
        assert_eq!(offer(&mut rl, &mut h, t0, 50, 1_000, 1000), 10, "a burst of one second's bits");
        assert_eq!(offer(&mut rl, &mut h, t0 + Duration::from_secs(10), 50, 1_000, 1000), 10, "capped at one second");
        assert_eq!(snapshot(&rl).rate_limited, 80);
    }

    #[test]
    fn both_limits_the_tighter_wins_and_nothing_is_charged_for_a_drop() {
        let mut rl = limit(50, 80_000);
        let mut h = Harness::ingress();
        assert_eq!(offer(&mut rl, &mut h, Instant::now(), 1000, 2_000, 100), 149, "floor(50 + 999 × 0.1)");

        // 2 packets/s and 8000 bits/s: two small packets pass (96 bits each, 7808 left); an 875-byte one
        // (7000 bits) fits the bits but not the packets, so its bits are refunded; 500 ms later one packet
        // token is back and a 750-byte one (6000 bits) fits only because of the refund (808 + 4000 without).
        let mut rl = limit(2, 8_000);
        let t0 = Instant::now();
        assert_eq!(offer(&mut rl, &mut h, t0, 2, 0, 12), 2);
        assert_eq!(offer(&mut rl, &mut h, t0, 1, 0, 875), 0);
        assert_eq!(offer(&mut rl, &mut h, t0 + Duration::from_millis(500), 1, 0, 750), 1);
    }

    #[test]
    fn unlimited_and_rtcp_pass() {
        let mut rl = limit(0, 0);
        let mut h = Harness::ingress();
        assert_eq!(offer(&mut rl, &mut h, Instant::now(), 10_000, 0, 1200), 10_000);
        let mut rl = limit(1, 8);
        let rr = compound(vec![Box::new(ReceiverReport { ssrc: PUBLISHER.0, ..Default::default() })]);
        for _ in 0..10 {
            assert_eq!(h.rtcp(&mut rl, &rr, RtcpFrom::Publisher, Instant::now()), Verdict::Continue);
        }
        assert_eq!(snapshot(&rl).rate_limited, 0);
    }

    #[test]
    fn bit_bucket_time_going_backwards_adds_nothing() {
        let t0 = Instant::now();
        let mut bucket = BitBucket::new(1_000);
        assert!(bucket.take(t0 + Duration::from_secs(5), 1_000));
        assert!(!bucket.take(t0, 1), "an earlier time adds no bits");
        assert!(bucket.take(t0 + Duration::from_secs(5) + Duration::from_millis(1), 1), "one ms is one bit");
        assert!(!bucket.take(t0 + Duration::from_secs(5) + Duration::from_millis(1), 1));
    }
}
