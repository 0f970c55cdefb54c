//! The per-source packet-rate limit: a token bucket per stream, refilled from the passed-in time.
//!
//! Owns [`TokenBucket`]: `rate` tokens per second, at most one second's worth saved up (so a source may burst
//! to `rate` packets, then sustain `rate` per second). Integer arithmetic in micro-tokens; no clock reads, no
//! allocation. A rate of 0 means unlimited.

use std::time::Instant;

const MICRO: u64 = 1_000_000;

/// A packets-per-second token bucket.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    rate_per_s: u32,
    micro_tokens: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `rate_per_s` packets per second (0: unlimited).
    pub fn new(rate_per_s: u32) -> TokenBucket {
        TokenBucket { rate_per_s, micro_tokens: u64::from(rate_per_s) * MICRO, last: None }
    }

    /// Whether one more packet may pass at `now`; takes its token if so.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.rate_per_s == 0 {
            return true;
        }
        let capacity = u64::from(self.rate_per_s) * MICRO;
        if let Some(last) = self.last {
            let elapsed_ns = now.saturating_duration_since(last).as_nanos();
            let refill = elapsed_ns.saturating_mul(u128::from(self.rate_per_s)) / 1_000;
            self.micro_tokens = (u128::from(self.micro_tokens) + refill).min(u128::from(capacity)) as u64;
        }
        self.last = Some(now);
        if self.micro_tokens >= MICRO {
            self.micro_tokens -= MICRO;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bursts_to_the_rate_then_sustains_it() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100);
        let passed = (0..150).filter(|_| bucket.take(t0)).count();
        assert_eq!(passed, 100, "one second's worth at once");
        // 10 ms later: one more packet's worth.
        assert!(bucket.take(t0 + Duration::from_millis(10)));
        assert!(!bucket.take(t0 + Duration::from_millis(10)));
        // Over the next second, about 100 pass when offered 1000 evenly.
        let mut passed = 0;
        for i in 1..=1000u64 {
            if bucket.take(t0 + Duration::from_millis(10) + Duration::from_millis(i)) {
                passed += 1;
            }
        }
        assert!((99..=101).contains(&passed), "{passed}");
    }

    #[test]
    fn zero_is_unlimited_and_time_going_backwards_refills_nothing() {
        let t0 = Instant::now();
        let mut open = TokenBucket::new(0);
        assert!((0..10_000).all(|_| open.take(t0)));
        let mut b = TokenBucket::new(1);
        assert!(b.take(t0 + Duration::from_secs(5)));
        assert!(!b.take(t0), "an earlier time adds no tokens");
    }
}
