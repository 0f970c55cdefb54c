//! What the bench's end-to-end tests share: the binaries, a scratch directory, and one forwarder
//! started and routed for a scenario ([`run_forwarder`]) exactly as `compare` does it, measured for
//! one step. Every step is bounded in time; everything stays on loopback.

// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringfwd_bench::account::FlowSpec;
use ringfwd_bench::chains::Chains;
use ringfwd_bench::forwarder::{Binaries, ForwarderKind, ForwarderProcess};
use ringfwd_bench::launch::{self, Placement, ScenarioFiles};
use ringfwd_bench::scenario::Scenario;
use ringfwd_bench::step::{run_step, Rig, StepOutcome, Target};
use ringfwd_tuning::IdleStrategy;

/// This crate's binary (runs the baselines, and `compare`/`churn`).
pub const BENCH: &str = env!("CARGO_BIN_EXE_ringfwd-bench");

/// The `ringfwd` daemon next to the bench binary: `cargo test --workspace` builds it there.
pub fn ringfwd_binary() -> PathBuf {
    let path = Path::new(BENCH).with_file_name("ringfwd");
    assert!(
        path.is_file(),
        "no ringfwd binary at {}: run `cargo build -p ringfwd` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

/// Both binaries (the daemon only looked up when `kind` needs it).
pub fn binaries(kind: ForwarderKind) -> Binaries {
    let ringfwd = if kind == ForwarderKind::Ringfwd { ringfwd_binary() } else { PathBuf::from("/nonexistent/ringfwd") };
    Binaries { ringfwd, bench: PathBuf::from(BENCH) }
}

/// A fresh scratch directory for test `name`.
pub fn work_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ringfwd-bench-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Private: a ringfwd writes its development token only into a directory of mode 0700.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// Runs the bench binary with `args` and `--json FILE`; asserts it succeeded and returns its stdout
/// and the JSON it wrote.
pub fn bench_json(args: &[&OsStr], name: &str) -> (String, serde_json::Value) {
    let dir = work_dir(name);
    let json = dir.join("result.json");
    let out = Command::new(BENCH).args(args).arg("--json").arg(&json).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let result = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (stdout, result)
}

/// What one routed run measured.
pub struct Run {
    /// The step.
    pub step: StepOutcome,
    /// The forwarder's final counters.
    pub counters: serde_json::Value,
    /// What the sink expected.
    pub flows: Vec<FlowSpec>,
}

/// Starts `kind` routed for `scenario_kind` (ringfwd through its API, a baseline from its config),
/// lets `inspect` look at it, runs one step of `duration` at `scale`, stops it.
pub fn run_forwarder(
    kind: ForwarderKind,
    scenario_name: &str,
    scale: f64,
    duration: Duration,
    inspect: impl FnOnce(&ForwarderProcess, &ScenarioFiles, &Rig),
) -> Run {
    run_with_chains(kind, scenario_name, &Chains::defaults(), (scale, duration), inspect)
}

/// [`run_forwarder`] with ringfwd's `chains` (its defaults or none, and plugins).
pub fn run_with_chains(
    kind: ForwarderKind,
    scenario_name: &str,
    chains: &Chains,
    (scale, duration): (f64, Duration),
    inspect: impl FnOnce(&ForwarderProcess, &ScenarioFiles, &Rig),
) -> Run {
    let scenario = Scenario::builtin(scenario_name).unwrap();
    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len());
    let placement = Placement { bench_core: 0, worker_core: if cores >= 2 { 1 } else { 0 }, control_cores: Vec::new() };
    let dir = work_dir(&format!("{kind}-{scenario_name}"));
    let mut rig = launch::build_rig(&scenario, chains.red_pt()).unwrap();
    let files = launch::write_configs(&scenario, &rig, &placement, IdleStrategy::Sleep, chains, &dir).unwrap();
    let process = launch::start_routed(kind, &files, &scenario, &binaries(kind), &dir, &mut rig)
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    assert_eq!(process.workers, 1);
    let target = Target { pid: Some(process.pid()), media: process.media[0] };
    assert!(target.media.ip().is_loopback() && target.media.port() != 0, "{}", target.media);
    inspect(&process, &files, &rig);
    let step = run_step(&mut rig, target, scenario.base_out_pps(), scale, duration).unwrap();
    let counters = process.stop().unwrap().expect("final counters line");
    let _ = std::fs::remove_dir_all(&dir);
    Run { step, counters, flows: rig.sink.accounting.specs().to_vec() }
}

/// Asserts what every clean step shows: enough traffic, nothing lost, damaged, duplicated or
/// unexpected, the generator on plan.
pub fn assert_clean_step(step: &StepOutcome) {
    assert!(step.expected_out > 1000, "too little traffic: {step:?}");
    assert_eq!(step.lost, 0, "{step:?}");
    assert_eq!((step.integrity_failures, step.rewrite_errors), (0, 0), "{step:?}");
    assert_eq!((step.duplicates, step.unexpected), (0, 0), "{step:?}");
    assert!(!step.generator_short, "{step:?}");
    assert!(step.latency_p50_ns > 0 && step.latency_p50_ns <= step.latency_p999_ns, "{step:?}");
}
