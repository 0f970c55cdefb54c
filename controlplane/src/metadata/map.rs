//! One object's metadata map and its merge rule.
//!
//! Owns [`Entry`] (a key written at a version: a value or a deletion tombstone) and [`MetadataMap`], whose
//! [`MetadataMap::merge`] keeps, per key, the greatest entry of a total order (see [`merge_order`]): so merging
//! is commutative, associative and idempotent, and any permutation or duplication of the same entries gives the
//! same map (`proptests` proves it). Tombstones are kept so that a late older write cannot bring a deleted key
//! back; at most `max_tombstones` of them: beyond it the oldest is forgotten and the map's *floor* rises to its
//! version, below which writes to keys it does not hold are ignored (history older than the floor is gone, so a
//! late write from before it loses, as it would have against the forgotten tombstone). It also counts the live
//! bytes (keys plus values). It must never decide whether a write is allowed: that is [`super::write`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::version::Version;

/// A key written at a version: a value, or a deletion (`value: None`, a tombstone).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// When it was written.
    pub version: Version,
    /// The value; `None` for a deletion.
    pub value: Option<String>,
    /// Immutable from this write on.
    pub set_once: bool,
}

impl Entry {
    /// Bytes it counts against `metadata.max_object_bytes` when live: key plus value (0 for a tombstone).
    pub fn live_bytes(&self) -> usize {
        self.value.as_ref().map_or(0, |v| self.key.len() + v.len())
    }
}

/// The total order [`MetadataMap::merge`] keeps the greatest of, for two entries of one key: a set-once entry
/// beats any other, and of two set-once entries the *first* written wins (set-once means immutable after the
/// first write); otherwise the later version wins (last write wins). Equal versions (one writer never stamps
/// two) fall back to the value, a tombstone first, so the order is total and merging never depends on arrival.
pub fn merge_order(a: &Entry, b: &Entry) -> Ordering {
    match (a.set_once, b.set_once) {
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (true, true) => b.version.cmp(&a.version).then_with(|| a.value.cmp(&b.value)),
        (false, false) => a.version.cmp(&b.version).then_with(|| a.value.cmp(&b.value)),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    version: Version,
    value: Option<String>,
    set_once: bool,
}

impl Slot {
    fn entry(&self, key: &str) -> Entry {
        Entry { key: key.to_owned(), version: self.version, value: self.value.clone(), set_once: self.set_once }
    }
}

/// One object's keys, live and deleted. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataMap {
    slots: BTreeMap<String, Slot>,
    live_bytes: usize,
    tombstones: usize,
    max_tombstones: usize,
    floor: Version,
}

impl MetadataMap {
    /// An empty map keeping at most `max_tombstones` tombstones.
    pub fn new(max_tombstones: usize) -> MetadataMap {
        MetadataMap { slots: BTreeMap::new(), live_bytes: 0, tombstones: 0, max_tombstones, floor: Version::ZERO }
    }

    /// Merges `entry`: it replaces the key's entry when it is greater in [`merge_order`]. Answers whether the
    /// map changed.
    pub fn merge(&mut self, entry: Entry) -> bool {
        if let Some(slot) = self.slots.get(&entry.key) {
            if merge_order(&entry, &slot.entry(&entry.key)) != Ordering::Greater {
                return false;
            }
        } else if entry.version <= self.floor {
            return false;
        }
        let added = entry.live_bytes();
        let tombstone = entry.value.is_none();
        let slot = Slot { version: entry.version, value: entry.value, set_once: entry.set_once };
        if let Some(old) = self.slots.insert(entry.key.clone(), slot) {
            self.live_bytes -= old.entry(&entry.key).live_bytes();
            self.tombstones -= usize::from(old.value.is_none());
        }
        self.live_bytes += added;
        self.tombstones += usize::from(tombstone);
        if self.tombstones > self.max_tombstones {
            self.forget_oldest_tombstone();
        }
        true
    }

    fn forget_oldest_tombstone(&mut self) {
        let oldest = self.slots.iter().filter(|(_, s)| s.value.is_none()).min_by_key(|(_, s)| s.version);
        if let Some((key, slot)) = oldest.map(|(k, s)| (k.clone(), s.version)) {
            self.slots.remove(&key);
            self.tombstones -= 1;
            self.floor = self.floor.max(slot);
        }
    }

    /// The live entry of `key`, if it is set.
    pub fn get(&self, key: &str) -> Option<Entry> {
        self.slots.get(key).filter(|s| s.value.is_some()).map(|s| s.entry(key))
    }

    /// The key's entry, live or tombstone.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.slots.get(key).map(|s| s.entry(key))
    }

    /// The version of `key` as compare-and-set sees it: [`Version::ZERO`] when it is not set.
    pub fn current_version(&self, key: &str) -> Version {
        self.get(key).map_or(Version::ZERO, |e| e.version)
    }

    /// Every live entry, by key.
    pub fn live(&self) -> impl Iterator<Item = Entry> + '_ {
        self.slots.iter().filter(|(_, s)| s.value.is_some()).map(|(k, s)| s.entry(k))
    }

    /// Every entry, tombstones too, by key.
    pub fn all(&self) -> impl Iterator<Item = Entry> + '_ {
        self.slots.iter().map(|(k, s)| s.entry(k))
    }

    /// Keys plus values of the live entries, in bytes.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes
    }

    /// Tombstones held.
    pub fn tombstones(&self) -> usize {
        self.tombstones
    }

    /// Writes at or below this version to keys the map does not hold are ignored (forgotten history).
    pub fn floor(&self) -> Version {
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(wall_us: u64) -> Version {
        Version { wall_us, counter: 0, node_id: 1 }
    }

    fn set(key: &str, at: u64, value: &str) -> Entry {
        Entry { key: key.into(), version: v(at), value: Some(value.into()), set_once: false }
    }

    fn delete(key: &str, at: u64) -> Entry {
        Entry { key: key.into(), version: v(at), value: None, set_once: false }
    }

    #[test]
    fn the_last_write_wins_whatever_the_arrival_order() {
        let mut map = MetadataMap::new(8);
        assert!(map.merge(set("app.a", 2, "new")));
        assert!(!map.merge(set("app.a", 1, "old")), "an older write loses");
        assert_eq!(map.get("app.a").unwrap().value.as_deref(), Some("new"));
        assert!(!map.merge(set("app.a", 2, "new")), "a duplicate changes nothing");
        assert_eq!(map.live_bytes(), "app.a".len() + 3);
    }

    #[test]
    fn a_tombstone_stops_a_late_older_write() {
        let mut map = MetadataMap::new(8);
        map.merge(set("app.a", 1, "x"));
        assert!(map.merge(delete("app.a", 3)));
        assert!(!map.merge(set("app.a", 2, "late")), "no resurrection");
        assert_eq!(map.get("app.a"), None);
        assert_eq!((map.live_bytes(), map.tombstones()), (0, 1));
        assert!(map.merge(set("app.a", 4, "again")), "a newer write sets it again");
        assert_eq!((map.live_bytes(), map.tombstones()), (5 + 5, 0));
    }

    #[test]
    fn set_once_keeps_the_first_write() {
        let mut map = MetadataMap::new(8);
        let once = |at, value: &str| Entry { set_once: true, ..set("sip.call_id", at, value) };
        map.merge(set("sip.call_id", 9, "plain"));
        assert!(map.merge(once(5, "b")), "set-once beats a plain write, even a later one");
        assert!(map.merge(once(3, "a")), "the first set-once write wins");
        assert!(!map.merge(once(4, "c")));
        assert!(!map.merge(set("sip.call_id", 10, "d")));
        assert!(!map.merge(delete("sip.call_id", 10)));
        assert_eq!(map.get("sip.call_id").unwrap().value.as_deref(), Some("a"));
    }

    #[test]
    fn tombstones_are_bounded_and_the_floor_keeps_history_safe() {
        let mut map = MetadataMap::new(2);
        for (i, key) in ["app.a", "app.b", "app.c"].into_iter().enumerate() {
            let at = 10 * (i as u64 + 1);
            map.merge(set(key, at, "x"));
            map.merge(delete(key, at + 1));
        }
        assert_eq!(map.tombstones(), 2, "the oldest tombstone was forgotten");
        assert!(map.entry("app.a").is_none());
        assert_eq!(map.floor(), v(11));
        assert!(!map.merge(set("app.a", 5, "late")), "a write older than the floor cannot come back");
        assert!(map.merge(set("app.a", 12, "new")));
    }
}
