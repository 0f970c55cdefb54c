//! The side-by-side comparison: every forwarder, every scenario, in one run.
//!
//! Owns the plan of a comparison. Per scenario it binds the sink and the publishers once and
//! writes the config files ([`crate::launch`]): ringfwd is routed through its control API after
//! each start, the baselines read the same routes from their config. Phase 1, repeated and alternating the
//! forwarders' order per repetition: max rate, the highest offered rate with loss below
//! [`crate::search::MAX_LOSS`], p99 one-way latency below the latency bound and the generator
//! holding its rate ([`search_max`]; later repetitions start near the earlier result). Phase 2,
//! alternating likewise: one step at a fixed output rate (50 k pps by default, the same for every
//! forwarder) and one at each forwarder's own median max, each giving CPU per input packet and
//! p50/p99/p99.9 latency. Each forwarder is a fresh process per measurement, pinned to the worker
//! core; generator and sink share the bench core.
//!
//! Must never run unbounded: steps, repetitions and search steps are all counted.

use std::path::PathBuf;
use std::time::Duration;

use ringfwd_tuning::IdleStrategy;

use crate::cpu::{thread_split_ns, ThreadSplit};
use crate::forwarder::{Binaries, ForwarderKind, ForwarderProcess, HarnessError};
use crate::launch::{self, build_rig, place, write_configs, LaunchError, Pinning, ScenarioFiles};
use crate::machine::Machine;
use crate::report::median;
use crate::scenario::Scenario;
use crate::search::{search_max, Search, SearchPlan};
use crate::step::{run_step, Rig, StepOutcome, Target};

/// Output rate of the fixed-rate step: a moderate load every forwarder should carry, where
/// latency and CPU per packet are compared.
pub const DEFAULT_FIXED_OUT_PPS: f64 = 50_000.0;

/// How long and how often things run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timing {
    /// Repetitions of every measurement.
    pub reps: usize,
    /// Unrecorded step after each forwarder start.
    pub warmup: Duration,
    /// Length of a rate-search step.
    pub search_step: Duration,
    /// Length of the fixed-rate CPU step and of the latency step.
    pub fixed_step: Duration,
    /// Most geometric steps of a search (in each direction).
    pub geometric_steps: usize,
    /// Factor between geometric steps of the first search.
    pub growth: f64,
    /// Bisection steps after the bracket is found.
    pub bisect_steps: usize,
    /// Most steps of a search measured again after failing on latency or on the bench (see
    /// [`crate::search`]).
    pub repeats: usize,
    /// A step whose p99 one-way latency reaches this fails the max-rate search, ns.
    pub max_p99_ns: u64,
    /// Output rate of the fixed-rate step, packets/s.
    pub fixed_out_pps: f64,
    /// `--quick`: the figures are a smoke test of the suite, not results (every output says so).
    pub smoke_test: bool,
}

/// What heads every output of a `--quick` comparison: the table, the Markdown, the JSON (`notice`) and the charts.
pub const SMOKE_TEST_NOTICE: &str = "SMOKE TEST (--quick): one short repetition; these figures are not results";

impl Timing {
    /// The default run: 3 repetitions, search steps of 1.5 s and fixed-rate steps of 5 s (about 12 minutes in
    /// all). The fixed-rate steps are the longer ones: at 50 k pps a 2 s step's CPU per packet moved up to 1.5×
    /// between steps of the same forwarder on this VM, a 6 s step's about 1.2×.
    pub fn full() -> Timing {
        Timing {
            reps: 3,
            warmup: Duration::from_millis(300),
            search_step: Duration::from_millis(1500),
            fixed_step: Duration::from_secs(5),
            // 2^7 × the base rate: flat's ceiling is 819 k out-pps. With 2^6 (410 k), ringfwd and gso both
            // passed every step of a first repetition on a quiet host (2026-12-05).
            geometric_steps: 8,
            growth: 2.0,
            bisect_steps: 4,
            repeats: 3,
            max_p99_ns: crate::search::MAX_P99_NS,
            fixed_out_pps: DEFAULT_FIXED_OUT_PPS,
            smoke_test: false,
        }
    }

    /// `--quick`: one repetition of short steps, a smoke test of the suite (about a minute); its figures are
    /// marked [`SMOKE_TEST_NOTICE`] wherever they are written.
    pub fn quick() -> Timing {
        Timing {
            reps: 1,
            warmup: Duration::from_millis(100),
            search_step: Duration::from_millis(300),
            fixed_step: Duration::from_millis(300),
            geometric_steps: 4,
            growth: 4.0,
            bisect_steps: 1,
            repeats: 0,
            max_p99_ns: crate::search::MAX_P99_NS,
            fixed_out_pps: DEFAULT_FIXED_OUT_PPS,
            smoke_test: true,
        }
    }
}

/// What a comparison runs.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Forwarders, in the order of the first repetition.
    pub forwarders: Vec<ForwarderKind>,
    /// Scenarios, in run order.
    pub scenarios: Vec<Scenario>,
    /// Durations and counts.
    pub timing: Timing,
    /// Where the binaries are.
    pub binaries: Binaries,
    /// Idle strategy written into ringfwd's config.
    pub idle: IdleStrategy,
    /// ringfwd's chains: its default interceptors or none, and plugins.
    pub chains: crate::chains::Chains,
    /// Where configs and forwarder logs go.
    pub work_dir: PathBuf,
    /// Cores of the forwarder and of the load.
    pub pinning: Pinning,
}

/// Why a comparison could not finish.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A forwarder misbehaved.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// A measurement could not be set up (rig, configs, starting or routing a forwarder).
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// Socket or file trouble.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A forwarder exited while being measured.
    #[error("{kind} exited during a measurement; stderr tail:\n{log_tail}")]
    Died {
        /// The forwarder.
        kind: ForwarderKind,
        /// Last lines of its stderr.
        log_tail: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CompareError {
    let what = what.into();
    move |source| CompareError::Io { what, source }
}

/// Everything measured for one forwarder in one scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForwarderResult {
    /// The forwarder.
    pub forwarder: ForwarderKind,
    /// One search per repetition.
    pub searches: Vec<Search>,
    /// One step at the scenario's fixed output rate per repetition.
    pub fixed: Vec<StepOutcome>,
    /// One step at this forwarder's own median max per repetition.
    pub at_max: Vec<StepOutcome>,
}

impl ForwarderResult {
    /// Median maximum rate over the repetitions.
    pub fn median_max_out_pps(&self) -> f64 {
        median(&self.searches.iter().map(|s| s.max_out_pps).collect::<Vec<_>>())
    }
}

/// One scenario's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScenarioResult {
    /// Which scenario.
    pub scenario: String,
    /// What it is.
    pub description: String,
    /// The common rate of the fixed-rate step, output packets/s.
    pub fixed_out_pps: f64,
    /// Output copies per input packet (the scenario's mean fan-out).
    pub out_per_in: f64,
    /// The latency bound of the max-rate search, ns.
    pub max_p99_ns: u64,
    /// Per forwarder, in option order.
    pub forwarders: Vec<ForwarderResult>,
}

/// A whole comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareResult {
    /// [`SMOKE_TEST_NOTICE`] for a `--quick` run, first in the JSON so that no reader takes its figures
    /// for results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<&'static str>,
    /// Machine and versions.
    pub machine: Machine,
    /// Cores asked for.
    pub pinning: Pinning,
    /// Durations and counts used.
    pub timing: Timing,
    /// Core the forwarders ran on.
    pub worker_core: usize,
    /// Core generator and sink ran on.
    pub bench_core: usize,
    /// Whether the generator sent with UDP GSO.
    pub generator_gso: bool,
    /// Whether the sink received with UDP GRO.
    pub sink_gro: bool,
    /// Whether latency ends at the kernel's receive timestamp on the sink socket (else at the
    /// moment the bench read the copy).
    pub sink_kernel_timestamps: bool,
    /// Per scenario.
    pub scenarios: Vec<ScenarioResult>,
}

/// Runs the comparison. Progress lines go to stderr.
pub fn run(options: &CompareOptions) -> Result<CompareResult, CompareError> {
    std::fs::create_dir_all(&options.work_dir).map_err(io_err(format!("creating {}", options.work_dir.display())))?;
    let placement = place(&options.pinning)?;
    let mut result = CompareResult {
        notice: options.timing.smoke_test.then_some(SMOKE_TEST_NOTICE),
        machine: Machine::describe(
            options.forwarders.iter().any(|k| k.is_ringfwd()).then_some(options.binaries.ringfwd.as_path()),
        ),
        pinning: options.pinning.clone(),
        timing: options.timing.clone(),
        worker_core: placement.worker_core,
        bench_core: placement.bench_core,
        generator_gso: false,
        sink_gro: false,
        sink_kernel_timestamps: false,
        scenarios: Vec::new(),
    };
    for scenario in &options.scenarios {
        let (mut rig, files) = prepare(options, scenario, &placement)?;
        result.generator_gso = rig.gen.uses_gso();
        result.sink_gro = rig.sink.uses_gro();
        result.sink_kernel_timestamps = rig.sink.uses_kernel_timestamps();
        eprintln!("== {}: {}", scenario.name, scenario.describe());
        result.scenarios.push(run_scenario(options, scenario, &mut rig, &files)?);
    }
    Ok(result)
}

/// Binds generator and sink for `scenario` and writes the config files of its forwarders.
fn prepare(
    options: &CompareOptions,
    scenario: &Scenario,
    placement: &launch::Placement,
) -> Result<(Rig, ScenarioFiles), CompareError> {
    let rig = build_rig(scenario, options.chains.red_pt())?;
    let files = write_configs(scenario, &rig, placement, options.idle, &options.chains, &options.work_dir)?;
    Ok((rig, files))
}

/// One forwarder, one scenario, one step at `out_pps` for `duration` (after the warm-up): for
/// probing a single operating point.
pub fn run_once(
    options: &CompareOptions,
    kind: ForwarderKind,
    scenario: &Scenario,
    out_pps: f64,
    duration: Duration,
) -> Result<StepOutcome, CompareError> {
    std::fs::create_dir_all(&options.work_dir).map_err(io_err(format!("creating {}", options.work_dir.display())))?;
    let placement = place(&options.pinning)?;
    let (mut rig, files) = prepare(options, scenario, &placement)?;
    let base = scenario.base_out_pps();
    with_forwarder(options, kind, &files, scenario, &mut rig, |rig, target, proc| {
        measured(rig, target, proc, base, out_pps / base, duration)
    })
}

/// The forwarders in the order of repetition `rep` (rotated by one each time).
fn order(forwarders: &[ForwarderKind], rep: usize) -> Vec<(usize, ForwarderKind)> {
    let n = forwarders.len().max(1);
    (0..forwarders.len()).map(|i| (i + rep) % n).map(|i| (i, forwarders[i])).collect()
}

fn run_scenario(
    options: &CompareOptions,
    scenario: &Scenario,
    rig: &mut Rig,
    files: &ScenarioFiles,
) -> Result<ScenarioResult, CompareError> {
    let t = &options.timing;
    let base = scenario.base_out_pps();
    let mut results: Vec<ForwarderResult> = options
        .forwarders
        .iter()
        .map(|&forwarder| ForwarderResult { forwarder, searches: Vec::new(), fixed: Vec::new(), at_max: Vec::new() })
        .collect();
    for rep in 0..t.reps {
        for (i, kind) in order(&options.forwarders, rep) {
            let hint = (!results[i].searches.is_empty()).then(|| results[i].median_max_out_pps());
            // A later repetition starts just below the earlier result, with finer steps.
            let plan = match hint.filter(|&h| h > 0.0) {
                Some(h) => SearchPlan { start_out_pps: h * 0.8, growth: t.growth.sqrt(), ..first_plan(t, base) },
                None => first_plan(t, base),
            };
            let search = with_forwarder(options, kind, files, scenario, rig, |rig, target, proc| {
                search_max(&plan, |out_pps| measured(rig, target, proc, base, out_pps / base, t.search_step))
            })?;
            eprintln!("   {kind} rep {}: max {:.0} out pps ({:?})", rep + 1, search.max_out_pps, search.limit);
            results[i].searches.push(search);
        }
    }
    let fixed_out_pps = t.fixed_out_pps;
    for rep in 0..t.reps {
        for (i, kind) in order(&options.forwarders, rep) {
            let max = results[i].median_max_out_pps().max(base / 10.0);
            let (fixed, at_max) = with_forwarder(options, kind, files, scenario, rig, |rig, target, proc| {
                let fixed = measured(rig, target, proc, base, fixed_out_pps / base, t.fixed_step)?;
                let at_max = measured(rig, target, proc, base, max / base, t.fixed_step)?;
                Ok((fixed, at_max))
            })?;
            eprintln!(
                "   {kind} rep {}: at {fixed_out_pps:.0} pps {:.0} ns/in-pkt, p99 {:.1} us; at max {max:.0} pps \
                 {:.0} ns/in-pkt, p99 {:.1} us",
                rep + 1,
                fixed.cpu_ns_per_input(),
                fixed.latency_p99_ns as f64 / 1e3,
                at_max.cpu_ns_per_input(),
                at_max.latency_p99_ns as f64 / 1e3,
            );
            results[i].fixed.push(fixed);
            results[i].at_max.push(at_max);
        }
    }
    Ok(ScenarioResult {
        scenario: scenario.name.clone(),
        description: scenario.describe(),
        fixed_out_pps,
        out_per_in: base / scenario.base_in_pps().max(f64::MIN_POSITIVE),
        max_p99_ns: t.max_p99_ns,
        forwarders: results,
    })
}

/// The search of a first repetition: from the scenario's base rate, with the timing's steps.
fn first_plan(t: &Timing, base: f64) -> SearchPlan {
    SearchPlan {
        start_out_pps: base,
        growth: t.growth,
        geometric_steps: t.geometric_steps,
        bisect_steps: t.bisect_steps,
        max_p99_ns: t.max_p99_ns,
        repeats: t.repeats,
    }
}

/// Starts `kind` routed for `scenario`, warms it up at the scenario's base rate, runs `measure`, stops it.
fn with_forwarder<R>(
    options: &CompareOptions,
    kind: ForwarderKind,
    files: &ScenarioFiles,
    scenario: &Scenario,
    rig: &mut Rig,
    measure: impl FnOnce(&mut Rig, Target, &mut ForwarderProcess) -> Result<R, CompareError>,
) -> Result<R, CompareError> {
    let base = scenario.base_out_pps();
    let mut proc = launch::start_routed(kind, files, scenario, &options.binaries, &options.work_dir, rig)?;
    let media = proc.media.first().copied().ok_or_else(|| CompareError::Died { kind, log_tail: proc.log_tail() })?;
    let target = Target { pid: Some(proc.pid()), media };
    measured(rig, target, &mut proc, base, 1.0, options.timing.warmup)?;
    let out = measure(rig, target, &mut proc)?;
    proc.stop()?;
    Ok(out)
}

/// Forwarding measured over one step, with the forwarder's CPU by thread.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Forwarding {
    /// What the sink saw.
    pub step: StepOutcome,
    /// The forwarder's CPU over the step, by thread.
    pub cpu: ThreadSplit,
}

/// [`measured`] with the forwarder's CPU split by thread (its pid must be known).
pub(crate) fn measured_by_thread(
    rig: &mut Rig,
    target: Target,
    proc: &mut ForwarderProcess,
    base: f64,
    scale: f64,
    duration: Duration,
) -> Result<Forwarding, CompareError> {
    let pid = target.pid.unwrap_or(0);
    let before = thread_split_ns(pid).map_err(io_err("reading the forwarder's threads"))?;
    let step = measured(rig, target, proc, base, scale, duration)?;
    let cpu = thread_split_ns(pid).map_err(io_err("reading the forwarder's threads"))?.since(before);
    Ok(Forwarding { step, cpu })
}

/// One step, failing if the forwarder died during it.
pub(crate) fn measured(
    rig: &mut Rig,
    target: Target,
    proc: &mut ForwarderProcess,
    base: f64,
    scale: f64,
    duration: Duration,
) -> Result<StepOutcome, CompareError> {
    let outcome = run_step(rig, target, base, scale, duration).map_err(io_err("measurement step"))?;
    if !proc.is_running() {
        return Err(CompareError::Died { kind: proc.kind(), log_tail: proc.log_tail() });
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetitions_rotate_the_forwarders() {
        let f = [ForwarderKind::Ringfwd, ForwarderKind::Mmsg, ForwarderKind::Naive];
        let names = |rep| order(&f, rep).into_iter().map(|(_, k)| k.to_string()).collect::<Vec<_>>().join(",");
        assert_eq!(names(0), "ringfwd,mmsg,naive");
        assert_eq!(names(1), "mmsg,naive,ringfwd");
        assert_eq!(names(2), "naive,ringfwd,mmsg");
        assert!(order(&f, 1).iter().all(|&(i, k)| f[i] == k));
    }

    #[test]
    fn full_runs_are_bounded() {
        let t = Timing::full();
        let steps_per_search = first_plan(&t, 1000.0).max_steps();
        // The defaults: ringfwd,gso,mmsg on flat,flat-fanout4,conference.
        let worst_s = t.reps as f64
            * 3.0 // forwarders
            * 3.0 // scenarios
            * (steps_per_search as f64 * (t.search_step.as_secs_f64() + 0.1)
                + 2.0 * t.fixed_step.as_secs_f64()
                + 2.0 * t.warmup.as_secs_f64());
        assert!(worst_s < 25.0 * 60.0, "worst case {worst_s} s");
        assert!(t.reps >= 3);
    }
}
