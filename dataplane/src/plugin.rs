//! What a native plugin's author uses: the one module a program that links ringfwd imports to write its own
//! interceptor and register it by name.
//!
//! Owns nothing but the list: the [`Interceptor`] trait and what its methods see and return (the packet's typed
//! attributes, the RTCP compound view, the [`Context`] through which it emits packets, schedules its timer and reads
//! its stream's [`Metadata`], the
//! [`Verdict`] and its drop reasons, the statistics [`Snapshot`]), what an instance is bound to ([`StreamInfo`],
//! [`SubscriptionInfo`]), and the registry [`Plugins`]. A plugin written against this module can not reach the
//! forwarding tables, the sockets or the buffers. Must never grow logic of its own.
//!
//! A plugin runs inline on the worker, on the hot path, under the same rules as a built-in: per call it must not
//! block, lock, allocate, log or read a clock (the context hands in `now`). See `controlplane/examples/` for a
//! complete program.
#![forbid(unsafe_code)]

pub use crate::core::interceptor::plugin::{
    EgressBinder, IngressBinder, MAX_PLUGINS, MAX_PLUGINS_PER_CHAIN, MAX_PLUGIN_NAME_BYTES,
};
pub use crate::core::interceptor::spec::{NtpEpoch, StreamInfo, SubscriptionInfo};
pub use crate::core::interceptor::{
    Context, Interceptor, Metadata, PluginError, Plugins, RtcpFrom, RtpAttrs, Scope, Snapshot, Verdict,
    MAX_METADATA_BYTES,
};
pub use crate::core::packet::{RtcpCompound, RtcpPacketRef, RtcpType};
pub use crate::core::wire::{RtpTimestamp, SeqNo, Ssrc};
pub use crate::core::DropReason;
