//! Steady-state forwarding allocates nothing: a real worker (io_uring and mmsg drivers) forwards 100,000
//! packets over loopback while a counting global allocator watches every thread but the test's own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringfwd_dataplane::core::{Command, Rewrite, SourcePolicy, StreamId, SubscriptionId};
use ringfwd_dataplane::runtime::mailbox::Envelope;
use ringfwd_dataplane::runtime::Dataplane;
use ringfwd_tuning::{Config, Driver};

mod support;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the test's own threads (sender, receiver), whose allocations are not the worker's.
    static EXCLUDED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if !EXCLUDED.try_with(Cell::get).unwrap_or(true) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: delegates every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM_UP: u32 = 2_000;
const MEASURED: u32 = 100_000;
const SUBSCRIBERS: usize = 3;

fn wait_ack(dataplane: &Dataplane) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(ack) = dataplane.workers()[0].mailbox.take_ack() {
            ack.result.expect("command applied");
            return;
        }
        assert!(Instant::now() < deadline, "no acknowledgement");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn rtp(ssrc: u32, seq: u16, size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

fn forward_without_allocating(driver: Driver) {
    EXCLUDED.with(|e| e.set(true));
    let mut config = Config::default();
    config.media.addresses = vec!["127.0.0.1:0".parse().unwrap()];
    config.media.driver = driver;
    // Nothing is tapped, so the recorder never creates this directory.
    let untapped = std::env::temp_dir().join("ringfwd-untapped");
    let dataplane = support::start(&config, &untapped);
    let media = dataplane.media_addresses()[0];

    let publisher = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sinks: Vec<UdpSocket> = (0..SUBSCRIBERS)
        .map(|_| {
            let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
            let _ = socket2::SockRef::from(&sink).set_recv_buffer_size(4 << 20);
            sink
        })
        .collect();
    let ssrc = 0x5eed;
    let worker = &dataplane.workers()[0];
    let source = SourcePolicy::Fixed(publisher.local_addr().unwrap());
    worker
        .mailbox
        .send(Envelope {
            seq: 1,
            command: Command::AddStream {
                id: StreamId(1),
                ssrc,
                source,
                clock_rate_hz: 90_000,
                ingress: Default::default(),
            },
        })
        .unwrap();
    wait_ack(&dataplane);
    for (i, sink) in sinks.iter().enumerate() {
        let rewrite = Rewrite { out_ssrc: Some(100 + i as u32), seq_offset: i as u16, ..Rewrite::default() };
        let dest: SocketAddr = sink.local_addr().unwrap();
        let command = Command::AddSubscription {
            id: SubscriptionId(i as u64),
            stream: StreamId(1),
            dest,
            socket: 0,
            rewrite,
            paused: false,
            egress: Default::default(),
            continues: None,
        };
        worker.mailbox.send(Envelope { seq: 2 + i as u64, command }).unwrap();
        wait_ack(&dataplane);
    }

    let receivers: Vec<_> = sinks
        .into_iter()
        .map(|sink| {
            std::thread::spawn(move || {
                EXCLUDED.with(|e| e.set(true));
                sink.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                let mut buf = [0u8; 2048];
                let mut n = 0u32;
                while n < WARM_UP + MEASURED {
                    match sink.recv_from(&mut buf) {
                        Ok(_) => n += 1,
                        Err(_) => break,
                    }
                }
                n
            })
        })
        .collect();

    // A video-like mix: bursts of equal 1200-byte packets (GSO) and 160-byte audio-sized ones.
    let packets: Vec<Vec<u8>> =
        (0..(WARM_UP + MEASURED)).map(|i| rtp(ssrc, i as u16, if i % 8 == 7 { 160 } else { 1200 })).collect();
    let mut before = 0;
    for (i, p) in packets.iter().enumerate() {
        if i as u32 == WARM_UP {
            std::thread::sleep(Duration::from_millis(200));
            before = ALLOCATIONS.load(Ordering::SeqCst);
        }
        publisher.send_to(p, media).unwrap();
        if i % 64 == 63 {
            // Flow control on the worker's own published counters, so that a debug build sharing 2 cores with
            // this test's threads is never overrun: the test measures allocation, not capacity.
            let deadline = Instant::now() + Duration::from_secs(5);
            while worker.counters.snapshot().rx_packets + 256 < i as u64 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    let received: Vec<u32> = receivers.into_iter().map(|r| r.join().unwrap()).collect();
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    let counters = dataplane.stop();
    assert_eq!(
        counters[0].rx_packets,
        u64::from(WARM_UP + MEASURED),
        "{driver:?}: every packet received: {:?}",
        counters[0]
    );
    assert_eq!(counters[0].forwarded_packets, u64::from(WARM_UP + MEASURED) * SUBSCRIBERS as u64);
    assert!(
        received.iter().all(|&n| n == WARM_UP + MEASURED),
        "{driver:?}: subscribers got {received:?}: {:?}",
        counters[0]
    );
    assert_eq!(after - before, 0, "{driver:?}: the worker allocated while forwarding {MEASURED} packets");
}

#[test]
fn steady_state_forwarding_allocates_nothing() {
    forward_without_allocating(Driver::IoUring);
    forward_without_allocating(Driver::Mmsg);
}
