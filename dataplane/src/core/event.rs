//! Events a worker's forwarder notices, queued for the runtime to publish.
//!
//! Owns [`WorkerEventKind`] and [`EventQueue`], a bounded queue reserved at construction (a full queue
//! drops the event and counts it), filled on the packet path only when something changes (a stream's
//! first packet, a latch, a publisher's BYE, a plugin disabled) and once per statistics round (inactive streams, rate limiting); the runtime
//! drains it into the worker's event ring. Must never allocate after construction.

use std::net::SocketAddr;

use super::command::{StreamId, SubscriptionId};
use super::interceptor::PluginId;

/// Why a plugin instance was disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginFault {
    /// A native plugin's call panicked.
    Panic,
    /// A WebAssembly call trapped.
    Trap,
    /// A WebAssembly call ran out of fuel.
    OutOfFuel,
    /// A WebAssembly call answered a verdict the ABI does not define.
    BadVerdict,
    /// A WebAssembly call rewrote its packet into something that is not an RTP packet of the same SSRC, or too long.
    BadRewrite,
}

impl PluginFault {
    /// Its name in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginFault::Panic => "panic",
            PluginFault::Trap => "trap",
            PluginFault::OutOfFuel => "out_of_fuel",
            PluginFault::BadVerdict => "bad_verdict",
            PluginFault::BadRewrite => "bad_rewrite",
        }
    }
}

/// Something that happened in a worker that the control plane turns into a lifecycle event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerEventKind {
    /// The stream's first packet arrived (after creation, or after it was inactive).
    StreamStarted {
        /// The stream.
        stream: StreamId,
    },
    /// No packet for the stream for `telemetry.inactive_after_ms`.
    StreamInactive {
        /// The stream.
        stream: StreamId,
    },
    /// The stream's source address changed: it latched, locked to its fallback, or re-latched after its
    /// source was silent for the latch window (a NAT rebinding).
    SourceChanged {
        /// The stream.
        stream: StreamId,
        /// The address it now takes packets from.
        source: SocketAddr,
    },
    /// The publisher's RTCP carried a BYE for the stream's SSRC (RFC 3550 §6.6): it says it stopped sending.
    /// One per such compound; the stream stays as it is (ringfwd forwards the BYE to its subscribers).
    StreamBye {
        /// The stream.
        stream: StreamId,
    },
    /// RTP with an SSRC no stream has arrived from `source` (e.g. a user agent that restarted, or a stream
    /// whose SSRC was not signalled). At most once per (source, SSRC) and at most
    /// `UNKNOWN_SSRCS_PER_ROUND` per statistics round; the packets are dropped as `unknown_ssrc` as before.
    UnknownSsrc {
        /// Where it came from.
        source: SocketAddr,
        /// Its SSRC.
        ssrc: u32,
        /// The payload type of the first such packet.
        payload_type: u8,
    },
    /// Sends to the subscriber failed with an ICMP-reported error (port or host unreachable).
    SubscriberUnreachable {
        /// The subscription.
        subscription: SubscriptionId,
        /// The errno the send completed with (e.g. ECONNREFUSED).
        errno: i32,
    },
    /// The stream's source went over its rate limit; `dropped` packets were dropped since the last event
    /// of this kind for the stream (at most one per stats interval per stream).
    RateLimited {
        /// The stream.
        stream: StreamId,
        /// Packets dropped.
        dropped: u64,
    },
    /// A plugin faulted on a packet or timer of the stream's ingress chain (`subscription: None`) or of the
    /// subscription's egress chain: that instance is disabled (a native plugin in that chain; a WebAssembly plugin's
    /// instance on this worker, for every chain there), and its packets take its failure path from now on.
    PluginDisabled {
        /// The plugin.
        plugin: PluginId,
        /// The stream whose chain (or whose subscription's chain) ran it.
        stream: StreamId,
        /// The subscription, for an egress chain.
        subscription: Option<SubscriptionId>,
        /// What happened.
        fault: PluginFault,
    },
}

/// The forwarder's bounded queue of events not yet handed to the runtime.
#[derive(Debug)]
pub struct EventQueue {
    events: Vec<WorkerEventKind>,
    dropped: u64,
}

impl EventQueue {
    /// A queue of at most `capacity` events (at least 1), reserved now.
    pub fn new(capacity: usize) -> EventQueue {
        EventQueue { events: Vec::with_capacity(capacity.max(1)), dropped: 0 }
    }

    /// Queues `event`; counts it as dropped when the queue is full.
    pub fn push(&mut self, event: WorkerEventKind) {
        if self.events.len() < self.events.capacity() {
            self.events.push(event);
        } else {
            self.dropped += 1;
        }
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Hands every queued event to `f`, oldest first, and empties the queue (keeping its memory).
    pub fn drain(&mut self, mut f: impl FnMut(WorkerEventKind)) {
        for event in self.events.drain(..) {
            f(event);
        }
    }

    /// Events dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_order_and_reusable() {
        let mut queue = EventQueue::new(2);
        let capacity = queue.events.capacity();
        for id in 0..3 {
            queue.push(WorkerEventKind::StreamStarted { stream: StreamId(id) });
        }
        assert_eq!(queue.dropped(), 3u64.saturating_sub(capacity as u64), "what did not fit is counted");
        let mut seen = Vec::new();
        queue.drain(|event| seen.push(event));
        assert_eq!(seen[0], WorkerEventKind::StreamStarted { stream: StreamId(0) });
        assert!(queue.is_empty());
        assert_eq!(queue.events.capacity(), capacity, "the memory is kept");
    }
}
