//! Target `metadata`: metadata keys, values and versions from the wire, through the conversion layer into the
//! metadata store.
//!
//! A sequence of SetMetadata and DeleteMetadata requests (built from structured fields, or any protobuf bytes
//! decoded as the API decodes them), targets of every shape, and watches resuming from any version seen, on
//! small limits. A model of each object's live keys must equal what the store answers after every request: an
//! accepted write applies all of its keys, a refused one none, and a refusal names what the model says is wrong
//! (the key, the value's size, the version it expected and the current one, the limit) without carrying a
//! value's content. Keys are judged as an independent reading of the documented syntax judges them, and a
//! version's text form reads back to the same version.

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use prost::Message;
use ringfwd::api::metadata_wire;
use ringfwd::metadata::{
    check_key, MetadataError, MetadataLimits, MetadataStore, ObjectRef, Origin, Version, WatchStart, RESERVED_PREFIX,
};
use ringfwd_proto::v1;

const LIMITS: MetadataLimits = MetadataLimits {
    node_id: 3,
    max_key_bytes: 24,
    max_value_bytes: 16,
    max_object_bytes: 96,
    max_tombstones_per_object: 3,
    log_retention_bytes: 64,
    watch_buffer_events: 8,
    max_watchers: 4,
};

/// Keys that pass, are reserved, or are near misses; any other text comes from [`Key::Text`].
const KEYS: [&str; 8] = ["app.a", "app.b", "sip.call_id", "x.y-z_1", "ringfwd.node", "App.a", "app", "a..b"];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    ops: Vec<Op<'a>>,
    text: String,
    version: (u64, u64, u32),
}

#[derive(Arbitrary, Debug)]
enum Op<'a> {
    Set {
        object: Object,
        writes: Vec<(Key, String, bool, Option<Expected>)>,
        later_us: u16,
    },
    Delete {
        object: Object,
        deletions: Vec<(Key, Option<Expected>)>,
    },
    /// Protobuf bytes as SetMetadataRequest (or DeleteMetadataRequest) bodies.
    Raw {
        delete: bool,
        bytes: &'a [u8],
    },
    Watch {
        object: Object,
        resume: Option<u8>,
    },
}

/// A target: a session, one of its endpoints or streams, or both (refused).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Object {
    Session(bool),
    Endpoint(bool),
    Stream(bool),
    Both,
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Expected {
    Zero,
    /// A version this run has seen (by index), or any.
    Seen(u8),
    Any(u64, u64, u32),
}

/// The model of one object: live keys with their value, set-once flag and version.
type Model = BTreeMap<String, (String, bool, Version)>;

struct State {
    store: MetadataStore,
    models: BTreeMap<ObjectRef, Model>,
    versions: Vec<Version>,
    now_us: u64,
}

/// The input `data` decodes to, as text.
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", crate::structured::<Input<'_>>(data))
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some(input) = crate::structured::<Input>(data) else {
        return;
    };
    check_text_forms(&input.text, input.version);
    let mut state = State {
        store: MetadataStore::new(LIMITS),
        models: BTreeMap::new(),
        versions: vec![Version::ZERO],
        now_us: 1_700_000_000_000_000,
    };
    for op in input.ops.iter().take(256) {
        match op {
            Op::Set { object, writes, later_us } => {
                state.now_us += u64::from(*later_us);
                let writes = writes
                    .iter()
                    .map(|(key, value, set_once, expected)| v1::MetadataWrite {
                        key: key_text(key),
                        value: value.clone(),
                        set_once: *set_once,
                        expected_version: expected.as_ref().map(|e| state.expected(e)),
                    })
                    .collect();
                state.request(target(*object), metadata_wire::writes(writes));
            }
            Op::Delete { object, deletions } => {
                let deletions = deletions
                    .iter()
                    .map(|(key, expected)| v1::MetadataDeletion {
                        key: key_text(key),
                        expected_version: expected.as_ref().map(|e| state.expected(e)),
                    })
                    .collect();
                state.request(target(*object), metadata_wire::deletions(deletions));
            }
            Op::Raw { delete: false, bytes } => {
                if let Ok(r) = v1::SetMetadataRequest::decode(*bytes) {
                    state.request(r.target, metadata_wire::writes(r.writes));
                }
            }
            Op::Raw { delete: true, bytes } => {
                if let Ok(r) = v1::DeleteMetadataRequest::decode(*bytes) {
                    state.request(r.target, metadata_wire::deletions(r.deletions));
                }
            }
            Op::Watch { object, resume } => state.watch(target(*object), *resume),
        }
    }
}

fn key_text(key: &Key) -> String {
    match key {
        Key::Known(i) => KEYS[usize::from(*i) % KEYS.len()].to_owned(),
        Key::Text(text) => text.clone(),
    }
}

fn target(object: Object) -> Option<v1::MetadataTarget> {
    let session = |other: bool| if other { "s2" } else { "s1" }.to_owned();
    let (session_id, endpoint_id, stream_id) = match object {
        Object::Session(other) => (session(other), "", ""),
        Object::Endpoint(other) => (session(false), if other { "e2" } else { "e1" }, ""),
        Object::Stream(other) => (session(false), "", if other { "v2" } else { "v1" }),
        Object::Both => (session(false), "e1", "v1"),
    };
    Some(v1::MetadataTarget { session_id, endpoint_id: endpoint_id.to_owned(), stream_id: stream_id.to_owned() })
}

/// The documented key syntax, read independently of `check_key`.
fn valid_key(key: &str, origin: Origin) -> bool {
    let segment_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    key.len() <= LIMITS.max_key_bytes
        && key.split('.').count() >= 2
        && key.split('.').all(segment_ok)
        && (origin == Origin::Node || !key.starts_with(RESERVED_PREFIX))
}

fn check_text_forms(text: &str, (wall_us, counter, node_id): (u64, u64, u32)) {
    for origin in [Origin::Controller, Origin::Node] {
        let judged = check_key(text, LIMITS.max_key_bytes, origin);
        assert_eq!(judged.is_ok(), valid_key(text, origin), "key {text:?} judged {judged:?}");
        if let Err(MetadataError::InvalidKey { key, reason }) = &judged {
            assert!(key == text && !reason.is_empty());
        }
    }
    if let Ok(version) = text.parse::<Version>() {
        assert_eq!(version.to_string().parse::<Version>(), Ok(version));
    }
    let version = Version { wall_us, counter, node_id };
    assert_eq!(version.to_string().parse::<Version>(), Ok(version));
}

impl State {
    fn expected(&self, expected: &Expected) -> v1::MetadataVersion {
        let v = match *expected {
            Expected::Zero => Version::ZERO,
            Expected::Seen(i) => self.versions[usize::from(i) % self.versions.len()],
            Expected::Any(wall_us, counter, node_id) => Version { wall_us, counter, node_id },
        };
        metadata_wire::version_to_wire(v)
    }

    fn request(&mut self, target: Option<v1::MetadataTarget>, writes: Vec<ringfwd::metadata::Write>) {
        let object = match metadata_wire::target(target) {
            Ok(object) => object,
            Err(status) => {
                assert!(status.message().contains("target"), "{}", status.message());
                return;
            }
        };
        let model = self.models.get(&object).cloned().unwrap_or_default();
        match self.store.write(&object, writes.clone(), Origin::Controller, self.now_us) {
            Ok(outcome) => {
                let mut next = model.clone();
                if let Some(event) = &outcome.event {
                    let ringfwd::metadata::MetadataEvent::Changed { change, .. } = event else {
                        panic!("a write answers a change: {event:?}");
                    };
                    assert!(self.versions.iter().all(|&v| v < change.version), "versions only go up");
                    self.versions.push(change.version);
                    for write in &writes {
                        match &write.value {
                            Some(value) => {
                                next.insert(write.key.clone(), (value.clone(), write.set_once, change.version))
                            }
                            None => next.remove(&write.key),
                        };
                    }
                } else {
                    assert!(writes.iter().all(|w| w.value.is_none() && !model.contains_key(&w.key)), "no change");
                }
                let bytes: usize = next.iter().map(|(k, (v, _, _))| k.len() + v.len()).sum();
                assert!(bytes <= LIMITS.max_object_bytes, "{bytes} live bytes");
                self.models.insert(object.clone(), next);
            }
            Err(error) => check_refusal(&model, &writes, &error),
        }
        self.compare(&object);
    }

    /// The store answers what the model holds.
    fn compare(&self, object: &ObjectRef) {
        let (entries, _) = self.store.get(object, &[]);
        let stored: Vec<(String, String, bool, Version)> = entries
            .into_iter()
            .map(|e| (e.key, e.value.expect("live entries have values"), e.set_once, e.version))
            .collect();
        let modelled: Vec<(String, String, bool, Version)> = self
            .models
            .get(object)
            .into_iter()
            .flatten()
            .map(|(k, (v, once, version))| (k.clone(), v.clone(), *once, *version))
            .collect();
        assert_eq!(stored, modelled, "metadata of {object}");
    }

    fn watch(&mut self, target: Option<v1::MetadataTarget>, resume: Option<u8>) {
        let Ok(object) = metadata_wire::target(target) else {
            return;
        };
        let resume_from = resume.map(|i| self.versions[usize::from(i) % self.versions.len()]);
        match self.store.watch_start(&object, resume_from) {
            WatchStart::Snapshot { entries, .. } => {
                let keys: Vec<String> = entries.into_iter().map(|e| e.key).collect();
                let model: Vec<String> =
                    self.models.get(&object).into_iter().flatten().map(|(k, _)| k.clone()).collect();
                assert_eq!(keys, model, "a snapshot is the live map");
            }
            WatchStart::Replay { changes, version } => {
                let from = resume_from.expect("a replay resumes from a version");
                let mut last = from;
                for change in &changes {
                    assert!(change.version > last && change.version <= version, "changes after {from}, in order");
                    last = change.version;
                }
            }
        }
        self.compare(&object);
    }
}

/// A refusal names what is wrong, and never a value's content.
fn check_refusal(model: &Model, writes: &[ringfwd::metadata::Write], error: &MetadataError) {
    let named = |key: &str| writes.iter().any(|w| w.key == key);
    match error {
        MetadataError::InvalidKey { key, .. } => assert!(named(key) && !valid_key(key, Origin::Controller), "{error}"),
        MetadataError::ValueTooLong { key, bytes, limit } => {
            assert!(
                *bytes > *limit
                    && writes.iter().any(|w| w.key == *key && w.value.as_ref().map(String::len) == Some(*bytes))
            );
        }
        MetadataError::InvalidWrite(_) => {
            let mut keys: Vec<&str> = writes.iter().map(|w| w.key.as_str()).collect();
            keys.sort_unstable();
            let twice = keys.windows(2).any(|w| w[0] == w[1]);
            let once_delete = writes.iter().any(|w| w.set_once && w.value.is_none());
            assert!(writes.is_empty() || twice || once_delete, "{error}");
        }
        MetadataError::ObjectFull { limit, needed } => assert!(needed > limit && *limit == LIMITS.max_object_bytes),
        MetadataError::VersionMismatch { key, expected, current } => {
            let modelled = model.get(key).map_or(Version::ZERO, |(_, _, v)| *v);
            // A deleted key is not set: its current version is ZERO.
            assert!(named(key) && expected != current && *current == modelled, "{error}");
        }
        MetadataError::SetOnce { key, .. } => assert!(model.get(key).is_some_and(|(_, once, _)| *once), "{error}"),
    }
    let message = error.to_string();
    for value in writes.iter().filter_map(|w| w.value.as_deref()) {
        // A value marked by a character no message template has (and no key carries) must not appear.
        if value.len() >= 8 && value.contains('~') && !writes.iter().any(|w| w.key.contains(value)) {
            assert!(!message.contains(value), "the refusal carries a value: {message}");
        }
    }
}
