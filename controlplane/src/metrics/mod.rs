//! The Prometheus endpoint (`[metrics]`): an HTTP server of its own answering `GET /metrics` in the
//! Prometheus text format 0.0.4.
//!
//! - [`exposition`]: the text format.
//! - [`render`]: what is exported ([`Sources`]) and the metric names.
//! - [`grpc`]: the tower layer on the control API that counts its requests by method and code.
//! - [`server`]: the HTTP server and its bounds.
//!
//! Every value is read at scrape time from atomics the workers publish (counters, latency histograms) or
//! from the lengths of bounded rings; nothing here ever makes a worker wait.

pub mod cluster;
pub mod events;
pub mod exposition;
pub mod grpc;
pub mod render;
pub mod server;

pub use grpc::{ApiMetrics, ApiMetricsLayer};
pub use render::{ExportMetrics, Sources};
pub use server::serve;
