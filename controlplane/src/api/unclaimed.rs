//! Unknown SSRCs no stream took, kept for one statistics round so that a stream which can take one a moment
//! later takes it at once.
//!
//! A SIP call's legs start sending the moment they have an answer, often before the controller has declared
//! their streams (or the address they send from): the workers report such RTP as `unknown_ssrc`, but each
//! (source, SSRC) only once per statistics round, so without this a stream declared a moment later would learn
//! its SSRC only at the next round's report, up to `telemetry.stats_interval_ms` of the call's first media
//! lost. Owns that memory: at most the workers' reports of one round (`workers ×` [`UNKNOWN_SSRCS_PER_ROUND`]),
//! each kept until the worker would report it again (one statistics interval). Never decides what a stream
//! takes: `Registry::plan_learn` does, as for a fresh report.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use ringfwd_dataplane::control::UNKNOWN_SSRCS_PER_ROUND;

/// One unknown SSRC a worker reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unclaimed {
    /// Where its RTP came from.
    pub source: SocketAddr,
    /// The SSRC no stream had.
    pub ssrc: u32,
    /// The payload type of the packet reported.
    pub payload_type: u8,
    /// When the report was taken.
    pub seen: Instant,
}

/// The unknown SSRCs of about the last statistics round, oldest first.
#[derive(Debug)]
pub struct UnclaimedSsrcs {
    entries: VecDeque<Unclaimed>,
    capacity: usize,
    keep_for: Duration,
}

impl UnclaimedSsrcs {
    /// Room for one round of reports from `workers` workers, each kept for `stats_interval`.
    pub fn new(workers: usize, stats_interval: Duration) -> UnclaimedSsrcs {
        let capacity = workers.max(1) * UNKNOWN_SSRCS_PER_ROUND;
        UnclaimedSsrcs { entries: VecDeque::with_capacity(capacity), capacity, keep_for: stats_interval }
    }

    /// Remembers a report no stream took (the newest of a pair replaces its older one; the oldest entry makes room).
    pub fn note(&mut self, report: Unclaimed) {
        self.entries.retain(|e| (e.source, e.ssrc) != (report.source, report.ssrc));
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(report);
    }

    /// Forgets what a stream took.
    pub fn claimed(&mut self, source: SocketAddr, ssrc: u32) {
        self.entries.retain(|e| (e.source, e.ssrc) != (source, ssrc));
    }

    /// The reports still worth offering at `now`, newest first, one per source and payload type (a source's
    /// newest SSRC with a payload type is the one it sends now); forgets the expired.
    pub fn fresh(&mut self, now: Instant) -> Vec<Unclaimed> {
        let keep_for = self.keep_for;
        self.entries.retain(|e| now.saturating_duration_since(e.seen) <= keep_for);
        let mut fresh: Vec<Unclaimed> = Vec::new();
        for entry in self.entries.iter().rev() {
            if !fresh.iter().any(|f| (f.source, f.payload_type) == (entry.source, entry.payload_type)) {
                fresh.push(*entry);
            }
        }
        fresh
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(port: u16, ssrc: u32, seen: Instant) -> Unclaimed {
        Unclaimed { source: SocketAddr::from(([127, 0, 0, 1], port)), ssrc, payload_type: 0, seen }
    }

    #[test]
    fn keeps_one_round_newest_first_one_per_source_and_payload_type() {
        let t0 = Instant::now();
        let mut unclaimed = UnclaimedSsrcs::new(1, Duration::from_millis(100));
        unclaimed.note(report(5000, 1, t0));
        unclaimed.note(report(5002, 2, t0));
        unclaimed.note(report(5000, 3, t0 + Duration::from_millis(10)));
        unclaimed.note(Unclaimed { payload_type: 96, ..report(5000, 4, t0) });
        let fresh = unclaimed.fresh(t0 + Duration::from_millis(50));
        assert_eq!(fresh.iter().map(|r| r.ssrc).collect::<Vec<_>>(), [4, 3, 2], "the newest of each source and type");
        unclaimed.claimed(fresh[1].source, 3);
        unclaimed.claimed(fresh[0].source, 4);
        assert_eq!(unclaimed.fresh(t0 + Duration::from_millis(50)).iter().map(|r| r.ssrc).collect::<Vec<_>>(), [2, 1]);
        assert!(unclaimed.fresh(t0 + Duration::from_millis(200)).is_empty(), "a round later the worker reports again");
        assert!(unclaimed.is_empty());
    }

    #[test]
    fn holds_at_most_one_round_of_reports() {
        let t0 = Instant::now();
        let mut unclaimed = UnclaimedSsrcs::new(2, Duration::from_secs(1));
        for i in 0..100u16 {
            unclaimed.note(report(6000 + 2 * i, u32::from(i), t0));
        }
        let fresh = unclaimed.fresh(t0);
        assert_eq!(fresh.len(), 2 * UNKNOWN_SSRCS_PER_ROUND);
        assert_eq!(fresh.first().map(|r| r.ssrc), Some(99), "the oldest made room");
    }
}
