//! The io_uring backend: one ring per worker, multishot receive over a provided-buffer ring, zero-copy fanout
//! with UDP GSO, one submit per loop iteration.
//!
//! Owns the ring, the worker's packet pool, its send slots (see [`send`]) and its sockets' I/O (the sockets are
//! registered files: a request names its socket by index, so the kernel neither looks up nor reference-counts its
//! file per request): a multishot `RecvMsgMulti` armed per media socket, a read of the worker's wake-up eventfd, and one timeout request that
//! wakes a blocked wait by the loop's deadline (armed once per deadline, not per wait: see
//! `UringBackend::arm_deadline`). The worker loop
//! (`runtime::Worker`) drives it through [`Backend`]: `wait` submits once and waits, `next` hands out each
//! received datagram (send completions are handled inside: buffers released, errors counted, a send failed by
//! another destination's ICMP error retried once after the error queue was read), `transmit` queues the core's
//! transmits, `flush` puts them on the submission queue. A blocking wait uses the kernel's minimum-wait timeout
//! (the batch window the loop chose from the arrival rate; none while traffic is light): completions that arrive within the window after the wait
//! began are reaped together when it ends, and one arriving after it wakes the worker at once (the kernel then
//! wants only one). So a loaded worker wakes about once per window rather than once per arrival — a sleep/wake
//! costs ~5 µs of CPU here, about as much as forwarding a datagram — and packets to one destination from several streams meet in one iteration and
//! leave in one GSO send.
//! A worker that is behind does not linger: after an iteration that received a quarter of its pool's buffers
//! or more, or ran out of buffers, [`Backend::behind`] says so and the loop waits for the first completion only (the queued datagrams are batch
//! enough, and a window then would only let the socket's queue grow). `ENOBUFS` (every buffer in flight) ends a
//! multishot receive; it is re-armed as soon as buffers return, and nothing is lost meanwhile: the datagrams
//! wait in the socket's receive queue, whose overflow the kernel counts (read into `kernel_rx_dropped`).
//!
//! On stop: cancel the receives and the wake-up read; the loop processes what was already received and waits
//! until [`Backend::quiet`]. Dropping the backend drops the ring before the memory it refers to, and leaks that
//! memory instead when sends are still in flight (the kernel may still read it).
//!
//! Never imports the runtime or the forwarder: it only does I/O.

pub mod recv;
pub mod send;

use std::io;
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use io_uring::{cqueue, opcode, types, IoUring};

use self::send::{push, SendDone, TxQueue, SEND_TAG};
use super::backend::{Backend, Event, Wait};
use super::errqueue;
use super::pool::{self, Buf, Buffers, PoolState};
use crate::core::{Counters, Transmit};

const RECV_TAG: u64 = 1 << 61;
const WAKE_TAG: u64 = 1 << 60;
const CANCEL_TAG: u64 = 1 << 59;
const TIMER_TAG: u64 = 1 << 58;
const BUFFER_GROUP: u16 = 0;
/// Completions a batching wait asks for beyond those already posted. With `DEFER_TASKRUN` the kernel wakes a
/// waiter by pending task-work items, one per armed request however many datagrams wait behind it, so two more
/// keep the worker asleep until the window ends. Not more: the count also sets how much task work the kernel
/// runs per wait, and with 32 or 1024 a keyframe storm was pulled in one gulp and overflowed the socket
/// (capacity-video at 112 calls: 1.1% loss with 32, none with 2, at the same CPU per copy on the conference
/// bench).
const BATCH_WANT: usize = 2;
/// Unreachable destinations one wait may report (more are dropped: the next send to them reports them again).
const UNREACHABLE_REPORTS: usize = 64;

/// What the io_uring backend is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UringSettings {
    /// Ring buffers in the pool (a power of two).
    pub pool_buffers: u16,
    /// Buffers outside the ring, for copies the core assembles and datagrams other workers hand over.
    pub spare_buffers: u16,
    /// Bytes per pool buffer.
    pub buffer_bytes: usize,
    /// Largest datagram accepted (a buffer must hold the receive header and one such datagram).
    pub max_packet_bytes: usize,
    /// In-flight send operations.
    pub send_slots: usize,
    /// Packets per GSO send at most (1 disables GSO).
    pub gso_max_segments: usize,
}

/// A received (or copied-in) datagram: the handle on its buffer and where it lies in it.
#[derive(Debug)]
pub struct UringRx {
    buf: Buf,
    offset: usize,
    len: usize,
}

/// One worker's io_uring I/O. The ring is dropped before the memory it refers to (see `Drop`).
pub struct UringBackend {
    ring: ManuallyDrop<IoUring>,
    buffers: ManuallyDrop<Buffers>,
    pool: ManuallyDrop<PoolState>,
    tx: ManuallyDrop<TxQueue>,
    msghdr: ManuallyDrop<Box<libc::msghdr>>,
    wake_buf: ManuallyDrop<Box<[u8; 8]>>,
    sockets: Vec<OwnedFd>,
    wake: OwnedFd,
    /// The worker's sockets as registered files (index = socket index): no file lookup per request.
    fds: Vec<types::Fixed>,
    recv_armed: Vec<bool>,
    wake_armed: bool,
    /// When the timeout on the ring fires, if one is armed (see [`UringBackend::arm_deadline`]).
    deadline: Option<Instant>,
    /// Its relative time, read by the kernel when the timeout (or its update) is submitted.
    deadline_spec: Box<types::Timespec>,
    stopping: bool,
    /// Completions the last wait reaped (and those reaped mid-batch), and how far `next` got.
    cqes: Vec<(u64, i32, u32)>,
    cursor: usize,
    /// Destinations the error queues reported unreachable, not yet handed out by `next`.
    unreachable: Vec<(SocketAddr, i32)>,
    error_log_budget: u32,
    /// Scratch for reading the sockets' ICMP error queues.
    err_payload: Box<[u8; 256]>,
    err_control: Box<[u8; errqueue::CONTROL_BYTES]>,
    /// Datagrams received since the last wait, and whether a receive ended since (the buffers ran out, or the
    /// kernel ended the multishot receive, as it does at a zero-length datagram): a backend that is behind, or
    /// whose receive was just re-armed, skips the window (else every ended receive would cost a whole window, and
    /// a flood of empty datagrams would starve the socket).
    received: usize,
    receive_ended: bool,
    pool_buffers: u16,
    low_water: usize,
    min_timeout: bool,
    worker: usize,
}

impl UringBackend {
    /// The backend of worker `worker` on `sockets` (its socket on each address, in order), woken by the eventfd
    /// `wake`.
    pub fn new(worker: usize, sockets: Vec<OwnedFd>, wake: OwnedFd, s: UringSettings) -> io::Result<UringBackend> {
        if s.buffer_bytes < recv::HEADER_BYTES + s.max_packet_bytes {
            let msg = format!(
                "pool.buffer_bytes {} cannot hold the {}-byte receive header and a {}-byte datagram",
                s.buffer_bytes,
                recv::HEADER_BYTES,
                s.max_packet_bytes
            );
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        let (buffers, pool) = pool::new(s.pool_buffers, s.spare_buffers, s.buffer_bytes)?;
        let cq_entries = (u32::from(s.pool_buffers) * 2 + s.send_slots as u32).next_power_of_two().clamp(1024, 65536);
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(cq_entries)
            .build(1024)
            .map_err(|e| {
                let hint = "io_uring with SINGLE_ISSUER|DEFER_TASKRUN needs Linux >= 6.1; set media.driver = \"mmsg\"";
                io::Error::new(e.kind(), format!("io_uring setup: {e} ({hint})"))
            })?;
        // SAFETY: the ring memory belongs to `pool`, which the backend keeps alive (and unmoved: it is heap memory)
        // until after the io_uring is dropped (`Drop` drops the ring first, and leaks the pool if sends are still
        // in flight).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(pool.ring_addr(), pool.ring_entries(), BUFFER_GROUP, 0)
        }
        .map_err(|e| io::Error::new(e.kind(), format!("register provided-buffer ring: {e}")))?;
        let min_timeout = ring.params().is_feature_min_timeout();
        // Registered files spare every request the lookup and reference count of its socket's file.
        let raw: Vec<RawFd> = sockets.iter().map(|s| s.as_raw_fd()).collect();
        ring.submitter().register_files(&raw).map_err(|e| io::Error::new(e.kind(), format!("register files: {e}")))?;
        let fds: Vec<types::Fixed> = (0..raw.len() as u32).map(types::Fixed).collect();
        Ok(UringBackend {
            ring: ManuallyDrop::new(ring),
            buffers: ManuallyDrop::new(buffers),
            pool: ManuallyDrop::new(pool),
            tx: ManuallyDrop::new(TxQueue::new(s.send_slots, s.gso_max_segments)),
            msghdr: ManuallyDrop::new(recv::template()),
            wake_buf: ManuallyDrop::new(Box::new([0; 8])),
            recv_armed: vec![false; fds.len()],
            fds,
            sockets,
            wake,
            wake_armed: false,
            deadline: None,
            deadline_spec: Box::new(types::Timespec::new()),
            stopping: false,
            cqes: Vec::with_capacity(cq_entries as usize * 2),
            cursor: 0,
            unreachable: Vec::with_capacity(UNREACHABLE_REPORTS),
            error_log_budget: 10,
            err_payload: Box::new([0; 256]),
            err_control: Box::new([0; errqueue::CONTROL_BYTES]),
            received: 0,
            receive_ended: false,
            pool_buffers: s.pool_buffers,
            low_water: (s.send_slots / 2).max(1),
            min_timeout,
            worker,
        })
    }

    /// The result of an `io_uring_enter`: interruptions, a full completion queue and an expired wait are not
    /// errors (the loop goes on).
    fn submitted(result: io::Result<usize>) -> io::Result<()> {
        match result {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN | libc::ETIME)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let fd = types::Fd(self.wake.as_raw_fd());
        let entry = opcode::Read::new(fd, self.wake_buf.as_mut_ptr(), 8).build().user_data(WAKE_TAG);
        push(&mut self.ring, &entry)?;
        self.wake_armed = true;
        Ok(())
    }

    /// Makes sure the ring wakes a blocked wait by `until`: a timeout request on the ring, armed once and moved
    /// only when a deadline earlier than the armed one is wanted (one that fires early costs one spurious wake).
    /// A timeout passed to each `io_uring_enter` instead arms and cancels a kernel timer on every sleep, which on
    /// this VM cost ~2.8 µs of CPU per wake-up (14.6 against 11.7 µs per copy at 50 k pps with one datagram per
    /// wake-up, `ringfwd-bench run`), a fifth of the worker's time at moderate rates.
    fn arm_deadline(&mut self, until: Instant) -> io::Result<()> {
        if self.deadline.is_some_and(|at| at <= until) {
            return Ok(());
        }
        *self.deadline_spec = types::Timespec::from(until.saturating_duration_since(Instant::now()));
        let entry = match self.deadline {
            // Moved earlier; the update's own completion is ignored (a timeout that fired meanwhile completes
            // with its tag, and the next wait arms a new one).
            Some(_) => opcode::TimeoutUpdate::new(TIMER_TAG, &*self.deadline_spec).build().user_data(CANCEL_TAG),
            None => opcode::Timeout::new(&*self.deadline_spec).build().user_data(TIMER_TAG),
        };
        push(&mut self.ring, &entry)?;
        self.deadline = Some(until);
        Ok(())
    }

    /// Appends what completed since to the reaped completions.
    fn reap(&mut self) {
        let room = self.cqes.capacity() - self.cqes.len();
        for c in self.ring.completion().take(room) {
            self.cqes.push((c.user_data(), c.result(), c.flags()));
        }
    }

    fn complete_send(&mut self, user_data: u64, result: i32, counters: &mut Counters) -> io::Result<()> {
        let slot = (user_data & 0xffff_ffff) as u32;
        match self.tx.complete(slot, result, &mut self.pool, counters) {
            SendDone::Sent => {}
            SendDone::Retry { errno, socket } => {
                // Another destination's ICMP error failed this send: learn who is unreachable, send it again.
                self.read_errors(socket, errno);
                self.tx.resubmit(slot, &mut self.ring, &self.fds)?;
            }
            SendDone::Failed(errno) => {
                if errno == libc::EIO {
                    // The device refused a segmented send: keep forwarding without GSO.
                    self.tx.disable_gso();
                }
                if self.error_log_budget > 0 {
                    self.error_log_budget -= 1;
                    let error = io::Error::from_raw_os_error(errno);
                    tracing::warn!(worker = self.worker, %error, "send failed (counted in send_errors; further errors not logged)");
                }
            }
        }
        Ok(())
    }

    /// Reads socket `socket`'s ICMP error queue and keeps the destinations it reports unreachable for `next`
    /// (`errno` stands in for entries that carry none).
    fn read_errors(&mut self, socket: usize, errno: i32) {
        let Some(fd) = self.sockets.get(socket) else {
            return;
        };
        let unreachable = &mut self.unreachable;
        errqueue::drain(fd, &mut self.err_payload[..], &mut self.err_control, |dest, reported| {
            let errno = if reported != 0 { reported } else { errno };
            if errqueue::is_unreachable(errno) && unreachable.len() < unreachable.capacity() {
                unreachable.push((dest, errno));
            }
        });
    }

    /// A receive completion: the datagram and its sender, unless it ended without one or was malformed (counted).
    fn on_receive(
        &mut self,
        socket: usize,
        result: i32,
        flags: u32,
        counters: &mut Counters,
    ) -> Option<(SocketAddr, UringRx)> {
        if !cqueue::more(flags) && socket < self.recv_armed.len() {
            self.recv_armed[socket] = false;
            self.receive_ended = true;
        }
        if result < 0 {
            if errqueue::is_unreachable(-result) {
                // A pending ICMP error ended the receive (it is re-armed next iteration).
                self.read_errors(socket, -result);
            }
            if result == -libc::ENOBUFS {
                counters.pool_exhausted += 1;
            }
            return None;
        }
        let buf = self.pool.received(cqueue::buffer_select(flags)?)?;
        self.received += 1;
        let data = self.buffers.data(&buf, result as usize);
        match recv::decode(data, &self.msghdr) {
            Ok(received) => {
                let offset = received.payload.as_ptr() as usize - data.as_ptr() as usize;
                Some((received.src, UringRx { offset, len: received.payload.len(), buf }))
            }
            Err(reason) => {
                counters.rx_packets += 1;
                counters.count_drop(reason);
                self.pool.recycle(buf);
                None
            }
        }
    }
}

impl Backend for UringBackend {
    type Rx = UringRx;

    fn arm(&mut self, receiving: bool) -> io::Result<()> {
        if self.stopping {
            return Ok(());
        }
        if !self.wake_armed {
            self.arm_wake()?;
        }
        if !receiving {
            return Ok(());
        }
        for i in 0..self.fds.len() {
            if !self.recv_armed[i] && self.pool.available() > 0 {
                let entry = opcode::RecvMsgMulti::new(self.fds[i], &**self.msghdr, BUFFER_GROUP)
                    .build()
                    .user_data(RECV_TAG | i as u64);
                push(&mut self.ring, &entry)?;
                self.recv_armed[i] = true;
            }
        }
        Ok(())
    }

    fn wait(&mut self, wait: Wait) -> io::Result<()> {
        self.pool.publish();
        // Wait for one completion, or with a batch window for whatever the window brings. (Waiting for
        // "in-flight sends + 1" with no time bound loses wake-ups: with DEFER_TASKRUN the kernel counts pending
        // task-work items, and one item can carry several completions, so the waiter slept through arrivals.
        // The no-allocation test caught it as packets left unread in the socket. A batching wait's count
        // is bounded by the window instead.)
        let window = if self.min_timeout { wait.window_us } else { 0 };
        let want = match (wait.block, window) {
            (false, _) => 0,
            (true, 0) => 1,
            (true, _) => {
                // Issue the queued sends first and count their completions in: the wait is for two more.
                Self::submitted(self.ring.submit())?;
                self.ring.completion().len() + BATCH_WANT
            }
        };
        if wait.block {
            self.arm_deadline(wait.until)?;
        }
        let submitted = if wait.block && window > 0 {
            let args = types::SubmitArgs::new().min_wait_usec(window);
            self.ring.submitter().submit_with_args(want, &args)
        } else {
            self.ring.submit_and_wait(want)
        };
        Self::submitted(submitted)?;
        self.cqes.clear();
        self.cursor = 0;
        (self.received, self.receive_ended) = (0, false);
        self.reap();
        Ok(())
    }

    fn next(&mut self, counters: &mut Counters) -> io::Result<Option<Event<UringRx>>> {
        loop {
            if let Some((dest, errno)) = self.unreachable.pop() {
                return Ok(Some(Event::Unreachable { dest, errno }));
            }
            let Some(&(user_data, result, flags)) = self.cqes.get(self.cursor) else {
                return Ok(None);
            };
            self.cursor += 1;
            if user_data & SEND_TAG != 0 {
                self.complete_send(user_data, result, counters)?;
            } else if user_data & RECV_TAG != 0 {
                let socket = (user_data & 0xffff) as usize;
                if let Some((src, rx)) = self.on_receive(socket, result, flags, counters) {
                    if self.tx.free_slots() < self.low_water {
                        // Send slots run low mid-batch: submit the sends built so far and reap their completions
                        // at once, so a burst never starves on slots.
                        self.tx.flush(&mut self.ring, &self.fds)?;
                        self.ring.submit_and_wait(0)?;
                        self.reap();
                    }
                    return Ok(Some(Event::Datagram { socket, src, rx }));
                }
            } else if user_data == TIMER_TAG {
                self.deadline = None;
            } else if user_data == WAKE_TAG {
                self.wake_armed = false;
                if !self.stopping && result != -libc::ECANCELED {
                    self.arm_wake()?;
                }
            }
        }
    }

    fn datagram<'a>(&'a self, rx: &'a UringRx) -> &'a [u8] {
        &self.buffers.data(&rx.buf, rx.offset + rx.len)[rx.offset..]
    }

    fn copy_in(&mut self, bytes: &[u8]) -> Option<UringRx> {
        let buf = self.pool.take_spare()?;
        if !self.pool.fill(&mut self.buffers, &buf, bytes) {
            self.pool.recycle(buf);
            return None;
        }
        Some(UringRx { buf, offset: 0, len: bytes.len() })
    }

    fn transmit(&mut self, from: Option<&UringRx>, transmit: Transmit<'_>) -> bool {
        match transmit {
            Transmit::Forward { socket, dest, header, len } => {
                let Some(rx) = from.filter(|rx| rx.len == len) else {
                    return false;
                };
                self.tx.forward(&mut self.pool, &self.buffers, &rx.buf, (rx.offset, rx.len), socket, dest, header)
            }
            Transmit::Copy { socket, dest, bytes } => {
                let Some(buf) = self.pool.take_spare() else {
                    return false;
                };
                if !self.pool.fill(&mut self.buffers, &buf, bytes) {
                    self.pool.recycle(buf);
                    return false;
                }
                self.tx.copy(&mut self.pool, &self.buffers, buf, bytes.len(), socket, dest)
            }
        }
    }

    fn recycle(&mut self, rx: UringRx) {
        self.pool.recycle(rx.buf);
    }

    fn flush(&mut self, _counters: &mut Counters) -> io::Result<()> {
        self.tx.flush(&mut self.ring, &self.fds)
    }

    fn behind(&self) -> bool {
        self.received >= usize::from(self.pool_buffers) / 4 || self.receive_ended
    }

    fn supports_window(&self) -> bool {
        self.min_timeout
    }

    fn stop(&mut self) -> io::Result<()> {
        self.stopping = true;
        for i in 0..self.fds.len() {
            if self.recv_armed[i] {
                let cancel = opcode::AsyncCancel::new(RECV_TAG | i as u64).build().user_data(CANCEL_TAG);
                push(&mut self.ring, &cancel)?;
            }
        }
        if self.wake_armed {
            let cancel = opcode::AsyncCancel::new(WAKE_TAG).build().user_data(CANCEL_TAG);
            push(&mut self.ring, &cancel)?;
        }
        Ok(())
    }

    fn quiet(&self) -> bool {
        self.tx.busy() == 0 && !self.wake_armed && !self.recv_armed.iter().any(|&a| a)
    }

    fn pool_in_use(&self) -> u64 {
        self.pool.in_use()
    }

    fn kernel_drops(&self) -> u64 {
        self.sockets.iter().filter_map(|s| super::socket::kernel_drops(s).ok()).sum()
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        let clean = self.tx.busy() == 0;
        if !clean {
            // Sends still in flight: the kernel may still read their memory, so it is leaked rather than freed
            // under it. This happens only at shutdown.
            tracing::warn!(worker = self.worker, "sends still in flight at shutdown; leaking their buffers");
        }
        // SAFETY: each field is dropped once, here, and never used after: the ring first (the kernel stops using
        // the memory it was given once the ring is gone), then, only when no send was in flight, the memory the
        // ring referred to.
        unsafe {
            ManuallyDrop::drop(&mut self.ring);
            if clean {
                ManuallyDrop::drop(&mut self.tx);
                ManuallyDrop::drop(&mut self.pool);
                ManuallyDrop::drop(&mut self.buffers);
                ManuallyDrop::drop(&mut self.msghdr);
                ManuallyDrop::drop(&mut self.wake_buf);
            }
        }
    }
}
