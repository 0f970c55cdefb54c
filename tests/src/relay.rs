//! A loopback UDP relay that stands for a peer at ringfwd and records the RTCP ringfwd sends it.
//!
//! Owns [`RtcpTap`]: one socket whose address is the peer's address as ringfwd knows it. What ringfwd sends
//! to it goes on to the peer's real port (RTCP datagrams copied first); what the peer sends to it goes on to
//! ringfwd, from the relay's address, so ringfwd sees one address for the peer both ways. Datagrams from
//! anyone else are ignored. The relay thread is bounded in time ([`MAX_RUN`]) and stops when the tap is
//! finished or dropped. Never modifies or reorders what it relays, and drops nothing but, when started lossy
//! ([`RtcpTap::start_lossy`]), every n-th RTP datagram toward the peer (never RTCP: a test that loses RTP on
//! purpose must not lose the one BYE it waits for by chance). Also owns the check of what was
//! recorded: [`compound`] reads one datagram as an RTCP compound ringfwd may send (RFC 3550 §6.1).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtcp::goodbye::Goodbye;
use rtcp::receiver_report::ReceiverReport;
use rtcp::sender_report::SenderReport;
use rtcp::source_description::{SdesType, SourceDescription};

/// The longest a relay thread runs.
pub const MAX_RUN: Duration = Duration::from_secs(300);
/// How long one receive waits before the thread checks whether to stop.
const POLL: Duration = Duration::from_millis(50);

/// True for an RTCP packet type (RFC 5761 §4: second byte 192..=223), the way ringfwd tells them apart.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && (192..=223).contains(&datagram[1])
}

/// A running relay between ringfwd's media address and one peer (see the module docs).
#[derive(Debug)]
pub struct RtcpTap {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtcpTap {
    /// A relay on a free loopback port between ringfwd at `media` and the peer at `peer`.
    pub fn start(media: SocketAddr, peer: SocketAddr) -> RtcpTap {
        RtcpTap::start_lossy(media, peer, None)
    }

    /// [`RtcpTap::start`], dropping every `drop_every`-th RTP datagram ringfwd sends to the peer (RTCP passes).
    pub fn start_lossy(media: SocketAddr, peer: SocketAddr, drop_every: Option<usize>) -> RtcpTap {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the relay");
        socket.set_read_timeout(Some(POLL)).expect("read timeout");
        let addr = socket.local_addr().expect("relay address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_seen, thread_stop) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut buf = vec![0u8; 65_536];
            let mut rtp = 0usize;
            while !thread_stop.load(Ordering::Relaxed) && started.elapsed() < MAX_RUN {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let datagram = &buf[..len];
                if from == media {
                    if is_rtcp(datagram) {
                        thread_seen.lock().expect("tap lock").push(datagram.to_vec());
                    } else {
                        rtp += 1;
                        if drop_every.is_some_and(|n| n > 0 && rtp.is_multiple_of(n)) {
                            continue;
                        }
                    }
                    let _ = socket.send_to(datagram, peer);
                } else if from == peer {
                    let _ = socket.send_to(datagram, media);
                }
            }
        });
        RtcpTap { addr, seen, stop, thread: Some(thread) }
    }

    /// The relay's address: the peer's address as ringfwd must know it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every RTCP datagram ringfwd sent to the peer so far, in order.
    pub fn rtcp_seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().expect("tap lock").clone()
    }

    /// Stops the relay and answers every RTCP datagram ringfwd sent to the peer.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.halt();
        self.rtcp_seen()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RtcpTap {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What a test needs of one RTCP compound ringfwd sent.
#[derive(Debug)]
pub struct Compound {
    /// The SSRC of the leading SR or RR.
    pub reporter: u32,
    /// The CNAME an SDES chunk gives for `reporter`.
    pub cname: String,
    /// The sources of its BYE packets.
    pub bye: Vec<u32>,
}

/// `bytes` as a compound; fails the test unless it parses, starts with an SR or RR and has an SDES CNAME for
/// that report's SSRC (RFC 3550 §6.1).
pub fn compound(bytes: &[u8]) -> Compound {
    let packets = rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(bytes))
        .unwrap_or_else(|e| panic!("ringfwd sent invalid RTCP ({e}): {bytes:02x?}"));
    let first = packets.first().expect("at least one packet").as_any();
    let reporter = match (first.downcast_ref::<SenderReport>(), first.downcast_ref::<ReceiverReport>()) {
        (Some(sr), _) => sr.ssrc,
        (None, Some(rr)) => rr.ssrc,
        _ => panic!("a compound must start with an SR or RR: {packets:?}"),
    };
    let cname = packets
        .iter()
        .filter_map(|p| p.as_any().downcast_ref::<SourceDescription>())
        .flat_map(|sdes| sdes.chunks.iter().filter(|chunk| chunk.source == reporter))
        .flat_map(|chunk| chunk.items.iter().filter(|item| item.sdes_type == SdesType::SdesCname))
        .map(|item| String::from_utf8_lossy(&item.text).into_owned())
        .next()
        .unwrap_or_else(|| panic!("no SDES CNAME for {reporter:#x} in {packets:?}"));
    let bye = packets
        .iter()
        .filter_map(|p| p.as_any().downcast_ref::<Goodbye>())
        .flat_map(|bye| bye.sources.iter().copied())
        .collect();
    Compound { reporter, cname, bye }
}
