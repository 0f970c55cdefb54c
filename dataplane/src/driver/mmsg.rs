//! The `recvmmsg`/`sendmmsg` driver: the fallback for kernels without the io_uring features ringfwd uses, and
//! an in-tree baseline for the io_uring driver.
//!
//! Owns a worker loop over [`batch`](super::batch): receive a batch per socket, let the core decide, collect
//! every copy it asks for (a rewritten 12-byte header plus the payload slice of the received datagram — the
//! payload is not copied), and send them with one `sendmmsg` per socket. Sends complete synchronously, so
//! nothing is in flight between iterations. It does not coalesce with GSO: that is the io_uring driver's job.
//! Blocking waits use `poll` on the sockets and the wake-up eventfd. Forwarding latency (see
//! [`crate::runtime::latency`]) ends just before the `sendmmsg` calls of a flush.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::batch::{RecvBatch, SendBatch};
use crate::core::{Counters, DropReason, Egress, Outcome};
use crate::runtime::idle::IdlePolicy;
use crate::runtime::latency::LatencyRecorder;
use crate::runtime::worker::{PublishPacer, WorkerContext};
use crate::runtime::SPARE_BUFFERS;

/// Longest a blocking wait lasts before the loop looks at its rings again.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// One copy the core asked for.
#[derive(Clone, Copy)]
struct Out {
    socket: usize,
    dest: SocketAddr,
    part: Part,
}

#[derive(Clone, Copy)]
enum Part {
    /// `header` + bytes 12.. of datagram `datagram` of the current batch.
    Rtp { datagram: usize, header: [u8; 12] },
    /// `arena[start..start + len]`.
    Copy { start: usize, len: usize },
}

/// Collects the copies the core asks for while it processes one datagram.
struct Collect<'a> {
    outs: &'a mut Vec<Out>,
    arena: &'a mut Vec<u8>,
    datagram: usize,
}

impl Egress for Collect<'_> {
    fn forward_rtp(&mut self, socket: usize, dest: SocketAddr, header: &[u8; 12]) -> bool {
        if self.outs.len() == self.outs.capacity() {
            return false;
        }
        self.outs.push(Out { socket, dest, part: Part::Rtp { datagram: self.datagram, header: *header } });
        true
    }

    fn send_copy(&mut self, socket: usize, dest: SocketAddr, bytes: &[u8]) -> bool {
        let start = self.arena.len();
        if self.outs.len() == self.outs.capacity() || start + bytes.len() > self.arena.capacity() {
            return false;
        }
        self.arena.extend_from_slice(bytes);
        self.outs.push(Out { socket, dest, part: Part::Copy { start, len: bytes.len() } });
        true
    }
}

/// Runs the worker until a stop is requested. Calls `ready` once set up.
pub fn run(ctx: WorkerContext, ready: &dyn Fn(Result<(), String>)) -> io::Result<()> {
    let s = &ctx.settings;
    let size_error = |e: super::batch::BatchSizeError| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    let mut recv = RecvBatch::new(s.recv_batch, s.limits.max_packet_bytes + 1).map_err(size_error)?;
    // sendmmsg takes at most UIO_MAXIOV (1024) messages per call.
    let send_batch = s.send_slots.min(1024);
    let mut send = SendBatch::new(send_batch, 2).map_err(size_error)?;
    let mut outs: Vec<Out> = Vec::with_capacity(send_batch);
    let mut arena: Vec<u8> = Vec::with_capacity(usize::from(SPARE_BUFFERS) * s.limits.max_packet_bytes);
    let mut forwarder = ctx.forwarder();
    let mut idle = IdlePolicy::new(s.idle, s.spin, Instant::now());
    let mut pacer = PublishPacer::new(Instant::now());
    let mut stats_pacer = ctx.stats_pacer(Instant::now());
    let mut latency = LatencyRecorder::new();
    ready(Ok(()));
    loop {
        let now = Instant::now();
        let mut worked = false;
        let receiving = ctx.mailbox().receiving();
        for (socket, fd) in ctx.sockets.iter().enumerate().filter(|_| receiving) {
            let fd = fd.as_fd();
            let n = recv.recv(fd)?;
            if n == 0 {
                continue;
            }
            worked = true;
            for i in 0..n {
                let d = recv.datagram(i);
                if d.truncated {
                    let counters = forwarder.counters_mut();
                    counters.rx_packets += 1;
                    counters.count_drop(DropReason::Oversize);
                    continue;
                }
                let queued = outs.len();
                let mut egress = Collect { outs: &mut outs, arena: &mut arena, datagram: i };
                if let Outcome::Handover { owner } = forwarder.on_datagram(now, socket, d.src, d.data, &mut egress) {
                    ctx.hand_over(owner, d.src, socket, 1, d.data, forwarder.counters_mut());
                }
                if outs.len() != queued {
                    latency.produced();
                }
                if outs.len() == outs.capacity() {
                    let submitted_at = latency.has_pending().then(Instant::now);
                    flush(
                        &ctx,
                        &mut send,
                        &mut outs,
                        &mut arena,
                        &|i| recv.datagram(i).data,
                        forwarder.counters_mut(),
                    )?;
                    if let Some(at) = submitted_at {
                        latency.submitted(now, at);
                    }
                }
            }
            let submitted_at = latency.has_pending().then(Instant::now);
            flush(&ctx, &mut send, &mut outs, &mut arena, &|i| recv.datagram(i).data, forwarder.counters_mut())?;
            if let Some(at) = submitted_at {
                latency.submitted(now, at);
            }
        }
        while let Some(packet) = ctx.incoming().take() {
            worked = true;
            let data = &packet.data[..packet.len];
            let mut egress = Collect { outs: &mut outs, arena: &mut arena, datagram: 0 };
            let handovers = packet.handovers;
            if let Outcome::Handover { owner } =
                forwarder.on_handover(now, packet.socket, packet.src, data, handovers, &mut egress)
            {
                // Along an SSRC alias or a feedback route to the worker holding the stream or subscription.
                ctx.hand_over(owner, packet.src, packet.socket, handovers + 1, data, forwarder.counters_mut());
            }
            flush(&ctx, &mut send, &mut outs, &mut arena, &|_| data, forwarder.counters_mut())?;
            ctx.incoming().recycle(packet);
        }
        if forwarder.next_timer().is_some_and(|at| at <= now) {
            worked = true;
            let mut egress = Collect { outs: &mut outs, arena: &mut arena, datagram: 0 };
            forwarder.on_timers(now, &mut egress);
            flush(&ctx, &mut send, &mut outs, &mut arena, &|_| &[], forwarder.counters_mut())?;
        }
        worked |= ctx.apply_commands(&mut forwarder, &mut pacer, now);
        ctx.publish_stats_if_due(&mut stats_pacer, &mut forwarder, now);
        if pacer.after_iteration(worked, now) {
            ctx.publish(forwarder.counters_mut(), 0, &mut latency);
        }
        if ctx.mailbox().stop_requested() {
            ctx.publish(forwarder.counters_mut(), 0, &mut latency);
            ctx.numbering.publish(ctx.index, &forwarder);
            return Ok(());
        }
        if worked {
            idle.worked(now);
        } else if idle.may_block(now) && !ctx.incoming().has_ready() && !ctx.mailbox().has_commands() {
            if pacer.before_block(now) {
                ctx.publish(forwarder.counters_mut(), 0, &mut latency);
            }
            let wake_at = forwarder.next_timer().map_or(stats_pacer.next(), |at| at.min(stats_pacer.next()));
            let wake_at = pacer.deadline().map_or(wake_at, |at| at.min(wake_at));
            wait(&ctx, Some(wake_at.saturating_duration_since(now)))?;
        }
    }
}

/// Sends every collected copy, one `sendmmsg` per media socket, and counts the results.
fn flush<'d>(
    ctx: &WorkerContext,
    send: &mut SendBatch,
    outs: &mut Vec<Out>,
    arena: &'d mut [u8],
    payload_of: &dyn Fn(usize) -> &'d [u8],
    counters: &mut Counters,
) -> io::Result<()> {
    if outs.is_empty() {
        return Ok(());
    }
    let arena: &[u8] = arena;
    for socket in 0..ctx.sockets.len() {
        let mut guard = send.begin();
        for out in outs.iter().filter(|o| o.socket == socket) {
            let pushed = match &out.part {
                Part::Rtp { datagram, header } => {
                    let payload = payload_of(*datagram);
                    guard.push(out.dest, &[header, payload.get(12..).unwrap_or_default()], None)
                }
                Part::Copy { start, len } => guard.push(out.dest, &[&arena[*start..*start + *len]], None),
            };
            if !pushed {
                counters.count_drop(DropReason::TxFull);
            }
        }
        if guard.is_empty() {
            continue;
        }
        let report = guard.send(ctx.sockets[socket].as_fd())?;
        counters.sends += report.sent as u64;
        counters.send_errors += (report.failed + report.would_block) as u64;
    }
    outs.clear();
    Ok(())
}

/// Blocks until a socket is readable or the worker is woken (command, handover, stop), bounded by
/// [`POLL_TIMEOUT`] and by `until_timer`, the time left until an interceptor's timer.
fn wait(ctx: &WorkerContext, until_timer: Option<Duration>) -> io::Result<()> {
    let wake = ctx.mailbox().wake();
    let mut fds: [PollFd<'_>; 8] = std::array::from_fn(|_| PollFd::from_borrowed_fd(wake.as_fd(), PollFlags::IN));
    let mut n = 1;
    // Held receives: the sockets stay readable, so polling them would spin.
    let sockets = if ctx.mailbox().receiving() { ctx.sockets.len() } else { 0 };
    for socket in ctx.sockets.iter().take(sockets.min(fds.len() - 1)) {
        fds[n] = PollFd::from_borrowed_fd(socket.as_fd(), PollFlags::IN);
        n += 1;
    }
    let bound = until_timer.map_or(POLL_TIMEOUT, |left| left.min(POLL_TIMEOUT));
    let timeout = Timespec { tv_sec: 0, tv_nsec: bound.as_nanos() as _ };
    match poll(&mut fds[..n], Some(&timeout)) {
        Ok(_) => {}
        Err(e) if e == rustix::io::Errno::INTR => {}
        Err(e) => return Err(e.into()),
    }
    wake.drain();
    Ok(())
}
