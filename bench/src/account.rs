//! Sans-IO accounting of what a sink received, per subscription (flow, keyed by outgoing SSRC).
//!
//! Owns [`FlowSpec`] (what a subscription should look like on the wire), [`FlowStats`] (received,
//! duplicates, reordered, stale, integrity failures, rewrite errors, one-way latency histogram)
//! and [`Accounting`], which classifies each datagram. Loss is what the generator sent for the
//! flow's stream minus what arrived once ([`Accounting::totals`]). Duplicates are recognised
//! within the last [`DUP_WINDOW`] generator sequences.
//!
//! Must never read a clock (the arrival time is an argument), touch a socket, or allocate per
//! datagram (histograms are sized up front and record saturating).

use std::collections::HashMap;

use hdrhistogram::Histogram;
use ringfwd_dataplane::core::{classify, PacketKind};
use rtp_types::RtpPacket;

use crate::nack::{NackCounters, NackTracker};
use crate::payload;
use crate::scenario_file::Nack;

/// Generator sequences remembered per flow for duplicate detection.
pub const DUP_WINDOW: u32 = 1024;
/// Largest latency the histograms resolve, in ns (larger values are recorded as this).
pub const MAX_LATENCY_NS: u64 = 10_000_000_000;
/// A copy arriving later than this after it was sent counts as late: real-time media would
/// have discarded it, and a forwarder that only keeps up by queueing is not keeping up.
pub const LATE_AFTER_NS: u64 = 50_000_000;

/// A latency histogram in ns, 1 ns to [`MAX_LATENCY_NS`], two significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    // Constant, valid bounds: 1 <= low, high >= 2 * low, sigfig in 0..=5.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 2).expect("constant histogram bounds are valid")
}

/// What one subscription should look like on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSpec {
    /// SSRC the subscriber receives (the flow's key).
    pub out_ssrc: u32,
    /// Index of the generator stream it carries.
    pub stream: usize,
    /// Added to the sequence number.
    pub seq_offset: u16,
    /// Added to the RTP timestamp.
    pub ts_offset: u32,
    /// Payload-type rewrites `[incoming, outgoing]`.
    pub payload_type_map: Vec<[u8; 2]>,
}

/// What arrived for one flow, or for all of them, in one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Datagrams that carried an intact bench payload of this step (duplicates included).
    pub received: u64,
    /// Distinct generator sequences received.
    pub unique: u64,
    /// Repeated generator sequences.
    pub duplicates: u64,
    /// Arrived after a higher generator sequence.
    pub reordered: u64,
    /// Sent before this step began (stragglers of an earlier step), not counted otherwise.
    pub stale: u64,
    /// Bench payload short, without magic, or with a wrong pattern byte.
    pub integrity_failures: u64,
    /// Header not rewritten as the subscription says (payload type, sequence, timestamp).
    pub rewrite_errors: u64,
    /// Distinct packets that arrived more than [`LATE_AFTER_NS`] after they were sent.
    pub late: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.received += other.received;
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
        self.stale += other.stale;
        self.integrity_failures += other.integrity_failures;
        self.rewrite_errors += other.rewrite_errors;
        self.late += other.late;
    }
}

/// Counters of one flow in one step.
#[derive(Debug, Clone)]
pub struct FlowStats {
    /// What arrived.
    pub counts: Counts,
    /// One-way latency, ns.
    pub latency_ns: Histogram<u64>,
    highest: Option<u32>,
    seen: [u64; (DUP_WINDOW / 64) as usize],
}

impl FlowStats {
    fn new() -> FlowStats {
        FlowStats {
            counts: Counts::default(),
            latency_ns: latency_histogram(),
            highest: None,
            seen: [0; (DUP_WINDOW / 64) as usize],
        }
    }

    /// Back to the state of a new flow, keeping the histogram's memory.
    fn reset(&mut self) {
        self.counts = Counts::default();
        self.latency_ns.reset();
        self.highest = None;
        self.seen = [0; (DUP_WINDOW / 64) as usize];
    }

    fn bit(seq: u32) -> (usize, u64) {
        let slot = seq % DUP_WINDOW;
        ((slot / 64) as usize, 1u64 << (slot % 64))
    }

    /// Records generator sequence `seq`; counts it as new, reordered or duplicate. Returns
    /// whether it was new.
    fn note(&mut self, seq: u32) -> bool {
        self.counts.received += 1;
        let highest = match self.highest {
            Some(h) => h,
            None => {
                self.highest = Some(seq);
                self.counts.unique += 1;
                let (w, b) = Self::bit(seq);
                self.seen[w] |= b;
                return true;
            }
        };
        if seq > highest {
            if seq - highest >= DUP_WINDOW {
                self.seen = [0; (DUP_WINDOW / 64) as usize];
            } else {
                for s in highest + 1..seq {
                    let (w, b) = Self::bit(s);
                    self.seen[w] &= !b;
                }
            }
            self.highest = Some(seq);
        } else if highest - seq >= DUP_WINDOW {
            // Too old to tell; most likely a late original.
            self.counts.reordered += 1;
            self.counts.unique += 1;
            return true;
        } else {
            let (w, b) = Self::bit(seq);
            if self.seen[w] & b != 0 {
                self.counts.duplicates += 1;
                return false;
            }
            self.counts.reordered += 1;
        }
        let (w, b) = Self::bit(seq);
        self.seen[w] |= b;
        self.counts.unique += 1;
        true
    }
}

/// Sums over all flows of one step.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Packets the flows should have received (what was sent for their streams).
    pub expected: u64,
    /// `expected - unique`, never negative.
    pub lost: u64,
    /// What arrived, all flows.
    pub counts: Counts,
    /// Datagrams with an SSRC no flow has.
    pub unknown_ssrc: u64,
    /// Datagrams that are not RTP.
    pub not_rtp: u64,
    /// RTCP the forwarder sent the subscribers (its sender reports): expected, not an error.
    pub rtcp: u64,
    /// Latency of every flow merged, ns.
    pub latency_ns: Histogram<u64>,
    /// Loss repair of every flow (zero when the sink sends no NACKs).
    pub nack: NackCounters,
}

/// Per-flow accounting of one sink.
pub struct Accounting {
    specs: Vec<FlowSpec>,
    pt_maps: Vec<[u8; 128]>,
    flows: Vec<FlowStats>,
    by_ssrc: HashMap<u32, usize>,
    step_first_gen_seq: Vec<u32>,
    unknown_ssrc: u64,
    not_rtp: u64,
    rtcp: u64,
    /// One per flow when the sink NACKs gaps.
    nack: Vec<NackTracker>,
    /// The payload type of RED (RFC 2198) payloads to unwrap, when a plugin wraps packets before the fan-out.
    red_pt: Option<u8>,
}

impl Accounting {
    /// Accounting for `specs` (one per subscription) over `streams` generator streams.
    pub fn new(specs: Vec<FlowSpec>, streams: usize) -> Accounting {
        let pt_maps = specs
            .iter()
            .map(|s| {
                let mut map: [u8; 128] = std::array::from_fn(|pt| pt as u8);
                for &[from, to] in &s.payload_type_map {
                    if let Some(slot) = map.get_mut(usize::from(from)) {
                        *slot = to & 0x7f;
                    }
                }
                map
            })
            .collect();
        let by_ssrc = specs.iter().enumerate().map(|(i, s)| (s.out_ssrc, i)).collect();
        Accounting {
            flows: specs.iter().map(|_| FlowStats::new()).collect(),
            pt_maps,
            specs,
            by_ssrc,
            step_first_gen_seq: vec![0; streams],
            unknown_ssrc: 0,
            not_rtp: 0,
            rtcp: 0,
            nack: Vec::new(),
            red_pt: None,
        }
    }

    /// From now on, a packet with payload type `pt` (`None`: none) is a RED payload (RFC 2198) made on the stream's
    /// ingress (before the fan-out, so its blocks carry the payload types the publisher sent): its primary block is
    /// checked as the bench payload, and its header must carry `pt` and the marker as sent. A RED payload that does
    /// not parse is an integrity failure.
    pub fn unwrap_red(&mut self, pt: Option<u8>) {
        self.red_pt = pt;
    }

    /// The payload type of RED payloads it unwraps.
    pub fn red_pt(&self) -> Option<u8> {
        self.red_pt
    }

    /// Tracks gaps of every flow for NACKs per `policy` from now on.
    pub fn enable_nack(&mut self, policy: Nack) {
        self.nack = self.specs.iter().map(|_| NackTracker::new(policy)).collect();
    }

    /// Whether gaps are tracked for NACKs.
    pub fn nacks_enabled(&self) -> bool {
        !self.nack.is_empty()
    }

    /// Calls `send(flow, out_ssrc, seqs)` for every flow with sequence numbers to NACK at `now_ns`;
    /// `scratch` is reused between flows.
    pub fn collect_nacks(&mut self, now_ns: u64, scratch: &mut Vec<u16>, mut send: impl FnMut(usize, u32, &[u16])) {
        for (i, tracker) in self.nack.iter_mut().enumerate() {
            scratch.clear();
            tracker.due(now_ns, scratch);
            if !scratch.is_empty() {
                send(i, self.specs[i].out_ssrc, scratch);
            }
        }
    }

    /// Starts a step: counters restart; packets of stream `i` with a generator sequence below
    /// `first_gen_seq[i]` are stale from now on.
    pub fn begin_step(&mut self, first_gen_seq: &[u32]) {
        for (slot, &seq) in self.step_first_gen_seq.iter_mut().zip(first_gen_seq) {
            *slot = seq;
        }
        for flow in &mut self.flows {
            flow.reset();
        }
        self.unknown_ssrc = 0;
        self.not_rtp = 0;
        self.rtcp = 0;
        for tracker in &mut self.nack {
            tracker.reset();
        }
    }

    /// Accounts one datagram that arrived at `now_ns` (ns since the bench epoch).
    pub fn account(&mut self, datagram: &[u8], now_ns: u64) {
        // RTCP and RTP share the port (RFC 5761 §4).
        if classify(datagram) == PacketKind::Rtcp {
            self.rtcp += 1;
            return;
        }
        let Ok(rtp) = RtpPacket::parse(datagram) else {
            self.not_rtp += 1;
            return;
        };
        let Some(&i) = self.by_ssrc.get(&rtp.ssrc()) else {
            self.unknown_ssrc += 1;
            return;
        };
        let (spec, flow) = (&self.specs[i], &mut self.flows[i]);
        let red = self.red_pt.filter(|&pt| pt == rtp.payload_type());
        let (primary, primary_pt) = match red {
            Some(_) => match red_primary(rtp.payload()) {
                Some((primary, pt)) => (primary, Some(pt)),
                None => {
                    flow.counts.integrity_failures += 1;
                    return;
                }
            },
            None => (rtp.payload(), None),
        };
        let bench = match payload::read(primary) {
            Ok(bench) => bench,
            Err(_) => {
                flow.counts.integrity_failures += 1;
                return;
            }
        };
        let first = self.step_first_gen_seq.get(spec.stream).copied().unwrap_or(0);
        if bench.gen_seq < first {
            flow.counts.stale += 1;
            return;
        }
        let sent_pt = bench.marker_pt & 0x7f;
        // A RED packet carries the RED payload type in its header and the publisher's in its primary block's; any
        // other packet the publisher's, through the subscription's map.
        let byte1_ok = match red {
            Some(red) => primary_pt == Some(sent_pt) && datagram[1] == (bench.marker_pt & 0x80) | red,
            None => datagram[1] == (bench.marker_pt & 0x80) | self.pt_maps[i][usize::from(sent_pt)],
        };
        let header_ok = byte1_ok
            && rtp.sequence_number() == bench.rtp_seq.wrapping_add(spec.seq_offset)
            && rtp.timestamp() == bench.rtp_timestamp.wrapping_add(spec.ts_offset);
        if !header_ok {
            flow.counts.rewrite_errors += 1;
        }
        if let Some(tracker) = self.nack.get_mut(i) {
            if tracker.drops_on_last_mile(rtp.sequence_number(), i as u64) {
                return;
            }
            tracker.on_packet(rtp.sequence_number(), now_ns);
        }
        let latency_ns = now_ns.saturating_sub(bench.send_ns);
        if flow.note(bench.gen_seq) && latency_ns > LATE_AFTER_NS {
            flow.counts.late += 1;
        }
        flow.latency_ns.saturating_record(latency_ns);
    }

    /// RTCP datagrams accounted in this step (the forwarder's reports to the subscribers).
    pub fn rtcp_received(&self) -> u64 {
        self.rtcp
    }

    /// The flows' specs, in flow order.
    pub fn specs(&self) -> &[FlowSpec] {
        &self.specs
    }

    /// Counters of flow `i` in this step.
    pub fn flow(&self, i: usize) -> Option<&FlowStats> {
        self.flows.get(i)
    }

    /// Sums of this step, given how many packets the generator sent per stream.
    pub fn totals(&self, sent_per_stream: &[u64]) -> Totals {
        let mut t = Totals {
            expected: 0,
            lost: 0,
            counts: Counts::default(),
            unknown_ssrc: self.unknown_ssrc,
            not_rtp: self.not_rtp,
            rtcp: self.rtcp,
            latency_ns: latency_histogram(),
            nack: NackCounters::default(),
        };
        for tracker in &self.nack {
            t.nack += tracker.counters;
        }
        for (spec, flow) in self.specs.iter().zip(&self.flows) {
            let expected = sent_per_stream.get(spec.stream).copied().unwrap_or(0);
            t.expected += expected;
            t.lost += expected.saturating_sub(flow.counts.unique);
            t.counts += flow.counts;
            // Same bounds on both sides: adding cannot fail.
            let _ = t.latency_ns.add(&flow.latency_ns);
        }
        t
    }
}

/// The primary block of a RED payload (RFC 2198 §3) and its payload type: after the headers of the redundant blocks
/// (4 bytes each, F bit set, their lengths in the low 10 bits), the last header (1 byte, F bit clear), and the
/// redundant blocks themselves. `None` when the headers or lengths run past the payload.
pub fn red_primary(payload: &[u8]) -> Option<(&[u8], u8)> {
    let (mut at, mut redundant) = (0usize, 0usize);
    loop {
        let first = *payload.get(at)?;
        if first & 0x80 == 0 {
            let start = at + 1 + redundant;
            return Some((payload.get(start..)?, first & 0x7f));
        }
        let header = payload.get(at..at + 4)?;
        redundant += usize::from(u16::from_be_bytes([header[2], header[3]]) & 0x3ff);
        at += 4;
    }
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
