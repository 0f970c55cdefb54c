//! Checks that batched receive and send (`driver::batch`) allocate nothing after construction,
//! with a counting global allocator armed only on the test's own thread around the I/O.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringfwd_dataplane::driver::batch::{enable_rx_queue_overflow, enable_udp_gro, RecvBatch, SendBatch};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches no memory
// the caller owns.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` with allocation counting on and returns how many allocations it made.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    let result = f();
    ARMED.with(|a| a.set(false));
    (ALLOCATIONS.load(Ordering::Relaxed) - before, result)
}

#[test]
fn receive_and_send_paths_allocate_nothing_after_construction() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    enable_rx_queue_overflow(receiver.as_fd()).unwrap();
    let _ = enable_udp_gro(receiver.as_fd());
    let dest = receiver.local_addr().unwrap();
    let mut send = SendBatch::new(64, 2).unwrap();
    let mut recv = RecvBatch::new(64, 65_535).unwrap();
    let headers: Vec<[u8; 12]> = (0..64u8).map(|i| [i; 12]).collect();
    let payload = vec![9u8; 188];

    let (counted, _) = allocations_in(|| Box::new(7u64));
    assert_eq!(counted, 1, "the counting allocator itself works");

    let mut received = 0;
    let mut checksum = 0usize;
    let deadline = Instant::now() + Duration::from_secs(5);
    for round in 0..20 {
        let (sent_allocs, report) = allocations_in(|| {
            let mut guard = send.begin();
            for header in &headers {
                guard.push(dest, &[header, &payload], None);
            }
            guard.send(sender.as_fd()).unwrap()
        });
        assert_eq!((sent_allocs, report.sent), (0, 64), "round {round}");
        let target = (round + 1) * 64;
        while received < target && Instant::now() < deadline {
            let (recv_allocs, n) = allocations_in(|| {
                let n = recv.recv(receiver.as_fd()).unwrap();
                for d in recv.iter() {
                    checksum += d.data.len() + usize::from(d.src.port() > 0) + usize::from(d.truncated);
                }
                let _ = recv.rx_queue_overflow();
                n
            });
            assert_eq!(recv_allocs, 0, "round {round}");
            received += n;
        }
    }
    assert_eq!(received, 20 * 64);
    assert_eq!(checksum, 20 * 64 * 201);
}
