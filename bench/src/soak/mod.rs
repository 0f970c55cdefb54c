//! `ringfwd-bench soak`: ringfwd forwarding for a long time at a set rate while its API is churned,
//! watched for growth.
//!
//! Owns the soak's driver ([`run`]). ringfwd is started and routed for a scenario as the other modes do
//! ([`crate::launch::start_ringfwd`]); the scenario's subscriptions are the untouched ones: nothing
//! changes them for the whole run. After a short warm-up the [`crate::churn`] clients start at the
//! asked rate, mixing subscription cycles on the scenario's streams (to throwaway endpoints) with
//! lifecycle cycles (whole sessions made and taken apart), and the run is cut into intervals: each is
//! one measurement step ([`crate::step`]) on the untouched subscriptions, after which the daemon's
//! footprint ([`crate::memory`]), CPU by thread and the churn's counts are sampled into a
//! [`SoakSample`], handed to the caller as it comes. At the end the churn stops, the registry is read
//! back, the daemon is stopped for its final counters, and [`verdict::judge`] decides. Between intervals
//! the generator pauses for the sink's drain (50 ms of quiet, at most 1 s), which is what makes each
//! interval's loss exact.
//!
//! Must never run past its duration plus each interval's bounded drain and overrun
//! ([`crate::step::DRAIN_MAX`], [`crate::step::OVERRUN_MAX`]) and the stop, nor send anywhere but
//! loopback; a daemon that dies ends the run with what was sampled and a failing verdict, never a panic.

pub mod rate;
pub mod report;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringfwd_tuning::IdleStrategy;

use crate::churn::clients::{Churn, ChurnCounts, ChurnMix, ChurnOutcome, ChurnPlan};
use crate::churn::LatencyUs;
use crate::compare::{measured_by_thread, CompareError, Forwarding};
use crate::control::{self, Control, ControlError};
use crate::forwarder::Binaries;
use crate::launch::{self, LaunchError, Pinning};
use crate::machine::Machine;
use crate::memory::footprint;
use crate::scenario::Scenario;
use crate::step::{DRAIN_MAX, OVERRUN_MAX};
use verdict::{judge, warmup_samples, Criteria, EndState, SoakSample, Verdict};

/// Longest soak.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Shortest interval.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// Longest interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(600);
/// Fewest intervals (a warm-up and enough to judge growth).
pub const MIN_INTERVALS: u64 = 3;
/// Most intervals.
pub const MAX_INTERVALS: u64 = 20_000;
/// Highest churn rate, API operations/s.
pub const MAX_CHURN_OPS_PER_S: f64 = 10_000.0;
/// Most churn clients.
pub const MAX_CONCURRENCY: usize = 16;
/// Unrecorded step after routing, before the churn starts.
const WARMUP: Duration = Duration::from_millis(300);

/// What a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// The scenario whose subscriptions stay untouched.
    pub scenario: Scenario,
    /// Packets/s the publishers send.
    pub in_pps: f64,
    /// How the rate was arrived at.
    pub rate_how: String,
    /// Total length of the sampled intervals.
    pub duration: Duration,
    /// Length of one interval (one sample).
    pub interval: Duration,
    /// API operations/s of the churn (0: none).
    pub churn_ops_per_s: f64,
    /// Concurrent churn clients.
    pub concurrency: usize,
    /// The pass/fail bounds.
    pub criteria: Criteria,
    /// Binaries.
    pub binaries: Binaries,
    /// ringfwd's idle strategy.
    pub idle: IdleStrategy,
    /// ringfwd's chains: its default interceptors or none, and plugins.
    pub chains: crate::chains::Chains,
    /// Configs, the token and logs.
    pub work_dir: PathBuf,
    /// Cores.
    pub pinning: Pinning,
}

impl SoakOptions {
    /// The number of intervals (`duration / interval`, rounded down).
    pub fn intervals(&self) -> u64 {
        (self.duration.as_secs_f64() / self.interval.as_secs_f64().max(1e-3)).floor() as u64
    }

    /// Checks every bound; the message names the flag and the value.
    pub fn validate(&self) -> Result<(), SoakError> {
        let bad = |flag: &str, value: String, rule: String| Err(SoakError::Options(format!("{flag} {value}: {rule}")));
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return bad("--duration", format!("{:?}", self.duration), format!("must be > 0 and <= {MAX_DURATION:?}"));
        }
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.interval) {
            let rule = format!("must be {MIN_INTERVAL:?}..={MAX_INTERVAL:?}");
            return bad("--interval", format!("{:?}", self.interval), rule);
        }
        let n = self.intervals();
        if !(MIN_INTERVALS..=MAX_INTERVALS).contains(&n) {
            return bad(
                "--duration",
                format!("{:?} with --interval {:?}", self.duration, self.interval),
                format!("makes {n} intervals; need {MIN_INTERVALS}..={MAX_INTERVALS}"),
            );
        }
        if !(self.in_pps.is_finite() && self.in_pps > 0.0 && self.in_pps <= rate::MAX_IN_PPS) {
            return bad(
                "--rate",
                format!("{:.1} packets/s in", self.in_pps),
                format!("must be > 0, <= {}", rate::MAX_IN_PPS),
            );
        }
        if !(self.churn_ops_per_s.is_finite() && (0.0..=MAX_CHURN_OPS_PER_S).contains(&self.churn_ops_per_s)) {
            return bad("--churn", self.churn_ops_per_s.to_string(), format!("must be 0..={MAX_CHURN_OPS_PER_S}"));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return bad("--concurrency", self.concurrency.to_string(), format!("must be 1..={MAX_CONCURRENCY}"));
        }
        let c = &self.criteria;
        if !(0.0..0.9).contains(&c.warmup_share) {
            return bad("--warmup-percent", format!("{}", c.warmup_share * 100.0), "must be 0 to below 90".into());
        }
        for (flag, value) in [
            ("--max-rss-growth-mib", c.max_rss_growth_kib / 1024.0),
            ("--max-fd-growth", c.max_fd_growth),
            ("--p99-bound-us", c.p99_bound_us),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(flag, value.to_string(), "must be a number >= 0".into());
            }
        }
        Ok(())
    }
}

/// The churn over the whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChurnSummary {
    /// Successful operations.
    pub operations: u64,
    /// Successful creates.
    pub creates: u64,
    /// Successful deletes.
    pub deletes: u64,
    /// Failed operations by status code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Operations/s from the first operation to the last.
    pub ops_per_s: f64,
    /// RPC latency of creates.
    pub create_latency: LatencyUs,
    /// RPC latency of deletes.
    pub delete_latency: LatencyUs,
    /// The operation cap cut it short.
    pub capped: bool,
    /// Copies that reached the churned subscriptions' throwaway endpoints.
    pub extra_copies: u64,
}

/// The figures of a soak.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakResult {
    /// Machine and versions.
    pub machine: Machine,
    /// Scenario name.
    pub scenario: String,
    /// What it is.
    pub description: String,
    /// Untouched subscriptions.
    pub untouched_subscriptions: usize,
    /// Packets/s offered in.
    pub in_pps: f64,
    /// Copies/s offered out (to the untouched subscriptions).
    pub out_pps: f64,
    /// How the rate was arrived at.
    pub rate_how: String,
    /// Asked duration, s.
    pub duration_s: f64,
    /// Interval, s.
    pub interval_s: f64,
    /// Churn asked for, operations/s.
    pub churn_asked_ops_per_s: f64,
    /// Churn clients.
    pub concurrency: usize,
    /// Core of ringfwd's worker.
    pub worker_core: usize,
    /// Core of generator, sink, churn clients and ringfwd's control plane.
    pub bench_core: usize,
    /// The bounds.
    pub criteria: Criteria,
    /// One per interval.
    pub samples: Vec<SoakSample>,
    /// The churn, when there was one.
    pub churn: Option<ChurnSummary>,
    /// How it ended.
    pub end: EndState,
    /// The outcome.
    pub verdict: Verdict,
}

/// Why a soak could not run at all (a soak that ran and failed is a [`Verdict`]).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// Setting up ringfwd or the rig failed.
    #[error(transparent)]
    Compare(#[from] CompareError),
    /// The control API failed outside the churn's counted operations.
    #[error("control API: {0}")]
    Control(#[from] ControlError),
}

impl From<LaunchError> for SoakError {
    fn from(e: LaunchError) -> SoakError {
        SoakError::Compare(e.into())
    }
}

/// Runs the soak, handing each sample to `on_sample` as it is taken. Progress goes to stderr.
pub fn run(options: &SoakOptions, on_sample: &mut dyn FnMut(&SoakSample)) -> Result<SoakResult, SoakError> {
    options.validate()?;
    let io = |what: &'static str| move |source| SoakError::Compare(CompareError::Io { what: what.into(), source });
    std::fs::create_dir_all(&options.work_dir).map_err(io("creating the work directory"))?;
    let placement = launch::place(&options.pinning)?;
    let scenario = &options.scenario;
    let launch::RoutedRingfwd { mut rig, files, mut process, target, api } = launch::start_ringfwd(
        scenario,
        &placement,
        options.idle,
        &options.chains,
        &options.binaries,
        &options.work_dir,
    )?;
    let pid = process.pid();
    let base_out = scenario.base_out_pps();
    let scale = options.in_pps / scenario.base_in_pps();
    let n = options.intervals();
    eprintln!(
        "== soak: {} ({} untouched subscriptions) at {:.0} packets/s in ({:.0} copies/s out), churn {:.0} ops/s, \
         {n} intervals of {:?}",
        scenario.describe(),
        scenario.flows.len(),
        options.in_pps,
        base_out * scale,
        options.churn_ops_per_s,
        options.interval
    );
    measured_by_thread(&mut rig, target, &mut process, base_out, scale, WARMUP)?;
    let token = control::read_token(&files.dev_token_file)?;
    let churn = if options.churn_ops_per_s > 0.0 {
        // The window outlasts every interval with its worst-case drain; the soak stops it when done.
        let slack = (DRAIN_MAX + OVERRUN_MAX) * u32::try_from(n).unwrap_or(u32::MAX);
        Some(Churn::start(ChurnPlan {
            api,
            token: token.clone(),
            session_id: files.session.id.clone(),
            stream_ids: files.session.streams.iter().map(|s| s.id.clone()).collect(),
            concurrency: options.concurrency,
            duration: options.duration + slack + Duration::from_secs(10),
            core: placement.bench_core,
            ops_per_s: Some(options.churn_ops_per_s),
            mix: ChurnMix::Everything,
        })?)
    } else {
        None
    };

    let warm = warmup_samples(usize::try_from(n).unwrap_or(usize::MAX), options.criteria.warmup_share);
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut aborted = None;
    let mut counts = ChurnCounts::default();
    for i in 0..n {
        let began = Instant::now();
        let step = measured_by_thread(&mut rig, target, &mut process, base_out, scale, options.interval);
        let step = match step {
            Ok(step) => step,
            Err(e) => {
                aborted = Some(format!("interval {} of {n}: {e}", i + 1));
                break;
            }
        };
        let fp = match footprint(pid) {
            Ok(fp) => fp,
            Err(e) => {
                aborted = Some(format!("interval {} of {n}: reading /proc/{pid}: {e}", i + 1));
                break;
            }
        };
        let now = churn.as_ref().map(Churn::counts).unwrap_or_default();
        let wall_s = began.elapsed().as_secs_f64();
        let sample = sample_of(&step, &fp, now, counts, start.elapsed().as_secs_f64(), wall_s, (i as usize) < warm);
        counts = now;
        on_sample(&sample);
        samples.push(sample);
    }
    let run_s = start.elapsed().as_secs_f64();

    let mut end = EndState {
        aborted,
        churn_asked_ops_per_s: options.churn_ops_per_s,
        registry_expected: [
            1,
            count(files.session.endpoints.len()),
            count(files.session.streams.len()),
            count(files.session.subscriptions.len()),
        ],
        ..Default::default()
    };
    let churn = churn.and_then(|churn| {
        churn.stop();
        match churn.finish() {
            Ok(outcome) => Some(summarize(&outcome, run_s, &mut end)),
            Err(e) => {
                end.churn_failure = Some(e.to_string());
                None
            }
        }
    });
    if end.aborted.is_none() {
        let usage = control::runtime()
            .and_then(|runtime| runtime.block_on(async { Control::connect(api, &token).await?.usage().await }));
        match usage {
            Ok(u) => end.registry_after = Some([u.sessions, u.endpoints, u.streams, u.subscriptions]),
            Err(e) => end.aborted = Some(format!("reading the registry back: {e}")),
        }
    }
    match process.stop() {
        Ok(counters) => {
            let total = |name: &str| counters.as_ref().and_then(|c| c["total"][name].as_u64());
            end.worker_subscriptions_after = total("subscriptions");
            end.commands_failed = total("commands_failed");
        }
        Err(e) => end.exit_problem = Some(e.to_string()),
    }
    let verdict = judge(&samples, &end, &options.criteria);
    Ok(SoakResult {
        machine: Machine::describe(Some(&options.binaries.ringfwd)),
        scenario: scenario.name.clone(),
        description: scenario.describe(),
        untouched_subscriptions: scenario.flows.len(),
        in_pps: options.in_pps,
        out_pps: base_out * scale,
        rate_how: options.rate_how.clone(),
        duration_s: options.duration.as_secs_f64(),
        interval_s: options.interval.as_secs_f64(),
        churn_asked_ops_per_s: options.churn_ops_per_s,
        concurrency: options.concurrency,
        worker_core: placement.worker_core,
        bench_core: placement.bench_core,
        criteria: options.criteria,
        samples,
        churn,
        end,
        verdict,
    })
}

/// The churn's figures over the whole run (`run_s` long); sets the churn figures of `end`.
fn summarize(outcome: &ChurnOutcome, run_s: f64, end: &mut EndState) -> ChurnSummary {
    let s = &outcome.stats;
    end.churn_errors = s.error_count();
    end.churn_ops_per_s = if run_s > 0.0 { s.operations() as f64 / run_s } else { 0.0 };
    ChurnSummary {
        operations: s.operations(),
        creates: s.creates,
        deletes: s.deletes,
        errors_by_code: s.errors.clone(),
        ops_per_s: end.churn_ops_per_s,
        create_latency: LatencyUs::of(&s.create_latency_ns),
        delete_latency: LatencyUs::of(&s.delete_latency_ns),
        capped: s.capped,
        extra_copies: outcome.extra_copies,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One interval's row from its step, the footprint after it and the churn's counts before and after.
fn sample_of(
    f: &Forwarding,
    fp: &crate::memory::Footprint,
    churn_now: ChurnCounts,
    churn_before: ChurnCounts,
    t_s: f64,
    wall_s: f64,
    warmup: bool,
) -> SoakSample {
    let s = &f.step;
    let share = |ns: u64| if s.duration_s > 0.0 { ns as f64 / (s.duration_s * 1e9) * 100.0 } else { 0.0 };
    let churn_ops = churn_now.operations.saturating_sub(churn_before.operations);
    SoakSample {
        t_s,
        warmup,
        rss_kib: fp.rss_kib,
        anon_kib: fp.anon_kib,
        fds: fp.fds,
        threads: fp.threads,
        worker_cpu_percent: share(f.cpu.worker_ns),
        control_cpu_percent: share(f.cpu.other_ns),
        in_pps: if s.duration_s > 0.0 { s.sent_in as f64 / s.duration_s } else { 0.0 },
        out_pps: s.delivered_out_pps,
        expected: s.expected_out,
        lost: s.lost.saturating_sub(s.injected_lost),
        late: s.late,
        errors: s.duplicates.saturating_sub(s.injected_duplicates)
            + s.integrity_failures
            + s.rewrite_errors
            + s.unexpected,
        p50_us: s.latency_p50_ns as f64 / 1e3,
        p99_us: s.latency_p99_ns as f64 / 1e3,
        generator_short: s.generator_short,
        load_1m: crate::machine::load_average_1m(),
        generator_lag_p99_us: s.generator_lag_p99_ns as f64 / 1e3,
        sink_lag_p99_us: s.sink_lag_p99_ns as f64 / 1e3,
        churn_ops,
        churn_ops_per_s: if wall_s > 0.0 { churn_ops as f64 / wall_s } else { 0.0 },
        churn_errors: churn_now.errors.saturating_sub(churn_before.errors),
    }
}
