//! Every object's metadata on this node, keyed by object, with the node's version clock.
//!
//! Owns [`ObjectRef`] (which session, endpoint or stream), [`MetadataEvent`] (what watchers — and later
//! telemetry and webhooks — are told) and [`MetadataStore`]. An object's metadata is made on its first write or
//! watch and dropped with the object ([`MetadataStore::remove_gone`]). Sans-IO: the store never checks that an
//! object exists (the caller does, against the registry, before each call) and never notifies anyone: it
//! answers the events for the caller to publish.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::error::MetadataError;
use super::key::Origin;
use super::log::Change;
use super::map::Entry;
use super::map::MetadataMap;
use super::object::{ObjectMetadata, WatchStart};
use super::version::{Version, VersionClock};
use super::write::{check, Write};
use super::MetadataLimits;

/// Which member of a session an [`ObjectRef`] names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Member {
    /// The session itself.
    Session,
    /// The endpoint of this id.
    Endpoint(String),
    /// The stream of this id.
    Stream(String),
}

/// An object that carries metadata: a session, or an endpoint or a stream of one. Ordered by session first, so
/// everything of a session is one range.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The session.
    pub session_id: String,
    /// Which of its members.
    pub member: Member,
}

/// `session S`, `endpoint S/E`, `stream S/V`.
impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.member {
            Member::Session => write!(f, "session {}", self.session_id),
            Member::Endpoint(id) => write!(f, "endpoint {}/{id}", self.session_id),
            Member::Stream(id) => write!(f, "stream {}/{id}", self.session_id),
        }
    }
}

/// A metadata event: what the object's watchers are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataEvent {
    /// A write was applied.
    Changed {
        /// Whose metadata.
        object: ObjectRef,
        /// What changed.
        change: Arc<Change>,
    },
    /// The object was deleted, and its metadata with it.
    Deleted {
        /// Which.
        object: ObjectRef,
        /// Its last version.
        version: Version,
    },
}

impl MetadataEvent {
    /// The object it is about.
    pub fn object(&self) -> &ObjectRef {
        match self {
            MetadataEvent::Changed { object, .. } | MetadataEvent::Deleted { object, .. } => object,
        }
    }
}

/// What a successful write answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The object's version after it: the write's own when it changed something.
    pub version: Version,
    /// The event to publish; `None` when nothing changed.
    pub event: Option<MetadataEvent>,
}

/// The node's metadata. See the module docs.
#[derive(Debug)]
pub struct MetadataStore {
    limits: MetadataLimits,
    clock: VersionClock,
    objects: BTreeMap<ObjectRef, ObjectMetadata>,
}

impl MetadataStore {
    /// An empty store with `limits`, stamping versions as node `limits.node_id`.
    pub fn new(limits: MetadataLimits) -> MetadataStore {
        MetadataStore { clock: VersionClock::new(limits.node_id), limits, objects: BTreeMap::new() }
    }

    /// Its limits.
    pub fn limits(&self) -> &MetadataLimits {
        &self.limits
    }

    fn object_mut(&mut self, object: &ObjectRef) -> &mut ObjectMetadata {
        let (start, limits) = (self.clock.last(), &self.limits);
        self.objects.entry(object.clone()).or_insert_with(|| ObjectMetadata::new(start, limits))
    }

    /// Checks and applies `writes` to `object` (which exists) at `now_us` (Unix time, microseconds).
    pub fn write(
        &mut self,
        object: &ObjectRef,
        writes: Vec<Write>,
        origin: Origin,
        now_us: u64,
    ) -> Result<WriteOutcome, MetadataError> {
        let start = self.clock.last();
        let limits = &self.limits;
        let state = self.objects.entry(object.clone()).or_insert_with(|| ObjectMetadata::new(start, limits));
        let change = state.write(writes, &self.limits, origin, &mut self.clock, now_us)?;
        let version = state.version();
        let event = change.map(|change| MetadataEvent::Changed { object: object.clone(), change });
        Ok(WriteOutcome { version, event })
    }

    /// Merges `entries` that another node wrote for `object` (which exists); answers the event to publish when they
    /// changed its map (see [`ObjectMetadata::merge_remote`]).
    pub fn merge_remote(&mut self, object: &ObjectRef, entries: Vec<Entry>, now_us: u64) -> Option<MetadataEvent> {
        let start = self.clock.last();
        let limits = &self.limits;
        let state = self.objects.entry(object.clone()).or_insert_with(|| ObjectMetadata::new(start, limits));
        let change = state.merge_remote(entries, &mut self.clock, now_us)?;
        Some(MetadataEvent::Changed { object: object.clone(), change })
    }

    /// Checks the metadata of a create before the object exists: none at all is fine; otherwise as a write to
    /// an empty map, with no compare-and-set (there is nothing to compare with).
    pub fn check_initial(&self, writes: &[Write]) -> Result<(), MetadataError> {
        if writes.is_empty() {
            return Ok(());
        }
        if let Some(w) = writes.iter().find(|w| w.expected.is_some()) {
            return Err(MetadataError::InvalidWrite(format!(
                "key {:?}: expected_version has no meaning when creating the object",
                w.key
            )));
        }
        check(&MetadataMap::new(0), writes, &self.limits, Origin::Controller)
    }

    /// The live entries of `keys` (all when empty) of `object`, and its version.
    pub fn get(&self, object: &ObjectRef, keys: &[String]) -> (Vec<Entry>, Version) {
        match self.objects.get(object) {
            Some(state) => (state.get(keys), state.version()),
            None => (Vec::new(), self.clock.last()),
        }
    }

    /// What a watcher of `object` (which exists) gets first; see [`ObjectMetadata::watch_start`].
    pub fn watch_start(&mut self, object: &ObjectRef, resume_from: Option<Version>) -> WatchStart {
        self.object_mut(object).watch_start(resume_from)
    }

    /// Drops the metadata of the objects of `session_id` for which `exists` is false; answers a
    /// [`MetadataEvent::Deleted`] for each.
    pub fn remove_gone(&mut self, session_id: &str, exists: impl Fn(&ObjectRef) -> bool) -> Vec<MetadataEvent> {
        let start = ObjectRef { session_id: session_id.to_owned(), member: Member::Session };
        let gone: Vec<ObjectRef> = self
            .objects
            .range(start..)
            .take_while(|(o, _)| o.session_id == session_id)
            .filter(|(o, _)| !exists(o))
            .map(|(o, _)| o.clone())
            .collect();
        gone.into_iter()
            .filter_map(|object| {
                let state = self.objects.remove(&object)?;
                Some(MetadataEvent::Deleted { object, version: state.version() })
            })
            .collect()
    }

    /// How many objects hold metadata state.
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// Every object of `session_id` that holds metadata, with all its entries (tombstones included) and its version:
    /// what is kept across a restart.
    pub fn export(&self, session_id: &str) -> Vec<(ObjectRef, Vec<Entry>, Version)> {
        let start = ObjectRef { session_id: session_id.to_owned(), member: Member::Session };
        self.objects
            .range(start..)
            .take_while(|(o, _)| o.session_id == session_id)
            .map(|(o, state)| (o.clone(), state.all(), state.version()))
            .collect()
    }

    /// Puts back what [`MetadataStore::export`] gave for `object`, as it was: its entries and its version (a watcher
    /// resuming from before it gets the whole map: the change log starts empty). The clock moves past every version
    /// it holds, so later writes are newer.
    pub fn restore(&mut self, object: ObjectRef, entries: Vec<Entry>, version: Version) {
        for entry in &entries {
            self.clock.observe(entry.version);
        }
        self.clock.observe(version);
        self.objects.insert(object, ObjectMetadata::restored(entries, version, &self.limits));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(session: &str, member: Member) -> ObjectRef {
        ObjectRef { session_id: session.into(), member }
    }

    fn store() -> MetadataStore {
        MetadataStore::new(MetadataLimits::from_config(&ringfwd_tuning::Config::default()))
    }

    #[test]
    fn versions_increase_across_objects_and_writes_publish_changes() {
        let mut store = store();
        let (a, b) = (at("s", Member::Session), at("s", Member::Stream("v".into())));
        let first = store.write(&a, vec![Write::set("app.x", "1")], Origin::Controller, 10).unwrap();
        let second = store.write(&b, vec![Write::set("app.x", "1")], Origin::Controller, 10).unwrap();
        assert!(second.version > first.version);
        let Some(MetadataEvent::Changed { object, change }) = second.event else { panic!("a change") };
        assert_eq!((object, change.version), (b.clone(), second.version));
        assert_eq!(store.get(&a, &[]).0.len(), 1);
        let nothing = store.write(&a, vec![Write::delete("app.none")], Origin::Controller, 11).unwrap();
        assert_eq!((nothing.version, nothing.event), (first.version, None));
    }

    #[test]
    fn an_exported_session_restores_as_it_was_and_later_writes_are_newer() {
        let mut store = store();
        let (a, b) = (at("s", Member::Session), at("s", Member::Stream("v".into())));
        store.write(&a, vec![Write::set("app.x", "1"), Write::set("app.y", "2")], Origin::Controller, 10).unwrap();
        store.write(&a, vec![Write::delete("app.y")], Origin::Controller, 11).unwrap();
        store.write(&b, vec![Write { set_once: true, ..Write::set("app.z", "3") }], Origin::Controller, 12).unwrap();
        store.write(&at("t", Member::Session), vec![Write::set("app.o", "4")], Origin::Controller, 13).unwrap();
        let exported = store.export("s");
        assert_eq!(exported.len(), 2, "only session s's objects");
        let mut again = super::tests::store();
        for (object, entries, version) in exported.clone() {
            again.restore(object, entries, version);
        }
        assert_eq!(again.export("s"), exported, "tombstones and versions included");
        assert_eq!(again.get(&a, &[]), store.get(&a, &[]));
        let set_once = again.write(&b, vec![Write::set("app.z", "changed")], Origin::Controller, 1);
        assert!(set_once.is_err(), "set-once survives");
        let later = again.write(&a, vec![Write::set("app.x", "9")], Origin::Controller, 1).unwrap();
        assert!(later.version > store.get(&b, &[]).1, "a write after the restore is newer than all before");
    }

    #[test]
    fn initial_metadata_has_no_compare_and_set() {
        let store = store();
        store.check_initial(&[Write::set("sip.call_id", "x")]).unwrap();
        store.check_initial(&[]).expect("a create without metadata");
        let cas = Write { expected: Some(Version::ZERO), ..Write::set("sip.call_id", "x") };
        assert!(store.check_initial(&[cas]).unwrap_err().to_string().contains("expected_version"));
        assert!(matches!(store.check_initial(&[Write::set("bad", "x")]), Err(MetadataError::InvalidKey { .. })));
    }

    #[test]
    fn removing_a_session_member_drops_exactly_the_gone_objects() {
        let mut store = store();
        let objects = [
            at("s", Member::Session),
            at("s", Member::Endpoint("e".into())),
            at("s", Member::Stream("v".into())),
            at("t", Member::Session),
            at("r", Member::Session),
        ];
        for object in &objects {
            store.write(object, vec![Write::set("app.x", "1")], Origin::Controller, 10).unwrap();
        }
        let gone = store.remove_gone("s", |o| o.member == Member::Session);
        let gone: Vec<String> = gone.iter().map(|e| e.object().to_string()).collect();
        assert_eq!(gone, ["endpoint s/e", "stream s/v"]);
        assert_eq!(store.objects(), 3);
        let gone = store.remove_gone("s", |_| false);
        assert!(matches!(&gone[..], [MetadataEvent::Deleted { object, .. }] if object == &objects[0]));
        assert_eq!(store.objects(), 2, "other sessions keep theirs");
    }
}
