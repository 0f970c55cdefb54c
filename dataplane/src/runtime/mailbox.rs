//! The bounded lock-free rings between the control plane and one worker.
//!
//! Owns the command ring (control plane -> worker), the acknowledgement ring (worker -> control plane), the
//! worker's wake-up eventfd and its stop flag. Every command produces exactly one acknowledgement after the
//! worker applied it; the control plane keeps at most `capacity` commands outstanding per worker (see
//! [`Mailbox::capacity`]), so the acknowledgement ring, of the same capacity, can never overflow.
//!
//! Must never: block either side. A full command ring is an error the sender sees at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use super::notify::Notifier;
use crate::core::{Command, CommandError};

/// A command with the sequence number its acknowledgement will carry.
#[derive(Debug)]
pub struct Envelope {
    /// Chosen by the sender, unique per worker.
    pub seq: u64,
    /// What to apply.
    pub command: Command,
}

/// The worker's answer to one [`Envelope`].
#[derive(Debug)]
pub struct Ack {
    /// The envelope's sequence number.
    pub seq: u64,
    /// The outcome of applying it.
    pub result: Result<(), CommandError>,
}

/// The rings of one worker.
#[derive(Debug)]
pub struct Mailbox {
    commands: ArrayQueue<Envelope>,
    acks: ArrayQueue<Ack>,
    wake: Notifier,
    control_wake: Arc<Notifier>,
    stop: AtomicBool,
    /// Receives held: the worker applies commands, handles timers and handovers, but reads no socket (a process
    /// taking over from another, until that one stopped and the tables are restored).
    held: AtomicBool,
}

/// The command ring was full; the command is handed back.
#[derive(Debug)]
pub struct Full(pub Box<Envelope>);

impl Mailbox {
    /// Rings of `capacity` entries; `control_wake` is signalled when acknowledgements are ready.
    pub fn new(capacity: usize, control_wake: Arc<Notifier>) -> std::io::Result<Mailbox> {
        Ok(Mailbox {
            commands: ArrayQueue::new(capacity),
            acks: ArrayQueue::new(capacity),
            wake: Notifier::new()?,
            control_wake,
            stop: AtomicBool::new(false),
            held: AtomicBool::new(false),
        })
    }

    /// Control plane: holds (`true`) or releases the worker's receives; a release wakes it.
    pub fn hold_receives(&self, held: bool) {
        self.held.store(held, Ordering::Release);
        if !held {
            self.wake.notify();
        }
    }

    /// Worker: whether it may read its sockets.
    pub fn receiving(&self) -> bool {
        !self.held.load(Ordering::Acquire)
    }

    /// How many commands may be outstanding (sent, not yet acknowledged and drained).
    pub fn capacity(&self) -> usize {
        self.commands.capacity()
    }

    /// Commands queued and not yet taken by the worker (for the occupancy gauge).
    pub fn commands_queued(&self) -> usize {
        self.commands.len()
    }

    /// Control plane: queues a command and wakes the worker.
    pub fn send(&self, envelope: Envelope) -> Result<(), Full> {
        self.commands.push(envelope).map_err(|e| Full(Box::new(e)))?;
        self.wake.notify();
        Ok(())
    }

    /// Control plane: takes one acknowledgement.
    pub fn take_ack(&self) -> Option<Ack> {
        self.acks.pop()
    }

    /// Control plane: asks the worker to stop (it drains in-flight sends first).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify();
    }

    /// Worker: whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Worker: the next command, if any.
    pub fn next_command(&self) -> Option<Envelope> {
        self.commands.pop()
    }

    /// Worker: whether commands are waiting (cheap; checked every loop iteration).
    pub fn has_commands(&self) -> bool {
        !self.commands.is_empty()
    }

    /// Worker: posts an acknowledgement. Cannot fail while the sender respects [`Mailbox::capacity`]; if it
    /// is violated the acknowledgement is dropped and `false` returned (the sender then times out).
    pub fn ack(&self, ack: Ack) -> bool {
        self.acks.push(ack).is_ok()
    }

    /// Worker: wakes the control plane after posting acknowledgements.
    pub fn notify_control(&self) {
        self.control_wake.notify();
    }

    /// The worker's wake-up eventfd.
    pub fn wake(&self) -> &Notifier {
        &self.wake
    }
}
