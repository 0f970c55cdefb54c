//! `ringfwd-bench capacity`: the most subscribers one ringfwd worker core carries.
//!
//! Owns the pass rule of a capacity step ([`capacity_verdict`]: the generator offered its plan,
//! fewer than [`crate::search::MAX_LOSS`] of the copies lost or late, and p99 one-way latency within the budget),
//! the bounded search over the scenario's size ([`search_size`]: doubling from a start until a
//! step fails, then bisection, sans-IO and tested against simulated forwarders), and the driver
//! ([`run`]): for audio and for video it takes the `capacity-audio` / `capacity-video` scenario,
//! and for each size tried starts ringfwd with one worker on the forwarder core, routes the
//! scenario through the API, warms up, measures one step at the scenario's own rate, and stops it.
//!
//! Must never run more than `max_steps` steps per kind, nor start a step after `max_seconds`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringfwd_tuning::IdleStrategy;

use crate::compare::{measured, CompareError};
use crate::cpu::thread_split_ns;
use crate::forwarder::{Binaries, ForwarderKind};
use crate::launch::{self, Pinning};
use crate::scenario::Scenario;
use crate::search::{verdict, Limit};
use crate::step::{StepOutcome, Target};

/// Default p99 one-way latency budget, µs: the same bound as `compare`'s max rate
/// ([`crate::search::MAX_P99_NS`]), so "capacity" and "max rate" mean one thing. On a shared VM whose
/// vCPUs stall for milliseconds (steal time) this bound is what fails first: that is reported as
/// the limit (`latency`), not hidden by a looser bound.
pub const DEFAULT_P99_BUDGET_US: u64 = crate::search::MAX_P99_NS / 1_000;

/// Why a size failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityLimit {
    /// Loss (or late copies) of [`crate::search::MAX_LOSS`] or more, the forwarder's doing.
    Loss,
    /// p99 latency over the budget.
    Latency,
    /// The bench itself (generator or sink) could not keep up.
    Bench,
    /// Every size tried passed up to the largest allowed.
    Ceiling,
    /// The step or time bound ended the search first.
    Bounds,
}

/// `None` if the step passes, else why not.
pub fn capacity_verdict(step: &StepOutcome, p99_budget_ns: u64) -> Option<CapacityLimit> {
    match verdict(step, p99_budget_ns) {
        Some(Limit::Forwarder) => Some(CapacityLimit::Loss),
        Some(Limit::Latency) => Some(CapacityLimit::Latency),
        Some(Limit::Bench | Limit::Generator) => Some(CapacityLimit::Bench),
        Some(Limit::SearchCeiling) | None => None,
    }
}

/// How a size search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SizePlan {
    /// First size tried.
    pub start: usize,
    /// Largest size tried.
    pub max: usize,
    /// Most steps.
    pub max_steps: usize,
}

/// The outcome of a size search.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SizeSearch {
    /// Largest passing size (0 if none passed).
    pub best: usize,
    /// Why the next size up failed (or what ended the search).
    pub limit: CapacityLimit,
    /// Sizes tried, in order, with their verdicts.
    pub tried: Vec<(usize, Option<CapacityLimit>)>,
}

/// Searches the largest passing size; `measure(size)` returns `Ok(None)` for a pass, `Ok(Some(why))`
/// for a failure, or `Err(())` when the time is up.
pub fn search_size<E>(
    plan: &SizePlan,
    mut measure: impl FnMut(usize) -> Result<Option<Option<CapacityLimit>>, E>,
) -> Result<SizeSearch, E> {
    let max = plan.max.max(1);
    let mut tried = Vec::new();
    let (mut lo, mut hi): (usize, Option<(usize, CapacityLimit)>) = (0, None);
    let mut size = plan.start.clamp(1, max);
    // What ended the search when it ended on its own (else a bound did).
    let mut ended = None;
    while tried.len() < plan.max_steps {
        let Some(v) = measure(size)? else {
            break;
        };
        tried.push((size, v));
        match v {
            None => lo = lo.max(size),
            Some(why) => hi = Some((size, why)),
        }
        size = match hi {
            // Doubling until something fails (or the ceiling passed).
            None if size >= max => {
                ended = Some(CapacityLimit::Ceiling);
                break;
            }
            None => (size * 2).min(max),
            // Nothing passed yet: halve.
            Some((h, why)) if lo == 0 => {
                if h <= 1 {
                    ended = Some(why);
                    break;
                }
                h / 2
            }
            // Bisection to within 5% (or 1).
            Some((h, why)) => {
                if h - lo <= (lo / 20).max(1) {
                    ended = Some(why);
                    break;
                }
                lo + (h - lo) / 2
            }
        };
    }
    Ok(SizeSearch { best: lo, limit: ended.unwrap_or(CapacityLimit::Bounds), tried })
}

/// What `capacity` runs.
#[derive(Debug, Clone)]
pub struct CapacityOptions {
    /// Templates to search (`capacity-audio`, `capacity-video`, or files).
    pub templates: Vec<Scenario>,
    /// p99 one-way latency budget, ns.
    pub p99_budget_ns: u64,
    /// Search bounds per template.
    pub plan: SizePlan,
    /// Length of each measured step.
    pub step: Duration,
    /// Unrecorded step after each start.
    pub warmup: Duration,
    /// No step starts after this much time per template.
    pub max_time: Duration,
    /// Binaries.
    pub binaries: Binaries,
    /// ringfwd's idle strategy.
    pub idle: IdleStrategy,
    /// ringfwd's chains: its default interceptors or none, and plugins.
    pub chains: crate::chains::Chains,
    /// Configs and logs.
    pub work_dir: PathBuf,
    /// Cores.
    pub pinning: Pinning,
}

/// One size measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CapacityStep {
    /// The topology size (rooms, subscribers, ...).
    pub size: usize,
    /// Subscriber endpoints.
    pub subscribers: usize,
    /// Subscriptions ("consumers").
    pub subscriptions: usize,
    /// Streams published.
    pub streams: usize,
    /// Verdict (`null`: passed).
    pub failed: Option<CapacityLimit>,
    /// The worker threads' CPU over the step, percent of one core.
    pub worker_cpu_percent: f64,
    /// The measurement.
    pub outcome: StepOutcome,
}

/// One template's capacity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CapacityResult {
    /// Template name.
    pub scenario: String,
    /// What it is.
    pub description: String,
    /// What the size counts (the topology key).
    pub size_key: String,
    /// The search.
    pub search: SizeSearch,
    /// The largest passing step (if any).
    pub best: Option<CapacityStep>,
    /// Every step.
    pub steps: Vec<CapacityStep>,
}

/// Runs the search for every template; returns where things ran and the results. Progress goes to
/// stderr.
pub fn run(options: &CapacityOptions) -> Result<(launch::Placement, Vec<CapacityResult>), CompareError> {
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|source| CompareError::Io { what: "creating the work directory".into(), source })?;
    let placement = launch::place(&options.pinning)?;
    let mut results = Vec::new();
    for template in &options.templates {
        eprintln!("== capacity {}: {}", template.name, template.describe());
        let started = Instant::now();
        let mut steps: Vec<CapacityStep> = Vec::new();
        let search = search_size(&options.plan, |size| {
            if started.elapsed() >= options.max_time {
                return Ok::<_, CompareError>(None);
            }
            let step = measure_size(options, &placement, template, size)?;
            eprintln!(
                "   {}={size}: {} subscriptions, {:.0} out pps, loss {:.3}%, p99 {:.2} ms, worker cpu {:.0}% -> {}",
                template.file.topology.size_key(),
                step.subscriptions,
                step.outcome.delivered_out_pps,
                step.outcome.loss_ratio * 100.0,
                step.outcome.latency_p99_ns as f64 / 1e6,
                step.worker_cpu_percent,
                step.failed.map_or("pass".to_string(), |l| format!("{l:?}")),
            );
            let v = step.failed;
            steps.push(step);
            Ok(Some(v))
        })?;
        let best = steps.iter().filter(|s| s.failed.is_none()).max_by_key(|s| s.size).cloned();
        results.push(CapacityResult {
            scenario: template.name.clone(),
            description: template.describe(),
            size_key: template.file.topology.size_key().to_string(),
            search,
            best,
            steps,
        });
    }
    Ok((placement, results))
}

fn measure_size(
    options: &CapacityOptions,
    placement: &launch::Placement,
    template: &Scenario,
    size: usize,
) -> Result<CapacityStep, CompareError> {
    let scenario = template.with_size(size).map_err(|e| CompareError::Io {
        what: format!("capacity size {size}"),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut rig = launch::build_rig(&scenario, options.chains.red_pt())?;
    let files = launch::write_configs(&scenario, &rig, placement, options.idle, &options.chains, &options.work_dir)?;
    let kind = ForwarderKind::Ringfwd;
    let mut proc = launch::start_routed(kind, &files, &scenario, &options.binaries, &options.work_dir, &mut rig)?;
    let media = proc.media.first().copied().ok_or_else(|| CompareError::Died { kind, log_tail: proc.log_tail() })?;
    let pid = proc.pid();
    let target = Target { pid: Some(pid), media };
    let base = scenario.base_out_pps();
    measured(&mut rig, target, &mut proc, base, 1.0, options.warmup)?;
    let io = |source| CompareError::Io { what: "reading the forwarder's threads".into(), source };
    let before = thread_split_ns(pid).map_err(io)?;
    let outcome = measured(&mut rig, target, &mut proc, base, 1.0, options.step)?;
    let cpu = thread_split_ns(pid).map_err(io)?.since(before);
    proc.stop()?;
    Ok(CapacityStep {
        size,
        subscribers: scenario.subscribers,
        subscriptions: scenario.flows.len(),
        streams: scenario.streams.len(),
        failed: capacity_verdict(&outcome, options.p99_budget_ns),
        worker_cpu_percent: cpu.worker_ns as f64 / 1e7 / options.step.as_secs_f64(),
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn plan(start: usize, max: usize, max_steps: usize) -> SizePlan {
        SizePlan { start, max, max_steps }
    }

    /// A forwarder that carries up to `capacity`.
    fn forwarder(capacity: usize) -> impl FnMut(usize) -> Result<Option<Option<CapacityLimit>>, Infallible> {
        move |size| Ok(Some((size > capacity).then_some(CapacityLimit::Loss)))
    }

    #[test]
    fn doubles_then_bisects_to_within_five_percent() {
        let s = search_size(&plan(4, 10_000, 20), forwarder(300)).unwrap();
        assert_eq!(s.limit, CapacityLimit::Loss);
        assert!(s.best <= 300 && s.best as f64 >= 300.0 * 0.95, "{s:?}");
        // 4, 8, ..., 256 pass, 512 fails: 8 steps, then bisection.
        assert_eq!(&s.tried[..8].iter().map(|t| t.0).collect::<Vec<_>>(), &[4, 8, 16, 32, 64, 128, 256, 512]);
        assert!(s.tried.len() <= 20);
    }

    #[test]
    fn halves_when_the_start_fails_and_reports_zero_when_nothing_passes() {
        let s = search_size(&plan(64, 1000, 20), forwarder(10)).unwrap();
        assert!(s.best <= 10 && s.best >= 9, "{s:?}");
        let none = search_size(&plan(8, 1000, 20), forwarder(0)).unwrap();
        assert_eq!((none.best, none.limit), (0, CapacityLimit::Loss));
        assert_eq!(none.tried.iter().map(|t| t.0).collect::<Vec<_>>(), [8, 4, 2, 1]);
    }

    #[test]
    fn the_ceiling_and_the_bounds_end_the_search() {
        let s = search_size(&plan(4, 50, 20), forwarder(usize::MAX)).unwrap();
        assert_eq!((s.best, s.limit), (50, CapacityLimit::Ceiling));
        let s = search_size(&plan(4, 10_000, 3), forwarder(1000)).unwrap();
        assert_eq!((s.best, s.limit, s.tried.len()), (16, CapacityLimit::Bounds, 3));
        // Time up (measure says so) after two steps.
        let mut calls = 0;
        let s = search_size(&plan(4, 10_000, 20), |size| {
            calls += 1;
            Ok::<_, Infallible>(if calls > 2 { None } else { Some((size > 100).then_some(CapacityLimit::Loss)) })
        })
        .unwrap();
        assert_eq!((s.best, s.limit), (8, CapacityLimit::Bounds));
    }

    #[test]
    fn verdicts_check_loss_latency_and_the_bench() {
        let ok = StepOutcome { expected_out: 100_000, latency_p99_ns: 2_000_000, ..Default::default() };
        assert_eq!(capacity_verdict(&ok, 10_000_000), None);
        assert_eq!(capacity_verdict(&ok, 1_000_000), Some(CapacityLimit::Latency));
        let lossy = StepOutcome { lost: 500, loss_ratio: 0.005, forwarder_socket_drops: 500, ..ok.clone() };
        assert_eq!(capacity_verdict(&lossy, 10_000_000), Some(CapacityLimit::Loss));
        let short = StepOutcome { generator_short: true, ..ok };
        assert_eq!(capacity_verdict(&short, 10_000_000), Some(CapacityLimit::Bench));
    }
}
