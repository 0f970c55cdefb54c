//! The interceptor framework: per-stream and per-subscription chains of packet processors that run
//! inline in the worker, on the hot path.
//!
//! Owns the [`Interceptor`] trait, the [`Verdict`] an interceptor returns, where an RTCP packet came
//! from ([`RtcpFrom`]), the typed per-packet attributes ([`RtpAttrs`]), the [`Context`] through which an
//! interceptor emits packets and schedules its timer, the [`Chain`] that runs instances in order, the
//! plain-data [`spec`] that says which built-ins run with which parameters, the [`builtin`]
//! interceptors, and the registry of native [`plugin`]s (interceptors a program linking ringfwd registers by name).
//!
//! # The two chains and their order
//! Every stream has one **ingress** chain; it sees the publisher's RTP and RTCP, the RTCP feedback of
//! the stream's subscribers (translated to the publisher's SSRC and sequence numbers), and its timer.
//! Every subscription has one **egress** chain; it sees each RTP copy after the subscription's header
//! rewrite (out SSRC, out sequence numbers and timestamps), the publisher's RTCP as rewritten for this
//! subscriber, the subscriber's own RTCP as received, and its timer. The members always run in this
//! order (those not configured are simply absent):
//!
//! Ingress, per stream:
//! 1. `rate_limit` — first, so packets over the source's budget cost nothing further and are not
//!    counted as received media by the stats.
//! 2. `stats` — counts what the publisher actually delivered (loss, jitter, reordering) before anything
//!    else can drop or consume a packet.
//! 3. `twcc` — records transport-wide arrival times of every admitted packet, as the sender's
//!    congestion controller expects, including packets later filtered.
//! 4. `nack_generator` — sees the same admitted packets as stats, to find the gaps to ask for.
//! 5. `keyframe_throttle` — merges subscribers' PLI/FIR before the NACK cache (order only matters for
//!    feedback; neither touches RTP).
//! 6. plugins, in the order the chain names them ([`plugin`]) — after everything that describes what the
//!    publisher sent, before everything that must see only what is forwarded.
//! 7. `nack_cache` — stores a copy of every packet that will be forwarded and answers subscribers'
//!    NACKs; it must come after any interceptor that may drop RTP, so it never caches what was not sent.
//! 8. `receiver_reports` — notes the publisher's SR (LSR for its RR, passing it on) after stats and
//!    before the tap.
//! 9. `tap` — last: records exactly what is forwarded (copy into a bounded ring; a side thread writes).
//!
//! Egress, per subscription:
//! 1. `payload_type_filter` — first, so a filtered packet is neither counted nor reported as sent.
//! 2. plugins, in the order the chain names them — they see the rewritten packet; what they drop is neither
//!    counted nor reported as sent.
//! 3. `stats` — counts what this subscriber is sent and what its receiver reports say (loss, RTT).
//! 4. `sender_reports` — last: its SR packet and octet counts must match exactly what went out.
//!
//! Rewriting (SSRC, sequence number, timestamp, payload-type map) is not a chain member: it is each
//! subscription's fixed first step, because every egress interceptor reasons about what the
//! subscriber receives.
//!
//! Interceptors cannot change routing or close anything: they see packets by shared reference and may
//! only ask through the [`Context`] (a plugin may also ask it to replace the RTP packet it sees:
//! [`Context::rewrite`]; the built-ins never do). Must never allocate, lock, log or read a clock per packet;
//! binding an instance (when a stream or subscription is added) may allocate.

pub mod attach;
pub mod attrs;
pub mod build;
pub mod builtin;
pub mod chain;
pub mod context;
pub mod kind;
pub mod late;
pub mod metadata;
pub mod plugin;
pub mod snapshot;
pub mod spec;

use std::fmt;

use super::counters::DropReason;
use super::packet::RtcpCompound;

pub use attach::{Attach, AttachMode, Attachment};
pub use attrs::RtpAttrs;
pub use chain::{Chain, Link};
pub use context::{copy_of, Context, Emission, Outbox, Scope, Target};
pub use kind::InterceptorKind;
pub(crate) use metadata::Texts;
pub use metadata::{Metadata, MetadataOf, MAX_METADATA_BYTES};
pub use plugin::{PluginError, PluginId, PluginList, Plugins};
pub use snapshot::Snapshot;

/// What happens to a packet after an interceptor has seen it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it to the next interceptor (and after the last, forward it).
    Continue,
    /// Stop here and count the packet as dropped for this reason.
    Drop(DropReason),
    /// Stop here: the interceptor has dealt with the packet (e.g. answered a NACK); not a drop.
    Consumed,
}

/// Where an RTCP compound given to [`Interceptor::on_rtcp`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpFrom {
    /// From the stream's publisher. In an egress chain: already rewritten for this subscriber.
    Publisher,
    /// From the subscriber of subscription `flow` (its slab index). In an ingress chain the compound is
    /// translated to the publisher's SSRC and sequence numbers; in the subscription's own egress chain
    /// it is as the subscriber sent it.
    Subscriber {
        /// The subscription's flow key.
        flow: u32,
    },
}

/// One packet processor bound to one stream (ingress) or one subscription (egress).
///
/// Every method gets the current time through the context; none may block, allocate, lock or log.
/// The defaults let a packet pass untouched, so an interceptor implements only what it needs.
pub trait Interceptor: Send + fmt::Debug {
    /// An RTP packet: `pkt` is the whole datagram (in an egress chain, the header bytes `0..12` are
    /// still the publisher's; `attrs` carries the rewritten values), or what a plugin before this one in the chain
    /// rewrote it into ([`Context::rewrite`]).
    fn on_rtp(&mut self, pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        let _ = (pkt, attrs, ctx);
        Verdict::Continue
    }

    /// A validated RTCP compound from `from`.
    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        let _ = (rtcp, from, ctx);
        Verdict::Continue
    }

    /// The time this interceptor last asked for with [`Context::schedule`] has come.
    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// Adds what this interceptor knows to a statistics snapshot (telemetry reads it periodically).
    fn snapshot(&self, out: &mut Snapshot) {
        let _ = out;
    }
}
