//! The `recvmmsg`/`sendmmsg` backend: the fallback for kernels without the io_uring features ringfwd uses, and
//! an in-tree baseline for the io_uring backend.
//!
//! Owns one receive batch and one send batch (see [`batch`](super::batch)), the transmits queued from the
//! current receive batch (a rewritten 12-byte header plus the payload slice of a received datagram — the payload
//! is not copied — or bytes in its own copy arena), one spare buffer for a datagram another worker handed over,
//! and its sockets' I/O. `next` receives a batch per socket in turn and hands out its datagrams; before a batch is
//! received again, everything queued from the last one is sent (one `sendmmsg` per socket), so no transmit
//! outlives the bytes it points into. Sends complete synchronously: nothing is in flight between iterations. It
//! does not coalesce with GSO: that is the io_uring backend's job. Blocking waits use `poll` on the sockets and
//! the wake-up eventfd.
//!
//! Never imports the runtime or the forwarder: it only does I/O.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::backend::{Backend, Event, Wait};
use super::batch::{BatchSizeError, RecvBatch, SendBatch};
use crate::core::{Counters, DropReason, Transmit};

/// Longest a blocking wait lasts before the loop looks at its rings again.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// What the `recvmmsg`/`sendmmsg` backend is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmsgSettings {
    /// Datagrams per receive batch.
    pub recv_batch: usize,
    /// Largest datagram accepted (longer ones are dropped as oversize).
    pub max_packet_bytes: usize,
    /// Transmits held before they are sent (at most 1024, `sendmmsg`'s limit).
    pub send_slots: usize,
    /// Bytes of the copy arena (copies the core assembled, and forwards of a handed-over datagram).
    pub copy_arena_bytes: usize,
}

/// One transmit queued.
#[derive(Clone, Copy)]
struct Out {
    socket: usize,
    dest: SocketAddr,
    part: Part,
}

#[derive(Clone, Copy)]
enum Part {
    /// `header` + bytes 12.. of datagram `datagram` of the current receive batch.
    Rtp { datagram: usize, header: [u8; 12] },
    /// `arena[start..start + len]`.
    Copy { start: usize, len: usize },
}

/// A datagram held by the loop: in the receive batch, or copied into the spare buffer.
#[derive(Debug)]
pub enum MmsgRx {
    /// Datagram `index` of the current receive batch.
    Batch {
        /// Its index in the batch.
        index: usize,
    },
    /// The first `len` bytes of the spare buffer.
    Spare {
        /// Its length.
        len: usize,
    },
}

/// One worker's `recvmmsg`/`sendmmsg` I/O.
pub struct MmsgBackend {
    sockets: Vec<OwnedFd>,
    wake: OwnedFd,
    recv: RecvBatch,
    send: SendBatch,
    outs: Vec<Out>,
    arena: Vec<u8>,
    spare: Box<[u8]>,
    spare_held: bool,
    receiving: bool,
    /// The socket whose receive batch `next` hands out, and how far it got.
    batch: Option<usize>,
    cursor: usize,
    /// The next socket to receive a batch from in this iteration.
    next_socket: usize,
    /// Sends and errors not yet added to the counters.
    sends: u64,
    send_errors: u64,
    tx_full: u64,
}

impl MmsgBackend {
    /// The backend on `sockets` (the worker's socket on each address, in order), woken by the eventfd `wake`.
    pub fn new(sockets: Vec<OwnedFd>, wake: OwnedFd, s: MmsgSettings) -> io::Result<MmsgBackend> {
        let size_error = |e: BatchSizeError| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
        let recv = RecvBatch::new(s.recv_batch, s.max_packet_bytes + 1).map_err(size_error)?;
        // sendmmsg takes at most UIO_MAXIOV (1024) messages per call.
        let send_batch = s.send_slots.clamp(1, 1024);
        let send = SendBatch::new(send_batch, 2).map_err(size_error)?;
        Ok(MmsgBackend {
            sockets,
            wake,
            recv,
            send,
            outs: Vec::with_capacity(send_batch),
            arena: Vec::with_capacity(s.copy_arena_bytes),
            spare: vec![0; s.max_packet_bytes].into_boxed_slice(),
            spare_held: false,
            receiving: true,
            batch: None,
            cursor: 0,
            next_socket: 0,
            sends: 0,
            send_errors: 0,
            tx_full: 0,
        })
    }

    /// Sends every queued transmit, one `sendmmsg` per socket, and keeps the results for the counters.
    fn send_outs(&mut self) -> io::Result<()> {
        if self.outs.is_empty() {
            return Ok(());
        }
        for socket in 0..self.sockets.len() {
            let mut guard = self.send.begin();
            for out in self.outs.iter().filter(|o| o.socket == socket) {
                let pushed = match &out.part {
                    Part::Rtp { datagram, header } => {
                        let payload = self.recv.datagram(*datagram).data;
                        guard.push(out.dest, &[header, payload.get(12..).unwrap_or_default()], None)
                    }
                    Part::Copy { start, len } => guard.push(out.dest, &[&self.arena[*start..*start + *len]], None),
                };
                if !pushed {
                    self.tx_full += 1;
                }
            }
            if guard.is_empty() {
                continue;
            }
            let report = guard.send(self.sockets[socket].as_fd())?;
            self.sends += report.sent as u64;
            self.send_errors += (report.failed + report.would_block) as u64;
        }
        self.outs.clear();
        self.arena.clear();
        Ok(())
    }

    /// Queues `part` (sending what is queued first when the queue is full).
    fn queue(&mut self, socket: usize, dest: SocketAddr, part: Part) -> io::Result<()> {
        if self.outs.len() == self.outs.capacity() {
            self.send_outs()?;
        }
        self.outs.push(Out { socket, dest, part });
        Ok(())
    }

    /// Copies `pieces` into the arena; where, or `None` when they do not fit.
    fn copy_in_arena(&mut self, pieces: &[&[u8]]) -> Option<(usize, usize)> {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        if len > self.arena.capacity() - self.arena.len() {
            // Sending what is queued empties the arena; a copy larger than the whole arena is refused.
            self.send_outs().ok()?;
            if len > self.arena.capacity() {
                return None;
            }
        }
        let start = self.arena.len();
        pieces.iter().for_each(|p| self.arena.extend_from_slice(p));
        Some((start, len))
    }

    /// Copies `header` and bytes `12..len` of the spare buffer into the arena, like [`Self::copy_in_arena`].
    fn copy_spare(&mut self, header: &[u8; 12], len: usize) -> Option<(usize, usize)> {
        if len > self.arena.capacity() - self.arena.len() {
            self.send_outs().ok()?;
            if len > self.arena.capacity() {
                return None;
            }
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(header);
        self.arena.extend_from_slice(&self.spare[12..len]);
        Some((start, len))
    }

    fn take_counts(&mut self, counters: &mut Counters) {
        counters.sends += std::mem::take(&mut self.sends);
        counters.send_errors += std::mem::take(&mut self.send_errors);
        for _ in 0..std::mem::take(&mut self.tx_full) {
            counters.count_drop(DropReason::TxFull);
        }
    }
}

impl Backend for MmsgBackend {
    type Rx = MmsgRx;

    fn arm(&mut self, receiving: bool) -> io::Result<()> {
        self.receiving = receiving;
        Ok(())
    }

    fn wait(&mut self, wait: Wait) -> io::Result<()> {
        self.next_socket = 0;
        if !wait.block {
            return Ok(());
        }
        let mut fds: [PollFd<'_>; 8] =
            std::array::from_fn(|_| PollFd::from_borrowed_fd(self.wake.as_fd(), PollFlags::IN));
        let mut n = 1;
        // Held receives: the sockets stay readable, so polling them would spin.
        let sockets = if self.receiving { self.sockets.len() } else { 0 };
        for socket in self.sockets.iter().take(sockets.min(fds.len() - 1)) {
            fds[n] = PollFd::from_borrowed_fd(socket.as_fd(), PollFlags::IN);
            n += 1;
        }
        let bound = wait.until.saturating_duration_since(Instant::now()).min(POLL_TIMEOUT);
        let timeout = Timespec { tv_sec: 0, tv_nsec: bound.as_nanos() as _ };
        match poll(&mut fds[..n], Some(&timeout)) {
            Ok(_) => {}
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(e.into()),
        }
        let mut drained = [0u8; 8];
        let _ = rustix::io::read(&self.wake, &mut drained);
        Ok(())
    }

    fn next(&mut self, counters: &mut Counters) -> io::Result<Option<Event<MmsgRx>>> {
        loop {
            if let Some(socket) = self.batch {
                while self.cursor < self.recv.len() {
                    let index = self.cursor;
                    self.cursor += 1;
                    let d = self.recv.datagram(index);
                    if d.truncated {
                        counters.rx_packets += 1;
                        counters.count_drop(DropReason::Oversize);
                        continue;
                    }
                    return Ok(Some(Event::Datagram { socket, src: d.src, rx: MmsgRx::Batch { index } }));
                }
                // The batch is done: what refers to its bytes goes out before it is received into again.
                self.send_outs()?;
                self.take_counts(counters);
                self.batch = None;
            }
            if !self.receiving || self.next_socket >= self.sockets.len() {
                return Ok(None);
            }
            let socket = self.next_socket;
            self.next_socket += 1;
            if self.recv.recv(self.sockets[socket].as_fd())? > 0 {
                (self.batch, self.cursor) = (Some(socket), 0);
            }
        }
    }

    fn datagram<'a>(&'a self, rx: &'a MmsgRx) -> &'a [u8] {
        match rx {
            MmsgRx::Batch { index } => self.recv.datagram(*index).data,
            MmsgRx::Spare { len } => &self.spare[..*len],
        }
    }

    fn copy_in(&mut self, bytes: &[u8]) -> Option<MmsgRx> {
        if self.spare_held || bytes.len() > self.spare.len() {
            return None;
        }
        self.spare[..bytes.len()].copy_from_slice(bytes);
        self.spare_held = true;
        Some(MmsgRx::Spare { len: bytes.len() })
    }

    fn transmit(&mut self, from: Option<&MmsgRx>, transmit: Transmit<'_>) -> bool {
        let queued = match (transmit, from) {
            (Transmit::Forward { socket, dest, header, len }, Some(MmsgRx::Batch { index })) => {
                if self.recv.datagram(*index).data.len() != len {
                    return false;
                }
                self.queue(socket, dest, Part::Rtp { datagram: *index, header: *header })
            }
            (Transmit::Forward { socket, dest, header, len }, Some(MmsgRx::Spare { len: held })) => {
                // The spare is reused by the next handover: the copy goes into the arena.
                if *held != len || len < 12 {
                    return false;
                }
                let Some((start, len)) = self.copy_spare(header, len) else {
                    return false;
                };
                self.queue(socket, dest, Part::Copy { start, len })
            }
            (Transmit::Forward { .. }, None) => return false,
            (Transmit::Copy { socket, dest, bytes }, _) => {
                let Some((start, len)) = self.copy_in_arena(&[bytes]) else {
                    return false;
                };
                self.queue(socket, dest, Part::Copy { start, len })
            }
        };
        queued.is_ok()
    }

    fn recycle(&mut self, rx: MmsgRx) {
        if let MmsgRx::Spare { .. } = rx {
            self.spare_held = false;
        }
    }

    fn flush(&mut self, counters: &mut Counters) -> io::Result<()> {
        self.send_outs()?;
        self.take_counts(counters);
        Ok(())
    }

    fn behind(&self) -> bool {
        false
    }

    fn supports_window(&self) -> bool {
        false
    }

    fn stop(&mut self) -> io::Result<()> {
        self.receiving = false;
        Ok(())
    }

    fn quiet(&self) -> bool {
        true
    }

    fn pool_in_use(&self) -> u64 {
        0
    }

    fn kernel_drops(&self) -> u64 {
        self.sockets.iter().filter_map(|s| super::socket::kernel_drops(s).ok()).sum()
    }
}
