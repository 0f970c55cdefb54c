//! The bounded log of one object's recent changes, for watchers that resume.
//!
//! Owns [`Change`] (one applied write: its version and entries; also the payload of the change event) and
//! [`ChangeLog`], which keeps the most recent changes up to a byte budget (keys plus values) and answers
//! "everything after version v" — or that it no longer can, when v is older than its *floor* (the version
//! before its oldest change): the watcher must then take the whole map again. Changes are pushed in strictly
//! increasing version order (the node's clock stamps them); must never reorder, drop a change in the middle,
//! or grow beyond its budget (the newest change is always kept, even alone over budget).

use std::collections::VecDeque;
use std::sync::Arc;

use super::map::Entry;
use super::version::Version;

/// One applied write: every entry it wrote (deletions as tombstones), all at `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The write's version.
    pub version: Version,
    /// What it wrote, by key.
    pub entries: Vec<Entry>,
}

impl Change {
    /// Bytes it counts against the log's budget: keys plus values.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.key.len() + e.value.as_ref().map_or(0, String::len)).sum()
    }
}

/// Recent changes of one object. See the module docs.
#[derive(Clone, Debug)]
pub struct ChangeLog {
    changes: VecDeque<Arc<Change>>,
    bytes: usize,
    max_bytes: usize,
    floor: Version,
}

impl ChangeLog {
    /// An empty log whose history starts after `floor`, keeping about `max_bytes`.
    pub fn new(floor: Version, max_bytes: usize) -> ChangeLog {
        ChangeLog { changes: VecDeque::new(), bytes: 0, max_bytes, floor }
    }

    /// Appends `change` (its version above every one before), then forgets the oldest changes beyond the
    /// budget, raising the floor to the last one forgotten. A change that is not newer (a bug: the clock stamps
    /// them) empties the log with its floor at the newest version seen, so every resumer gets the whole map.
    pub fn push(&mut self, change: Arc<Change>) {
        let newest = self.changes.back().map_or(self.floor, |c| c.version);
        if change.version <= newest {
            self.changes.clear();
            self.bytes = 0;
            self.floor = Version { wall_us: u64::MAX, counter: u64::MAX, node_id: u32::MAX };
            return;
        }
        self.bytes += change.bytes();
        self.changes.push_back(change);
        while self.bytes > self.max_bytes && self.changes.len() > 1 {
            if let Some(old) = self.changes.pop_front() {
                self.bytes -= old.bytes();
                self.floor = old.version;
            }
        }
    }

    /// Every change after `version`, oldest first; `None` when some of them are no longer kept.
    pub fn since(&self, version: Version) -> Option<Vec<Arc<Change>>> {
        if version < self.floor {
            return None;
        }
        Some(self.changes.iter().filter(|c| c.version > version).cloned().collect())
    }

    /// The version before the oldest change kept.
    pub fn floor(&self) -> Version {
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at: u64, key: &str, value: &str) -> Arc<Change> {
        let version = Version { wall_us: at, counter: 0, node_id: 1 };
        let entry = Entry { key: key.into(), version, value: Some(value.into()), set_once: false };
        Arc::new(Change { version, entries: vec![entry] })
    }

    fn versions(changes: &[Arc<Change>]) -> Vec<u64> {
        changes.iter().map(|c| c.version.wall_us).collect()
    }

    #[test]
    fn resuming_gets_exactly_the_changes_after_the_version() {
        let mut log = ChangeLog::new(Version::ZERO, 1000);
        for at in 1..=4 {
            log.push(change(at, "app.a", "x"));
        }
        let at = |wall_us| Version { wall_us, counter: 0, node_id: 1 };
        assert_eq!(versions(&log.since(at(2)).unwrap()), [3, 4]);
        assert_eq!(versions(&log.since(Version::ZERO).unwrap()), [1, 2, 3, 4]);
        assert!(log.since(at(4)).unwrap().is_empty());
    }

    #[test]
    fn the_budget_forgets_the_oldest_and_raises_the_floor() {
        // Each change is 5 + 5 = 10 bytes; 25 bytes keep two.
        let mut log = ChangeLog::new(Version::ZERO, 25);
        for at in 1..=4 {
            log.push(change(at, "app.a", "xxxxx"));
        }
        let at = |wall_us| Version { wall_us, counter: 0, node_id: 1 };
        assert_eq!(log.floor(), at(2));
        assert_eq!(log.since(at(1)), None, "change 2 is gone: take the whole map");
        assert_eq!(versions(&log.since(at(2)).unwrap()), [3, 4]);
        log.push(change(5, "app.a", &"x".repeat(100)));
        assert_eq!(versions(&log.since(at(4)).unwrap()), [5], "the newest stays, even over budget");
    }

    #[test]
    fn an_out_of_order_change_sends_every_resumer_to_a_snapshot() {
        let mut log = ChangeLog::new(Version::ZERO, 1000);
        log.push(change(5, "app.a", "x"));
        log.push(change(3, "app.a", "y"));
        assert_eq!(log.since(Version { wall_us: 5, counter: 0, node_id: 1 }), None);
    }
}
