//! Commands to the workers and their acknowledgements.
//!
//! Owns the sequence numbers, the table of commands waiting for an acknowledgement and the thread that collects
//! acknowledgements when a worker signals the control eventfd (a plain thread blocked in `poll`, so the control
//! plane needs no `unsafe` descriptor registration). Keeps at most the ring's capacity of commands
//! outstanding per worker (a semaphore permit travels with each command until its acknowledgement is drained),
//! so a worker's acknowledgement ring can never overflow. A caller waits a bounded time; a late acknowledgement
//! is still collected and frees its permit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ringfwd_dataplane::core::{Command, CommandError};
use ringfwd_dataplane::runtime::mailbox::Envelope;
use ringfwd_dataplane::runtime::notify::Notifier;
use ringfwd_dataplane::runtime::WorkerHandle;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Why a command did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The worker applied it and refused it.
    #[error("worker {worker}: {source}")]
    Refused {
        /// Worker index.
        worker: usize,
        /// Its reason.
        #[source]
        source: CommandError,
    },
    /// No acknowledgement within the command timeout.
    #[error("worker {worker} did not acknowledge within {timeout:?}")]
    Timeout {
        /// Worker index.
        worker: usize,
        /// The configured `control.command_timeout_ms`.
        timeout: Duration,
    },
    /// The worker's command ring was full.
    #[error("worker {worker}: command ring full")]
    RingFull {
        /// Worker index.
        worker: usize,
    },
    /// No such worker.
    #[error("no worker {worker}")]
    NoWorker {
        /// The index asked for.
        worker: usize,
    },
}

type Waiter = (oneshot::Sender<Result<(), CommandError>>, OwnedSemaphorePermit);

/// Sends commands to workers and waits for their acknowledgements.
pub struct CommandClient {
    workers: Vec<WorkerHandle>,
    permits: Vec<Arc<Semaphore>>,
    waiting: Arc<Mutex<HashMap<(usize, u64), Waiter>>>,
    next_seq: AtomicU64,
    timeout: Duration,
}

impl CommandClient {
    /// A client for `workers`; starts the acknowledgement collector thread (it ends with the client).
    pub fn start(
        workers: Vec<WorkerHandle>,
        control_wake: Arc<Notifier>,
        timeout: Duration,
    ) -> std::io::Result<Arc<Self>> {
        let permits = workers.iter().map(|w| Arc::new(Semaphore::new(w.mailbox.capacity()))).collect();
        let client = Arc::new(CommandClient {
            workers,
            permits,
            waiting: Arc::new(Mutex::new(HashMap::new())),
            next_seq: AtomicU64::new(1),
            timeout,
        });
        let weak = Arc::downgrade(&client);
        std::thread::Builder::new().name("ringfwd-acks".into()).spawn(move || collect(weak, control_wake))?;
        Ok(client)
    }

    /// The workers.
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// Sends `command` to `worker` and waits until it was applied.
    pub async fn execute(&self, worker: usize, command: Command) -> Result<(), ExecError> {
        let handle = self.workers.get(worker).ok_or(ExecError::NoWorker { worker })?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timeout = || ExecError::Timeout { worker, timeout: self.timeout };
        let permit = tokio::time::timeout_at(deadline, self.permits[worker].clone().acquire_owned())
            .await
            .map_err(|_| timeout())?
            .expect("command semaphores are never closed");
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("waiting table poisoned").insert((worker, seq), (tx, permit));
        if let Err(full) = handle.mailbox.send(Envelope { seq, command }) {
            drop(full);
            self.waiting.lock().expect("waiting table poisoned").remove(&(worker, seq));
            return Err(ExecError::RingFull { worker });
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result.map_err(|source| ExecError::Refused { worker, source }),
            Ok(Err(_)) | Err(_) => Err(timeout()),
        }
    }

    /// Takes every acknowledgement the workers posted and completes its waiter.
    fn drain_acks(&self) {
        let mut waiting = self.waiting.lock().expect("waiting table poisoned");
        for handle in &self.workers {
            while let Some(ack) = handle.mailbox.take_ack() {
                if let Some((tx, permit)) = waiting.remove(&(handle.index, ack.seq)) {
                    let _ = tx.send(ack.result);
                    drop(permit);
                }
            }
        }
    }
}

/// How often the collector checks whether its client is gone.
const COLLECT_POLL: Duration = Duration::from_millis(100);

fn collect(client: Weak<CommandClient>, wake: Arc<Notifier>) {
    loop {
        let notified = wake.wait(COLLECT_POLL);
        let Some(client) = client.upgrade() else {
            return;
        };
        if notified {
            wake.drain();
        }
        client.drain_acks();
    }
}
