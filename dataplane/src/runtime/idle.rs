//! The idle strategy of a worker loop: when to block in the kernel and when to keep polling, and how long a
//! blocking wait may linger to gather a batch.
//!
//! A sleep/wake costs about 5 µs of CPU on the development machine (against ~6.5 µs to forward a datagram), a large share at
//! moderate rates; spinning trades a dedicated core for that cost, and a batch window trades latency for it.
//! [`BatchWindow`] adapts the window to the arrival rate: none while traffic is light (a window would add its
//! whole length to every packet and gather almost nothing), the configured bound once the rate fills a batch
//! within it, and shorter again as the rate rises (a batch fills sooner). Pure logic on passed-in time.

use std::time::{Duration, Instant};

/// When a worker may block in the kernel. Serialized by name (`sleep`, `spin`, `spin_then_sleep`): the config crate
/// reads `idle.strategy` with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleStrategy {
    /// Block until a completion arrives: cheapest CPU.
    #[default]
    Sleep,
    /// Never block: lowest latency, one full core per worker (the caller keeps other threads off that core).
    Spin,
    /// Spin for a bound, then block.
    SpinThenSleep,
}

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

/// Datagrams a window must be expected to gather to be worth its latency. Two: once the wake-up timer is no
/// longer armed per wait (see the io_uring backend's deadline), a sleep/wake costs ~5 µs against ~6.5 µs for
/// forwarding a datagram, so even a window gathering two saves a sixth of the CPU at moderate rates (measured at
/// 50 k pps with a 50 µs bound: 9.4–9.9 against 11.4–12.4 µs per copy, for +25 µs of p50).
pub const MIN_BATCH: f64 = 2.0;
/// Datagrams a window aims to gather; it closes sooner when the rate fills them sooner.
pub const TARGET_BATCH: f64 = 16.0;
/// How often the arrival rate is re-estimated.
const RATE_PERIOD: Duration = Duration::from_millis(1);

/// The batch window of a sleeping worker, chosen from the arrival rate (see the module doc).
#[derive(Debug, Clone)]
pub struct BatchWindow {
    max_us: u32,
    period_start: Instant,
    period_datagrams: u64,
    /// Smoothed arrival rate, datagrams per µs.
    rate_per_us: f64,
}

impl BatchWindow {
    /// A window of at most `max` (0 disables batching).
    pub fn new(max: Duration, now: Instant) -> BatchWindow {
        let max_us = u32::try_from(max.as_micros()).unwrap_or(u32::MAX);
        BatchWindow { max_us, period_start: now, period_datagrams: 0, rate_per_us: 0.0 }
    }

    /// Records `datagrams` received by the iteration that ended at `now`; re-estimates the rate once per
    /// period (half the new period's rate, half the old estimate).
    pub fn received(&mut self, datagrams: usize, now: Instant) {
        self.period_datagrams += datagrams as u64;
        let elapsed = now.saturating_duration_since(self.period_start);
        if elapsed >= RATE_PERIOD {
            let rate = self.period_datagrams as f64 / elapsed.as_secs_f64() / 1e6;
            self.rate_per_us = (self.rate_per_us + rate) / 2.0;
            (self.period_start, self.period_datagrams) = (now, 0);
        }
    }

    /// The window for the next blocking wait, µs: 0 when the rate would gather fewer than [`MIN_BATCH`]
    /// datagrams within the bound, else the time to gather [`TARGET_BATCH`], at most the bound.
    pub fn window_us(&self) -> u32 {
        let max = f64::from(self.max_us);
        if self.rate_per_us * max < MIN_BATCH {
            0
        } else {
            (TARGET_BATCH / self.rate_per_us).min(max) as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window after `pps` datagrams per second arrived for 20 ms in iterations of 100 µs.
    fn window_at(pps: f64, max_us: u64) -> u32 {
        let t0 = Instant::now();
        let mut w = BatchWindow::new(Duration::from_micros(max_us), t0);
        let mut owed = 0.0;
        for i in 1..=200u64 {
            owed += pps * 100e-6;
            let n = owed.floor();
            owed -= n;
            w.received(n as usize, t0 + Duration::from_micros(100 * i));
        }
        w.window_us()
    }

    #[test]
    fn no_window_while_traffic_is_light() {
        assert_eq!(window_at(0.0, 500), 0);
        // 1 000 pps: 0.5 datagrams in 500 µs.
        assert_eq!(window_at(1_000.0, 500), 0);
        // 30 000 pps: 1.5 datagrams in a 50 µs bound.
        assert_eq!(window_at(30_000.0, 50), 0);
        // 50 000 pps: 2.5 in 50 µs, enough.
        assert_eq!(window_at(50_000.0, 50), 50);
    }

    #[test]
    fn the_bound_once_the_rate_fills_a_batch_then_shorter_as_it_rises() {
        // 25 000 pps: 5 in 200 µs; 16 would take 640 µs, so the bound.
        assert_eq!(window_at(25_000.0, 200), 200);
        // 200 000 pps: 16 in 80 µs.
        let w = window_at(200_000.0, 200);
        assert!((75..=85).contains(&w), "{w}");
        // 2 M pps: 16 in 8 µs.
        assert!(window_at(2_000_000.0, 200) <= 9);
    }

    #[test]
    fn a_zero_bound_never_batches() {
        assert_eq!(window_at(1_000_000.0, 0), 0);
    }

    #[test]
    fn the_rate_follows_a_drop_in_traffic_within_a_few_periods() {
        let t0 = Instant::now();
        let mut w = BatchWindow::new(Duration::from_micros(200), t0);
        for i in 1..=20u64 {
            w.received(20, t0 + Duration::from_micros(100 * i));
        }
        assert!(w.window_us() > 0);
        for i in 21..=100u64 {
            w.received(0, t0 + Duration::from_micros(100 * i));
        }
        assert_eq!(w.window_us(), 0);
    }

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
