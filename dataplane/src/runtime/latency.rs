//! The worker's forwarding-latency histogram and its lock-free export.
//!
//! Owns [`LatencyRecorder`] (one per worker, written only by it: a count per exported bucket, the exact sum and
//! the packets waiting for their sends to be submitted) and [`LatencyBuckets`] (the atomic mirror
//! the control plane reads: cumulative counts per bound of [`LATENCY_BUCKET_BOUNDS_NS`], the count and the sum).
//!
//! What is measured: for each datagram received from a media socket that made the worker queue at least one
//! send, the time from the `now` the worker read for the batch it arrived in to the moment the driver handed
//! its sends to the kernel (io_uring: the send entries are on the submission queue, the submit follows in the
//! same loop iteration; mmsg: just before the `sendmmsg` call). One record per such datagram, however many
//! copies it fanned out to. Handed-over packets, interceptor timers and dropped or consumed packets are not
//! recorded. Time a datagram waited in the socket before the worker read it — up to `idle.batch_window_us`
//! when the worker was sleeping — is not in it: the one-way latency the bench's sink measures includes it. Must never allocate, lock or make a system call per packet: the driver calls
//! [`LatencyRecorder::produced`] per packet and [`LatencyRecorder::submitted`] once per flush. An export costs 14
//! stores whatever was recorded: a worker publishes often (before it blocks), and walking a full histogram there
//! took over half of a worker's time at 50 k packets/s with no batch window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds of the exported histogram buckets, in nanoseconds (5 µs .. 50 ms); `+Inf` is implied.
pub const LATENCY_BUCKET_BOUNDS_NS: [u64; 13] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000,
    50_000_000,
];
/// Buckets counted: one per bound, and the last for latencies above every bound (`+Inf`).
const BUCKETS: usize = LATENCY_BUCKET_BOUNDS_NS.len() + 1;

/// One consistent-enough reading of [`LatencyBuckets`]: `cumulative[i]` counts the latencies at most
/// `LATENCY_BUCKET_BOUNDS_NS[i]`; `count` counts all of them (the `+Inf` bucket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Cumulative counts, one per bound of [`LATENCY_BUCKET_BOUNDS_NS`], non-decreasing.
    pub cumulative: [u64; LATENCY_BUCKET_BOUNDS_NS.len()],
    /// Every recorded latency; at least the last cumulative count.
    pub count: u64,
    /// Sum of the recorded latencies, in nanoseconds.
    pub sum_ns: u64,
}

/// The atomic mirror of one worker's histogram: the worker exports, any thread snapshots.
#[derive(Debug, Default)]
pub struct LatencyBuckets {
    cumulative: [AtomicU64; LATENCY_BUCKET_BOUNDS_NS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl LatencyBuckets {
    /// The last exported values. The worker may be exporting meanwhile, so the reading is made consistent:
    /// counts never decrease with the bound and `count` is at least every bucket.
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut snapshot = LatencySnapshot {
            count: self.count.load(Ordering::Relaxed),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            ..LatencySnapshot::default()
        };
        for (to, from) in snapshot.cumulative.iter_mut().zip(&self.cumulative) {
            *to = from.load(Ordering::Relaxed);
        }
        for i in (0..snapshot.cumulative.len() - 1).rev() {
            snapshot.cumulative[i] = snapshot.cumulative[i].min(snapshot.cumulative[i + 1]);
        }
        snapshot.count = snapshot.count.max(snapshot.cumulative[snapshot.cumulative.len() - 1]);
        snapshot
    }
}

/// One worker's latency histogram (see the module documentation for what it measures).
#[derive(Debug)]
pub struct LatencyRecorder {
    /// Latencies per bucket: `per_bucket[i]` those at most `LATENCY_BUCKET_BOUNDS_NS[i]` and above the bound
    /// before; the last those above every bound.
    per_bucket: [u64; BUCKETS],
    sum_ns: u64,
    /// Packets that queued sends since the last [`LatencyRecorder::submitted`].
    pending: u64,
    /// Something was recorded since the last export.
    dirty: bool,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder (recording never allocates).
    pub fn new() -> LatencyRecorder {
        LatencyRecorder { per_bucket: [0; BUCKETS], sum_ns: 0, pending: 0, dirty: false }
    }

    /// The packet being processed queued at least one send (call once per such packet).
    pub fn produced(&mut self) {
        self.pending += 1;
    }

    /// Whether packets wait for [`LatencyRecorder::submitted`].
    pub fn has_pending(&self) -> bool {
        self.pending > 0
    }

    /// The sends of every packet since the last call, all received in the batch read at `received_at`, were
    /// handed to the kernel at `submitted_at`: records one latency per packet.
    pub fn submitted(&mut self, received_at: Instant, submitted_at: Instant) {
        if self.pending > 0 {
            self.record_n(submitted_at.saturating_duration_since(received_at), self.pending);
            self.pending = 0;
        }
    }

    /// Records `packets` latencies of `latency` each.
    pub fn record_n(&mut self, latency: Duration, packets: u64) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKET_BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.per_bucket[bucket] = self.per_bucket[bucket].saturating_add(packets);
        self.sum_ns = self.sum_ns.saturating_add(ns.saturating_mul(packets));
        self.dirty = true;
    }

    /// Packets recorded since start.
    pub fn count(&self) -> u64 {
        self.per_bucket.iter().fold(0u64, |total, &n| total.saturating_add(n))
    }

    /// Writes the cumulative bucket counts, the count and the sum to `to` (nothing when nothing was recorded
    /// since the last export). Allocates nothing; a fixed, small number of stores.
    pub fn export(&mut self, to: &LatencyBuckets) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let mut cumulative = 0u64;
        for (slot, &count) in to.cumulative.iter().zip(&self.per_bucket) {
            cumulative = cumulative.saturating_add(count);
            slot.store(cumulative, Ordering::Relaxed);
        }
        to.sum_ns.store(self.sum_ns, Ordering::Relaxed);
        to.count.store(self.count(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn export_is_cumulative_per_bound() {
        let mut recorder = LatencyRecorder::new();
        recorder.record_n(US * 3, 2); // <= 5 µs
        recorder.record_n(US * 7, 1); // <= 10 µs
        recorder.record_n(US * 40, 4); // <= 50 µs
        recorder.record_n(Duration::from_secs(60), 1); // only +Inf
        let buckets = LatencyBuckets::default();
        recorder.export(&buckets);
        let s = buckets.snapshot();
        assert_eq!(s.cumulative[..5], [2, 3, 3, 7, 7]);
        assert_eq!(s.cumulative[12], 7, "the 60 s latency is above the 50 ms bound");
        assert_eq!(s.count, 8);
        assert_eq!(s.sum_ns, 2 * 3_000 + 7_000 + 4 * 40_000 + 60_000_000_000);
        assert!(s.cumulative.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_latency_on_a_bound_counts_under_it() {
        let mut recorder = LatencyRecorder::new();
        recorder.record_n(US * 5, 1);
        recorder.record_n(Duration::from_nanos(5_001), 1);
        recorder.record_n(Duration::ZERO, 1);
        let buckets = LatencyBuckets::default();
        recorder.export(&buckets);
        assert_eq!(buckets.snapshot().cumulative[..2], [2, 3]);
    }

    #[test]
    fn one_record_per_packet_that_produced_sends_at_submission() {
        let mut recorder = LatencyRecorder::new();
        let t0 = Instant::now();
        recorder.submitted(t0, t0 + US * 100);
        assert_eq!(recorder.count(), 0, "nothing pending");
        recorder.produced();
        recorder.produced();
        recorder.submitted(t0, t0 + US * 20);
        recorder.submitted(t0, t0 + US * 900);
        assert_eq!(recorder.count(), 2, "the second flush had nothing new");
        let buckets = LatencyBuckets::default();
        recorder.export(&buckets);
        assert_eq!(buckets.snapshot().cumulative[1..3], [0, 2], "20 µs falls under 25 µs, not 10 µs");
        assert_eq!(buckets.snapshot().sum_ns, 40_000);
    }

    #[test]
    fn snapshot_repairs_a_torn_read() {
        let buckets = LatencyBuckets::default();
        buckets.cumulative[0].store(9, Ordering::Relaxed);
        buckets.cumulative[1].store(4, Ordering::Relaxed);
        buckets.cumulative[12].store(5, Ordering::Relaxed);
        buckets.count.store(3, Ordering::Relaxed);
        let s = buckets.snapshot();
        assert!(s.cumulative.windows(2).all(|w| w[0] <= w[1]), "{s:?}");
        assert_eq!((s.cumulative[0], s.count), (0, 5));
    }

    #[test]
    fn export_without_records_keeps_the_last_values() {
        let mut recorder = LatencyRecorder::new();
        let buckets = LatencyBuckets::default();
        recorder.record_n(US, 1);
        recorder.export(&buckets);
        buckets.count.store(99, Ordering::Relaxed);
        recorder.export(&buckets);
        assert_eq!(buckets.snapshot().count, 99, "not rewritten: nothing new");
    }
}
