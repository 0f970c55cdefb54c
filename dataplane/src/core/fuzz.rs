//! The fuzzing entry point shared by the `packet` fuzz target (`fuzz/src/packet.rs`) and the CI property test.
//!
//! Owns [`fuzz_entry`]: it feeds arbitrary bytes to every parser of outside input (demux, RTP view,
//! RTCP walker, rewriter) and to a [`Forwarder`] with a fixed table, and asserts the invariants that
//! must hold for any input. It allocates freely (a fresh forwarder per input, so a crash reproduces
//! from its input alone) and must never be called on a worker's hot path.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::command::{Command, SourcePolicy, StreamId, SubscriptionId};
use super::forwarder::{Forwarder, Outcome};
use super::interceptor::spec::{
    EgressSpec, IngressSpec, KeyframeThrottleParams, NackCacheParams, NackGeneratorParams, PayloadTypeFilterParams,
    RateLimitParams, ReportParams, StatsParams, TapParams, TwccParams,
};
use super::interceptor::PluginList;
use super::packet::{classify, PacketKind, RtcpCompound, RtcpType, RtpView, SdesChunks};
use super::rewrite::{Rewrite, IDENTITY_PAYLOAD_TYPE_MAP};
use super::table::ForwarderLimits;
use super::transmit::{Transmit, Transmits};

/// SSRCs in the fuzz table (all owned by worker 0 of 2; odd SSRCs are handed over).
pub const FUZZ_SSRCS: [u32; 3] = [0x0000_0002, 0x0000_0004, 0x0000_0006];

/// The source address the fixed stream (`FUZZ_SSRCS[0]`) accepts; also the fallback of the third.
pub const FUZZ_PUBLISHER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000));

/// How long after building the fixed table the fuzz input is processed.
const PROCESS_AFTER: Duration = Duration::from_secs(5);

const STRANGER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 9), 6000));

/// Checks every copy the forwarder queued against the input it was given.
struct CheckingEgress<'a> {
    input: &'a [u8],
    /// Sends: forwarded RTP, rewritten RTCP and what interceptors emitted.
    copies: u32,
    /// Sends of another length than the input: only interceptors' emissions may differ.
    resized: u32,
    queue: Transmits,
}

impl CheckingEgress<'_> {
    fn new(input: &[u8]) -> CheckingEgress<'_> {
        CheckingEgress { input, copies: 0, resized: 0, queue: Transmits::with_capacity(64, 64, 64 * 1500) }
    }

    /// Checks and counts what was queued.
    fn check(&mut self) {
        let (input, copies, resized) = (self.input, &mut self.copies, &mut self.resized);
        self.queue.drain(|transmit| {
            match transmit {
                Transmit::Forward { header, len, .. } => {
                    assert_eq!(header[0], input[0], "V/P/X/CC must be kept");
                    assert_eq!(header[1] & 0x80, input[1] & 0x80, "marker must be kept");
                    assert_eq!(len, input.len(), "a forward carries the datagram's payload");
                }
                Transmit::Copy { bytes, .. } => {
                    if classify(bytes) == PacketKind::Rtcp {
                        assert!(RtcpCompound::parse(bytes).is_ok(), "rewritten or emitted RTCP must be valid");
                    }
                    // RTCP rewriting keeps the length; an interceptor's own packet (checked below) may not.
                    *resized += u32::from(bytes.len() != input.len());
                }
            }
            *copies += 1;
            true
        });
    }
}

/// The ingress interceptors of every fuzz stream: every built-in with the shipped defaults' parameters, so they see
/// the fuzz input too (with a small retransmission cache: a fresh forwarder per input must be cheap to build).
pub(crate) fn fuzz_ingress() -> IngressSpec {
    IngressSpec {
        rate_limit: Some(RateLimitParams { max_packets_per_second: 0, max_bits_per_second: 0 }),
        stats: Some(StatsParams { bitrate_window_ms: 1000 }),
        twcc: Some(TwccParams { extension_id: 3, feedback_interval_ms: 100 }),
        nack_generator: Some(NackGeneratorParams {
            max_retries: 5,
            min_retry_interval_ms: 20,
            max_age_ms: 1000,
            max_missing: 512,
        }),
        keyframe_throttle: Some(KeyframeThrottleParams { min_interval_ms: 500 }),
        plugins: PluginList::default(),
        nack_cache: Some(NackCacheParams {
            max_packets: 16,
            max_age_ms: 1000,
            max_retransmits_per_packet: 3,
            upstream_retry_interval_ms: 100,
        }),
        receiver_reports: Some(ReportParams { interval_ms: 1000 }),
        tap: Some(TapParams { snap_bytes: 1500 }),
    }
}

/// The egress interceptors of every fuzz subscription: every built-in, letting every payload type pass.
pub(crate) fn fuzz_egress() -> EgressSpec {
    EgressSpec {
        payload_type_filter: Some(PayloadTypeFilterParams { allowed: u128::MAX }),
        plugins: PluginList::default(),
        stats: Some(StatsParams { bitrate_window_ms: 1000 }),
        sender_reports: Some(ReportParams { interval_ms: 1000 }),
        rtx: None,
    }
}

/// The fixed forwarder: worker 0 of 2, a fixed stream with two active subscriptions (one rewriting)
/// and a paused one, a stream latching for an hour, and one whose second-long window has passed by
/// `created + PROCESS_AFTER` (fallback: the publisher). All commands are applied at `created`.
fn fixed_forwarder(created: Instant) -> Forwarder {
    let limits = ForwarderLimits {
        max_streams: 4,
        max_subscriptions: 8,
        max_subscriptions_per_stream: 4,
        max_packet_bytes: 1500,
        max_packets_per_second_per_source: 0,
    };
    let mut fwd = Forwarder::with_hash_seed(0, 2, limits, 0);
    let hour = Duration::from_secs(3600);
    let policies = [
        SourcePolicy::Fixed(FUZZ_PUBLISHER),
        SourcePolicy::Latch { window: hour, fallback: None },
        SourcePolicy::Latch { window: Duration::from_secs(1), fallback: Some(FUZZ_PUBLISHER) },
    ];
    let mut map = IDENTITY_PAYLOAD_TYPE_MAP;
    map[96] = 101;
    let rewriting =
        Rewrite { out_ssrc: Some(0xabcd_ef01), seq_offset: 40_000, ts_offset: u32::MAX - 7, payload_type_map: map };
    let mut sub = 0;
    for (i, (ssrc, source)) in FUZZ_SSRCS.into_iter().zip(policies).enumerate() {
        let stream = StreamId(i as u64);
        let commands =
            [Command::AddStream { id: stream, ssrc, source, clock_rate_hz: 90_000, ingress: fuzz_ingress() }]
                .into_iter()
                .chain([Rewrite::default(), rewriting.clone()].into_iter().map(|rewrite| {
                    sub += 1;
                    let dest = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000 + sub));
                    Command::AddSubscription {
                        id: SubscriptionId(u64::from(sub)),
                        stream,
                        dest,
                        socket: 0,
                        rewrite,
                        paused: false,
                        egress: fuzz_egress(),
                        continues: None,
                    }
                }))
                .collect::<Vec<_>>();
        for command in commands {
            fwd.apply(created, command).expect("fixed fuzz table is valid");
        }
    }
    fwd.apply(created, Command::SetPaused { id: SubscriptionId(2), paused: true }).expect("sub 2 exists");
    fwd
}

/// Runs `data` through the parsers and a fixed forwarder built at `now` (the datagram arrives
/// `PROCESS_AFTER` later), asserting invariants:
/// parsers never panic, a validated RTCP compound is covered exactly by its packets, rewriting keeps
/// it valid and equally long, every datagram is counted once under exactly one outcome, and the
/// copies egress saw are the copies the outcome reports.
pub fn fuzz_entry(now: Instant, data: &[u8]) {
    let kind = classify(data);
    if let Ok(view) = RtpView::parse(data) {
        assert!(view.payload().len() + 12 <= data.len());
        let _ = (view.ssrc(), view.seq(), view.timestamp(), view.payload_type(), view.marker());
    }
    if let Ok(compound) = RtcpCompound::parse(data) {
        let mut covered = 0;
        for packet in compound.packets() {
            assert_eq!(packet.offset, covered);
            covered += packet.len_bytes;
            if packet.kind == RtcpType::SourceDescription {
                assert!(SdesChunks::new(data, &packet).all(|chunk| chunk.is_ok()));
            }
        }
        assert_eq!(covered, data.len());
        let mut out = [0u8; 1500];
        let rewrite =
            Rewrite { out_ssrc: Some(1), seq_offset: 1, ts_offset: 1, payload_type_map: IDENTITY_PAYLOAD_TYPE_MAP };
        if data.len() <= out.len() {
            let n = rewrite.rtcp_into(compound.first_ssrc().0, data, &mut out);
            assert_eq!(n, Some(data.len()));
        }
    }

    let mut fwd = fixed_forwarder(now);
    let now = now + PROCESS_AFTER;
    for (i, src) in [FUZZ_PUBLISHER, STRANGER, FUZZ_PUBLISHER].into_iter().enumerate() {
        let mut egress = CheckingEgress::new(data);
        let before = fwd.counters().clone();
        let outcome = fwd.on_datagram(now, 0, src, data, &mut egress.queue);
        egress.check();
        let after = fwd.counters();
        assert_eq!(after.rx_packets, i as u64 + 1);
        // What interceptors emitted (an SR in place of the publisher's, a request to the publisher) went out
        // beside the copies the outcome reports.
        let emitted = (after.interceptor_emitted - before.interceptor_emitted) as u32;
        assert!(egress.resized <= emitted, "only interceptors' packets change length");
        egress.copies -= emitted;
        match outcome {
            Outcome::Forwarded { copies } => {
                assert!(matches!(kind, PacketKind::Rtp | PacketKind::Rtcp));
                assert!((1..=2).contains(&copies), "two active subscriptions per stream");
                assert_eq!(copies, egress.copies);
                assert_eq!(after.forwarded_packets - before.forwarded_packets, u64::from(copies));
            }
            Outcome::Dropped(reason) => {
                assert_eq!(egress.copies, 0);
                assert_eq!(after.drops(reason), before.drops(reason) + 1);
            }
            Outcome::CopiesDropped(reason) => {
                assert_eq!(egress.copies, 0);
                let copies = after.drops(reason) - before.drops(reason);
                assert!((1..=2).contains(&copies), "each copy counted once, the datagram not again: {copies}");
            }
            Outcome::Consumed => unreachable!("every fuzz stream has an active subscription"),
            Outcome::Intercepted => {
                assert_eq!(egress.copies, 0);
                let handled = (after.consumed_by_interceptor - before.consumed_by_interceptor)
                    + (after.rx_feedback - before.rx_feedback);
                // Once for the datagram (ingress or subscriber RTCP), or once per copy an egress chain consumed.
                assert!((1..=2).contains(&handled), "counted as consumed or as subscriber RTCP: {handled}");
            }
            Outcome::Handover { owner } => {
                assert_eq!(owner, 1);
                assert_eq!(after.handover_out, before.handover_out + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::counters::DropReason;
    use proptest::prelude::*;

    fn rtp(ssrc: u32, tail: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn fixed_table_forwards_and_latches() {
        let created = Instant::now();
        let mut fwd = fixed_forwarder(created);
        let now = created + PROCESS_AFTER;
        let mut queue = Transmits::with_capacity(8, 8, 8 * 1500);
        let pkt = rtp(FUZZ_SSRCS[0], b"x");
        assert_eq!(fwd.on_datagram(now, 0, FUZZ_PUBLISHER, &pkt, &mut queue), Outcome::Forwarded { copies: 1 });
        assert_eq!(queue.len(), 1);
        queue.drain(|_| true);
        let pkt = rtp(FUZZ_SSRCS[1], b"y");
        assert_eq!(fwd.on_datagram(now, 0, STRANGER, &pkt, &mut queue), Outcome::Forwarded { copies: 2 });
        assert_eq!(queue.len(), 2);
        queue.drain(|_| true);
        let pkt = rtp(FUZZ_SSRCS[2], b"z");
        assert_eq!(fwd.on_datagram(now, 0, STRANGER, &pkt, &mut queue), Outcome::Dropped(DropReason::LatchExpired));
        assert!(queue.is_empty());
        fuzz_entry(created, &pkt);
    }

    #[test]
    fn a_publisher_compound_with_more_than_its_sr() {
        use rtcp::goodbye::Goodbye;
        use rtcp::sender_report::SenderReport;
        use rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};
        let ssrc = FUZZ_SSRCS[0];
        let cname = SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "publisher".into() };
        let packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> = vec![
            Box::new(SenderReport { ssrc, ..Default::default() }),
            Box::new(SourceDescription { chunks: vec![SourceDescriptionChunk { source: ssrc, items: vec![cname] }] }),
            Box::new(Goodbye { sources: vec![ssrc], reason: "".into() }),
        ];
        fuzz_entry(Instant::now(), &rtcp::packet::marshal(&packets).expect("marshal"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            fuzz_entry(Instant::now(), &data);
        }

        #[test]
        fn rtp_shaped(first in 0x80u8..0xc0, second: u8, which in 0usize..4, tail in proptest::collection::vec(any::<u8>(), 0..80)) {
            let ssrc = FUZZ_SSRCS.get(which).copied().unwrap_or(3);
            let mut data = rtp(ssrc, &tail);
            data[0] = first;
            data[1] = second;
            fuzz_entry(Instant::now(), &data);
        }

        #[test]
        fn rtcp_shaped(pt in 192u8..224, count in 0u8..32, which in 0usize..4, words in proptest::collection::vec(any::<u32>(), 1..20)) {
            let ssrc = FUZZ_SSRCS.get(which).copied().unwrap_or(3);
            let mut data = vec![0x80 | count, pt, 0, (words.len() + 1) as u8];
            data.extend_from_slice(&ssrc.to_be_bytes());
            for word in words {
                // Mostly the fuzz SSRC, so rewriting has fields to change.
                let word = if word % 3 == 0 { ssrc } else { word };
                data.extend_from_slice(&word.to_be_bytes());
            }
            fuzz_entry(Instant::now(), &data);
        }
    }
}
