//! Key/value metadata that controllers attach to sessions, endpoints and streams (a SIP call id, a trunk id, a
//! user id, a layout hint). ringfwd stores it and shows it to every watcher; it never acts on it itself (a stream's
//! is also handed to its worker, where plugins read it: see `api::metadata`).
//!
//! Pure and sans-IO (no tokio, no tonic, no clock: time is passed in). The API layer checks that an object
//! exists, calls the [`MetadataStore`] and publishes the [`MetadataEvent`]s it answers.
//!
//! # Rules
//! - **Keys** ([`key`]): two or more `.`-separated segments of `[a-z0-9_-]` (`sip.call_id`, `app.user`), at most
//!   `metadata.max_key_bytes`; the prefix `ringfwd.` is written only by ringfwd ([`Origin::Node`]).
//! - **Versions** ([`version`]): `(wall_us, counter, node_id)`, totally ordered; this node's [`VersionClock`]
//!   stamps strictly increasing versions. All keys of one write share its version.
//! - **Merge** ([`map`]): per key the greatest entry of [`merge_order`] wins: last write wins, a set-once
//!   entry beats others and the first set-once write stays. Commutative, associative, idempotent (see
//!   `proptests`). Deletions are tombstones so a late older write cannot come back; at most
//!   `metadata.max_tombstones_per_object` per object, the oldest forgotten first, raising a floor below which
//!   late writes to absent keys are ignored.
//! - **Writes** ([`write`]): all or nothing; a bad key or a too long value is refused naming the key, the live
//!   bytes of an object (keys plus values) are at most `metadata.max_object_bytes`, a set-once key is never
//!   written again, and an expected version makes a write compare-and-set against the key's current version
//!   ([`Version::ZERO`] = not set; a deleted key is not set).
//! - **Watch** ([`log`], [`object`]): each object keeps its recent changes up to `metadata.log_retention_bytes`.
//!   A watcher resuming from version v gets exactly the changes after v while they are all kept; otherwise (no
//!   v, v older than the log, or a v the object never reached) it gets the whole map again.

pub mod error;
pub mod key;
pub mod log;
pub mod map;
pub mod object;
pub mod store;
pub mod version;
pub mod write;

#[cfg(test)]
mod proptests;

pub use error::MetadataError;
pub use key::{check_key, Origin, RESERVED_PREFIX};
pub use log::{Change, ChangeLog};
pub use map::{merge_order, Entry, MetadataMap};
pub use object::{ObjectMetadata, WatchStart};
pub use store::{Member, MetadataEvent, MetadataStore, ObjectRef, WriteOutcome};
pub use version::{ParseVersionError, Version, VersionClock};
pub use write::Write;

use ringfwd_tuning::Config;

/// The bounds of the metadata service, from the config's `[metadata]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataLimits {
    /// `metadata.node_id`: this node's id in its versions.
    pub node_id: u32,
    /// `metadata.max_key_bytes`.
    pub max_key_bytes: usize,
    /// `metadata.max_value_bytes`.
    pub max_value_bytes: usize,
    /// `metadata.max_object_bytes`: live keys plus values of one object.
    pub max_object_bytes: usize,
    /// `metadata.max_tombstones_per_object`.
    pub max_tombstones_per_object: usize,
    /// `metadata.log_retention_bytes`: recent changes kept per object.
    pub log_retention_bytes: usize,
    /// `metadata.watch_buffer_events`: how far a watcher may fall behind.
    pub watch_buffer_events: usize,
    /// `metadata.max_watchers`: watchers open at once.
    pub max_watchers: usize,
}

impl MetadataLimits {
    /// The limits a validated `config` sets.
    pub fn from_config(config: &Config) -> MetadataLimits {
        let m = &config.metadata;
        let size = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        MetadataLimits {
            node_id: m.node_id,
            max_key_bytes: size(m.max_key_bytes),
            max_value_bytes: size(m.max_value_bytes),
            max_object_bytes: size(m.max_object_bytes),
            max_tombstones_per_object: size(m.max_tombstones_per_object),
            log_retention_bytes: size(m.log_retention_bytes),
            watch_buffer_events: size(m.watch_buffer_events),
            max_watchers: size(m.max_watchers),
        }
    }
}
