//! Time for the control plane: the one place that reads `SystemTime` as Unix time, and the one periodic loop.
//!
//! Owns [`unix_s`], [`unix_ms`], [`unix_us`] and [`unix_ns`] (a clock before 1970 reads as 0; one beyond `u64` as
//! `u64::MAX`) and [`every`], which the telemetry drains run on. Never used by the data plane (which gets its
//! time passed in).

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn unix_s() -> u64 {
    since_epoch().as_secs()
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// Microseconds since the Unix epoch.
pub fn unix_us() -> u64 {
    u64::try_from(since_epoch().as_micros()).unwrap_or(u64::MAX)
}

/// Nanoseconds since the Unix epoch.
pub fn unix_ns() -> u64 {
    u64::try_from(since_epoch().as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `round` every `period` (late ticks delay the next rather than bunch up) until `stop` resolves. A round
/// in progress completes first; the caller decides whether a last round follows.
pub async fn every<F, R>(period: Duration, stop: impl Future<Output = ()>, mut round: F)
where
    F: FnMut() -> R,
    R: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticker.tick() => round().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_agree() {
        let (s, ms, us) = (unix_s(), unix_ms(), unix_us());
        assert!(s > 1_700_000_000, "after 2023: {s}");
        assert!(ms / 1000 >= s && ms / 1000 <= s + 1);
        assert!(us / 1000 >= ms && us / 1000 <= ms + 1000);
    }
}
