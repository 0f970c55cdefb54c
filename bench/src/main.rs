//! `ringfwd-bench`: command line of the bench suite (see the library docs of `ringfwd_bench`).
//!
//! - `ringfwd-bench baseline naive|mmsg --config FILE`: run a reference forwarder until SIGTERM.
//! - `ringfwd-bench compare [--quick] [--forwarders ringfwd,mmsg,naive] [--json FILE]`: measure
//!   the forwarders side by side on loopback and print the tables.
//! - `ringfwd-bench probe --forwarder F --scenario S --out-pps N`: one step at one rate, as JSON.
//! - `ringfwd-bench churn [--seconds N] [--concurrency C] [--out-pps R] [--json FILE]`: subscribe
//!   and unsubscribe through ringfwd's API while it forwards the conference; print the table.
//!
//! Owns argument parsing and exit codes only.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringfwd_bench::churn::{self, ChurnOptions};
use ringfwd_bench::compare::{self, CompareOptions, Timing};
use ringfwd_bench::forwarder::{Binaries, ForwarderKind};
use ringfwd_bench::scenario::ScenarioKind;
use ringfwd_bench::{baseline, report};
use ringfwd_tuning::IdleStrategy;

#[derive(Parser)]
#[command(name = "ringfwd-bench", version, about = "ringfwd load generator, sink, baselines and comparison")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a reference forwarder from a ringfwd config until SIGTERM/SIGINT.
    Baseline {
        /// Which baseline.
        kind: BaselineKind,
        /// The ringfwd config file (media.addresses[0], static [[sessions]], placement).
        #[arg(long)]
        config: PathBuf,
    },
    /// Measure forwarders side by side on loopback.
    Compare {
        /// Short steps and one repetition (smoke test).
        #[arg(long)]
        quick: bool,
        /// Forwarders to compare, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "ringfwd,mmsg,naive")]
        forwarders: Vec<ForwarderKind>,
        /// Scenarios to run, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "flat,conference,broadcast")]
        scenarios: Vec<ScenarioKind>,
        /// Repetitions (default 3, or 1 with --quick).
        #[arg(long)]
        reps: Option<usize>,
        /// Also write every measurement as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Run one forwarder on one scenario at one rate and print the step's measurements as JSON.
    Probe {
        /// The forwarder.
        #[arg(long, default_value = "mmsg")]
        forwarder: ForwarderKind,
        /// The scenario.
        #[arg(long, default_value = "flat")]
        scenario: ScenarioKind,
        /// Offered output rate (copies per second all subscribers receive together).
        #[arg(long)]
        out_pps: f64,
        /// Step length in seconds (at most 60).
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Subscribe and unsubscribe through ringfwd's control API as fast as it answers while ringfwd
    /// forwards the conference scenario; print operations/s, RPC latency and the loss of the
    /// original subscriptions.
    Churn {
        /// Churn window in seconds (at most 120).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Concurrent churn clients (1..=64).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Offered output rate of the conference (copies per second all subscribers receive together).
        #[arg(long, default_value_t = churn::DEFAULT_OUT_PPS)]
        out_pps: f64,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
}

/// How the ringfwd daemon is run.
#[derive(Args)]
struct DaemonArgs {
    /// The ringfwd binary (default: next to this one).
    #[arg(long)]
    ringfwd: Option<PathBuf>,
    /// ringfwd's idle strategy.
    #[arg(long, value_enum, default_value = "sleep")]
    idle: Idle,
}

#[derive(Clone, Copy, ValueEnum)]
enum BaselineKind {
    /// One recv_from and one send_to per copy.
    Naive,
    /// recvmmsg batches and sendmmsg of [header, payload slice].
    Mmsg,
}

#[derive(Clone, Copy, ValueEnum)]
enum Idle {
    Sleep,
    Spin,
    SpinThenSleep,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Baseline { kind, config } => {
            let result = match kind {
                BaselineKind::Naive => baseline::naive::run(&config),
                BaselineKind::Mmsg => baseline::mmsg::run(&config),
            };
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(format!("baseline: {e}")),
            }
        }
        Command::Compare { quick, forwarders, scenarios, reps, json, daemon } => {
            let mut timing = if quick { Timing::quick() } else { Timing::full() };
            if let Some(reps) = reps {
                timing.reps = reps.clamp(1, 20);
            }
            let options = match options(forwarders, scenarios, timing, daemon) {
                Ok(options) => options,
                Err(message) => return fail(message),
            };
            match compare::run(&options) {
                Ok(result) => {
                    print!("{}", report::render(&result));
                    let _ = std::fs::remove_dir_all(&options.work_dir);
                    match json.map(|path| report::write_json(&result, &path).map_err(|e| (path, e))) {
                        Some(Err((path, e))) => fail(format!("writing {}: {e}", path.display())),
                        _ => ExitCode::SUCCESS,
                    }
                }
                Err(e) => fail(format!("compare: {e}\n(configs and logs kept in {})", options.work_dir.display())),
            }
        }
        Command::Probe { forwarder, scenario, out_pps, seconds, daemon } => {
            if !(out_pps.is_finite() && out_pps > 0.0 && seconds > 0.0 && seconds <= 60.0) {
                return fail(format!("probe: need --out-pps > 0 and 0 < --seconds <= 60, got {out_pps} and {seconds}"));
            }
            let options = match options(vec![forwarder], vec![scenario], Timing::full(), daemon) {
                Ok(options) => options,
                Err(message) => return fail(message),
            };
            let duration = Duration::from_secs_f64(seconds);
            let outcome = compare::run_once(&options, forwarder, scenario, out_pps, duration);
            let _ = std::fs::remove_dir_all(&options.work_dir);
            match outcome.map(|o| serde_json::to_string_pretty(&o)) {
                Ok(Ok(text)) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Ok(Err(e)) => fail(format!("probe: {e}")),
                Err(e) => fail(format!("probe: {e}")),
            }
        }
        Command::Churn { seconds, concurrency, out_pps, json, daemon } => {
            if !(seconds > 0.0 && seconds <= churn::MAX_SECONDS) {
                return fail(format!("churn: need 0 < --seconds <= {}, got {seconds}", churn::MAX_SECONDS));
            }
            let compare = match options(vec![ForwarderKind::Ringfwd], Vec::new(), Timing::full(), daemon) {
                Ok(options) => options,
                Err(message) => return fail(message),
            };
            let options = ChurnOptions {
                duration: Duration::from_secs_f64(seconds),
                concurrency,
                out_pps,
                binaries: compare.binaries,
                idle: compare.idle,
                work_dir: compare.work_dir,
            };
            match churn::run(&options) {
                Ok(result) => {
                    print!("{}", churn::report::render(&result));
                    let _ = std::fs::remove_dir_all(&options.work_dir);
                    match json.map(|path| report::write_json(&result, &path).map_err(|e| (path, e))) {
                        Some(Err((path, e))) => fail(format!("writing {}: {e}", path.display())),
                        _ => ExitCode::SUCCESS,
                    }
                }
                Err(e) => fail(format!("churn: {e}\n(configs and logs kept in {})", options.work_dir.display())),
            }
        }
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("ringfwd-bench {message}");
    ExitCode::FAILURE
}

/// Options shared by `compare`, `probe` and `churn`; fails when ringfwd is asked for but not found.
fn options(
    forwarders: Vec<ForwarderKind>,
    scenarios: Vec<ScenarioKind>,
    timing: Timing,
    daemon: DaemonArgs,
) -> Result<CompareOptions, String> {
    let DaemonArgs { ringfwd, idle } = daemon;
    let bench = std::env::current_exe().map_err(|e| format!("cannot locate own binary: {e}"))?;
    let ringfwd = ringfwd.unwrap_or_else(|| bench.with_file_name("ringfwd"));
    if forwarders.contains(&ForwarderKind::Ringfwd) && !ringfwd.is_file() {
        return Err(format!(
            "no ringfwd binary at {} (build it with `cargo build --release -p ringfwd`, pass --ringfwd PATH, \
             or leave it out with --forwarders mmsg,naive)",
            ringfwd.display()
        ));
    }
    let idle = match idle {
        Idle::Sleep => IdleStrategy::Sleep,
        Idle::Spin => IdleStrategy::Spin,
        Idle::SpinThenSleep => IdleStrategy::SpinThenSleep,
    };
    let work_dir = std::env::temp_dir().join(format!("ringfwd-bench-{}", std::process::id()));
    Ok(CompareOptions { forwarders, scenarios, timing, binaries: Binaries { ringfwd, bench }, idle, work_dir })
}
