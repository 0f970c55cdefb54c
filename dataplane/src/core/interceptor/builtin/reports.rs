//! RTCP reports ringfwd sends as an RTP translator: receiver reports to each publisher and sender
//! reports to each subscriber (RFC 3550 §6.4).
//!
//! Owns [`ReceiverReports`] (ingress: its own [`ReceptionStats`] of the publisher, the publisher's
//! last SR for LSR/DLSR, a periodic RR to the publisher) and [`SenderReports`] (egress: the packet and
//! payload-octet counts of what this subscriber was sent, the publisher's NTP↔RTP mapping, a periodic
//! SR to the subscriber that replaces the publisher's). Report intervals are randomised to 0.5–1.5 ×
//! the configured one (RFC 3550 §6.3.1) by a small deterministic generator seeded from the SSRCs.
//! Must never allocate after construction, never consume the publisher's RTCP on ingress (each
//! subscription decides what its subscriber gets), and never read a clock (time is the context's).
//!
//! # What the compounds carry
//! Every report is a compound with an SDES CNAME after it (RFC 3550 §6.1, written by
//! [`super::wire_compound`]). Toward the publisher the CNAME is ringfwd's own for the stream's local
//! SSRC (`ringfwd-<local ssrc hex>`). Toward a subscriber it is the publisher's, learned from the
//! SDES of its RTCP (so a subscriber ties one participant's audio and video together for lip sync),
//! and `ringfwd-<publisher ssrc hex>` until one arrives. A publisher compound with an SR is consumed;
//! if it holds more than the SR (SDES, BYE, APP...), the subscriber gets ringfwd's own SR followed by
//! those packets, already rewritten to the out SSRC (with ringfwd's SDES after the SR if they hold no
//! CNAME for the out SSRC), so a publisher's BYE reaches every subscriber.
//!
//! # Which clock the SR's NTP timestamp uses
//! The NTP timestamp of every SR sent to a subscriber is ringfwd's own wall clock
//! ([`NtpEpoch::ntp_at`] of now), never the publisher's. The subscriber echoes its middle 32 bits
//! as LSR, and the egress `stats` computes the RTT against the same clock, so the RTT is exact. The RTP
//! timestamp is made to match: when the publisher has sent an SR, its RTP time is taken as the RTP
//! time at the SR's arrival and extrapolated with the clock rate to now, so each of a publisher's
//! streams is anchored to ringfwd's clock by its own SR. Lip sync between the streams survives up to
//! the difference between their SRs' one-way delays (network jitter, typically a few milliseconds,
//! refreshed by every SR). Keeping the publisher's NTP would preserve sync exactly but make the RTT
//! unmeasurable, since the subscriber's LSR would then be in the publisher's clock. Before any
//! publisher SR, the RTP time is the last sent packet's timestamp extrapolated to now.

use std::time::{Duration, Instant};

use super::stats::ReceptionStats;
use super::wire_compound::{find_cname, write_empty_receiver_report, write_report_compound, Cname};
use super::wire_reports::{sender_info, write_receiver_report, write_sender_report, SenderInfo};
use crate::core::interceptor::spec::{NtpEpoch, ReportParams, StreamInfo, SubscriptionInfo};
use crate::core::interceptor::{Context, Interceptor, RtcpFrom, RtpAttrs, Snapshot, Verdict};
use crate::core::packet::{RtcpCompound, RtcpType};
use crate::core::wire::{rtp_ticks, RtpTimestamp, Ssrc};

/// The report timer: randomised intervals of `interval` × a factor in [0.5, 1.5) from an xorshift64*
/// generator, armed by the first packet and kept running only while packets keep coming.
#[derive(Clone, Copy, Debug)]
struct ReportTimer {
    interval_us: u64,
    state: u64,
    armed: bool,
    /// Packets counted when the last report was due.
    packets_at_last_report: u64,
}

impl ReportTimer {
    /// Intervals around `interval_ms` (at least 1 ms), with a sequence fixed by the two SSRCs.
    fn new(interval_ms: u32, a: Ssrc, b: Ssrc) -> ReportTimer {
        let seed = (u64::from(a.0) << 32 | u64::from(b.0)) ^ 0x9e37_79b9_7f4a_7c15;
        ReportTimer {
            interval_us: u64::from(interval_ms.max(1)) * 1000,
            state: seed.max(1),
            armed: false,
            packets_at_last_report: 0,
        }
    }

    /// The next interval.
    fn next_interval(&mut self) -> Duration {
        // xorshift64* (Vigna): never reaches 0 from a non-zero state.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let random = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 54; // 10 bits: 0..1024
        Duration::from_micros(self.interval_us * (512 + random) / 1024)
    }

    /// Called for each packet: arms the timer one interval from now if it is not running.
    fn on_packet(&mut self, ctx: &mut Context<'_>) {
        if !self.armed {
            self.rearm(ctx);
        }
    }

    /// Called when the timer fires with the packets counted so far: true if a report is due (packets
    /// came since the last one), and then the timer runs again; false leaves it stopped.
    fn on_fire(&mut self, packets: u64, ctx: &mut Context<'_>) -> bool {
        self.armed = false;
        if packets == self.packets_at_last_report {
            return false;
        }
        self.packets_at_last_report = packets;
        self.rearm(ctx);
        true
    }

    fn rearm(&mut self, ctx: &mut Context<'_>) {
        ctx.schedule(ctx.now() + self.next_interval());
        self.armed = true;
    }
}

/// `elapsed` in units of 1/65536 s, as DLSR carries it (saturating).
fn dlsr_units(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_nanos() * 65_536 / 1_000_000_000).unwrap_or(u32::MAX)
}

/// The `receiver_reports` built-in (ingress): a receiver report about the publisher, to the publisher.
///
/// The first report goes out one randomised interval after the first packet, then one per interval
/// while packets keep arriving; after an interval without packets it stops until the next packet.
#[derive(Clone, Debug)]
pub struct ReceiverReports {
    publisher: Ssrc,
    local: Ssrc,
    reception: ReceptionStats,
    /// LSR of the publisher's last SR and when it arrived.
    last_sr: Option<(u32, Instant)>,
    timer: ReportTimer,
    reports_sent: u64,
    /// ringfwd's CNAME toward the publisher.
    cname: Cname,
}

impl ReceiverReports {
    /// Receiver reports about the publisher of `info`, sent from `info.local_ssrc`.
    pub fn new(params: &ReportParams, info: &StreamInfo) -> ReceiverReports {
        ReceiverReports {
            publisher: info.ssrc,
            local: info.local_ssrc,
            reception: ReceptionStats::new(info.clock_rate_hz),
            last_sr: None,
            timer: ReportTimer::new(params.interval_ms, info.local_ssrc, info.ssrc),
            reports_sent: 0,
            cname: Cname::ringfwd(info.local_ssrc),
        }
    }
}

impl Interceptor for ReceiverReports {
    fn on_rtp(&mut self, _pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        self.reception.on_packet(attrs.ext_seq, attrs.timestamp, attrs.arrival);
        self.timer.on_packet(ctx);
        Verdict::Continue
    }

    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        if from == RtcpFrom::Publisher {
            if let Some(sender) = sender_info(rtcp).filter(|sender| sender.ssrc == self.publisher) {
                self.last_sr = Some((sender.compact_ntp(), ctx.now()));
            }
        }
        Verdict::Continue
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        if !self.timer.on_fire(self.reception.received(), ctx) {
            return;
        }
        let now = ctx.now();
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, arrived)) => (lsr, dlsr_units(now.saturating_duration_since(arrived))),
            None => (0, 0),
        };
        let block = self.reception.report_block(self.publisher, lsr, dlsr);
        let (local, cname) = (self.local, &self.cname);
        let write_rr = |out: &mut [u8]| write_receiver_report(out, local, &block);
        if ctx.send_rtcp_to_publisher(|slot| write_report_compound(slot, write_rr, local, cname)) {
            self.reports_sent += 1;
        }
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.receiver_reports += self.reports_sent;
    }
}

/// The `sender_reports` built-in (egress): ringfwd's own sender report to the subscriber, in place of
/// the publisher's (see the module docs for its NTP and RTP timestamps).
///
/// The first report goes out one randomised interval after the first packet, then one per interval
/// while packets are sent; after an interval without packets it stops until the next packet.
#[derive(Clone, Debug)]
pub struct SenderReports {
    flow: u32,
    out_ssrc: Ssrc,
    clock_rate_hz: u32,
    epoch: NtpEpoch,
    /// Payload octets sent, modulo 2^32 as the SR carries them (RFC 3550 §6.4.1).
    octet_count: u32,
    /// Packets sent (the SR carries them modulo 2^32).
    packets_sent: u64,
    /// The last sent packet's RTP timestamp and when it arrived.
    last_sent: Option<(RtpTimestamp, Instant)>,
    /// The publisher's last SR: its RTP time (in this subscriber's space) and when it arrived.
    publisher_sr: Option<(RtpTimestamp, Instant)>,
    timer: ReportTimer,
    reports_sent: u64,
    /// The CNAME the reports carry: the publisher's once learned (see the module docs).
    cname: Cname,
}

impl SenderReports {
    /// Sender reports to the subscriber of `info`, from its out SSRC.
    pub fn new(params: &ReportParams, info: &SubscriptionInfo) -> SenderReports {
        SenderReports {
            flow: info.flow,
            out_ssrc: info.out_ssrc,
            clock_rate_hz: info.clock_rate_hz,
            epoch: info.epoch,
            octet_count: 0,
            packets_sent: 0,
            last_sent: None,
            publisher_sr: None,
            timer: ReportTimer::new(params.interval_ms, info.out_ssrc, info.source_ssrc),
            reports_sent: 0,
            cname: Cname::ringfwd(info.source_ssrc),
        }
    }

    /// Sends ringfwd's report at `ctx.now()` (an SR, or an empty RR while no RTP time is known) with its
    /// SDES CNAME, followed by the publisher's own packets of `rest` (SDES, BYE, APP: a publisher compound
    /// rewritten to the out SSRC; its own SDES replaces ringfwd's when it names the out SSRC). True if it was
    /// queued.
    fn send_report(&mut self, rest: Option<&RtcpCompound<'_>>, ctx: &mut Context<'_>) -> bool {
        let now = ctx.now();
        let sender = self.rtp_time_at(now).map(|rtp_time| SenderInfo {
            ssrc: self.out_ssrc,
            ntp: self.epoch.ntp_at(now),
            rtp_time,
            // The SR's 32-bit packet count wraps (RFC 3550 §6.4.1).
            packet_count: self.packets_sent as u32,
            octet_count: self.octet_count,
        });
        let (out_ssrc, cname) = (self.out_ssrc, &self.cname);
        let rest_has_cname = rest.is_some_and(|rest| find_cname(rest, out_ssrc).is_some());
        let sent = ctx.send_to_subscriber(self.flow, |slot| {
            let report = |out: &mut [u8]| match &sender {
                Some(sender) => write_sender_report(out, sender, None),
                None => write_empty_receiver_report(out, out_ssrc),
            };
            let mut len =
                if rest_has_cname { report(slot) } else { write_report_compound(slot, report, out_ssrc, cname) };
            if len == 0 {
                return 0;
            }
            let Some(rest) = rest else {
                return len;
            };
            for packet in rest.packets().filter(|packet| publishers_own(packet.kind)) {
                let (Some(from), Some(to)) = (
                    rest.bytes().get(packet.offset..packet.offset + packet.len_bytes),
                    slot.get_mut(len..len + packet.len_bytes),
                ) else {
                    return 0;
                };
                to.copy_from_slice(from);
                len += packet.len_bytes;
            }
            len
        });
        if sent {
            self.reports_sent += 1;
        }
        sent
    }

    /// The RTP timestamp of `now` in the subscriber's space, if any packet or publisher SR gave one.
    fn rtp_time_at(&self, now: Instant) -> Option<RtpTimestamp> {
        let (anchor, at) = self.publisher_sr.or(self.last_sent)?;
        Some(anchor.add(rtp_ticks(now.saturating_duration_since(at), self.clock_rate_hz)))
    }
}

impl Interceptor for SenderReports {
    fn on_rtp(&mut self, _pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        self.octet_count = self.octet_count.wrapping_add(attrs.payload_bytes as u32);
        self.packets_sent += 1;
        self.last_sent = Some((attrs.timestamp, attrs.arrival));
        self.timer.on_packet(ctx);
        Verdict::Continue
    }

    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        if from != RtcpFrom::Publisher {
            return Verdict::Continue;
        }
        if let Some(cname) = find_cname(rtcp, self.out_ssrc) {
            self.cname.set(cname);
        }
        // A validated compound with an SR always has its sender info.
        let Some(sender) = sender_info(rtcp) else {
            return Verdict::Continue;
        };
        if sender.ssrc == self.out_ssrc {
            self.publisher_sr = Some((sender.rtp_time, ctx.now()));
        }
        // What the subscriber needs of it besides the SR ringfwd replaces (a BYE, an APP) goes on at once with
        // ringfwd's own SR in front; an SR with only SDES is absorbed (its CNAME, learned above, rides on
        // ringfwd's next timed SR), so the subscriber gets no more SRs than the report interval gives. What a
        // publisher that also receives says as a receiver (RRs, NACKs, PLIs, XR) is about another stream and
        // reaches that stream's subscription instead (see the forwarder's `subscriber_part`).
        if rtcp.packets().any(|packet| matches!(packet.kind, RtcpType::Goodbye | RtcpType::App)) {
            self.send_report(Some(rtcp), ctx);
        }
        Verdict::Consumed
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        if !self.timer.on_fire(self.packets_sent, ctx) {
            return;
        }
        if self.rtp_time_at(ctx.now()).is_some() {
            self.send_report(None, ctx);
        }
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.sender_reports += self.reports_sent;
    }
}

/// The packets of a publisher's compound that speak for its stream and go on to subscribers behind ringfwd's SR.
fn publishers_own(kind: RtcpType) -> bool {
    matches!(kind, RtcpType::SourceDescription | RtcpType::Goodbye | RtcpType::App)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rtcp::goodbye::Goodbye;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};
    use webrtc_util::marshal::Unmarshal;

    use super::super::stats::test_media::{media, stream, subscription, FLOW};
    use super::super::stats::StatsInterceptor;
    use super::super::wire_compound::test_support::after_cname;
    use super::super::wire_feedback::test_support::{at, compound, snapshot, Harness, PUBLISHER, SUBSCRIBER};
    use super::super::wire_reports::compact_ntp;
    use super::*;
    use crate::core::interceptor::spec::StatsParams;
    use crate::core::interceptor::Target;

    const PARAMS: ReportParams = ReportParams { interval_ms: 1000 };

    fn sr(ssrc: Ssrc, ntp: u64, rtp_time: u32) -> Vec<u8> {
        compound(vec![Box::new(SenderReport { ssrc: ssrc.0, ntp_time: ntp, rtp_time, ..Default::default() })])
    }

    #[test]
    fn intervals_are_randomised_within_half_to_one_and_a_half_and_deterministic() {
        let mut a = ReportTimer::new(1000, Ssrc(1), Ssrc(2));
        let mut b = ReportTimer::new(1000, Ssrc(1), Ssrc(2));
        let mut c = ReportTimer::new(1000, Ssrc(1), Ssrc(3));
        let draws: Vec<Duration> = (0..200).map(|_| a.next_interval()).collect();
        assert!(draws.iter().all(|d| *d >= Duration::from_millis(500) && *d < Duration::from_millis(1500)));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(700)), "spread low");
        assert!(draws.iter().any(|d| *d > Duration::from_millis(1300)), "spread high");
        assert_eq!(draws, (0..200).map(|_| b.next_interval()).collect::<Vec<_>>(), "same SSRCs, same sequence");
        assert_ne!(draws, (0..200).map(|_| c.next_interval()).collect::<Vec<_>>());
    }

    #[test]
    fn receiver_report_describes_the_publisher_with_lsr_and_dlsr() {
        let t0 = Instant::now();
        let info = stream(t0);
        let mut rr = ReceiverReports::new(&PARAMS, &info);
        let mut h = Harness::ingress();
        // The lead may call the timer at bind: nothing to report, nothing scheduled.
        h.wake = Some(t0);
        h.advance(&mut rr, t0);
        assert_eq!(h.wake, None);

        let publisher_ntp = 0xe000_0000_1234_5678u64;
        let mut sr_at = None;
        let mut sent = Vec::new();
        for n in 0..150u64 {
            let now = at(t0, n * 20);
            if n == 20 {
                let verdict = h.rtcp(&mut rr, &sr(PUBLISHER, publisher_ntp, 0), RtcpFrom::Publisher, now);
                assert_eq!(verdict, Verdict::Continue, "the publisher's SR is not consumed");
                sr_at = Some(now);
            }
            if n % 25 != 24 {
                h.rtp(&mut rr, &[0x80; 12], &media(now, PUBLISHER, (1 << 16) + 65_500 + n, n as u32 * 1800));
            }
            for (target, bytes) in h.take() {
                sent.push((now, target, bytes));
            }
        }
        assert!(sent.len() >= 2, "about one report a second over 3 s, got {}", sent.len());
        let (sent_at, target, bytes) = &sent[0];
        assert_eq!(*target, Target::Publisher { stream: 0 });
        let parsed = ReceiverReport::unmarshal(&mut Bytes::copy_from_slice(bytes)).expect("rtcp parses it");
        assert_eq!(parsed.ssrc, info.local_ssrc.0);
        assert!(after_cname(bytes).is_empty(), "RR + SDES, nothing else");
        let view = RtcpCompound::parse(bytes).expect("valid");
        let cname = format!("ringfwd-{:08x}", info.local_ssrc.0);
        assert_eq!(find_cname(&view, info.local_ssrc), Some(cname.as_bytes()), "ringfwd's own CNAME");
        let block = &parsed.reports[0];
        assert_eq!(block.ssrc, PUBLISHER.0);
        assert_eq!(block.last_sender_report, compact_ntp(publisher_ntp));
        // The report went out at the timer, between the previous packet (at most 20 ms before `sent_at`).
        let dlsr_s = f64::from(block.delay) / 65_536.0;
        let since_sr = sent_at.duration_since(sr_at.expect("SR sent")).as_secs_f64();
        assert!(dlsr_s <= since_sr && dlsr_s > since_sr - 0.021, "dlsr {dlsr_s} s vs {since_sr} s");
        // Packets 0..k with every 25th (n = 24, 49, ...) missing.
        let highest = u64::from(block.last_sequence_number) + (1 << 16);
        let count = highest - ((1 << 16) + 65_500) + 1;
        assert_eq!(u64::from(block.total_lost), count / 25);
        assert_eq!(block.last_sequence_number >> 16, u32::from(count > 36), "a cycle after seq 65535");
        assert_eq!(block.fraction_lost, ((count / 25) * 256 / count) as u8);
        assert_eq!(block.jitter, 0, "constant transit");
        // Later reports: intervals within 0.5–1.5 s.
        for pair in sent.windows(2) {
            let gap = pair[1].0.duration_since(pair[0].0);
            assert!(gap >= Duration::from_millis(480) && gap <= Duration::from_millis(1520), "gap {gap:?}");
        }
        assert_eq!(snapshot(&rr).receiver_reports, sent.len() as u64);

        // Silence: at most one more report (covering the last packets), then the timer stops.
        h.advance(&mut rr, at(t0, 60_000));
        assert!(h.take().len() <= 1);
        assert_eq!(h.wake, None);
    }

    #[test]
    fn sender_report_counts_what_was_sent_and_replaces_the_publishers() {
        let t0 = Instant::now();
        let info = subscription(t0);
        let mut reports = SenderReports::new(&PARAMS, &info);
        let mut h = Harness::egress();
        let mut outputs = Vec::new();
        for n in 0..100u64 {
            let now = at(t0, n * 20);
            h.rtp(&mut reports, &[0x80; 12], &media(now, info.out_ssrc, (1 << 16) + n, 1000 + n as u32 * 1800));
            outputs.extend(h.take().into_iter().map(|(target, bytes)| (now, target, bytes)));
        }
        let (_, target, bytes) = outputs.first().expect("an SR within 2 s");
        assert_eq!(*target, Target::Subscriber { flow: FLOW });
        let parsed = SenderReport::unmarshal(&mut Bytes::copy_from_slice(bytes)).expect("rtcp parses it");
        assert_eq!(parsed.ssrc, info.out_ssrc.0);
        assert!(parsed.reports.is_empty());
        // The SR is written at its timer time: recover it from the NTP timestamp.
        let elapsed_s = (parsed.ntp_time.wrapping_sub(info.epoch.ntp) as f64) / 4_294_967_296.0;
        let packets = (elapsed_s / 0.02).floor() as u32 + 1;
        assert_eq!(parsed.packet_count, packets);
        assert_eq!(parsed.octet_count, packets * 988, "payload octets only");
        // No publisher SR yet: the last packet's timestamp extrapolated at 90 kHz.
        let last_ts = 1000 + (packets - 1) * 1800;
        let expected_rtp = f64::from(last_ts) + (elapsed_s - f64::from(packets - 1) * 0.02) * 90_000.0;
        assert!((f64::from(parsed.rtp_time) - expected_rtp).abs() <= 1.0, "{} vs {expected_rtp}", parsed.rtp_time);

        // The publisher's SR (already rewritten to the out SSRC and time) is consumed; other RTCP is not.
        let now = at(t0, 2010);
        let verdict = h.rtcp(&mut reports, &sr(info.out_ssrc, 0xabcd << 32, 500_000), RtcpFrom::Publisher, now);
        assert_eq!(verdict, Verdict::Consumed);
        let sdes = compound(vec![Box::new(SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: info.out_ssrc.0,
                items: vec![SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "x".into() }],
            }],
        })]);
        assert_eq!(h.rtcp(&mut reports, &sdes, RtcpFrom::Publisher, now), Verdict::Continue);
        let rr = compound(vec![Box::new(ReceiverReport { ssrc: SUBSCRIBER.0, ..Default::default() })]);
        assert_eq!(h.rtcp(&mut reports, &rr, RtcpFrom::Subscriber { flow: FLOW }, now), Verdict::Continue);
        // Reports due before the publisher's SR arrived went out with the old anchor.
        outputs.extend(h.take().into_iter().map(|(target, bytes)| (now, target, bytes)));

        // From now on the RTP time follows the publisher's mapping, the NTP time ringfwd's clock.
        let mut later = Vec::new();
        for n in 101..250u64 {
            let now = at(t0, n * 20);
            h.rtp(&mut reports, &[0x80; 12], &media(now, info.out_ssrc, (1 << 16) + n, 1000 + n as u32 * 1800));
            later.extend(h.take());
        }
        let (_, bytes) = later.first().expect("another SR");
        let parsed = SenderReport::unmarshal(&mut Bytes::copy_from_slice(bytes)).expect("rtcp parses it");
        let since_sr_s = (parsed.ntp_time.wrapping_sub(info.epoch.ntp_at(now)) as f64) / 4_294_967_296.0;
        let expected_rtp = 500_000.0 + since_sr_s * 90_000.0;
        assert!((f64::from(parsed.rtp_time) - expected_rtp).abs() <= 1.0, "{} vs {expected_rtp}", parsed.rtp_time);
        assert_eq!(snapshot(&reports).sender_reports, (outputs.len() + later.len()) as u64);
    }

    /// The packets of `bytes` as the `rtcp` crate reads them.
    fn packets(bytes: &[u8]) -> Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> {
        rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(bytes)).expect("rtcp parses the compound")
    }

    #[test]
    fn the_publishers_sdes_and_bye_pass_behind_our_sr_and_its_cname_is_ours_from_then_on() {
        let t0 = Instant::now();
        let info = subscription(t0);
        let out = info.out_ssrc;
        let mut reports = SenderReports::new(&PARAMS, &info);
        let mut h = Harness::egress();
        let mut first_sr = None;
        for n in 0..100u64 {
            let now = at(t0, n * 20);
            h.rtp(&mut reports, &[0x80; 12], &media(now, out, (1 << 16) + n, 1000 + n as u32 * 1800));
            first_sr = first_sr.or(h.take().into_iter().next());
        }
        // Before the publisher's SDES: SR + SDES with the fallback CNAME, derived from the stream.
        let (_, bytes) = first_sr.expect("an SR within 2 s");
        assert!(after_cname(&bytes).is_empty());
        let fallback = format!("ringfwd-{:08x}", info.source_ssrc.0);
        let view = RtcpCompound::parse(&bytes).expect("valid");
        assert_eq!(find_cname(&view, out), Some(fallback.as_bytes()));

        // An SR alone is consumed, nothing sent in its place.
        let now = at(t0, 2001);
        assert_eq!(h.rtcp(&mut reports, &sr(out, 0xabcd << 32, 500_000), RtcpFrom::Publisher, now), Verdict::Consumed);
        assert!(h.take().is_empty());

        // SR + SDES + BYE (how stacks say goodbye), already rewritten to the out SSRC.
        let sdes = |ssrc: Ssrc| SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: ssrc.0,
                items: vec![SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "alice@host".into() }],
            }],
        };
        let goodbye = compound(vec![
            Box::new(SenderReport { ssrc: out.0, ntp_time: 0xabce << 32, rtp_time: 590_000, ..Default::default() }),
            Box::new(sdes(out)),
            Box::new(Goodbye { sources: vec![out.0], reason: "".into() }),
        ]);
        let now = at(t0, 2002);
        assert_eq!(h.rtcp(&mut reports, &goodbye, RtcpFrom::Publisher, now), Verdict::Consumed);
        let sent = h.take();
        assert_eq!(sent.len(), 1, "one compound in place of the publisher's");
        let (target, bytes) = &sent[0];
        assert_eq!(*target, Target::Subscriber { flow: FLOW });
        let parsed = packets(bytes);
        assert_eq!(parsed.len(), 3, "our SR, the publisher's SDES and BYE");
        let ours = parsed[0].as_any().downcast_ref::<SenderReport>().expect("our SR first");
        assert_eq!(ours.ssrc, out.0);
        assert_eq!(ours.ntp_time, info.epoch.ntp_at(now), "ringfwd's clock, not the publisher's");
        assert_eq!(ours.packet_count, 100, "what this subscriber was sent");
        let pass = parsed[1].as_any().downcast_ref::<SourceDescription>().expect("the SDES");
        assert_eq!(*pass, sdes(out));
        let bye = parsed[2].as_any().downcast_ref::<Goodbye>().expect("the BYE last");
        assert_eq!(bye.sources, [out.0]);
        let tail = after_cname(bytes);
        assert_eq!((tail[0] & 0x1f, tail[1]), (1, 203), "a valid compound, the BYE after the CNAME: {tail:02x?}");

        // BYE without SDES: ringfwd's SDES (with the publisher's CNAME, learned above) goes after the SR.
        let bare = compound(vec![
            Box::new(SenderReport { ssrc: out.0, ..Default::default() }),
            Box::new(Goodbye { sources: vec![out.0], reason: "".into() }),
        ]);
        assert_eq!(h.rtcp(&mut reports, &bare, RtcpFrom::Publisher, now), Verdict::Consumed);
        let (_, bytes) = h.take().pop().expect("sent");
        let parsed = packets(&bytes);
        assert_eq!(parsed.len(), 3);
        assert_eq!(*parsed[1].as_any().downcast_ref::<SourceDescription>().expect("SDES second"), {
            let mut ours = sdes(out);
            ours.chunks[0].items[0].text = "alice@host".into();
            ours
        });
        assert!(parsed[2].as_any().downcast_ref::<Goodbye>().is_some());

        // Its timer reports carry the publisher's CNAME from now on.
        let mut later = Vec::new();
        for n in 101..200u64 {
            let now = at(t0, n * 20);
            h.rtp(&mut reports, &[0x80; 12], &media(now, out, (1 << 16) + n, 1000 + n as u32 * 1800));
            later.extend(h.take());
        }
        let (_, bytes) = later.first().expect("a later SR");
        let view = RtcpCompound::parse(bytes).expect("valid");
        assert_eq!(find_cname(&view, out), Some(&b"alice@host"[..]));
        assert_eq!(snapshot(&reports).sender_reports, 3 + later.len() as u64);
    }

    #[test]
    fn a_publisher_that_also_receives_keeps_its_receiver_feedback_from_the_subscriber() {
        use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use rtcp::reception_report::ReceptionReport;
        let t0 = Instant::now();
        let info = subscription(t0);
        let out = info.out_ssrc;
        let mut reports = SenderReports::new(&PARAMS, &info);
        let mut h = Harness::egress();
        h.rtp(&mut reports, &[0x80; 12], &media(t0, out, 1 << 16, 1000));
        let _ = h.take();
        // A user agent's SR reports on what it receives, and asks for a keyframe of it: nothing for this
        // subscriber, so the compound is absorbed like an SR with only SDES.
        let report = ReceptionReport { ssrc: 0x7777, ..Default::default() };
        let receiving = compound(vec![
            Box::new(SenderReport { ssrc: out.0, reports: vec![report], ..Default::default() }),
            Box::new(PictureLossIndication { sender_ssrc: out.0, media_ssrc: 0x7777 }),
        ]);
        let now = at(t0, 100);
        assert_eq!(h.rtcp(&mut reports, &receiving, RtcpFrom::Publisher, now), Verdict::Consumed);
        assert!(h.take().is_empty(), "no PLI about another stream reaches this subscriber");
        // With a BYE, the BYE goes on behind ringfwd's SR, the PLI does not.
        let leaving = compound(vec![
            Box::new(SenderReport { ssrc: out.0, ..Default::default() }),
            Box::new(PictureLossIndication { sender_ssrc: out.0, media_ssrc: 0x7777 }),
            Box::new(Goodbye { sources: vec![out.0], reason: "".into() }),
        ]);
        assert_eq!(h.rtcp(&mut reports, &leaving, RtcpFrom::Publisher, now), Verdict::Consumed);
        let (_, bytes) = h.take().pop().expect("sent");
        let parsed = packets(&bytes);
        assert!(parsed.iter().all(|p| p.as_any().downcast_ref::<PictureLossIndication>().is_none()), "{parsed:?}");
        assert!(parsed.last().is_some_and(|p| p.as_any().downcast_ref::<Goodbye>().is_some()));
    }

    #[test]
    fn rtt_from_our_sr_to_the_subscribers_rr() {
        let t0 = Instant::now();
        let info = subscription(t0);
        let mut reports = SenderReports::new(&PARAMS, &info);
        let mut stats = StatsInterceptor::for_subscription(&StatsParams { bitrate_window_ms: 1000 }, &info);
        let mut h = Harness::egress();
        let mut stats_h = Harness::egress();
        let mut our_sr = None;
        for n in 0..200u64 {
            let now = at(t0, n * 20);
            let attrs = media(now, info.out_ssrc, (1 << 16) + n, n as u32 * 1800);
            h.rtp(&mut reports, &[0x80; 12], &attrs);
            stats_h.rtp(&mut stats, &[0x80; 12], &attrs);
            if let Some((_, bytes)) = h.take().into_iter().next() {
                our_sr.get_or_insert(bytes);
            }
        }
        let bytes = our_sr.expect("an SR was sent");
        let parsed = SenderReport::unmarshal(&mut Bytes::copy_from_slice(&bytes)).expect("rtcp parses it");
        // Recover when the SR left from its NTP time: the subscriber gets it 37 ms later, holds it 120 ms,
        // and its RR takes 43 ms back. RTT = 80 ms.
        let sent_ns = (((parsed.ntp_time - info.epoch.ntp) as u128 * 1_000_000_000) >> 32) as u64;
        let sent_at = t0 + Duration::from_nanos(sent_ns);
        let rr_arrives = sent_at + Duration::from_millis(37 + 120 + 43);
        let rr = compound(vec![Box::new(ReceiverReport {
            ssrc: SUBSCRIBER.0,
            reports: vec![ReceptionReport {
                ssrc: info.out_ssrc.0,
                last_sender_report: (parsed.ntp_time >> 16) as u32,
                delay: 120 * 65_536 / 1000,
                ..Default::default()
            }],
            ..Default::default()
        })]);
        stats_h.rtcp(&mut stats, &rr, RtcpFrom::Subscriber { flow: FLOW }, rr_arrives);
        let rtt_us = snapshot(&stats).rtt_us;
        assert!(rtt_us.abs_diff(80_000) < 1000, "rtt {rtt_us} us");
        assert_eq!(compact_ntp(info.epoch.ntp_at(sent_at)), (parsed.ntp_time >> 16) as u32);
    }
}
