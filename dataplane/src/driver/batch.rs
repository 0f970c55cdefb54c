//! Batched datagram I/O on Linux: `recvmmsg` into preallocated buffers, `sendmmsg` of caller-owned
//! slices, UDP GSO (`UDP_SEGMENT`) on send, and on receive UDP GRO, the socket's receive-queue
//! drop counter (`SO_RXQ_OVFL`) and kernel receive timestamps (`SO_TIMESTAMPNS`).
//!
//! Owns the `mmsghdr`/`iovec`/address/control-message arrays of one batch, all sized once at
//! construction, and the encoding and decoding of the few control messages it uses (decoding is safe code
//! on bytes: [`parse_control`]). All of its `unsafe` stays in this file; every block says which invariant
//! makes it sound.
//!
//! Must never: allocate after construction, block on receive (`MSG_DONTWAIT`), keep a pointer to
//! caller data past the [`SendGuard`] that borrowed it, or look inside a datagram.

use std::ffi::{c_int, c_uint, c_void};
use std::io;
use std::marker::PhantomData;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

use socket2::SockAddr;

/// Most messages one batch holds and most slices one message may have (the kernel's `UIO_MAXIOV`).
pub const MAX_BATCH: usize = 1024;
/// Largest datagram payload UDP can carry (IPv6 jumbograms aside).
pub const MAX_DATAGRAM_BYTES: usize = 65_535;
/// Control-message bytes reserved per received message: room for `SO_RXQ_OVFL`, `UDP_GRO` and
/// `SO_TIMESTAMPNS` with slack for one more option (a unit test checks it is enough).
const RECV_CONTROL_BYTES: usize = 128;

/// A batch size given to a constructor is out of range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} = {value} is out of range {min}..={max}")]
pub struct BatchSizeError {
    /// Which argument: `count`, `buf_bytes`, `capacity` or `max_slices`.
    pub what: &'static str,
    /// The value given.
    pub value: usize,
    /// Smallest accepted value.
    pub min: usize,
    /// Largest accepted value.
    pub max: usize,
}

fn check_size(what: &'static str, value: usize, min: usize, max: usize) -> Result<(), BatchSizeError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(BatchSizeError { what, value, min, max })
    }
}

/// Control-message buffer aligned for `cmsghdr` (the zero-length array forces the alignment).
#[repr(C)]
#[derive(Clone, Copy)]
struct RecvControl {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; RECV_CONTROL_BYTES],
}

/// What one received message turned out to be.
#[derive(Clone, Copy)]
struct RecvMeta {
    len_bytes: usize,
    src: SocketAddr,
    truncated: bool,
    gro_segment_bytes: Option<u16>,
    rx_timestamp_ns: Option<u64>,
}

/// One received datagram, borrowed from a [`RecvBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The bytes received (at most the batch's `buf_bytes`).
    pub data: &'a [u8],
    /// The sender. A socket of a family other than IPv4/IPv6 reports `0.0.0.0:0` (cannot happen on UDP).
    pub src: SocketAddr,
    /// The datagram was longer than the buffer and its tail was cut off (`MSG_TRUNC`).
    pub truncated: bool,
    /// With UDP GRO on, `data` holds several datagrams of this size back to back (the last may be shorter).
    pub gro_segment_bytes: Option<u16>,
    /// With [`enable_rx_timestamps`], when the kernel received it: `CLOCK_REALTIME`, ns since
    /// the Unix epoch.
    pub rx_timestamp_ns: Option<u64>,
}

/// Preallocated state for receiving up to `count` datagrams with one `recvmmsg`.
pub struct RecvBatch {
    buf_bytes: usize,
    data: Box<[u8]>,
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    names: Box<[libc::sockaddr_storage]>,
    controls: Box<[RecvControl]>,
    meta: Box<[RecvMeta]>,
    received: usize,
    rx_queue_overflow: Option<u32>,
}

// SAFETY: the raw pointers inside `hdrs`/`iovs` only ever point into this batch's own heap
// buffers (which do not move with the struct) and are rewritten before every `recvmmsg`; nothing
// is shared with another thread.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Allocates everything for `count` (1..=1024) datagrams of up to `buf_bytes` (1..=65535)
    /// each. With UDP GRO enabled, use 65535 so a coalesced datagram is never cut off.
    pub fn new(count: usize, buf_bytes: usize) -> Result<RecvBatch, BatchSizeError> {
        check_size("count", count, 1, MAX_BATCH)?;
        check_size("buf_bytes", buf_bytes, 1, MAX_DATAGRAM_BYTES)?;
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let meta = RecvMeta {
            len_bytes: 0,
            src: unspecified,
            truncated: false,
            gro_segment_bytes: None,
            rx_timestamp_ns: None,
        };
        Ok(RecvBatch {
            buf_bytes,
            data: vec![0; count * buf_bytes].into_boxed_slice(),
            hdrs: (0..count).map(|_| zeroed_mmsghdr()).collect(),
            iovs: (0..count).map(|_| libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 }).collect(),
            // SAFETY: `sockaddr_storage` is plain integers; all zeroes is a valid value.
            names: (0..count).map(|_| unsafe { std::mem::zeroed() }).collect(),
            controls: vec![RecvControl { _align: [], bytes: [0; RECV_CONTROL_BYTES] }; count].into_boxed_slice(),
            meta: vec![meta; count].into_boxed_slice(),
            received: 0,
            rx_queue_overflow: None,
        })
    }

    /// Receives up to `count` datagrams without blocking. Returns how many arrived: 0 when none
    /// was waiting. Earlier datagrams of this batch are gone after the call.
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.received = 0;
        self.rx_queue_overflow = None;
        let data = self.data.as_mut_ptr();
        for (i, iov) in self.iovs.iter_mut().enumerate() {
            iov.iov_base = data.wrapping_add(i * self.buf_bytes).cast();
            iov.iov_len = self.buf_bytes;
        }
        let (iovs, names, controls) = (self.iovs.as_mut_ptr(), self.names.as_mut_ptr(), self.controls.as_mut_ptr());
        for (i, m) in self.hdrs.iter_mut().enumerate() {
            m.msg_len = 0;
            let h = &mut m.msg_hdr;
            h.msg_name = names.wrapping_add(i).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = iovs.wrapping_add(i);
            h.msg_iovlen = 1;
            h.msg_control = controls.wrapping_add(i).cast();
            h.msg_controllen = RECV_CONTROL_BYTES as _;
            h.msg_flags = 0;
        }
        let received = loop {
            // SAFETY: each of the `hdrs.len()` headers points at its own iovec (one buffer of
            // `buf_bytes` inside `data`), its own `sockaddr_storage` (namelen = its size) and its
            // own cmsghdr-aligned control buffer (controllen = its size). All are owned by `self`,
            // stay allocated and unborrowed for the whole call, and the kernel writes only within
            // those lengths.
            let rc = unsafe {
                libc::recvmmsg(
                    fd.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    self.hdrs.len() as c_uint,
                    libc::MSG_DONTWAIT,
                    ptr::null_mut(),
                )
            };
            if rc >= 0 {
                break rc as usize;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(err),
            }
        };
        for i in 0..received {
            let m = &self.hdrs[i];
            // `msg_controllen` is `size_t` on glibc but `socklen_t` on musl.
            #[allow(clippy::unnecessary_cast)]
            let control_len = m.msg_hdr.msg_controllen as usize;
            let control = parse_control(&self.controls[i].bytes[..control_len.min(RECV_CONTROL_BYTES)]);
            if let Some(dropped) = control.rx_queue_overflow {
                self.rx_queue_overflow = Some(self.rx_queue_overflow.map_or(dropped, |d| d.max(dropped)));
            }
            self.meta[i] = RecvMeta {
                len_bytes: (m.msg_len as usize).min(self.buf_bytes),
                src: decode_source(&self.names[i]),
                truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                gro_segment_bytes: control.gro_segment_bytes,
                rx_timestamp_ns: control.rx_timestamp_ns,
            };
        }
        self.received = received;
        Ok(received)
    }

    /// How many datagrams the last [`recv`](Self::recv) returned.
    pub fn len(&self) -> usize {
        self.received
    }

    /// Whether the last [`recv`](Self::recv) returned nothing.
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// Datagram `i` of the last batch.
    ///
    /// # Panics
    /// If `i >= self.len()`: a caller bug, never caused by input.
    pub fn datagram(&self, i: usize) -> Datagram<'_> {
        assert!(i < self.received, "datagram {i} of a batch of {}", self.received);
        let meta = &self.meta[i];
        let start = i * self.buf_bytes;
        Datagram {
            data: &self.data[start..start + meta.len_bytes],
            src: meta.src,
            truncated: meta.truncated,
            gro_segment_bytes: meta.gro_segment_bytes,
            rx_timestamp_ns: meta.rx_timestamp_ns,
        }
    }

    /// The datagrams of the last batch, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'_>> + '_ {
        (0..self.received).map(|i| self.datagram(i))
    }

    /// The kernel's cumulative count of datagrams this socket dropped because its receive queue
    /// was full, as of the last batch (highest value carried by its `SO_RXQ_OVFL` messages).
    /// `None` when the option is off or nothing has been dropped yet.
    pub fn rx_queue_overflow(&self) -> Option<u32> {
        self.rx_queue_overflow
    }
}

/// What the control messages of one received message say (only the options this module enables).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlInfo {
    /// `UDP_GRO`: the size of the coalesced segments (a positive size only).
    pub gro_segment_bytes: Option<u16>,
    /// `SO_RXQ_OVFL`: the socket's cumulative drop count.
    pub rx_queue_overflow: Option<u32>,
    /// `SO_TIMESTAMPNS`: the kernel's receive time, ns since the Unix epoch (none if it does not fit a `u64`).
    pub rx_timestamp_ns: Option<u64>,
}

/// Decodes the control messages the kernel wrote into `control` (the first `msg_controllen` bytes of a message's
/// control buffer), on bytes: a `cmsghdr` chain laid out as `CMSG_FIRSTHDR`/`CMSG_NXTHDR` walk it (each header at
/// a `CMSG_ALIGN`ed offset, its data after the aligned header). A message is read only when it lies wholly inside
/// `control` and its length covers its header; the walk stops at the first that does not (the kernel never
/// writes one: it cuts `cmsg_len` to what fits and sets `MSG_CTRUNC`). Unknown messages are skipped. Never
/// panics nor reads outside `control`, whatever its bytes (the `recvmsg` fuzz target checks it).
pub fn parse_control(control: &[u8]) -> ControlInfo {
    let mut info = ControlInfo::default();
    let header_bytes = cmsg_align(size_of::<libc::cmsghdr>());
    let mut at = 0usize;
    while let Some(header) = at.checked_add(size_of::<libc::cmsghdr>()).and_then(|end| control.get(at..end)) {
        let Some(cmsg_len) = read_ne_unsigned(header, std::mem::offset_of!(libc::cmsghdr, cmsg_len), CMSG_LEN_BYTES)
        else {
            break;
        };
        let level = read_ne_signed(header, std::mem::offset_of!(libc::cmsghdr, cmsg_level), size_of::<c_int>());
        let kind = read_ne_signed(header, std::mem::offset_of!(libc::cmsghdr, cmsg_type), size_of::<c_int>());
        let Some(end) = usize::try_from(cmsg_len).ok().and_then(|len| at.checked_add(len)) else {
            break;
        };
        if cmsg_len < header_bytes as u64 || end > control.len() {
            break;
        }
        let data = &control[at + header_bytes..end];
        match (level.map(|l| l as c_int), kind.map(|k| k as c_int)) {
            (Some(libc::SOL_UDP), Some(libc::UDP_GRO)) => {
                if let Some(segment) = read_ne_signed(data, 0, size_of::<c_int>()) {
                    info.gro_segment_bytes = u16::try_from(segment).ok().filter(|&s| s > 0);
                }
            }
            (Some(libc::SOL_SOCKET), Some(libc::SCM_TIMESTAMPNS)) => {
                let seconds = read_ne_signed(data, std::mem::offset_of!(libc::timespec, tv_sec), TIME_T_BYTES);
                let nanos = read_ne_signed(data, std::mem::offset_of!(libc::timespec, tv_nsec), C_LONG_BYTES);
                if let (Some(seconds), Some(nanos)) = (seconds, nanos) {
                    let ns = u64::try_from(seconds).ok().and_then(|s| s.checked_mul(1_000_000_000));
                    info.rx_timestamp_ns = ns.and_then(|ns| ns.checked_add(u64::try_from(nanos).ok()?));
                }
            }
            (Some(libc::SOL_SOCKET), Some(libc::SO_RXQ_OVFL)) => {
                if let Some(dropped) = read_ne_unsigned(data, 0, size_of::<u32>()) {
                    info.rx_queue_overflow = u32::try_from(dropped).ok();
                }
            }
            _ => {}
        }
        match end.checked_next_multiple_of(CMSG_ALIGN_BYTES) {
            Some(next) => at = next,
            None => break,
        }
    }
    info
}

/// Control messages are aligned to this (`CMSG_ALIGN`: the size of `size_t`).
const CMSG_ALIGN_BYTES: usize = size_of::<usize>();
/// Bytes of `cmsghdr::cmsg_len`: the kernel's `size_t` (musl declares a `socklen_t` and pads it to the same
/// size), so everything up to `cmsg_level`.
const CMSG_LEN_BYTES: usize =
    std::mem::offset_of!(libc::cmsghdr, cmsg_level) - std::mem::offset_of!(libc::cmsghdr, cmsg_len);
/// Bytes of `timespec::tv_sec`.
const TIME_T_BYTES: usize = size_of::<libc::time_t>();
/// Bytes of `timespec::tv_nsec`.
const C_LONG_BYTES: usize = size_of::<libc::c_long>();

fn cmsg_align(len: usize) -> usize {
    len.next_multiple_of(CMSG_ALIGN_BYTES)
}

/// The native-endian unsigned integer of `size` (4 or 8) bytes at `at` of `bytes`, if they are there.
fn read_ne_unsigned(bytes: &[u8], at: usize, size: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(size)?)?;
    match size {
        4 => Some(u64::from(u32::from_ne_bytes(field.try_into().ok()?))),
        8 => Some(u64::from_ne_bytes(field.try_into().ok()?)),
        _ => None,
    }
}

/// The native-endian signed integer of `size` (4 or 8) bytes at `at` of `bytes`, if they are there.
fn read_ne_signed(bytes: &[u8], at: usize, size: usize) -> Option<i64> {
    let field = bytes.get(at..at.checked_add(size)?)?;
    match size {
        4 => Some(i64::from(i32::from_ne_bytes(field.try_into().ok()?))),
        8 => Some(i64::from_ne_bytes(field.try_into().ok()?)),
        _ => None,
    }
}

fn decode_source(name: &libc::sockaddr_storage) -> SocketAddr {
    match c_int::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`; `sockaddr_storage` is
            // large enough and aligned for it.
            let a = unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a `sockaddr_in6`; `sockaddr_storage` is
            // large enough and aligned for it.
            let a = unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id))
        }
        _ => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
    }
}

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: `mmsghdr` is integers and raw pointers; all zeroes (null pointers, zero lengths)
    // is a valid value.
    unsafe { std::mem::zeroed() }
}

/// `UDP_SEGMENT` control message: header then the segment size, laid out as `CMSG_DATA` expects
/// (a unit test checks the offset against the libc macros).
#[repr(C)]
#[derive(Clone, Copy)]
struct SegmentControl {
    hdr: libc::cmsghdr,
    segment_bytes: u16,
}

/// What happened to one message of the last [`SendGuard::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// The kernel accepted it.
    Sent,
    /// The kernel refused it with this `errno` (e.g. `EMSGSIZE`, `EINVAL` for a bad segment size).
    Failed(i32),
    /// Not attempted: the socket's send buffer was full (`EAGAIN` on a non-blocking socket).
    WouldBlock,
}

/// Totals of one [`SendGuard::send`]; `sent + failed + would_block` is the number pushed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Messages the kernel accepted.
    pub sent: usize,
    /// Messages refused one by one (see [`SendBatch::status`]).
    pub failed: usize,
    /// Messages left unsent because the socket would block.
    pub would_block: usize,
}

/// Preallocated state for sending up to `capacity` messages, each of up to `max_slices`
/// caller-owned slices, with one `sendmmsg` (more when the kernel takes fewer at a time).
///
/// Fill it through the guard [`begin`](Self::begin) returns: the guard borrows the slices for
/// `'data` and is consumed by [`SendGuard::send`], so no pointer to them outlives the borrow.
///
/// ```no_run
/// # use ringfwd_dataplane::driver::batch::SendBatch;
/// # use std::os::fd::AsFd;
/// # let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// # let dest = "127.0.0.1:9".parse().unwrap();
/// let mut batch = SendBatch::new(64, 2).unwrap();
/// let mut headers = [[0u8; 12]; 64]; // a header slab, one slot per message
/// let payload = [0u8; 160];
/// let mut slots = headers.iter_mut();
/// let mut guard = batch.begin();
/// for _ in 0..4 {
///     let Some(header) = slots.next() else { break };
///     header[0] = 0x80; // ... rewrite the header in its slot, then lend it to the batch
///     let header: &[u8] = header;
///     guard.push(dest, &[header, &payload], None);
/// }
/// let report = guard.send(socket.as_fd()).unwrap();
/// ```
pub struct SendBatch {
    max_slices: usize,
    len: usize,
    sent_len: usize,
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    iov_counts: Box<[usize]>,
    dests: Box<[SockAddr]>,
    controls: Box<[SegmentControl]>,
    segmented: Box<[bool]>,
    status: Box<[MessageStatus]>,
}

// SAFETY: the raw pointers inside `hdrs`/`iovs` are dereferenced only by `sendmmsg` within
// `SendGuard::send`, which rewrites them from live borrows first; stale ones are never read.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// Allocates everything for `capacity` (1..=1024) messages of up to `max_slices` (1..=1024)
    /// slices each. For GSO, a message of n segments of [header, payload] needs 2n slices.
    pub fn new(capacity: usize, max_slices: usize) -> Result<SendBatch, BatchSizeError> {
        check_size("capacity", capacity, 1, MAX_BATCH)?;
        check_size("max_slices", max_slices, 1, MAX_BATCH)?;
        let mut template = SegmentControl { hdr: zeroed_cmsghdr(), segment_bytes: 0 };
        template.hdr.cmsg_level = libc::SOL_UDP;
        template.hdr.cmsg_type = libc::UDP_SEGMENT;
        // SAFETY: CMSG_LEN only does arithmetic on its argument.
        template.hdr.cmsg_len = unsafe { libc::CMSG_LEN(size_of::<u16>() as c_uint) } as _;
        let nowhere = SockAddr::from(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        Ok(SendBatch {
            max_slices,
            len: 0,
            sent_len: 0,
            hdrs: (0..capacity).map(|_| zeroed_mmsghdr()).collect(),
            iovs: (0..capacity * max_slices).map(|_| libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 }).collect(),
            iov_counts: vec![0; capacity].into_boxed_slice(),
            dests: (0..capacity).map(|_| nowhere.clone()).collect(),
            controls: vec![template; capacity].into_boxed_slice(),
            segmented: vec![false; capacity].into_boxed_slice(),
            status: vec![MessageStatus::WouldBlock; capacity].into_boxed_slice(),
        })
    }

    /// Starts a new batch (the previous one is forgotten) whose slices must live for `'data`.
    pub fn begin<'data>(&mut self) -> SendGuard<'_, 'data> {
        self.len = 0;
        SendGuard { batch: self, _data: PhantomData }
    }

    /// Messages one batch can hold.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Number of messages of the last sent batch.
    pub fn last_len(&self) -> usize {
        self.sent_len
    }

    /// What happened to message `i` (in push order) of the last sent batch; `None` past its end.
    pub fn status(&self, i: usize) -> Option<MessageStatus> {
        self.status[..self.sent_len].get(i).copied()
    }
}

/// A batch being filled; borrows its slices for `'data`. Dropping it sends nothing.
pub struct SendGuard<'b, 'data> {
    batch: &'b mut SendBatch,
    _data: PhantomData<&'data [u8]>,
}

impl<'data> SendGuard<'_, 'data> {
    /// Adds one datagram to `dest`, made of `slices` back to back (nothing is copied). With
    /// `segment_bytes`, the kernel splits it into datagrams of that size (UDP GSO; the last may
    /// be shorter). Returns false, adding nothing, when the batch is full or there are more than
    /// `max_slices` slices.
    pub fn push(&mut self, dest: SocketAddr, slices: &[&'data [u8]], segment_bytes: Option<u16>) -> bool {
        let b = &mut *self.batch;
        let i = b.len;
        if i >= b.hdrs.len() || slices.len() > b.max_slices {
            return false;
        }
        let iovs = &mut b.iovs[i * b.max_slices..][..slices.len()];
        for (iov, slice) in iovs.iter_mut().zip(slices) {
            // The kernel only reads through this pointer (sendmmsg).
            iov.iov_base = slice.as_ptr() as *mut c_void;
            iov.iov_len = slice.len();
        }
        b.iov_counts[i] = slices.len();
        b.dests[i] = SockAddr::from(dest);
        b.segmented[i] = false;
        if let Some(segment) = segment_bytes.filter(|&s| s > 0) {
            b.controls[i].segment_bytes = segment;
            b.segmented[i] = true;
        }
        b.len += 1;
        true
    }

    /// Messages pushed so far.
    pub fn len(&self) -> usize {
        self.batch.len
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.batch.len == 0
    }

    /// Whether another push would be refused for lack of room.
    pub fn is_full(&self) -> bool {
        self.batch.len == self.batch.hdrs.len()
    }

    /// Sends every pushed message, calling `sendmmsg` again for the rest when the kernel takes
    /// fewer, skipping (and recording) each message it refuses. Honours the socket's blocking
    /// mode; on a non-blocking socket, `EAGAIN` leaves the rest as [`MessageStatus::WouldBlock`].
    /// Errors only for faults of the socket itself (`EBADF`, `ENOTSOCK`, `EFAULT`).
    pub fn send(self, fd: BorrowedFd<'_>) -> io::Result<SendReport> {
        let b = self.batch;
        let len = b.len;
        b.sent_len = len;
        let (iovs, controls) = (b.iovs.as_mut_ptr(), b.controls.as_mut_ptr());
        let space = send_control_space();
        for (i, m) in b.hdrs[..len].iter_mut().enumerate() {
            m.msg_len = 0;
            let h = &mut m.msg_hdr;
            // The kernel only reads the destination (sendmmsg).
            h.msg_name = b.dests[i].as_ptr() as *mut c_void;
            h.msg_namelen = b.dests[i].len();
            h.msg_iov = iovs.wrapping_add(i * b.max_slices);
            h.msg_iovlen = b.iov_counts[i] as _;
            let (control, control_len) =
                if b.segmented[i] { (controls.wrapping_add(i).cast(), space) } else { (ptr::null_mut(), 0) };
            h.msg_control = control;
            h.msg_controllen = control_len as _;
            h.msg_flags = 0;
        }
        b.status[..len].fill(MessageStatus::WouldBlock);
        let mut report = SendReport::default();
        let mut next = 0;
        while next < len {
            // SAFETY: headers `next..len` were just set: each points at its destination in
            // `dests`, at `iov_counts[i]` iovecs in `iovs` whose bases are slices borrowed for
            // `'data` (alive: this guard is), and at its `SegmentControl` (or none). The kernel
            // only reads those and writes `msg_len`; nothing else touches them during the call.
            let rc = unsafe {
                libc::sendmmsg(fd.as_raw_fd(), b.hdrs.as_mut_ptr().wrapping_add(next), (len - next) as c_uint, 0)
            };
            if rc > 0 {
                let sent = rc as usize;
                b.status[next..next + sent].fill(MessageStatus::Sent);
                report.sent += sent;
                next += sent;
                continue;
            }
            let err = if rc == 0 { io::Error::from_raw_os_error(libc::EIO) } else { io::Error::last_os_error() };
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => {
                    report.would_block = len - next;
                    break;
                }
                Some(libc::EBADF | libc::ENOTSOCK | libc::EFAULT) => return Err(err),
                errno => {
                    b.status[next] = MessageStatus::Failed(errno.unwrap_or(libc::EIO));
                    report.failed += 1;
                    next += 1;
                }
            }
        }
        Ok(report)
    }
}

/// Control bytes one `UDP_SEGMENT` message occupies (`CMSG_SPACE(2)`).
fn send_control_space() -> usize {
    // SAFETY: CMSG_SPACE only does arithmetic on its argument.
    unsafe { libc::CMSG_SPACE(size_of::<u16>() as c_uint) as usize }
}

fn zeroed_cmsghdr() -> libc::cmsghdr {
    // SAFETY: `cmsghdr` is plain integers; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Turns on `SO_RXQ_OVFL`: each received batch then reports the socket's drop counter
/// ([`RecvBatch::rx_queue_overflow`]).
pub fn enable_rx_queue_overflow(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)
}

/// Turns on `SO_TIMESTAMPNS`: each received datagram then carries the kernel's receive time
/// ([`Datagram::rx_timestamp_ns`]).
pub fn enable_rx_timestamps(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// Turns on UDP GRO: the kernel may hand over runs of equal-size datagrams from one sender as one
/// buffer ([`Datagram::gro_segment_bytes`]). Fails on kernels before 5.0.
pub fn enable_udp_gro(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(fd, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Whether this socket can send with UDP GSO (`UDP_SEGMENT`, Linux 4.18+).
pub fn udp_gso_supported(fd: BorrowedFd<'_>) -> bool {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes passed; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_UDP, libc::UDP_SEGMENT, (&mut value as *mut c_int).cast(), &mut len)
    };
    rc == 0
}

fn set_int_option(fd: BorrowedFd<'_>, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    super::socket::set_int(&fd, level, name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_control_matches_the_cmsg_layout() {
        let control = SegmentControl { hdr: zeroed_cmsghdr(), segment_bytes: 0 };
        let base = &control as *const SegmentControl;
        // SAFETY: CMSG_DATA only computes an address from the header pointer.
        let data = unsafe { libc::CMSG_DATA(base.cast()) };
        assert_eq!(data as usize - base as usize, std::mem::offset_of!(SegmentControl, segment_bytes));
        assert!(size_of::<SegmentControl>() >= send_control_space());
    }

    #[test]
    fn recv_control_space_fits_the_options_we_enable() {
        // SAFETY: CMSG_SPACE only does arithmetic on its argument.
        let needed = unsafe {
            libc::CMSG_SPACE(4)
                + libc::CMSG_SPACE(size_of::<c_int>() as c_uint)
                + libc::CMSG_SPACE(size_of::<libc::timespec>() as c_uint)
        } as usize;
        assert!(RECV_CONTROL_BYTES >= needed + 32, "{RECV_CONTROL_BYTES} < {needed} + slack");
    }

    /// One control message as the kernel writes it: `CMSG_LEN` in the header, padded to `CMSG_SPACE`.
    fn cmsg(level: c_int, kind: c_int, data: &[u8]) -> Vec<u8> {
        let mut header = zeroed_cmsghdr();
        header.cmsg_level = level;
        header.cmsg_type = kind;
        // SAFETY: CMSG_LEN and CMSG_SPACE only do arithmetic on their argument.
        let (len, space) = unsafe { (libc::CMSG_LEN(data.len() as c_uint), libc::CMSG_SPACE(data.len() as c_uint)) };
        header.cmsg_len = len as _;
        // SAFETY: `cmsghdr` is plain integers; its bytes are initialised (zeroed, then set).
        let bytes =
            unsafe { std::slice::from_raw_parts((&header as *const libc::cmsghdr).cast::<u8>(), size_of_val(&header)) };
        let mut out = bytes.to_vec();
        out.extend_from_slice(data);
        out.resize(space as usize, 0);
        out
    }

    #[test]
    fn parse_control_reads_the_kernel_layout_and_stops_at_garbage() {
        let ts = libc::timespec { tv_sec: 1_700_000_000, tv_nsec: 5 };
        let mut ts_bytes = ts.tv_sec.to_ne_bytes().to_vec();
        ts_bytes.extend_from_slice(&ts.tv_nsec.to_ne_bytes());
        let mut control = cmsg(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &7u32.to_ne_bytes());
        control.extend(cmsg(libc::SOL_SOCKET, 9999, &[1, 2, 3])); // unknown: skipped
        control.extend(cmsg(libc::SOL_UDP, libc::UDP_GRO, &1200i32.to_ne_bytes()));
        control.extend(cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &ts_bytes));
        let all = ControlInfo {
            gro_segment_bytes: Some(1200),
            rx_queue_overflow: Some(7),
            rx_timestamp_ns: Some(1_700_000_000_000_000_005),
        };
        assert_eq!(parse_control(&control), all);
        // The walk stops at a message that does not fit, and reads nothing past the slice.
        let cut = control.len() - 1;
        assert_eq!(parse_control(&control[..cut]), ControlInfo { rx_timestamp_ns: None, ..all });
        assert_eq!(parse_control(&[]), ControlInfo::default());
        let mut bad_len = control.clone();
        bad_len[..CMSG_LEN_BYTES].fill(0xff); // cmsg_len = size_t::MAX
        assert_eq!(parse_control(&bad_len), ControlInfo::default());
        let mut short_len = control.clone();
        short_len[..CMSG_LEN_BYTES].fill(0); // shorter than its header
        assert_eq!(parse_control(&short_len), ControlInfo::default());
        let negative = cmsg(libc::SOL_UDP, libc::UDP_GRO, &(-1i32).to_ne_bytes());
        assert_eq!(parse_control(&negative).gro_segment_bytes, None);
    }

    #[test]
    fn sizes_out_of_range_are_refused_by_name() {
        assert_eq!(RecvBatch::new(0, 1500).err().map(|e| e.what), Some("count"));
        assert_eq!(RecvBatch::new(8, 70_000).err().map(|e| e.what), Some("buf_bytes"));
        assert_eq!(SendBatch::new(2000, 2).err().map(|e| e.what), Some("capacity"));
        let err = SendBatch::new(8, 0).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("max_slices = 0 is out of range 1..=1024"));
    }

    #[test]
    fn push_refuses_when_full_or_too_many_slices() {
        let mut batch = SendBatch::new(2, 2).unwrap();
        let dest = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        let bytes = [1u8; 4];
        let mut guard = batch.begin();
        assert!(!guard.push(dest, &[&bytes, &bytes, &bytes], None));
        assert!(guard.push(dest, &[&bytes], None));
        assert!(guard.push(dest, &[&bytes, &bytes], Some(2)));
        assert!(guard.is_full());
        assert!(!guard.push(dest, &[&bytes], None));
        assert_eq!(guard.len(), 2);
    }

    #[test]
    fn decode_source_handles_both_families() {
        let v4: SocketAddr = "127.0.0.7:5004".parse().unwrap();
        let v6: SocketAddr = "[::1]:6000".parse().unwrap();
        for addr in [v4, v6] {
            let encoded = SockAddr::from(addr);
            // SAFETY: SockAddr's storage is a `sockaddr_storage` (socket2 documents the layout).
            let storage = unsafe { &*encoded.as_ptr().cast::<libc::sockaddr_storage>() };
            assert_eq!(decode_source(storage), addr);
        }
    }
}
