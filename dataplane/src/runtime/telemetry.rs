//! The worker → control-plane rings: statistics and events.
//!
//! Owns [`UpRing`] (a bounded lock-free queue: the worker pushes, a full ring drops the item and counts
//! it — the worker never waits; the control plane pops), its two uses [`StatsRing`] (of [`StatsRecord`]s)
//! and [`EventRing`] (of [`WorkerEvent`]s), and [`StatsPacer`] (when the worker publishes a round). Must
//! never allocate after construction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;

pub use crate::core::event::WorkerEventKind;
use crate::core::interceptor::Snapshot;
use crate::core::{Forwarder, Numbering, StatsKey, SubscriptionId};

/// One stream's or subscription's statistics at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatsRecord {
    /// The worker that owns it.
    pub worker: usize,
    /// Whose statistics.
    pub key: StatsKey,
    /// When the worker took them.
    pub at: Instant,
    /// The figures.
    pub snapshot: Snapshot,
}

/// What one subscription last put on the wire, as a worker published it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumberingRecord {
    /// The worker that owns it.
    pub worker: usize,
    /// The subscription.
    pub id: SubscriptionId,
    /// Its last outgoing sequence number and timestamp, and when.
    pub numbering: Numbering,
    /// Its offsets `(seq_offset, ts_offset)`, which number its next packet; `None` while a rebase is pending.
    pub offsets: Option<(u16, u32)>,
}

/// One worker event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerEvent {
    /// The worker it happened in.
    pub worker: usize,
    /// When.
    pub at: Instant,
    /// What.
    pub kind: WorkerEventKind,
}

/// A bounded lock-free queue from one worker to the control plane: the worker pushes (a full ring drops
/// the item and counts it, the worker never waits), the control plane pops.
#[derive(Debug)]
pub struct UpRing<T> {
    queue: ArrayQueue<T>,
    dropped: AtomicU64,
}

impl<T> UpRing<T> {
    /// A ring of `capacity` items (at least 1).
    pub fn new(capacity: usize) -> UpRing<T> {
        UpRing { queue: ArrayQueue::new(capacity.max(1)), dropped: AtomicU64::new(0) }
    }

    /// Queues an item; false (and counted as dropped) when the ring is full.
    pub fn push(&self, item: T) -> bool {
        if self.queue.push(item).is_ok() {
            true
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// The oldest queued item.
    pub fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    /// Items dropped because the ring was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Items queued now (for the occupancy gauge).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Items the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }
}

/// One worker's statistics ring, sized at start-up to hold one full round of its streams and
/// subscriptions.
pub type StatsRing = UpRing<StatsRecord>;

/// One worker's event ring.
pub type EventRing = UpRing<WorkerEvent>;

/// One worker's numbering ring, sized at start-up to hold one full round of its subscriptions.
pub type NumberingRing = UpRing<NumberingRecord>;

impl NumberingRing {
    /// Pushes what every subscription of `forwarder` that sent something last put on the wire.
    pub fn publish(&self, worker: usize, forwarder: &Forwarder) {
        forwarder.for_each_numbering(|id, numbering, offsets| {
            self.push(NumberingRecord { worker, id, numbering, offsets });
        });
    }
}

impl StatsRing {
    /// Pushes the snapshot of every stream and subscription of `forwarder` taken at `now`.
    pub fn publish(&self, worker: usize, forwarder: &Forwarder, now: Instant) {
        forwarder.for_each_snapshot(|key, snapshot| {
            self.push(StatsRecord { worker, key, at: now, snapshot: *snapshot });
        });
    }
}

/// When a worker publishes its statistics (every `interval`) and its subscriptions' numbering (every
/// `numbering_interval`), each first one interval after creation.
#[derive(Debug)]
pub struct StatsPacer {
    stats: Schedule,
    numbering: Schedule,
}

/// Which rounds are due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// A statistics round.
    pub stats: bool,
    /// A numbering round.
    pub numbering: bool,
}

#[derive(Debug)]
struct Schedule {
    interval: Duration,
    next: Instant,
}

impl Schedule {
    fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        // Late (the worker was busy or asleep): the next round is a whole interval after this one.
        self.next = (self.next + self.interval).max(now + self.interval);
        true
    }
}

impl StatsPacer {
    /// A pacer whose statistics rounds fall every `interval` and numbering rounds every `numbering_interval`, the
    /// first of each one interval after `now`.
    pub fn new(interval: Duration, numbering_interval: Duration, now: Instant) -> StatsPacer {
        StatsPacer {
            stats: Schedule { interval, next: now + interval },
            numbering: Schedule { interval: numbering_interval, next: now + numbering_interval },
        }
    }

    /// The rounds due at `now` (each once); the next of each falls one interval later.
    pub fn due(&mut self, now: Instant) -> Due {
        Due { stats: self.stats.due(now), numbering: self.numbering.due(now) }
    }

    /// When the next round (of either kind) is due.
    pub fn next(&self) -> Instant {
        self.stats.next.min(self.numbering.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{StreamId, SubscriptionId};

    fn record(key: StatsKey) -> StatsRecord {
        StatsRecord { worker: 0, key, at: Instant::now(), snapshot: Snapshot { packets: 3, ..Snapshot::default() } }
    }

    #[test]
    fn a_full_ring_drops_and_counts() {
        let ring = StatsRing::new(2);
        assert!(ring.push(record(StatsKey::Stream(StreamId(1)))));
        assert!(ring.push(record(StatsKey::Subscription(SubscriptionId(2)))));
        assert!(!ring.push(record(StatsKey::Stream(StreamId(3)))));
        assert_eq!(ring.dropped(), 1);
        assert_eq!(ring.pop().map(|r| r.key), Some(StatsKey::Stream(StreamId(1))));
        assert_eq!(
            ring.pop().map(|r| (r.key, r.snapshot.packets)),
            Some((StatsKey::Subscription(SubscriptionId(2)), 3))
        );
        assert!(ring.pop().is_none());
    }

    #[test]
    fn the_pacer_fires_once_per_interval() {
        let t0 = Instant::now();
        let mut pacer = StatsPacer::new(Duration::from_secs(1), Duration::from_secs(60), t0);
        let stats = |pacer: &mut StatsPacer, ms| pacer.due(t0 + Duration::from_millis(ms)).stats;
        assert!(!stats(&mut pacer, 999));
        assert!(stats(&mut pacer, 1000));
        assert!(!stats(&mut pacer, 1500));
        assert!(stats(&mut pacer, 2100));
        assert!(!stats(&mut pacer, 2999));
        assert!(stats(&mut pacer, 10_000), "late: fires once");
        assert!(!stats(&mut pacer, 10_000));
        assert_eq!(pacer.next(), t0 + Duration::from_secs(11));
    }

    #[test]
    fn numbering_rounds_keep_their_own_interval() {
        let t0 = Instant::now();
        let mut pacer = StatsPacer::new(Duration::from_secs(1), Duration::from_millis(100), t0);
        assert_eq!(pacer.next(), t0 + Duration::from_millis(100));
        assert_eq!(pacer.due(t0 + Duration::from_millis(100)), Due { stats: false, numbering: true });
        assert_eq!(pacer.next(), t0 + Duration::from_millis(200));
        assert_eq!(pacer.due(t0 + Duration::from_millis(1000)), Due { stats: true, numbering: true });
        assert_eq!(pacer.next(), t0 + Duration::from_millis(1100));
    }
}
