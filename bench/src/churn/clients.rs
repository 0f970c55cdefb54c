//! The churn clients: extra subscriptions created and deleted as fast as the control API answers.
//!
//! Owns the churn thread ([`Churn::start`]): pinned to the bench core, it runs a current-thread tokio
//! runtime, connects to the API, binds a throwaway loopback socket and makes it an extra endpoint of
//! the scenario's session, reports ready, then runs `concurrency` clients on one shared connection.
//! Client `i` repeatedly subscribes the throwaway endpoint to a stream of the session (rotating over
//! them) as subscription `churn-i`, and unsubscribes it; a successful create or delete is one
//! operation, counted in the 1 s window it completed in, with its latency. Failures are counted by
//! status code. A task on the same runtime counts the extra copies that reach the throwaway socket
//! (the proof that the extra subscriptions forwarded). At the end the extra endpoint is deleted (with
//! anything left subscribed to it) and the session's subscription count is read back.
//!
//! Must never start an operation after the window ends (a started create is always followed by its
//! delete), nor run more than [`MAX_OPERATIONS`] operations, nor send anywhere but loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::net::UdpSocket;

use crate::account::latency_histogram;
use crate::control::{Control, ControlError, RPC_TIMEOUT};

/// Most operations (successful or not) one churn run attempts, all clients together.
pub const MAX_OPERATIONS: u64 = 10_000_000;
/// Id prefix of the throwaway endpoints in the scenario's session (one per client).
pub const CHURN_ENDPOINT_ID: &str = "churn-sink";

/// The endpoint churn client `index` subscribes (`churn-sink-<index>`, at the churn sink's address).
pub fn churn_endpoint(index: usize) -> String {
    format!("{CHURN_ENDPOINT_ID}-{index}")
}
/// Outgoing SSRC of client 0's extra subscription; client `i` uses this plus `i`.
pub const CHURN_SSRC_BASE: u32 = 0x6000_0000;
/// Pause after a failed operation, so a persistent error does not become a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(1);

/// What to churn.
#[derive(Debug, Clone)]
pub struct ChurnPlan {
    /// The control API (loopback).
    pub api: SocketAddr,
    /// Admin bearer token.
    pub token: String,
    /// The scenario's session.
    pub session_id: String,
    /// Streams of the session to subscribe to.
    pub stream_ids: Vec<String>,
    /// Concurrent clients.
    pub concurrency: usize,
    /// How long operations are started.
    pub duration: Duration,
    /// Core the churn thread is pinned to.
    pub core: usize,
}

/// What one client (or all of them) did.
#[derive(Debug, Clone)]
pub struct ChurnStats {
    /// Successful creates.
    pub creates: u64,
    /// Successful deletes.
    pub deletes: u64,
    /// Failed operations by status code.
    pub errors: BTreeMap<String, u64>,
    /// Successful operations per 1 s window since the start.
    pub ops_per_window: Vec<u64>,
    /// Latency of successful creates, ns.
    pub create_latency_ns: Histogram<u64>,
    /// Latency of successful deletes, ns.
    pub delete_latency_ns: Histogram<u64>,
    /// Whether [`MAX_OPERATIONS`] cut the run short.
    pub capped: bool,
}

impl ChurnStats {
    fn new(windows: usize) -> ChurnStats {
        ChurnStats {
            creates: 0,
            deletes: 0,
            errors: BTreeMap::new(),
            ops_per_window: vec![0; windows],
            create_latency_ns: latency_histogram(),
            delete_latency_ns: latency_histogram(),
            capped: false,
        }
    }

    fn merge(&mut self, other: &ChurnStats) {
        self.creates += other.creates;
        self.deletes += other.deletes;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        for (mine, theirs) in self.ops_per_window.iter_mut().zip(&other.ops_per_window) {
            *mine += theirs;
        }
        // Same bounds on both sides: adding cannot fail.
        let _ = self.create_latency_ns.add(&other.create_latency_ns);
        let _ = self.delete_latency_ns.add(&other.delete_latency_ns);
        self.capped |= other.capped;
    }

    /// Successful operations.
    pub fn operations(&self) -> u64 {
        self.creates + self.deletes
    }

    /// Failed operations.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What the churn thread hands back.
#[derive(Debug, Clone)]
pub struct ChurnOutcome {
    /// All clients together.
    pub stats: ChurnStats,
    /// From the first operation to the last completion.
    pub elapsed: Duration,
    /// Extra copies that reached the throwaway endpoint.
    pub extra_copies: u64,
    /// Subscriptions in the session once the extra endpoint was deleted.
    pub subscriptions_after: u32,
}

/// A running churn thread.
pub struct Churn {
    handle: JoinHandle<Result<ChurnOutcome, ControlError>>,
}

impl Churn {
    /// Starts the churn thread and waits (at most [`RPC_TIMEOUT`] twice) until it is connected and
    /// its endpoint exists; operations start as this returns.
    pub fn start(plan: ChurnPlan) -> Result<Churn, ControlError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("bench-churn".into())
            .spawn(move || {
                core_affinity::set_for_current(core_affinity::CoreId { id: plan.core });
                let runtime = crate::control::runtime()?;
                runtime.block_on(churn(plan, ready_tx))
            })
            .map_err(ControlError::Runtime)?;
        match ready_rx.recv_timeout(RPC_TIMEOUT * 2) {
            Ok(()) => Ok(Churn { handle }),
            // The thread ended (with its error) or hangs; its error is the better message.
            Err(_) => Err(match handle.join() {
                Ok(Err(e)) => e,
                _ => ControlError::Runtime(std::io::Error::other("the churn thread did not get ready")),
            }),
        }
    }

    /// Waits for the churn to end and returns what it did.
    pub fn finish(self) -> Result<ChurnOutcome, ControlError> {
        self.handle.join().map_err(|_| ControlError::Runtime(std::io::Error::other("the churn thread panicked")))?
    }
}

async fn churn(plan: ChurnPlan, ready: mpsc::Sender<()>) -> Result<ChurnOutcome, ControlError> {
    let mut control = Control::connect(plan.api, &plan.token).await?;
    let bind = |source| ControlError::Socket { what: "binding the churn endpoint's socket", source };
    let sink = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.map_err(bind)?;
    let sink_addr = sink.local_addr().map_err(bind)?;
    // One endpoint per client (all at the sink's address): an endpoint receives a stream by one subscription only,
    // and two clients may subscribe the same stream at once.
    for i in 0..plan.concurrency {
        control.create_endpoint(&plan.session_id, &churn_endpoint(i), sink_addr).await?;
    }
    let extra_copies = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&extra_copies);
    let drain = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while sink.recv(&mut buf).await.is_ok() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let _ = ready.send(());

    let start = Instant::now();
    let deadline = start + plan.duration;
    let windows = plan.duration.as_secs() as usize + 2;
    let budget = Arc::new(AtomicU64::new(MAX_OPERATIONS));
    let plan = Arc::new(plan);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..plan.concurrency {
        let client =
            Client { control: control.clone(), plan: Arc::clone(&plan), index: i, budget: Arc::clone(&budget) };
        clients.spawn(client.run(start, deadline, windows));
    }
    let mut stats = ChurnStats::new(windows);
    while let Some(done) = clients.join_next().await {
        if let Ok(client_stats) = done {
            stats.merge(&client_stats);
        }
    }
    let elapsed = start.elapsed();
    // Deleting the endpoint deletes anything still subscribed to it (after failed deletes).
    for i in 0..plan.concurrency {
        control.delete_endpoint(&plan.session_id, &churn_endpoint(i)).await?;
    }
    // Copies already on their way when the endpoint went.
    tokio::time::sleep(Duration::from_millis(20)).await;
    drain.abort();
    let subscriptions_after = control.session(&plan.session_id).await?.subscriptions;
    Ok(ChurnOutcome { stats, elapsed, extra_copies: extra_copies.load(Ordering::Relaxed), subscriptions_after })
}

/// One churn client.
struct Client {
    control: Control,
    plan: Arc<ChurnPlan>,
    index: usize,
    budget: Arc<AtomicU64>,
}

impl Client {
    /// Takes one operation from the shared budget; false when it is spent.
    fn take(&self) -> bool {
        self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1)).is_ok()
    }

    async fn run(mut self, start: Instant, deadline: Instant, windows: usize) -> ChurnStats {
        let mut stats = ChurnStats::new(windows);
        let session = self.plan.session_id.clone();
        let id = format!("churn-{}", self.index);
        let out_ssrc = CHURN_SSRC_BASE + self.index as u32;
        let streams = self.plan.stream_ids.len().max(1);
        let record = |stats: &mut ChurnStats, at: Instant| {
            let window = (at.duration_since(start).as_secs() as usize).min(windows - 1);
            stats.ops_per_window[window] += 1;
        };
        let fail = |stats: &mut ChurnStats, status: tonic::Status| {
            *stats.errors.entry(format!("{:?}", status.code())).or_default() += 1;
        };
        let mut n = self.index;
        // A subscription that exists and must go (after a failed delete).
        let mut pending_delete = false;
        while Instant::now() < deadline || pending_delete {
            if !self.take() {
                stats.capped = true;
                break;
            }
            if !pending_delete {
                let stream = self.plan.stream_ids.get(n % streams).cloned().unwrap_or_default();
                n += 1;
                let began = Instant::now();
                match self.control.subscribe(&session, &id, &stream, &churn_endpoint(self.index), out_ssrc).await {
                    Ok(_) => {
                        let done = Instant::now();
                        stats.creates += 1;
                        stats.create_latency_ns.saturating_record(nanos(done - began));
                        record(&mut stats, done);
                    }
                    Err(status) => {
                        fail(&mut stats, status);
                        tokio::time::sleep(ERROR_BACKOFF).await;
                        continue;
                    }
                }
                if !self.take() {
                    stats.capped = true;
                    break;
                }
            }
            let began = Instant::now();
            match self.control.unsubscribe(&session, &id).await {
                Ok(_) => {
                    let done = Instant::now();
                    stats.deletes += 1;
                    stats.delete_latency_ns.saturating_record(nanos(done - began));
                    record(&mut stats, done);
                    pending_delete = false;
                }
                Err(status) => {
                    fail(&mut stats, status);
                    // Past the window the endpoint's deletion cleans up; inside it, retry.
                    pending_delete = Instant::now() < deadline;
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
        }
        stats
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_merge_adds_everything() {
        let mut a = ChurnStats::new(3);
        a.creates = 2;
        a.deletes = 1;
        a.ops_per_window = vec![1, 2, 0];
        a.errors.insert("DeadlineExceeded".into(), 1);
        a.create_latency_ns.saturating_record(1000);
        let mut b = ChurnStats::new(3);
        b.creates = 5;
        b.deletes = 5;
        b.ops_per_window = vec![4, 0, 6];
        b.errors.insert("DeadlineExceeded".into(), 2);
        b.errors.insert("Unavailable".into(), 1);
        b.delete_latency_ns.saturating_record(2000);
        b.capped = true;
        a.merge(&b);
        assert_eq!((a.creates, a.deletes, a.operations(), a.error_count()), (7, 6, 13, 4));
        assert_eq!(a.ops_per_window, vec![5, 2, 6]);
        assert_eq!(a.errors["DeadlineExceeded"], 3);
        assert_eq!((a.create_latency_ns.len(), a.delete_latency_ns.len()), (1, 1));
        assert!(a.capped);
    }
}
