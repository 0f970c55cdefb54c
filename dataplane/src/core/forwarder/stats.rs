//! Statistics read-out: every stream's and subscription's interceptor snapshot.
//!
//! Owns [`StatsKey`] and [`Forwarder::for_each_snapshot`], which the worker calls once per stats
//! interval (not per packet) to publish what its chains know. Must never allocate: snapshots are
//! plain `Copy` structs built on the stack and handed to the caller one by one.

use super::Forwarder;
use crate::core::command::{StreamId, SubscriptionId};
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
