//! The transmit queue: what the core decided to send for one datagram (or one round of timers), in order, for
//! the worker loop to drain to its backend.
//!
//! The core is pull-style: [`Forwarder::on_datagram`](super::Forwarder::on_datagram) and its siblings queue
//! [`Transmit`]s here and return; the loop then drains them ([`Transmits::drain`]) and hands each to its
//! backend, which sends it. A forwarded RTP copy is a rewritten 12-byte header whose payload is bytes `12..` of
//! the datagram being processed ([`Transmit::Forward`]: the loop attaches the receive buffer that holds it, the
//! payload is never copied); anything the core assembles itself (rewritten RTCP, interceptor output,
//! retransmissions) is copied into the queue's own byte arena ([`Transmit::Copy`]). When a plugin rewrote the
//! datagram ([`Transmits::rewrite`]), its forwarded copies carry the rewritten packet instead: it is kept once
//! ([`Transmits::rewritten`]); the worker loop copies it once into a buffer of its backend and drains each copy as a
//! [`Transmit::Forward`] of that buffer ([`Transmits::drain_with`]), or, when it has no buffer to spare (and in
//! [`Transmits::drain`]), as a [`Transmit::Copy`] of it under that copy's header.
//!
//! Owns the bounded queue and arena, both sized once from the forwarder's limits. Must never grow: a copy that
//! does not fit is refused (the caller counts it as `tx_full`), never allocated for. Holds no socket, no clock
//! and no pool buffer: what the bytes travel in is the backend's business.

use std::net::SocketAddr;

use super::forwarder::OUTBOX_PACKETS;
use super::table::ForwarderLimits;

/// Assembled copies (RTCP, retransmissions, interceptor output) one drain of the queue may hold at most, whatever
/// their size: the bound of a round of timers, whose reports to every subscription of the worker are queued
/// before the loop drains them.
pub const MAX_COPIES: usize = 2048;
/// Arena bytes, in full-size packets (`max_packet_bytes` each), for the assembled copies of one drain.
pub const COPY_ARENA_PACKETS: usize = 512;

/// One packet to send, as queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queued {
    Forward {
        socket: usize,
        dest: SocketAddr,
        header: [u8; 12],
    },
    Copy {
        socket: usize,
        dest: SocketAddr,
        start: u32,
        len: u32,
    },
    /// A forward of the rewritten datagram (`body`).
    Rewritten {
        socket: usize,
        dest: SocketAddr,
        header: [u8; 12],
    },
}

/// One packet to send, as drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit<'a> {
    /// `header`, then bytes `12..` of the datagram the queue was [`begun`](Transmits::begin) for, from media socket
    /// `socket` to `dest`. The datagram is `len` bytes long (header included): what goes on the wire.
    Forward {
        /// The worker's socket index to send from.
        socket: usize,
        /// Where to.
        dest: SocketAddr,
        /// The rewritten RTP header.
        header: &'a [u8; 12],
        /// Bytes on the wire.
        len: usize,
    },
    /// `bytes`, assembled by the core, from socket `socket` to `dest`.
    Copy {
        /// The worker's socket index to send from.
        socket: usize,
        /// Where to.
        dest: SocketAddr,
        /// The packet.
        bytes: &'a [u8],
    },
}

impl Transmit<'_> {
    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        match self {
            Transmit::Forward { len, .. } => *len,
            Transmit::Copy { bytes, .. } => bytes.len(),
        }
    }

    /// Never true for a queued transmit (a forward carries at least its header); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The queue of one worker.
#[derive(Debug)]
pub struct Transmits {
    queue: Vec<Queued>,
    arena: Vec<u8>,
    /// Length of the datagram being processed (0: none, so no forward can be queued).
    current: usize,
    /// Forwards the queue may hold besides copies.
    max_forwards: usize,
    forwards: usize,
    /// The rewritten datagram, when a plugin rewrote it (`body_len` bytes; each drained copy writes its header over
    /// the first 12).
    body: Box<[u8]>,
    body_len: usize,
    /// Forwards of the rewritten datagram queued.
    rewritten_forwards: usize,
}

impl Transmits {
    /// A queue for a forwarder with `limits`: room for one copy per subscription of a stream and a full
    /// interceptor outbox of forwards, and [`MAX_COPIES`] assembled copies in an arena of
    /// [`COPY_ARENA_PACKETS`] full-size packets.
    pub fn for_limits(limits: &ForwarderLimits) -> Transmits {
        let forwards = limits.max_subscriptions_per_stream as usize + OUTBOX_PACKETS;
        let mut transmits =
            Transmits::with_capacity(forwards, MAX_COPIES, COPY_ARENA_PACKETS * limits.max_packet_bytes);
        transmits.body = vec![0u8; limits.max_packet_bytes].into_boxed_slice();
        transmits
    }

    /// A queue with room for `forwards` forwards and `copies` copies of `arena_bytes` in total (0 and 0: refuses
    /// everything, as a full backend would).
    pub fn with_capacity(forwards: usize, copies: usize, arena_bytes: usize) -> Transmits {
        Transmits {
            queue: Vec::with_capacity(forwards + copies),
            arena: Vec::with_capacity(arena_bytes),
            current: 0,
            max_forwards: forwards,
            forwards: 0,
            body: vec![0u8; arena_bytes.min(u16::MAX as usize)].into_boxed_slice(),
            body_len: 0,
            rewritten_forwards: 0,
        }
    }

    /// The core starts on a datagram of `len` bytes (0: none, e.g. a round of timers): forwards refer to it until
    /// the next `begin`.
    pub(crate) fn begin(&mut self, len: usize) {
        self.current = len;
        self.body_len = 0;
    }

    /// A plugin rewrote the current datagram into `packet`: forwards queued from now on (until the next `begin`) carry
    /// it instead of the datagram. False, and nothing changes, when it is shorter than a header or longer than the
    /// longest packet.
    pub(crate) fn rewrite(&mut self, packet: &[u8]) -> bool {
        let Some(body) = self.body.get_mut(..packet.len()).filter(|_| packet.len() >= 12) else {
            return false;
        };
        body.copy_from_slice(packet);
        self.body_len = packet.len();
        true
    }

    /// Queues `header` + bytes `12..` of the current datagram (or of its rewrite) to `dest` from `socket`; false when
    /// the queue is full or there is no current datagram of at least 12 bytes.
    pub(crate) fn forward(&mut self, socket: usize, dest: SocketAddr, header: &[u8; 12]) -> bool {
        if self.current < 12 || self.forwards == self.max_forwards || self.queue.len() == self.queue.capacity() {
            return false;
        }
        self.forwards += 1;
        let header = *header;
        self.queue.push(match self.body_len {
            0 => Queued::Forward { socket, dest, header },
            _ => {
                self.rewritten_forwards += 1;
                Queued::Rewritten { socket, dest, header }
            }
        });
        true
    }

    /// The rewritten datagram, when forwards of it are queued (the worker loop copies it once into a buffer of its
    /// backend, then drains with [`Transmits::drain_with`]).
    pub fn rewritten(&self) -> Option<&[u8]> {
        (self.rewritten_forwards != 0).then(|| &self.body[..self.body_len])
    }

    /// Queues a copy of `bytes` to `dest` from `socket`; false when the queue or its arena is full.
    pub(crate) fn copy(&mut self, socket: usize, dest: SocketAddr, bytes: &[u8]) -> bool {
        let start = self.arena.len();
        if self.queue.len() == self.queue.capacity() || bytes.len() > self.arena.capacity() - start {
            return false;
        }
        self.arena.extend_from_slice(bytes);
        self.queue.push(Queued::Copy { socket, dest, start: start as u32, len: bytes.len() as u32 });
        true
    }

    /// Queues a copy of RTP packet `pkt` with its first 12 bytes replaced by `header` (an assembled copy of a packet
    /// that is not the current datagram), straight into the arena; false as for [`Transmits::copy`], or when `pkt` is
    /// shorter than a header.
    pub(crate) fn copy_under(&mut self, socket: usize, dest: SocketAddr, header: &[u8; 12], pkt: &[u8]) -> bool {
        let start = self.arena.len();
        let Some(payload) = pkt.get(12..) else {
            return false;
        };
        if self.queue.len() == self.queue.capacity() || pkt.len() > self.arena.capacity() - start {
            return false;
        }
        self.arena.extend_from_slice(header);
        self.arena.extend_from_slice(payload);
        self.queue.push(Queued::Copy { socket, dest, start: start as u32, len: pkt.len() as u32 });
        true
    }

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Hands every queued packet to `send`, in the order queued, and empties the queue. `send` returns false for
    /// a packet it could not take (counted by the caller). A forward of a rewritten datagram comes as a
    /// [`Transmit::Copy`] of it.
    pub fn drain(&mut self, mut send: impl FnMut(Transmit<'_>) -> bool) -> Refused {
        self.drain_with(false, |transmit, _| send(transmit))
    }

    /// [`Transmits::drain`], but with `forward_rewritten` a forward of the rewritten datagram comes as a
    /// [`Transmit::Forward`] of [`Transmits::rewritten`]'s length, flagged (`true`) so that the caller attaches the
    /// buffer it copied the rewritten datagram into, not the received one.
    pub fn drain_with(&mut self, forward_rewritten: bool, mut send: impl FnMut(Transmit<'_>, bool) -> bool) -> Refused {
        let mut refused = Refused::default();
        let Transmits { queue, arena, body, body_len, current, .. } = self;
        for queued in queue.iter() {
            let rewritten = forward_rewritten && matches!(queued, Queued::Rewritten { .. });
            let transmit = match queued {
                Queued::Forward { socket, dest, header } => {
                    Transmit::Forward { socket: *socket, dest: *dest, header, len: *current }
                }
                Queued::Copy { socket, dest, start, len } => {
                    let bytes = &arena[*start as usize..(*start + *len) as usize];
                    Transmit::Copy { socket: *socket, dest: *dest, bytes }
                }
                Queued::Rewritten { socket, dest, header } if forward_rewritten => {
                    Transmit::Forward { socket: *socket, dest: *dest, header, len: *body_len }
                }
                Queued::Rewritten { socket, dest, header } => {
                    body[..12].copy_from_slice(header);
                    Transmit::Copy { socket: *socket, dest: *dest, bytes: &body[..*body_len] }
                }
            };
            if !send(transmit, rewritten) {
                match queued {
                    Queued::Forward { .. } | Queued::Rewritten { .. } => {
                        refused.forwards += 1;
                        refused.forward_bytes += transmit.len() as u64;
                    }
                    Queued::Copy { .. } => refused.copies += 1,
                }
            }
        }
        queue.clear();
        arena.clear();
        self.forwards = 0;
        self.rewritten_forwards = 0;
        refused
    }
}

/// What a drain's receiver could not take.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Forwarded RTP copies refused, and their bytes on the wire.
    pub forwards: u64,
    /// Their bytes.
    pub forward_bytes: u64,
    /// Assembled copies refused.
    pub copies: u64,
}

impl Refused {
    /// Nothing was refused.
    pub fn is_none(&self) -> bool {
        *self == Refused::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn drains_in_order_and_empties() {
        let mut t = Transmits::with_capacity(2, 2, 16);
        t.begin(20);
        assert!(t.forward(0, dest(), &[1; 12]));
        assert!(t.copy(1, dest(), b"abc"));
        assert!(t.forward(0, dest(), &[2; 12]));
        assert!(!t.forward(0, dest(), &[3; 12]), "two forwards at most");
        let mut seen = Vec::new();
        let refused = t.drain(|tx| {
            seen.push(match tx {
                Transmit::Forward { header, len, .. } => (header[0], len),
                Transmit::Copy { bytes, .. } => (bytes[0], bytes.len()),
            });
            true
        });
        assert!(refused.is_none());
        assert_eq!(seen, [(1, 20), (b'a', 3), (2, 20)]);
        assert!(t.is_empty());
        assert!(t.copy(0, dest(), &[0; 16]), "the arena is empty again");
    }

    #[test]
    fn forwards_of_a_rewritten_datagram_carry_the_rewrite_under_their_own_header() {
        let mut t = Transmits::with_capacity(4, 1, 64);
        t.begin(20);
        assert!(!t.rewrite(&[0x80; 11]), "shorter than a header");
        assert!(!t.rewrite(&[0x80; 65]), "longer than the longest packet");
        assert!(t.forward(0, dest(), &[1; 12]), "before the rewrite: the datagram");
        let mut packet = [0x80u8; 30];
        packet[12..].copy_from_slice(&[7; 18]);
        assert!(t.rewrite(&packet));
        assert!(t.forward(0, dest(), &[2; 12]));
        assert!(t.forward(1, dest(), &[3; 12]));
        let mut seen = Vec::new();
        let refused = t.drain(|tx| {
            match tx {
                Transmit::Forward { header, len, .. } => seen.push((header[0], len, 0)),
                Transmit::Copy { bytes, .. } => seen.push((bytes[0], bytes.len(), bytes[12])),
            }
            tx.len() != 30 || seen.len() == 2
        });
        assert_eq!(seen, [(1, 20, 0), (2, 30, 7), (3, 30, 7)]);
        assert_eq!(refused, Refused { forwards: 1, forward_bytes: 30, copies: 0 }, "a refused rewrite is a forward");
        t.begin(20);
        assert!(t.forward(0, dest(), &[4; 12]));
        let mut lens = Vec::new();
        t.drain(|tx| {
            lens.push(matches!(tx, Transmit::Forward { len: 20, .. }));
            true
        });
        assert_eq!(lens, [true], "the next datagram is forwarded as received");

        // Drained for a loop that copied the rewrite into a buffer of its own: forwards of it, flagged.
        t.begin(20);
        assert!(t.forward(0, dest(), &[5; 12]));
        assert_eq!(t.rewritten(), None, "nothing rewritten");
        assert!(t.rewrite(&packet));
        assert!(t.forward(1, dest(), &[6; 12]));
        assert_eq!(t.rewritten(), Some(&packet[..]));
        let mut seen = Vec::new();
        t.drain_with(true, |tx, rewritten| {
            seen.push(match tx {
                Transmit::Forward { header, len, .. } => (header[0], len, rewritten),
                Transmit::Copy { .. } => (0, 0, rewritten),
            });
            true
        });
        assert_eq!(seen, [(5, 20, false), (6, 30, true)]);
        assert_eq!(t.rewritten(), None, "drained");
    }

    #[test]
    fn bounds_refuse_and_count() {
        let mut t = Transmits::with_capacity(1, 1, 4);
        t.begin(0);
        assert!(!t.forward(0, dest(), &[0; 12]), "no current datagram: nothing to forward");
        assert!(!t.copy(0, dest(), b"12345"), "larger than the arena");
        t.begin(12);
        assert!(t.forward(0, dest(), &[0; 12]));
        assert!(t.copy(0, dest(), b"1234"));
        let refused = t.drain(|_| false);
        assert_eq!(refused, Refused { forwards: 1, forward_bytes: 12, copies: 1 });
    }
}
