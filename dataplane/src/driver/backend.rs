//! What a worker loop asks of its I/O: the [`Backend`] trait, implemented by the io_uring backend
//! ([`super::uring`]) and the `recvmmsg`/`sendmmsg` backend ([`super::mmsg`]).
//!
//! A backend only does I/O: it receives datagrams into its buffers, takes the transmits the core queued and sends
//! them (coalescing as it can), waits until something completes or a deadline passes, and reports what
//! completed. It owns its sockets' I/O state, its buffers and its in-flight sends; it never sees the forwarder,
//! the control plane or the worker loop (it imports nothing from the runtime), and it decides nothing about a
//! packet beyond whether its bytes arrived whole.
//!
//! Buffers travel as the backend's move-only [`Backend::Rx`] handles: a received datagram's handle goes to the
//! loop, which gives it back with [`Backend::recycle`] once the core is done with the datagram (sends that
//! reference its bytes keep the buffer alive on their own).

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::core::{Counters, Transmit};

/// How the loop wants a backend to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// May block: false polls (issues what is queued, reaps what completed, returns at once).
    pub block: bool,
    /// Return by then at the latest (the next timer, statistics round or counter publication).
    pub until: Instant,
    /// Batch window: once blocked, keep gathering completions for up to this long (0: wake at the first).
    pub window_us: u32,
}

/// What completed.
#[derive(Debug)]
pub enum Event<R> {
    /// A datagram from `src` arrived on socket `socket`; its bytes are [`Backend::datagram`] of `rx`.
    Datagram {
        /// The worker's socket index.
        socket: usize,
        /// Who sent it.
        src: SocketAddr,
        /// Its buffer.
        rx: R,
    },
    /// The kernel reported `dest` unreachable (an ICMP error on a send), with this errno.
    Unreachable {
        /// The destination.
        dest: SocketAddr,
        /// What the kernel reported.
        errno: i32,
    },
}

/// The I/O of one worker (see the module doc).
pub trait Backend {
    /// A hold on one received (or copied-in) datagram's buffer: move-only, given back with [`Backend::recycle`].
    type Rx;

    /// Keeps a receive armed on every socket while `receiving` (a receive the kernel ended is re-armed here); with
    /// `receiving` false nothing new is armed (datagrams wait in the sockets).
    fn arm(&mut self, receiving: bool) -> io::Result<()>;

    /// Issues what is queued and waits as `wait` says; completions are then taken with [`Backend::next`].
    fn wait(&mut self, wait: Wait) -> io::Result<()>;

    /// The next completion the last wait reaped (send completions are handled inside and counted in `counters`);
    /// `None` when there is no more.
    fn next(&mut self, counters: &mut Counters) -> io::Result<Option<Event<Self::Rx>>>;

    /// The datagram `rx` holds.
    fn datagram<'a>(&'a self, rx: &'a Self::Rx) -> &'a [u8];

    /// Holds a copy of `bytes` (a datagram another worker handed over) as if it had been received; `None` when no
    /// buffer is free.
    fn copy_in(&mut self, bytes: &[u8]) -> Option<Self::Rx>;

    /// Queues `transmit` for sending; `from` holds the datagram a [`Transmit::Forward`] takes its payload from.
    /// False when it cannot be queued (no send slot or buffer): the caller counts it.
    fn transmit(&mut self, from: Option<&Self::Rx>, transmit: Transmit<'_>) -> bool;

    /// The loop is done with `rx`.
    fn recycle(&mut self, rx: Self::Rx);

    /// Issues every queued transmit (on the submission queue, or sent now).
    fn flush(&mut self, counters: &mut Counters) -> io::Result<()>;

    /// Whether the datagrams the last wait brought are batch enough that a window would only add delay (the backend
    /// is behind, or its receive just ended).
    fn behind(&self) -> bool;

    /// Whether this backend can hold a blocked wait open for a batch window.
    fn supports_window(&self) -> bool;

    /// Stops receiving for good (the worker is stopping): cancels armed receives and wake-ups.
    fn stop(&mut self) -> io::Result<()>;

    /// Nothing is in flight: every send completed and every cancellation was confirmed.
    fn quiet(&self) -> bool;

    /// Buffers out of the pool now (held by the loop or by sends), for the `pool_in_use` gauge.
    fn pool_in_use(&self) -> u64;

    /// Datagrams the kernel dropped on this backend's sockets since they were opened (receive queue full).
    fn kernel_drops(&self) -> u64;
}
