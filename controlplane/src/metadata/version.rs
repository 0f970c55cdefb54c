//! Metadata versions: when a write happened, as a total order, and the clock that stamps them.
//!
//! Owns [`Version`] (wall-clock microseconds, a counter, the writer's node id: ordered in that order) and
//! [`VersionClock`], a hybrid logical clock that never goes back: every version it stamps is greater than every
//! version it stamped or observed before, even when the wall clock steps back. Sans-IO: the time is passed in;
//! it must never read a clock itself.

use std::fmt;
use std::str::FromStr;

/// When a write happened. Ordered by `wall_us`, then `counter`, then `node_id`; [`Version::ZERO`] is before
/// every write and means "never written".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Version {
    /// The writer's wall clock, Unix time in microseconds (never below its previous version).
    pub wall_us: u64,
    /// Orders the writes a node stamps in the same microsecond.
    pub counter: u64,
    /// The writing node (`metadata.node_id`, never 0).
    pub node_id: u32,
}

impl Version {
    /// The version of nothing: before every write.
    pub const ZERO: Version = Version { wall_us: 0, counter: 0, node_id: 0 };
}

/// `wall_us.counter.node_id`, e.g. `1763735400123456.0.1`; [`FromStr`] reads it back.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.wall_us, self.counter, self.node_id)
    }
}

/// Why a text is not a version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a metadata version WALL_US.COUNTER.NODE_ID (e.g. 1763735400123456.0.1)")]
pub struct ParseVersionError {
    /// The text.
    pub text: String,
}

impl FromStr for Version {
    type Err = ParseVersionError;

    fn from_str(text: &str) -> Result<Version, ParseVersionError> {
        let error = || ParseVersionError { text: text.to_owned() };
        let mut parts = text.split('.');
        let (Some(wall), Some(counter), Some(node), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(error());
        };
        Ok(Version {
            wall_us: wall.parse().map_err(|_| error())?,
            counter: counter.parse().map_err(|_| error())?,
            node_id: node.parse().map_err(|_| error())?,
        })
    }
}

/// Stamps this node's versions: strictly increasing, close to the wall clock.
#[derive(Clone, Debug)]
pub struct VersionClock {
    node_id: u32,
    last: Version,
}

impl VersionClock {
    /// A clock for node `node_id` that has stamped nothing yet.
    pub fn new(node_id: u32) -> VersionClock {
        VersionClock { node_id, last: Version::ZERO }
    }

    /// A new version at wall-clock time `now_us`: `(now_us, 0)` when the clock moved on, else the last
    /// version's time with the next counter. Always greater than every version stamped or observed before.
    pub fn next(&mut self, now_us: u64) -> Version {
        let next = if now_us > self.last.wall_us {
            Version { wall_us: now_us, counter: 0, node_id: self.node_id }
        } else {
            Version { wall_us: self.last.wall_us, counter: self.last.counter.saturating_add(1), node_id: self.node_id }
        };
        self.last = next;
        next
    }

    /// Takes note of a version written elsewhere, so the next one stamped here is later.
    pub fn observe(&mut self, seen: Version) {
        self.last = self.last.max(seen);
    }

    /// The latest version stamped or observed.
    pub fn last(&self) -> Version {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_by_time_then_counter_then_node() {
        let v = |wall_us, counter, node_id| Version { wall_us, counter, node_id };
        assert!(v(1, 9, 9) < v(2, 0, 0));
        assert!(v(2, 0, 9) < v(2, 1, 0));
        assert!(v(2, 1, 1) < v(2, 1, 2));
        assert!(Version::ZERO < v(0, 0, 1));
    }

    #[test]
    fn the_clock_never_goes_back_even_when_the_wall_clock_does() {
        let mut clock = VersionClock::new(7);
        let a = clock.next(1000);
        let b = clock.next(1000);
        let c = clock.next(500);
        let d = clock.next(2000);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!((c.wall_us, c.counter, c.node_id), (1000, 2, 7));
        clock.observe(Version { wall_us: 5000, counter: 3, node_id: 9 });
        assert_eq!(clock.next(10), Version { wall_us: 5000, counter: 4, node_id: 7 });
    }

    #[test]
    fn text_form_round_trips_and_names_bad_input() {
        let v = Version { wall_us: 1_763_735_400_123_456, counter: 2, node_id: 1 };
        assert_eq!(v.to_string().parse::<Version>(), Ok(v));
        for bad in ["", "1.2", "1.2.3.4", "a.0.1", "1.-1.1", "1.0.99999999999"] {
            let err = bad.parse::<Version>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
