//! What each subscriber last received, kept so that a restart continues its numbering with no reuse.
//!
//! Owns [`Kept`] (a subscription's last outgoing sequence number and timestamp, when, its packet rate and offsets,
//! and whether it is exact: kept after its worker stopped), the rule of how a restored subscription goes on
//! ([`Kept::resume`]: exactly by its offsets after a stop or a takeover, else skipping ahead), [`Tracker`] (the latest record of each subscription from the workers'
//! numbering rings, with its rate) and [`keep`], the task that writes what changed every
//! `state.numbering_interval_ms`. The tracker is bounded: an entry no worker published for [`FORGET_AFTER`] (its
//! subscription is gone) is dropped. Must never block a worker: it only pops from their rings.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringfwd_dataplane::control::{Numbering, SubscriptionId};
use ringfwd_dataplane::control::{NumberingRecord, NumberingRing};
use serde::{Deserialize, Serialize};

use super::StateStore;
use crate::api::Api;
use crate::registry::Resume;

/// Fewest sequence numbers a restored subscription skips past the last kept one.
pub const MIN_SKIP: u16 = 16;
/// Most sequence numbers it skips (a quarter of the sequence space: a larger jump could read as going backwards).
pub const MAX_SKIP: u16 = 16_384;
/// How far the rate may have risen since it was kept: the skip covers the kept rate times this.
pub const RATE_HEADROOM: f64 = 1.25;
/// A tracked subscription no worker published for this long is gone, and forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(5);

/// A subscription's numbering as kept in the store.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// Its last outgoing sequence number.
    pub seq: u16,
    /// Its last outgoing RTP timestamp.
    pub ts: u32,
    /// When that packet went out, Unix nanoseconds.
    pub unix_ns: u64,
    /// Packets per second it was sending then.
    pub rate_pps: f64,
    /// Its offsets `(seq_offset, ts_offset)` then (`None`: a rebase was pending).
    #[serde(default)]
    pub offsets: Option<(u16, u32)>,
    /// Kept after its worker stopped (a stop or a takeover): nothing was sent since.
    #[serde(default)]
    pub exact: bool,
}

impl Kept {
    /// Where a restored subscription continues, at `now` (Unix nanoseconds `now_unix_ns`): its next packet goes out
    /// as `seq + skip` with `skip` = what it could have sent since the kept packet at up to [`RATE_HEADROOM`] times its
    /// kept rate, at least [`MIN_SKIP`], at most [`MAX_SKIP`]; its timestamp advanced by the real time since (the data
    /// plane's rebase, from the returned `at`).
    pub fn continuation(&self, now_unix_ns: u64, now: Instant) -> Numbering {
        let elapsed = Duration::from_nanos(now_unix_ns.saturating_sub(self.unix_ns));
        let at = now.checked_sub(elapsed).unwrap_or(now);
        if self.exact {
            // Nothing was sent since: the next packet is the next number.
            return Numbering { seq: self.seq, ts: self.ts, at };
        }
        let could_have_sent = (self.rate_pps.max(0.0) * elapsed.as_secs_f64() * RATE_HEADROOM).ceil();
        let skip = if could_have_sent >= f64::from(MAX_SKIP) {
            MAX_SKIP
        } else {
            (could_have_sent as u16).max(MIN_SKIP) // below MAX_SKIP: fits
        };
        Numbering { seq: self.seq.wrapping_add(skip - 1), ts: self.ts, at }
    }
}

impl Kept {
    /// How a restored subscription goes on at `now` (Unix nanoseconds `now_unix_ns`): kept exactly with its offsets
    /// (a takeover), by those offsets — its numbering continues as if nothing happened; otherwise from
    /// [`Kept::continuation`].
    pub fn resume(&self, now_unix_ns: u64, now: Instant) -> Resume {
        match (self.exact, self.offsets) {
            (true, Some((seq_offset, ts_offset))) => Resume::Offsets { seq_offset, ts_offset },
            _ => Resume::After(self.continuation(now_unix_ns, now)),
        }
    }
}

/// The latest numbering of each subscription the workers publish.
#[derive(Debug, Default)]
pub struct Tracker {
    entries: HashMap<SubscriptionId, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    numbering: Numbering,
    offsets: Option<(u16, u32)>,
    rate_pps: f64,
    /// When a worker last published it (to forget gone subscriptions).
    seen: Instant,
    /// Changed since it was last written.
    dirty: bool,
}

impl Tracker {
    /// Takes `record`, seen at `now`: a new sequence number marks it to be written, and updates its rate (the mean of
    /// the last interval's rate and the previous estimate).
    pub fn ingest(&mut self, record: &NumberingRecord, now: Instant) {
        let new = record.numbering;
        match self.entries.get_mut(&record.id) {
            Some(entry) => {
                entry.seen = now;
                if entry.numbering.seq == new.seq && entry.offsets == record.offsets {
                    return;
                }
                entry.offsets = record.offsets;
                let sent = new.seq.wrapping_sub(entry.numbering.seq);
                let span = new.at.saturating_duration_since(entry.numbering.at).as_secs_f64();
                if span > 0.0 {
                    let rate = f64::from(sent) / span;
                    entry.rate_pps = if entry.rate_pps > 0.0 { (entry.rate_pps + rate) / 2.0 } else { rate };
                }
                entry.numbering = new;
                entry.dirty = true;
            }
            None => {
                let entry = Entry { numbering: new, offsets: record.offsets, rate_pps: 0.0, seen: now, dirty: true };
                self.entries.insert(record.id, entry);
            }
        }
    }

    /// Forgets what no worker published since `FORGET_AFTER` before `now`.
    pub fn prune(&mut self, now: Instant) {
        self.entries.retain(|_, e| now.saturating_duration_since(e.seen) <= FORGET_AFTER);
    }

    /// Subscriptions changed since they were last taken.
    pub fn dirty(&self) -> BTreeSet<SubscriptionId> {
        self.entries.iter().filter(|(_, e)| e.dirty).map(|(id, _)| *id).collect()
    }

    /// Takes subscription `id`'s numbering to be written (clearing its mark), as kept at Unix time `now_unix_ns` when
    /// the monotonic clock reads `now`.
    pub fn take(&mut self, id: SubscriptionId, now_unix_ns: u64, now: Instant) -> Option<Kept> {
        self.take_as(id, now_unix_ns, now, false)
    }

    /// [`Tracker::take`], marked `exact` (its worker stopped: nothing was sent since).
    pub fn take_as(&mut self, id: SubscriptionId, now_unix_ns: u64, now: Instant, exact: bool) -> Option<Kept> {
        let entry = self.entries.get_mut(&id)?;
        entry.dirty = false;
        let age = now.saturating_duration_since(entry.numbering.at);
        Some(Kept {
            seq: entry.numbering.seq,
            ts: entry.numbering.ts,
            unix_ns: now_unix_ns.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)),
            rate_pps: entry.rate_pps,
            offsets: entry.offsets,
            exact,
        })
    }

    /// Takes every record queued in `rings` at `now`.
    pub fn drain(&mut self, rings: &[Arc<NumberingRing>], now: Instant) {
        for ring in rings {
            while let Some(record) = ring.pop() {
                self.ingest(&record, now);
            }
        }
    }

    /// Every tracked subscription.
    pub fn all(&self) -> BTreeSet<SubscriptionId> {
        self.entries.keys().copied().collect()
    }

    /// Subscriptions tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when none is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Every `interval` until `stop`: drains the workers' numbering `rings`, and writes to `store` what changed, named by
/// `api`'s registry (a subscription it no longer has is skipped). A failed write is logged and retried next round.
pub async fn keep(
    api: Arc<Api>,
    rings: Vec<Arc<NumberingRing>>,
    store: Arc<StateStore>,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    crate::clock::every(interval, stop, || round(&api, &rings, &store, &tracker)).await;
}

/// One round of [`keep`].
async fn round(api: &Arc<Api>, rings: &[Arc<NumberingRing>], store: &Arc<StateStore>, tracker: &Mutex<Tracker>) {
    let dirty = {
        let Ok(mut tracker) = tracker.lock() else {
            return;
        };
        let now = Instant::now();
        tracker.drain(rings, now);
        tracker.prune(now);
        tracker.dirty()
    };
    if dirty.is_empty() {
        return;
    }
    let names = api.subscription_names(dirty).await;
    let rows: Vec<(String, String, Kept)> = {
        let Ok(mut tracker) = tracker.lock() else {
            return;
        };
        let (now_unix_ns, now) = (crate::clock::unix_ns(), Instant::now());
        names
            .into_iter()
            .filter_map(|(id, (session, subscription, _, _))| {
                Some((session, subscription, tracker.take(id, now_unix_ns, now)?))
            })
            .collect()
    };
    let store = Arc::clone(store);
    let written = tokio::task::spawn_blocking(move || store.keep_numbering(&rows)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not keep the subscriptions' numbering; retried next round"),
        Err(error) => tracing::warn!(%error, "the numbering write did not finish"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, seq: u16, at: Instant) -> NumberingRecord {
        NumberingRecord { worker: 0, id: SubscriptionId(id), numbering: Numbering { seq, ts: 0, at }, offsets: None }
    }

    #[test]
    fn the_skip_covers_what_the_kept_rate_could_have_sent_since_within_bounds() {
        let now = Instant::now();
        let kept =
            Kept { seq: 65_530, ts: 1000, unix_ns: 10_000_000_000, rate_pps: 100.0, offsets: None, exact: false };
        // 2 s at 100 pps, with headroom: 250; the next packet is seq + 250 (wrapping).
        let c = kept.continuation(12_000_000_000, now);
        assert_eq!(c.seq.wrapping_add(1), 65_530u16.wrapping_add(250));
        assert_eq!((c.ts, c.at), (1000, now - Duration::from_secs(2)));
        let idle = Kept { rate_pps: 0.0, ..kept };
        assert_eq!(idle.continuation(12_000_000_000, now).seq.wrapping_add(1), 65_530u16.wrapping_add(MIN_SKIP));
        let long_ago = kept.continuation(10_000_000_000 + 3_600 * 1_000_000_000, now);
        assert_eq!(long_ago.seq.wrapping_add(1), 65_530u16.wrapping_add(MAX_SKIP));
        let clock_back = kept.continuation(1, now);
        assert_eq!((clock_back.seq.wrapping_add(1), clock_back.at), (65_530u16.wrapping_add(MIN_SKIP), now));
    }

    #[test]
    fn a_takeover_goes_on_by_the_offsets_and_a_crash_skips_ahead() {
        let now = Instant::now();
        let kept =
            Kept { seq: 9, ts: 1000, unix_ns: 10_000_000_000, rate_pps: 100.0, offsets: Some((3, 4)), exact: true };
        assert_eq!(kept.resume(12_000_000_000, now), Resume::Offsets { seq_offset: 3, ts_offset: 4 });
        let pending = Kept { offsets: None, ..kept };
        let Resume::After(next) = pending.resume(12_000_000_000, now) else { panic!() };
        assert_eq!(next.seq, 9, "exact: the next packet is number 10, no skip");
        let crashed = Kept { exact: false, ..kept };
        let Resume::After(next) = crashed.resume(12_000_000_000, now) else { panic!("a crash rebases") };
        assert_eq!(next.seq.wrapping_add(1), 9 + 250);
    }

    #[test]
    fn the_tracker_measures_the_rate_marks_changes_and_forgets_the_gone() {
        let t0 = Instant::now();
        let mut tracker = Tracker::default();
        tracker.ingest(&record(1, 65_500, t0), t0);
        tracker.ingest(&record(2, 7, t0), t0);
        assert_eq!(tracker.dirty().len(), 2);
        let kept = tracker.take(SubscriptionId(1), 5_000_000_000, t0).unwrap();
        assert_eq!((kept.seq, kept.unix_ns, kept.rate_pps), (65_500, 5_000_000_000, 0.0));
        // 100 packets (across the wrap) in 100 ms: 1000 pps.
        let t1 = t0 + Duration::from_millis(100);
        tracker.ingest(&record(1, 64, t1), t1);
        tracker.ingest(&record(2, 7, t1), t1);
        assert_eq!(tracker.dirty(), BTreeSet::from([SubscriptionId(1), SubscriptionId(2)]), "2 was never taken");
        let kept = tracker.take(SubscriptionId(1), 6_000_000_000, t1 + Duration::from_millis(10)).unwrap();
        assert_eq!((kept.seq, kept.rate_pps.round(), kept.unix_ns), (64, 1000.0, 5_990_000_000));
        tracker.take(SubscriptionId(2), 0, t1);
        tracker.ingest(&record(2, 7, t1), t1);
        assert!(tracker.dirty().is_empty(), "an unchanged sequence number is not written again");
        tracker.prune(t1 + FORGET_AFTER + Duration::from_millis(1));
        assert!(tracker.is_empty());
    }
}
