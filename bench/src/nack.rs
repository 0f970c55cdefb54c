//! The subscriber side of loss repair, sans-IO: which packets of one subscription are missing,
//! when to NACK them, and which arrived after being NACKed (repaired).
//!
//! Owns [`NackTracker`] (one per subscription, keyed by the outgoing SSRC the subscriber sees):
//! a gap in the RTP sequence numbers (16-bit, wrap-aware) opens pending entries; an entry is
//! NACKed `delay` after it was seen (room for reordering), again every `retry_interval` up to
//! `max_retries` times, then given up. A packet that arrives while pending is repaired if it had
//! been NACKed, else merely late (reordered). [`build_nack`] encodes one RFC 4585 generic NACK
//! (transport-layer feedback, PT 205, FMT 1, PID + BLP pairs) with the `rtcp` crate.
//!
//! Must never read a clock (times are arguments), touch a socket, or hold more than
//! `max_pending_per_flow` entries.

use std::collections::VecDeque;

use rtcp::transport_feedbacks::transport_layer_nack::{nack_pairs_from_sequence_numbers, TransportLayerNack};
use webrtc_util::marshal::Marshal;

use crate::scenario_file::Nack;

/// Counters of one subscription's loss repair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NackCounters {
    /// Distinct packets NACKed at least once.
    pub nacked_packets: u64,
    /// NACK requests (a packet once per NACK it is listed in, retries included).
    pub nack_requests: u64,
    /// Packets that arrived after being NACKed.
    pub repaired: u64,
    /// Missing packets that arrived before they were NACKed (reordered, not lost).
    pub late_before_nack: u64,
    /// Missing packets given up after the last retry, or pushed out by the pending bound.
    pub given_up: u64,
    /// First copies discarded as last-mile loss (see `Nack::last_mile_loss_percent`).
    pub last_mile_dropped: u64,
}

impl std::ops::AddAssign for NackCounters {
    fn add_assign(&mut self, o: NackCounters) {
        self.nacked_packets += o.nacked_packets;
        self.nack_requests += o.nack_requests;
        self.repaired += o.repaired;
        self.late_before_nack += o.late_before_nack;
        self.given_up += o.given_up;
        self.last_mile_dropped += o.last_mile_dropped;
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    seen_ns: u64,
    last_nack_ns: u64,
    nacks: u32,
}

/// Loss detection and NACK timing of one subscription.
#[derive(Debug, Clone)]
pub struct NackTracker {
    policy: Nack,
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    pending: VecDeque<Pending>,
    /// What happened so far.
    pub counters: NackCounters,
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * 1e6) as u64
}

impl NackTracker {
    /// A tracker following `policy`.
    pub fn new(policy: Nack) -> NackTracker {
        let cap = policy.max_pending_per_flow.max(1);
        NackTracker { policy, highest: None, pending: VecDeque::with_capacity(cap), counters: NackCounters::default() }
    }

    /// Forgets everything (a new step).
    pub fn reset(&mut self) {
        self.highest = None;
        self.pending.clear();
        self.counters = NackCounters::default();
    }

    /// The extended form of `seq` closest to the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let Some(h) = self.highest else { return (1 << 16) + u64::from(seq) };
        let cycle = h & !0xFFFF;
        let candidates = [cycle.wrapping_sub(1 << 16), cycle, cycle + (1 << 16)];
        candidates
            .into_iter()
            .map(|c| c.wrapping_add(u64::from(seq)))
            .filter(|&c| c >= (1 << 16))
            .min_by_key(|&c| c.abs_diff(h))
            .unwrap_or(h)
    }

    /// Notes the arrival of RTP sequence number `seq` at `now_ns`; returns whether it was a repair.
    pub fn on_packet(&mut self, seq: u16, now_ns: u64) -> bool {
        let ext = self.extend(seq);
        match self.highest {
            None => self.highest = Some(ext),
            Some(h) if ext > h => {
                let cap = self.policy.max_pending_per_flow.max(1) as u64;
                let gap = ext - h - 1;
                // Only the last `cap` of a huge gap can be tracked; the rest is given up at once.
                self.counters.given_up += gap.saturating_sub(cap);
                for missing in (ext - gap.min(cap))..ext {
                    if self.pending.len() == self.policy.max_pending_per_flow.max(1) {
                        self.pending.pop_front();
                        self.counters.given_up += 1;
                    }
                    self.pending.push_back(Pending { seq: missing, seen_ns: now_ns, last_nack_ns: 0, nacks: 0 });
                }
                self.highest = Some(ext);
            }
            Some(_) => {
                if let Some(i) = self.pending.iter().position(|p| p.seq == ext) {
                    let p =
                        self.pending.remove(i).unwrap_or(Pending { seq: ext, seen_ns: 0, last_nack_ns: 0, nacks: 0 });
                    if p.nacks > 0 {
                        self.counters.repaired += 1;
                        return true;
                    }
                    self.counters.late_before_nack += 1;
                }
            }
        }
        false
    }

    /// Whether the first copy of `seq` is lost on the last mile: a seeded share
    /// (`last_mile_loss_percent`) of sequence numbers, never a packet already missing (a repair), so
    /// each is lost at most once. Counted in `last_mile_dropped`; the caller discards the packet.
    pub fn drops_on_last_mile(&mut self, seq: u16, seed: u64) -> bool {
        let percent = self.policy.last_mile_loss_percent;
        if percent <= 0.0 {
            return false;
        }
        let ext = self.extend(seq);
        if self.highest.is_some_and(|h| ext <= h) {
            return false; // late or a retransmission: only first arrivals are lost
        }
        let draw = splitmix64(ext ^ seed) % 1_000_000;
        let lost = (draw as f64) < percent * 10_000.0;
        if lost {
            self.counters.last_mile_dropped += 1;
        }
        lost
    }

    /// Appends to `out` the sequence numbers to NACK at `now_ns` (first requests and retries),
    /// marking them requested; gives up entries past their last retry.
    pub fn due(&mut self, now_ns: u64, out: &mut Vec<u16>) {
        let delay = ms_to_ns(self.policy.delay_ms);
        let retry = ms_to_ns(self.policy.retry_interval_ms);
        let max = self.policy.max_retries;
        let counters = &mut self.counters;
        self.pending.retain_mut(|p| {
            let due = if p.nacks == 0 { now_ns >= p.seen_ns + delay } else { now_ns >= p.last_nack_ns + retry };
            if !due {
                return true;
            }
            if p.nacks >= max {
                counters.given_up += 1;
                return false;
            }
            if p.nacks == 0 {
                counters.nacked_packets += 1;
            }
            p.nacks += 1;
            p.last_nack_ns = now_ns;
            counters.nack_requests += 1;
            out.push(p.seq as u16);
            true
        });
    }

    /// Missing packets tracked now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// One RTCP generic NACK from `sender_ssrc` about `media_ssrc` for `seqs`, encoded.
pub fn build_nack(sender_ssrc: u32, media_ssrc: u32, seqs: &[u16]) -> Result<bytes::Bytes, String> {
    let packet = TransportLayerNack { sender_ssrc, media_ssrc, nacks: nack_pairs_from_sequence_numbers(seqs) };
    packet.marshal().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtcp::packet::unmarshal;

    const MS: u64 = 1_000_000;

    fn policy() -> Nack {
        Nack {
            delay_ms: 5.0,
            retry_interval_ms: 20.0,
            max_retries: 2,
            max_pending_per_flow: 8,
            last_mile_loss_percent: 0.0,
        }
    }

    #[test]
    fn a_gap_is_nacked_after_the_delay_retried_then_given_up() {
        let mut t = NackTracker::new(policy());
        let mut out = Vec::new();
        t.on_packet(100, 0);
        t.on_packet(103, MS); // 101 and 102 missing
        t.due(2 * MS, &mut out);
        assert!(out.is_empty(), "not before the delay");
        t.due(6 * MS, &mut out);
        assert_eq!(out, [101, 102]);
        out.clear();
        t.due(10 * MS, &mut out);
        assert!(out.is_empty(), "no retry before the interval");
        t.due(26 * MS, &mut out);
        assert_eq!(out, [101, 102]);
        out.clear();
        t.due(50 * MS, &mut out);
        assert!(out.is_empty());
        assert_eq!(t.pending(), 0);
        assert_eq!(t.counters, NackCounters { nacked_packets: 2, nack_requests: 4, given_up: 2, ..Default::default() });
    }

    #[test]
    fn arrivals_after_a_nack_are_repairs_and_before_it_merely_late() {
        let mut t = NackTracker::new(policy());
        let mut out = Vec::new();
        t.on_packet(65_534, 0);
        t.on_packet(2, MS); // 65535, 0, 1 missing across the wrap
        t.on_packet(65_535, 2 * MS); // reordered: before any NACK
        t.due(10 * MS, &mut out);
        assert_eq!(out, [0, 1]);
        assert!(t.on_packet(0, 11 * MS));
        assert!(!t.on_packet(0, 12 * MS), "a second copy is no repair");
        let c = t.counters;
        assert_eq!((c.repaired, c.late_before_nack, c.nacked_packets), (1, 1, 2));
        assert_eq!(t.pending(), 1);
    }

    #[test]
    fn pending_entries_are_bounded() {
        let mut t = NackTracker::new(policy());
        t.on_packet(0, 0);
        t.on_packet(100, MS); // 99 missing, 8 tracked
        assert_eq!(t.pending(), 8);
        assert_eq!(t.counters.given_up, 91);
        let mut out = Vec::new();
        t.due(10 * MS, &mut out);
        assert_eq!(out, (92..100).collect::<Vec<u16>>());
    }

    #[test]
    fn nacks_encode_as_rfc4585_generic_nacks() {
        let bytes = build_nack(0x6000_0001, 0x5000_0002, &[10, 11, 13, 40]).unwrap();
        // V=2, FMT=1, PT=205.
        assert_eq!((bytes[0] >> 6, bytes[0] & 0x1F, bytes[1]), (2, 1, 205));
        let mut buf = &bytes[..];
        let packets = unmarshal(&mut buf).unwrap();
        let nack = packets[0].as_any().downcast_ref::<TransportLayerNack>().unwrap();
        assert_eq!((nack.sender_ssrc, nack.media_ssrc), (0x6000_0001, 0x5000_0002));
        let listed: Vec<u16> = nack.nacks.iter().flat_map(|p| p.packet_list()).collect();
        assert_eq!(listed, [10, 11, 13, 40]);
    }
}

/// A 64-bit mix (SplitMix64's finaliser): a deterministic, well-spread draw per sequence number.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod last_mile_tests {
    use super::*;
    use crate::scenario_file::Nack;

    #[test]
    fn last_mile_loss_takes_the_share_of_first_copies_and_never_a_repair() {
        let policy = Nack {
            delay_ms: 0.0,
            retry_interval_ms: 10.0,
            max_retries: 3,
            max_pending_per_flow: 4096,
            last_mile_loss_percent: 5.0,
        };
        let mut tracker = NackTracker::new(policy);
        let mut lost = Vec::new();
        for seq in 0..20_000u32 {
            let seq = seq as u16;
            if tracker.drops_on_last_mile(seq, 7) {
                lost.push(seq);
            } else {
                tracker.on_packet(seq, 0);
            }
        }
        let share = lost.len() as f64 / 20_000.0;
        assert!((0.04..0.06).contains(&share), "{share}");
        assert_eq!(tracker.counters.last_mile_dropped, lost.len() as u64);
        let mut out = Vec::new();
        tracker.due(1, &mut out);
        for &seq in &lost {
            assert!(!tracker.drops_on_last_mile(seq, 7), "a retransmission is never lost again");
            tracker.on_packet(seq, 2);
        }
        assert_eq!(tracker.counters.repaired, lost.len() as u64, "every lost first copy was repaired");
    }
}
