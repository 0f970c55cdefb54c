//! Wall-clock time for the control plane: the one place that reads `SystemTime` as Unix time.
//!
//! Owns [`unix_s`], [`unix_ms`] and [`unix_us`]. A clock before 1970 reads as 0; one beyond `u64` as
//! `u64::MAX`. Never used by the data plane (which gets its time passed in).

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
