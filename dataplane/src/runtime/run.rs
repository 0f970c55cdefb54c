//! The worker loop: one loop for every backend.
//!
//! Owns [`Worker`], the iteration of one worker thread: arm receives → wait (until the next timer, statistics
//! round or counter publication, with the batch window chosen from the arrival rate) → take each completion the
//! backend reports and feed each datagram to the core → drain the core's transmit queue to the backend after each
//! datagram → forward what other workers handed over → emit what async plugins' threads sent back (at most
//! [`LATE_PER_ITERATION`] packets) → run due interceptor timers → flush the backend's sends →
//! apply control commands → publish statistics, events and counters (per batch, never per packet) → stop when
//! asked, once nothing is in flight.
//!
//! The loop holds the forwarder, its transmit queue and the worker's dealings with the control plane and the other
//! workers ([`WorkerContext`]); the backend holds the I/O. The forwarder never calls the backend and the backend
//! never calls the forwarder: the loop moves datagrams one way and transmits the other. A datagram's buffer is a
//! move-only handle the loop gives back to the backend once the core is done with it; sends that reference its
//! bytes hold the buffer on their own.
//!
//! Forwarding latency (see [`super::latency`]) runs from the end of the wait that brought a datagram to the flush
//! that issued the sends it produced.
//!
//! Must never: allocate, lock, log or make a syscall per packet (the backend's I/O aside), or block on the
//! control plane.

use std::io;
use std::time::{Duration, Instant};

use super::idle::{BatchWindow, IdlePolicy};
use super::latency::LatencyRecorder;
use super::worker::{PublishPacer, WorkerContext};
use crate::core::interceptor::late;
use crate::core::{Forwarder, Outcome, Refused, Transmits};
use crate::driver::backend::{Backend, Event, Wait};

/// The most packets from async plugins' threads one iteration emits.
pub const LATE_PER_ITERATION: usize = 256;

/// Longest a stopping worker waits for its in-flight sends.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// One worker: its loop state over backend `B`.
pub struct Worker<B: Backend> {
    backend: B,
    forwarder: Forwarder,
    transmits: Transmits,
    ctx: WorkerContext,
    latency: LatencyRecorder,
}

/// What one wait's completions brought.
#[derive(Debug, Default, Clone, Copy)]
struct Reaped {
    events: usize,
    datagrams: usize,
}

impl<B: Backend> Worker<B> {
    /// A worker running `backend` for `ctx`, with a new forwarder.
    pub fn new(ctx: WorkerContext, backend: B) -> Worker<B> {
        let forwarder = ctx.forwarder();
        let transmits = Transmits::for_limits(forwarder.limits());
        Worker { backend, forwarder, transmits, ctx, latency: LatencyRecorder::new() }
    }

    /// Runs until a stop is requested and nothing is in flight (or [`DRAIN_TIMEOUT`] passed); returns whether
    /// everything in flight completed.
    pub fn run(mut self) -> io::Result<bool> {
        let start = Instant::now();
        let wake = self.ctx.mailboxes.clone();
        let index = self.ctx.index;
        late::install_waker(std::sync::Arc::new(move || wake[index].wake().notify()));
        let settings = &self.ctx.settings;
        let mut idle = IdlePolicy::new(settings.idle, settings.spin, start);
        let mut window_bound = settings.batch_window;
        if !window_bound.is_zero() && !self.backend.supports_window() {
            tracing::warn!(
                worker = self.ctx.index,
                "idle.batch_window_us is set, but this backend cannot hold a wait open (io_uring's minimum-wait \
                 timeout needs Linux >= 6.12; the mmsg driver has none): every arrival wakes the worker"
            );
            window_bound = Duration::ZERO;
        }
        let mut batch = BatchWindow::new(window_bound, start);
        let mut pacer = PublishPacer::new(start);
        let mut stats_pacer = self.ctx.stats_pacer(start);
        let mut stop_deadline = None;
        loop {
            let stopping = stop_deadline.is_some();
            self.backend.arm(!stopping && self.ctx.mailbox().receiving())?;
            let now = Instant::now();
            let block = idle.may_block(now)
                && !self.ctx.incoming().has_ready()
                && !self.ctx.mailbox().has_commands()
                && !late::has_ready();
            if block && pacer.before_block(now) {
                self.publish();
            }
            // Blocking: wake for the next interceptor timer, statistics round or publication at the latest.
            let until = self.forwarder.next_timer().map_or(stats_pacer.next(), |at| at.min(stats_pacer.next()));
            let until = pacer.deadline().map_or(until, |at| at.min(until));
            let window_us = if self.backend.behind() { 0 } else { batch.window_us() };
            self.backend.wait(Wait { block, until, window_us })?;
            let now = Instant::now();
            let reaped = self.receive(now)?;
            batch.received(reaped.datagrams, now);
            let mut worked = reaped.events > 0;
            worked |= self.process_handovers(now);
            worked |= self.process_late(now);
            worked |= self.run_timers(now);
            // Async plugins' threads that got copies in this iteration: woken once each, not per copy.
            late::wake_deferred();
            self.backend.flush(self.forwarder.counters_mut())?;
            if self.latency.has_pending() {
                self.latency.submitted(now, Instant::now());
            }
            worked |= self.ctx.apply_commands(&mut self.forwarder, &mut pacer, now);
            self.ctx.publish_stats_if_due(&mut stats_pacer, &mut self.forwarder, now);
            if worked {
                idle.worked(now);
            }
            if pacer.after_iteration(worked, now) {
                self.publish();
            }
            if !stopping && self.ctx.mailbox().stop_requested() {
                self.backend.stop()?;
                stop_deadline = Some(now + DRAIN_TIMEOUT);
            }
            if let Some(deadline) = stop_deadline {
                let quiet = self.backend.quiet();
                if quiet || now >= deadline {
                    self.publish();
                    self.ctx.numbering.publish(self.ctx.index, &self.forwarder);
                    return Ok(quiet);
                }
            }
        }
    }

    /// Takes every completion the last wait brought: datagrams to the core, unreachable destinations to the
    /// forwarder's events.
    fn receive(&mut self, now: Instant) -> io::Result<Reaped> {
        let mut reaped = Reaped::default();
        while let Some(event) = self.backend.next(self.forwarder.counters_mut())? {
            reaped.events += 1;
            match event {
                Event::Datagram { socket, src, rx } => {
                    reaped.datagrams += 1;
                    let bytes = self.backend.datagram(&rx);
                    let outcome = self.forwarder.on_datagram(now, socket, src, bytes, &mut self.transmits);
                    if let Outcome::Handover { owner } = outcome {
                        self.ctx.hand_over(owner, src, socket, 1, bytes, self.forwarder.counters_mut());
                    }
                    self.drain(Some(&rx), true);
                    self.backend.recycle(rx);
                }
                Event::Unreachable { dest, errno } => self.forwarder.note_unreachable(dest, errno),
            }
        }
        Ok(reaped)
    }

    /// Hands the core's queued transmits to the backend (`from`: the datagram forwards take their payload from);
    /// what it refuses is counted. `received`: they answer a datagram received in this iteration (its forwarding
    /// latency is recorded at the flush). A datagram a plugin rewrote is copied once into a buffer of the backend,
    /// which its forwards then take their payload from (as `from` for the datagram as received); without a buffer to
    /// spare, each of its forwards is sent as an assembled copy.
    fn drain(&mut self, from: Option<&B::Rx>, received: bool) {
        Self::drain_into(
            &mut self.backend,
            &mut self.forwarder,
            &mut self.transmits,
            &mut self.latency,
            from,
            received,
        );
    }

    /// [`Self::drain`] on the loop's parts (for a caller that holds some of them borrowed).
    fn drain_into(
        backend: &mut B,
        forwarder: &mut Forwarder,
        transmits: &mut Transmits,
        latency: &mut LatencyRecorder,
        from: Option<&B::Rx>,
        received: bool,
    ) {
        if transmits.is_empty() {
            return;
        }
        if received {
            latency.produced();
        }
        let body = transmits.rewritten().and_then(|body| backend.copy_in(body));
        let refused: Refused = transmits.drain_with(body.is_some(), |transmit, rewritten| {
            backend.transmit(if rewritten { body.as_ref() } else { from }, transmit)
        });
        if let Some(body) = body {
            backend.recycle(body);
        }
        if !refused.is_none() {
            forwarder.counters_mut().refused_at_send(refused);
        }
    }

    /// Forwards packets other workers handed over (copied into one of the backend's buffers, so sends can
    /// reference them).
    fn process_handovers(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(packet) = self.ctx.incoming().take() {
            any = true;
            let bytes = &packet.data[..packet.len];
            match self.backend.copy_in(bytes) {
                Some(rx) => {
                    let handovers = packet.handovers;
                    let outcome = self.forwarder.on_handover(
                        now,
                        packet.socket,
                        packet.src,
                        bytes,
                        handovers,
                        &mut self.transmits,
                    );
                    if let Outcome::Handover { owner } = outcome {
                        // Along an SSRC alias or a feedback route to the worker holding the stream or subscription.
                        let counters = self.forwarder.counters_mut();
                        self.ctx.hand_over(owner, packet.src, packet.socket, handovers + 1, bytes, counters);
                    }
                    self.drain(Some(&rx), false);
                    self.backend.recycle(rx);
                }
                None => self.forwarder.counters_mut().count_drop(crate::core::DropReason::HandoverFull),
            }
            self.ctx.incoming().recycle(packet);
        }
        any
    }

    /// Emits what async plugins' threads sent back (at most [`LATE_PER_ITERATION`] packets, so receiving goes on);
    /// what they send is copied.
    fn process_late(&mut self, now: Instant) -> bool {
        let (backend, forwarder, transmits, latency) =
            (&mut self.backend, &mut self.forwarder, &mut self.transmits, &mut self.latency);
        let taken = late::take(LATE_PER_ITERATION, |packet| {
            forwarder.on_late(now, packet, transmits);
            Self::drain_into(backend, forwarder, transmits, latency, None, false);
        });
        taken > 0
    }

    /// Runs the interceptors' timers that are due; what they send is copied.
    fn run_timers(&mut self, now: Instant) -> bool {
        if self.forwarder.next_timer().is_none_or(|at| at > now) {
            return false;
        }
        self.forwarder.on_timers(now, &mut self.transmits);
        self.drain(None, false);
        true
    }

    /// Publishes the counters, with the pool gauge and the kernel's drops on the backend's sockets, and the
    /// forwarding-latency histogram.
    fn publish(&mut self) {
        let (pool, drops) = (self.backend.pool_in_use(), self.backend.kernel_drops());
        self.ctx.publish(self.forwarder.counters_mut(), pool, drops, &mut self.latency);
    }
}
