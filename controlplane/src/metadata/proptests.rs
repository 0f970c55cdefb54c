//! Property tests of the merge rules: any permutation or duplication of the same entries gives the same map,
//! merging is associative (merging two replicas' maps is the same as merging all their entries), and a deleted
//! key never comes back from a late older write.

use proptest::prelude::*;

use super::map::{Entry, MetadataMap};
use super::version::Version;

/// Few keys, versions and values, so that collisions (same key, same version) happen often.
fn entry() -> impl Strategy<Value = Entry> {
    (0..4usize, 1..6u64, 0..3u64, 1..3u32, prop::option::of(0..3u8), any::<bool>()).prop_map(
        |(key, wall_us, counter, node_id, value, set_once)| Entry {
            key: format!("app.k{key}"),
            version: Version { wall_us, counter, node_id },
            value: value.map(|v| format!("v{v}")),
            set_once: set_once && value.is_some(),
        },
    )
}

/// Large enough that no tombstone is forgotten: the merge is then a pure join.
const TOMBSTONES: usize = 64;

fn merged(entries: impl IntoIterator<Item = Entry>) -> MetadataMap {
    let mut map = MetadataMap::new(TOMBSTONES);
    for e in entries {
        map.merge(e);
    }
    map
}

fn snapshot(map: &MetadataMap) -> Vec<Entry> {
    map.all().collect()
}

proptest! {
    #[test]
    fn any_permutation_converges(entries in prop::collection::vec(entry(), 0..24), seed in any::<u64>()) {
        let mut shuffled = entries.clone();
        // A seeded Fisher-Yates shuffle: proptest shrinks the seed with the entries.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let a = merged(entries.clone());
        let b = merged(shuffled);
        prop_assert_eq!(snapshot(&a), snapshot(&b));
        prop_assert_eq!(a.live_bytes(), b.live_bytes());
        let reversed = merged(entries.into_iter().rev());
        prop_assert_eq!(snapshot(&a), snapshot(&reversed));
    }

    #[test]
    fn duplicates_change_nothing(entries in prop::collection::vec(entry(), 0..24), copies in 1..4usize) {
        let once = merged(entries.clone());
        let repeated = merged((0..copies).flat_map(|_| entries.clone()));
        prop_assert_eq!(snapshot(&once), snapshot(&repeated));
        let mut again = once.clone();
        for e in entries {
            prop_assert!(!again.merge(e), "re-merging an entry the map has seen never changes it");
        }
        prop_assert_eq!(snapshot(&again), snapshot(&once));
    }

    #[test]
    fn replicas_merge_to_the_same_map(
        left in prop::collection::vec(entry(), 0..16),
        right in prop::collection::vec(entry(), 0..16),
    ) {
        // Two replicas each saw part of the history; exchanging their maps converges to the map of everything.
        let everything = merged(left.iter().chain(&right).cloned());
        let mut l = merged(left.clone());
        let r = merged(right.clone());
        for e in r.all() {
            l.merge(e);
        }
        let mut r2 = merged(right);
        for e in merged(left).all() {
            r2.merge(e);
        }
        prop_assert_eq!(snapshot(&l), snapshot(&everything));
        prop_assert_eq!(snapshot(&r2), snapshot(&everything));
    }

    #[test]
    fn the_winner_is_the_greatest_entry(entries in prop::collection::vec(entry(), 1..24)) {
        let map = merged(entries.clone());
        for key in entries.iter().map(|e| e.key.clone()) {
            let best = entries.iter().filter(|e| e.key == key).max_by(|a, b| super::map::merge_order(a, b)).cloned();
            prop_assert_eq!(map.entry(&key), best);
        }
        let live: usize = map.live().map(|e| e.live_bytes()).sum();
        prop_assert_eq!(live, map.live_bytes());
    }

    #[test]
    fn a_deleted_key_never_comes_back_from_an_older_write(
        entries in prop::collection::vec(entry(), 0..24),
        tombstones in 1..4usize,
    ) {
        // Even with few tombstones kept: a plain write older than the newest plain deletion of its key loses.
        let mut map = MetadataMap::new(tombstones);
        let mut newest_delete = std::collections::BTreeMap::new();
        for e in entries {
            if e.value.is_none() {
                let v = newest_delete.entry(e.key.clone()).or_insert(e.version);
                *v = (*v).max(e.version);
            }
            let older = newest_delete.get(&e.key).is_some_and(|&d| e.version < d);
            let changed = map.merge(e.clone());
            if older && e.value.is_some() && !e.set_once {
                prop_assert!(!changed, "{:?} came back after a newer deletion", e);
            }
        }
        prop_assert!(map.tombstones() <= tombstones);
    }
}
