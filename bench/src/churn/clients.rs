//! The churn clients: extra subscriptions (and, when asked, whole sessions) created and deleted through
//! the control API, as fast as it answers or at a set rate.
//!
//! Owns the churn thread ([`Churn::start`]): pinned to the bench core, it runs a current-thread tokio
//! runtime, connects to the API, binds a throwaway loopback socket and makes it an extra endpoint of
//! the scenario's session, reports ready, then runs `concurrency` clients on one shared connection.
//! A client runs cycles of operations:
//! - a subscription cycle: client `i` subscribes the throwaway endpoint to a stream of the session
//!   (rotating over them) as subscription `churn-i`, and unsubscribes it;
//! - with [`ChurnMix::Everything`], every other cycle is a lifecycle cycle ([`super::lifecycle`]): a
//!   session of its own with two endpoints, a stream and a subscription, created and then taken apart
//!   one delete at a time, so every kind of object the API has is made and freed.
//!
//! A successful create or delete is one operation, counted in the 1 s window it completed in, with its
//! latency, and in the live counts ([`Churn::counts`]) a sampler reads while the churn runs. Failures
//! are counted by status code. Operations start as fast as the API answers, or on a drift-free
//! schedule of [`ChurnPlan::ops_per_s`] for all clients together ([`crate::pace::Pacer`], one per
//! client at its share of the rate). A task on the same runtime counts the extra copies that reach
//! the throwaway socket (the proof that the extra subscriptions forwarded). At the end the extra
//! endpoints and any lifecycle session left over are deleted, and the session's subscription count is
//! read back.
//!
//! Must never start an operation after the window ends or [`Churn::stop`] (a started create is always
//! followed by its delete), nor run more than [`MAX_OPERATIONS`] operations, nor send anywhere but
//! loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::net::UdpSocket;

use crate::account::latency_histogram;
use crate::control::{Control, ControlError, RPC_TIMEOUT};
use crate::pace::Pacer;

use super::lifecycle;

/// Most operations (successful or not) one churn run attempts, all clients together.
pub const MAX_OPERATIONS: u64 = 10_000_000;
/// Id prefix of the throwaway endpoints in the scenario's session (one per client).
pub const CHURN_ENDPOINT_ID: &str = "churn-sink";
/// Highest paced operation rate, operations/s (all clients together).
pub const MAX_OPS_PER_S: f64 = 100_000.0;

/// The endpoint churn client `index` subscribes (`churn-sink-<index>`, at the churn sink's address).
pub fn churn_endpoint(index: usize) -> String {
    format!("{CHURN_ENDPOINT_ID}-{index}")
}
/// Outgoing SSRC of client 0's extra subscription; client `i` uses this plus `i`.
pub const CHURN_SSRC_BASE: u32 = 0x6000_0000;
/// Pause after a failed operation, so a persistent error does not become a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(1);
/// Longest a paced client sleeps before it looks at the stop flag again.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Which cycles the clients run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChurnMix {
    /// Only subscriptions of the scenario's streams to the throwaway endpoints.
    Subscriptions,
    /// Subscription cycles alternating with lifecycle cycles (session, endpoints, stream, subscription).
    Everything,
}

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
    /// How long operations are started (at most; [`Churn::stop`] ends it earlier).
    pub duration: Duration,
    /// Core the churn thread is pinned to.
    pub core: usize,
    /// Operations per second of all clients together; `None`: as fast as the API answers.
    pub ops_per_s: Option<f64>,
    /// Which cycles.
    pub mix: ChurnMix,
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

/// Operations so far, read while the churn runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChurnCounts {
    /// Successful operations.
    pub operations: u64,
    /// Failed operations.
    pub errors: u64,
}

/// The live counters the clients add to.
#[derive(Debug, Default)]
struct Live {
    operations: AtomicU64,
    errors: AtomicU64,
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
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
}

impl Churn {
    /// Starts the churn thread and waits (at most [`RPC_TIMEOUT`] twice) until it is connected and
    /// its endpoint exists; operations start as this returns.
    pub fn start(plan: ChurnPlan) -> Result<Churn, ControlError> {
        if let Some(rate) = plan.ops_per_s.filter(|r| !(r.is_finite() && *r > 0.0 && *r <= MAX_OPS_PER_S)) {
            return Err(ControlError::Mismatch {
                what: "the churn rate".into(),
                expected: format!("0 < operations/s <= {MAX_OPS_PER_S}"),
                got: rate.to_string(),
            });
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let live = Arc::new(Live::default());
        let stop = Arc::new(AtomicBool::new(false));
        let shared = (Arc::clone(&live), Arc::clone(&stop));
        let handle = std::thread::Builder::new()
            .name("bench-churn".into())
            .spawn(move || {
                core_affinity::set_for_current(core_affinity::CoreId { id: plan.core });
                let runtime = crate::control::runtime()?;
                runtime.block_on(churn(plan, shared, ready_tx))
            })
            .map_err(ControlError::Runtime)?;
        match ready_rx.recv_timeout(RPC_TIMEOUT * 2) {
            Ok(()) => Ok(Churn { handle, live, stop }),
            // The thread ended (with its error) or hangs; its error is the better message.
            Err(_) => Err(match handle.join() {
                Ok(Err(e)) => e,
                _ => ControlError::Runtime(std::io::Error::other("the churn thread did not get ready")),
            }),
        }
    }

    /// Operations so far, all clients together.
    pub fn counts(&self) -> ChurnCounts {
        ChurnCounts {
            operations: self.live.operations.load(Ordering::Relaxed),
            errors: self.live.errors.load(Ordering::Relaxed),
        }
    }

    /// Ends the window now: no operation starts after this (started cycles finish their deletes).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the churn to end and returns what it did.
    pub fn finish(self) -> Result<ChurnOutcome, ControlError> {
        self.handle.join().map_err(|_| ControlError::Runtime(std::io::Error::other("the churn thread panicked")))?
    }
}

async fn churn(
    plan: ChurnPlan,
    (live, stop): (Arc<Live>, Arc<AtomicBool>),
    ready: mpsc::Sender<()>,
) -> Result<ChurnOutcome, ControlError> {
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
        // Client i's share of the rate, its schedule shifted by i / concurrency of a period.
        let pacer = plan.ops_per_s.map(|rate| {
            let share = rate / plan.concurrency as f64;
            Pacer::new(share, 0, i as f64 / plan.concurrency as f64, u64::MAX)
        });
        let client = Client {
            control: control.clone(),
            plan: Arc::clone(&plan),
            index: i,
            budget: Arc::clone(&budget),
            live: Arc::clone(&live),
            stop: Arc::clone(&stop),
            pacer,
            sink: sink_addr,
            start,
            deadline,
            windows,
        };
        clients.spawn(client.run());
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
        if plan.mix == ChurnMix::Everything {
            control.delete_session(&lifecycle::session_id(i)).await?;
        }
    }
    // Copies already on their way when the endpoint went.
    tokio::time::sleep(Duration::from_millis(20)).await;
    drain.abort();
    let subscriptions_after = control.session(&plan.session_id).await?.subscriptions;
    Ok(ChurnOutcome { stats, elapsed, extra_copies: extra_copies.load(Ordering::Relaxed), subscriptions_after })
}

/// Whether an operation made or removed something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// A create.
    Create,
    /// A delete.
    Delete,
}

/// One churn client.
pub(super) struct Client {
    pub(super) control: Control,
    pub(super) plan: Arc<ChurnPlan>,
    pub(super) index: usize,
    budget: Arc<AtomicU64>,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    pacer: Option<Pacer>,
    /// The throwaway socket's address.
    pub(super) sink: SocketAddr,
    start: Instant,
    deadline: Instant,
    windows: usize,
}

impl Client {
    /// Whether operations may still start (inside the window, not stopped).
    pub(super) fn open(&self) -> bool {
        is_open(self.deadline, &self.stop)
    }

    /// Waits for this client's next slot (when paced) and takes one operation from the shared budget.
    /// False when the cycle must end: the budget is spent, or the window closed and this is not a
    /// `cleanup` (a delete owed for something created).
    pub(super) async fn admit(&mut self, stats: &mut ChurnStats, cleanup: bool) -> bool {
        if let Some(pacer) = &mut self.pacer {
            loop {
                if !is_open(self.deadline, &self.stop) {
                    if cleanup {
                        break;
                    }
                    return false;
                }
                let now_ns = nanos(self.start.elapsed());
                if pacer.poll(now_ns) {
                    break;
                }
                let due_ns = pacer.next_due_ns().unwrap_or(now_ns);
                let wait = Duration::from_nanos(due_ns.saturating_sub(now_ns)).min(STOP_POLL);
                tokio::time::sleep(wait).await;
            }
        } else if !cleanup && !self.open() {
            return false;
        }
        if self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1)).is_err() {
            stats.capped = true;
            return false;
        }
        true
    }

    /// Counts the outcome of an operation that began at `began`; true when it succeeded. A failure is
    /// counted by `code` and followed by a short pause.
    pub(super) async fn settle<T>(
        &self,
        stats: &mut ChurnStats,
        op: Op,
        began: Instant,
        outcome: Result<T, String>,
    ) -> bool {
        match outcome {
            Ok(_) => {
                let done = Instant::now();
                let latency = match op {
                    Op::Create => {
                        stats.creates += 1;
                        &mut stats.create_latency_ns
                    }
                    Op::Delete => {
                        stats.deletes += 1;
                        &mut stats.delete_latency_ns
                    }
                };
                latency.saturating_record(nanos(done - began));
                let window = (done.duration_since(self.start).as_secs() as usize).min(self.windows - 1);
                stats.ops_per_window[window] += 1;
                self.live.operations.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(code) => {
                *stats.errors.entry(code).or_default() += 1;
                self.live.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(ERROR_BACKOFF).await;
                false
            }
        }
    }

    async fn run(mut self) -> ChurnStats {
        let mut stats = ChurnStats::new(self.windows);
        let mut subscription_cycles = 0usize;
        let mut lifecycle_next = false;
        loop {
            let go_on = if lifecycle_next {
                lifecycle::cycle(&mut self, &mut stats).await
            } else {
                subscription_cycles += 1;
                self.subscription_cycle(&mut stats, subscription_cycles - 1).await
            };
            if !go_on {
                break;
            }
            lifecycle_next = self.plan.mix == ChurnMix::Everything && !lifecycle_next;
        }
        stats
    }

    /// Subscribes the throwaway endpoint to the `n`-th stream (rotating) and unsubscribes it; false
    /// when the churn is over.
    async fn subscription_cycle(&mut self, stats: &mut ChurnStats, n: usize) -> bool {
        let session = self.plan.session_id.clone();
        let id = format!("churn-{}", self.index);
        let streams = self.plan.stream_ids.len().max(1);
        let stream = self.plan.stream_ids.get((self.index + n) % streams).cloned().unwrap_or_default();
        if !self.admit(stats, false).await {
            return false;
        }
        let began = Instant::now();
        let endpoint = churn_endpoint(self.index);
        let out_ssrc = CHURN_SSRC_BASE + self.index as u32;
        let created = self.control.subscribe(&session, &id, &stream, &endpoint, out_ssrc).await;
        if !self.settle(stats, Op::Create, began, created.map_err(|s| status_code(&s))).await {
            return true;
        }
        // The subscription exists and must go: retried inside the window; past it the endpoint's deletion
        // cleans up.
        loop {
            if !self.admit(stats, true).await {
                return false;
            }
            let began = Instant::now();
            let deleted = self.control.unsubscribe(&session, &id).await;
            if self.settle(stats, Op::Delete, began, deleted.map_err(|s| status_code(&s))).await || !self.open() {
                return true;
            }
        }
    }
}

/// Whether operations may start: before `deadline` and not stopped.
fn is_open(deadline: Instant, stop: &AtomicBool) -> bool {
    Instant::now() < deadline && !stop.load(Ordering::Relaxed)
}

/// The label a failed call is counted under: its gRPC code.
pub(super) fn status_code(status: &tonic::Status) -> String {
    format!("{:?}", status.code())
}

/// The label a failed [`Control`] call is counted under: its gRPC code, or what else went wrong.
pub(super) fn error_code(error: &ControlError) -> String {
    match error {
        ControlError::Rpc { code, .. } => format!("{code:?}"),
        ControlError::Mismatch { .. } => "Mismatch".into(),
        _ => "Transport".into(),
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
