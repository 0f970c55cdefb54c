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
//! A buffer out of the ring is held through [`Buf`] handles: move-only (neither `Copy` nor `Clone`), made only
//! by the pool (from a receive completion, a taken spare, or [`PoolState::share`] for one more holder), and
//! given back with [`PoolState::recycle`], which consumes the handle: a double recycle does not compile, and a
//! buffer goes back to the ring (or the spares) when its last handle is recycled. Buffer ids never leave this
//! module; the bytes of a buffer are reachable only through a handle.
//!
//! Must never: hand out a slice of a buffer that is in the ring, let a buffer be written while another handle
//! to it lives, or free its memory while the ring is registered (the owning io_uring is dropped first).

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

    /// The first `len` bytes (at most the buffer's size) of the buffer `buf` holds.
    pub fn data(&self, buf: &Buf, len: usize) -> &[u8] {
        let len = len.min(self.buffer_bytes);
        // SAFETY: handles are made only for ids in range (`PoolState` checks), so the slice lies inside the
        // region. A handle exists only for a buffer out of the ring, which the kernel does not write; safe code
        // writes buffer memory only through `PoolState::fill`, which requires the sole handle, borrowed
        // exclusively for the copy, so no slice from here is alive during a write.
        unsafe {
            std::slice::from_raw_parts(self.region.ptr.as_ptr().add(usize::from(buf.id) * self.buffer_bytes), len)
        }
    }

    /// Pointer to byte `offset` of the buffer `buf` holds, for an iovec (valid while a handle to it lives).
    pub fn ptr(&self, buf: &Buf, offset: usize) -> *const u8 {
        self.ptr_of(buf.id, offset)
    }

    fn ptr_of(&self, bid: u16, offset: usize) -> *const u8 {
        debug_assert!(usize::from(bid) < self.total && offset <= self.buffer_bytes);
        self.region.ptr.as_ptr().wrapping_add(usize::from(bid) * self.buffer_bytes + offset)
    }
}

/// A hold on one pool buffer out of the ring: move-only; given back with [`PoolState::recycle`] (see the module
/// doc). Dropping a handle without recycling it keeps its buffer out of the pool for good.
///
/// Giving one back twice does not compile:
///
/// ```compile_fail,E0382
/// let (_buffers, mut pool) = ringfwd_dataplane::driver::pool::new(16, 1, 256).unwrap();
/// let buf = pool.take_spare().unwrap();
/// pool.recycle(buf);
/// pool.recycle(buf); // use of a moved handle
/// ```
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a buffer handle must be given back with PoolState::recycle"]
pub struct Buf {
    id: u16,
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
    /// Live handles per buffer (0: in the ring or among the spares).
    refs: Vec<u16>,
    /// Per ring buffer: the kernel may pick it (given back and not yet reported received).
    in_kernel: Vec<bool>,
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
        base: buffers.ptr_of(0, 0),
        buffer_bytes,
        count,
        mask: count - 1,
        tail: 0,
        in_ring: 0,
        refs: vec![0; total],
        in_kernel: vec![false; usize::from(count)],
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
    pub fn take_spare(&mut self) -> Option<Buf> {
        let id = self.spares.pop()?;
        self.refs[usize::from(id)] = 1;
        Some(Buf { id })
    }

    /// The handle of ring buffer `bid`, which a receive completion reported filled; `None` when `bid` is not a
    /// ring buffer the kernel held (out of range, or already out of the ring).
    pub fn received(&mut self, bid: u16) -> Option<Buf> {
        let held = self.in_kernel.get_mut(usize::from(bid))?;
        if !*held {
            return None;
        }
        *held = false;
        self.in_ring = self.in_ring.saturating_sub(1);
        self.refs[usize::from(bid)] = 1;
        Some(Buf { id: bid })
    }

    /// One more handle to the buffer `buf` holds (for a send that references it).
    pub fn share(&mut self, buf: &Buf) -> Buf {
        let refs = &mut self.refs[usize::from(buf.id)];
        *refs = refs.saturating_add(1);
        Buf { id: buf.id }
    }

    /// Gives a handle back; its buffer returns to the ring (or the spares) with its last handle.
    pub fn recycle(&mut self, buf: Buf) {
        let refs = &mut self.refs[usize::from(buf.id)];
        *refs = refs.saturating_sub(1);
        if *refs == 0 {
            if buf.id >= self.count {
                self.spares.push(buf.id);
            } else {
                self.give_back(buf.id);
            }
        }
    }

    /// Copies `bytes` to the start of the buffer `buf` holds; false (nothing written) when another handle to it
    /// lives (a send may read it) or `bytes` does not fit.
    pub fn fill(&mut self, buffers: &mut Buffers, buf: &Buf, bytes: &[u8]) -> bool {
        if self.refs[usize::from(buf.id)] != 1 || bytes.len() > buffers.buffer_bytes {
            return false;
        }
        let to = buffers.ptr_of(buf.id, 0) as *mut u8;
        // SAFETY: in range (handles are made only for valid ids) and `bytes` fits one buffer (checked); `buf` is
        // the only handle to the buffer (checked), so no send references it, and `buffers` is borrowed exclusively,
        // so no slice of it from `Buffers::data` is alive; the source is caller memory, never this buffer.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), to, bytes.len()) }
        true
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
        self.in_kernel[usize::from(bid)] = true;
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
    fn handles_keep_a_buffer_out_of_the_ring() {
        let (_buffers, mut pool) = new(16, 2, 256).unwrap();
        assert_eq!(pool.available(), 16);
        let rx = pool.received(3).expect("a ring buffer");
        assert!(pool.received(3).is_none(), "reported twice");
        assert!(pool.received(99).is_none(), "out of range");
        let (a, b) = (pool.share(&rx), pool.share(&rx));
        pool.recycle(rx);
        assert_eq!(pool.available(), 15, "two sends still hold it");
        pool.recycle(a);
        assert_eq!(pool.available(), 15);
        pool.recycle(b);
        assert_eq!(pool.available(), 16, "back in the ring with the last handle");
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn spares_circulate_outside_the_ring() {
        let (mut buffers, mut pool) = new(16, 2, 256).unwrap();
        let a = pool.take_spare().unwrap();
        let b = pool.take_spare().unwrap();
        assert!(pool.take_spare().is_none());
        assert!(pool.fill(&mut buffers, &a, b"abc"));
        assert_eq!(buffers.data(&a, 3), b"abc");
        let shared = pool.share(&a);
        assert!(!pool.fill(&mut buffers, &a, b"xyz"), "a send may read it");
        assert!(!pool.fill(&mut buffers, &b, &[0; 257]), "does not fit");
        assert_eq!(buffers.data(&shared, 3), b"abc");
        assert_eq!(pool.in_use(), 2);
        pool.recycle(a);
        pool.recycle(shared);
        pool.recycle(b);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.available(), 16, "spares never enter the ring");
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(new(12, 0, 256).is_err());
    }
}
