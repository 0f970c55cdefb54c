//! The latest statistics of every stream and subscription, bounded and aged out.
//!
//! Owns [`StatsStore`]: one entry per [`StatsKey`] with the last snapshot a worker published and when.
//! A stream or subscription that ended stops being published; its entry is kept for the grace period
//! (so its last figures can still be read) and then freed. At most `max_entries` entries exist: a new
//! key beyond that is refused and counted. Pure: time is passed in; must never grow without bound.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ringfwd_dataplane::control::Snapshot;
use ringfwd_dataplane::control::StatsKey;
use ringfwd_dataplane::control::StatsRecord;

/// One stream's or subscription's latest statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatsEntry {
    /// The figures.
    pub snapshot: Snapshot,
    /// When the worker took them.
    pub at: Instant,
}

/// The table of latest statistics.
#[derive(Debug)]
pub struct StatsStore {
    entries: HashMap<StatsKey, StatsEntry>,
    max_entries: usize,
    grace: Duration,
    refused: u64,
}

impl StatsStore {
    /// An empty store of at most `max_entries` entries that frees an entry `grace` after its last update.
    pub fn new(max_entries: usize, grace: Duration) -> StatsStore {
        StatsStore { entries: HashMap::new(), max_entries, grace, refused: 0 }
    }

    /// Keeps `record` if it is newer than what is stored for its key.
    pub fn ingest(&mut self, record: &StatsRecord) {
        let entry = StatsEntry { snapshot: record.snapshot, at: record.at };
        let room = self.entries.len() < self.max_entries;
        match self.entries.get_mut(&record.key) {
            Some(existing) if existing.at <= record.at => *existing = entry,
            Some(_) => {}
            None if room => {
                self.entries.insert(record.key, entry);
            }
            None => self.refused += 1,
        }
    }

    /// Frees the entries not updated within the grace period before `now`.
    pub fn prune(&mut self, now: Instant) {
        let grace = self.grace;
        self.entries.retain(|_, entry| now.saturating_duration_since(entry.at) <= grace);
    }

    /// The latest statistics of `key`.
    pub fn get(&self, key: StatsKey) -> Option<StatsEntry> {
        self.entries.get(&key).copied()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// New keys refused because the store was full, since start.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfwd_dataplane::control::{StreamId, SubscriptionId};

    fn record(key: StatsKey, at: Instant, packets: u64) -> StatsRecord {
        StatsRecord { worker: 0, key, at, snapshot: Snapshot { packets, ..Snapshot::default() } }
    }

    #[test]
    fn keeps_the_newest_ages_out_and_stays_bounded() {
        let t0 = Instant::now();
        let mut store = StatsStore::new(2, Duration::from_secs(5));
        let a = StatsKey::Stream(StreamId(1));
        let b = StatsKey::Subscription(SubscriptionId(1));
        store.ingest(&record(a, t0 + Duration::from_secs(1), 10));
        store.ingest(&record(a, t0, 5));
        assert_eq!(store.get(a).map(|e| e.snapshot.packets), Some(10), "an older record does not win");
        store.ingest(&record(b, t0 + Duration::from_secs(2), 7));
        store.ingest(&record(StatsKey::Stream(StreamId(9)), t0, 1));
        assert_eq!((store.len(), store.refused()), (2, 1), "bounded");
        store.prune(t0 + Duration::from_millis(6500));
        assert_eq!(store.get(a), None, "a stopped reporting more than the grace ago");
        assert!(store.get(b).is_some());
        store.prune(t0 + Duration::from_secs(8));
        assert!(store.is_empty());
    }
}
