//! The send side of the io_uring driver: preallocated send slots, zero-copy fanout and UDP GSO coalescing.
//!
//! Owns the slots (each one `SendMsg` in flight: its `msghdr`, destination, iovecs, rewritten 12-byte headers,
//! GSO control message and the handles of the pool buffers it references). During one loop iteration the
//! backend queues, per transmit the core asked for, `header + payload of a received buffer` to the
//! subscriber's address ([`TxQueue::forward`]) or a copy in a spare buffer ([`TxQueue::copy`]); consecutive
//! packets to one destination (socket and address) with the same size join one slot and leave as one GSO send
//! (the last segment may be shorter, then the slot closes), whichever streams they belong to: a subscriber that
//! receives several streams on one address (BUNDLE, or audio and video of one participant) gets them in as few
//! sends as their sizes allow. At the end of the iteration every slot opened is queued as a `SendMsg`, in the
//! order opened, so a destination's packets leave in the order they arrived. A slot returns to the free list
//! when its completion arrives, releasing the packet buffers it referenced.
//!
//! The destination → open slot index is a fixed-size open-addressing table (twice the slot count, so at most
//! half full: at most one entry per open slot) whose entries expire with the iteration's epoch.
//!
//! Must never: copy a payload (only RTCP the core assembles is copied, into a spare buffer), allocate after
//! construction, or reuse a slot before its completion.

use std::hash::BuildHasher;
use std::net::SocketAddr;

use io_uring::{opcode, squeue, types};
use socket2::SockAddr;

use crate::core::Counters;
use crate::driver::errqueue;
use crate::driver::pool::{Buf, Buffers, PoolState};

/// Largest UDP payload a GSO send may carry in total.
const GSO_MAX_BYTES: usize = 65_000;
/// `user_data` tag of send completions; the low bits are the slot index.
pub const SEND_TAG: u64 = 1 << 62;

/// Room for one `cmsghdr` carrying a `u16` (`UDP_SEGMENT`), 8-byte aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Control([u8; 32]);

struct Slot {
    msghdr: libc::msghdr,
    name: SockAddr,
    iov: Box<[libc::iovec]>,
    headers: Box<[[u8; 12]]>,
    control: Control,
    /// Holds on the buffers its iovecs point into (the first `nbufs`), given back at completion.
    bufs: Box<[Option<Buf>]>,
    /// Destination as the coalescing key (with `socket`).
    dest: SocketAddr,
    nbufs: usize,
    niov: usize,
    segments: usize,
    segment_bytes: usize,
    total_bytes: usize,
    closed: bool,
    socket: usize,
    /// Already sent again once after a pending socket error failed it.
    retried: bool,
}

/// What became of a completed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendDone {
    /// Sent; the slot is free again.
    Sent,
    /// Failed with this errno; the slot is free again (the send is counted in `send_errors`).
    Failed(i32),
    /// Failed with an ICMP error pending on socket `socket` (`IP_RECVERR`: a pending error fails the
    /// socket's next operation, whoever it was for); the slot is kept, and the caller must send it again
    /// with [`TxQueue::resubmit`]. At most once per slot use.
    Retry {
        /// The errno.
        errno: i32,
        /// The worker socket index the send used.
        socket: usize,
    },
}

/// The epoch of an `open` entry that belongs to no iteration; [`TxQueue`]'s epoch never takes it.
const NEVER: u32 = u32::MAX;

/// All send slots of one worker and the flows open in the current iteration.
pub struct TxQueue {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots opened this iteration, in order.
    pending: Vec<u32>,
    /// Destination index: (iteration epoch, slot) of a destination's latest slot; an entry of an older epoch is
    /// empty. Length a power of two.
    open: Vec<(u32, u32)>,
    /// Hashes destinations for `open`.
    hasher: foldhash::fast::RandomState,
    epoch: u32,
    gso_max_segments: usize,
}

// SAFETY: the raw pointers inside `msghdr` and `iovec` point into this queue's own boxes or into the worker's
// pool; the queue is moved into its worker thread before any is set and used only there.
unsafe impl Send for TxQueue {}

impl TxQueue {
    /// `slots` in-flight sends, up to `gso_max_segments` packets per send.
    pub fn new(slots: usize, gso_max_segments: usize) -> TxQueue {
        let seg = gso_max_segments.max(1);
        let unspecified = SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)));
        TxQueue {
            slots: (0..slots)
                .map(|_| Slot {
                    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
                    msghdr: unsafe { std::mem::zeroed() },
                    name: unspecified.clone(),
                    iov: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 2 * seg].into_boxed_slice(),
                    headers: vec![[0u8; 12]; seg].into_boxed_slice(),
                    control: Control([0; 32]),
                    bufs: (0..seg).map(|_| None).collect(),
                    dest: SocketAddr::from(([0, 0, 0, 0], 0)),
                    nbufs: 0,
                    niov: 0,
                    segments: 0,
                    segment_bytes: 0,
                    total_bytes: 0,
                    closed: false,
                    retried: false,
                    socket: 0,
                })
                .collect(),
            free: (0..slots as u32).rev().collect(),
            pending: Vec::with_capacity(slots),
            open: vec![(NEVER, 0); (2 * slots).next_power_of_two().max(2)],
            hasher: foldhash::fast::RandomState::default(),
            epoch: 0,
            gso_max_segments: seg,
        }
    }

    /// Sends in flight or pending.
    pub fn busy(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Free slots.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    /// Turns GSO off (after the kernel refused a segmented send).
    pub fn disable_gso(&mut self) {
        self.gso_max_segments = 1;
    }

    fn open_slot(&mut self, socket: usize, dest: SocketAddr) -> Option<u32> {
        let s = self.free.pop()?;
        let slot = &mut self.slots[s as usize];
        slot.name = SockAddr::from(dest);
        slot.dest = dest;
        slot.nbufs = 0;
        slot.niov = 0;
        slot.segments = 0;
        slot.segment_bytes = 0;
        slot.total_bytes = 0;
        slot.closed = false;
        slot.retried = false;
        slot.socket = socket;
        self.pending.push(s);
        Some(s)
    }

    /// The index entry of destination (`socket`, `dest`) this iteration: its position in `open` and, if it has
    /// one, its latest slot. Linear probing; the table is at most half full, so a free entry is always found.
    fn find(&self, socket: usize, dest: SocketAddr) -> (usize, Option<u32>) {
        let mask = self.open.len() - 1;
        let mut at = self.hasher.hash_one((socket, dest)) as usize & mask;
        loop {
            let (epoch, s) = self.open[at];
            if epoch != self.epoch {
                return (at, None);
            }
            let slot = &self.slots[s as usize];
            if slot.socket == socket && slot.dest == dest {
                return (at, Some(s));
            }
            at = (at + 1) & mask;
        }
    }

    /// Queues every slot opened this iteration on the submission queue, submitting when it is full.
    pub fn flush(&mut self, ring: &mut io_uring::IoUring, fds: &[types::Fixed]) -> std::io::Result<()> {
        for i in 0..self.pending.len() {
            let s = self.pending[i];
            let slot = &mut self.slots[s as usize];
            slot.msghdr.msg_name = slot.name.as_ptr() as *mut libc::c_void;
            slot.msghdr.msg_namelen = slot.name.len();
            slot.msghdr.msg_iov = slot.iov.as_mut_ptr();
            slot.msghdr.msg_iovlen = slot.niov;
            if slot.segments > 1 {
                write_segment_cmsg(&mut slot.control, slot.segment_bytes as u16);
                slot.msghdr.msg_control = slot.control.0.as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE is a pure size computation.
                slot.msghdr.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
            } else {
                slot.msghdr.msg_control = std::ptr::null_mut();
                slot.msghdr.msg_controllen = 0;
            }
            let entry = opcode::SendMsg::new(fds[slot.socket], &slot.msghdr).build().user_data(SEND_TAG | u64::from(s));
            push(ring, &entry)?;
        }
        self.pending.clear();
        self.next_epoch();
        Ok(())
    }

    /// Starts the next iteration's epoch: every `open` entry of an earlier one is empty from now on. The epoch
    /// never takes the value [`NEVER`]: on reaching it every entry is set to [`NEVER`] and the count restarts,
    /// so no entry written before the wrap can look live again.
    fn next_epoch(&mut self) {
        self.epoch += 1;
        if self.epoch == NEVER {
            self.open.iter_mut().for_each(|o| o.0 = NEVER);
            self.epoch = 0;
        }
    }

    /// A send completed with `result`; releases its buffers and slot and counts it — unless it failed
    /// with an unreachable error for the first time, then the slot is kept for a retry.
    pub fn complete(&mut self, slot: u32, result: i32, pool: &mut PoolState, counters: &mut Counters) -> SendDone {
        let Some(slot_ref) = self.slots.get_mut(slot as usize) else {
            return SendDone::Sent;
        };
        if result < 0 && errqueue::is_unreachable(-result) && !slot_ref.retried {
            slot_ref.retried = true;
            counters.send_retries += 1;
            return SendDone::Retry { errno: -result, socket: slot_ref.socket };
        }
        for buf in &mut slot_ref.bufs[..slot_ref.nbufs] {
            if let Some(buf) = buf.take() {
                pool.recycle(buf);
            }
        }
        let segments = slot_ref.segments as u64;
        slot_ref.nbufs = 0;
        self.free.push(slot);
        if result < 0 {
            counters.send_errors += segments;
            return SendDone::Failed(-result);
        }
        counters.sends += 1;
        if segments > 1 {
            counters.gso_sends += 1;
            counters.gso_segments += segments;
        }
        SendDone::Sent
    }

    /// Queues slot `slot` again exactly as it was flushed (its msghdr, iovecs and buffers are untouched
    /// since: a slot is only rebuilt after it is freed).
    pub fn resubmit(&mut self, slot: u32, ring: &mut io_uring::IoUring, fds: &[types::Fixed]) -> std::io::Result<()> {
        let Some(slot_ref) = self.slots.get(slot as usize) else {
            return Ok(());
        };
        let entry =
            opcode::SendMsg::new(fds[slot_ref.socket], &slot_ref.msghdr).build().user_data(SEND_TAG | u64::from(slot));
        push(ring, &entry)
    }
}

impl TxQueue {
    /// Queues `header` followed by bytes `offset + 12 .. offset + len` of the buffer `from` holds (a datagram of
    /// `len` bytes at `offset`; the payload is not copied) to `dest` from socket `socket`, joining the
    /// destination's open GSO send when sizes allow. False when no slot is free or the datagram is shorter
    /// than a header.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        pool: &mut PoolState,
        buffers: &Buffers,
        from: &Buf,
        (offset, len): (usize, usize),
        socket: usize,
        dest: SocketAddr,
        header: &[u8; 12],
    ) -> bool {
        if len < 12 {
            return false;
        }
        let max = self.gso_max_segments;
        let (entry, latest) = self.find(socket, dest);
        let reuse = latest.filter(|&s| {
            let slot = &self.slots[s as usize];
            !slot.closed && slot.segments < max && slot.total_bytes + len <= GSO_MAX_BYTES && len <= slot.segment_bytes
        });
        let s = match reuse {
            Some(s) => s,
            None => match self.open_slot(socket, dest) {
                Some(s) => {
                    self.open[entry] = (self.epoch, s);
                    self.slots[s as usize].segment_bytes = len;
                    s
                }
                None => return false,
            },
        };
        let slot = &mut self.slots[s as usize];
        let k = slot.segments;
        slot.headers[k] = *header;
        slot.iov[slot.niov] = libc::iovec { iov_base: slot.headers[k].as_mut_ptr().cast(), iov_len: 12 };
        slot.iov[slot.niov + 1] =
            libc::iovec { iov_base: buffers.ptr(from, offset + 12) as *mut libc::c_void, iov_len: len - 12 };
        slot.niov += 2;
        slot.bufs[slot.nbufs] = Some(pool.share(from));
        slot.nbufs += 1;
        slot.segments += 1;
        slot.total_bytes += len;
        if len < slot.segment_bytes {
            slot.closed = true;
        }
        true
    }

    /// Queues the first `len` bytes of `buf` (a filled spare) to `dest` from socket `socket`, as a send of its own;
    /// gives `buf` back (false) when no slot is free.
    pub fn copy(
        &mut self,
        pool: &mut PoolState,
        buffers: &Buffers,
        buf: Buf,
        len: usize,
        socket: usize,
        dest: SocketAddr,
    ) -> bool {
        let Some(s) = self.open_slot(socket, dest) else {
            pool.recycle(buf);
            return false;
        };
        let slot = &mut self.slots[s as usize];
        slot.iov[0] = libc::iovec { iov_base: buffers.ptr(&buf, 0) as *mut libc::c_void, iov_len: len };
        slot.niov = 1;
        slot.bufs[0] = Some(buf);
        slot.nbufs = 1;
        slot.segments = 1;
        slot.segment_bytes = len;
        slot.total_bytes = len;
        slot.closed = true;
        true
    }
}

fn write_segment_cmsg(control: &mut Control, segment_bytes: u16) {
    control.0 = [0; 32];
    // SAFETY: `control` is 8-byte aligned and 32 bytes long, enough for CMSG_SPACE(2) (24 bytes on 64-bit
    // Linux), so the header and the u16 after it are written inside the buffer; CMSG_LEN/CMSG_DATA are pointer
    // arithmetic on that header.
    unsafe {
        let header = control.0.as_mut_ptr().cast::<libc::cmsghdr>();
        (*header).cmsg_level = libc::SOL_UDP;
        (*header).cmsg_type = libc::UDP_SEGMENT;
        (*header).cmsg_len = libc::CMSG_LEN(2) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<u16>(), segment_bytes);
    }
}

/// Pushes one entry, submitting first when the submission queue is full.
pub fn push(ring: &mut io_uring::IoUring, entry: &squeue::Entry) -> std::io::Result<()> {
    loop {
        // SAFETY: every entry this driver builds points at memory (msghdr, iovecs, buffers, eventfd buffer) that
        // stays valid and unmoved until the entry's completion is reaped: slots and buffers are only reused after
        // their completion, and the worker drains all completions before dropping anything.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_wraps_without_reviving_an_old_entry() {
        let mut tx = TxQueue::new(4, 4);
        tx.epoch = NEVER - 2;
        tx.open[0] = (NEVER - 2, 1);
        tx.next_epoch();
        assert_eq!(tx.epoch, NEVER - 1);
        tx.open[1] = (NEVER - 1, 2);
        tx.next_epoch();
        assert_eq!(tx.epoch, 0, "the epoch skips the marker");
        assert!(tx.open.iter().all(|&(epoch, _)| epoch == NEVER), "{:?}", tx.open);
        // The marker is never a live epoch: after a full turn of the counter the entries are still empty.
        tx.epoch = NEVER - 1;
        tx.next_epoch();
        assert_ne!(tx.epoch, NEVER);
        assert!(tx.open.iter().all(|&(epoch, _)| epoch != tx.epoch));
    }
}
