//! The cross-worker handover ring: packets that reached a worker which does not own their stream.
//!
//! Owns, per receiving worker, a ring of ready packets and a free list of preallocated packet boxes (sized for the
//! largest accepted datagram). Boxes circulate between the two queues, so handing over never allocates. A
//! sender that finds no free box drops the packet and counts it (`drop_handover_full`); it never waits.

use std::net::SocketAddr;

use crossbeam::queue::ArrayQueue;

/// One handed-over datagram.
#[derive(Debug)]
pub struct HandoverPacket {
    /// Where it came from.
    pub src: SocketAddr,
    /// Which media socket (index into the media addresses) received it.
    pub socket: usize,
    /// How many times it was handed over, this time included (see `core::MAX_HANDOVERS`).
    pub handovers: u8,
    /// Valid bytes in `data`.
    pub len: usize,
    /// Packet bytes; preallocated at start-up.
    pub data: Box<[u8]>,
}

/// The handover ring of one worker (any worker may send, only the owner receives).
#[derive(Debug)]
pub struct HandoverRing {
    ready: ArrayQueue<Box<HandoverPacket>>,
    free: ArrayQueue<Box<HandoverPacket>>,
}

impl HandoverRing {
    /// `capacity` boxes of `max_packet_bytes` each, all free.
    pub fn new(capacity: usize, max_packet_bytes: usize) -> HandoverRing {
        let free = ArrayQueue::new(capacity);
        for _ in 0..capacity {
            let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
            let packet = HandoverPacket {
                src: unspecified,
                socket: 0,
                handovers: 0,
                len: 0,
                data: vec![0; max_packet_bytes].into_boxed_slice(),
            };
            let _ = free.push(Box::new(packet));
        }
        HandoverRing { ready: ArrayQueue::new(capacity), free }
    }

    /// Sender: copies the packet in, handed over for the `handovers`-th time; `None` (and nothing queued) when the
    /// ring is full or the packet too big. Returns `Some(was_empty)` on success, so the caller wakes the owner only
    /// when it may be asleep.
    pub fn offer(&self, src: SocketAddr, socket: usize, handovers: u8, bytes: &[u8]) -> Option<bool> {
        let mut packet = self.free.pop()?;
        if bytes.len() > packet.data.len() {
            let _ = self.free.push(packet);
            return None;
        }
        packet.data[..bytes.len()].copy_from_slice(bytes);
        packet.len = bytes.len();
        packet.src = src;
        packet.socket = socket;
        packet.handovers = handovers;
        let was_empty = self.ready.is_empty();
        // Cannot fail: boxes number exactly `capacity` and this one came off the free list.
        let _ = self.ready.push(packet);
        Some(was_empty)
    }

    /// Owner: the next handed-over packet.
    pub fn take(&self) -> Option<Box<HandoverPacket>> {
        self.ready.pop()
    }

    /// Owner: returns a box after processing.
    pub fn recycle(&self, packet: Box<HandoverPacket>) {
        let _ = self.free.push(packet);
    }

    /// Whether packets are waiting.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Packets waiting for the owner (for the occupancy gauge).
    pub fn queued(&self) -> usize {
        self.ready.len()
    }

    /// Packets the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.ready.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_allocation_free_circulation() {
        let ring = HandoverRing::new(2, 64);
        let src: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(ring.offer(src, 0, 1, b"one"), Some(true));
        assert_eq!(ring.offer(src, 1, 2, b"two"), Some(false));
        assert_eq!(ring.offer(src, 0, 1, b"three"), None, "full");
        let p = ring.take().unwrap();
        assert_eq!((&p.data[..p.len], p.handovers), (&b"one"[..], 1));
        ring.recycle(p);
        assert!(ring.offer(src, 0, 1, &[0u8; 65]).is_none(), "too big");
        assert_eq!(ring.offer(src, 0, 1, b"four"), Some(false));
    }
}
