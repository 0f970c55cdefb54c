//! The worker's packet pool and its io_uring provided-buffer ring.
//!
//! Owns one page-aligned region of `count + spare` fixed-size buffers, allocated once at start-up, and the
//! buffer ring through which the kernel picks receive buffers. A buffer is, at any moment, exactly one of:
//! in the ring (the kernel may write it), held by the worker while it is processed, or held by in-flight sends
//! (a per-buffer reference count; it goes back to the ring when the last send completes). The `spare` buffers
//! never enter the ring: they carry packets the worker assembles itself (rewritten RTCP, handed-over packets).
//!
//! The pool is split in two so a packet's bytes can be borrowed while its bookkeeping changes:
//! [`Buffers`] (the memory, read-only to safe code) and [`PoolState`] (ring, reference counts, spares).
//!
//! Must never: hand out a slice of a buffer that is in the ring, or free its memory while the ring is
//! registered (the owning io_uring is dropped first).

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

const PAGE: usize = 4096;

/// A region of memory from the global allocator, page aligned, freed on drop.
struct Region {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Region {
    fn zeroed(bytes: usize) -> io::Result<Region> {
        let layout = Layout::from_size_align(bytes.max(PAGE), PAGE).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (at least one page).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(Region { ptr, layout })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: a Region is plain owned memory; it is moved into its worker thread before use and used only there.
unsafe impl Send for Region {}

/// The packet memory of one worker.
pub struct Buffers {
    region: Region,
    buffer_bytes: usize,
    total: usize,
}

impl Buffers {
    /// Bytes per buffer.
    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// The first `len` bytes of buffer `bid`, which must be out of the ring (handed to the worker by a
    /// completion, or a taken spare).
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        assert!(usize::from(bid) < self.total, "buffer id {bid} out of range");
        let len = len.min(self.buffer_bytes);
        // SAFETY: `bid` is in range (checked), so the slice lies inside the region. The caller only asks for
        // buffers out of the ring, which the kernel does not write, and safe code never writes buffer memory
        // (only `write` does, on a freshly taken spare, see its contract).
        unsafe { std::slice::from_raw_parts(self.region.ptr.as_ptr().add(usize::from(bid) * self.buffer_bytes), len) }
    }

    /// Pointer to byte `offset` of buffer `bid`, for an iovec or a ring entry.
    pub fn ptr(&self, bid: u16, offset: usize) -> *const u8 {
        debug_assert!(usize::from(bid) < self.total && offset <= self.buffer_bytes);
        self.region.ptr.as_ptr().wrapping_add(usize::from(bid) * self.buffer_bytes + offset)
    }

    /// Copies `bytes` into spare buffer `bid`.
    ///
    /// # Safety
    /// `bid` must be a spare just returned by [`PoolState::take_spare`], so that no send references it and no
    /// slice from [`Buffers::data`] of it is alive.
    pub unsafe fn write(&self, bid: u16, bytes: &[u8]) {
        assert!(usize::from(bid) < self.total && bytes.len() <= self.buffer_bytes);
        // SAFETY: in range (asserted); exclusive per the caller's contract; source and destination are distinct
        // (the source is never a taken spare).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr(bid, 0) as *mut u8, bytes.len()) }
    }
}

/// The bookkeeping of one worker's pool: ring, reference counts, spares.
pub struct PoolState {
    ring: Region,
    base: *const u8,
    buffer_bytes: usize,
    count: u16,
    mask: u16,
    /// Our copy of the ring tail; published to the kernel by [`PoolState::publish`].
    tail: u16,
    in_ring: u32,
    refs: Vec<u16>,
    spares: Vec<u16>,
    spare_total: u16,
}

// SAFETY: `base` points into the Buffers region owned by the same worker; both are moved into the worker thread
// before use and used only there.
unsafe impl Send for PoolState {}

/// Allocates `count` ring buffers (a power of two, at most 32768) and `spare` extra buffers of `buffer_bytes`
/// each, and places every ring buffer in the ring (published).
pub fn new(count: u16, spare: u16, buffer_bytes: usize) -> io::Result<(Buffers, PoolState)> {
    if !count.is_power_of_two() || count > 32768 {
        let msg = format!("pool count {count} must be a power of two <= 32768");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    let total = usize::from(count) + usize::from(spare);
    if total > usize::from(u16::MAX) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "pool too large for 16-bit buffer ids"));
    }
    let buffers = Buffers { region: Region::zeroed(total * buffer_bytes)?, buffer_bytes, total };
    let ring = Region::zeroed(usize::from(count) * std::mem::size_of::<BufRingEntry>())?;
    let mut state = PoolState {
        ring,
        base: buffers.ptr(0, 0),
        buffer_bytes,
        count,
        mask: count - 1,
        tail: 0,
        in_ring: 0,
        refs: vec![0; total],
        spares: (count..count + spare).rev().collect(),
        spare_total: spare,
    };
    for bid in 0..count {
        state.give_back(bid);
    }
    state.publish();
    Ok((buffers, state))
}

impl PoolState {
    /// Address of the ring memory, for `register_buf_ring`.
    pub fn ring_addr(&self) -> u64 {
        self.ring.ptr.as_ptr() as u64
    }

    /// Number of ring entries.
    pub fn ring_entries(&self) -> u16 {
        self.count
    }

    /// Buffers out of the ring right now (held by the worker or by sends), spares included.
    pub fn in_use(&self) -> u64 {
        u64::from(self.count) - u64::from(self.in_ring) + u64::from(self.spare_total) - self.spares.len() as u64
    }

    /// Buffers currently available to the kernel.
    pub fn available(&self) -> u32 {
        self.in_ring
    }

    /// Takes a spare buffer; `None` when all are in use.
    pub fn take_spare(&mut self) -> Option<u16> {
        self.spares.pop()
    }

    /// One more in-flight send references `bid`.
    pub fn hold(&mut self, bid: u16) {
        self.refs[usize::from(bid)] += 1;
    }

    /// A send referencing `bid` completed; the buffer is recycled when nothing references it any more.
    pub fn release(&mut self, bid: u16) {
        let r = &mut self.refs[usize::from(bid)];
        debug_assert!(*r > 0, "release of unheld buffer {bid}");
        *r = r.saturating_sub(1);
        if *r == 0 {
            self.recycle(bid);
        }
    }

    /// The worker is done with `bid`: recycled unless sends still hold it.
    pub fn done(&mut self, bid: u16) {
        if self.refs[usize::from(bid)] == 0 {
            self.recycle(bid);
        }
    }

    /// The kernel consumed one ring buffer (a receive completed into it).
    pub fn taken_by_kernel(&mut self) {
        self.in_ring = self.in_ring.saturating_sub(1);
    }

    fn recycle(&mut self, bid: u16) {
        if bid >= self.count {
            self.spares.push(bid);
        } else {
            self.give_back(bid);
        }
    }

    fn give_back(&mut self, bid: u16) {
        let entries = self.ring.ptr.as_ptr().cast::<BufRingEntry>();
        let index = usize::from(self.tail & self.mask);
        // SAFETY: `index < count`, the number of entries the ring region holds; the entry at our tail is not
        // visible to the kernel until `publish` moves the shared tail past it, so writing it races with nothing.
        let entry = unsafe { &mut *entries.add(index) };
        entry.set_addr(self.base.wrapping_add(usize::from(bid) * self.buffer_bytes) as u64);
        entry.set_len(self.buffer_bytes as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.in_ring += 1;
    }

    /// Makes every buffer given back so far visible to the kernel.
    pub fn publish(&mut self) {
        let entries = self.ring.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: `tail` points at the reserved field of entry 0 inside the ring region, an aligned u16 that the
        // kernel only reads; AtomicU16 has the layout of u16, and the release store orders the entry writes
        // before the kernel can see the new tail.
        let tail = unsafe { &*BufRingEntry::tail(entries).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_keep_a_buffer_out_of_the_ring() {
        let (_buffers, mut pool) = new(16, 2, 256).unwrap();
        assert_eq!(pool.available(), 16);
        pool.taken_by_kernel();
        pool.hold(3);
        pool.hold(3);
        pool.done(3);
        assert_eq!(pool.available(), 15, "two sends still hold it");
        pool.release(3);
        assert_eq!(pool.available(), 15);
        pool.release(3);
        assert_eq!(pool.available(), 16, "back in the ring after the last send");
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn spares_circulate_outside_the_ring() {
        let (buffers, mut pool) = new(16, 2, 256).unwrap();
        let a = pool.take_spare().unwrap();
        let b = pool.take_spare().unwrap();
        assert!(pool.take_spare().is_none());
        // SAFETY: `a` was just taken.
        unsafe { buffers.write(a, b"abc") };
        assert_eq!(buffers.data(a, 3), b"abc");
        assert_eq!(pool.in_use(), 2);
        pool.done(a);
        pool.hold(b);
        pool.release(b);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.available(), 16, "spares never enter the ring");
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(new(12, 0, 256).is_err());
    }
}
