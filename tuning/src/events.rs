//! The `[events]` section: the lifecycle event bus of the control plane.
//!
//! Owns [`Events`]: how many events are kept for watchers that resume, how far one watcher may fall
//! behind, how many watchers may be open, and how often the workers' event rings are drained. Values come
//! from [`crate::defaults`]; ranges are checked in [`crate::validate`]. Must never hold a literal default
//! nor check a range.

use serde::{Deserialize, Serialize};

use crate::defaults;

/// `[events]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Events {
    /// The newest events kept so a watcher can resume from a sequence number (older ones are forgotten).
    pub history: u32,
    /// Events one watcher may have waiting to be sent; a watcher that falls further behind is cut off with
    /// RESOURCE_EXHAUSTED naming the last sequence number it was sent.
    pub watch_buffer: u32,
    /// Event watchers open at once; one more is refused with RESOURCE_EXHAUSTED.
    pub max_watchers: u32,
    /// How often the workers' event rings are drained into the bus, in milliseconds.
    pub worker_poll_ms: u32,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            history: defaults::EVENTS_HISTORY,
            watch_buffer: defaults::EVENTS_WATCH_BUFFER,
            max_watchers: defaults::EVENTS_MAX_WATCHERS,
            worker_poll_ms: defaults::EVENTS_WORKER_POLL_MS,
        }
    }
}
