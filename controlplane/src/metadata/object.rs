//! One object's metadata: its map, its change log and its version, and the write that ties them together.
//!
//! Owns [`ObjectMetadata`]: a checked write is stamped with one fresh version for all its keys, merged into the
//! map and appended to the log as one [`Change`]; deletions of keys that are not set are left out, and a write
//! that changes nothing stamps nothing. Also answers what a new or resuming watcher gets first
//! ([`WatchStart`]). Sans-IO: the time comes in with the clock; it must never notify anyone (the caller
//! publishes the change it returns).

use std::sync::Arc;

use super::error::MetadataError;
use super::key::Origin;
use super::log::{Change, ChangeLog};
use super::map::{Entry, MetadataMap};
use super::version::{Version, VersionClock};
use super::write::{check, Write};
use super::MetadataLimits;

/// What a watcher receives before the live changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// The whole map (live keys, by key) at `version`: it replaces whatever the watcher had.
    Snapshot {
        /// The live entries.
        entries: Vec<Entry>,
        /// The object's version.
        version: Version,
    },
    /// Exactly the changes after the version the watcher resumed from, oldest first.
    Replay {
        /// The missed changes (possibly none).
        changes: Vec<Arc<Change>>,
        /// The object's version.
        version: Version,
    },
}

/// One session's, endpoint's or stream's metadata. See the module docs.
#[derive(Clone, Debug)]
pub struct ObjectMetadata {
    map: MetadataMap,
    log: ChangeLog,
    version: Version,
}

impl ObjectMetadata {
    /// Empty metadata whose history starts after `start` (the clock's last version when it was made: a watcher
    /// resuming from before it gets a snapshot).
    pub fn new(start: Version, limits: &MetadataLimits) -> ObjectMetadata {
        ObjectMetadata {
            map: MetadataMap::new(limits.max_tombstones_per_object),
            log: ChangeLog::new(start, limits.log_retention_bytes),
            version: start,
        }
    }

    /// Checks `writes` and applies them all with one version from `clock` at `now_us`; answers the change, or
    /// `None` when nothing changed (only deletions of keys that are not set).
    pub fn write(
        &mut self,
        writes: Vec<Write>,
        limits: &MetadataLimits,
        origin: Origin,
        clock: &mut VersionClock,
        now_us: u64,
    ) -> Result<Option<Arc<Change>>, MetadataError> {
        check(&self.map, &writes, limits, origin)?;
        let effective: Vec<Write> =
            writes.into_iter().filter(|w| w.value.is_some() || self.map.get(&w.key).is_some()).collect();
        if effective.is_empty() {
            return Ok(None);
        }
        let version = clock.next(now_us);
        let mut entries: Vec<Entry> = effective
            .into_iter()
            .map(|w| Entry { key: w.key, version, value: w.value, set_once: w.set_once })
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        for entry in &entries {
            self.map.merge(entry.clone());
        }
        let change = Arc::new(Change { version, entries });
        self.log.push(Arc::clone(&change));
        self.version = version;
        Ok(Some(change))
    }

    /// Merges `entries` another node wrote (each at its own version; see [`super::map::merge_order`]); answers the
    /// change made of those that changed the map, stamped with a fresh version of `clock` at `now_us` (so the log
    /// stays in order and a watcher's resume point moves past it), or `None` when none did. Not checked against the
    /// limits of a write: the writing node checked them.
    pub fn merge_remote(&mut self, entries: Vec<Entry>, clock: &mut VersionClock, now_us: u64) -> Option<Arc<Change>> {
        for entry in &entries {
            clock.observe(entry.version);
        }
        let mut merged: Vec<Entry> = entries.into_iter().filter(|entry| self.map.merge(entry.clone())).collect();
        if merged.is_empty() {
            return None;
        }
        merged.sort_by(|a, b| a.key.cmp(&b.key));
        let version = clock.next(now_us);
        let change = Arc::new(Change { version, entries: merged });
        self.log.push(Arc::clone(&change));
        self.version = version;
        Some(change)
    }

    /// The live entries of `keys` (all when empty) that are set, by key.
    pub fn get(&self, keys: &[String]) -> Vec<Entry> {
        if keys.is_empty() {
            return self.map.live().collect();
        }
        let mut entries: Vec<Entry> = keys.iter().filter_map(|k| self.map.get(k)).collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        entries.dedup_by(|a, b| a.key == b.key);
        entries
    }

    /// The latest change's version (or the start).
    pub fn version(&self) -> Version {
        self.version
    }

    /// Every entry of its map, tombstones included, by key.
    pub fn all(&self) -> Vec<Entry> {
        self.map.all().collect()
    }

    /// An object's metadata as it was kept across a restart: its `entries` (tombstones included) at `version`, with
    /// no change history (a watcher resuming from an earlier version gets the whole map).
    pub fn restored(entries: Vec<Entry>, version: Version, limits: &MetadataLimits) -> ObjectMetadata {
        let mut object = ObjectMetadata::new(version, limits);
        for entry in entries {
            object.map.merge(entry);
        }
        object
    }

    /// What a watcher gets first: with `resume_from` and every change after it still in the log, exactly those;
    /// otherwise (no resume, history gone, or a version this object never reached) the whole map.
    pub fn watch_start(&self, resume_from: Option<Version>) -> WatchStart {
        let replay = resume_from.filter(|&v| v <= self.version).and_then(|v| self.log.since(v));
        match replay {
            Some(changes) => WatchStart::Replay { changes, version: self.version },
            None => WatchStart::Snapshot { entries: self.map.live().collect(), version: self.version },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> MetadataLimits {
        MetadataLimits { log_retention_bytes: 20, ..MetadataLimits::from_config(&ringfwd_tuning::Config::default()) }
    }

    #[test]
    fn another_nodes_entries_merge_by_the_merge_order_under_a_fresh_version() {
        let (limits, mut clock) = (limits(), VersionClock::new(1));
        let mut object = ObjectMetadata::new(Version::ZERO, &limits);
        let mine = object.write(vec![Write::set("app.a", "1")], &limits, Origin::Controller, &mut clock, 100).unwrap();
        let mine = mine.unwrap().version;
        let at = |wall_us, node_id| Version { wall_us, counter: 0, node_id };
        let entry = |key: &str, value: &str, version| Entry {
            key: key.into(),
            version,
            value: Some(value.into()),
            set_once: false,
        };
        // Older than this node's write of app.a: it loses; app.b is new: it wins.
        let change = object
            .merge_remote(vec![entry("app.a", "old", at(50, 2)), entry("app.b", "x", at(60, 2))], &mut clock, 101)
            .expect("app.b changed the map");
        assert_eq!(change.entries, [entry("app.b", "x", at(60, 2))]);
        assert!(change.version > mine, "a fresh version: the log stays in order");
        assert_eq!(object.version(), change.version);
        assert_eq!(object.get(&[]), [entry("app.a", "1", mine), entry("app.b", "x", at(60, 2))]);
        // The same again changes nothing; a newer one wins, and the clock moved past it.
        assert!(object.merge_remote(vec![entry("app.b", "x", at(60, 2))], &mut clock, 102).is_none());
        let newer = at(1_000, 3);
        assert!(object.merge_remote(vec![entry("app.a", "2", newer)], &mut clock, 103).is_some());
        assert!(clock.next(104) > newer, "the clock observed the remote version");
        let WatchStart::Replay { changes, .. } = object.watch_start(Some(mine)) else { panic!("the log kept them") };
        assert_eq!(changes.len(), 2, "a watcher resuming from this node's write gets both merges");
    }

    #[test]
    fn one_version_per_write_and_deleting_nothing_stamps_nothing() {
        let (limits, mut clock) = (limits(), VersionClock::new(1));
        let mut object = ObjectMetadata::new(Version::ZERO, &limits);
        let writes = vec![Write::set("app.b", "2"), Write::set("app.a", "1")];
        let change = object.write(writes, &limits, Origin::Controller, &mut clock, 100).unwrap().unwrap();
        assert_eq!(change.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["app.a", "app.b"]);
        assert!(change.entries.iter().all(|e| e.version == change.version));
        assert_eq!(object.version(), change.version);
        let none = object.write(vec![Write::delete("app.zzz")], &limits, Origin::Controller, &mut clock, 100);
        assert_eq!(none, Ok(None));
        assert_eq!(object.version(), change.version, "no new version");
        let refused = object.write(vec![Write::set("Bad", "x")], &limits, Origin::Controller, &mut clock, 100);
        assert!(refused.is_err());
        assert_eq!(object.get(&[]).len(), 2, "a refused write changes nothing");
        assert_eq!(object.get(&["app.b".into(), "app.b".into(), "app.none".into()]).len(), 1);
    }

    #[test]
    fn watchers_replay_what_they_missed_or_get_the_whole_map() {
        let (limits, mut clock) = (limits(), VersionClock::new(1));
        let start = Version { wall_us: 50, counter: 0, node_id: 1 };
        clock.observe(start);
        let mut object = ObjectMetadata::new(start, &limits);
        let mut versions = Vec::new();
        for (i, value) in ["one", "two", "three"].into_iter().enumerate() {
            let write = vec![Write::set(format!("app.k{i}"), value)];
            versions.push(object.write(write, &limits, Origin::Controller, &mut clock, 100).unwrap().unwrap().version);
        }
        let WatchStart::Replay { changes, version } = object.watch_start(Some(versions[1])) else {
            panic!("the last change is still in the log")
        };
        assert_eq!((changes.len(), changes[0].version, version), (1, versions[2], versions[2]));
        // 20 bytes keep the last two changes (9 + 11 bytes) only: from the start the history is gone.
        assert!(
            matches!(object.watch_start(Some(start)), WatchStart::Snapshot { ref entries, .. } if entries.len() == 3)
        );
        assert!(matches!(object.watch_start(None), WatchStart::Snapshot { .. }));
        let future = Version { wall_us: u64::MAX, ..start };
        assert!(matches!(object.watch_start(Some(future)), WatchStart::Snapshot { .. }));
        let older = Version { wall_us: 1, ..start };
        assert!(matches!(object.watch_start(Some(older)), WatchStart::Snapshot { .. }), "before this object");
    }
}
