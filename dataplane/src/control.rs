//! The control plane's one door into the data plane.
//!
//! Owns the list of what a control plane (the daemon, the config's converter, a user's own binary) may use:
//! start-up settings and the running [`Dataplane`], the [`Command`]s a worker applies and the ids they name,
//! the mailbox and rings a worker is reached and heard through, counters, statistics, numbering and latency
//! snapshots, the events a worker raises, and the interceptor specs a subscription or stream is built with.
//! Everything here is a re-export: the types live with the code that owns them, and a control plane that
//! imports only from this module can not reach into the forwarding core's tables or a backend's buffers.
//! Must never grow logic of its own.
#![forbid(unsafe_code)]

// Start-up: resolved settings in, a running data plane out.
pub use crate::core::ForwarderLimits;
pub use crate::driver::probe::io_uring_features;
pub use crate::runtime::idle::IdleStrategy;
pub use crate::runtime::pin_current_thread;
pub use crate::runtime::{
    BackendKind, Dataplane, DataplaneSettings, RecorderSettings, StartError, Takeover, TapSettings, WorkerHandle,
    WorkerSettings,
};

// Commands, the ids they name, and what a command may carry.
pub use crate::core::command::MAX_CLOCK_RATE_HZ;
pub use crate::core::packet::sendable_payload_type;
pub use crate::core::{
    owner_of, Command, CommandError, Numbering, Rewrite, SourcePolicy, StreamId, SubscriptionId,
    IDENTITY_PAYLOAD_TYPE_MAP, NO_DESTINATION, UNKNOWN_SSRCS_PER_ROUND,
};
pub use crate::runtime::mailbox::{Ack, Envelope, Mailbox};
pub use crate::runtime::notify::Notifier;

// Interceptors: the built-ins by name, the registered plugins, and the specs a chain is built from.
pub use crate::core::interceptor::attach::{parse as parse_attachment, AttachError};
pub use crate::core::interceptor::plugin::{
    check_name as check_plugin_name, MAX_PLUGINS, MAX_PLUGINS_PER_CHAIN, MAX_PLUGIN_NAME_BYTES, MAX_PLUGIN_SLOTS,
};
pub use crate::core::interceptor::spec::{
    EgressSpec, IngressSpec, KeyframeThrottleParams, NackCacheParams, NackGeneratorParams, PayloadTypeFilterParams,
    RateLimitParams, ReportParams, RtxParams, StatsParams, TapParams, TwccParams,
};
pub use crate::core::interceptor::{
    Attach, AttachMode, Attachment, InterceptorKind, Metadata, MetadataOf, PluginError, PluginId, PluginList, Plugins,
    Snapshot, MAX_METADATA_BYTES,
};

// Counters, statistics, numbering, latency and events: what a worker publishes.
pub use crate::core::event::PluginFault;
pub use crate::core::{CounterKind, Counters, DropReason, StatsKey, COUNTERS};
pub use crate::runtime::handover::HandoverRing;
pub use crate::runtime::{
    EventRing, LatencyBuckets, LatencyRecorder, NumberingRecord, NumberingRing, RecorderCounters, SharedCounters,
    StatsRecord, StatsRing, WorkerEvent, WorkerEventKind, LATENCY_BUCKET_BOUNDS_NS,
};
