//! Checking a controller's write against one object's map: the strict part of the metadata service.
//!
//! Owns [`Write`] and [`check`]: every rule a write must pass before anything changes (all or nothing): a
//! non-empty write, each key once, key syntax and reserved prefix, value length, no set-once deletion, set-once
//! keys never written again, compare-and-set against the key's current version, and the object's byte total.
//! Must never change the map nor stamp versions (that is [`super::object`]).

use std::collections::BTreeSet;

use super::error::MetadataError;
use super::key::{check_key, Origin};
use super::map::MetadataMap;
use super::version::Version;
use super::MetadataLimits;

/// One key to set or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The new value; `None` deletes the key.
    pub value: Option<String>,
    /// Make the key immutable from this write on (only with a value).
    pub set_once: bool,
    /// Write only if the key's current version is this ([`Version::ZERO`]: only if it is not set).
    pub expected: Option<Version>,
}

impl Write {
    /// Sets `key` to `value`, unconditionally.
    pub fn set(key: impl Into<String>, value: impl Into<String>) -> Write {
        Write { key: key.into(), value: Some(value.into()), set_once: false, expected: None }
    }

    /// Deletes `key`, unconditionally.
    pub fn delete(key: impl Into<String>) -> Write {
        Write { key: key.into(), value: None, set_once: false, expected: None }
    }
}

/// Checks `writes` against `map`; `Ok` means applying them all is allowed. See the module docs for the order
/// of the rules: the first one broken is the error.
pub fn check(
    map: &MetadataMap,
    writes: &[Write],
    limits: &MetadataLimits,
    origin: Origin,
) -> Result<(), MetadataError> {
    if writes.is_empty() {
        return Err(MetadataError::InvalidWrite("no keys to write".to_owned()));
    }
    let mut seen = BTreeSet::new();
    for write in writes {
        check_key(&write.key, limits.max_key_bytes, origin)?;
        if !seen.insert(write.key.as_str()) {
            return Err(MetadataError::InvalidWrite(format!("key {:?} appears twice", write.key)));
        }
        match &write.value {
            Some(value) if value.len() > limits.max_value_bytes => {
                return Err(MetadataError::ValueTooLong {
                    key: write.key.clone(),
                    bytes: value.len(),
                    limit: limits.max_value_bytes,
                });
            }
            None if write.set_once => {
                return Err(MetadataError::InvalidWrite(format!("key {:?}: a deletion cannot be set-once", write.key)));
            }
            _ => {}
        }
    }
    for write in writes {
        let current = map.current_version(&write.key);
        if let Some(live) = map.get(&write.key).filter(|e| e.set_once) {
            return Err(MetadataError::SetOnce { key: write.key.clone(), current: live.version });
        }
        if let Some(expected) = write.expected.filter(|&e| e != current) {
            return Err(MetadataError::VersionMismatch { key: write.key.clone(), expected, current });
        }
    }
    let mut needed = map.live_bytes();
    for write in writes {
        needed -= map.get(&write.key).map_or(0, |e| e.live_bytes());
        needed += write.value.as_ref().map_or(0, |v| write.key.len() + v.len());
    }
    if needed > limits.max_object_bytes {
        return Err(MetadataError::ObjectFull { limit: limits.max_object_bytes, needed });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::map::Entry;

    fn limits() -> MetadataLimits {
        MetadataLimits {
            max_key_bytes: 16,
            max_value_bytes: 8,
            max_object_bytes: 40,
            ..MetadataLimits::from_config(&ringfwd_tuning::Config::default())
        }
    }

    fn map_with(entries: &[(&str, &str, bool)]) -> MetadataMap {
        let mut map = MetadataMap::new(8);
        for (i, (key, value, set_once)) in entries.iter().enumerate() {
            let version = Version { wall_us: i as u64 + 1, counter: 0, node_id: 1 };
            map.merge(Entry { key: (*key).into(), version, value: Some((*value).into()), set_once: *set_once });
        }
        map
    }

    fn err(map: &MetadataMap, writes: &[Write]) -> MetadataError {
        check(map, writes, &limits(), Origin::Controller).unwrap_err()
    }

    #[test]
    fn malformed_writes_name_the_key() {
        let map = MetadataMap::new(8);
        assert!(matches!(err(&map, &[]), MetadataError::InvalidWrite(_)));
        assert!(matches!(err(&map, &[Write::set("Bad", "x")]), MetadataError::InvalidKey { key, .. } if key == "Bad"));
        let twice = [Write::set("app.a", "x"), Write::delete("app.a")];
        assert!(err(&map, &twice).to_string().contains("\"app.a\" appears twice"));
        let long = err(&map, &[Write::set("app.a", "123456789")]);
        assert_eq!(long, MetadataError::ValueTooLong { key: "app.a".into(), bytes: 9, limit: 8 });
        let once_delete = Write { set_once: true, ..Write::delete("app.a") };
        assert!(err(&map, &[once_delete]).to_string().contains("set-once"));
        check(&map, &[Write::set("app.a", "12345678")], &limits(), Origin::Controller).unwrap();
    }

    #[test]
    fn the_object_total_counts_replaced_and_deleted_keys() {
        // 3 keys of 5 + 8 bytes = 39 of 40.
        let map = map_with(&[("app.a", "12345678", false), ("app.b", "12345678", false), ("app.c", "12345678", false)]);
        assert_eq!(err(&map, &[Write::set("app.d", "1")]), MetadataError::ObjectFull { limit: 40, needed: 45 });
        check(&map, &[Write::set("app.a", "1234567"), Write::set("app.d", "")], &limits(), Origin::Controller)
            .unwrap_err();
        check(&map, &[Write::delete("app.a"), Write::set("app.d", "12345678")], &limits(), Origin::Controller).unwrap();
        check(&map, &[Write::set("app.a", "1234")], &limits(), Origin::Controller).unwrap();
    }

    #[test]
    fn set_once_keys_refuse_every_later_write() {
        let map = map_with(&[("sip.call_id", "abc", true)]);
        let current = map.get("sip.call_id").unwrap().version;
        for write in [Write::set("sip.call_id", "abc"), Write::delete("sip.call_id")] {
            assert_eq!(err(&map, &[write]), MetadataError::SetOnce { key: "sip.call_id".into(), current });
        }
    }

    #[test]
    fn compare_and_set_checks_the_current_version() {
        let map = map_with(&[("app.a", "x", false)]);
        let current = map.current_version("app.a");
        let cas = |key: &str, expected| Write { expected: Some(expected), ..Write::set(key, "y") };
        check(&map, &[cas("app.a", current)], &limits(), Origin::Controller).unwrap();
        check(&map, &[cas("app.b", Version::ZERO)], &limits(), Origin::Controller).unwrap();
        let stale = err(&map, &[cas("app.a", Version::ZERO)]);
        assert_eq!(stale, MetadataError::VersionMismatch { key: "app.a".into(), expected: Version::ZERO, current });
        assert!(matches!(err(&map, &[cas("app.b", current)]), MetadataError::VersionMismatch { .. }));
    }
}
