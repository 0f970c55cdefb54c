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

use ringfwd_dataplane::control::Envelope;
use ringfwd_dataplane::control::Notifier;
use ringfwd_dataplane::control::WorkerHandle;
use ringfwd_dataplane::control::{Command, CommandError};
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use ringfwd_dataplane::control::Notifier;
    use ringfwd_dataplane::control::{Ack, Mailbox};
    use ringfwd_dataplane::control::{Command, StreamId};
    use ringfwd_dataplane::control::{SharedCounters, WorkerHandle};

    use super::*;

    fn handle(capacity: usize, wake: &Arc<Notifier>) -> WorkerHandle {
        let mailbox = Arc::new(Mailbox::new(capacity, wake.clone()).unwrap());
        let stats = Arc::new(ringfwd_dataplane::control::StatsRing::new(1));
        let events = Arc::new(ringfwd_dataplane::control::EventRing::new(1));
        let (counters, running) = (Arc::new(SharedCounters::default()), Arc::new(true.into()));
        let numbering = Arc::new(ringfwd_dataplane::control::NumberingRing::new(1));
        WorkerHandle { index: 0, core: 0, mailbox, counters, stats, events, numbering, running }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_worker_that_never_acknowledges_times_out_and_a_late_ack_frees_its_slot() {
        let wake = Arc::new(Notifier::new().unwrap());
        let worker = handle(1, &wake);
        let client = CommandClient::start(vec![worker.clone()], wake.clone(), Duration::from_millis(50)).unwrap();
        let started = Instant::now();
        let err = client.execute(0, Command::RemoveStream { id: StreamId(1) }).await.unwrap_err();
        assert!(matches!(err, ExecError::Timeout { worker: 0, .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // The ring holds one command, still unacknowledged: the next one waits for its permit and times out too.
        assert!(matches!(
            client.execute(0, Command::RemoveStream { id: StreamId(2) }).await,
            Err(ExecError::Timeout { .. })
        ));
        // The worker finally applies the first command: its late acknowledgement frees the slot.
        let envelope = worker.mailbox.next_command().expect("queued");
        assert!(worker.mailbox.ack(Ack { seq: envelope.seq, result: Ok(()) }));
        worker.mailbox.notify_control();
        let deadline = Instant::now() + Duration::from_secs(2);
        let answered = loop {
            let pending = tokio::spawn({
                let client = client.clone();
                async move { client.execute(0, Command::RemoveStream { id: StreamId(3) }).await }
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Some(e) = worker.mailbox.next_command() {
                worker.mailbox.ack(Ack { seq: e.seq, result: Ok(()) });
                worker.mailbox.notify_control();
                break pending.await.unwrap();
            }
            let _ = pending.await;
            assert!(Instant::now() < deadline, "the slot was never freed");
        };
        assert!(answered.is_ok(), "{answered:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unknown_worker_is_an_error() {
        let wake = Arc::new(Notifier::new().unwrap());
        let client = CommandClient::start(vec![handle(4, &wake)], wake, Duration::from_millis(50)).unwrap();
        assert!(matches!(
            client.execute(3, Command::RemoveStream { id: StreamId(1) }).await,
            Err(ExecError::NoWorker { worker: 3 })
        ));
    }
}
