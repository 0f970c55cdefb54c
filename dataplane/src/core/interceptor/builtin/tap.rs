//! The recording tap: copies a stream's packets into a bounded ring that a side thread (the pcap
//! recorder, [`crate::runtime::Recorder`]) drains, so recording costs the worker one `memcpy`.
//!
//! Owns [`TapRing`] (one per worker: the worker produces, the recorder consumes), the [`TapRecord`]s
//! circulating in it and the [`Tap`] interceptor (ingress, kind `Tap`, last in the chain, so it records
//! exactly what is forwarded). The ring holds `capacity` records of `slot_bytes` each, allocated once;
//! they move between a free queue and a full queue, so offering never allocates. When no record is
//! free the packet is not recorded and the tap counts `tap_dropped`: the worker never waits for the
//! recorder. Must never allocate, block, log or read a clock per packet (the capture time is the
//! packet's arrival, mapped to wall-clock time through the worker's [`NtpEpoch`]).
//!
//! What is tapped: every RTP packet that reaches the end of the ingress chain, and the publisher's
//! own RTCP (`RtcpFrom::Publisher`, as received: its sender reports make the recording analysable on
//! its own). Subscribers' feedback is not tapped: the chain sees it translated, not as it came off the
//! wire, and from another address. The publisher's RTCP is recorded with the address its RTP last came
//! from (with RFC 5761 multiplexing, the same); RTCP before the stream's first RTP packet is skipped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;

use crate::core::interceptor::spec::{NtpEpoch, StreamInfo, TapParams, NTP_UNIX_OFFSET_S};
use crate::core::interceptor::{Context, Interceptor, RtcpFrom, RtpAttrs, Snapshot, Verdict};
use crate::core::packet::RtcpCompound;
use crate::core::wire::Ssrc;

/// Wall-clock time of `at` since the Unix epoch, from the worker's NTP epoch. NTP era 1 (from
/// 2036-02-07) maps past 2036 as long as Unix seconds fit in 32 bits (as pcap's do).
pub fn unix_time(epoch: &NtpEpoch, at: Instant) -> Duration {
    let ntp = epoch.ntp_at(at);
    let seconds = ((ntp >> 32) as u32).wrapping_sub(NTP_UNIX_OFFSET_S);
    // Rounded to the nearest nanosecond; 1e9 (the last 0.23 ns of a second) carries into the seconds.
    let nanos = ((ntp & 0xffff_ffff) * 1_000_000_000 + (1 << 31)) >> 32;
    Duration::new(u64::from(seconds), nanos as u32)
}

/// Who and when, for one tapped packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapMeta {
    /// The stream's SSRC (names the recording file).
    pub ssrc: Ssrc,
    /// The publisher's address the datagram came from.
    pub src: SocketAddr,
    /// When it arrived, as wall-clock time since the Unix epoch.
    pub captured_unix: Duration,
}

/// One tapped datagram: preallocated, reused for ever.
#[derive(Debug)]
pub struct TapRecord {
    /// Who and when.
    pub meta: TapMeta,
    /// The datagram's length as received, in bytes (at least the bytes kept).
    pub orig_len_bytes: usize,
    len_bytes: usize,
    data: Box<[u8]>,
}

impl TapRecord {
    /// The bytes kept: the datagram's first `snap_bytes` at most.
    pub fn bytes(&self) -> &[u8] {
        self.data.get(..self.len_bytes).unwrap_or_default()
    }
}

/// The bounded ring between one worker (the only producer) and the recorder (the only consumer).
#[derive(Debug)]
pub struct TapRing {
    full: ArrayQueue<Box<TapRecord>>,
    free: ArrayQueue<Box<TapRecord>>,
    slot_bytes: usize,
    dropped: AtomicU64,
}

impl TapRing {
    /// `capacity` records (at least 1) of `slot_bytes` each, all free.
    pub fn new(capacity: usize, slot_bytes: usize) -> TapRing {
        let capacity = capacity.max(1);
        let free = ArrayQueue::new(capacity);
        for _ in 0..capacity {
            let record = TapRecord {
                meta: TapMeta {
                    ssrc: Ssrc(0),
                    src: SocketAddr::from(([0, 0, 0, 0], 0)),
                    captured_unix: Duration::ZERO,
                },
                orig_len_bytes: 0,
                len_bytes: 0,
                data: vec![0; slot_bytes].into_boxed_slice(),
            };
            let _ = free.push(Box::new(record));
        }
        TapRing { full: ArrayQueue::new(capacity), free, slot_bytes, dropped: AtomicU64::new(0) }
    }

    /// Producer: copies the first `snap_bytes` of `bytes` (and at most the slot's size) in. False, with
    /// nothing queued, when no record is free; the caller counts the drop. Never allocates nor waits.
    pub fn offer(&self, meta: TapMeta, bytes: &[u8], snap_bytes: usize) -> bool {
        let Some(mut record) = self.free.pop() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let kept = bytes.len().min(snap_bytes).min(record.data.len());
        if let (Some(dst), Some(src)) = (record.data.get_mut(..kept), bytes.get(..kept)) {
            dst.copy_from_slice(src);
        }
        record.len_bytes = kept;
        record.orig_len_bytes = bytes.len();
        record.meta = meta;
        // Cannot fail: records number exactly the capacity and this one came off the free queue.
        let _ = self.full.push(record);
        true
    }

    /// Consumer: the oldest tapped record.
    pub fn take(&self) -> Option<Box<TapRecord>> {
        self.full.pop()
    }

    /// Consumer: gives a record back after writing it.
    pub fn recycle(&self, record: Box<TapRecord>) {
        let _ = self.free.push(record);
    }

    /// Records waiting for the consumer.
    pub fn len(&self) -> usize {
        self.full.len()
    }

    /// True when nothing waits for the consumer.
    pub fn is_empty(&self) -> bool {
        self.full.is_empty()
    }

    /// The most bytes one record keeps.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Offers refused because the ring was full, over its life (all streams of the worker).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Copies the stream's packets into its worker's [`TapRing`]; never changes a verdict.
#[derive(Debug)]
pub struct Tap {
    ring: Arc<TapRing>,
    ssrc: Ssrc,
    epoch: NtpEpoch,
    snap_bytes: usize,
    /// Where the publisher's RTP last came from (the source of its RTCP in the recording).
    publisher: Option<SocketAddr>,
    tapped: u64,
    dropped: u64,
}

impl Tap {
    /// A tap of the stream `info`, keeping `params.snap_bytes` of each packet (and at most the ring's
    /// slot size), into `ring`.
    pub fn new(params: &TapParams, info: &StreamInfo, ring: Arc<TapRing>) -> Tap {
        let snap_bytes = usize::from(params.snap_bytes).min(ring.slot_bytes());
        Tap { ring, ssrc: info.ssrc, epoch: info.epoch, snap_bytes, publisher: None, tapped: 0, dropped: 0 }
    }

    fn offer(&mut self, src: SocketAddr, at: Instant, bytes: &[u8]) {
        let meta = TapMeta { ssrc: self.ssrc, src, captured_unix: unix_time(&self.epoch, at) };
        if self.ring.offer(meta, bytes, self.snap_bytes) {
            self.tapped += 1;
        } else {
            self.dropped += 1;
        }
    }
}

impl Interceptor for Tap {
    fn on_rtp(&mut self, pkt: &[u8], attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
        self.publisher = Some(attrs.src);
        self.offer(attrs.src, attrs.arrival, pkt);
        Verdict::Continue
    }

    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        if let (RtcpFrom::Publisher, Some(src)) = (from, self.publisher) {
            self.offer(src, ctx.now(), rtcp.bytes());
        }
        Verdict::Continue
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.tapped += self.tapped;
        out.tap_dropped += self.dropped;
    }
}

#[cfg(test)]
mod tests {
    use rtcp::sender_report::SenderReport;

    use super::super::wire_feedback::test_support::*;
    use super::*;

    /// A worker epoch whose `t0` is 2024-01-01T00:00:00.5 UTC.
    fn epoch(t0: Instant) -> NtpEpoch {
        let unix_s = 1_704_067_200u64;
        NtpEpoch { at: t0, ntp: ((unix_s + u64::from(NTP_UNIX_OFFSET_S)) << 32) | (1 << 31) }
    }

    fn tap(ring: &Arc<TapRing>, snap_bytes: u16, t0: Instant) -> Tap {
        let info = StreamInfo { epoch: epoch(t0), ..stream_info(t0) };
        Tap::new(&TapParams { snap_bytes }, &info, ring.clone())
    }

    #[test]
    fn unix_time_follows_the_epoch_and_crosses_the_ntp_era() {
        let t0 = Instant::now();
        let e = epoch(t0);
        assert_eq!(unix_time(&e, t0), Duration::new(1_704_067_200, 500_000_000));
        assert_eq!(unix_time(&e, t0 + Duration::from_micros(1_250_001)), Duration::new(1_704_067_201, 750_001_000));
        // NTP seconds wrapped (era 1): 2036-02-07T06:28:16Z + 10 s.
        let era1 = NtpEpoch { at: t0, ntp: 10 << 32 };
        assert_eq!(unix_time(&era1, t0).as_secs(), (1u64 << 32) - u64::from(NTP_UNIX_OFFSET_S) + 10);
        let last_tick = NtpEpoch { at: t0, ntp: (3_900_000_000u64 << 32) | 0xffff_ffff };
        let rounded_up = Duration::from_secs(u64::from(3_900_000_001u32.wrapping_sub(NTP_UNIX_OFFSET_S)));
        assert_eq!(unix_time(&last_tick, t0), rounded_up, "the last fraction of a second rounds up");
    }

    #[test]
    fn records_exact_bytes_source_and_capture_time() {
        let t0 = Instant::now();
        let ring = Arc::new(TapRing::new(8, 1500));
        let mut tap = tap(&ring, 1500, t0);
        let mut harness = Harness::ingress();
        let first = rtp(7, 96, 100, None);
        let second = rtp(8, 96, 1100, None);
        let mut a = attrs(&first, 7, at(t0, 20));
        a.src = "192.0.2.7:4000".parse().unwrap();
        assert_eq!(harness.rtp(&mut tap, &first, &a), Verdict::Continue);
        assert_eq!(harness.rtp(&mut tap, &second, &attrs(&second, 8, at(t0, 40))), Verdict::Continue);
        assert!(harness.take().is_empty(), "a tap emits nothing");

        let record = ring.take().expect("first record");
        assert_eq!(record.bytes(), &first[..]);
        assert_eq!(record.orig_len_bytes, first.len());
        assert_eq!(record.meta.ssrc, PUBLISHER);
        assert_eq!(record.meta.src, a.src);
        assert_eq!(record.meta.captured_unix, Duration::new(1_704_067_200, 520_000_000));
        ring.recycle(record);
        let record = ring.take().expect("second record");
        assert_eq!(record.bytes(), &second[..]);
        assert_eq!(record.meta.src, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(record.meta.captured_unix, Duration::new(1_704_067_200, 540_000_000));
        assert!(ring.take().is_none());
        assert_eq!((snapshot(&tap).tapped, snapshot(&tap).tap_dropped), (2, 0));
    }

    #[test]
    fn long_packets_are_truncated_to_the_snap_length_and_the_slot() {
        let t0 = Instant::now();
        let ring = Arc::new(TapRing::new(4, 200));
        let pkt = rtp(1, 96, 400, None);
        let mut harness = Harness::ingress();
        let mut narrow = tap(&ring, 64, t0);
        harness.rtp(&mut narrow, &pkt, &attrs(&pkt, 1, t0));
        let mut wide = tap(&ring, 1500, t0);
        harness.rtp(&mut wide, &pkt, &attrs(&pkt, 1, t0));
        let record = ring.take().unwrap();
        assert_eq!((record.bytes(), record.orig_len_bytes), (&pkt[..64], pkt.len()));
        let record = ring.take().unwrap();
        assert_eq!(record.bytes(), &pkt[..200], "never more than the ring's slot");
        assert_eq!(record.orig_len_bytes, pkt.len());
    }

    #[test]
    fn a_full_ring_drops_and_counts_and_the_producer_never_waits() {
        let t0 = Instant::now();
        let ring = Arc::new(TapRing::new(4, 1500));
        let mut tap = tap(&ring, 1500, t0);
        let mut harness = Harness::ingress();
        for seq in 0..10u16 {
            let pkt = rtp(seq, 96, 160, None);
            let verdict = harness.rtp(&mut tap, &pkt, &attrs(&pkt, u64::from(seq), at(t0, u64::from(seq) * 20)));
            assert_eq!(verdict, Verdict::Continue, "a full ring never drops the packet itself");
        }
        let counts = snapshot(&tap);
        assert_eq!((counts.tapped, counts.tap_dropped, ring.dropped(), ring.len()), (4, 6, 6, 4));
        // The consumer frees two records: exactly two more fit, the oldest four come out in order.
        let seqs: Vec<u16> = (0..2).map(|_| take_seq(&ring)).collect();
        assert_eq!(seqs, [0, 1]);
        for seq in 10..13u16 {
            let pkt = rtp(seq, 96, 160, None);
            harness.rtp(&mut tap, &pkt, &attrs(&pkt, u64::from(seq), at(t0, 300)));
        }
        let counts = snapshot(&tap);
        assert_eq!((counts.tapped, counts.tap_dropped), (6, 7));
        let rest: Vec<u16> = (0..ring.len()).map(|_| take_seq(&ring)).collect();
        assert_eq!(rest, [2, 3, 10, 11]);
    }

    /// Takes the oldest record, recycles it, returns its RTP sequence number.
    fn take_seq(ring: &TapRing) -> u16 {
        let record = ring.take().expect("a record");
        let seq = u16::from_be_bytes([record.bytes()[2], record.bytes()[3]]);
        ring.recycle(record);
        seq
    }

    #[test]
    fn the_publishers_rtcp_is_tapped_from_its_rtp_address_and_feedback_is_not() {
        let t0 = Instant::now();
        let ring = Arc::new(TapRing::new(8, 1500));
        let mut tap = tap(&ring, 1500, t0);
        let mut harness = Harness::ingress();
        let sr = compound(vec![Box::new(SenderReport { ssrc: PUBLISHER.0, ..Default::default() })]);
        harness.rtcp(&mut tap, &sr, RtcpFrom::Publisher, t0);
        assert!(ring.is_empty(), "no source known before the first RTP packet");
        let pkt = rtp(1, 96, 100, None);
        let mut a = attrs(&pkt, 1, at(t0, 10));
        a.src = "[2001:db8::1]:6000".parse().unwrap();
        harness.rtp(&mut tap, &pkt, &a);
        assert_eq!(harness.rtcp(&mut tap, &sr, RtcpFrom::Publisher, at(t0, 30)), Verdict::Continue);
        assert_eq!(harness.rtcp(&mut tap, &sr, RtcpFrom::Subscriber { flow: 7 }, at(t0, 40)), Verdict::Continue);
        let _rtp = ring.take().unwrap();
        let record = ring.take().expect("the sender report");
        assert_eq!((record.bytes(), record.meta.src), (&sr[..], a.src));
        assert_eq!(record.meta.captured_unix, Duration::new(1_704_067_200, 530_000_000));
        assert!(ring.take().is_none(), "subscriber feedback is not recorded");
        assert_eq!(snapshot(&tap).tapped, 2);
    }
}
