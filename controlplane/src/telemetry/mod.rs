//! Telemetry in the control plane: the statistics the workers publish, kept for the API.
//!
//! Owns [`store`] (the bounded, pure table of the latest snapshot per stream and subscription) and
//! [`collect`] (the task that drains the workers' statistics rings into it). Never runs on a worker
//! core and never makes a worker wait: the rings are bounded and the workers drop when they are full.

pub mod collect;
pub mod store;

pub use store::{StatsEntry, StatsStore};
