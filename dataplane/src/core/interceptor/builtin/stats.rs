//! RTP reception statistics (RFC 3550 appendix A) and the `stats` interceptor of both chains.
//!
//! Owns [`ReceptionStats`] (extended highest sequence number, expected/received/lost, fraction lost
//! per interval, interarrival jitter, reordered and exact duplicate counts over a fixed window),
//! [`BitrateMeter`] (bit rate over a fixed window) and [`StatsInterceptor`]: on a stream's ingress chain
//! it measures what the publisher delivers and counts the subscribers' feedback and the publisher's
//! SRs; on a subscription's egress chain it counts what the subscriber is sent and reads the
//! subscriber's reports (loss and jitter as reported, RTT from LSR/DLSR). It only observes: it never
//! drops, consumes or emits a packet, and never allocates after construction.

use std::time::{Duration, Instant};

use super::wire_feedback::{Feedback, FeedbackKind};
use super::wire_reports::{compact_ntp, report_blocks, ReportBlock};
use crate::core::interceptor::spec::{NtpEpoch, StatsParams, StreamInfo, SubscriptionInfo};
use crate::core::interceptor::{Context, Interceptor, RtcpFrom, RtpAttrs, Snapshot, Verdict};
use crate::core::packet::{RtcpCompound, RtcpType};
use crate::core::wire::{RtpTimestamp, Ssrc};

/// Extended sequence numbers remembered for duplicate detection (a power of two).
pub const DUPLICATE_WINDOW: u64 = 1024;
const WINDOW_WORDS: usize = (DUPLICATE_WINDOW / 64) as usize;
/// The extended sequence number [`crate::core::SeqUnwrapper`] gives a first packet is `2^16 + seq`;
/// reports count cycles from the first packet (RFC 3550 A.1), so this is subtracted.
const FIRST_CYCLE: u64 = 1 << 16;

/// How a packet counted by [`ReceptionStats::on_packet`] arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The first packet, or one above every sequence number seen before.
    InOrder,
    /// Below the highest seen and not seen before (or too old for the duplicate window to tell).
    Reordered,
    /// Exactly a sequence number already received within the duplicate window.
    Duplicate,
}

/// Reception statistics of one RTP source, per RFC 3550 A.1, A.3 and A.8.
#[derive(Clone, Debug)]
pub struct ReceptionStats {
    clock_rate_hz: u32,
    /// Arrival instant of the first packet: arrival times in RTP units count from here.
    first_arrival: Option<Instant>,
    /// Lowest extended sequence number received (a packet reordered before the first lowers it).
    base_ext_seq: u64,
    highest_ext_seq: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    fraction_lost: u8,
    last_transit: Option<u32>,
    /// Jitter scaled by 16 (RFC 3550 A.8, integer form).
    jitter_x16: u64,
    reordered: u64,
    duplicates: u64,
    /// Bit `ext_seq % DUPLICATE_WINDOW` set: that number (within the window below the highest) arrived.
    seen: [u64; WINDOW_WORDS],
}

impl ReceptionStats {
    /// Statistics of a source whose RTP clock ticks `clock_rate_hz` times a second.
    pub fn new(clock_rate_hz: u32) -> ReceptionStats {
        ReceptionStats {
            clock_rate_hz,
            first_arrival: None,
            base_ext_seq: 0,
            highest_ext_seq: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            fraction_lost: 0,
            last_transit: None,
            jitter_x16: 0,
            reordered: 0,
            duplicates: 0,
            seen: [0; WINDOW_WORDS],
        }
    }

    /// Counts a packet with extended sequence number `ext_seq` and RTP `timestamp` that arrived at
    /// `arrival`. Every packet counts as received (duplicates too, as RFC 3550 A.3 does, so loss can go
    /// negative); jitter is updated for every packet that is not a duplicate, in arrival order (A.8).
    pub fn on_packet(&mut self, ext_seq: u64, timestamp: RtpTimestamp, arrival: Instant) -> Arrival {
        self.received += 1;
        let kind = if self.first_arrival.is_none() {
            self.first_arrival = Some(arrival);
            self.base_ext_seq = ext_seq;
            self.highest_ext_seq = ext_seq;
            self.mark_seen(ext_seq);
            Arrival::InOrder
        } else if ext_seq > self.highest_ext_seq {
            let advance = ext_seq - self.highest_ext_seq;
            if advance >= DUPLICATE_WINDOW {
                self.seen = [0; WINDOW_WORDS];
            } else {
                for skipped in self.highest_ext_seq + 1..ext_seq {
                    self.clear_seen(skipped);
                }
            }
            self.highest_ext_seq = ext_seq;
            self.mark_seen(ext_seq);
            Arrival::InOrder
        } else if self.highest_ext_seq - ext_seq < DUPLICATE_WINDOW && self.is_seen(ext_seq) {
            self.duplicates += 1;
            return Arrival::Duplicate;
        } else {
            if self.highest_ext_seq - ext_seq < DUPLICATE_WINDOW {
                self.mark_seen(ext_seq);
            }
            self.base_ext_seq = self.base_ext_seq.min(ext_seq);
            self.reordered += 1;
            Arrival::Reordered
        };
        self.update_jitter(timestamp, arrival);
        kind
    }

    fn update_jitter(&mut self, timestamp: RtpTimestamp, arrival: Instant) {
        let first = self.first_arrival.unwrap_or(arrival);
        // Arrival in RTP units, modulo 2^32 like the timestamps.
        let arrival_rtp = crate::core::wire::rtp_ticks(arrival.saturating_duration_since(first), self.clock_rate_hz);
        let transit = arrival_rtp.wrapping_sub(timestamp.0);
        if let Some(last) = self.last_transit {
            let d = u64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            self.jitter_x16 = self.jitter_x16 + d - ((self.jitter_x16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    fn mark_seen(&mut self, ext_seq: u64) {
        let bit = ext_seq % DUPLICATE_WINDOW;
        self.seen[(bit / 64) as usize] |= 1 << (bit % 64);
    }

    fn clear_seen(&mut self, ext_seq: u64) {
        let bit = ext_seq % DUPLICATE_WINDOW;
        self.seen[(bit / 64) as usize] &= !(1 << (bit % 64));
    }

    fn is_seen(&self, ext_seq: u64) -> bool {
        let bit = ext_seq % DUPLICATE_WINDOW;
        self.seen[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    /// True until the first packet.
    pub fn is_empty(&self) -> bool {
        self.first_arrival.is_none()
    }

    /// Packets received, duplicates included.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected: highest minus lowest extended sequence number received, plus one (A.3).
    pub fn expected(&self) -> u64 {
        if self.is_empty() {
            0
        } else {
            self.highest_ext_seq - self.base_ext_seq + 1
        }
    }

    /// Cumulative packets lost: expected minus received (negative with duplicates).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// The extended highest sequence number as a report carries it: cycles since the first packet in
    /// the high 16 bits, the sequence number in the low 16.
    pub fn extended_highest_seq(&self) -> u32 {
        self.highest_ext_seq.saturating_sub(FIRST_CYCLE) as u32
    }

    /// Interarrival jitter, in RTP timestamp units.
    pub fn jitter_rtp_units(&self) -> u32 {
        u32::try_from(self.jitter_x16 >> 4).unwrap_or(u32::MAX)
    }

    /// Interarrival jitter, in microseconds.
    pub fn jitter_us(&self) -> u64 {
        rtp_units_to_us(self.jitter_rtp_units(), self.clock_rate_hz)
    }

    /// Packets that arrived below the highest sequence number already seen (not duplicates).
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Packets whose sequence number had already been received (within [`DUPLICATE_WINDOW`]).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The fraction lost over the last closed interval, in 1/256 units.
    pub fn fraction_lost(&self) -> u8 {
        self.fraction_lost
    }

    /// Closes the current interval (A.3): computes and keeps its fraction lost (0 when nothing was
    /// lost or duplicates outnumber losses) and returns it.
    pub fn close_interval(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        self.fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        self.fraction_lost
    }

    /// A report block about `ssrc` with the LSR/DLSR given; closes the current interval.
    pub fn report_block(&mut self, ssrc: Ssrc, last_sr: u32, delay_since_last_sr: u32) -> ReportBlock {
        let fraction_lost = self.close_interval();
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost().clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            extended_highest_seq: self.extended_highest_seq(),
            jitter: self.jitter_rtp_units(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// `units` RTP ticks at `clock_rate_hz` in microseconds (0 for a zero clock rate).
fn rtp_units_to_us(units: u32, clock_rate_hz: u32) -> u64 {
    u64::from(units) * 1_000_000 / u64::from(clock_rate_hz.max(1))
}

/// Bit rate measured over consecutive windows of a fixed length.
#[derive(Clone, Copy, Debug)]
pub struct BitrateMeter {
    window: Duration,
    started: Option<Instant>,
    bytes: u64,
    bitrate_bps: u64,
}

impl BitrateMeter {
    /// A meter over windows of `window_ms` (at least 1 ms).
    pub fn new(window_ms: u32) -> BitrateMeter {
        BitrateMeter {
            window: Duration::from_millis(u64::from(window_ms.max(1))),
            started: None,
            bytes: 0,
            bitrate_bps: 0,
        }
    }

    /// Counts `bytes` at `now`; returns when the current window ends if this opened it.
    pub fn add(&mut self, bytes: usize, now: Instant) -> Option<Instant> {
        self.bytes += bytes as u64;
        if self.started.is_some() {
            return None;
        }
        self.started = Some(now);
        Some(now + self.window)
    }

    /// Closes the window at `now`: the bit rate becomes its bytes over its actual length. Returns when
    /// the next window ends, or None (and the rate is 0) if this one carried nothing: the next
    /// [`BitrateMeter::add`] opens a new one.
    pub fn close(&mut self, now: Instant) -> Option<Instant> {
        let started = self.started?;
        let elapsed_us = now.saturating_duration_since(started).as_micros().max(1);
        self.bitrate_bps = (u128::from(self.bytes) * 8 * 1_000_000 / elapsed_us) as u64;
        let carried = self.bytes > 0;
        self.bytes = 0;
        self.started = carried.then_some(now);
        carried.then(|| now + self.window)
    }

    /// The bit rate of the last closed window, in bits per second.
    pub fn bitrate_bps(&self) -> u64 {
        self.bitrate_bps
    }
}

/// Feedback counts (RFC 4585 generic NACK and PLI, RFC 5104 FIR).
#[derive(Clone, Copy, Debug, Default)]
struct FeedbackCounts {
    nacks: u64,
    nack_items: u64,
    plis: u64,
    firs: u64,
}

impl FeedbackCounts {
    /// Counts the feedback in `rtcp` about `media` (FIR: a packet with an entry for `media`).
    fn count(&mut self, rtcp: &RtcpCompound<'_>, media: Ssrc) {
        let bytes = rtcp.bytes();
        for feedback in rtcp.packets().filter_map(|packet| Feedback::read(bytes, &packet)) {
            match feedback.kind {
                FeedbackKind::GenericNack if feedback.media_ssrc == media => {
                    self.nacks += 1;
                    self.nack_items += feedback.nack_seqs().count() as u64;
                }
                FeedbackKind::Pli if feedback.media_ssrc == media => self.plis += 1,
                FeedbackKind::Fir if feedback.fir_entries().any(|entry| entry.ssrc == media) => self.firs += 1,
                _ => {}
            }
        }
    }

    fn add_to(&self, out: &mut Snapshot) {
        out.nacks_received += self.nacks;
        out.nack_items_received += self.nack_items;
        out.plis_received += self.plis;
        out.firs_received += self.firs;
    }
}

/// What only one of the two chains measures.
#[derive(Clone, Debug)]
enum Side {
    /// A stream's ingress chain: the publisher's RTP as received.
    Ingress { ssrc: Ssrc, reception: ReceptionStats, sender_reports: u64 },
    /// A subscription's egress chain: the subscriber's reports about what it is sent.
    Egress {
        out_ssrc: Ssrc,
        clock_rate_hz: u32,
        epoch: NtpEpoch,
        reported: Option<ReportBlock>,
        reports: u64,
        rtt_us: u64,
    },
}

/// The `stats` built-in, on a stream's ingress chain or a subscription's egress chain.
///
/// Its timer closes a bit rate window every `bitrate_window_ms` while packets flow (on ingress the
/// fraction lost is computed over the same windows); it stops after a window without packets.
#[derive(Clone, Debug)]
pub struct StatsInterceptor {
    side: Side,
    packets: u64,
    bytes: u64,
    bitrate: BitrateMeter,
    feedback: FeedbackCounts,
}

impl StatsInterceptor {
    /// Statistics of what a stream's publisher delivers (ingress chain).
    pub fn for_stream(params: &StatsParams, info: &StreamInfo) -> StatsInterceptor {
        let reception = ReceptionStats::new(info.clock_rate_hz);
        StatsInterceptor::new(params, Side::Ingress { ssrc: info.ssrc, reception, sender_reports: 0 })
    }

    /// Statistics of what a subscriber is sent and reports (egress chain).
    pub fn for_subscription(params: &StatsParams, info: &SubscriptionInfo) -> StatsInterceptor {
        let side = Side::Egress {
            out_ssrc: info.out_ssrc,
            clock_rate_hz: info.clock_rate_hz,
            epoch: info.epoch,
            reported: None,
            reports: 0,
            rtt_us: 0,
        };
        StatsInterceptor::new(params, side)
    }

    fn new(params: &StatsParams, side: Side) -> StatsInterceptor {
        StatsInterceptor {
            side,
            packets: 0,
            bytes: 0,
            bitrate: BitrateMeter::new(params.bitrate_window_ms),
            feedback: FeedbackCounts::default(),
        }
    }
}

/// RTT per RFC 3550 §6.4.1: the compact NTP time now minus LSR minus DLSR, in microseconds; None
/// without an LSR or when the result is negative (clock steps, bogus reports).
pub fn round_trip_us(now_ntp: u64, block: &ReportBlock) -> Option<u64> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = compact_ntp(now_ntp).wrapping_sub(block.last_sr).wrapping_sub(block.delay_since_last_sr);
    if rtt >= 1 << 31 {
        return None;
    }
    Some(u64::from(rtt) * 1_000_000 / 65_536)
}

impl Interceptor for StatsInterceptor {
    fn on_rtp(&mut self, _pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        self.packets += 1;
        self.bytes += attrs.len_bytes as u64;
        if let Some(window_end) = self.bitrate.add(attrs.len_bytes, ctx.now()) {
            ctx.schedule(window_end);
        }
        if let Side::Ingress { reception, .. } = &mut self.side {
            reception.on_packet(attrs.ext_seq, attrs.timestamp, attrs.arrival);
        }
        Verdict::Continue
    }

    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        match (&mut self.side, from) {
            (Side::Ingress { ssrc, .. }, RtcpFrom::Subscriber { .. }) => self.feedback.count(rtcp, *ssrc),
            (Side::Ingress { ssrc, sender_reports, .. }, RtcpFrom::Publisher) => {
                let bytes = rtcp.bytes();
                let from_publisher = |offset: usize| bytes.get(offset + 4..offset + 8) == Some(&ssrc.0.to_be_bytes());
                *sender_reports += rtcp
                    .packets()
                    .filter(|packet| packet.kind == RtcpType::SenderReport && from_publisher(packet.offset))
                    .count() as u64;
            }
            (Side::Egress { out_ssrc, epoch, reported, reports, rtt_us, .. }, RtcpFrom::Subscriber { .. }) => {
                self.feedback.count(rtcp, *out_ssrc);
                let mut counted = false;
                for (_, block) in report_blocks(rtcp).filter(|(_, block)| block.ssrc == *out_ssrc) {
                    if !counted {
                        *reports += 1;
                        counted = true;
                    }
                    if let Some(rtt) = round_trip_us(epoch.ntp_at(ctx.now()), &block) {
                        *rtt_us = rtt;
                    }
                    *reported = Some(block);
                }
            }
            (Side::Egress { .. }, RtcpFrom::Publisher) => {}
        }
        Verdict::Continue
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        if let Some(next) = self.bitrate.close(ctx.now()) {
            ctx.schedule(next);
        }
        if let Side::Ingress { reception, .. } = &mut self.side {
            reception.close_interval();
        }
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.packets += self.packets;
        out.bytes += self.bytes;
        out.bitrate_bps += self.bitrate.bitrate_bps();
        self.feedback.add_to(out);
        match &self.side {
            Side::Ingress { reception, sender_reports, .. } => {
                out.lost = reception.lost();
                out.fraction_lost = reception.fraction_lost();
                out.jitter_rtp_units = reception.jitter_rtp_units();
                out.jitter_us = reception.jitter_us();
                out.reordered += reception.reordered();
                out.duplicates += reception.duplicates();
                out.sender_reports += sender_reports;
            }
            Side::Egress { clock_rate_hz, reported, reports, rtt_us, .. } => {
                if let Some(block) = reported {
                    out.lost = i64::from(block.cumulative_lost);
                    out.fraction_lost = block.fraction_lost;
                    out.jitter_rtp_units = block.jitter;
                    out.jitter_us = rtp_units_to_us(block.jitter, *clock_rate_hz);
                }
                out.receiver_reports += reports;
                out.rtt_us = *rtt_us;
            }
        }
    }
}

/// Test helpers of `stats`, `reports` and `nack_generator` on top of the shared
/// [`super::wire_feedback::test_support`]: media attributes with a chosen timestamp, and bindings with
/// a realistic NTP epoch (the shared one starts at NTP 0, where an LSR of 0 would mean "no SR").
#[cfg(test)]
pub(super) mod test_media {
    use std::time::Instant;

    use super::super::wire_feedback::test_support::{attrs, rtp, stream_info, subscription_info};
    use crate::core::interceptor::spec::{NtpEpoch, StreamInfo, SubscriptionInfo};
    use crate::core::interceptor::RtpAttrs;
    use crate::core::wire::{RtpTimestamp, Ssrc};

    /// The subscription's flow key in [`subscription_info`].
    pub const FLOW: u32 = 7;

    /// A 1000-byte packet (988 bytes of payload) of `ssrc` with `ext_seq` and RTP timestamp `ts`.
    pub fn media(arrival: Instant, ssrc: Ssrc, ext_seq: u64, ts: u32) -> RtpAttrs {
        let pkt = rtp(ext_seq as u16, 96, 988, None);
        RtpAttrs { ssrc, timestamp: RtpTimestamp(ts), ..attrs(&pkt, ext_seq, arrival) }
    }

    /// An NTP epoch at `t0` in 2024 (with a fraction, so the compact form is not round).
    pub fn epoch(t0: Instant) -> NtpEpoch {
        NtpEpoch { at: t0, ntp: (3_913_056_000u64 << 32) | 0x4000_0000 }
    }

    /// The shared stream binding with [`epoch`].
    pub fn stream(t0: Instant) -> StreamInfo {
        StreamInfo { epoch: epoch(t0), ..stream_info(t0) }
    }

    /// The shared subscription binding with [`epoch`].
    pub fn subscription(t0: Instant) -> SubscriptionInfo {
        SubscriptionInfo { epoch: epoch(t0), ..subscription_info(t0) }
    }
}

#[cfg(test)]
mod tests {
    use rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

    use super::super::wire_feedback::test_support::{at, compound, snapshot, Harness, PUBLISHER, SUBSCRIBER};
    use super::test_media::*;
    use super::*;

    const CLOCK_HZ: u32 = 90_000;

    #[test]
    fn loss_reorder_and_duplicates_are_counted_exactly() {
        let t0 = Instant::now();
        let mut stats = ReceptionStats::new(CLOCK_HZ);
        let base = (1 << 16) + 65_530;
        // 0..=11 with 3 and 7 lost, 5 arriving after 6, 8 twice, and 2 again (a duplicate after reorder).
        let order = [0u64, 1, 2, 4, 6, 5, 8, 8, 9, 2, 10, 11];
        let kinds: Vec<Arrival> = order
            .iter()
            .enumerate()
            .map(|(i, &n)| stats.on_packet(base + n, RtpTimestamp(n as u32 * 3000), at(t0, i as u64 * 33)))
            .collect();
        use Arrival::*;
        assert_eq!(
            kinds,
            [
                InOrder, InOrder, InOrder, InOrder, InOrder, Reordered, InOrder, Duplicate, InOrder, Duplicate,
                InOrder, InOrder
            ]
        );
        assert_eq!((stats.expected(), stats.received()), (12, 12));
        assert_eq!(stats.lost(), 0, "two duplicates hide two losses (RFC 3550 A.3)");
        assert_eq!((stats.reordered(), stats.duplicates()), (1, 2));
        // Sequence numbers wrapped 65535 -> 0: one cycle in the report's high bits.
        assert_eq!(stats.extended_highest_seq(), 65_536 + 5);
        assert_eq!(stats.close_interval(), 0, "no net loss in the interval");

        // Next interval: 12..=19 with 13, 14 and 18 lost: 3 of 8 -> 96/256.
        for n in [12u64, 15, 16, 17, 19] {
            stats.on_packet(base + n, RtpTimestamp(0), t0);
        }
        let block = stats.report_block(PUBLISHER, 0, 0);
        assert_eq!(block.fraction_lost, 96);
        assert_eq!(block.cumulative_lost, 3);
        assert_eq!(stats.close_interval(), 0, "an empty interval loses nothing");
    }

    #[test]
    fn duplicate_window_is_bounded_and_exact() {
        let t0 = Instant::now();
        let mut stats = ReceptionStats::new(CLOCK_HZ);
        let base = 1 << 16;
        stats.on_packet(base, RtpTimestamp(0), t0);
        stats.on_packet(base + 2, RtpTimestamp(0), t0);
        // A jump past the window forgets everything below it.
        stats.on_packet(base + 2 + DUPLICATE_WINDOW, RtpTimestamp(0), t0);
        assert_eq!(stats.on_packet(base + 2, RtpTimestamp(0), t0), Arrival::Reordered, "too old to tell");
        assert_eq!(stats.on_packet(base + 3 + DUPLICATE_WINDOW / 2, RtpTimestamp(0), t0), Arrival::Reordered);
        assert_eq!(stats.on_packet(base + 3 + DUPLICATE_WINDOW / 2, RtpTimestamp(0), t0), Arrival::Duplicate);
        assert_eq!(stats.on_packet(base + 2 + DUPLICATE_WINDOW, RtpTimestamp(0), t0), Arrival::Duplicate);
        // Slots reused after the window slides are cleared: not mistaken for duplicates.
        assert_eq!(stats.on_packet(base + 4 + DUPLICATE_WINDOW * 2, RtpTimestamp(0), t0), Arrival::InOrder);
        assert_eq!(stats.on_packet(base + 3 + DUPLICATE_WINDOW * 2, RtpTimestamp(0), t0), Arrival::Reordered);
        assert_eq!((stats.reordered(), stats.duplicates()), (3, 2));
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        let t0 = Instant::now();
        // A constant-rate stream (20 ms, 90 kHz) with constant transit has no jitter.
        let mut steady = ReceptionStats::new(CLOCK_HZ);
        for n in 0..100u64 {
            steady.on_packet((1 << 16) + n, RtpTimestamp(n as u32 * 1800), at(t0, n * 20));
        }
        assert_eq!(steady.jitter_rtp_units(), 0);

        // Transit alternating by 2 ms (180 ticks): |D| = 180 for every packet after the first, so
        // J(n) = 180 (1 - (15/16)^n) in the RFC's real-valued form.
        let mut varying = ReceptionStats::new(CLOCK_HZ);
        let mut expected = 0.0f64;
        for n in 0..60u64 {
            let delay_ms = if n % 2 == 1 { 2 } else { 0 };
            // Timestamps start near the wrap to check the modular arithmetic.
            let ts = (u32::MAX - 50_000).wrapping_add(n as u32 * 1800);
            varying.on_packet((1 << 16) + n, RtpTimestamp(ts), at(t0, n * 20 + delay_ms));
            if n > 0 {
                expected += (180.0 - expected) / 16.0;
            }
            assert!(
                (f64::from(varying.jitter_rtp_units()) - expected).abs() <= 1.0,
                "packet {n}: {} vs {expected}",
                varying.jitter_rtp_units()
            );
        }
        assert!(varying.jitter_rtp_units() >= 175);
        assert_eq!(varying.jitter_us(), u64::from(varying.jitter_rtp_units()) * 1_000_000 / 90_000);
    }

    #[test]
    fn bitrate_meter_windows() {
        let t0 = Instant::now();
        let mut meter = BitrateMeter::new(1000);
        assert_eq!(meter.add(1000, t0), Some(at(t0, 1000)));
        assert_eq!(meter.add(1500, at(t0, 500)), None);
        assert_eq!(meter.close(at(t0, 1000)), Some(at(t0, 2000)));
        assert_eq!(meter.bitrate_bps(), 20_000);
        assert_eq!(meter.close(at(t0, 2000)), None, "an empty window ends the measurement");
        assert_eq!(meter.bitrate_bps(), 0);
        assert_eq!(meter.add(10, at(t0, 5000)), Some(at(t0, 6000)));
    }

    #[test]
    fn ingress_stats_measure_the_publisher_and_count_feedback() {
        let t0 = Instant::now();
        let mut stats = StatsInterceptor::for_stream(&StatsParams { bitrate_window_ms: 1000 }, &stream(t0));
        let mut h = Harness::ingress();
        // 50 packets/s of 1000 bytes for 1 s, every 10th lost.
        for n in 0..50u64 {
            if n % 10 == 9 {
                continue;
            }
            let verdict =
                h.rtp(&mut stats, &[0x80; 12], &media(at(t0, n * 20), PUBLISHER, (1 << 16) + n, n as u32 * 1800));
            assert_eq!(verdict, Verdict::Continue);
        }
        let feedback = compound(vec![
            Box::new(TransportLayerNack {
                sender_ssrc: SUBSCRIBER.0,
                media_ssrc: PUBLISHER.0,
                nacks: vec![NackPair { packet_id: 9, lost_packets: 1 << 9 }],
            }),
            Box::new(PictureLossIndication { sender_ssrc: SUBSCRIBER.0, media_ssrc: PUBLISHER.0 }),
            Box::new(FullIntraRequest {
                sender_ssrc: SUBSCRIBER.0,
                media_ssrc: 0,
                fir: vec![FirEntry { ssrc: PUBLISHER.0, sequence_number: 1 }],
            }),
        ]);
        let from = RtcpFrom::Subscriber { flow: FLOW };
        assert_eq!(h.rtcp(&mut stats, &feedback, from, at(t0, 990)), Verdict::Continue);
        let sr = compound(vec![Box::new(SenderReport { ssrc: PUBLISHER.0, ..Default::default() })]);
        assert_eq!(h.rtcp(&mut stats, &sr, RtcpFrom::Publisher, at(t0, 995)), Verdict::Continue);
        h.advance(&mut stats, at(t0, 1000));
        assert!(h.take().is_empty(), "stats never emit");

        let figures = snapshot(&stats);
        assert_eq!((figures.packets, figures.bytes), (45, 45_000));
        assert_eq!(figures.lost, 4, "49 expected (the last one, 49, is lost unseen), 45 received");
        assert_eq!(figures.fraction_lost, (4 * 256 / 49) as u8);
        assert_eq!(figures.bitrate_bps, 360_000);
        assert_eq!((figures.nacks_received, figures.nack_items_received), (1, 2));
        assert_eq!((figures.plis_received, figures.firs_received, figures.sender_reports), (1, 1, 1));
        assert_eq!(figures.jitter_rtp_units, 0);

        // A second, silent second: the bit rate drops to 0 and the timer stops.
        h.advance(&mut stats, at(t0, 5000));
        assert_eq!(h.wake, None);
        let figures = snapshot(&stats);
        assert_eq!((figures.bitrate_bps, figures.fraction_lost), (0, 0));
    }

    #[test]
    fn egress_stats_read_the_subscribers_report_and_rtt() {
        let t0 = Instant::now();
        let info = subscription(t0);
        let mut stats = StatsInterceptor::for_subscription(&StatsParams { bitrate_window_ms: 500 }, &info);
        let out_ssrc = info.out_ssrc;
        let mut h = Harness::egress();
        for n in 0..25u64 {
            h.rtp(&mut stats, &[0x80; 12], &media(at(t0, n * 20), out_ssrc, (1 << 16) + n, n as u32 * 1800));
        }
        h.advance(&mut stats, at(t0, 500));
        assert_eq!(snapshot(&stats).bitrate_bps, 400_000, "25 kB over the first 500 ms window");
        // We sent an SR at t0 + 1 s; the subscriber held it 150 ms and its RR arrives at t0 + 1.4 s:
        // RTT = 400 - 150 = 250 ms.
        let lsr = compact_ntp(info.epoch.ntp_at(at(t0, 1000)));
        let rr = compound(vec![Box::new(ReceiverReport {
            ssrc: SUBSCRIBER.0,
            reports: vec![
                ReceptionReport { ssrc: 0x9999, fraction_lost: 200, ..Default::default() },
                ReceptionReport {
                    ssrc: out_ssrc.0,
                    fraction_lost: 12,
                    total_lost: 0xff_fffe,
                    last_sequence_number: 24,
                    jitter: 900,
                    last_sender_report: lsr,
                    delay: 65_536 * 150 / 1000,
                },
            ],
            ..Default::default()
        })]);
        assert_eq!(h.rtcp(&mut stats, &rr, RtcpFrom::Subscriber { flow: FLOW }, at(t0, 1400)), Verdict::Continue);
        let figures = snapshot(&stats);
        assert_eq!((figures.packets, figures.bytes, figures.receiver_reports), (25, 25_000, 1));
        assert_eq!((figures.lost, figures.fraction_lost, figures.jitter_rtp_units), (-2, 12, 900));
        assert_eq!(figures.jitter_us, 10_000);
        assert!(figures.rtt_us.abs_diff(250_000) < 1000, "rtt {} us", figures.rtt_us);

        // A report without LSR keeps the last RTT.
        let no_lsr = compound(vec![Box::new(ReceiverReport {
            ssrc: SUBSCRIBER.0,
            reports: vec![ReceptionReport { ssrc: out_ssrc.0, ..Default::default() }],
            ..Default::default()
        })]);
        h.rtcp(&mut stats, &no_lsr, RtcpFrom::Subscriber { flow: FLOW }, at(t0, 2000));
        let figures = snapshot(&stats);
        assert!(figures.rtt_us.abs_diff(250_000) < 1000);
        assert_eq!((figures.lost, figures.receiver_reports), (0, 2));
    }

    #[test]
    fn rtt_rejects_missing_or_negative() {
        let mut block = ReportBlock {
            ssrc: Ssrc(5),
            fraction_lost: 0,
            cumulative_lost: 0,
            extended_highest_seq: 0,
            jitter: 0,
            last_sr: 0,
            delay_since_last_sr: 0,
        };
        assert_eq!(round_trip_us(1 << 40, &block), None);
        block.last_sr = compact_ntp(1 << 40);
        block.delay_since_last_sr = 10;
        assert_eq!(round_trip_us(1 << 40, &block), None, "DLSR longer than the time since the SR");
        assert_eq!(round_trip_us((1 << 40) + (1 << 32), &block), Some((65_536 - 10) * 1_000_000 / 65_536));
    }
}
