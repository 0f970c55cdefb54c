//! The `[telemetry]` section: how the workers' statistics reach the control plane.
//!
//! Owns [`Telemetry`]. Values come from [`crate::defaults`]; ranges are checked in
//! [`crate::validate`]. Must never hold a literal default nor check a range.

use serde::{Deserialize, Serialize};

use crate::defaults;

/// `[telemetry]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// How often each worker publishes the statistics of its streams and subscriptions, in milliseconds.
    pub stats_interval_ms: u32,
    /// How long the statistics of a stream or subscription that stopped reporting (because it ended)
    /// are kept before they are freed, in milliseconds.
    pub stats_grace_ms: u32,
    /// A stream that received no packet for this long is reported inactive (a `stream inactive` event;
    /// its next packet reports it started again), in milliseconds.
    pub inactive_after_ms: u32,
}

impl Default for Telemetry {
    fn default() -> Telemetry {
        Telemetry {
            stats_interval_ms: defaults::STATS_INTERVAL_MS,
            stats_grace_ms: defaults::STATS_GRACE_MS,
            inactive_after_ms: defaults::INACTIVE_AFTER_MS,
        }
    }
}
