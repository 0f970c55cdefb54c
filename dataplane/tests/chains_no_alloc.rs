//! Proves that the default interceptor chains allocate nothing per packet, nor when their timers run.
//!
//! The same thread-local counting allocator as `core_no_alloc.rs` (each test binary has its own). After
//! the tables are built with the default chains of `[interceptors]` (stats, keyframe throttle, NACK
//! cache and receiver reports on each stream; stats and sender reports on each subscription), a lossy
//! video stream, the publisher's sender reports, and subscribers' receiver reports, NACKs and PLIs run
//! through the forwarder with its timers, and the count must not move while retransmissions, reports
//! and keyframe requests really go out. This file owns the allocator and must hold nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringfwd_dataplane::core::interceptor::spec::{from_config, NtpEpoch};
use ringfwd_dataplane::core::{
    Command, Egress, Forwarder, ForwarderLimits, Rewrite, SourcePolicy, StreamId, SubscriptionId,
};
use ringfwd_tuning::Interceptors;

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

/// Counts copies by destination without storing them.
#[derive(Default)]
struct CountingEgress {
    rtp: u64,
    to_publisher: u64,
    to_subscribers: u64,
}

const PUBLISHER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);

impl Egress for CountingEgress {
    fn forward_rtp(&mut self, _flow: u32, _socket: usize, _dest: SocketAddr, _header: &[u8; 12]) -> bool {
        self.rtp += 1;
        true
    }

    fn send_copy(&mut self, _socket: usize, dest: SocketAddr, _bytes: &[u8]) -> bool {
        if dest == PUBLISHER {
            self.to_publisher += 1;
        } else {
            self.to_subscribers += 1;
        }
        true
    }
}

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut pkt = vec![0x80, 96];
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    pkt.extend_from_slice(&ssrc.to_be_bytes());
    pkt.resize(1200, 0xab);
    pkt
}

fn marshal(packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>>) -> Vec<u8> {
    rtcp::packet::marshal(&packets).expect("marshal").to_vec()
}

#[test]
fn default_chains_allocate_nothing_per_packet_or_timer() {
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

    let start = Instant::now();
    let limits = ForwarderLimits {
        max_streams: 16,
        max_subscriptions: 64,
        max_subscriptions_per_stream: 8,
        max_packet_bytes: 1500,
        max_packets_per_second_per_source: 0,
    };
    let config = Interceptors::default();
    let mut fwd = Forwarder::new(0, 1, limits);
    fwd.set_ntp_epoch(NtpEpoch { at: start, ntp: 3_970_000_000u64 << 32 });
    const STREAMS: u32 = 4;
    const SUBS: u32 = 4;
    let out_ssrc = |i: u32, s: u32| 0x1000 + i * 16 + s;
    let dest = |i: u32, s: u32| SocketAddr::from(([127, 0, 0, 2], 6000 + (i * SUBS + s) as u16));
    for i in 0..STREAMS {
        let ingress = from_config::ingress(&config.ingress, &config);
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
                egress: from_config::egress(&config.egress, &config, u128::MAX),
            };
            fwd.apply(start, cmd).unwrap();
        }
    }
    // Every datagram is built before counting starts. One packet in 20 never arrives.
    const ROUNDS: u16 = 400;
    let media: Vec<Vec<Vec<u8>>> = (0..STREAMS).map(|i| (0..ROUNDS).map(|seq| rtp(100 + i, seq)).collect()).collect();
    let reports: Vec<Vec<u8>> = (0..STREAMS)
        .map(|i| {
            marshal(vec![Box::new(SenderReport {
                ssrc: 100 + i,
                ntp_time: 1 << 40,
                rtp_time: 7,
                ..Default::default()
            })])
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
    let mut egress = CountingEgress::default();

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
    assert_eq!(egress.rtp, u64::from(STREAMS * SUBS) * (u64::from(ROUNDS) - lost), "every arriving packet fanned out");
    assert_eq!(c.rx_feedback, u64::from(STREAMS * SUBS) * lost);
    assert_eq!(c.drop_malformed, 0);
    // Retransmissions are not possible (the NACKed packets never arrived), but reports and keyframe
    // requests went to the publisher, and sender reports to every subscriber.
    assert!(egress.to_publisher >= u64::from(STREAMS) * 3, "receiver reports and PLIs: {}", egress.to_publisher);
    assert!(egress.to_subscribers >= u64::from(STREAMS * SUBS) * 2, "sender reports: {}", egress.to_subscribers);
    assert_eq!(c.interceptor_emit_refused, 0);
}
