//! Between the wire's metadata messages and the pure [`crate::metadata`] types.
//!
//! Owns the translation of targets, writes, deletions, versions, entries and events, and the refusal of a
//! malformed target (`INVALID_ARGUMENT` naming the field). Must never decide whether a key or a value is
//! acceptable: that is the metadata module's.

use ringfwd_proto::v1;
use tonic::Status;

use super::status::invalid;
use crate::metadata::{Change, Entry, Member, ObjectRef, Version, WatchStart, Write};

/// The object a request names.
pub fn target(t: Option<v1::MetadataTarget>) -> Result<ObjectRef, Status> {
    let t = t.ok_or_else(|| invalid("target", "missing: name a session (and an endpoint or a stream of it)"))?;
    let member = match (t.endpoint_id.is_empty(), t.stream_id.is_empty()) {
        (true, true) => Member::Session,
        (false, true) => Member::Endpoint(t.endpoint_id),
        (true, false) => Member::Stream(t.stream_id),
        (false, false) => return Err(invalid("target", "set at most one of endpoint_id and stream_id")),
    };
    Ok(ObjectRef { session_id: t.session_id, member })
}

/// The object on the wire.
pub fn target_to_wire(object: &ObjectRef) -> v1::MetadataTarget {
    let (mut endpoint_id, mut stream_id) = (String::new(), String::new());
    match &object.member {
        Member::Session => {}
        Member::Endpoint(id) => endpoint_id.clone_from(id),
        Member::Stream(id) => stream_id.clone_from(id),
    }
    v1::MetadataTarget { session_id: object.session_id.clone(), endpoint_id, stream_id }
}

/// A version from the wire; unset is [`Version::ZERO`].
pub fn version(v: Option<v1::MetadataVersion>) -> Version {
    v.map_or(Version::ZERO, |v| Version { wall_us: v.wall_us, counter: v.counter, node_id: v.node_id })
}

/// A version on the wire.
pub fn version_to_wire(v: Version) -> v1::MetadataVersion {
    v1::MetadataVersion { wall_us: v.wall_us, counter: v.counter, node_id: v.node_id }
}

/// The writes of a SetMetadata or a create.
pub fn writes(list: Vec<v1::MetadataWrite>) -> Vec<Write> {
    list.into_iter()
        .map(|w| Write {
            key: w.key,
            value: Some(w.value),
            set_once: w.set_once,
            expected: w.expected_version.map(|v| version(Some(v))),
        })
        .collect()
}

/// The deletions of a DeleteMetadata.
pub fn deletions(list: Vec<v1::MetadataDeletion>) -> Vec<Write> {
    list.into_iter()
        .map(|d| Write {
            key: d.key,
            value: None,
            set_once: false,
            expected: d.expected_version.map(|v| version(Some(v))),
        })
        .collect()
}

/// An entry on the wire (a tombstone as `deleted`).
pub fn entry(e: &Entry) -> v1::MetadataEntry {
    v1::MetadataEntry {
        key: e.key.clone(),
        value: e.value.clone().unwrap_or_default(),
        version: Some(version_to_wire(e.version)),
        set_once: e.set_once,
        deleted: e.value.is_none(),
    }
}

fn event(object: &ObjectRef, version: Version, kind: v1::metadata_event::Kind) -> v1::MetadataEvent {
    v1::MetadataEvent {
        target: Some(target_to_wire(object)),
        version: Some(version_to_wire(version)),
        kind: Some(kind),
    }
}

/// A change as an event.
pub fn change_event(object: &ObjectRef, change: &Change) -> v1::MetadataEvent {
    let entries = change.entries.iter().map(entry).collect();
    event(object, change.version, v1::metadata_event::Kind::Change(v1::MetadataChange { entries }))
}

/// The deletion of `object` as an event.
pub fn deleted_event(object: &ObjectRef, version: Version) -> v1::MetadataEvent {
    event(object, version, v1::metadata_event::Kind::Deleted(v1::MetadataObjectDeleted {}))
}

/// The first events of a watch.
pub fn start_events(object: &ObjectRef, start: &WatchStart) -> Vec<v1::MetadataEvent> {
    match start {
        WatchStart::Snapshot { entries, version } => {
            let snapshot = v1::MetadataSnapshot { entries: entries.iter().map(entry).collect() };
            vec![event(object, *version, v1::metadata_event::Kind::Snapshot(snapshot))]
        }
        WatchStart::Replay { changes, .. } => changes.iter().map(|c| change_event(object, c)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_one_object_or_are_refused() {
        let t = |e: &str, s: &str| {
            target(Some(v1::MetadataTarget { session_id: "s".into(), endpoint_id: e.into(), stream_id: s.into() }))
        };
        assert_eq!(t("", "").unwrap().member, Member::Session);
        assert_eq!(t("e", "").unwrap().member, Member::Endpoint("e".into()));
        let object = t("", "v").unwrap();
        assert_eq!(object.member, Member::Stream("v".into()));
        assert_eq!(target(Some(target_to_wire(&object))).unwrap(), object);
        let e = t("e", "v").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("target"));
        assert!(target(None).unwrap_err().message().contains("target"));
    }

    #[test]
    fn deletions_become_tombstones_and_versions_round_trip() {
        let v = Version { wall_us: 9, counter: 2, node_id: 3 };
        assert_eq!(version(Some(version_to_wire(v))), v);
        assert_eq!(version(None), Version::ZERO);
        let d = deletions(vec![v1::MetadataDeletion { key: "app.a".into(), expected_version: None }]);
        assert_eq!(d, [Write::delete("app.a")]);
        let wire = entry(&Entry { key: "app.a".into(), version: v, value: None, set_once: false });
        assert!(wire.deleted && wire.value.is_empty());
    }
}
