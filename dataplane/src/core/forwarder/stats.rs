//! Statistics read-out: every stream's and subscription's interceptor snapshot.
//!
//! Owns [`StatsKey`], [`Forwarder::for_each_snapshot`], which the worker calls once per stats
//! interval (not per packet) to publish what its chains know, [`Forwarder::for_each_numbering`] (what each
//! subscriber last received, which the control plane keeps so that a restart continues its numbering), and the round's activity check that
//! queues inactive-stream and rate-limit events ([`Forwarder::check_activity`]). Must never allocate: snapshots are
//! plain `Copy` structs built on the stack and handed to the caller one by one.

use std::time::{Duration, Instant};

use super::Forwarder;
use crate::core::command::{StreamId, SubscriptionId};
use crate::core::continuity::Numbering;
use crate::core::event::WorkerEventKind;
use crate::core::interceptor::Snapshot;

/// Whose statistics a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatsKey {
    /// A stream (its ingress chain: what the publisher delivered).
    Stream(StreamId),
    /// A subscription (its egress chain: what was sent, and what the subscriber reports).
    Subscription(SubscriptionId),
}

impl Forwarder {
    /// Calls `f` with what every subscription that sent something last put on the wire (outgoing sequence number,
    /// timestamp and when; for one still to rebase, what its next packet continues from): the numbering its
    /// subscriber saw; and its current offsets (`(seq_offset, ts_offset)`: the next packet goes out numbered by them),
    /// `None` while a rebase is pending (the next packet is numbered from the last one instead).
    pub fn for_each_numbering(&self, mut f: impl FnMut(SubscriptionId, Numbering, Option<(u16, u32)>)) {
        for (_, sub) in self.table.subscriptions.iter() {
            if let Some(last) = sub.last_sent {
                let offsets = (!sub.rebase_pending).then_some((sub.rewrite.seq_offset, sub.rewrite.ts_offset));
                f(sub.id, last.into(), offsets);
            }
        }
    }

    /// Calls `f` with the snapshot of every stream and subscription whose chain is not empty.
    pub fn for_each_snapshot(&self, mut f: impl FnMut(StatsKey, &Snapshot)) {
        for (_, stream) in self.table.streams.iter() {
            if !stream.ingress.is_empty() {
                let mut snapshot = Snapshot::default();
                stream.ingress.snapshot(&mut snapshot);
                f(StatsKey::Stream(stream.id), &snapshot);
            }
        }
        for (_, sub) in self.table.subscriptions.iter() {
            if !sub.egress.is_empty() {
                let mut snapshot = Snapshot::default();
                sub.egress.snapshot(&mut snapshot);
                f(StatsKey::Subscription(sub.id), &snapshot);
            }
        }
    }
}

impl Forwarder {
    /// Once per statistics round: reports every stream that received nothing for `inactive_after` as
    /// inactive (its next packet reports it started again), and every stream whose source went over a
    /// rate limit since the last round.
    pub fn check_activity(&mut self, now: Instant, inactive_after: Duration) {
        self.unreachable.clear();
        self.unknown_ssrcs.clear();
        for (_, stream) in self.table.streams.iter_mut() {
            if stream.last_packet.is_some_and(|at| now.saturating_duration_since(at) >= inactive_after) {
                stream.last_packet = None;
                self.events.push(WorkerEventKind::StreamInactive { stream: stream.id });
            }
            if stream.rate_limited_pending > 0 {
                let dropped = std::mem::take(&mut stream.rate_limited_pending);
                self.events.push(WorkerEventKind::RateLimited { stream: stream.id, dropped });
            }
        }
    }

    /// Hands every queued event to `f` (oldest first) and empties the queue.
    pub fn drain_events(&mut self, f: impl FnMut(WorkerEventKind)) {
        self.events.drain(f);
    }

    /// True when events wait to be drained.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Events dropped because the forwarder's queue was full, since start.
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped()
    }
}

/// Destinations reported unreachable per statistics round at most (more are reported next round).
pub const UNREACHABLE_PER_ROUND: usize = 16;

/// Unknown `(source, SSRC)` pairs reported per statistics round at most (more are reported next round).
pub const UNKNOWN_SSRCS_PER_ROUND: usize = 16;

impl Forwarder {
    /// RTP with an unknown SSRC arrived from `source`: queues an `UnknownSsrc` event unless this pair was
    /// reported this round or the round's reports are used up. A bounded scan, so a flood of unknown SSRCs costs
    /// no more than the packets that carry them.
    pub(super) fn note_unknown_ssrc(&mut self, source: std::net::SocketAddr, ssrc: u32, payload_type: u8) {
        let key = (source, ssrc);
        if self.unknown_ssrcs.contains(&key) || self.unknown_ssrcs.len() == UNKNOWN_SSRCS_PER_ROUND {
            return;
        }
        self.unknown_ssrcs.push(key);
        self.events.push(WorkerEventKind::UnknownSsrc { source, ssrc, payload_type });
    }

    /// An ICMP error said `dest` is unreachable (`errno`): queues a `SubscriberUnreachable` event for each
    /// subscription sending there, at most once per destination per statistics round.
    pub fn note_unreachable(&mut self, dest: std::net::SocketAddr, errno: i32) {
        if self.unreachable.contains(&dest) || self.unreachable.len() == UNREACHABLE_PER_ROUND {
            return;
        }
        self.unreachable.push(dest);
        for (_, sub) in self.table.subscriptions.iter() {
            if sub.dest == dest {
                self.events.push(WorkerEventKind::SubscriberUnreachable { subscription: sub.id, errno });
            }
        }
    }
}

impl Forwarder {
    /// Before `key` is removed: keeps the last snapshot of it (and, for a stream, of each of its
    /// subscriptions) so the statistics of what ended are published once more. Runs when a command is
    /// applied, so it may allocate.
    pub(super) fn keep_final_snapshots(&mut self, key: StatsKey) {
        let mut keep = |key, chain: &crate::core::interceptor::Chain| {
            if !chain.is_empty() {
                let mut snapshot = Snapshot::default();
                chain.snapshot(&mut snapshot);
                self.final_snapshots.push((key, snapshot));
            }
        };
        match key {
            StatsKey::Stream(id) => {
                let Some(idx) = self.table.stream_index(id) else {
                    return;
                };
                let stream = &self.table.streams[idx as usize];
                keep(key, &stream.ingress);
                for &flow in &stream.subscriptions {
                    let sub = &self.table.subscriptions[flow as usize];
                    keep(StatsKey::Subscription(sub.id), &sub.egress);
                }
            }
            StatsKey::Subscription(id) => {
                if let Some(flow) = self.table.subscription_index(id) {
                    keep(key, &self.table.subscriptions[flow as usize].egress);
                }
            }
        }
    }

    /// Hands the last snapshots of removed streams and subscriptions to `f` and forgets them.
    pub fn drain_final_snapshots(&mut self, mut f: impl FnMut(StatsKey, &Snapshot)) {
        for (key, snapshot) in self.final_snapshots.drain(..) {
            f(key, &snapshot);
        }
    }
}
