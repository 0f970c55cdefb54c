//! Persistent state: what the API accepted survives a crash, a restart and an upgrade.
//!
//! Owns the state store ([`StateStore`], one redb file `state.redb` in the state directory), what it keeps of each
//! subscriber's numbering ([`numbering`]) and the restore at start-up ([`restore`]).
//!
//! # What is kept, and when
//! - Every session created through the API, with its endpoints (and the address a latching one latched to), streams
//!   (and the SSRC a learning one learned) and subscriptions (as updated: stream, out SSRC, paused, payload-type map,
//!   interceptors, RTX), as a [`SessionState`](crate::registry::SessionState): written, with an fsync, right after
//!   each commit that changed the session and before the API call answers (see `api::apply`). The config's own
//!   `[[sessions]]` are not kept: the config is their source, and they are installed from it at each start.
//! - Every WebAssembly plugin the API loaded (`LoadPlugin`): its settings, and its module when it was given as
//!   bytes (one given by path is read from the path again), written when it is loaded and forgotten when it is
//!   unloaded; loaded again at start-up before the sessions, so that the chains naming it are restored.
//! - What each subscription last sent (sequence number, timestamp, when, and its packet rate): the workers publish
//!   it every `state.numbering_interval_ms` and [`numbering::keep`] writes it, so that a restored subscription
//!   continues its subscriber's numbering with no reuse: its first packet goes out `skip` sequence numbers past the
//!   last kept one (see [`numbering::Kept::continuation`]), its timestamp advanced by the real time since. A stop
//!   (SIGTERM) or a takeover keeps, after the workers stopped, the exact numbering: the next daemon goes on by the same
//!   offsets, as if nothing happened but the packets that arrived meanwhile.
//!
//! # Why redb
//! An embedded, crash-safe store (copy-on-write B-trees, checksummed commits, an fsync per durable commit) in one
//! file: a torn write after a crash is never read back, there is no journal to replay or compact by hand, and no
//! server to run. A whole session is one value: a change never reaches beyond its session, so one write per commit
//! keeps each session consistent; its cost grows with the session's size (a few KB for a call, ~200 B per object).
//! The file is locked while the daemon runs: a second daemon on the same state directory fails to start.
//!
//! This module must never decide what a request may do: restoring goes through the registry's planners, by the
//! same rules as the API's requests.

pub mod numbering;
pub mod restore;
mod store;

pub use store::{KeptMetadata, KeptPlugin, KeptSession, Loaded, StateError, StateStore, STATE_FILE};
