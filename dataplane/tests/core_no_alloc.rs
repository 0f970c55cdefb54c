//! Proves that the forwarding core allocates nothing per packet in steady state.
//!
//! A counting global allocator counts the allocations of the current thread only (a thread-local
//! counter, so the test harness's other threads do not disturb it). After the tables are built, a
//! mix of datagrams — RTP fan-out with rewriting, RTCP rewriting, latching, drops of every kind and
//! handovers — runs through `Forwarder::on_datagram` and the count must not move; likewise for
//! forwarding (with rebasing) after subscriptions switch streams; and with the default interceptor chains
//! of `[interceptors]` (stats, keyframe throttle, NACK cache and receiver reports on each stream; stats
//! and sender reports on each subscription), a lossy video stream, the publisher's sender reports and
//! subscribers' receiver reports, NACKs and PLIs run through the forwarder and its timers while reports
//! and keyframe requests really go out; and for packets of streams that took an SSRC another worker owns, handed
//! over along that worker's SSRC alias; and for streams moved by `SetSource`, taking both paths during the overlap and
//! refusing the old one after it; and with a WebAssembly plugin on both chains. This file owns the allocator; it
//! must never hold anything but these tests, because the allocator is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringfwd_dataplane::control::{Metadata, Plugins};
use ringfwd_dataplane::core::interceptor::spec::NtpEpoch;
use ringfwd_dataplane::core::{
    Command, Forwarder, ForwarderLimits, Outcome, Rewrite, SourcePolicy, StreamId, SubscriptionId, Transmit, Transmits,
    IDENTITY_PAYLOAD_TYPE_MAP,
};
use ringfwd_dataplane::plugin::{Context, Interceptor, RtpAttrs, Verdict};
use ringfwd_tuning::{ChainName, Interceptors};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations (and reallocations) made by the current thread, then defers to `System`.
struct CountingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the thread-local counter is const-initialized and has no destructor, so touching
// it never allocates or re-enters the allocator, and `try_with` tolerates thread teardown.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (every allocation goes through `alloc` above) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: `ptr`/`layout` come from `System` as above; the caller guarantees `new_size` is valid.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Counts what the forwarder queued without storing it (storing would allocate in the test, not the core). The
/// forwarder queues into it (it derefs to its transmit queue); what was queued is counted the next time it is
/// handed to the forwarder and by `counted()`.
struct CountingEgress {
    queue: Transmits,
    rtp: u64,
    rtcp: u64,
    header_checksum: u64,
}

impl Default for CountingEgress {
    fn default() -> CountingEgress {
        CountingEgress { queue: Transmits::with_capacity(64, 2048, 2048 * 1500), rtp: 0, rtcp: 0, header_checksum: 0 }
    }
}

impl CountingEgress {
    fn count(&mut self) {
        let (rtp, rtcp, checksum) = (&mut self.rtp, &mut self.rtcp, &mut self.header_checksum);
        self.queue.drain(|transmit| {
            match transmit {
                Transmit::Forward { dest, header, .. } => {
                    *rtp += 1;
                    *checksum = checksum.wrapping_add(u64::from(header[3]) + u64::from(dest.port()));
                }
                Transmit::Copy { bytes, .. } => {
                    *rtcp += 1;
                    *checksum = checksum.wrapping_add(bytes.len() as u64);
                }
            }
            true
        });
    }

    /// Counts what is still queued.
    fn counted(&mut self) -> &mut CountingEgress {
        self.count();
        self
    }
}

impl std::ops::Deref for CountingEgress {
    type Target = Transmits;

    fn deref(&self) -> &Transmits {
        &self.queue
    }
}

impl std::ops::DerefMut for CountingEgress {
    fn deref_mut(&mut self) -> &mut Transmits {
        self.count();
        &mut self.queue
    }
}

fn rtp(ssrc: u32, seq: u16, payload_bytes: usize) -> Vec<u8> {
    let mut pkt = vec![0x80, 96];
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    pkt.extend_from_slice(&ssrc.to_be_bytes());
    pkt.resize(12 + payload_bytes, 0xab);
    pkt
}

fn sender_report(ssrc: u32) -> Vec<u8> {
    // SR with no report blocks (7 words), then SDES with one CNAME chunk (4 words: SSRC, "ab", END).
    let mut pkt = vec![0x80, 200, 0, 6];
    pkt.extend_from_slice(&ssrc.to_be_bytes());
    pkt.extend_from_slice(&[0; 20]);
    pkt.extend_from_slice(&[0x81, 202, 0, 3]);
    pkt.extend_from_slice(&ssrc.to_be_bytes());
    pkt.extend_from_slice(&[1, 2, b'a', b'b', 0, 0, 0, 0]);
    pkt
}

#[test]
fn on_datagram_does_not_allocate_in_steady_state() {
    let start = Instant::now();
    let limits = limits(64, 256, 8);
    let mut fwd = Forwarder::new(0, 2, limits);
    let publisher: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut map = IDENTITY_PAYLOAD_TYPE_MAP;
    map[96] = 100;
    let rewrite = Rewrite { out_ssrc: Some(0xfeed), seq_offset: 7, ts_offset: 9, payload_type_map: map };
    // Even SSRCs (owned by worker 0): 16 fixed streams and 16 latching ones, 4 subscriptions each.
    for i in 0..32u32 {
        let source = if i < 16 {
            SourcePolicy::Fixed(publisher)
        } else {
            SourcePolicy::Latch { window: Duration::from_secs(10), fallback: None }
        };
        fwd.apply(
            start,
            Command::AddStream {
                id: StreamId(u64::from(i)),
                ssrc: 2 * i,
                source,
                clock_rate_hz: 90_000,
                ingress: Default::default(),
            },
        )
        .unwrap();
        for s in 0..4u32 {
            let id = SubscriptionId(u64::from(i * 4 + s));
            let dest = SocketAddr::from(([127, 0, 0, 2], 6000 + (i * 4 + s) as u16));
            let rewrite = if s % 2 == 0 { rewrite.clone() } else { Rewrite::default() };
            let cmd = Command::AddSubscription {
                id,
                stream: StreamId(u64::from(i)),
                dest,
                socket: 0,
                rewrite,
                paused: false,
                egress: Default::default(),
                continues: None,
            };
            fwd.apply(start, cmd).unwrap();
        }
    }
    fwd.apply(start, Command::SetPaused { id: SubscriptionId(1), paused: true }).unwrap();

    // Every packet is built before counting starts.
    let video: Vec<Vec<u8>> = (0..16u32).map(|i| rtp(2 * i, 65_000, 1200)).collect();
    let latching: Vec<Vec<u8>> = (16..32u32).map(|i| rtp(2 * i, 100, 160)).collect();
    let reports: Vec<Vec<u8>> = (0..16u32).map(|i| sender_report(2 * i)).collect();
    let unknown = rtp(1000, 1, 100);
    let foreign = rtp(1001, 1, 100);
    let stun = vec![0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    let malformed = vec![0x80u8, 96, 0, 1];
    let oversize = rtp(0, 1, 1600);
    let stranger: SocketAddr = "127.0.0.9:5000".parse().unwrap();
    let mut egress = CountingEgress::default();

    let before = allocations();
    let mut outcomes = [0u64; 4];
    for round in 0..200u64 {
        let now = start + Duration::from_millis(round * 5);
        for pkt in video.iter().chain(&reports).chain(&latching) {
            let outcome = fwd.on_datagram(now, 0, publisher, pkt, &mut egress);
            outcomes[matches!(outcome, Outcome::Forwarded { .. }) as usize] += 1;
        }
        for (src, pkt) in [
            (publisher, &unknown),
            (publisher, &foreign),
            (stranger, &video[0]),
            (publisher, &stun),
            (publisher, &malformed),
            (publisher, &oversize),
        ] {
            let outcome = fwd.on_datagram(now, 0, src, pkt, &mut egress);
            outcomes[2 + matches!(outcome, Outcome::Handover { .. }) as usize] += 1;
        }
    }
    let during = allocations() - before;

    assert_eq!(during, 0, "on_datagram allocated {during} times in steady state");
    // The loop really forwarded, latched, rewrote RTCP and dropped.
    let c = fwd.counters();
    assert_eq!(outcomes, [0, 200 * 48, 200 * 5, 200]);
    assert_eq!(c.latched, 16);
    assert_eq!(egress.counted().rtcp, 200 * (16 * 4 - 1));
    assert_eq!(egress.counted().rtp, 200 * 32 * 4 - 200);
    assert!(c.drop_unknown_ssrc > 0 && c.drop_wrong_source > 0 && c.drop_not_rtp > 0);
    assert!(c.drop_malformed > 0 && c.drop_oversize > 0 && c.handover_out > 0);
}

#[test]
fn forwarding_after_a_switch_does_not_allocate() {
    let start = Instant::now();
    let limits = limits(4, 16, 16);
    let mut fwd = Forwarder::new(0, 2, limits);
    let publisher: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    // Two streams (90 kHz video, 48 kHz audio), eight subscriptions on the first.
    for (i, clock_rate_hz) in [90_000u32, 48_000].into_iter().enumerate() {
        let cmd = Command::AddStream {
            id: StreamId(i as u64),
            ssrc: 2 * i as u32,
            source: SourcePolicy::Fixed(publisher),
            clock_rate_hz,
            ingress: Default::default(),
        };
        fwd.apply(start, cmd).unwrap();
    }
    for s in 0..8u16 {
        let cmd = Command::AddSubscription {
            id: SubscriptionId(u64::from(s)),
            stream: StreamId(0),
            dest: SocketAddr::from(([127, 0, 0, 2], 6000 + s)),
            socket: 0,
            rewrite: Rewrite::default(),
            paused: false,
            egress: Default::default(),
            continues: None,
        };
        fwd.apply(start, cmd).unwrap();
    }
    let streams: Vec<(Vec<u8>, Vec<u8>)> =
        (0..2u32).map(|i| (rtp(2 * i, 60_000, 1200), sender_report(2 * i))).collect();
    let mut egress = CountingEgress::default();

    // Each round moves half the subscriptions to the other stream (a command: it may allocate, and is
    // not counted), then forwards RTP and RTCP of both streams: the first RTP rebases the switched ones.
    let mut during = 0;
    for round in 0..100u64 {
        let now = start + Duration::from_millis(round * 20);
        for s in 0..4u64 {
            let cmd = Command::SwitchSubscription { id: SubscriptionId(s), stream: StreamId((round + 1) % 2) };
            fwd.apply(now, cmd).unwrap();
        }
        let before = allocations();
        for (video, report) in &streams {
            fwd.on_datagram(now, 0, publisher, report, &mut egress);
            fwd.on_datagram(now, 0, publisher, video, &mut egress);
            fwd.on_datagram(now, 0, publisher, report, &mut egress);
        }
        during += allocations() - before;
    }

    assert_eq!(during, 0, "forwarding after switches allocated {during} times");
    // Every RTP went to all eight subscriptions. From round 1 on (in round 0 the switched ones had
    // sent nothing yet), the first report of a round waited for the rebase of the 4 switched ones.
    let c = fwd.counters();
    assert_eq!(egress.counted().rtp, 100 * 8);
    assert_eq!(c.drop_rebase_pending, 99 * 4);
    assert_eq!(egress.counted().rtcp, 100 * 2 * 8 - 99 * 4);
}

/// Counts copies by destination without storing them; derefs to its queue like [`CountingEgress`].
struct DestinationEgress {
    queue: Transmits,
    rtp: u64,
    to_publisher: u64,
    to_subscribers: u64,
}

impl Default for DestinationEgress {
    fn default() -> DestinationEgress {
        let queue = Transmits::with_capacity(64, 2048, 2048 * 1500);
        DestinationEgress { queue, rtp: 0, to_publisher: 0, to_subscribers: 0 }
    }
}

const PUBLISHER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);

impl DestinationEgress {
    fn count(&mut self) {
        let (rtp, publisher, subscribers) = (&mut self.rtp, &mut self.to_publisher, &mut self.to_subscribers);
        self.queue.drain(|transmit| {
            match transmit {
                Transmit::Forward { .. } => *rtp += 1,
                Transmit::Copy { dest, .. } if dest == PUBLISHER => *publisher += 1,
                Transmit::Copy { .. } => *subscribers += 1,
            }
            true
        });
    }

    /// Counts what is still queued.
    fn counted(&mut self) -> &mut DestinationEgress {
        self.count();
        self
    }
}

impl std::ops::Deref for DestinationEgress {
    type Target = Transmits;

    fn deref(&self) -> &Transmits {
        &self.queue
    }
}

impl std::ops::DerefMut for DestinationEgress {
    fn deref_mut(&mut self) -> &mut Transmits {
        self.count();
        &mut self.queue
    }
}

/// Limits of a test forwarder: datagrams up to 1 500 bytes, no per-source rate limit.
fn limits(max_streams: u32, max_subscriptions: u32, max_subscriptions_per_stream: u32) -> ForwarderLimits {
    ForwarderLimits {
        max_streams,
        max_subscriptions,
        max_subscriptions_per_stream,
        max_packet_bytes: 1500,
        max_packets_per_second_per_source: 0,
    }
}

/// The only worker, its NTP clock anchored at `start` (interceptors that write reports need one).
fn single_worker(limits: ForwarderLimits, start: Instant) -> Forwarder {
    let mut fwd = Forwarder::new(0, 1, limits);
    fwd.set_ntp_epoch(NtpEpoch { at: start, ntp: 3_970_000_000u64 << 32 });
    fwd
}

fn marshal(packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>>) -> Vec<u8> {
    rtcp::packet::marshal(&packets).expect("marshal").to_vec()
}

/// A native plugin that sees every packet and lets it through: counts what it saw in a shared counter.
#[derive(Debug)]
struct Probe(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Interceptor for Probe {
    fn on_rtp(&mut self, _pkt: &[u8], _attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Verdict::Continue
    }
}

/// The default chains with a native plugin on each (the dispatch to a plugin, under its panic guard, included).
#[test]
fn default_chains_allocate_nothing_per_packet_or_timer() {
    use rtcp::goodbye::Goodbye;
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

    let start = Instant::now();
    let limits = limits(16, 64, 8);
    let (mut config, mut fwd) = (Interceptors::default(), single_worker(limits, start));
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (on_ingress, on_egress) = (seen.clone(), seen.clone());
    let plugins = Plugins::none()
        .with_ingress("probe", move |_| Box::new(Probe(on_ingress.clone())))
        .and_then(|p| p.with_egress("probe", move |_| Box::new(Probe(on_egress.clone()))))
        .expect("register the probe");
    config.ingress.push(ChainName::Plugin("probe".into()));
    config.egress.push(ChainName::Plugin("probe".into()));
    fwd.set_plugins(plugins.clone());
    const STREAMS: u32 = 4;
    const SUBS: u32 = 4;
    let out_ssrc = |i: u32, s: u32| 0x1000 + i * 16 + s;
    let dest = |i: u32, s: u32| SocketAddr::from(([127, 0, 0, 2], 6000 + (i * SUBS + s) as u16));
    for i in 0..STREAMS {
        let ingress = ringfwd_tuning::specs::ingress(&config.ingress, &config, &plugins);
        assert!(!ingress.plugins.is_empty(), "the probe is on the ingress chain");
        let source = SourcePolicy::Fixed(PUBLISHER);
        let cmd =
            Command::AddStream { id: StreamId(u64::from(i)), ssrc: 100 + i, source, clock_rate_hz: 90_000, ingress };
        fwd.apply(start, cmd).unwrap();
        for s in 0..SUBS {
            let rewrite = Rewrite { out_ssrc: Some(out_ssrc(i, s)), seq_offset: 1000, ..Rewrite::default() };
            let cmd = Command::AddSubscription {
                id: SubscriptionId(u64::from(i * SUBS + s)),
                stream: StreamId(u64::from(i)),
                dest: dest(i, s),
                socket: 0,
                rewrite,
                paused: false,
                egress: ringfwd_tuning::specs::egress(&config.egress, &config, u128::MAX, &plugins),
                continues: None,
            };
            fwd.apply(start, cmd).unwrap();
        }
    }
    // Every datagram is built before counting starts. One packet in 20 never arrives.
    const ROUNDS: u16 = 400;
    let media: Vec<Vec<Vec<u8>>> =
        (0..STREAMS).map(|i| (0..ROUNDS).map(|seq| rtp(100 + i, seq, 1188)).collect()).collect();
    // The publisher's compounds as stacks send them: SR + SDES CNAME, and a BYE at the end (each one is
    // passed on behind ringfwd's SR, its CNAME learned, a BYE event queued).
    let reports: Vec<Vec<u8>> = (0..STREAMS)
        .map(|i| {
            let cname = SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "pub@host".into() };
            marshal(vec![
                Box::new(SenderReport { ssrc: 100 + i, ntp_time: 1 << 40, rtp_time: 7, ..Default::default() }),
                Box::new(SourceDescription {
                    chunks: vec![SourceDescriptionChunk { source: 100 + i, items: vec![cname] }],
                }),
                Box::new(Goodbye { sources: vec![100 + i], reason: "".into() }),
            ])
        })
        .collect();
    let feedback = |i: u32, s: u32, lost: u16| {
        let rr = ReceiverReport {
            ssrc: 0x9000 + s,
            reports: vec![ReceptionReport { ssrc: out_ssrc(i, s), last_sender_report: 5, ..Default::default() }],
            ..Default::default()
        };
        let nack = TransportLayerNack {
            sender_ssrc: 0x9000 + s,
            media_ssrc: out_ssrc(i, s),
            nacks: vec![NackPair { packet_id: lost.wrapping_add(1000), lost_packets: 0 }],
        };
        let pli = PictureLossIndication { sender_ssrc: 0x9000 + s, media_ssrc: out_ssrc(i, s) };
        marshal(vec![Box::new(rr), Box::new(nack), Box::new(pli)])
    };
    let nacks: Vec<Vec<Vec<Vec<u8>>>> = (0..STREAMS)
        .map(|i| (0..SUBS).map(|s| (0..ROUNDS / 20).map(|n| feedback(i, s, n * 20 + 10)).collect::<Vec<_>>()).collect())
        .collect();
    let mut egress = DestinationEgress::default();

    let before = allocations();
    for seq in 0..ROUNDS {
        let now = start + Duration::from_millis(u64::from(seq) * 10);
        for i in 0..STREAMS {
            if seq % 20 != 10 {
                fwd.on_datagram(now, 0, PUBLISHER, &media[i as usize][seq as usize], &mut egress);
            }
            if seq % 100 == 50 {
                fwd.on_datagram(now, 0, PUBLISHER, &reports[i as usize], &mut egress);
            }
            if seq % 20 == 15 {
                for s in 0..SUBS {
                    let pkt = &nacks[i as usize][s as usize][usize::from(seq / 20)];
                    fwd.on_datagram(now, 0, dest(i, s), pkt, &mut egress);
                }
            }
        }
        fwd.on_timers(now, &mut egress);
    }
    let during = allocations() - before;

    assert_eq!(during, 0, "the default chains allocated {during} times in steady state");
    let c = fwd.counters();
    let lost = u64::from(ROUNDS / 20);
    let arrived = u64::from(STREAMS) * (u64::from(ROUNDS) - lost);
    let seen = seen.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(seen, arrived + arrived * u64::from(SUBS), "the probe saw every packet in and every copy out");
    assert_eq!(c.plugin_failures, 0);
    assert_eq!(
        egress.counted().rtp,
        u64::from(STREAMS * SUBS) * (u64::from(ROUNDS) - lost),
        "every arriving packet fanned out"
    );
    assert_eq!(c.rx_feedback, u64::from(STREAMS * SUBS) * lost);
    assert_eq!(c.drop_malformed, 0);
    // Retransmissions are not possible (the NACKed packets never arrived), but reports and keyframe
    // requests went to the publisher, and sender reports to every subscriber.
    assert!(
        egress.counted().to_publisher >= u64::from(STREAMS) * 3,
        "receiver reports and PLIs: {}",
        egress.counted().to_publisher
    );
    assert!(
        egress.counted().to_subscribers >= u64::from(STREAMS * SUBS) * 2,
        "sender reports: {}",
        egress.counted().to_subscribers
    );
    assert_eq!(c.interceptor_emit_refused, 0);
}

/// A WebAssembly plugin on both chains (its instance made when the first stream binds it): each RTP packet and
/// each RTCP compound copied into its memory and run under its fuel budget, its timers and the RTCP it emits through
/// the host's imports, allocating nothing.
#[test]
fn a_webassembly_plugin_on_both_chains_allocates_nothing_per_packet() {
    use ringfwd_dataplane::wasm::{self, Engine, FailurePath, WasmPluginSpec};
    // Sums the first payload byte of every RTP packet and counts RTCP compounds, in its own memory; each RTP call
    // reads its stream's metadata (trapping unless it gets none or the text it was given, which starts with 'a'),
    // asks for a timer 100 ms on, and each timer sends the publisher 8 bytes of RTCP through the host's import.
    let wat = r#"(module
      (import "ringfwd" "emit_rtcp_to_publisher" (func $to_publisher (param i32 i32) (result i32)))
      (import "ringfwd" "set_timer" (func $set_timer (param i64)))
      (import "ringfwd" "metadata" (func $metadata (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (global $sum (mut i64) (i64.const 0))
      (global $rtcp (mut i32) (i32.const 0))
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 4096))
      (func (export "on_rtp") (param i32 i32 i32 i64) (param $now i64) (result i32)
        (local $n i32)
        (local.set $n (call $metadata (i32.const 8192) (i32.const 4096)))
        (if (i32.lt_s (local.get $n) (i32.const 0)) (then unreachable))
        (if (i32.gt_s (local.get $n) (i32.const 0))
          (then (if (i32.ne (i32.load8_u (i32.const 8192)) (i32.const 0x61)) (then unreachable))))
        (global.set $sum (i64.add (global.get $sum) (i64.load8_u (i32.const 4108))))
        (call $set_timer (i64.add (local.get $now) (i64.const 100000)))
        (i32.const 0))
      (func (export "on_timer") (param i32 i32 i64)
        (i32.store (i32.const 0) (i32.const 0x000000c9)) ;; an empty RR: 0x81 201 length 1, then the SSRC
        (i32.store (i32.const 0) (i32.const 0x0100c981))
        (drop (call $to_publisher (i32.const 0) (i32.const 8))))
      (func (export "on_rtcp") (param i32 i32 i32 i32 i64) (result i32)
        (global.set $rtcp (i32.add (global.get $rtcp) (i32.const 1)))
        (i32.const 0)))"#;
    let spec = WasmPluginSpec {
        name: "tally".into(),
        module: wat.as_bytes().to_vec(),
        origin: "tally.wat".into(),
        ingress: true,
        egress: true,
        on_failure: FailurePath::Forward,
        fuel_per_call: 10_000,
        memory_max_bytes: wasm::DEFAULT_MEMORY_BYTES,
        params: Default::default(),
        mode: wasm::PluginMode::Sync,
    };
    let plugin = Engine::new().expect("an engine").load(spec).expect("the module loads");
    let plugins = wasm::register(Plugins::none(), &plugin).expect("registered");
    let start = Instant::now();
    let mut fwd = single_worker(limits(16, 64, 8), start);
    fwd.set_plugins(plugins.clone());
    let tally = || vec![ChainName::Plugin("tally".into())];
    let config = Interceptors { ingress: tally(), egress: tally(), ..Interceptors::default() };
    const STREAMS: u32 = 4;
    const SUBS: u32 = 4;
    for i in 0..STREAMS {
        let ingress = ringfwd_tuning::specs::ingress(&config.ingress, &config, &plugins);
        let source = SourcePolicy::Fixed(PUBLISHER);
        let cmd =
            Command::AddStream { id: StreamId(u64::from(i)), ssrc: 100 + i, source, clock_rate_hz: 90_000, ingress };
        fwd.apply(start, cmd).unwrap();
        for s in 0..SUBS {
            let cmd = Command::AddSubscription {
                id: SubscriptionId(u64::from(i * SUBS + s)),
                stream: StreamId(u64::from(i)),
                dest: SocketAddr::from(([127, 0, 0, 2], 7000 + (i * SUBS + s) as u16)),
                socket: 0,
                rewrite: Rewrite { out_ssrc: Some(0x2000 + i * 16 + s), ..Rewrite::default() },
                paused: false,
                egress: ringfwd_tuning::specs::egress(&config.egress, &config, u128::MAX, &plugins),
                continues: None,
            };
            fwd.apply(start, cmd).unwrap();
        }
        if i % 2 == 0 {
            // Half the streams carry metadata, which both chains' calls read.
            let metadata = Metadata::from_pairs([("app.muted", "0"), ("app.user", "ana")]);
            fwd.apply(start, Command::SetStreamMetadata { id: StreamId(u64::from(i)), metadata }).unwrap();
        }
    }
    const ROUNDS: u16 = 300;
    let media: Vec<Vec<Vec<u8>>> =
        (0..STREAMS).map(|i| (0..ROUNDS).map(|seq| rtp(100 + i, seq, 1188)).collect()).collect();
    let reports: Vec<Vec<u8>> = (0..STREAMS).map(|i| sender_report(100 + i)).collect();
    let mut egress = DestinationEgress::default();
    // One round first: the first packets of a stream settle what only happens once.
    fwd.on_datagram(start, 0, PUBLISHER, &media[0][0], &mut egress);

    let before = allocations();
    for seq in 1..ROUNDS {
        let now = start + Duration::from_millis(u64::from(seq) * 10);
        for i in 0..STREAMS {
            fwd.on_datagram(now, 0, PUBLISHER, &media[i as usize][seq as usize], &mut egress);
            if seq % 100 == 50 {
                fwd.on_datagram(now, 0, PUBLISHER, &reports[i as usize], &mut egress);
            }
        }
        fwd.on_timers(now, &mut egress);
    }
    let during = allocations() - before;

    assert_eq!(during, 0, "the WebAssembly plugin's calls allocated {during} times in steady state");
    let stats = plugin.stats();
    let packets = u64::from(STREAMS) * (u64::from(ROUNDS) - 1) + 1;
    let compounds = u64::from(STREAMS) * 3;
    assert_eq!(stats.instances, 1);
    assert!(stats.emitted > 0 && stats.emits_refused == 0, "the timers' RTCP went out: {stats:?}");
    let timers = stats.emitted; // each timer call emitted one packet
    let packet_calls = packets * (1 + u64::from(SUBS)) + compounds * (1 + u64::from(SUBS));
    assert_eq!(stats.calls, packet_calls + timers, "{stats:?}");
    assert_eq!((stats.traps, stats.out_of_fuel, stats.disabled), (0, 0, 0));
    assert_eq!(egress.counted().rtp, packets * u64::from(SUBS), "every packet fanned out");
}

/// A WebAssembly plugin that rewrites every packet on both chains (4 bytes longer on ingress, 4 more on each copy):
/// the rewritten packet is fanned out under each subscription's header, and each rewritten copy is queued as it is,
/// allocating nothing. It rewrites every RTCP compound of the publisher too, on both chains (into itself: the path is
/// what is measured, not the bytes).
#[test]
fn a_webassembly_plugin_that_rewrites_packets_allocates_nothing() {
    use ringfwd_dataplane::wasm::{self, Engine, FailurePath, WasmPluginSpec};
    let wat = r#"(module
      (import "ringfwd" "rewrite" (func $rewrite (param i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 4096))
      (func (export "on_rtp") (param $len i32) (param i32 i32 i64 i64) (result i32)
        (i32.store (i32.add (i32.const 4096) (local.get $len)) (i32.const 0x01020304))
        (drop (call $rewrite (i32.add (local.get $len) (i32.const 4))))
        (i32.const 0))
      (func (export "on_rtcp") (param $len i32) (param i32 i32 i32 i64) (result i32)
        (drop (call $rewrite (local.get $len)))
        (i32.const 0)))"#;
    let spec = WasmPluginSpec {
        name: "grow".into(),
        module: wat.as_bytes().to_vec(),
        origin: "grow.wat".into(),
        ingress: true,
        egress: true,
        on_failure: FailurePath::Forward,
        fuel_per_call: 10_000,
        memory_max_bytes: wasm::DEFAULT_MEMORY_BYTES,
        params: Default::default(),
        mode: wasm::PluginMode::Sync,
    };
    let plugin = Engine::new().expect("an engine").load(spec).expect("the module loads");
    let plugins = wasm::register(Plugins::none(), &plugin).expect("registered");
    let start = Instant::now();
    let mut fwd = single_worker(limits(16, 64, 8), start);
    fwd.set_plugins(plugins.clone());
    let grow = || vec![ChainName::Plugin("grow".into())];
    let config = Interceptors { ingress: grow(), egress: grow(), ..Interceptors::default() };
    const SUBS: u32 = 4;
    let ingress = ringfwd_tuning::specs::ingress(&config.ingress, &config, &plugins);
    let cmd = Command::AddStream {
        id: StreamId(0),
        ssrc: 100,
        source: SourcePolicy::Fixed(PUBLISHER),
        clock_rate_hz: 48_000,
        ingress,
    };
    fwd.apply(start, cmd).unwrap();
    for s in 0..SUBS {
        let cmd = Command::AddSubscription {
            id: SubscriptionId(u64::from(s)),
            stream: StreamId(0),
            dest: SocketAddr::from(([127, 0, 0, 2], 7000 + s as u16)),
            socket: 0,
            rewrite: Rewrite { out_ssrc: Some(0x2000 + s), ..Rewrite::default() },
            paused: false,
            egress: ringfwd_tuning::specs::egress(&config.egress, &config, u128::MAX, &plugins),
            continues: None,
        };
        fwd.apply(start, cmd).unwrap();
    }
    const ROUNDS: u16 = 500;
    let media: Vec<Vec<u8>> = (0..ROUNDS).map(|seq| rtp(100, seq, 1100)).collect();
    let report = sender_report(100);
    const REPORT_EVERY: u16 = 50;
    let mut queue = Transmits::with_capacity(64, 2048, 2048 * 1500);
    let mut sent = (0u64, 0u64);
    let drain = |queue: &mut Transmits, sent: &mut (u64, u64)| {
        queue.drain(|transmit| {
            sent.0 += 1;
            sent.1 += transmit.len() as u64;
            true
        });
    };
    fwd.on_datagram(start, 0, PUBLISHER, &media[0], &mut queue);
    drain(&mut queue, &mut sent);

    let before = allocations();
    let mut reports = 0u64;
    for seq in 1..ROUNDS {
        let now = start + Duration::from_millis(u64::from(seq) * 20);
        fwd.on_datagram(now, 0, PUBLISHER, &media[usize::from(seq)], &mut queue);
        if seq % REPORT_EVERY == 0 {
            fwd.on_datagram(now, 0, PUBLISHER, &report, &mut queue);
            reports += 1;
        }
        drain(&mut queue, &mut sent);
    }
    let during = allocations() - before;

    assert_eq!(during, 0, "rewriting allocated {during} times in steady state");
    let copies = u64::from(ROUNDS) * u64::from(SUBS);
    let report_copies = reports * u64::from(SUBS);
    let bytes = copies * (12 + 1100 + 8) + report_copies * report.len() as u64;
    assert_eq!(sent, (copies + report_copies, bytes), "every copy, 8 bytes longer; every report as it was");
    let stats = plugin.stats();
    let rewrites = copies + u64::from(ROUNDS) + report_copies + reports;
    assert_eq!((stats.rewrites, stats.bad_rewrites, stats.disabled), (rewrites, 0, 0));
    assert_eq!(fwd.counters().rewritten_by_plugin, rewrites);
}

/// An async WebAssembly plugin (`async_pass = consume`) that injects each copy it is handed back into its stream: the
/// worker's side (handing the copy over, then emitting what comes back through `Forwarder::on_late`) allocates
/// nothing; the plugin's own thread is not the worker's and is not counted.
#[test]
fn an_async_webassembly_plugin_allocates_nothing_on_the_worker() {
    use ringfwd_dataplane::core::interceptor::late;
    use ringfwd_dataplane::wasm::{self, AsyncPass, AsyncSettings, Engine, FailurePath, PluginMode, WasmPluginSpec};
    let wat = r#"(module
      (import "ringfwd" "inject" (func $inject (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 4096))
      (func (export "on_rtp") (param $len i32) (param i32 i32 i64 i64) (result i32)
        (drop (call $inject (i32.const 4096) (local.get $len)))
        (i32.const 0)))"#;
    let spec = WasmPluginSpec {
        name: "later".into(),
        module: wat.as_bytes().to_vec(),
        origin: "later.wat".into(),
        ingress: true,
        egress: false,
        on_failure: FailurePath::Forward,
        fuel_per_call: 10_000,
        memory_max_bytes: wasm::DEFAULT_MEMORY_BYTES,
        params: Default::default(),
        mode: PluginMode::Async(AsyncSettings { queue_packets: 64, pass: AsyncPass::Consume, wake_delay_us: 0 }),
    };
    let plugin = Engine::new().expect("an engine").load(spec).expect("the module loads");
    let plugins = wasm::register(Plugins::none(), &plugin).expect("registered");
    let start = Instant::now();
    let mut fwd = single_worker(limits(16, 64, 8), start);
    fwd.set_plugins(plugins.clone());
    let config =
        Interceptors { ingress: vec![ChainName::Plugin("later".into())], egress: vec![], ..Interceptors::default() };
    const STREAMS: u32 = 2;
    const SUBS: u32 = 3;
    for i in 0..STREAMS {
        let ingress = ringfwd_tuning::specs::ingress(&config.ingress, &config, &plugins);
        let source = SourcePolicy::Fixed(PUBLISHER);
        let cmd =
            Command::AddStream { id: StreamId(u64::from(i)), ssrc: 100 + i, source, clock_rate_hz: 90_000, ingress };
        fwd.apply(start, cmd).unwrap();
        for s in 0..SUBS {
            let cmd = Command::AddSubscription {
                id: SubscriptionId(u64::from(i * SUBS + s)),
                stream: StreamId(u64::from(i)),
                dest: SocketAddr::from(([127, 0, 0, 2], 7000 + (i * SUBS + s) as u16)),
                socket: 0,
                rewrite: Rewrite { out_ssrc: Some(0x2000 + i * 16 + s), ..Rewrite::default() },
                paused: false,
                egress: ringfwd_tuning::specs::egress(&config.egress, &config, u128::MAX, &plugins),
                continues: None,
            };
            fwd.apply(start, cmd).unwrap();
        }
    }
    const ROUNDS: u16 = 300;
    let media: Vec<Vec<Vec<u8>>> =
        (0..STREAMS).map(|i| (0..ROUNDS).map(|seq| rtp(100 + i, seq, 1000)).collect()).collect();
    let mut egress = DestinationEgress::default();
    // Takes what the plugin's thread sent back until `n` packets came (bounded by a deadline; yields, never sleeps).
    let take = |fwd: &mut Forwarder, egress: &mut DestinationEgress, now: Instant, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = 0;
        while got < n && Instant::now() < deadline {
            got += late::take(n - got, |packet| fwd.on_late(now, packet, egress));
            egress.count();
            std::thread::yield_now();
        }
        got
    };
    for i in 0..STREAMS {
        let outcome = fwd.on_datagram(start, 0, PUBLISHER, &media[i as usize][0], &mut egress);
        assert!(matches!(outcome, Outcome::Intercepted), "consumed by the chain: {outcome:?}");
    }
    assert_eq!(take(&mut fwd, &mut egress, start, STREAMS as usize), STREAMS as usize);

    let before = allocations();
    let mut back = 0;
    for seq in 1..ROUNDS {
        let now = start + Duration::from_millis(u64::from(seq) * 10);
        for i in 0..STREAMS {
            fwd.on_datagram(now, 0, PUBLISHER, &media[i as usize][seq as usize], &mut egress);
        }
        back += take(&mut fwd, &mut egress, now, STREAMS as usize);
    }
    let during = allocations() - before;

    assert_eq!(during, 0, "the worker's side of an async plugin allocated {during} times in steady state");
    let packets = u64::from(STREAMS) * u64::from(ROUNDS);
    assert_eq!(back as u64 + u64::from(STREAMS), packets, "every copy came back");
    let stats = plugin.stats();
    assert_eq!((stats.async_queued, stats.async_queue_full, stats.injected), (packets, 0, packets), "{stats:?}");
    let to_subscribers = egress.counted().to_subscribers;
    assert_eq!(to_subscribers, packets * u64::from(SUBS), "each came back once and was fanned out (assembled copies)");
    assert_eq!(egress.rtp, 0, "the chain consumed every packet as it arrived");
}

/// A WebAssembly plugin that consumes every packet and injects it back twice, with a WebAssembly plugin on every
/// subscription's egress chain: each injected packet is fanned out as assembled copies through the egress chains,
/// allocating nothing.
#[test]
fn a_webassembly_plugin_that_injects_packets_allocates_nothing() {
    use ringfwd_dataplane::wasm::{self, Engine, FailurePath, WasmPluginSpec};
    let inject = r#"(module
      (import "ringfwd" "inject" (func $inject (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 4096))
      (func (export "on_rtp") (param $len i32) (param i32 i32 i64 i64) (result i32)
        (drop (call $inject (i32.const 4096) (local.get $len)))
        (drop (call $inject (i32.const 4096) (local.get $len)))
        (i32.const 2)))"#;
    let pass = r#"(module
      (memory (export "memory") 1)
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 4096))
      (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32) (i32.const 0)))"#;
    let spec = |name: &str, wat: &str| WasmPluginSpec {
        name: name.into(),
        module: wat.as_bytes().to_vec(),
        origin: format!("{name}.wat"),
        ingress: true,
        egress: true,
        on_failure: FailurePath::Forward,
        fuel_per_call: 10_000,
        memory_max_bytes: wasm::DEFAULT_MEMORY_BYTES,
        params: Default::default(),
        mode: wasm::PluginMode::Sync,
    };
    let engine = Engine::new().expect("an engine");
    let injector = engine.load(spec("twice", inject)).expect("the module loads");
    let passer = engine.load(spec("pass", pass)).expect("the module loads");
    let plugins = wasm::register(Plugins::none(), &injector).expect("registered");
    let plugins = wasm::register(plugins, &passer).expect("registered");
    let start = Instant::now();
    let mut fwd = single_worker(limits(16, 64, 8), start);
    fwd.set_plugins(plugins.clone());
    let config = Interceptors {
        ingress: vec![ChainName::Plugin("twice".into())],
        egress: vec![ChainName::Plugin("pass".into())],
        ..Interceptors::default()
    };
    const SUBS: u32 = 4;
    let ingress = ringfwd_tuning::specs::ingress(&config.ingress, &config, &plugins);
    let cmd = Command::AddStream {
        id: StreamId(0),
        ssrc: 100,
        source: SourcePolicy::Fixed(PUBLISHER),
        clock_rate_hz: 48_000,
        ingress,
    };
    fwd.apply(start, cmd).unwrap();
    for s in 0..SUBS {
        let cmd = Command::AddSubscription {
            id: SubscriptionId(u64::from(s)),
            stream: StreamId(0),
            dest: SocketAddr::from(([127, 0, 0, 2], 7000 + s as u16)),
            socket: 0,
            rewrite: Rewrite { out_ssrc: Some(0x2000 + s), seq_offset: 10, ..Rewrite::default() },
            paused: false,
            egress: ringfwd_tuning::specs::egress(&config.egress, &config, u128::MAX, &plugins),
            continues: None,
        };
        fwd.apply(start, cmd).unwrap();
    }
    const ROUNDS: u16 = 500;
    let media: Vec<Vec<u8>> = (0..ROUNDS).map(|seq| rtp(100, seq, 1100)).collect();
    let mut queue = Transmits::with_capacity(64, 2048, 2048 * 1500);
    let mut sent = (0u64, 0u64);
    let drain = |queue: &mut Transmits, sent: &mut (u64, u64)| {
        queue.drain(|transmit| {
            sent.0 += 1;
            sent.1 += transmit.len() as u64;
            true
        });
    };
    fwd.on_datagram(start, 0, PUBLISHER, &media[0], &mut queue);
    drain(&mut queue, &mut sent);

    let before = allocations();
    for seq in 1..ROUNDS {
        let now = start + Duration::from_millis(u64::from(seq) * 20);
        fwd.on_datagram(now, 0, PUBLISHER, &media[usize::from(seq)], &mut queue);
        drain(&mut queue, &mut sent);
    }
    let during = allocations() - before;

    assert_eq!(during, 0, "injecting allocated {during} times in steady state");
    let copies = 2 * u64::from(ROUNDS) * u64::from(SUBS);
    assert_eq!(sent, (copies, copies * (12 + 1100)), "every packet twice to every subscription");
    assert_eq!(injector.stats().injected, 2 * u64::from(ROUNDS));
    assert_eq!(passer.stats().calls, copies, "the egress chains saw every injected copy");
    assert_eq!(fwd.counters().injected, 2 * u64::from(ROUNDS));
}

/// Peers without rtcp-mux: publishers' SRs from their RTCP addresses and subscribers' PLIs from theirs, answered
/// toward the RTCP sockets, allocate nothing.
#[test]
fn rtcp_from_and_to_rtcp_addresses_does_not_allocate() {
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    let start = Instant::now();
    let limits = limits(16, 32, 2);
    let mut fwd = Forwarder::new(0, 1, limits);
    fwd.set_rtcp_socket_offset(Some(1));
    let publisher = |i: u32| SocketAddr::from(([127, 0, 0, 1], 5000 + 2 * i as u16));
    let rtcp_of = |a: SocketAddr| SocketAddr::new(a.ip(), a.port() + 1);
    let subscriber = |i: u32| SocketAddr::from(([127, 0, 0, 2], 6000 + 2 * i as u16));
    for i in 0..8u32 {
        let id = StreamId(u64::from(i));
        let source = SourcePolicy::Fixed(publisher(i));
        let add = Command::AddStream { id, ssrc: 100 + i, source, clock_rate_hz: 90_000, ingress: Default::default() };
        fwd.apply(start, add).unwrap();
        fwd.apply(start, Command::SetRtcpSource { id, source: Some(rtcp_of(publisher(i))) }).unwrap();
        let sub = SubscriptionId(u64::from(i));
        let cmd = Command::AddSubscription {
            id: sub,
            stream: id,
            dest: subscriber(i),
            socket: 0,
            rewrite: Rewrite::default(),
            paused: false,
            egress: Default::default(),
            continues: None,
        };
        fwd.apply(start, cmd).unwrap();
        fwd.apply(start, Command::SetRtcpDestination { id: sub, dest: Some(rtcp_of(subscriber(i))) }).unwrap();
    }
    let reports: Vec<(SocketAddr, Vec<u8>)> =
        (0..8u32).map(|i| (rtcp_of(publisher(i)), sender_report(100 + i))).collect();
    let plis: Vec<(SocketAddr, Vec<u8>)> = (0..8u32)
        .map(|i| {
            let pli = PictureLossIndication { sender_ssrc: 900 + i, media_ssrc: 100 + i };
            (rtcp_of(subscriber(i)), marshal(vec![Box::new(pli)]))
        })
        .collect();
    let mut egress = CountingEgress::default();
    let before = allocations();
    for round in 0..200u64 {
        let now = start + Duration::from_millis(round * 5);
        for (src, pkt) in reports.iter().chain(&plis) {
            fwd.on_datagram(now, 0, *src, pkt, &mut egress);
        }
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "RTCP from RTCP addresses allocated {during} times");
    assert_eq!(fwd.counters().drop_wrong_source, 0);
    assert_eq!(egress.counted().rtcp, 200 * 16, "each SR to its subscriber, each PLI on to its publisher");
}

#[test]
fn moving_sources_and_their_overlaps_do_not_allocate() {
    let start = Instant::now();
    let mut fwd = Forwarder::new(0, 1, limits(16, 32, 2));
    let path = |i: u32, b: bool| SocketAddr::from(([127, 0, 0, 1 + u8::from(b)], 5000 + i as u16));
    for i in 0..8u32 {
        let id = StreamId(u64::from(i));
        let source = SourcePolicy::Fixed(path(i, false));
        let add = Command::AddStream { id, ssrc: 100 + i, source, clock_rate_hz: 90_000, ingress: Default::default() };
        fwd.apply(start, add).unwrap();
        let cmd = Command::AddSubscription {
            id: SubscriptionId(u64::from(i)),
            stream: id,
            dest: SocketAddr::from(([127, 0, 0, 3], 6000 + i as u16)),
            socket: 0,
            rewrite: Rewrite::default(),
            paused: false,
            egress: Default::default(),
            continues: None,
        };
        fwd.apply(start, cmd).unwrap();
    }
    let packets: Vec<Vec<u8>> = (0..8u32).flat_map(|i| (0..400u16).map(move |seq| rtp(100 + i, seq, 200))).collect();
    let mut egress = CountingEgress::default();
    let before = allocations();
    // Every 100 rounds (500 ms) each stream moves to the other path; both paths carry every packet throughout.
    for round in 0..400u64 {
        let now = start + Duration::from_millis(round * 5);
        let on_b = (round / 100) % 2 == 0;
        for i in 0..8u32 {
            if round % 100 == 0 {
                fwd.apply(now, Command::SetSource { id: StreamId(u64::from(i)), source: path(i, on_b), overlap: true })
                    .unwrap();
            }
            let pkt = &packets[i as usize * 400 + round as usize];
            for b in [false, true] {
                fwd.on_datagram(now, 0, path(i, b), pkt, &mut egress);
            }
        }
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "moving sources allocated {during} times");
    let c = fwd.counters();
    // Each round one copy is forwarded and the other is a repeat (overlap) or a wrong source (after it).
    assert_eq!(egress.counted().rtp, 400 * 8);
    assert_eq!(c.drop_repeated + c.drop_wrong_source, 400 * 8);
    assert!(c.drop_repeated > 0 && c.drop_wrong_source > 0);
}

/// Peers that publish and subscribe at one address, with the default chains: each one's SR carries a report
/// block and a PLI about the SSRC it receives, taken for its stream and for its subscription; nothing allocates.
#[test]
fn a_sendrecv_peers_sr_with_report_blocks_and_feedback_does_not_allocate() {
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;

    let start = Instant::now();
    let limits = limits(16, 32, 2);
    let (config, mut fwd) = (Interceptors::default(), single_worker(limits, start));
    // Peers 2k and 2k + 1 call each other: each publishes 100 + i and hears the other as 0x5000 + i.
    const PEERS: u32 = 8;
    let peer = |i: u32| SocketAddr::from(([127, 0, 0, 3], 7000 + 2 * i as u16));
    let heard_as = |i: u32| 0x5000 + i;
    for i in 0..PEERS {
        let ingress = ringfwd_tuning::specs::ingress(&config.ingress, &config, &Plugins::none());
        let source = SourcePolicy::Fixed(peer(i));
        let cmd =
            Command::AddStream { id: StreamId(u64::from(i)), ssrc: 100 + i, source, clock_rate_hz: 90_000, ingress };
        fwd.apply(start, cmd).unwrap();
    }
    for i in 0..PEERS {
        let cmd = Command::AddSubscription {
            id: SubscriptionId(u64::from(i)),
            stream: StreamId(u64::from(i ^ 1)),
            dest: peer(i),
            socket: 0,
            rewrite: Rewrite { out_ssrc: Some(heard_as(i)), ..Rewrite::default() },
            paused: false,
            egress: ringfwd_tuning::specs::egress(&config.egress, &config, u128::MAX, &Plugins::none()),
            continues: None,
        };
        fwd.apply(start, cmd).unwrap();
    }
    let media: Vec<Vec<u8>> = (0..PEERS).map(|i| rtp(100 + i, 1, 160)).collect();
    let compounds: Vec<Vec<u8>> = (0..PEERS)
        .map(|i| {
            let report = ReceptionReport { ssrc: heard_as(i), last_sequence_number: 1, ..Default::default() };
            let sr = SenderReport { ssrc: 100 + i, reports: vec![report], ..Default::default() };
            let pli = PictureLossIndication { sender_ssrc: 100 + i, media_ssrc: heard_as(i) };
            marshal(vec![Box::new(sr), Box::new(pli)])
        })
        .collect();
    let mut egress = CountingEgress::default();
    for (i, pkt) in media.iter().enumerate() {
        fwd.on_datagram(start, 0, peer(i as u32), pkt, &mut egress);
    }
    let before = allocations();
    for round in 0..200u64 {
        let now = start + Duration::from_millis(round * 5);
        for (i, pkt) in compounds.iter().enumerate() {
            fwd.on_datagram(now, 0, peer(i as u32), pkt, &mut egress);
        }
        fwd.on_timers(now, &mut egress);
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "sendrecv peers' compounds allocated {during} times");
    assert_eq!(fwd.counters().rx_feedback, 200 * u64::from(PEERS), "each compound's subscriber part taken");
    assert_eq!(fwd.counters().drop_malformed, 0);
}

#[test]
fn packets_handed_over_along_an_ssrc_alias_do_not_allocate() {
    let start = Instant::now();
    let limits = limits(16, 32, 2);
    // Eight streams on worker 0 took odd SSRCs (owned by worker 1) in place; worker 1 holds their aliases.
    let (mut home, mut steered) = (Forwarder::new(0, 2, limits), Forwarder::new(1, 2, limits));
    let publisher = |i: u32| SocketAddr::from(([127, 0, 0, 1], 5000 + 2 * i as u16));
    for i in 0..8u32 {
        let id = StreamId(u64::from(i));
        let source = SourcePolicy::Fixed(publisher(i));
        let add = Command::AddStream { id, ssrc: 2 * i, source, clock_rate_hz: 90_000, ingress: Default::default() };
        home.apply(start, add).unwrap();
        for s in 0..2u32 {
            let cmd = Command::AddSubscription {
                id: SubscriptionId(u64::from(2 * i + s)),
                stream: id,
                dest: SocketAddr::from(([127, 0, 0, 2], 6000 + (2 * i + s) as u16)),
                socket: 0,
                rewrite: Rewrite::default(),
                paused: false,
                egress: Default::default(),
                continues: None,
            };
            home.apply(start, cmd).unwrap();
        }
        home.apply(start, Command::ChangeStreamSsrc { id, ssrc: 2 * i + 101 }).unwrap();
        steered.apply(start, Command::AliasSsrc { ssrc: 2 * i + 101, owner: 0 }).unwrap();
    }
    let packets: Vec<(SocketAddr, Vec<u8>)> = (0..8u32)
        .flat_map(|i| [(publisher(i), rtp(2 * i + 101, 1, 1000)), (publisher(i), sender_report(2 * i + 101))])
        .collect();
    let unknown = rtp(999, 1, 100);
    let mut egress = CountingEgress::default();
    let before = allocations();
    for round in 0..200u64 {
        let now = start + Duration::from_millis(round * 5);
        for (src, pkt) in &packets {
            if let Outcome::Handover { owner: 0 } = steered.on_datagram(now, 0, *src, pkt, &mut egress) {
                home.on_handover(now, 0, *src, pkt, 1, &mut egress);
            }
        }
        steered.on_datagram(now, 0, publisher(0), &unknown, &mut egress);
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "packets handed over along an alias allocated {during} times");
    assert_eq!(steered.counters().handover_out, 200 * 16);
    assert_eq!(home.counters().handover_in, 200 * 16);
    assert_eq!(
        (egress.counted().rtp, egress.counted().rtcp),
        (200 * 16, 200 * 16),
        "every RTP and SR to both subscribers"
    );
    assert_eq!(steered.counters().drop_unknown_ssrc, 200);
}
