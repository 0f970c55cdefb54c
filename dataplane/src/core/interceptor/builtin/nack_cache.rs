//! The retransmission cache: answers subscribers' generic NACKs (RFC 4585 §6.2.1) from copies of the
//! publisher's recent RTP packets.
//!
//! Owns [`NackCache`] (ingress, kind `NackCache`): a ring of `max_packets` slots of `max_packet_bytes`
//! each, allocated when the stream is bound, indexed by extended sequence number modulo the ring size.
//! Each slot remembers which extended sequence number it holds, when it arrived and how often it was
//! retransmitted. A subscriber's NACK (already translated to the publisher's sequence numbers) is
//! answered with [`Context::retransmit`]; the forwarder applies the subscription's rewrite and RTX
//! (RFC 4588), not this cache. Must never allocate after construction, retransmit a packet other than
//! the one asked for (the stored extended sequence number is checked), or forward RTCP itself.
//!
//! Decisions:
//! - The retransmission cap counts per packet across all subscribers (one small counter per slot,
//!   reset when the slot is overwritten), not per subscriber: if several subscribers lost the same
//!   packet, together they get at most `max_retransmits_per_packet` copies.
//! - Verdict: a compound whose only packets are generic NACKs for this stream, every item answered
//!   from the cache, is `Consumed` (not forwarded to the publisher). If any item missed (not cached,
//!   evicted, too old, over the cap, outbox full) or the compound carries anything else (an RR, a PLI),
//!   it is `Continue` and the forwarder forwards the whole compound, so the publisher also sees the
//!   NACK (and may resend items the cache already answered).
//! - A packet longer than a slot is not cached (counted in [`NackCache::not_cached`]).

use std::fmt;
use std::time::{Duration, Instant};

use super::wire_feedback::{Feedback, FeedbackKind};
use crate::core::interceptor::spec::{NackCacheParams, StreamInfo};
use crate::core::interceptor::{Context, Interceptor, InterceptorKind, RtcpFrom, RtpAttrs, Snapshot, Verdict};
use crate::core::packet::RtcpCompound;
use crate::core::wire::{SeqNo, Ssrc};

/// What one ring slot holds.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Extended sequence number of the packet in the slot.
    ext_seq: u64,
    /// When it arrived; `None`: the slot is empty.
    arrival: Option<Instant>,
    len_bytes: usize,
    retransmits: u8,
}

/// Retransmission cache of one stream.
pub struct NackCache {
    publisher: Ssrc,
    slot_bytes: usize,
    max_age: Duration,
    max_retransmits: u8,
    arena: Box<[u8]>,
    slots: Box<[Slot]>,
    highest_ext_seq: Option<u64>,
    retransmitted: u64,
    misses: u64,
    not_cached: u64,
}

impl NackCache {
    /// A cache of `params.max_packets` packets of at most `max_packet_bytes` each for the stream `info`
    /// (allocates `max_packets × max_packet_bytes` bytes now; both are taken as at least 1).
    pub fn new(params: &NackCacheParams, info: &StreamInfo, max_packet_bytes: usize) -> NackCache {
        let max_packets = usize::from(params.max_packets).max(1);
        let slot_bytes = max_packet_bytes.max(1);
        NackCache {
            publisher: info.ssrc,
            slot_bytes,
            max_age: Duration::from_millis(u64::from(params.max_age_ms)),
            max_retransmits: params.max_retransmits_per_packet,
            arena: vec![0u8; max_packets * slot_bytes].into_boxed_slice(),
            slots: vec![Slot::default(); max_packets].into_boxed_slice(),
            highest_ext_seq: None,
            retransmitted: 0,
            misses: 0,
            not_cached: 0,
        }
    }

    /// RTP packets not cached because they were longer than a slot.
    pub fn not_cached(&self) -> u64 {
        self.not_cached
    }

    fn index(&self, ext_seq: u64) -> usize {
        (ext_seq % self.slots.len() as u64) as usize
    }

    /// The extended sequence number of `seq` relative to the newest cached packet, if not newer than it.
    fn extend(&self, seq: SeqNo) -> Option<u64> {
        let highest = self.highest_ext_seq?;
        let delta = i64::from(seq.0.wrapping_sub(highest as u16) as i16);
        if delta > 0 {
            return None;
        }
        highest.checked_add_signed(delta)
    }

    /// Retransmits the packet `seq` to `flow` if it is cached, young enough and under its cap.
    fn answer(&mut self, seq: SeqNo, flow: u32, ctx: &mut Context<'_>) -> bool {
        let Some(ext_seq) = self.extend(seq) else {
            return false;
        };
        let index = self.index(ext_seq);
        let slot = self.slots[index];
        let Some(arrival) = slot.arrival else {
            return false;
        };
        if slot.ext_seq != ext_seq
            || ctx.now().saturating_duration_since(arrival) > self.max_age
            || slot.retransmits >= self.max_retransmits
        {
            return false;
        }
        let start = index * self.slot_bytes;
        let Some(pkt) = self.arena.get(start..start + slot.len_bytes) else {
            return false;
        };
        if !ctx.retransmit(flow, pkt) {
            return false;
        }
        self.slots[index].retransmits += 1;
        true
    }
}

impl fmt::Debug for NackCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NackCache")
            .field("publisher", &self.publisher)
            .field("max_packets", &self.slots.len())
            .field("slot_bytes", &self.slot_bytes)
            .field("highest_ext_seq", &self.highest_ext_seq)
            .field("retransmitted", &self.retransmitted)
            .field("misses", &self.misses)
            .finish_non_exhaustive()
    }
}

impl Interceptor for NackCache {
    fn kind(&self) -> InterceptorKind {
        InterceptorKind::NackCache
    }

    /// Stores a copy of the packet (unless a newer packet already holds its slot); always `Continue`.
    fn on_rtp(&mut self, pkt: &[u8], attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
        if pkt.len() > self.slot_bytes {
            self.not_cached += 1;
            return Verdict::Continue;
        }
        let index = self.index(attrs.ext_seq);
        let slot = &mut self.slots[index];
        if slot.arrival.is_some() && slot.ext_seq > attrs.ext_seq {
            return Verdict::Continue; // a late packet whose slot already holds a newer one
        }
        let retransmits = if slot.arrival.is_some() && slot.ext_seq == attrs.ext_seq { slot.retransmits } else { 0 };
        *slot = Slot { ext_seq: attrs.ext_seq, arrival: Some(attrs.arrival), len_bytes: pkt.len(), retransmits };
        let start = index * self.slot_bytes;
        self.arena[start..start + pkt.len()].copy_from_slice(pkt);
        self.highest_ext_seq = Some(self.highest_ext_seq.map_or(attrs.ext_seq, |h| h.max(attrs.ext_seq)));
        Verdict::Continue
    }

    /// Answers a subscriber's generic NACKs for this stream; see the module docs for the verdict.
    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        let RtcpFrom::Subscriber { flow } = from else {
            return Verdict::Continue;
        };
        let bytes = rtcp.bytes();
        let (mut nacks, mut other, mut all_answered) = (0u32, false, true);
        for packet in rtcp.packets() {
            let feedback = match Feedback::read(bytes, &packet) {
                Some(fb) if fb.kind == FeedbackKind::GenericNack && fb.media_ssrc == self.publisher => fb,
                _ => {
                    other = true;
                    continue;
                }
            };
            nacks += 1;
            for seq in feedback.nack_seqs() {
                if self.answer(seq, flow, ctx) {
                    self.retransmitted += 1;
                } else {
                    self.misses += 1;
                    all_answered = false;
                }
            }
        }
        if nacks > 0 && !other && all_answered {
            Verdict::Consumed
        } else {
            Verdict::Continue
        }
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.retransmitted += self.retransmitted;
        out.retransmit_misses += self.misses;
    }
}

#[cfg(test)]
mod tests {
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

    use super::super::wire_feedback::test_support::*;
    use super::*;
    use crate::core::interceptor::Target;

    const FLOW: u32 = 3;

    fn nack(pairs: &[(u16, u16)], media: Ssrc) -> Box<TransportLayerNack> {
        let nacks = pairs.iter().map(|&(packet_id, lost_packets)| NackPair { packet_id, lost_packets }).collect();
        Box::new(TransportLayerNack { sender_ssrc: SUBSCRIBER.0, media_ssrc: media.0, nacks })
    }

    fn params(max_packets: u16, max_age_ms: u32, cap: u8) -> NackCacheParams {
        NackCacheParams { max_packets, max_age_ms, max_retransmits_per_packet: cap }
    }

    /// Feeds seqs `first..first + count` (wrapping) at 10 ms intervals from t0; returns the packets.
    fn feed(cache: &mut NackCache, h: &mut Harness, t0: Instant, first: u16, count: u16) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| {
                let seq = first.wrapping_add(i);
                let pkt = rtp(seq, 96, 20 + usize::from(i), None);
                let ext = (1u64 << 16) + u64::from(first) + u64::from(i);
                let verdict = h.rtp(cache, &pkt, &attrs(&pkt, ext, at(t0, 10 * u64::from(i))));
                assert_eq!(verdict, Verdict::Continue);
                pkt
            })
            .collect()
    }

    fn retransmitted(h: &mut Harness) -> Vec<Vec<u8>> {
        h.take()
            .into_iter()
            .map(|(target, bytes)| {
                assert_eq!(target, Target::Retransmit { flow: FLOW });
                bytes
            })
            .collect()
    }

    #[test]
    fn answers_cached_and_misses_evicted_old_and_capped() {
        let t0 = Instant::now();
        let mut cache = NackCache::new(&params(8, 500, 2), &stream_info(t0), 1500);
        let mut h = Harness::ingress();
        let sent = feed(&mut cache, &mut h, t0, 100, 16); // 100..=115 at 0..150 ms; 108..=115 stay
        let from = RtcpFrom::Subscriber { flow: FLOW };

        // 110 cached, 105 evicted by 113, 116 never sent.
        let only_cached = compound(vec![nack(&[(110, 0)], PUBLISHER)]);
        assert_eq!(h.rtcp(&mut cache, &only_cached, from, at(t0, 200)), Verdict::Consumed);
        assert_eq!(retransmitted(&mut h), [sent[10].clone()]);
        let with_misses = compound(vec![nack(&[(105, 0), (110, 0), (116, 0)], PUBLISHER)]);
        assert_eq!(h.rtcp(&mut cache, &with_misses, from, at(t0, 210)), Verdict::Continue, "a miss goes on");
        assert_eq!(retransmitted(&mut h), [sent[10].clone()], "second copy of 110 (cap 2)");
        assert_eq!(h.rtcp(&mut cache, &only_cached, from, at(t0, 220)), Verdict::Continue, "over the cap");
        assert!(h.take().is_empty());

        // Age: 108 arrived at 80 ms, 115 at 150 ms; at 600 ms only 115 is within 500 ms.
        let aged = compound(vec![nack(&[(108, 1 << 6)], PUBLISHER)]); // 108 and 115
        assert_eq!(h.rtcp(&mut cache, &aged, from, at(t0, 600)), Verdict::Continue);
        assert_eq!(retransmitted(&mut h), [sent[15].clone()]);
        assert_eq!(
            h.rtcp(&mut cache, &compound(vec![nack(&[(115, 0)], PUBLISHER)]), from, at(t0, 650)),
            Verdict::Consumed
        );
        assert_eq!(retransmitted(&mut h), [sent[15].clone()], "exactly 500 ms old still goes");

        let s = snapshot(&cache);
        assert_eq!((s.retransmitted, s.retransmit_misses), (4, 4), "110 ×2, 115 ×2; misses 105, 116, 110, 108");
    }

    #[test]
    fn decodes_the_bitmask_in_order() {
        let t0 = Instant::now();
        let mut cache = NackCache::new(&params(64, 1000, 3), &stream_info(t0), 1500);
        let mut h = Harness::ingress();
        let sent = feed(&mut cache, &mut h, t0, 100, 40);
        let bytes = compound(vec![nack(&[(110, 0b1000_0000_0000_0101), (130, 0)], PUBLISHER)]);
        let verdict = h.rtcp(&mut cache, &bytes, RtcpFrom::Subscriber { flow: FLOW }, at(t0, 400));
        assert_eq!(verdict, Verdict::Consumed);
        let expected: Vec<_> = [10, 11, 13, 26, 30].iter().map(|&i| sent[i].clone()).collect();
        assert_eq!(retransmitted(&mut h), expected, "PID, PID+1, PID+3, PID+16, then the next entry");
    }

    #[test]
    fn across_the_sequence_wrap() {
        let t0 = Instant::now();
        let mut cache = NackCache::new(&params(16, 1000, 1), &stream_info(t0), 1500);
        let mut h = Harness::ingress();
        let sent = feed(&mut cache, &mut h, t0, 65_530, 10); // 65530..=65535, 0..=3
        let bytes = compound(vec![nack(&[(65_534, 0b100)], PUBLISHER)]); // 65534 and 1
        assert_eq!(h.rtcp(&mut cache, &bytes, RtcpFrom::Subscriber { flow: FLOW }, at(t0, 100)), Verdict::Consumed);
        assert_eq!(retransmitted(&mut h), [sent[4].clone(), sent[7].clone()]);
    }

    #[test]
    fn what_it_leaves_alone() {
        let t0 = Instant::now();
        let mut cache = NackCache::new(&params(16, 1000, 5), &stream_info(t0), 100);
        let mut h = Harness::ingress();
        feed(&mut cache, &mut h, t0, 1, 5);
        let big = rtp(6, 96, 200, None);
        assert_eq!(h.rtp(&mut cache, &big, &attrs(&big, (1 << 16) + 6, at(t0, 60))), Verdict::Continue);
        assert_eq!(cache.not_cached(), 1, "longer than a slot");
        let from = RtcpFrom::Subscriber { flow: FLOW };
        let nack_1 = compound(vec![nack(&[(1, 0)], PUBLISHER)]);
        assert_eq!(h.rtcp(&mut cache, &nack_1, RtcpFrom::Publisher, at(t0, 70)), Verdict::Continue, "publisher");
        let other_media = compound(vec![nack(&[(1, 0)], Ssrc(99))]);
        assert_eq!(h.rtcp(&mut cache, &other_media, from, at(t0, 70)), Verdict::Continue, "another stream");
        assert!(h.take().is_empty());
        let with_rr = compound(vec![
            Box::new(ReceiverReport { ssrc: SUBSCRIBER.0, ..Default::default() }),
            nack(&[(1, 0)], PUBLISHER),
        ]);
        assert_eq!(h.rtcp(&mut cache, &with_rr, from, at(t0, 70)), Verdict::Continue, "the RR must go on");
        assert_eq!(retransmitted(&mut h).len(), 1, "but the NACK is answered");
        let nack_6 = compound(vec![nack(&[(6, 0)], PUBLISHER)]);
        assert_eq!(h.rtcp(&mut cache, &nack_6, from, at(t0, 70)), Verdict::Continue, "the big one was not cached");
        let s = snapshot(&cache);
        assert_eq!((s.retransmitted, s.retransmit_misses), (1, 1));
    }

    #[test]
    fn a_late_packet_never_replaces_a_newer_one() {
        let t0 = Instant::now();
        let mut cache = NackCache::new(&params(4, 1000, 5), &stream_info(t0), 1500);
        let mut h = Harness::ingress();
        let sent = feed(&mut cache, &mut h, t0, 10, 6); // 10..=15; slot of 11 holds 15
        let late = rtp(11, 96, 99, None);
        h.rtp(&mut cache, &late, &attrs(&late, (1 << 16) + 11, at(t0, 100)));
        let bytes = compound(vec![nack(&[(11, 0b1000)], PUBLISHER)]); // 11 and 15
        assert_eq!(h.rtcp(&mut cache, &bytes, RtcpFrom::Subscriber { flow: FLOW }, at(t0, 110)), Verdict::Continue);
        assert_eq!(retransmitted(&mut h), [sent[5].clone()], "11 is gone, 15 is intact");
    }
}
