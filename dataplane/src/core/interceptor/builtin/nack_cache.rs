//! The retransmission cache: answers subscribers' generic NACKs (RFC 4585 §6.2.1) from copies of the
//! publisher's recent RTP packets, and asks the publisher for the packets it never received.
//!
//! Owns [`NackCache`] (ingress, kind `NackCache`): a ring of `max_packets` slots of `max_packet_bytes`
//! each, allocated when the stream is bound, indexed by extended sequence number modulo the ring size.
//! Each slot remembers which extended sequence number it holds, when it arrived and how often it was
//! retransmitted. A subscriber's NACK (already translated to the publisher's sequence numbers) is
//! answered with [`Context::retransmit`]; the forwarder applies the subscription's rewrite and RTX
//! (RFC 4588), not this cache. Beside the ring, a second ring of the same size remembers which packets
//! the cache never received were asked for from the publisher, when, and how often. Must never allocate
//! after construction, retransmit a packet other than the one asked for (the stored extended sequence
//! number is checked), or forward a subscriber's RTCP itself.
//!
//! # Loss on either side of ringfwd (the default ingress chain: stats, keyframe_throttle, nack_cache, receiver_reports)
//! - **Downlink** (ringfwd → subscriber): the subscriber NACKs, the cache holds the packet, and it is
//!   retransmitted to that subscriber only (through its rewrite, as RTX when negotiated).
//! - **Uplink** (publisher → ringfwd): every subscriber misses the packet and NACKs it; the cache never
//!   received it, so it asks the publisher itself with one generic NACK from the stream's local SSRC
//!   naming the missing numbers in the publisher's sequence space. NACKs of several subscribers for one
//!   packet are merged: it is asked for at most once per `upstream_retry_interval_ms` and at most
//!   `max_retransmits_per_packet` times. The publisher's resend arrives as an ordinary packet and reaches
//!   every subscriber (and the cache, which answers later NACKs for it). When the chain also runs
//!   `nack_generator`, that generator detects the gaps itself and asks the publisher before any
//!   subscriber notices; the cache then leaves upstream requests to it.
//!
//! Decisions:
//! - The retransmission cap counts per packet across all subscribers (one small counter per slot,
//!   reset when the slot is overwritten), not per subscriber: if several subscribers lost the same
//!   packet, together they get at most `max_retransmits_per_packet` copies.
//! - "Never received" means: not newer than the newest packet cached, within the ring's reach of it, and
//!   its slot is empty or holds an older packet. A packet that was cached and then evicted, aged out or
//!   retransmitted up to the cap is a plain miss: asking the publisher would resend it to every subscriber.
//! - Verdict: a compound whose only packets are generic NACKs for this stream, every item answered from
//!   the cache or asked for from the publisher (now, or merged into a request within the interval), is
//!   `Consumed`. If any item missed (evicted, too old, over the cap, outbox full) or the compound carries
//!   anything else (an RR, a PLI), it is `Continue`: the rest of the chain sees it, and the forwarder passes
//!   on what no interceptor answers (it never passes on a NACK when a cache is bound; see `intercept`).
//! - A packet longer than a slot is not cached (counted in [`NackCache::not_cached`]).

use std::fmt;
use std::time::{Duration, Instant};

use super::wire_compound::{write_feedback_compound, Cname};
use super::wire_feedback::{Feedback, FeedbackKind};
use super::wire_reports::write_generic_nack;
use crate::core::interceptor::spec::{NackCacheParams, StreamInfo};
use crate::core::interceptor::{Context, Interceptor, RtcpFrom, RtpAttrs, Snapshot, Verdict};
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

/// A packet the cache never received, as asked for from the publisher.
#[derive(Clone, Copy, Debug, Default)]
struct Asked {
    ext_seq: u64,
    /// When it was last asked for; `None`: the entry is empty.
    at: Option<Instant>,
    times: u8,
}

/// What the cache can do for one NACKed sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    /// Retransmitted to the subscriber.
    Answered,
    /// Never received: the publisher may resend it.
    NeverReceived(u64),
    /// Not retransmitted (evicted, too old, over the cap, unknown, or the outbox is full).
    Miss,
}

/// Retransmission cache of one stream.
pub struct NackCache {
    publisher: Ssrc,
    /// The stream's local SSRC, the sender of the NACKs to the publisher, and its CNAME.
    local: Ssrc,
    cname: Cname,
    slot_bytes: usize,
    max_age: Duration,
    max_retransmits: u8,
    arena: Arena,
    slots: Box<[Slot]>,
    highest_ext_seq: Option<u64>,
    /// Whether packets never received are asked for from the publisher (not when a NACK generator does).
    ask_publisher: bool,
    upstream_interval: Duration,
    /// Packets never received that were asked for, indexed like `slots`.
    asked: Box<[Asked]>,
    /// The numbers one subscriber compound makes the cache ask for (reserved: `max_packets`).
    to_ask: Vec<u64>,
    retransmitted: u64,
    misses: u64,
    not_cached: u64,
    upstream_nacks: u64,
}

/// The cache's packet memory: one anonymous mapping of its own, so that it goes back to the system when the stream
/// goes (glibc's malloc keeps large freed blocks of a worker's arena mapped once its dynamic mmap threshold rose: 4 096
/// deleted streams left 1.58 GiB resident), and the kernel zeroes its pages as they are first written instead of a
/// `calloc` zeroing 384 KB on the worker when a block is reused. Heap memory when the mapping fails.
#[derive(Debug)]
enum Arena {
    Mapped(memmap2::MmapMut),
    Heap(Box<[u8]>),
}

impl Arena {
    fn new(bytes: usize) -> Arena {
        match memmap2::MmapMut::map_anon(bytes) {
            Ok(map) => Arena::Mapped(map),
            Err(_) => Arena::Heap(vec![0u8; bytes].into_boxed_slice()),
        }
    }
}

impl std::ops::Deref for Arena {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Arena::Mapped(map) => map,
            Arena::Heap(heap) => heap,
        }
    }
}

impl std::ops::DerefMut for Arena {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Arena::Mapped(map) => map,
            Arena::Heap(heap) => heap,
        }
    }
}

impl NackCache {
    /// A cache of `params.max_packets` packets of at most `max_packet_bytes` each for the stream `info`
    /// (maps `max_packets × max_packet_bytes` bytes now, resident as they are first written, returned when it is
    /// dropped: see `Arena`; both are taken as at least 1). With
    /// `ask_publisher`, packets it never received are asked for from the publisher (see the module docs);
    /// the chain builder turns it off when a NACK generator runs on the stream.
    pub fn new(params: &NackCacheParams, info: &StreamInfo, max_packet_bytes: usize, ask_publisher: bool) -> NackCache {
        let max_packets = usize::from(params.max_packets).max(1);
        let slot_bytes = max_packet_bytes.max(1);
        NackCache {
            publisher: info.ssrc,
            local: info.local_ssrc,
            cname: Cname::ringfwd(info.local_ssrc),
            slot_bytes,
            max_age: Duration::from_millis(u64::from(params.max_age_ms)),
            max_retransmits: params.max_retransmits_per_packet,
            arena: Arena::new(max_packets * slot_bytes),
            slots: vec![Slot::default(); max_packets].into_boxed_slice(),
            highest_ext_seq: None,
            ask_publisher,
            upstream_interval: Duration::from_millis(u64::from(params.upstream_retry_interval_ms)),
            asked: vec![Asked::default(); max_packets].into_boxed_slice(),
            to_ask: Vec::with_capacity(max_packets),
            retransmitted: 0,
            misses: 0,
            not_cached: 0,
            upstream_nacks: 0,
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

    /// Retransmits the packet `seq` to `flow` if it is cached, young enough and under its cap; tells a
    /// packet the cache never received from other misses.
    fn answer(&mut self, seq: SeqNo, flow: u32, ctx: &mut Context<'_>) -> Lookup {
        let (Some(ext_seq), Some(highest)) = (self.extend(seq), self.highest_ext_seq) else {
            return Lookup::Miss;
        };
        let index = self.index(ext_seq);
        let slot = self.slots[index];
        let never_received =
            highest - ext_seq < self.slots.len() as u64 && (slot.arrival.is_none() || slot.ext_seq < ext_seq);
        if never_received {
            return Lookup::NeverReceived(ext_seq);
        }
        let Some(arrival) = slot.arrival else {
            return Lookup::Miss;
        };
        if slot.ext_seq != ext_seq
            || ctx.now().saturating_duration_since(arrival) > self.max_age
            || slot.retransmits >= self.max_retransmits
        {
            return Lookup::Miss;
        }
        let start = index * self.slot_bytes;
        let Some(pkt) = self.arena.get(start..start + slot.len_bytes) else {
            return Lookup::Miss;
        };
        if !ctx.retransmit(flow, pkt) {
            return Lookup::Miss;
        }
        self.slots[index].retransmits += 1;
        Lookup::Answered
    }

    /// Whether packet `ext_seq`, never received, is (or was just) asked for from the publisher: false once
    /// it has been asked for `max_retransmits` times. Queues it in `to_ask` unless a request within the
    /// interval covers it already (the merge across subscribers).
    fn ask_for(&mut self, ext_seq: u64, now: Instant) -> bool {
        let entry = self.asked[self.index(ext_seq)];
        let (at, times) = if entry.ext_seq == ext_seq { (entry.at, entry.times) } else { (None, 0) };
        if at.is_some_and(|at| now.saturating_duration_since(at) < self.upstream_interval) {
            return true;
        }
        if times >= self.max_retransmits || self.to_ask.len() == self.to_ask.capacity() {
            return false;
        }
        if self.to_ask.last().is_none_or(|&last| last != ext_seq) {
            self.to_ask.push(ext_seq);
        }
        true
    }

    /// Sends the publisher one NACK for the numbers in `to_ask` and records them as asked for; false if the
    /// outbox refused it (nothing is recorded then).
    fn send_upstream(&mut self, ctx: &mut Context<'_>) -> bool {
        if self.to_ask.is_empty() {
            return true;
        }
        let (local, publisher) = (self.local, self.publisher);
        let mut written = 0;
        let to_ask = &self.to_ask;
        let cname = &self.cname;
        let sent = ctx.send_rtcp_to_publisher(|slot| {
            write_feedback_compound(slot, local, cname, |out| {
                let nack = write_generic_nack(out, local, publisher, to_ask.iter().map(|&ext| SeqNo(ext as u16)));
                written = nack.seqs_written;
                nack.len_bytes
            })
        });
        if sent {
            self.upstream_nacks += 1;
            let now = ctx.now();
            for &ext_seq in self.to_ask.iter().take(written) {
                let index = (ext_seq % self.asked.len() as u64) as usize;
                let entry = &mut self.asked[index];
                let times = if entry.ext_seq == ext_seq && entry.at.is_some() { entry.times } else { 0 };
                *entry = Asked { ext_seq, at: Some(now), times: times.saturating_add(1) };
            }
        }
        self.to_ask.clear();
        sent && written > 0
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
            .field("upstream_nacks", &self.upstream_nacks)
            .finish_non_exhaustive()
    }
}

impl Interceptor for NackCache {
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
        let now = ctx.now();
        let (mut nacks, mut other, mut all_answered) = (0u32, false, true);
        self.to_ask.clear();
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
                match self.answer(seq, flow, ctx) {
                    Lookup::Answered => self.retransmitted += 1,
                    Lookup::NeverReceived(ext_seq) => {
                        self.misses += 1;
                        if !(self.ask_publisher && self.ask_for(ext_seq, now)) {
                            all_answered = false;
                        }
                    }
                    Lookup::Miss => {
                        self.misses += 1;
                        all_answered = false;
                    }
                }
            }
        }
        if !self.send_upstream(ctx) {
            all_answered = false;
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
        out.nacks_sent += self.upstream_nacks;
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
        NackCacheParams { max_packets, max_age_ms, max_retransmits_per_packet: cap, upstream_retry_interval_ms: 100 }
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
        let mut cache = NackCache::new(&params(8, 500, 2), &stream_info(t0), 1500, true);
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
        let mut cache = NackCache::new(&params(64, 1000, 3), &stream_info(t0), 1500, true);
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
        let mut cache = NackCache::new(&params(16, 1000, 1), &stream_info(t0), 1500, true);
        let mut h = Harness::ingress();
        let sent = feed(&mut cache, &mut h, t0, 65_530, 10); // 65530..=65535, 0..=3
        let bytes = compound(vec![nack(&[(65_534, 0b100)], PUBLISHER)]); // 65534 and 1
        assert_eq!(h.rtcp(&mut cache, &bytes, RtcpFrom::Subscriber { flow: FLOW }, at(t0, 100)), Verdict::Consumed);
        assert_eq!(retransmitted(&mut h), [sent[4].clone(), sent[7].clone()]);
    }

    #[test]
    fn what_it_leaves_alone() {
        let t0 = Instant::now();
        let mut cache = NackCache::new(&params(16, 1000, 5), &stream_info(t0), 100, true);
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

    /// The numbers a NACK the cache sent the publisher asks for, checking who it is from and about, and that it
    /// is a compound (RR + SDES CNAME + NACK) as every compound ringfwd sends.
    fn upstream_nack(bytes: &[u8]) -> Vec<u16> {
        use rtcp::packet::unmarshal;
        let mut buf = bytes;
        let packets = unmarshal(&mut buf).expect("valid RTCP");
        assert_eq!(packets.len(), 3, "RR + SDES + NACK");
        let nack = packets[2].as_any().downcast_ref::<TransportLayerNack>().expect("a generic NACK");
        assert_eq!((Ssrc(nack.sender_ssrc), Ssrc(nack.media_ssrc)), (LOCAL, PUBLISHER));
        nack.nacks.iter().flat_map(|pair| pair.packet_list()).collect()
    }

    #[test]
    fn asks_the_publisher_once_for_what_it_never_received() {
        let t0 = Instant::now();
        let mut cache = NackCache::new(&params(64, 1000, 2), &stream_info(t0), 1500, true);
        let mut h = Harness::ingress();
        let sent = feed(&mut cache, &mut h, t0, 100, 5); // 100..=104
        let late_105 = rtp(105, 96, 7, None);
        for seq in (106..=111u16).filter(|&seq| seq != 109) {
            let pkt = rtp(seq, 96, 30, None);
            h.rtp(&mut cache, &pkt, &attrs(&pkt, (1 << 16) + u64::from(seq), at(t0, 100)));
        }
        // 105 and 109 never arrived, 102 is cached.
        let a = RtcpFrom::Subscriber { flow: FLOW };
        let b = RtcpFrom::Subscriber { flow: FLOW + 1 };
        let both = compound(vec![nack(&[(102, 0), (105, 0)], PUBLISHER)]);
        assert_eq!(h.rtcp(&mut cache, &both, a, at(t0, 110)), Verdict::Consumed, "answered or asked for");
        let out = h.take();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], (Target::Retransmit { flow: FLOW }, sent[2].clone()));
        assert_eq!(out[1].0, Target::Publisher { stream: 0 });
        assert_eq!(upstream_nack(&out[1].1), [105]);

        // Another subscriber's NACK for 105 within the interval is merged into the request already sent.
        let only_105 = compound(vec![nack(&[(105, 0)], PUBLISHER)]);
        assert_eq!(h.rtcp(&mut cache, &only_105, b, at(t0, 150)), Verdict::Consumed);
        assert!(h.take().is_empty(), "merged: nothing new to ask");
        // After the interval it is asked for again, together with a new one; then the cap (2) ends it.
        let two = compound(vec![nack(&[(105, 0), (109, 0)], PUBLISHER)]);
        assert_eq!(h.rtcp(&mut cache, &two, b, at(t0, 210)), Verdict::Consumed);
        let out = h.take();
        assert_eq!(upstream_nack(&out[0].1), [105, 109]);
        assert_eq!(h.rtcp(&mut cache, &only_105, a, at(t0, 400)), Verdict::Continue, "asked twice: given up");
        assert!(h.take().is_empty());

        // The publisher's resend is cached like any packet and answers the next NACK.
        h.rtp(&mut cache, &late_105, &attrs(&late_105, (1 << 16) + 105, at(t0, 420)));
        assert_eq!(h.rtcp(&mut cache, &only_105, a, at(t0, 430)), Verdict::Consumed);
        assert_eq!(retransmitted(&mut h), [late_105]);
        let s = snapshot(&cache);
        assert_eq!((s.retransmitted, s.nacks_sent), (2, 2), "102 and 105 resent; two NACKs to the publisher");
    }

    #[test]
    fn leaves_the_publisher_to_a_nack_generator() {
        let t0 = Instant::now();
        let mut cache = NackCache::new(&params(64, 1000, 2), &stream_info(t0), 1500, false);
        let mut h = Harness::ingress();
        feed(&mut cache, &mut h, t0, 100, 3);
        let pkt = rtp(104, 96, 30, None);
        h.rtp(&mut cache, &pkt, &attrs(&pkt, (1 << 16) + 104, at(t0, 50)));
        let nack_103 = compound(vec![nack(&[(103, 0)], PUBLISHER)]);
        let verdict = h.rtcp(&mut cache, &nack_103, RtcpFrom::Subscriber { flow: FLOW }, at(t0, 60));
        assert_eq!(verdict, Verdict::Continue);
        assert!(h.take().is_empty());
        assert_eq!(snapshot(&cache).nacks_sent, 0);
    }

    #[test]
    fn a_late_packet_never_replaces_a_newer_one() {
        let t0 = Instant::now();
        let mut cache = NackCache::new(&params(4, 1000, 5), &stream_info(t0), 1500, true);
        let mut h = Harness::ingress();
        let sent = feed(&mut cache, &mut h, t0, 10, 6); // 10..=15; slot of 11 holds 15
        let late = rtp(11, 96, 99, None);
        h.rtp(&mut cache, &late, &attrs(&late, (1 << 16) + 11, at(t0, 100)));
        let bytes = compound(vec![nack(&[(11, 0b1000)], PUBLISHER)]); // 11 and 15
        assert_eq!(h.rtcp(&mut cache, &bytes, RtcpFrom::Subscriber { flow: FLOW }, at(t0, 110)), Verdict::Continue);
        assert_eq!(retransmitted(&mut h), [sent[5].clone()], "11 is gone, 15 is intact");
    }
}
