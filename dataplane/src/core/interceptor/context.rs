//! What an interceptor may ask for: packets out, a timer, the time.
//!
//! Owns the [`Context`] handed to every interceptor call and the per-worker [`Outbox`] the context
//! writes into: a preallocated arena of `capacity` slots of `slot_bytes` each, filled in place by the
//! interceptor's writer closure and drained by the forwarder, which resolves each [`Target`] to an
//! address and a socket after the chain has run. A full outbox refuses (the caller counts it); it
//! never grows. Must never allocate after construction or send anything itself.

use std::time::Instant;

use super::plugin::PluginId;
use crate::core::event::PluginFault;

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
}

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
        }
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
}

impl<'a> Context<'a> {
    /// A context at `now` for a chain of `scope`, emitting into `outbox`, with the calling
    /// interceptor's timer slot `wake`.
    pub fn new(now: Instant, scope: Scope, outbox: &'a mut Outbox, wake: &'a mut Option<Instant>) -> Context<'a> {
        Context { now, scope, outbox, wake, refused: 0, scheduled: None }
    }

    /// The current time (the worker's, passed in).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The stream or subscription this chain belongs to.
    pub fn scope(&self) -> Scope {
        self.scope
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
        self.emit(Target::Retransmit { flow }, |slot| match slot.get_mut(..pkt.len()) {
            Some(dst) => {
                dst.copy_from_slice(pkt);
                pkt.len()
            }
            None => 0,
        })
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
    }
}
