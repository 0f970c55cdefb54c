//! The forwarder's side of the interceptor chains: attributes, running the chains, subscribers' RTCP,
//! sending what interceptors emit, and timers.
//!
//! Owns the glue between [`Forwarder`] and [`crate::core::interceptor`]: building [`RtpAttrs`] once per
//! packet, running a stream's ingress chain, routing a subscriber's RTCP to its subscription (its
//! egress chain as received, then translated to the publisher's space through the stream's ingress
//! chain, then on to the publisher if it asks for something no bound interceptor answers), resolving every
//! [`Target`] in the outbox to an address and a socket, building retransmissions (with RTX when
//! negotiated), fanning out packets plugins injected into their stream (through each subscription's rewrite and
//! egress chain, never the stream's ingress chain), emitting what async plugins send back later ([`Forwarder::on_late`],
//! checked against the chain's scope as a call's emits are), and the timer sweep. Must never allocate: the outbox and the
//! scratch buffers are reserved, and the sweep walks the slabs by index up to the highest index used (not their
//! reserved capacity).

use std::net::SocketAddr;
use std::time::Instant;

use super::{local_ssrc, rtcp_socket, Copies, Forwarder, Outcome};
use crate::core::command::{CommandError, SubscriptionId};
use crate::core::counters::DropReason;
use crate::core::event::WorkerEventKind;
use crate::core::feedback::{source_feedback, translate_feedback};
use crate::core::interceptor::builtin::wire_compound::{write_feedback_compound, Cname};
use crate::core::interceptor::builtin::wire_feedback::write_pli;
use crate::core::interceptor::late::{LatePacket, LateTarget};
use crate::core::interceptor::{copy_of, Chain, Context, InterceptorKind, RtcpFrom, RtpAttrs, Scope, Target, Verdict};
use crate::core::packet::{RtcpCompound, RtpView};
use crate::core::table::{has_destination, SourceState, Table};
use crate::core::transmit::Transmits;
use crate::core::wire::Ssrc;

/// Emissions are sent once the outbox is this full during a timer sweep (so the sweep never refuses).
const SWEEP_DRAIN_AT: usize = super::OUTBOX_PACKETS / 2;

/// The attributes of a parsed RTP packet received at `now` (the extended sequence number is filled in
/// by the caller, from the stream's unwrapper).
pub(super) fn rtp_attrs(view: &RtpView<'_>, now: Instant, src: SocketAddr) -> RtpAttrs {
    RtpAttrs::of(view, now, src)
}

/// Lowers `next` to the chain's earliest timer.
pub(super) fn note_wake(next: &mut Option<Instant>, chain: &Chain) {
    if let Some(wake) = chain.next_wake() {
        *next = Some(next.map_or(wake, |current| current.min(wake)));
    }
}

impl Forwarder {
    /// Runs the stream's ingress chain on an RTP packet.
    pub(super) fn ingress_rtp(&mut self, now: Instant, stream: u32, pkt: &[u8], attrs: &RtpAttrs) -> Verdict {
        let entry = &mut self.table.streams[stream as usize];
        if entry.ingress.is_empty() {
            return Verdict::Continue;
        }
        let verdict = entry.ingress.on_rtp(now, Scope::Stream { stream }, pkt, attrs, &mut self.outbox);
        note_wake(&mut self.next_timer, &entry.ingress);
        verdict
    }

    /// Runs the stream's ingress chain on the publisher's RTCP.
    pub(super) fn ingress_rtcp(&mut self, now: Instant, stream: u32, compound: &RtcpCompound<'_>) -> Verdict {
        let entry = &mut self.table.streams[stream as usize];
        if entry.ingress.is_empty() {
            return Verdict::Continue;
        }
        let scope = Scope::Stream { stream };
        let verdict = entry.ingress.on_rtcp(now, scope, compound, RtcpFrom::Publisher, &mut self.outbox);
        note_wake(&mut self.next_timer, &entry.ingress);
        verdict
    }

    /// Handles RTCP a subscriber sent about subscription `flow`.
    pub(super) fn on_subscriber_rtcp(&mut self, now: Instant, flow: u32, compound: &RtcpCompound<'_>) -> Outcome {
        self.counters.rx_feedback += 1;
        // The buffer a plugin's rewrite of the compound is kept in while the other chain runs (this path never runs
        // inside the fan-out of a rewritten RTP packet, the buffer's other user).
        let mut body = std::mem::take(&mut self.rewritten);
        let outcome = self.subscriber_rtcp(now, flow, compound, &mut body);
        self.rewritten = body;
        outcome
    }

    /// [`Forwarder::on_subscriber_rtcp`], with `body` to hold a compound a plugin rewrote.
    fn subscriber_rtcp(
        &mut self,
        now: Instant,
        flow: u32,
        compound: &RtcpCompound<'_>,
        body: &mut Box<[u8]>,
    ) -> Outcome {
        let Table { streams, subscriptions, .. } = &mut self.table;
        let sub = &mut subscriptions[flow as usize];
        let stream = sub.stream;
        let entry = &mut streams[stream as usize];
        let mut egress_rewrite = None;
        if !sub.egress.is_empty() {
            let scope = Scope::Subscription { stream, flow };
            let from = RtcpFrom::Subscriber { flow };
            let _ = sub.egress.on_rtcp(now, scope, compound, from, &mut self.outbox);
            note_wake(&mut self.next_timer, &sub.egress);
            egress_rewrite = self.outbox.take_rewritten_rtcp_into(body);
        }
        // What the egress chain passed on: the compound as received, or as a plugin there rewrote it (validated by
        // the chain: it parses again).
        let received = match egress_rewrite {
            Some(len) => {
                self.counters.rewritten_by_plugin += 1;
                match body.get(..len).and_then(|bytes| RtcpCompound::parse(bytes).ok()) {
                    Some(rewritten) => rewritten,
                    None => return Outcome::Dropped(DropReason::Malformed),
                }
            }
            None => *compound,
        };
        let out_ssrc = sub.feedback_key.1;
        let Some(len) = translate_feedback(&sub.rewrite, out_ssrc, entry.ssrc, &received, &mut self.rtcp_scratch)
        else {
            return Outcome::Dropped(DropReason::Malformed);
        };
        let translated = &self.rtcp_scratch[..len];
        let Some(compound) = received.patched(translated) else {
            return Outcome::Dropped(DropReason::Malformed);
        };
        let verdict = if entry.ingress.is_empty() {
            Verdict::Continue
        } else {
            let scope = Scope::Stream { stream };
            let verdict = entry.ingress.on_rtcp(now, scope, &compound, RtcpFrom::Subscriber { flow }, &mut self.outbox);
            note_wake(&mut self.next_timer, &entry.ingress);
            verdict
        };
        // What the ingress chain passed on: the translated compound, or as a plugin there rewrote it (`body` is free
        // again: the translation was copied out of it).
        let compound = match self.outbox.take_rewritten_rtcp_into(body) {
            Some(len) => {
                self.counters.rewritten_by_plugin += 1;
                match body.get(..len).and_then(|bytes| RtcpCompound::parse(bytes).ok()) {
                    Some(rewritten) => rewritten,
                    None => return Outcome::Dropped(DropReason::Malformed),
                }
            }
            None => compound,
        };
        let passed_on = compound.bytes();
        // NACKs end here when a retransmission cache is bound (it answers them, and asks the publisher itself,
        // merged across subscribers, for what it never received), PLI/FIR when the throttle sends its own
        // requests; anything else the subscriber asks goes on to the publisher.
        let asks = source_feedback(&compound);
        let unanswered = (asks.nack && !entry.ingress.has(InterceptorKind::NackCache))
            || (asks.keyframe && !entry.ingress.has(InterceptorKind::KeyframeThrottle));
        if verdict == Verdict::Continue && unanswered {
            let queued = self.outbox.push(Target::Publisher { stream }, copy_of(passed_on));
            if queued {
                self.counters.feedback_forwarded += 1;
            }
        }
        Outcome::Intercepted
    }

    /// Runs `Command::RequestKeyframe`: a PLI about the publisher's SSRC, from the stream's local SSRC, through
    /// the stream's ingress chain as the subscriber's; unless an interceptor (the keyframe throttle) answers it,
    /// it goes to the publisher (as RR + SDES + PLI, or as a plugin in the chain rewrote the PLI). The outbox is
    /// drained by the next timer sweep, which this makes due now.
    pub(super) fn request_keyframe(&mut self, now: Instant, id: SubscriptionId) -> Result<(), CommandError> {
        let flow = self.table.subscription_index(id).ok_or(CommandError::SubscriptionNotFound { id })?;
        let Table { streams, subscriptions, .. } = &mut self.table;
        let sub = &subscriptions[flow as usize];
        if sub.paused {
            return Ok(());
        }
        let stream = sub.stream;
        let entry = &mut streams[stream as usize];
        let len = write_pli(&mut self.rtcp_scratch, Ssrc(local_ssrc(entry.id, entry.ssrc)), Ssrc(entry.ssrc));
        let Some(compound) = self.rtcp_scratch.get(..len).and_then(|pli| RtcpCompound::parse(pli).ok()) else {
            return Ok(()); // unreachable: the scratch buffer holds a PLI (12 bytes)
        };
        self.counters.keyframe_requests += 1;
        let verdict = if entry.ingress.is_empty() {
            Verdict::Continue
        } else {
            let scope = Scope::Stream { stream };
            let verdict = entry.ingress.on_rtcp(now, scope, &compound, RtcpFrom::Subscriber { flow }, &mut self.outbox);
            note_wake(&mut self.next_timer, &entry.ingress);
            verdict
        };
        let mut body = std::mem::take(&mut self.rewritten);
        let rewritten = self.outbox.take_rewritten_rtcp_into(&mut body);
        if verdict == Verdict::Continue {
            let target = Target::Publisher { stream };
            let queued = match rewritten.and_then(|len| body.get(..len)) {
                Some(rewritten) => {
                    self.counters.rewritten_by_plugin += 1;
                    self.outbox.push(target, copy_of(rewritten))
                }
                None => {
                    // As every compound ringfwd sends: RR + SDES CNAME + the PLI (RFC 4585 §3.1).
                    let (local, publisher) = (Ssrc(local_ssrc(entry.id, entry.ssrc)), Ssrc(entry.ssrc));
                    let cname = Cname::ringfwd(local);
                    self.outbox.push(target, |slot| {
                        write_feedback_compound(slot, local, &cname, |out| write_pli(out, local, publisher))
                    })
                }
            };
            if queued {
                self.counters.feedback_forwarded += 1;
            }
        }
        self.rewritten = body;
        if !self.outbox.is_empty() {
            self.next_timer = Some(self.next_timer.map_or(now, |at| at.min(now)));
        }
        Ok(())
    }

    /// Sends everything in the outbox, counts its refusals and plugin failures, and empties it. A packet injected into
    /// a stream is fanned out here, at `now`, through the subscriptions' egress chains: what they emit is queued
    /// behind it and sent by the same drain (they cannot inject, so the drain ends; the outbox is bounded anyway).
    pub(super) fn drain_outbox(&mut self, now: Instant, out: &mut Transmits) {
        let mut index = 0;
        while let Some((target, bytes)) = self.outbox.get(index) {
            index += 1;
            let sent = match target {
                Target::Publisher { stream } => match self.table.streams.get(stream as usize) {
                    Some(entry) => match (entry.rtcp_source, entry.source) {
                        (Some(rtcp), _) => out.copy(rtcp_socket(self.rtcp_socket_offset, entry.socket), rtcp, bytes),
                        (None, SourceState::Locked(addr)) => out.copy(entry.socket, addr, bytes),
                        (None, SourceState::Waiting { .. }) => false,
                    },
                    None => false,
                },
                Target::Subscriber { flow } => match self.table.subscriptions.get(flow as usize) {
                    Some(sub) if has_destination(sub.dest) => match sub.rtcp_dest {
                        Some(rtcp) => out.copy(rtcp_socket(self.rtcp_socket_offset, sub.socket), rtcp, bytes),
                        None => out.copy(sub.socket, sub.dest, bytes),
                    },
                    Some(_) => false,
                    None => false,
                },
                Target::Retransmit { flow } => {
                    let sent = retransmit(&mut self.table, &mut self.rtcp_scratch, flow, bytes, out);
                    self.counters.retransmissions += u64::from(sent);
                    sent
                }
                Target::Stream { stream } => {
                    // Held apart from the outbox, whose slots the egress chains write while it is fanned out.
                    let mut held = std::mem::take(&mut self.injecting);
                    let len = bytes.len();
                    let sent = match held.get_mut(..len) {
                        Some(copy) => {
                            copy.copy_from_slice(bytes);
                            self.inject(now, stream, &held[..len], out)
                        }
                        None => false,
                    };
                    self.injecting = held;
                    sent
                }
            };
            if sent {
                self.counters.interceptor_emitted += 1;
            } else {
                self.counters.interceptor_emit_refused += 1;
            }
        }
        self.outbox.clear();
        self.counters.interceptor_emit_refused += self.outbox.take_refused();
        self.counters.plugin_failures += self.outbox.take_plugin_failures();
        let (table, events) = (&self.table, &mut self.events);
        self.outbox.take_failed_plugins(|scope, plugin, fault| {
            let (stream, subscription) = match scope {
                Scope::Stream { stream } => (stream, None),
                Scope::Subscription { stream, flow } => (stream, Some(flow)),
            };
            let Some(stream) = table.streams.get(stream as usize).map(|entry| entry.id) else { return };
            let subscription = subscription.and_then(|flow| table.subscriptions.get(flow as usize)).map(|sub| sub.id);
            events.push(WorkerEventKind::PluginDisabled { plugin, stream, subscription, fault });
        });
    }

    /// Fans out `pkt`, injected into `stream` by an ingress plugin, as if its publisher had sent it at `now`: each
    /// active subscription's header rewrite and egress chain, then an assembled copy. The stream's ingress chain,
    /// its statistics and its sequence tracking do not see it. Refused when the stream is gone or `pkt` is not an RTP
    /// packet with the stream's SSRC.
    fn inject(&mut self, now: Instant, stream: u32, pkt: &[u8], out: &mut Transmits) -> bool {
        let Some(entry) = self.table.streams.get(stream as usize) else {
            return false;
        };
        let Ok(view) = RtpView::parse(pkt) else {
            return false;
        };
        if view.ssrc().0 != entry.ssrc {
            return false;
        }
        let src = match entry.source {
            SourceState::Locked(addr) => addr,
            SourceState::Waiting { .. } => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let mut attrs = rtp_attrs(&view, now, src);
        // Its extended number as the stream's numbering places it, without moving the stream's highest.
        attrs.ext_seq = { entry.seq }.unwrap(attrs.seq);
        self.counters.injected += 1;
        let _ = self.fan_out_rtp(now, stream, &attrs, pkt, out, Copies::Assembled);
        true
    }

    /// Emits `packet`, which an async plugin's thread sent back, as the chain of its scope would have emitted it from
    /// a call at `now` (the same rules: an egress chain sends only to its own subscriber, only an ingress chain
    /// retransmits or injects). Refused (counted as an emit refused) when the scope's stream or subscription is gone,
    /// or its slot now holds another stream than the one whose packet the plugin was handed.
    pub fn on_late(&mut self, now: Instant, packet: &LatePacket, out: &mut Transmits) {
        // No datagram is being processed: late packets only send copies.
        out.begin(0);
        let stream = packet.scope.stream();
        let same_stream = self.table.streams.get(stream as usize).is_some_and(|entry| entry.ssrc == packet.ssrc);
        let same_scope = match packet.scope {
            Scope::Stream { .. } => true,
            Scope::Subscription { flow, .. } => {
                self.table.subscriptions.get(flow as usize).is_some_and(|sub| sub.stream == stream)
            }
        };
        if !same_stream || !same_scope {
            self.counters.interceptor_emit_refused += 1;
            return;
        }
        let mut wake = None;
        let mut ctx = Context::new(now, packet.scope, &mut self.outbox, &mut wake);
        let bytes = packet.bytes();
        let queued = match packet.target {
            LateTarget::Publisher => ctx.send_rtcp_to_publisher(copy_of(bytes)),
            LateTarget::Subscriber(flow) => ctx.send_to_subscriber(flow, copy_of(bytes)),
            LateTarget::Retransmit(flow) => ctx.retransmit(flow, bytes),
            LateTarget::Stream => ctx.inject(bytes),
        };
        if !queued {
            self.counters.interceptor_emit_refused += 1;
        }
        self.drain_outbox(now, out);
    }

    /// The earliest time a chain asked to be woken at (may be earlier than needed, never later). The
    /// driver calls [`Forwarder::on_timers`] once it has passed.
    pub fn next_timer(&self) -> Option<Instant> {
        self.next_timer
    }

    /// Runs every interceptor timer due at `now` and sends what they emit.
    pub fn on_timers(&mut self, now: Instant, out: &mut Transmits) {
        if self.next_timer.is_none_or(|at| at > now) {
            return;
        }
        // No datagram is being processed: timers only send copies.
        out.begin(0);
        // Chains that run during the sweep's drains (egress chains fanning out an injected packet) lower it again.
        self.next_timer = None;
        let mut next = None;
        for index in 0..self.table.stream_slots() {
            let Some(entry) = self.table.streams.get_mut(index) else {
                continue;
            };
            if entry.ingress.next_wake().is_some_and(|at| at <= now) {
                entry.ingress.on_timer(now, Scope::Stream { stream: index as u32 }, &mut self.outbox);
            }
            note_wake(&mut next, &entry.ingress);
            if self.outbox.len() >= SWEEP_DRAIN_AT {
                self.drain_outbox(now, out);
            }
        }
        for index in 0..self.table.subscription_slots() {
            let Some(sub) = self.table.subscriptions.get_mut(index) else {
                continue;
            };
            if sub.egress.next_wake().is_some_and(|at| at <= now) {
                let scope = Scope::Subscription { stream: sub.stream, flow: index as u32 };
                sub.egress.on_timer(now, scope, &mut self.outbox);
            }
            note_wake(&mut next, &sub.egress);
            if self.outbox.len() >= SWEEP_DRAIN_AT {
                self.drain_outbox(now, out);
            }
        }
        if let Some(at) = self.next_timer {
            next = Some(next.map_or(at, |earlier: Instant| earlier.min(at)));
        }
        self.next_timer = next;
        if self.outbox.needs_drain() {
            self.drain_outbox(now, out);
        }
    }
}

/// Sends `pkt`, an RTP packet in the publisher's numbering, to subscription `flow` through its header
/// rewrite, as RTX (RFC 4588 §4: the RTX SSRC, payload type and sequence number, the original
/// sequence number in front of the payload) when the subscription negotiated it. Refused when the
/// subscription is gone, paused, has no destination yet, or now forwards another stream.
fn retransmit(table: &mut Table, scratch: &mut [u8], flow: u32, pkt: &[u8], out: &mut Transmits) -> bool {
    let Some(sub) = table.subscriptions.get_mut(flow as usize) else {
        return false;
    };
    let Ok(view) = RtpView::parse(pkt) else {
        return false;
    };
    let same_stream = table.streams.get(sub.stream as usize).is_some_and(|entry| entry.ssrc == view.ssrc().0);
    if !same_stream || sub.paused || !has_destination(sub.dest) || pkt.len() > scratch.len() {
        return false;
    }
    let header = sub.rewrite.rtp_header(pkt);
    let len = match &mut sub.rtx {
        None => {
            scratch[..12].copy_from_slice(&header);
            scratch[12..pkt.len()].copy_from_slice(&pkt[12..]);
            pkt.len()
        }
        Some((params, rtx_seq)) => {
            let payload = view.payload();
            let payload_start = payload.as_ptr() as usize - pkt.as_ptr() as usize;
            let len = payload_start + 2 + payload.len();
            if len > scratch.len() {
                return false;
            }
            let mut rtx = header;
            rtx[0] &= !0x20; // the original's padding is not carried
            rtx[1] = (rtx[1] & 0x80) | (params.payload_type & 0x7f);
            rtx[2..4].copy_from_slice(&rtx_seq.to_be_bytes());
            rtx[8..12].copy_from_slice(&params.ssrc.to_be_bytes());
            *rtx_seq = rtx_seq.wrapping_add(1);
            scratch[..12].copy_from_slice(&rtx);
            scratch[12..payload_start].copy_from_slice(&pkt[12..payload_start]);
            scratch[payload_start..payload_start + 2].copy_from_slice(&header[2..4]);
            scratch[payload_start + 2..len].copy_from_slice(payload);
            len
        }
    };
    out.copy(sub.socket, sub.dest, &scratch[..len])
}
