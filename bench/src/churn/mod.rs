//! The churn measurement: how many subscribe/unsubscribe operations per second ringfwd's control
//! plane sustains while its data plane forwards the conference scenario, and whether forwarding
//! loses packets meanwhile.
//!
//! Owns `ringfwd-bench churn`. ringfwd runs alone (worker on the forwarder core, control plane on
//! the bench core, as in `compare`), routed for the conference scenario through its API, at a fixed
//! offered rate ([`ChurnOptions::out_pps`], by default [`DEFAULT_OUT_PPS`] copies/s: the same on every
//! machine, and well below the conference rate ringfwd sustained in `compare --quick` on the 2-core
//! development machine, 176 000 to 704 000 copies/s over noisy runs). After a warm-up it forwards one
//! quiet reference step without churn, then the measured window: the [`clients`] churn extra
//! subscriptions from a thread pinned to the bench core while the sink accounts the scenario's 220
//! original subscriptions over the whole window. [`report`] prints the table.
//!
//! Must never run unbounded (window at most [`MAX_SECONDS`], at most [`MAX_CONCURRENCY`] clients, the
//! clients' own operation cap) nor send anywhere but loopback.

pub mod clients;
pub mod lifecycle;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ringfwd_tuning::IdleStrategy;

use crate::compare::{measured_by_thread, CompareError};
use crate::control::{self, ControlError};
use crate::forwarder::Binaries;
use crate::launch::{self, LaunchError};
use crate::scenario::Scenario;
use clients::{Churn, ChurnMix, ChurnPlan};

/// Default offered output rate, copies/s (scale 4.5 of the conference: 990 packets/s in).
pub const DEFAULT_OUT_PPS: f64 = 100_000.0;
/// Longest churn window.
pub const MAX_SECONDS: f64 = 120.0;
/// Most concurrent churn clients.
pub const MAX_CONCURRENCY: usize = 64;
/// Longest quiet reference step.
const REFERENCE_MAX: Duration = Duration::from_secs(3);
/// Warm-up after routing.
const WARMUP: Duration = Duration::from_millis(300);

/// What a churn run does.
#[derive(Debug, Clone)]
pub struct ChurnOptions {
    /// The churn window (and the measured forwarding step).
    pub duration: Duration,
    /// Concurrent churn clients.
    pub concurrency: usize,
    /// Offered output rate of the conference, copies/s.
    pub out_pps: f64,
    /// Where the binaries are.
    pub binaries: Binaries,
    /// ringfwd's idle strategy.
    pub idle: IdleStrategy,
    /// ringfwd's chains: its default interceptors or none, and plugins.
    pub chains: crate::chains::Chains,
    /// Where configs, the token and logs go.
    pub work_dir: PathBuf,
    /// Cores of ringfwd and of the load.
    pub pinning: launch::Pinning,
    /// The scenario forwarded meanwhile (`churn.toml` by default: the conference).
    pub scenario: Scenario,
}

/// Latency percentiles of one kind of operation, µs.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LatencyUs {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl LatencyUs {
    pub(crate) fn of(h: &hdrhistogram::Histogram<u64>) -> LatencyUs {
        if h.is_empty() {
            return LatencyUs::default();
        }
        let us = |ns: u64| ns as f64 / 1e3;
        LatencyUs { p50_us: us(h.value_at_quantile(0.5)), p99_us: us(h.value_at_quantile(0.99)), max_us: us(h.max()) }
    }
}

pub use crate::compare::Forwarding;

/// The figures of a churn run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChurnResult {
    /// Always the conference.
    pub scenario: String,
    /// What it is.
    pub description: String,
    /// Offered output rate, copies/s.
    pub out_pps: f64,
    /// The churn window, s.
    pub duration_s: f64,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Core of ringfwd's worker.
    pub worker_core: usize,
    /// Core of generator, sink, churn clients and ringfwd's control plane.
    pub bench_core: usize,
    /// Subscriptions created.
    pub creates: u64,
    /// Subscriptions deleted.
    pub deletes: u64,
    /// `creates + deletes`.
    pub operations: u64,
    /// Failed operations.
    pub errors: u64,
    /// Failed operations by status code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Successful operations in each full 1 s window.
    pub ops_per_window: Vec<u64>,
    /// Median of `ops_per_window`, operations/s.
    pub ops_per_s_median: f64,
    /// `operations` over the whole churn time, operations/s.
    pub ops_per_s_total: f64,
    /// RPC latency of creates.
    pub create_latency: LatencyUs,
    /// RPC latency of deletes.
    pub delete_latency: LatencyUs,
    /// Whether the operation cap cut the churn short.
    pub capped: bool,
    /// Extra copies that reached the throwaway endpoint.
    pub extra_copies: u64,
    /// Subscriptions in the session after the churn (must be the scenario's).
    pub subscriptions_after: u32,
    /// The scenario's subscriptions.
    pub subscriptions_expected: u32,
    /// Subscriptions in the workers' tables when ringfwd stopped (its final `subscriptions` gauge):
    /// the scenario's when every churned entry was freed.
    pub worker_subscriptions_after: Option<u64>,
    /// Control commands the workers rejected over the whole run (final `commands_failed`).
    pub commands_failed: Option<u64>,
    /// The quiet reference step (no churn).
    pub quiet: Forwarding,
    /// The step during the churn.
    pub churn: Forwarding,
}

/// Why a churn run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ChurnError {
    /// Setting up or stopping the forwarder failed, or a step failed.
    #[error(transparent)]
    Compare(#[from] CompareError),
    /// The control API failed outside the counted operations.
    #[error("churn: {0}")]
    Control(#[from] ControlError),
    /// Bad options.
    #[error("churn: {0}")]
    Options(String),
}

impl From<LaunchError> for ChurnError {
    fn from(e: LaunchError) -> ChurnError {
        ChurnError::Compare(e.into())
    }
}

fn io_err(what: &'static str) -> impl FnOnce(std::io::Error) -> ChurnError {
    move |source| ChurnError::Compare(CompareError::Io { what: what.into(), source })
}

/// Runs the churn measurement. Progress lines go to stderr.
pub fn run(options: &ChurnOptions) -> Result<ChurnResult, ChurnError> {
    let seconds = options.duration.as_secs_f64();
    if !(seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(ChurnError::Options(format!("the window must be 0 < s <= {MAX_SECONDS}, got {seconds}")));
    }
    if !(1..=MAX_CONCURRENCY).contains(&options.concurrency) {
        return Err(ChurnError::Options(format!(
            "concurrency must be 1..={MAX_CONCURRENCY}, got {}",
            options.concurrency
        )));
    }
    if !(options.out_pps.is_finite() && options.out_pps > 0.0) {
        return Err(ChurnError::Options(format!("out pps must be > 0, got {}", options.out_pps)));
    }
    std::fs::create_dir_all(&options.work_dir).map_err(io_err("creating the work directory"))?;
    let placement = launch::place(&options.pinning)?;
    let scenario = options.scenario.clone();
    let launch::RoutedRingfwd { mut rig, files, mut process, target, api } = launch::start_ringfwd(
        &scenario,
        &placement,
        options.idle,
        &options.chains,
        &options.binaries,
        &options.work_dir,
    )?;
    let proc = &mut process;
    let base = scenario.base_out_pps();
    let scale = options.out_pps / base;
    eprintln!("== churn: {} at {:.0} out pps", scenario.describe(), options.out_pps);
    measured_by_thread(&mut rig, target, proc, base, scale, WARMUP)?;
    let quiet = measured_by_thread(&mut rig, target, proc, base, scale, options.duration.min(REFERENCE_MAX))?;
    eprintln!("   quiet: lost {}, cpu {:.1} ms", quiet.step.lost, quiet.step.forwarder_cpu_ns as f64 / 1e6);

    let plan = ChurnPlan {
        api,
        token: control::read_token(&files.dev_token_file)?,
        session_id: files.session.id.clone(),
        stream_ids: files.session.streams.iter().map(|s| s.id.clone()).collect(),
        concurrency: options.concurrency,
        duration: options.duration,
        core: placement.bench_core,
        ops_per_s: None,
        mix: ChurnMix::Subscriptions,
    };
    let churn = Churn::start(plan)?;
    let during = measured_by_thread(&mut rig, target, proc, base, scale, options.duration);
    // The clients stop on their own at the window's end; wait for them even when the step failed.
    let outcome = churn.finish()?;
    let during = during?;
    let final_counters = process.stop().map_err(CompareError::from)?.unwrap_or_default();
    let total = |name: &str| final_counters["total"][name].as_u64();
    let stats = &outcome.stats;
    eprintln!("   churn: {} operations, {} errors, lost {}", stats.operations(), stats.error_count(), during.step.lost);

    let full_windows = (seconds.floor() as usize).clamp(1, stats.ops_per_window.len());
    let ops_per_window = stats.ops_per_window[..full_windows].to_vec();
    let median = crate::report::median(&ops_per_window.iter().map(|&n| n as f64).collect::<Vec<_>>());
    let elapsed_s = outcome.elapsed.as_secs_f64();
    Ok(ChurnResult {
        scenario: scenario.name.clone(),
        description: scenario.describe(),
        out_pps: options.out_pps,
        duration_s: seconds,
        concurrency: options.concurrency,
        worker_core: placement.worker_core,
        bench_core: placement.bench_core,
        creates: stats.creates,
        deletes: stats.deletes,
        operations: stats.operations(),
        errors: stats.error_count(),
        errors_by_code: stats.errors.clone(),
        // A window shorter than 1 s has no full window: its rate is the total.
        ops_per_s_median: if seconds < 1.0 { stats.operations() as f64 / seconds } else { median },
        ops_per_window,
        ops_per_s_total: if elapsed_s > 0.0 { stats.operations() as f64 / elapsed_s } else { 0.0 },
        create_latency: LatencyUs::of(&stats.create_latency_ns),
        delete_latency: LatencyUs::of(&stats.delete_latency_ns),
        capped: stats.capped,
        extra_copies: outcome.extra_copies,
        subscriptions_after: outcome.subscriptions_after,
        subscriptions_expected: u32::try_from(scenario.flows.len()).unwrap_or(u32::MAX),
        worker_subscriptions_after: total("subscriptions"),
        commands_failed: total("commands_failed"),
        quiet,
        churn: during,
    })
}
