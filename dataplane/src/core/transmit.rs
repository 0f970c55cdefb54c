//! The transmit queue: what the core decided to send for one datagram (or one round of timers), in order, for
//! the worker loop to drain to its backend.
//!
//! The core is pull-style: [`Forwarder::on_datagram`](super::Forwarder::on_datagram) and its siblings queue
//! [`Transmit`]s here and return; the loop then drains them ([`Transmits::drain`]) and hands each to its
//! backend, which sends it. A forwarded RTP copy is a rewritten 12-byte header whose payload is bytes `12..` of
//! the datagram being processed ([`Transmit::Forward`]: the loop attaches the receive buffer that holds it, the
//! payload is never copied); anything the core assembles itself (rewritten RTCP, interceptor output,
//! retransmissions) is copied into the queue's own byte arena ([`Transmit::Copy`]).
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
    Forward { socket: usize, dest: SocketAddr, header: [u8; 12] },
    Copy { socket: usize, dest: SocketAddr, start: u32, len: u32 },
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
}

impl Transmits {
    /// A queue for a forwarder with `limits`: room for one copy per subscription of a stream and a full
    /// interceptor outbox of forwards, and [`MAX_COPIES`] assembled copies in an arena of
    /// [`COPY_ARENA_PACKETS`] full-size packets.
    pub fn for_limits(limits: &ForwarderLimits) -> Transmits {
        let forwards = limits.max_subscriptions_per_stream as usize + OUTBOX_PACKETS;
        Transmits::with_capacity(forwards, MAX_COPIES, COPY_ARENA_PACKETS * limits.max_packet_bytes)
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
        }
    }

    /// The core starts on a datagram of `len` bytes (0: none, e.g. a round of timers): forwards refer to it until
    /// the next `begin`.
    pub(crate) fn begin(&mut self, len: usize) {
        self.current = len;
    }

    /// Queues `header` + bytes `12..` of the current datagram to `dest` from `socket`; false when the queue is full
    /// or there is no current datagram of at least 12 bytes.
    pub(crate) fn forward(&mut self, socket: usize, dest: SocketAddr, header: &[u8; 12]) -> bool {
        if self.current < 12 || self.forwards == self.max_forwards || self.queue.len() == self.queue.capacity() {
            return false;
        }
        self.forwards += 1;
        self.queue.push(Queued::Forward { socket, dest, header: *header });
        true
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

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Hands every queued packet to `send`, in the order queued, and empties the queue. `send` returns false for
    /// a packet it could not take (counted by the caller).
    pub fn drain(&mut self, mut send: impl FnMut(Transmit<'_>) -> bool) -> Refused {
        let mut refused = Refused::default();
        for queued in &self.queue {
            let transmit = match queued {
                Queued::Forward { socket, dest, header } => {
                    Transmit::Forward { socket: *socket, dest: *dest, header, len: self.current }
                }
                Queued::Copy { socket, dest, start, len } => {
                    let bytes = &self.arena[*start as usize..(*start + *len) as usize];
                    Transmit::Copy { socket: *socket, dest: *dest, bytes }
                }
            };
            if !send(transmit) {
                match transmit {
                    Transmit::Forward { len, .. } => {
                        refused.forwards += 1;
                        refused.forward_bytes += len as u64;
                    }
                    Transmit::Copy { .. } => refused.copies += 1,
                }
            }
        }
        self.queue.clear();
        self.arena.clear();
        self.forwards = 0;
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
