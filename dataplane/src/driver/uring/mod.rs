//! The io_uring driver: one ring per worker, multishot receive over a provided-buffer ring, zero-copy fanout
//! with UDP GSO, one submit per loop iteration.
//!
//! Owns the worker loop: arm a multishot `RecvMsgMulti` per media socket and a read of the worker's wake-up
//! eventfd; each iteration reap every completion, feed received datagrams to the core, queue the sends it asks
//! for (see [`send`]), hand foreign packets to their owner, apply control commands, publish counters, then
//! submit once and wait according to the idle strategy. A blocking wait uses the kernel's minimum-wait timeout
//! (the batch window, at most `idle.batch_window_us`, chosen from the arrival rate by
//! [`BatchWindow`]: none while traffic is light): completions that arrive within the window after the wait
//! began are reaped together when it ends, and one arriving after it wakes the worker at once (the kernel then
//! wants only one). So a loaded worker wakes about once per window rather than once per arrival — a sleep/wake
//! costs ~15–25 µs of CPU here — and packets to one destination from several streams meet in one iteration and
//! leave in one GSO send.
//! A worker that is behind does not linger: after an iteration that received a quarter of its pool's buffers
//! or more, or ran out of buffers, it waits for the first completion only (the queued datagrams are batch
//! enough, and a window then would only let the socket's queue grow). `ENOBUFS` (every buffer in flight) ends a
//! multishot receive; it is re-armed as soon as buffers return, and nothing is lost meanwhile: the datagrams
//! wait in the socket's receive queue, whose overflow the kernel counts (read into `kernel_rx_dropped`).
//!
//! Forwarding latency (see [`crate::runtime::latency`]) ends when a flush has put the sends on the submission
//! queue; the submit follows in the same iteration.
//!
//! On stop: cancel the receives, process what was already received, wait for every send to complete (bounded
//! by [`DRAIN_TIMEOUT`]), then drop the ring before the memory it refers to.

pub mod recv;
pub mod send;

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types, IoUring};

use self::send::{push, Current, SendDone, TxQueue, UringEgress, SEND_TAG};
use super::errqueue;
use super::pool::{self, Buffers, PoolState};
use crate::core::{DropReason, Forwarder, Outcome};
use crate::runtime::idle::{BatchWindow, IdlePolicy};
use crate::runtime::latency::LatencyRecorder;
use crate::runtime::worker::{PublishPacer, WorkerContext};
use crate::runtime::SPARE_BUFFERS;

const RECV_TAG: u64 = 1 << 61;
const WAKE_TAG: u64 = 1 << 60;
const CANCEL_TAG: u64 = 1 << 59;
const BUFFER_GROUP: u16 = 0;
/// Completions a batching wait asks for beyond those already posted. With `DEFER_TASKRUN` the kernel wakes a
/// waiter by pending task-work items, one per armed request however many datagrams wait behind it, so two more
/// keep the worker asleep until the window ends. Not more: the count also sets how much task work the kernel
/// runs per wait, and with 32 or 1024 a keyframe storm was pulled in one gulp and overflowed the socket
/// (capacity-video at 112 calls: 1.1% loss with 32, none with 2, at the same CPU per copy on the conference
/// bench).
const BATCH_WANT: usize = 2;
/// Longest a stopping worker waits for its in-flight sends.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the worker until a stop is requested. Calls `ready` once set up.
pub fn run(ctx: WorkerContext, ready: &dyn Fn(Result<(), String>)) -> io::Result<()> {
    let mut worker = UringWorker::new(ctx)?;
    ready(Ok(()));
    let clean = worker.run()?;
    if !clean {
        // Sends still in flight after the drain timeout: the kernel may still read their memory, so it is leaked
        // rather than freed under it. This happens only at shutdown.
        tracing::warn!(worker = worker.ctx.index, "sends still in flight at shutdown; leaking their buffers");
        let UringWorker { ring, buffers, pool, tx, .. } = worker;
        drop(ring);
        std::mem::forget((buffers, pool, tx));
    }
    Ok(())
}

/// One worker's io_uring state. Field order is drop order: the ring goes first, before the memory it uses.
struct UringWorker {
    ring: IoUring,
    buffers: Buffers,
    pool: PoolState,
    tx: TxQueue,
    msghdr: Box<libc::msghdr>,
    wake_buf: Box<[u8; 8]>,
    fds: Vec<types::Fd>,
    recv_armed: Vec<bool>,
    wake_armed: bool,
    cqes: Vec<(u64, i32, u32)>,
    forwarder: Forwarder,
    ctx: WorkerContext,
    stopping: bool,
    error_log_budget: u32,
    /// Scratch for reading the sockets' ICMP error queues.
    err_payload: Box<[u8; 256]>,
    err_control: Box<[u8; errqueue::CONTROL_BYTES]>,
    latency: LatencyRecorder,
    /// The batch window in µs (0: wait for the first completion).
    batch_window_us: u32,
    /// Datagrams the last iteration received, and whether a receive ended in it (the buffers ran out, or the
    /// kernel ended the multishot receive, as it does at a zero-length datagram): a busy worker, or one whose
    /// receive was just re-armed, skips the window (else every ended receive would cost a whole window, and a
    /// flood of empty datagrams would starve the socket).
    received: usize,
    receive_ended: bool,
}

impl UringWorker {
    fn new(ctx: WorkerContext) -> io::Result<UringWorker> {
        let s = &ctx.settings;
        if s.buffer_bytes < recv::HEADER_BYTES + s.limits.max_packet_bytes {
            let msg = format!(
                "pool.buffer_bytes {} cannot hold the {}-byte receive header and a {}-byte datagram",
                s.buffer_bytes,
                recv::HEADER_BYTES,
                s.limits.max_packet_bytes
            );
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        let (buffers, pool) = pool::new(s.pool_buffers, SPARE_BUFFERS, s.buffer_bytes)?;
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
        // SAFETY: the ring memory belongs to `pool`, which the worker keeps alive (and unmoved: it is heap memory)
        // until after the io_uring is dropped (field order, and `run` leaks it if sends are still in flight).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(pool.ring_addr(), pool.ring_entries(), BUFFER_GROUP, 0)
        }
        .map_err(|e| io::Error::new(e.kind(), format!("register provided-buffer ring: {e}")))?;
        let mut batch_window_us = u32::try_from(s.batch_window.as_micros()).unwrap_or(u32::MAX);
        if batch_window_us > 0 && !ring.params().is_feature_min_timeout() {
            tracing::warn!(
                worker = ctx.index,
                "idle.batch_window_us is set, but this kernel's io_uring has no minimum-wait timeout (Linux >= 6.12); \
                 every arrival wakes the worker"
            );
            batch_window_us = 0;
        }
        let fds: Vec<types::Fd> = ctx.sockets.iter().map(|s| types::Fd(s.as_raw_fd())).collect();
        let tx = TxQueue::new(s.send_slots, s.gso_max_segments);
        let forwarder = ctx.forwarder();
        Ok(UringWorker {
            ring,
            buffers,
            pool,
            tx,
            msghdr: recv::template(),
            wake_buf: Box::new([0; 8]),
            recv_armed: vec![false; fds.len()],
            fds,
            wake_armed: false,
            cqes: Vec::with_capacity(cq_entries as usize * 2),
            forwarder,
            ctx,
            stopping: false,
            error_log_budget: 10,
            err_payload: Box::new([0; 256]),
            err_control: Box::new([0; errqueue::CONTROL_BYTES]),
            latency: LatencyRecorder::new(),
            batch_window_us,
            received: 0,
            receive_ended: false,
        })
    }

    /// The loop; returns whether everything in flight completed before exit.
    fn run(&mut self) -> io::Result<bool> {
        let mut idle = IdlePolicy::new(self.ctx.settings.idle, self.ctx.settings.spin, Instant::now());
        let mut batch = BatchWindow::new(Duration::from_micros(u64::from(self.batch_window_us)), Instant::now());
        let mut pacer = PublishPacer::new(Instant::now());
        let mut stats_pacer = self.ctx.stats_pacer(Instant::now());
        let mut drain_deadline = None;
        self.arm_wake()?;
        loop {
            if !self.stopping && self.ctx.mailbox().receiving() {
                self.arm_receives()?;
            }
            self.pool.publish();
            let now = Instant::now();
            let block = idle.may_block(now) && !self.ctx.incoming().has_ready() && !self.ctx.mailbox().has_commands();
            if block && pacer.before_block(now) {
                self.ctx.publish(self.forwarder.counters_mut(), self.pool.in_use(), &mut self.latency);
            }
            // Wait for one completion, or with a batch window for whatever the window brings. (Waiting for
            // "in-flight sends + 1" with no time bound loses wake-ups: with DEFER_TASKRUN the kernel counts pending
            // task-work items, and one item can carry several completions, so the waiter slept through arrivals.
            // The no-allocation test caught it as packets left unread in the socket. A batching wait's count
            // is bounded by the window instead.)
            let busy = self.received >= usize::from(self.ctx.settings.pool_buffers) / 4 || self.receive_ended;
            let window = if busy { 0 } else { batch.window_us() };
            let want = match (block, window) {
                (false, _) => 0,
                (true, 0) => 1,
                (true, _) => {
                    // Issue the queued sends first and count their completions in: the wait is for two more.
                    Self::submitted(self.ring.submit())?;
                    self.ring.completion().len() + BATCH_WANT
                }
            };
            // Blocking: wake for the next interceptor timer or statistics round at the latest.
            let wake_at = self.forwarder.next_timer().map_or(stats_pacer.next(), |at| at.min(stats_pacer.next()));
            let wake_at = pacer.deadline().map_or(wake_at, |at| at.min(wake_at));
            let submitted = if block {
                let timeout = types::Timespec::from(wake_at.saturating_duration_since(now));
                let args = types::SubmitArgs::new().timespec(&timeout).min_wait_usec(window);
                self.ring.submitter().submit_with_args(want, &args)
            } else {
                self.ring.submit_and_wait(want)
            };
            Self::submitted(submitted)?;
            let now = Instant::now();
            let mut worked = self.reap_and_process(now)?;
            batch.received(self.received, now);
            worked |= self.process_handovers(now);
            worked |= self.run_timers(now);
            self.tx.flush(&mut self.ring, &self.fds)?;
            self.sends_submitted(now);
            worked |= self.ctx.apply_commands(&mut self.forwarder, &mut pacer, now);
            self.ctx.publish_stats_if_due(&mut stats_pacer, &mut self.forwarder, now);
            if worked {
                idle.worked(now);
            }
            if pacer.after_iteration(worked, now) {
                self.ctx.publish(self.forwarder.counters_mut(), self.pool.in_use(), &mut self.latency);
            }
            if !self.stopping && self.ctx.mailbox().stop_requested() {
                self.begin_stop()?;
                drain_deadline = Some(now + DRAIN_TIMEOUT);
            }
            if self.stopping {
                let quiet = self.tx.busy() == 0 && !self.wake_armed && !self.recv_armed.iter().any(|&a| a);
                let late = drain_deadline.is_some_and(|d| now >= d);
                if quiet || late {
                    self.ctx.publish(self.forwarder.counters_mut(), self.pool.in_use(), &mut self.latency);
                    self.ctx.numbering.publish(self.ctx.index, &self.forwarder);
                    return Ok(self.tx.busy() == 0);
                }
            }
        }
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

    fn arm_receives(&mut self) -> io::Result<()> {
        for i in 0..self.fds.len() {
            if !self.recv_armed[i] && self.pool.available() > 0 {
                let entry = opcode::RecvMsgMulti::new(self.fds[i], &*self.msghdr, BUFFER_GROUP)
                    .build()
                    .user_data(RECV_TAG | i as u64);
                push(&mut self.ring, &entry)?;
                self.recv_armed[i] = true;
            }
        }
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let fd = types::Fd(self.ctx.mailbox().wake().as_fd().as_raw_fd());
        let entry = opcode::Read::new(fd, self.wake_buf.as_mut_ptr(), 8).build().user_data(WAKE_TAG);
        push(&mut self.ring, &entry)?;
        self.wake_armed = true;
        Ok(())
    }

    fn begin_stop(&mut self) -> io::Result<()> {
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

    /// Reaps every completion and handles it. When send slots run low mid-batch, the sends built so far are
    /// submitted and their completions reaped at once, so a burst never starves on slots.
    fn reap_and_process(&mut self, now: Instant) -> io::Result<bool> {
        self.cqes.clear();
        self.cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        (self.received, self.receive_ended) = (0, false);
        let worked = !self.cqes.is_empty();
        let low_water = (self.ctx.settings.send_slots / 2).max(1);
        let mut i = 0;
        while i < self.cqes.len() {
            let (user_data, result, flags) = self.cqes[i];
            i += 1;
            if user_data & SEND_TAG != 0 {
                self.complete_send(user_data, result)?;
            } else if user_data & RECV_TAG != 0 {
                self.on_receive((user_data & 0xffff) as usize, result, flags, now);
                if self.tx.free_slots() < low_water {
                    self.tx.flush(&mut self.ring, &self.fds)?;
                    self.sends_submitted(now);
                    self.ring.submit_and_wait(0)?;
                    let room = self.cqes.capacity() - self.cqes.len();
                    for c in self.ring.completion().take(room) {
                        self.cqes.push((c.user_data(), c.result(), c.flags()));
                    }
                }
            } else if user_data == WAKE_TAG {
                self.wake_armed = false;
                if !self.stopping && result != -libc::ECANCELED {
                    self.arm_wake()?;
                }
            }
        }
        Ok(worked)
    }

    /// The sends queued so far are on the submission queue: records the latency of the received packets that
    /// produced them (received in the batch read at `received_at`). Reads the clock only when there are some.
    fn sends_submitted(&mut self, received_at: Instant) {
        if self.latency.has_pending() {
            self.latency.submitted(received_at, Instant::now());
        }
    }

    fn complete_send(&mut self, user_data: u64, result: i32) -> io::Result<()> {
        let slot = (user_data & 0xffff_ffff) as u32;
        match self.tx.complete(slot, result, &mut self.pool, self.forwarder.counters_mut()) {
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
                    tracing::warn!(worker = self.ctx.index, %error, "send failed (counted in send_errors; further errors not logged)");
                }
            }
        }
        Ok(())
    }

    /// Reads socket `socket`'s ICMP error queue and tells the forwarder which destinations are unreachable
    /// (`errno` stands in for entries that carry none).
    fn read_errors(&mut self, socket: usize, errno: i32) {
        let Some(fd) = self.ctx.sockets.get(socket) else {
            return;
        };
        let forwarder = &mut self.forwarder;
        errqueue::drain(fd, &mut self.err_payload[..], &mut self.err_control, |dest, reported| {
            let errno = if reported != 0 { reported } else { errno };
            if errqueue::is_unreachable(errno) {
                forwarder.note_unreachable(dest, errno);
            }
        });
    }

    fn on_receive(&mut self, socket: usize, result: i32, flags: u32, now: Instant) {
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
                self.forwarder.counters_mut().pool_exhausted += 1;
            }
            return;
        }
        let Some(bid) = cqueue::buffer_select(flags) else {
            return;
        };
        self.pool.taken_by_kernel();
        self.received += 1;
        let buffers = &self.buffers;
        let data = buffers.data(bid, result as usize);
        let (src, payload) = match recv::decode(data, &self.msghdr) {
            Ok(received) => (received.src, received.payload),
            Err(reason) => {
                let counters = self.forwarder.counters_mut();
                counters.rx_packets += 1;
                counters.count_drop(reason);
                self.pool.done(bid);
                return;
            }
        };
        let offset = payload.as_ptr() as usize - data.as_ptr() as usize;
        let current = Current { bid, offset, len: payload.len() };
        let queued = self.tx.queued();
        let mut egress = UringEgress { tx: &mut self.tx, buffers, pool: &mut self.pool, current };
        if let Outcome::Handover { owner } = self.forwarder.on_datagram(now, socket, src, payload, &mut egress) {
            self.ctx.hand_over(owner, src, socket, 1, payload, self.forwarder.counters_mut());
        }
        if self.tx.queued() != queued {
            self.latency.produced();
        }
        self.pool.done(bid);
    }

    /// Runs the interceptors' timers that are due; their packets leave as copies in spare buffers.
    fn run_timers(&mut self, now: Instant) -> bool {
        if self.forwarder.next_timer().is_none_or(|at| at > now) {
            return false;
        }
        let buffers = &self.buffers;
        // No packet is being processed: an empty `current` makes any RTP forward refuse (timers only copy).
        let current = Current { bid: 0, offset: 0, len: 0 };
        let mut egress = UringEgress { tx: &mut self.tx, buffers, pool: &mut self.pool, current };
        self.forwarder.on_timers(now, &mut egress);
        true
    }

    /// Forwards packets other workers handed over (copied into spare buffers, so sends can reference them).
    fn process_handovers(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(packet) = self.ctx.incoming().take() {
            any = true;
            let bytes = &packet.data[..packet.len];
            match self.pool.take_spare() {
                Some(bid) => {
                    // SAFETY: `bid` was just taken from the spare list.
                    unsafe { self.buffers.write(bid, bytes) };
                    let buffers = &self.buffers;
                    let current = Current { bid, offset: 0, len: bytes.len() };
                    let mut egress = UringEgress { tx: &mut self.tx, buffers, pool: &mut self.pool, current };
                    let handovers = packet.handovers;
                    let outcome =
                        self.forwarder.on_handover(now, packet.socket, packet.src, bytes, handovers, &mut egress);
                    self.pool.done(bid);
                    if let Outcome::Handover { owner } = outcome {
                        // Along an SSRC alias or a feedback route to the worker holding the stream or subscription.
                        let counters = self.forwarder.counters_mut();
                        self.ctx.hand_over(owner, packet.src, packet.socket, handovers + 1, bytes, counters);
                    }
                }
                None => self.forwarder.counters_mut().count_drop(DropReason::HandoverFull),
            }
            self.ctx.incoming().recycle(packet);
        }
        any
    }
}
