//! Worker threads and the rings that connect them.
//!
//! Owns start-up from resolved [`DataplaneSettings`] (sockets in worker order, one pinned thread per configured core, each running the worker loop
//! ([`Worker`], in [`run`]) over the configured backend), the per-worker [`mailbox::Mailbox`] to the control plane, the cross-worker
//! [`handover::HandoverRing`]s, the lock-free [`SharedCounters`] every worker publishes, the pcap
//! [`Recorder`] thread draining the workers' tap rings, the workers' statistics rings
//! ([`telemetry::StatsRing`]), their forwarding-latency histograms ([`latency`]), and shutdown.
//! No `unsafe` here: the drivers own it.
#![forbid(unsafe_code)]

pub mod handover;
pub mod idle;
pub mod latency;
pub mod mailbox;
pub mod notify;
pub mod recorder;
pub mod run;
pub mod settings;
mod start;
pub mod telemetry;
pub mod worker;

pub use latency::{LatencyBuckets, LatencyRecorder, LatencySnapshot, LATENCY_BUCKET_BOUNDS_NS};
pub use recorder::{Recorder, RecorderCounters, RecorderSettings, RecorderStats};
pub use run::{Worker, DRAIN_TIMEOUT};
pub use settings::{BackendKind, DataplaneSettings, TapSettings, WorkerSettings};
pub use start::{Dataplane, StartError, Takeover, WorkerHandle};
pub use telemetry::{
    Due, EventRing, NumberingRecord, NumberingRing, StatsPacer, StatsRecord, StatsRing, UpRing, WorkerEvent,
    WorkerEventKind,
};

pub use crate::core::SharedCounters;

/// Pins the calling thread to `core`; false when the OS refused.
pub fn pin_current_thread(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}
