//! The idle strategy of a worker loop: when to block in the kernel and when to keep polling.
//!
//! A sleep/wake costs about 20–25 µs of CPU on the development machine, which dominates per-packet cost at
//! moderate rates; spinning trades a dedicated core for that cost. Pure logic on passed-in time.

use std::time::{Duration, Instant};

pub use ringfwd_tuning::IdleStrategy;

/// Decides, each loop iteration, whether the worker may block waiting for work.
#[derive(Debug, Clone)]
pub struct IdlePolicy {
    strategy: IdleStrategy,
    spin: Duration,
    last_work: Instant,
}

impl IdlePolicy {
    /// A policy for `strategy`; `spin` bounds spinning for [`IdleStrategy::SpinThenSleep`].
    pub fn new(strategy: IdleStrategy, spin: Duration, now: Instant) -> IdlePolicy {
        IdlePolicy { strategy, spin, last_work: now }
    }

    /// Records that the last iteration did work at `now`.
    pub fn worked(&mut self, now: Instant) {
        self.last_work = now;
    }

    /// Whether the next wait may block.
    pub fn may_block(&self, now: Instant) -> bool {
        match self.strategy {
            IdleStrategy::Sleep => true,
            IdleStrategy::Spin => false,
            IdleStrategy::SpinThenSleep => now.saturating_duration_since(self.last_work) >= self.spin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_then_sleep_blocks_only_after_the_spin_window() {
        let t0 = Instant::now();
        let mut p = IdlePolicy::new(IdleStrategy::SpinThenSleep, Duration::from_micros(50), t0);
        assert!(!p.may_block(t0 + Duration::from_micros(10)));
        assert!(p.may_block(t0 + Duration::from_micros(50)));
        p.worked(t0 + Duration::from_micros(60));
        assert!(!p.may_block(t0 + Duration::from_micros(100)));
        assert!(IdlePolicy::new(IdleStrategy::Sleep, Duration::ZERO, t0).may_block(t0));
        assert!(!IdlePolicy::new(IdleStrategy::Spin, Duration::ZERO, t0).may_block(t0 + Duration::from_secs(9)));
    }
}
