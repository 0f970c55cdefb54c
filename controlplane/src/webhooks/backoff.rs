//! When a failed webhook delivery is tried again.
//!
//! Owns [`Backoff`]: exponential (`backoff_initial_ms`, doubled per failed attempt, at most `backoff_max_ms`)
//! with jitter (each wait drawn between half and all of it, so receivers coming back are not hit by every
//! retry at once). Pure: the random draw is passed in. Must never sleep.

use std::time::Duration;

/// The retry schedule of one URL (`[webhooks]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry, in milliseconds.
    pub initial_ms: u32,
    /// Longest wait, in milliseconds.
    pub max_ms: u32,
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first), with `unit` a random draw in `0.0..=1.0`
    /// choosing between half and all of the exponential step.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(32);
        let step_ms = (u64::from(self.initial_ms) << doublings).min(u64::from(self.max_ms));
        let half = step_ms / 2;
        let jitter = (half as f64 * unit.clamp(0.0, 1.0)).round() as u64;
        Duration::from_millis(step_ms - half + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_max() {
        let b = Backoff { initial_ms: 500, max_ms: 30_000 };
        let full: Vec<u64> = (1..=9).map(|r| b.delay(r, 1.0).as_millis() as u64).collect();
        assert_eq!(full, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
        assert_eq!(b.delay(1000, 1.0), Duration::from_millis(30_000), "no overflow on long outages");
    }

    #[test]
    fn jitter_draws_between_half_and_all_of_the_step() {
        let b = Backoff { initial_ms: 500, max_ms: 30_000 };
        assert_eq!(b.delay(3, 0.0), Duration::from_millis(1000));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(1500));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(2000));
        assert_eq!(b.delay(3, 7.0), Duration::from_millis(2000), "out-of-range draws are clamped");
        assert_eq!(Backoff { initial_ms: 1, max_ms: 1 }.delay(1, 0.0), Duration::from_millis(1));
    }
}
