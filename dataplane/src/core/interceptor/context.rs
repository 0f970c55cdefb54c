//! What an interceptor may ask for: packets out, a timer, the time, its stream's metadata, and a new packet in place
//! of the one it sees.
//!
//! Owns the [`Context`] handed to every interceptor call and the per-worker [`Outbox`] the context
//! writes into: a preallocated arena of `capacity` slots of `slot_bytes` each, filled in place by the
//! interceptor's writer closure and drained by the forwarder, which resolves each [`Target`] to an
//! address and a socket after the chain has run. A full outbox refuses (the caller counts it); it
//! never grows. The outbox also holds the two `slot_bytes` buffers of a rewrite ([`Context::rewrite`]) of an RTP
//! packet or an RTCP compound: the slot a member writes its new packet into, and the packet the chain passes on once
//! a member rewrote it (the chain swaps the two; nothing is allocated). Must never allocate after construction or
//! send anything itself.

use std::time::Instant;

use super::plugin::PluginId;
use super::{Metadata, RtpAttrs};
use crate::core::event::PluginFault;
use crate::core::packet::{RtcpCompound, RtpView};
use crate::core::wire::Ssrc;

/// Where an emitted packet goes; the forwarder resolves it after the chain has run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// RTCP to the publisher of stream `stream` (its locked source, from the socket it last used).
    Publisher {
        /// The stream's slab index.
        stream: u32,
    },
    /// The bytes as they are, to the subscriber of subscription `flow`.
    Subscriber {
        /// The subscription's flow key.
        flow: u32,
    },
    /// A retransmission: an RTP packet in the publisher's numbering, sent to subscription `flow`
    /// through its header rewrite (and its RTX wrapping, when negotiated).
    Retransmit {
        /// The subscription's flow key.
        flow: u32,
    },
    /// An injection: an RTP packet of stream `stream` in the publisher's numbering, fanned out to every active
    /// subscription of the stream as if the publisher had sent it when the outbox is drained (each subscription's
    /// header rewrite and egress chain, then sent). It does not run the stream's ingress chain: statistics, NACK
    /// generation, the NACK cache and the tap never see it.
    Stream {
        /// The stream's slab index.
        stream: u32,
    },
}

/// Which stream or subscription a chain belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The ingress chain of stream `stream`.
    Stream {
        /// The stream's slab index.
        stream: u32,
    },
    /// The egress chain of subscription `flow` of stream `stream`.
    Subscription {
        /// The stream's slab index.
        stream: u32,
        /// The subscription's flow key.
        flow: u32,
    },
}

impl Scope {
    /// The stream of the chain.
    pub fn stream(self) -> u32 {
        match self {
            Scope::Stream { stream } | Scope::Subscription { stream, .. } => stream,
        }
    }
}

/// What a call may replace ([`Context::rewrite`]), and what the new packet must keep.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rewritable<'a> {
    /// The RTP packet of attributes `attrs` (as the chain sees it), in an ingress chain or not: the new one keeps its
    /// SSRC.
    Rtp {
        /// The packet's attributes.
        attrs: &'a RtpAttrs,
        /// True in an ingress chain.
        ingress: bool,
    },
    /// An RTCP compound: the new one keeps its first SSRC (`first_ssrc`), by which it was steered.
    Rtcp {
        /// The SSRC at bytes 4..8 of its first packet.
        first_ssrc: Ssrc,
    },
}

/// A packet a call staged, or a chain passed on, in place of the one it was given: its length in the buffer, and for
/// RTP its attributes (read from it).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rewritten {
    /// An RTP packet.
    Rtp(usize, RtpAttrs),
    /// An RTCP compound.
    Rtcp(usize),
}

/// One packet waiting in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emission {
    /// Where it goes.
    pub target: Target,
    /// Its length in bytes (at most the outbox's slot size).
    pub len_bytes: usize,
}

/// The bounded, preallocated queue of packets interceptors emitted during one chain run.
#[derive(Debug)]
pub struct Outbox {
    arena: Box<[u8]>,
    slot_bytes: usize,
    emissions: Vec<Emission>,
    capacity: usize,
    refused: u64,
    plugin_failures: u64,
    /// The first failures since the last drain, for their events (the rest are only counted).
    failed: [(Scope, PluginId, PluginFault); MAX_FAILURES_PER_DRAIN],
    failed_len: usize,
    /// Where a member writes the packet that replaces the one it sees (`slot_bytes` long).
    staging: Box<[u8]>,
    /// The packet staged by the current call, once [`Context::rewrite`] accepted it.
    staged: Option<Rewritten>,
    /// The packet a chain passes on after a rewrite (`slot_bytes` long; the chain swaps it with `staging`).
    rewritten: Box<[u8]>,
    /// What it holds, when the last chain run ended with a rewritten packet.
    rewritten_len: Option<Rewritten>,
    /// Each stream's metadata, by stream slab index (missing: none).
    metadata: Vec<Metadata>,
    /// Each subscription's metadata (its subscriber's), by flow key (missing: none).
    subscriber_metadata: Vec<Metadata>,
}

/// What a stream without metadata reads.
static NO_METADATA: Metadata = Metadata::none();

/// The most plugin failures one drain of the outbox reports as events (the rest are counted only).
pub const MAX_FAILURES_PER_DRAIN: usize = 4;

impl Outbox {
    /// An outbox of `capacity` packets of at most `slot_bytes` each (both at least 1).
    pub fn new(capacity: usize, slot_bytes: usize) -> Outbox {
        let capacity = capacity.max(1);
        let slot_bytes = slot_bytes.max(1);
        Outbox {
            arena: vec![0u8; capacity * slot_bytes].into_boxed_slice(),
            slot_bytes,
            emissions: Vec::with_capacity(capacity),
            capacity,
            refused: 0,
            plugin_failures: 0,
            failed: [(Scope::Stream { stream: 0 }, PluginId(0), PluginFault::Panic); MAX_FAILURES_PER_DRAIN],
            failed_len: 0,
            staging: vec![0u8; slot_bytes].into_boxed_slice(),
            staged: None,
            rewritten: vec![0u8; slot_bytes].into_boxed_slice(),
            rewritten_len: None,
            metadata: Vec::new(),
            subscriber_metadata: Vec::new(),
        }
    }

    /// Sets the metadata of the stream at slab index `stream` (off the hot path: a command; may allocate to make
    /// room the first time a slab index is seen). [`Metadata::none`] clears it (a stream removed or added).
    pub fn set_metadata(&mut self, stream: u32, metadata: Metadata) {
        set_slot(&mut self.metadata, stream, metadata);
    }

    /// The metadata of the stream at slab index `stream` (empty when it has none).
    #[inline]
    pub fn metadata(&self, stream: u32) -> &Metadata {
        self.metadata.get(stream as usize).unwrap_or(&NO_METADATA)
    }

    /// Sets the metadata of the subscription of flow key `flow` ([`Metadata::of_subscriber`]), as
    /// [`Outbox::set_metadata`] does a stream's.
    pub fn set_subscriber_metadata(&mut self, flow: u32, metadata: Metadata) {
        set_slot(&mut self.subscriber_metadata, flow, metadata);
    }

    /// The metadata of the subscription of flow key `flow` (empty when its subscriber has none).
    #[inline]
    pub fn subscriber_metadata(&self, flow: u32) -> &Metadata {
        self.subscriber_metadata.get(flow as usize).unwrap_or(&NO_METADATA)
    }

    /// The longest packet an emit or a rewrite may write.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Forgets what a call staged, before the next call (see [`Context::rewrite`]).
    pub(crate) fn clear_staged(&mut self) {
        self.staged = None;
    }

    /// The packet the call just staged, if it rewrote its packet.
    pub(crate) fn staged(&self) -> Option<Rewritten> {
        self.staged
    }

    /// Makes the packet staged by the last call (`len` bytes) the current rewritten packet, and hands its buffer in
    /// exchange for `current` (a buffer of the same size the chain held): the chain reads the packet there.
    pub(crate) fn swap_staged(&mut self, current: &mut Box<[u8]>) {
        std::mem::swap(&mut self.staging, current);
        self.staged = None;
    }

    /// Lends the chain the buffer that holds a rewritten packet (the outbox holds an empty one meanwhile); the
    /// chain gives it back with [`Outbox::end_rewrite`].
    pub(crate) fn begin_rewrite(&mut self) -> Box<[u8]> {
        self.rewritten_len = None;
        std::mem::take(&mut self.rewritten)
    }

    /// A chain run that rewrote nothing ended: no rewritten packet waits.
    pub(crate) fn end_rewrite_unused(&mut self) {
        self.rewritten_len = None;
    }

    /// Takes back the buffer lent by [`Outbox::begin_rewrite`]; `passed_on` says what it holds when the chain passed
    /// on a rewritten packet.
    pub(crate) fn end_rewrite(&mut self, buffer: Box<[u8]>, passed_on: Option<Rewritten>) {
        self.rewritten = buffer;
        self.rewritten_len = passed_on;
    }

    /// The rewritten packet (RTP or RTCP, as the chain ran) the last chain run passed on, if a member rewrote it;
    /// taking it clears it. Whoever runs a chain that may rewrite takes what it passed on before running another.
    pub fn take_rewritten(&mut self) -> Option<&[u8]> {
        let len = match self.rewritten_len.take()? {
            Rewritten::Rtp(len, _) | Rewritten::Rtcp(len) => len,
        };
        self.rewritten.get(..len)
    }

    /// Like [`Outbox::take_rewritten`] after an RTP chain run, but hands over the buffer holding the packet in exchange
    /// for `spare` (a buffer of `slot_bytes`): the caller keeps the packet while the outbox serves further chains (the
    /// egress chains during the fan-out of a packet an ingress chain rewrote). Answers its length and its attributes
    /// (read from it by the chain).
    pub fn take_rewritten_rtp_into(&mut self, spare: &mut Box<[u8]>) -> Option<(usize, RtpAttrs)> {
        match self.take_rewritten_into(spare)? {
            Rewritten::Rtp(len, attrs) => Some((len, attrs)),
            Rewritten::Rtcp(_) => None,
        }
    }

    /// [`Outbox::take_rewritten_rtp_into`] after an RTCP chain run: the length of the compound now in `spare`.
    pub fn take_rewritten_rtcp_into(&mut self, spare: &mut Box<[u8]>) -> Option<usize> {
        match self.take_rewritten_into(spare)? {
            Rewritten::Rtcp(len) => Some(len),
            Rewritten::Rtp(..) => None,
        }
    }

    fn take_rewritten_into(&mut self, spare: &mut Box<[u8]>) -> Option<Rewritten> {
        let passed_on = self.rewritten_len.take()?;
        if spare.len() != self.rewritten.len() {
            return None;
        }
        std::mem::swap(&mut self.rewritten, spare);
        Some(passed_on)
    }

    /// Queues a packet for `target`: `write` fills the slot it is given (`slot_bytes` long) and returns
    /// the length written; 0 (or a length beyond the slot) queues nothing. False if the outbox is full
    /// or nothing was written.
    pub fn push(&mut self, target: Target, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let index = self.emissions.len();
        if index == self.capacity {
            self.refused += 1;
            return false;
        }
        let start = index * self.slot_bytes;
        let len_bytes = write(&mut self.arena[start..start + self.slot_bytes]);
        if len_bytes == 0 || len_bytes > self.slot_bytes {
            self.refused += 1;
            return false;
        }
        self.emissions.push(Emission { target, len_bytes });
        true
    }

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.emissions.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.emissions.is_empty()
    }

    /// The queued packet `index` (in push order) and its bytes.
    pub fn get(&self, index: usize) -> Option<(Target, &[u8])> {
        let emission = self.emissions.get(index)?;
        let start = index * self.slot_bytes;
        Some((emission.target, &self.arena[start..start + emission.len_bytes]))
    }

    /// Forgets every queued packet (keeps the memory).
    pub fn clear(&mut self) {
        self.emissions.clear();
    }

    /// Pushes refused (full, or nothing written) since the last call; resets the count.
    pub fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }

    /// Notes that `plugin`, in the chain of `scope`, was disabled by `fault`.
    pub fn note_plugin_failure(&mut self, scope: Scope, plugin: PluginId, fault: PluginFault) {
        self.plugin_failures += 1;
        if let Some(slot) = self.failed.get_mut(self.failed_len) {
            *slot = (scope, plugin, fault);
            self.failed_len += 1;
        }
    }

    /// Plugin instances disabled since the last call; resets the count.
    pub fn take_plugin_failures(&mut self) -> u64 {
        std::mem::take(&mut self.plugin_failures)
    }

    /// The first [`MAX_FAILURES_PER_DRAIN`] of them, each handed to `f`; forgets them.
    pub fn take_failed_plugins(&mut self, mut f: impl FnMut(Scope, PluginId, PluginFault)) {
        for &(scope, plugin, fault) in &self.failed[..self.failed_len] {
            f(scope, plugin, fault);
        }
        self.failed_len = 0;
    }

    /// True when the forwarder has something to do with the outbox: packets to send, or failures to count.
    pub fn needs_drain(&self) -> bool {
        !self.emissions.is_empty() || self.plugin_failures != 0
    }
}

/// Sets `slots[index]`, making room the first time an index is seen (an empty snapshot never makes room).
fn set_slot(slots: &mut Vec<Metadata>, index: u32, metadata: Metadata) {
    let index = index as usize;
    if index >= slots.len() {
        if metadata.is_empty() {
            return;
        }
        slots.resize(index + 1, Metadata::none());
    }
    slots[index] = metadata;
}

/// A writer for [`Outbox::push`] (and [`Context::rewrite`]) that copies `bytes` into the slot: writes nothing when they
/// do not fit, which refuses them.
pub fn copy_of(bytes: &[u8]) -> impl FnOnce(&mut [u8]) -> usize + '_ {
    move |slot| match slot.get_mut(..bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            bytes.len()
        }
        None => 0,
    }
}

/// An interceptor's view of the world during one call.
#[derive(Debug)]
pub struct Context<'a> {
    now: Instant,
    scope: Scope,
    outbox: &'a mut Outbox,
    wake: &'a mut Option<Instant>,
    refused: u32,
    /// The time asked for in this call, if any.
    scheduled: Option<Instant>,
    /// What this call may rewrite (a plugin's RTP or RTCP call); `None`: no rewrite.
    rewritable: Option<Rewritable<'a>>,
}

impl<'a> Context<'a> {
    /// A context at `now` for a chain of `scope`, emitting into `outbox`, with the calling
    /// interceptor's timer slot `wake`.
    pub fn new(now: Instant, scope: Scope, outbox: &'a mut Outbox, wake: &'a mut Option<Instant>) -> Context<'a> {
        Context { now, scope, outbox, wake, refused: 0, scheduled: None, rewritable: None }
    }

    /// The longest packet this call may emit or rewrite into.
    pub fn max_packet_bytes(&self) -> usize {
        self.outbox.slot_bytes
    }

    /// Lets this call rewrite the packet it is given (see [`Rewritable`]).
    pub(crate) fn allow_rewrite(&mut self, rewritable: Rewritable<'a>) {
        self.rewritable = Some(rewritable);
    }

    /// Replaces the RTP packet or the RTCP compound this call is about with the one `write` puts in the slot it is
    /// given (as long as the longest packet the worker takes) and returns the length of; the members after this one,
    /// and then the forwarder, see the new packet. Only when the call's verdict is continue; the last accepted rewrite
    /// of a call counts.
    ///
    /// - RTP (with [`super::RtpAttrs`] read again from the new packet): in an ingress chain the new packet is what
    ///   every subscription rewrites and sends (the header still in the publisher's numbering); in an egress chain it
    ///   is sent to this subscriber as it is, header included (so write the header this call's attributes give,
    ///   changed as you mean it).
    /// - RTCP: the compound as the chain saw it is replaced wherever it goes next. The publisher's, in an ingress
    ///   chain: what every subscription rewrites (SSRCs, SR timestamps) and sends; in an egress chain: what this
    ///   subscriber is sent. A subscriber's, in its egress chain: what is translated to the publisher's SSRC and
    ///   numbering and run through the stream's ingress chain; in the ingress chain: what goes on to the publisher
    ///   when no built-in answers it (its requests are read again from the new compound).
    ///
    /// Refused (false, nothing changes) in a call that may not rewrite (a built-in's, a timer's), for a length of 0,
    /// beyond the slot, for RTP bytes that are not an RTP packet (version 2, a whole header, padding within) carrying
    /// the same SSRC, or for RTCP bytes that are not a valid RTCP compound (as ringfwd takes from the network) whose
    /// first packet carries the same SSRC: a plugin changes what a stream carries or says, not which stream it is.
    pub fn rewrite(&mut self, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let Some(rewritable) = self.rewritable else {
            return false;
        };
        let outbox = &mut *self.outbox;
        outbox.staged = None;
        let len = write(&mut outbox.staging);
        let Some(bytes) = outbox.staging.get(..len).filter(|_| len != 0) else {
            return false;
        };
        outbox.staged = match rewritable {
            Rewritable::Rtp { attrs, ingress } => RtpView::parse(bytes)
                .ok()
                .filter(|view| view.ssrc() == attrs.ssrc)
                .map(|view| Rewritten::Rtp(len, attrs.rewritten(&view, ingress))),
            Rewritable::Rtcp { first_ssrc } => RtcpCompound::parse(bytes)
                .ok()
                .filter(|compound| compound.first_ssrc() == first_ssrc)
                .map(|_| Rewritten::Rtcp(len)),
        };
        outbox.staged.is_some()
    }

    /// The current time (the worker's, passed in).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The stream or subscription this chain belongs to.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The metadata of this chain's stream, read-only: the snapshot the control plane last gave the worker (a
    /// subscription's chain reads its stream's), with its publisher's and its session's
    /// ([`Metadata::text_of`]). Empty when none of them has any.
    #[inline]
    pub fn metadata(&self) -> &Metadata {
        self.outbox.metadata(self.scope.stream())
    }

    /// The value of `key` in this chain's stream's metadata, if it has one.
    #[inline]
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata().value(key)
    }

    /// In a subscription's egress chain, the metadata of the endpoint that receives it
    /// ([`super::MetadataOf::Subscriber`]: the snapshot the control plane last gave the worker); `None` in an ingress
    /// chain, which has no subscriber.
    #[inline]
    pub fn subscriber_metadata(&self) -> Option<&Metadata> {
        match self.scope {
            Scope::Subscription { flow, .. } => Some(self.outbox.subscriber_metadata(flow)),
            Scope::Stream { .. } => None,
        }
    }

    /// The text of `of`'s metadata as this chain reads it: the subscriber's from [`Context::subscriber_metadata`]
    /// (empty in an ingress chain), the others from [`Context::metadata`].
    #[inline]
    pub fn metadata_text(&self, of: super::MetadataOf) -> &str {
        match of {
            super::MetadataOf::Subscriber => self.subscriber_metadata().map_or("", |metadata| metadata.text_of(of)),
            _ => self.metadata().text_of(of),
        }
    }

    /// Asks for [`super::Interceptor::on_timer`] at `at` (or earlier, if an earlier time is already
    /// asked for). One timer per interceptor: the earliest request wins until it fires.
    pub fn schedule(&mut self, at: Instant) {
        let earliest = match *self.wake {
            Some(current) if current <= at => current,
            _ => at,
        };
        *self.wake = Some(earliest);
        self.scheduled = Some(earliest);
    }

    /// The timer this call left the interceptor with, if it asked for one (the chain keeps the earliest).
    pub fn scheduled(&self) -> Option<Instant> {
        self.scheduled
    }

    /// Sends RTCP written by `write` (see [`Outbox::push`]) to the stream's publisher.
    pub fn send_rtcp_to_publisher(&mut self, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let target = Target::Publisher { stream: self.scope.stream() };
        self.emit(target, write)
    }

    /// Sends bytes written by `write` as they are to the subscriber of `flow`. An egress chain may
    /// only send to its own subscriber (any other `flow` is refused).
    pub fn send_to_subscriber(&mut self, flow: u32, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        if matches!(self.scope, Scope::Subscription { flow: own, .. } if own != flow) {
            return false;
        }
        self.emit(Target::Subscriber { flow }, write)
    }

    /// Retransmits `pkt`, an RTP packet of this chain's stream in the publisher's numbering, to the
    /// subscriber of `flow` through its header rewrite. Only an ingress chain may retransmit.
    pub fn retransmit(&mut self, flow: u32, pkt: &[u8]) -> bool {
        if matches!(self.scope, Scope::Subscription { .. }) {
            return false;
        }
        self.emit(Target::Retransmit { flow }, copy_of(pkt))
    }

    /// Injects `pkt`, an RTP packet of this chain's stream in the publisher's numbering (its SSRC), into the stream:
    /// once the chain has run it is fanned out to every active subscription as if the publisher had sent it then,
    /// through each subscription's header rewrite and egress chain (see [`Target::Stream`]). Only an ingress chain
    /// may inject; a packet with another SSRC is refused when the outbox is drained (counted as an emit refused).
    pub fn inject(&mut self, pkt: &[u8]) -> bool {
        let Scope::Stream { stream } = self.scope else {
            return false;
        };
        self.emit(Target::Stream { stream }, copy_of(pkt))
    }

    /// Notes that `plugin` was disabled during this call by `fault` (a WebAssembly plugin that trapped or ran out of
    /// fuel; a native plugin's panic is noted by the chain): counted, and reported as an event.
    pub(crate) fn note_plugin_failure(&mut self, plugin: PluginId, fault: PluginFault) {
        self.outbox.note_plugin_failure(self.scope, plugin, fault);
    }

    /// Emissions refused during this context's life (outbox full or nothing written).
    pub fn refused(&self) -> u32 {
        self.refused
    }

    fn emit(&mut self, target: Target, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let queued = self.outbox.push(target, write);
        if !queued {
            self.refused += 1;
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_is_bounded_and_keeps_bytes() {
        let mut outbox = Outbox::new(2, 8);
        assert!(outbox.push(Target::Subscriber { flow: 1 }, |slot| {
            slot[..3].copy_from_slice(b"abc");
            3
        }));
        assert!(!outbox.push(Target::Subscriber { flow: 1 }, |_| 0), "nothing written queues nothing");
        assert!(!outbox.push(Target::Subscriber { flow: 1 }, |_| 9), "a length beyond the slot is refused");
        assert!(outbox.push(Target::Publisher { stream: 4 }, |slot| {
            slot.fill(7);
            8
        }));
        assert!(!outbox.push(Target::Publisher { stream: 4 }, |_| 1), "full");
        assert_eq!(outbox.get(0), Some((Target::Subscriber { flow: 1 }, &b"abc"[..])));
        assert_eq!(outbox.get(1), Some((Target::Publisher { stream: 4 }, &[7u8; 8][..])));
        assert_eq!(outbox.take_refused(), 3);
        assert_eq!(outbox.take_refused(), 0);
        outbox.clear();
        assert!(outbox.is_empty());
    }

    #[test]
    fn context_scopes_what_may_be_sent() {
        let now = Instant::now();
        let mut outbox = Outbox::new(8, 64);
        let mut wake = None;
        let mut ctx = Context::new(now, Scope::Subscription { stream: 3, flow: 5 }, &mut outbox, &mut wake);
        assert!(!ctx.send_to_subscriber(6, |_| 1), "another subscriber");
        assert!(ctx.send_to_subscriber(5, |_| 1));
        assert!(!ctx.retransmit(5, &[0x80; 20]), "egress cannot retransmit");
        assert!(!ctx.inject(&[0x80; 20]), "egress cannot inject");
        assert!(ctx.send_rtcp_to_publisher(|_| 4));
        assert_eq!(ctx.refused(), 0, "scope refusals are not outbox refusals");
        ctx.schedule(now + std::time::Duration::from_millis(20));
        ctx.schedule(now + std::time::Duration::from_millis(10));
        ctx.schedule(now + std::time::Duration::from_millis(30));
        assert_eq!(wake, Some(now + std::time::Duration::from_millis(10)));
        assert_eq!(outbox.get(1).map(|(target, _)| target), Some(Target::Publisher { stream: 3 }));

        let mut wake = None;
        let mut ctx = Context::new(now, Scope::Stream { stream: 3 }, &mut outbox, &mut wake);
        assert!(ctx.retransmit(9, &[0x80; 20]));
        assert!(!ctx.retransmit(9, &[0u8; 65]), "larger than a slot");
        assert_eq!(ctx.refused(), 1);
        assert_eq!(outbox.get(2), Some((Target::Retransmit { flow: 9 }, &[0x80u8; 20][..])));
        let mut ctx = Context::new(now, Scope::Stream { stream: 3 }, &mut outbox, &mut wake);
        assert!(ctx.inject(&[0x80; 24]));
        assert_eq!(outbox.get(3), Some((Target::Stream { stream: 3 }, &[0x80u8; 24][..])));
    }

    #[test]
    fn a_chain_reads_its_own_streams_metadata() {
        let now = Instant::now();
        let mut outbox = Outbox::new(1, 64);
        outbox.set_metadata(3, Metadata::from_pairs([("app.muted", "1")]));
        outbox.set_metadata(9, Metadata::none());
        let mut wake = None;
        let ctx = Context::new(now, Scope::Subscription { stream: 3, flow: 5 }, &mut outbox, &mut wake);
        assert_eq!(ctx.metadata().text(), "app.muted=1\n", "a subscription reads its stream's");
        assert_eq!(ctx.metadata_value("app.muted"), Some("1"));
        let ctx = Context::new(now, Scope::Stream { stream: 2 }, &mut outbox, &mut wake);
        assert!(ctx.metadata().is_empty());
        assert_eq!(ctx.metadata_value("app.muted"), None);
        let ctx = Context::new(now, Scope::Stream { stream: 1000 }, &mut outbox, &mut wake);
        assert!(ctx.metadata().is_empty(), "a slot never set has none");
        outbox.set_metadata(3, Metadata::none());
        let ctx = Context::new(now, Scope::Stream { stream: 3 }, &mut outbox, &mut wake);
        assert!(ctx.metadata().is_empty(), "cleared");
    }

    #[test]
    fn an_egress_chain_reads_its_subscribers_metadata_and_an_ingress_chain_has_none() {
        use crate::core::interceptor::MetadataOf;
        let now = Instant::now();
        let mut outbox = Outbox::new(1, 64);
        outbox.set_metadata(3, Metadata::from_objects([("a.s", "1")], [], []));
        outbox.set_subscriber_metadata(5, Metadata::of_subscriber([("app.muted", "1")]));
        outbox.set_subscriber_metadata(9, Metadata::none());
        let mut wake = None;
        let ctx = Context::new(now, Scope::Subscription { stream: 3, flow: 5 }, &mut outbox, &mut wake);
        assert_eq!(ctx.metadata_text(MetadataOf::Subscriber), "app.muted=1\n");
        assert_eq!(ctx.metadata_text(MetadataOf::Stream), "a.s=1\n", "its stream's, as before");
        assert_eq!(ctx.subscriber_metadata().map(|m| m.text()), Some(""), "the subscriber's snapshot has no stream");
        let ctx = Context::new(now, Scope::Subscription { stream: 3, flow: 6 }, &mut outbox, &mut wake);
        assert!(ctx.subscriber_metadata().is_some_and(Metadata::is_empty), "a subscriber without metadata");
        let ctx = Context::new(now, Scope::Stream { stream: 3 }, &mut outbox, &mut wake);
        assert!(ctx.subscriber_metadata().is_none(), "an ingress chain has no subscriber");
        assert_eq!(ctx.metadata_text(MetadataOf::Subscriber), "");
        outbox.set_subscriber_metadata(5, Metadata::none());
        assert!(outbox.subscriber_metadata(5).is_empty(), "cleared");
    }
}
