//! The `[metrics]` section: the Prometheus text endpoint.
//!
//! Owns [`Metrics`]. Values come from [`crate::defaults`]; ranges are checked in
//! [`crate::validate`]. Must never hold a literal default nor check a range.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::defaults;

/// `[metrics]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Whether the daemon serves `GET /metrics` (Prometheus text format) at all.
    pub enabled: bool,
    /// TCP address of the HTTP endpoint; port 0 picks a free port (tests). It has no authentication:
    /// the default is loopback; an address other hosts reach should be firewalled to the scrapers. When it
    /// cannot be bound, the daemon logs an error and forwards without the endpoint.
    pub listen: SocketAddr,
    /// Scrape connections served at once; more wait in the kernel's accept queue.
    pub max_connections: u32,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            enabled: defaults::METRICS_ENABLED,
            listen: defaults::METRICS_LISTEN,
            max_connections: defaults::METRICS_MAX_CONNECTIONS,
        }
    }
}
