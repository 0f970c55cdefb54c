//! Transport-wide congestion control feedback to the publisher
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01).
//!
//! Owns [`Twcc`] (ingress, kind `Twcc`): reads the transport-wide sequence number of each RTP packet
//! from its header extension, records (unwrapped sequence number, arrival) in a window of
//! [`WINDOW_PACKETS`] entries reserved when the stream is bound, and every `feedback_interval_ms` sends
//! one or more RTPFB FMT 15 packets covering every sequence number since the last feedback (missing
//! ones as "not received"), each with its own feedback packet count. Must never allocate after
//! construction, read a clock (arrival times come from the attributes), or drop or change a packet.
//!
//! Decisions:
//! - Arrival times are kept in 250 µs ticks since the worker's epoch; the reference time of a feedback
//!   packet is its first received packet's tick / 256 (64 ms units, 24 bits), and every delta is
//!   taken between quantized times, so deltas never drift.
//! - A receive delta beyond the 2-byte range (±8.19 s) ends the feedback packet before that packet; a
//!   new one starts there with its own reference time. A feedback that does not fit one outbox slot is
//!   likewise split into several packets.
//! - Reordering: a packet older than the last one reported is counted as late and not reported (it was
//!   already reported as lost); before the first feedback a packet older than the first one seen
//!   moves the start of the feedback back (within the window). Duplicates keep the first arrival.
//! - Window overflow: a packet at least [`WINDOW_PACKETS`] ahead of the oldest unreported one flushes a
//!   feedback early (counted); if it is still too far ahead (a jump in the sequence), the numbers in
//!   between are skipped, never reported, and counted.

use std::time::{Duration, Instant};

use super::wire_compound::{write_feedback_compound, Cname};
use super::wire_feedback::{read_transport_seq, write_twcc, TwccHeader, TwccStatus};
use crate::core::interceptor::spec::{StreamInfo, TwccParams};
use crate::core::interceptor::{Context, Interceptor, RtpAttrs, Snapshot, Verdict};
use crate::core::wire::{SeqUnwrapper, Ssrc};

/// Transport-wide sequence numbers tracked between two feedbacks.
pub const WINDOW_PACKETS: usize = 1024;
const TICK_US: u128 = 250;
/// Ticks per reference-time unit (64 ms / 250 µs).
const TICKS_PER_REFERENCE: u64 = 256;

/// One recorded arrival.
#[derive(Clone, Copy, Debug, Default)]
struct Arrival {
    ext_seq: u64,
    /// 250 µs ticks since the epoch; `None`: empty slot.
    ticks: Option<u64>,
}

/// Transport-wide feedback of one stream.
#[derive(Debug)]
pub struct Twcc {
    publisher: Ssrc,
    local: Ssrc,
    /// ringfwd's CNAME toward the publisher (every feedback packet is a compound with it).
    cname: Cname,
    extension_id: u8,
    interval: Duration,
    epoch: Instant,
    unwrapper: SeqUnwrapper,
    window: Box<[Arrival]>,
    statuses: Box<[TwccStatus]>,
    /// The oldest sequence number not yet reported.
    base: Option<u64>,
    /// The newest sequence number recorded and not yet reported.
    highest: Option<u64>,
    reported_any: bool,
    next_feedback: Option<Instant>,
    fb_pkt_count: u8,
    feedback_sent: u64,
    without_seq: u64,
    late: u64,
    early_flushes: u64,
    skipped: u64,
    refused: u64,
}

/// Counters of [`Twcc`] beyond the snapshot, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TwccCounters {
    /// RTP packets without the transport-wide sequence number extension.
    pub without_seq: u64,
    /// Packets older than the last feedback (already reported as lost).
    pub late: u64,
    /// Feedbacks sent early because the window was full.
    pub early_flushes: u64,
    /// Sequence numbers skipped over by a jump larger than the window.
    pub skipped: u64,
    /// Feedback packets the outbox refused (their statuses are not resent).
    pub refused: u64,
}

impl Twcc {
    /// Feedback for the stream `info` with the extension id and interval of `params`.
    pub fn new(params: &TwccParams, info: &StreamInfo) -> Twcc {
        Twcc {
            publisher: info.ssrc,
            local: info.local_ssrc,
            cname: Cname::ringfwd(info.local_ssrc),
            extension_id: params.extension_id,
            interval: Duration::from_millis(u64::from(params.feedback_interval_ms.max(1))),
            epoch: info.epoch.at,
            unwrapper: SeqUnwrapper::new(),
            window: vec![Arrival::default(); WINDOW_PACKETS].into_boxed_slice(),
            statuses: vec![TwccStatus::NotReceived; WINDOW_PACKETS].into_boxed_slice(),
            base: None,
            highest: None,
            reported_any: false,
            next_feedback: None,
            fb_pkt_count: 0,
            feedback_sent: 0,
            without_seq: 0,
            late: 0,
            early_flushes: 0,
            skipped: 0,
            refused: 0,
        }
    }

    /// Counters beyond the snapshot.
    pub fn counters(&self) -> TwccCounters {
        TwccCounters {
            without_seq: self.without_seq,
            late: self.late,
            early_flushes: self.early_flushes,
            skipped: self.skipped,
            refused: self.refused,
        }
    }

    fn slot(ext_seq: u64) -> usize {
        (ext_seq % WINDOW_PACKETS as u64) as usize
    }

    fn record(&mut self, ext_seq: u64, ticks: u64, ctx: &mut Context<'_>) {
        let base = *self.base.get_or_insert(ext_seq);
        if ext_seq < base {
            let too_old = self.highest.is_none_or(|highest| highest - ext_seq >= WINDOW_PACKETS as u64);
            if self.reported_any || too_old {
                self.late += 1;
                return;
            }
            self.base = Some(ext_seq);
        } else if ext_seq - base >= WINDOW_PACKETS as u64 {
            self.early_flushes += 1;
            self.send_feedback(ctx);
            let base = self.base.unwrap_or(ext_seq);
            if ext_seq - base >= WINDOW_PACKETS as u64 {
                self.skipped += ext_seq - base;
                self.base = Some(ext_seq);
            }
        }
        let slot = &mut self.window[Self::slot(ext_seq)];
        if slot.ticks.is_some() && slot.ext_seq == ext_seq {
            return; // duplicate: keep the first arrival
        }
        *slot = Arrival { ext_seq, ticks: Some(ticks) };
        self.highest = Some(self.highest.map_or(ext_seq, |highest| highest.max(ext_seq)));
    }

    /// Fills the status scratch from `base` up to `highest`, stopping before a delta that does not fit
    /// in 16 bits; returns (statuses, reference time in 64 ms units).
    fn build(&mut self, base: u64, highest: u64) -> (usize, u64) {
        let (mut count, mut reference, mut previous) = (0, None, 0u64);
        for ext_seq in base..=highest {
            let Some(status) = self.statuses.get_mut(count) else {
                break;
            };
            let arrival = self.window[Self::slot(ext_seq)];
            *status = match arrival.ticks.filter(|_| arrival.ext_seq == ext_seq) {
                None => TwccStatus::NotReceived,
                Some(ticks) => {
                    if reference.is_none() {
                        reference = Some(ticks / TICKS_PER_REFERENCE);
                        previous = ticks / TICKS_PER_REFERENCE * TICKS_PER_REFERENCE;
                    }
                    let Ok(delta_250us) = i16::try_from(ticks as i128 - previous as i128) else {
                        break;
                    };
                    previous = ticks;
                    TwccStatus::Received { delta_250us }
                }
            };
            count += 1;
        }
        (count, reference.unwrap_or(0))
    }

    /// Reports everything from `base` to `highest`, in as many feedback packets as it takes.
    fn send_feedback(&mut self, ctx: &mut Context<'_>) {
        let (Some(mut base), Some(highest)) = (self.base, self.highest) else {
            return;
        };
        while base <= highest {
            let (count, reference) = self.build(base, highest);
            let header = TwccHeader {
                sender_ssrc: self.local,
                media_ssrc: self.publisher,
                base_seq: base as u16,
                reference_time_64ms: reference as u32,
                fb_pkt_count: self.fb_pkt_count,
            };
            let mut written = 0;
            let statuses = &self.statuses[..count];
            let (local, cname) = (self.local, &self.cname);
            let sent = ctx.send_rtcp_to_publisher(|slot| {
                write_feedback_compound(slot, local, cname, |out| {
                    let (len_bytes, covered) = write_twcc(out, &header, statuses);
                    written = covered;
                    len_bytes
                })
            });
            if !sent || written == 0 {
                self.refused += 1;
                break; // outbox full or a slot too small: these statuses are given up
            }
            self.fb_pkt_count = self.fb_pkt_count.wrapping_add(1);
            self.feedback_sent += 1;
            base += written as u64;
        }
        self.base = Some(highest + 1);
        self.highest = None;
        self.reported_any = true;
    }
}

impl Interceptor for Twcc {
    fn on_rtp(&mut self, pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        let Some(seq) = read_transport_seq(pkt, attrs.extension_offset, self.extension_id) else {
            self.without_seq += 1;
            return Verdict::Continue;
        };
        let ext_seq = self.unwrapper.unwrap(seq);
        let ticks = (attrs.arrival.saturating_duration_since(self.epoch).as_micros() / TICK_US) as u64;
        self.record(ext_seq, ticks, ctx);
        let next = *self.next_feedback.get_or_insert(ctx.now() + self.interval);
        ctx.schedule(next);
        Verdict::Continue
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        if self.highest.is_none() {
            self.next_feedback = None; // idle: the next packet arms the timer again
            return;
        }
        self.send_feedback(ctx);
        let next = ctx.now() + self.interval;
        self.next_feedback = Some(next);
        ctx.schedule(next);
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.twcc_feedback_sent += self.feedback_sent;
    }
}

#[cfg(test)]
mod tests {
    use rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
    use webrtc_util::marshal::Unmarshal;

    use super::super::wire_compound::test_support::after_cname;
    use super::super::wire_feedback::test_support::*;
    use super::*;
    use crate::core::interceptor::Target;

    const ID: u8 = 5;

    /// Sends transport seq `tseq` (RTP seq `seq`) arriving at `arrival`.
    fn send(twcc: &mut Twcc, h: &mut Harness, seq: u16, tseq: u16, arrival: Instant) {
        let pkt = rtp(seq, 96, 30, Some((0xbede, &[(ID, &tseq.to_be_bytes()[..])])));
        assert_eq!(h.rtp(twcc, &pkt, &attrs(&pkt, (1 << 16) + u64::from(seq), arrival)), Verdict::Continue);
    }

    /// Every feedback emitted so far, parsed by the `rtcp` crate.
    fn feedbacks(h: &mut Harness) -> Vec<TransportLayerCc> {
        h.take()
            .into_iter()
            .map(|(target, bytes)| {
                assert_eq!(target, Target::Publisher { stream: 0 });
                TransportLayerCc::unmarshal(&mut after_cname(&bytes)).expect("rtcp parses our feedback")
            })
            .collect()
    }

    /// (transport seq, arrival in µs since the epoch quantized to 250 µs) of each received packet,
    /// rebuilt from the reference time and the deltas, and the seqs reported lost.
    fn arrivals(fb: &TransportLayerCc) -> (Vec<(u16, i64)>, Vec<u16>) {
        let statuses = super::super::wire_feedback::tests::decode_twcc(fb);
        let mut time_us = i64::from(fb.reference_time) * 64_000;
        let (mut received, mut lost) = (Vec::new(), Vec::new());
        for (i, status) in statuses.iter().enumerate() {
            let seq = fb.base_sequence_number.wrapping_add(i as u16);
            match status {
                Some(delta) => {
                    time_us += delta * 250;
                    received.push((seq, time_us));
                }
                None => lost.push(seq),
            }
        }
        (received, lost)
    }

    fn us(t0: Instant, t: Instant) -> i64 {
        (t - t0).as_micros() as i64 / 250 * 250
    }

    #[test]
    fn feedback_for_loss_reordering_and_wrap_parses_back() {
        let t0 = Instant::now();
        let mut twcc = Twcc::new(&TwccParams { extension_id: ID, feedback_interval_ms: 100 }, &stream_info(t0));
        let mut h = Harness::ingress();
        let start = t0 + Duration::from_micros(1_000_300); // reference time 15 (960 ms), first delta 161
        let pattern: [(u16, u64); 5] = [(65_534, 0), (65_535, 1_000), (2, 3_000), (1, 5_000), (4, 70_500)];
        for (i, (tseq, after_us)) in pattern.iter().enumerate() {
            send(&mut twcc, &mut h, i as u16, *tseq, start + Duration::from_micros(*after_us));
        }
        assert!(h.take().is_empty(), "nothing before the interval");
        assert_eq!(h.wake, Some(start + Duration::from_millis(100)));
        h.advance(&mut twcc, start + Duration::from_millis(100));
        let fb = feedbacks(&mut h);
        assert_eq!(fb.len(), 1);
        assert_eq!((fb[0].sender_ssrc, fb[0].media_ssrc, fb[0].fb_pkt_count), (LOCAL.0, PUBLISHER.0, 0));
        assert_eq!((fb[0].base_sequence_number, fb[0].packet_status_count, fb[0].reference_time), (65_534, 7, 15));
        let (received, lost) = arrivals(&fb[0]);
        let expected: Vec<(u16, i64)> = [65_534u16, 65_535, 1, 2, 4]
            .iter()
            .map(|tseq| {
                let after = pattern.iter().find(|(s, _)| s == tseq).unwrap().1;
                (*tseq, us(t0, start + Duration::from_micros(after)))
            })
            .collect();
        assert_eq!(received, expected, "in sequence order, 2 before 1 is a negative delta");
        assert_eq!(lost, [0, 3]);

        // A late 3 is not reported again; 5..=8 with 6 lost go in the next feedback.
        send(&mut twcc, &mut h, 10, 3, start + Duration::from_millis(120));
        for (tseq, ms) in [(5u16, 150u64), (7, 160), (8, 170)] {
            send(&mut twcc, &mut h, 10 + tseq, tseq, start + Duration::from_millis(ms));
        }
        h.advance(&mut twcc, start + Duration::from_millis(200));
        let fb = feedbacks(&mut h);
        assert_eq!(fb.len(), 1);
        assert_eq!((fb[0].base_sequence_number, fb[0].packet_status_count, fb[0].fb_pkt_count), (5, 4, 1));
        let (received, lost) = arrivals(&fb[0]);
        assert_eq!(received.iter().map(|r| r.0).collect::<Vec<_>>(), [5, 7, 8]);
        assert_eq!(received[2].1, us(t0, start + Duration::from_millis(170)));
        assert_eq!(lost, [6]);
        assert_eq!(twcc.counters().late, 1);
        assert_eq!(snapshot(&twcc).twcc_feedback_sent, 2);

        // Idle: the timer stops; the next packet arms it again.
        h.advance(&mut twcc, start + Duration::from_millis(300));
        assert!(h.take().is_empty());
        assert_eq!(h.wake, None);
    }

    #[test]
    fn a_delta_beyond_two_bytes_starts_a_new_packet() {
        let t0 = Instant::now();
        let mut twcc = Twcc::new(&TwccParams { extension_id: ID, feedback_interval_ms: 20_000 }, &stream_info(t0));
        let mut h = Harness::ingress();
        send(&mut twcc, &mut h, 1, 100, at(t0, 10));
        send(&mut twcc, &mut h, 2, 101, at(t0, 10 + 9_000)); // 36000 ticks later
        h.advance(&mut twcc, at(t0, 20_010));
        let fb = feedbacks(&mut h);
        assert_eq!(fb.len(), 2);
        assert_eq!((fb[0].base_sequence_number, fb[0].packet_status_count, fb[0].fb_pkt_count), (100, 1, 0));
        assert_eq!((fb[1].base_sequence_number, fb[1].packet_status_count, fb[1].fb_pkt_count), (101, 1, 1));
        assert_eq!(arrivals(&fb[0]).0, [(100, 10_000)]);
        assert_eq!(arrivals(&fb[1]).0, [(101, 9_010_000)]);
    }

    #[test]
    fn a_full_window_flushes_early_and_a_jump_is_skipped() {
        let t0 = Instant::now();
        let mut twcc = Twcc::new(&TwccParams { extension_id: ID, feedback_interval_ms: 1000 }, &stream_info(t0));
        let mut h = Harness::ingress();
        for i in 0..=WINDOW_PACKETS as u16 {
            send(&mut twcc, &mut h, i, i, t0 + Duration::from_micros(100 * u64::from(i)));
        }
        let fb = feedbacks(&mut h);
        let covered: u32 = fb.iter().map(|f| u32::from(f.packet_status_count)).sum();
        assert_eq!((fb[0].base_sequence_number, covered), (0, WINDOW_PACKETS as u32), "flushed at the 1025th");
        assert_eq!(twcc.counters().early_flushes, 1);
        send(&mut twcc, &mut h, 2000, 5000, at(t0, 500)); // 3975 ahead of 1025
        assert_eq!(twcc.counters().skipped, 5000 - 1025);
        h.advance(&mut twcc, at(t0, 1000));
        let fb = feedbacks(&mut h);
        assert_eq!(fb.len(), 2, "the jump flushed the pending 1024 first");
        assert_eq!((fb[0].base_sequence_number, fb[0].packet_status_count), (1024, 1));
        assert_eq!((fb[1].base_sequence_number, fb[1].packet_status_count), (5000, 1));
        assert_eq!(twcc.counters().early_flushes, 2);
        let nothing = rtp(3000, 96, 10, None);
        h.rtp(&mut twcc, &nothing, &attrs(&nothing, 1 << 17, at(t0, 1001)));
        assert_eq!(twcc.counters().without_seq, 1);
    }

    #[test]
    fn a_packet_before_the_first_one_moves_the_base_back() {
        let t0 = Instant::now();
        let mut twcc = Twcc::new(&TwccParams { extension_id: ID, feedback_interval_ms: 50 }, &stream_info(t0));
        let mut h = Harness::ingress();
        send(&mut twcc, &mut h, 1, 10, at(t0, 1));
        send(&mut twcc, &mut h, 2, 8, at(t0, 2));
        send(&mut twcc, &mut h, 3, 10, at(t0, 3)); // duplicate: first arrival kept
        h.advance(&mut twcc, at(t0, 60));
        let fb = feedbacks(&mut h);
        assert_eq!(fb.len(), 1);
        assert_eq!(arrivals(&fb[0]), (vec![(8, 2_000), (10, 1_000)], vec![9]));
    }
}
