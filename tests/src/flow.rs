//! Paced RTP flows for tests that change the daemon under traffic (a crash and restart, a takeover): a publisher
//! thread sending several streams at a steady rate, each packet's payload carrying its index in its stream, and
//! subscriber threads recording what arrives, each packet timed on arrival.
//!
//! Owns [`Publisher`], [`Collector`] and [`Got`]. Bounded: a publisher sends at most [`MAX_RUN`] and stops when
//! told; a collector stops when told. Sends only to the address given (loopback in every test).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::peer::{rtp_fields, rtp_packet, Peer};

/// Longest a publisher sends.
pub const MAX_RUN: Duration = Duration::from_secs(60);

/// How often a publisher sends a burst (each stream's share of the rate).
const TICK: Duration = Duration::from_millis(1);

/// One stream a publisher sends: SSRC, first sequence number and timestamp, timestamp ticks per packet.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// Its SSRC.
    pub ssrc: u32,
    /// Its first sequence number.
    pub seq: u16,
    /// Its first RTP timestamp.
    pub ts: u32,
    /// Timestamp ticks from one packet to the next.
    pub ticks: u32,
}

/// A publisher thread.
pub struct Publisher {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Sends `streams` from `peer` to `to`, `pps` packets per second of each, every stream's packet `n` carrying `n`
    /// (8 bytes, big-endian), the stream's position in `streams` (1 byte), then 151 bytes of filler, until stopped
    /// or [`MAX_RUN`] passed.
    pub fn start(peer: Peer, to: SocketAddr, streams: Vec<Stream>, pps: u32) -> Publisher {
        let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (halt, count) = (Arc::clone(&stop), Arc::clone(&sent));
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut n: u64 = 0;
            let mut payload = [0u8; 160];
            while !halt.load(Ordering::Relaxed) && start.elapsed() < MAX_RUN {
                // Every packet due by now (a burst per tick; a late tick catches up).
                let due = (start.elapsed().as_secs_f64() * f64::from(pps)) as u64 + 1;
                while n < due {
                    payload[..8].copy_from_slice(&n.to_be_bytes());
                    for (position, s) in streams.iter().enumerate() {
                        payload[8] = position as u8;
                        let seq = s.seq.wrapping_add(n as u16);
                        let ts = s.ts.wrapping_add((n as u32).wrapping_mul(s.ticks));
                        peer.send(&rtp_packet(s.ssrc, seq, ts, 96, false, &payload), to);
                    }
                    n += 1;
                    count.store(n, Ordering::Release);
                }
                std::thread::sleep(TICK); // pacing, not synchronisation
            }
        });
        Publisher { stop, sent, thread: Some(thread) }
    }

    /// Packets sent of each stream so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }

    /// Stops sending; answers how many packets of each stream went out.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("publisher thread");
        }
        self.sent()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One packet a subscriber received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Got {
    /// Its SSRC.
    pub ssrc: u32,
    /// Its sequence number.
    pub seq: u16,
    /// Its RTP timestamp.
    pub ts: u32,
    /// The index its publisher gave it in its stream (the payload's first 8 bytes).
    pub index: u64,
    /// Its stream's position in the publisher's list (the payload's ninth byte).
    pub stream: u8,
    /// When it arrived.
    pub at: Instant,
}

/// A subscriber thread recording every packet.
pub struct Collector {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Got>>>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Records what `peer` receives, each packet timed as it arrives.
    pub fn start(peer: Peer) -> Collector {
        let (stop, got) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (halt, record) = (Arc::clone(&stop), Arc::clone(&got));
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                for packet in peer.recv(1, Duration::from_millis(50)) {
                    let at = Instant::now();
                    let f = rtp_fields(&packet);
                    let index = f.payload.get(..8).map_or(u64::MAX, |b| u64::from_be_bytes(b.try_into().unwrap()));
                    let stream = f.payload.get(8).copied().unwrap_or(u8::MAX);
                    let got = Got { ssrc: f.ssrc, seq: f.seq, ts: f.timestamp, index, stream, at };
                    record.lock().unwrap().push(got);
                }
            }
        });
        Collector { stop, got, thread: Some(thread) }
    }

    /// Packets received so far.
    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Stops recording; answers every packet, in arrival order.
    pub fn stop(mut self) -> Vec<Got> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("collector thread");
        }
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The `(position, step)` of every sequence-number step of `got` other than +1.
pub fn seq_breaks(got: &[Got]) -> Vec<(usize, u16)> {
    got.windows(2).enumerate().map(|(i, w)| (i, w[1].seq.wrapping_sub(w[0].seq))).filter(|&(_, d)| d != 1).collect()
}
