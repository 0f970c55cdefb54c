//! `ringfwd-bench`: command line of the bench suite (see the library docs of `ringfwd_bench`).
//!
//! - `ringfwd-bench baseline naive|mmsg|gso --config FILE`: run a reference forwarder until SIGTERM.
//! - `ringfwd-bench compare [--quick] [--forwarders ringfwd,gso,mmsg] [--scenarios a,b]
//!   [--scenario-file F]... [--p99-bound-us N] [--fixed-out-pps N] [--json FILE] [--markdown FILE]`:
//!   the forwarders side by side.
//! - `ringfwd-bench run --scenario S|--scenario-file F --api ADDR --media ADDR [--token-file F]`: one
//!   scenario against a running ringfwd, with a progress line and the final table.
//! - `ringfwd-bench capacity [--kinds audio,video] [--p99-budget-us N]`: subscribers per worker core.
//! - `ringfwd-bench probe --forwarder F --scenario S --out-pps N`: one step at one rate, as JSON.
//! - `ringfwd-bench churn [--scenario churn] [--seconds N] [--concurrency C]`: subscribe and
//!   unsubscribe through ringfwd's API while it forwards; print the table.
//! - `ringfwd-bench soak --duration 30m --rate 70%:CAPACITY --churn OPS [--interval 10s] [--out DIR]`: ringfwd
//!   forwarding for a long time while its API is churned; RSS, descriptors, loss and p99 over time, and a
//!   verdict (exit status 1 when it fails).
//! - `ringfwd-bench plot RESULTS.json --out DIR`: latency CDF and throughput charts, SVG and PNG.
//! - `ringfwd-bench scenarios`: the built-in scenarios.
//! - `ringfwd-bench micro [--packets N] [--reps R] [--json FILE] [--markdown FILE]`: each
//!   interceptor's cost per packet and the forwarder's with and without them, in-process.
//!
//! Owns argument parsing and exit codes only.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringfwd_bench::capacity::{self, CapacityOptions, SizePlan};
use ringfwd_bench::capacity_report::{self, CapacityReport};
use ringfwd_bench::chains::{Chains as ChainSettings, PluginsFile};
use ringfwd_bench::churn::{self, ChurnOptions};
use ringfwd_bench::compare::{self, CompareOptions, Timing};
use ringfwd_bench::forwarder::{Binaries, ForwarderKind};
use ringfwd_bench::launch::Pinning;
use ringfwd_bench::machine::Machine;
use ringfwd_bench::run::{self as run_mode, RunOptions};
use ringfwd_bench::scenario::Scenario;
use ringfwd_bench::scenario_file::BUILTIN;
use ringfwd_bench::soak::{self, rate::RateSpec, verdict::Criteria, SoakOptions};
use ringfwd_bench::{baseline, cascade, micro, plot, report};
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
    /// Measure forwarders side by side on loopback (alternating, repeated).
    Compare {
        /// A smoke test of the suite: one repetition of short steps (about a minute); every output is marked
        /// "SMOKE TEST (--quick) ... not results".
        #[arg(long)]
        quick: bool,
        /// Forwarders to compare, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "ringfwd,gso,mmsg")]
        forwarders: Vec<ForwarderKind>,
        /// Built-in scenarios to run, comma-separated (see `ringfwd-bench scenarios`).
        #[arg(long, value_delimiter = ',', default_value = "flat,flat-fanout4,conference")]
        scenarios: Vec<String>,
        /// Latency bound of "max rate": a step whose p99 one-way latency reaches it fails, µs.
        #[arg(long, default_value_t = ringfwd_bench::search::MAX_P99_NS / 1_000)]
        p99_bound_us: u64,
        /// Output rate of the fixed-rate step (CPU and latency at a moderate load), packets/s.
        #[arg(long, default_value_t = compare::DEFAULT_FIXED_OUT_PPS)]
        fixed_out_pps: f64,
        /// Scenario files to run after the built-in ones.
        #[arg(long = "scenario-file")]
        scenario_files: Vec<PathBuf>,
        /// Repetitions (default 3, or 1 with --quick).
        #[arg(long)]
        reps: Option<usize>,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Run one scenario against a ringfwd that is already running.
    Run {
        #[command(flatten)]
        scenario: ScenarioArg,
        /// ringfwd's control API (loopback).
        #[arg(long)]
        api: SocketAddr,
        /// ringfwd's media address (loopback).
        #[arg(long)]
        media: SocketAddr,
        /// The admin token file (default: where a ringfwd without --config, run by this user in this
        /// environment, writes its development token: $RUNTIME_DIRECTORY/dev-token, else
        /// $XDG_RUNTIME_DIR/ringfwd/dev-token, else /run/ringfwd/dev-token for root, else
        /// /tmp/ringfwd-<uid>/dev-token).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// ringfwd's pid, for CPU per packet (default: the only process named ringfwd, if any).
        #[arg(long)]
        pid: Option<u32>,
        /// Measured seconds (at most 600).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Offered output rate, copies/s (default: the scenario's own rate).
        #[arg(long)]
        out_pps: Option<f64>,
        /// Cores of generator and sink (the first is used).
        #[arg(long, value_delimiter = ',')]
        load_cores: Option<Vec<usize>>,
        /// A plugin on the daemon's ingress wraps every packet in RED (RFC 2198) of this payload type: the sink
        /// unwraps it and checks the primary block.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=127))]
        red_pt: Option<u8>,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Search the most subscribers one ringfwd worker core carries, for audio and for video.
    Capacity {
        /// Which searches: audio (capacity-audio.toml), video (capacity-video.toml).
        #[arg(long, value_delimiter = ',', default_value = "audio,video")]
        kinds: Vec<CapacityKind>,
        /// Template scenario files to search instead of the built-in ones.
        #[arg(long = "scenario-file")]
        scenario_files: Vec<PathBuf>,
        /// p99 one-way latency budget, µs. Default 10 ms: on this kind of VM p99 is 1–7 ms at any
        /// load (hypervisor steal stalls), so a tighter budget measures the host, not ringfwd.
        #[arg(long, default_value_t = capacity::DEFAULT_P99_BUDGET_US)]
        p99_budget_us: u64,
        /// First size tried (rooms of the template).
        #[arg(long, default_value_t = 4)]
        start: usize,
        /// Largest size tried.
        #[arg(long, default_value_t = 1000)]
        max_size: usize,
        /// Most steps per search.
        #[arg(long, default_value_t = 12)]
        max_steps: usize,
        /// Seconds per step.
        #[arg(long, default_value_t = 3.0)]
        step_seconds: f64,
        /// No step starts after this many seconds per search.
        #[arg(long, default_value_t = 300.0)]
        max_seconds: f64,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Run one forwarder on one scenario at one rate and print the step's measurements as JSON.
    Probe {
        /// The forwarder.
        #[arg(long, default_value = "mmsg")]
        forwarder: ForwarderKind,
        #[command(flatten)]
        scenario: ScenarioArg,
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
    /// forwards a scenario (churn.toml: the conference); print operations/s, RPC latency and the
    /// loss of the original subscriptions.
    Churn {
        /// The scenario (its [churn] section gives the defaults below).
        #[arg(long, default_value = "churn")]
        scenario: String,
        /// Churn window in seconds (at most 120).
        #[arg(long)]
        seconds: Option<f64>,
        /// Concurrent churn clients (1..=64).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Offered output rate (copies per second all subscribers receive together).
        #[arg(long)]
        out_pps: Option<f64>,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Forward a scenario for a long time at a set rate while the API is churned; sample ringfwd's memory,
    /// descriptors and the loss and latency of the scenario's (untouched) subscriptions every interval;
    /// judge them against stated bounds (exit status 1 when a bound is broken).
    Soak {
        /// How long to sample, e.g. 30m, 90s, 1h30m (at most 24h).
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
        /// Offered rate, packets/s the publishers send (all streams): a number (5000), a share of a capacity
        /// you measured in packets/s in (70%:12000: 8400), or a share of a `ringfwd-bench capacity --json`
        /// report (70%:capacity.json: the scenario of the report (or --scenario of it) at the largest size
        /// that passed, at 70% of its own rate).
        #[arg(long)]
        rate: RateSpec,
        /// API operations per second of the churn, all clients together (0: no churn). Subscription cycles on
        /// the scenario's streams alternate with whole sessions (endpoints, stream, subscription) made and
        /// taken apart.
        #[arg(long)]
        churn: f64,
        /// Length of one sample (one measured step), e.g. 10s.
        #[arg(long, value_parser = parse_duration, default_value = "10s")]
        interval: Duration,
        /// The scenario whose subscriptions stay untouched: a built-in name or a .toml file (default: churn,
        /// the 11-party conference; with a capacity report, the report's scenario).
        #[arg(long)]
        scenario: Option<String>,
        /// Concurrent churn clients (1..=16).
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Directory for soak.md, soak.csv (written as the samples come) and soak.json.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Share of the samples, from the start, left out of the memory and descriptor fits, %.
        #[arg(long, default_value_t = soak::verdict::DEFAULT_WARMUP_SHARE * 100.0)]
        warmup_percent: f64,
        /// Resident-memory growth allowed after the warm-up (least-squares fit over the samples), MiB.
        #[arg(long, default_value_t = soak::verdict::DEFAULT_MAX_RSS_GROWTH_MIB)]
        max_rss_growth_mib: f64,
        /// Open-descriptor growth allowed after the warm-up (least-squares fit).
        #[arg(long, default_value_t = soak::verdict::DEFAULT_MAX_FD_GROWTH)]
        max_fd_growth: f64,
        /// p99 one-way latency bound of every interval, µs.
        #[arg(long, default_value_t = ringfwd_bench::search::MAX_P99_NS / 1_000)]
        p99_bound_us: u64,
        /// Copies of the untouched subscriptions allowed to arrive late (> 50 ms) over the whole run.
        #[arg(long, default_value_t = 0)]
        max_late: u64,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Draw the charts of a results JSON file (latency CDF, throughput vs offered load) as SVG and PNG.
    Plot {
        /// A JSON file written by compare, capacity or run.
        json: PathBuf,
        /// Output directory.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// List the built-in scenarios.
    Scenarios,
    /// Cost per packet of each interceptor alone, and of the forwarder (fan-out 10) with the default
    /// chains and without, in-process on virtual time (no sockets).
    /// What relaying across nodes costs: one publisher on node A, a subscriber per stream on A, on B (one hop) and
    /// on C (two hops, through B), three daemons and a Redis server on loopback; latency per node and added per hop,
    /// CPU per packet on each node.
    Cascade {
        /// Streams published on A.
        #[arg(long, default_value_t = 16)]
        streams: usize,
        /// Packets per second sent, all streams together.
        #[arg(long, default_value_t = 10_000.0)]
        pps: f64,
        /// Measured seconds per repetition.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Repetitions.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// The ringfwd binary (default: beside this one).
        #[arg(long)]
        ringfwd: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
    Micro {
        /// Packets (NACKs, PLIs) per repetition.
        #[arg(long, default_value_t = micro::DEFAULT_PACKETS)]
        packets: u64,
        /// Repetitions of every figure.
        #[arg(long, default_value_t = micro::DEFAULT_REPS)]
        reps: usize,
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// A scenario by name or file.
#[derive(Args)]
struct ScenarioArg {
    /// A built-in scenario.
    #[arg(long, default_value = "flat")]
    scenario: String,
    /// A scenario file (overrides --scenario).
    #[arg(long)]
    scenario_file: Option<PathBuf>,
}

impl ScenarioArg {
    fn load(&self) -> Result<Scenario, String> {
        match &self.scenario_file {
            Some(path) => load_file(path),
            None => Scenario::builtin(&self.scenario).map_err(|e| e.to_string()),
        }
    }
}

fn load_file(path: &Path) -> Result<Scenario, String> {
    ringfwd_bench::scenario_file::ScenarioFile::load(path).and_then(Scenario::from_file).map_err(|e| e.to_string())
}

/// Where results go.
#[derive(Args)]
struct OutputArgs {
    /// Also write every figure (and the machine's description) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the tables as Markdown here (compare, capacity, micro).
    #[arg(long)]
    markdown: Option<PathBuf>,
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
    /// Forwarder cores: its worker on the first, ringfwd's control plane on the rest (default: worker
    /// on the second core, control plane on the load core).
    #[arg(long, value_delimiter = ',')]
    forwarder_cores: Option<Vec<usize>>,
    /// Load cores: generator and sink on the first (default: the first core).
    #[arg(long, value_delimiter = ',')]
    load_cores: Option<Vec<usize>>,
    /// ringfwd's interceptor chains: its default ones (stats, keyframe throttle, NACK cache, RTCP
    /// reports), or none (plain forwarding, as the baselines do).
    #[arg(long, value_enum, default_value = "default")]
    interceptors: Chains,
    /// WebAssembly plugins for ringfwd: a TOML file of `[[plugins]]` entries (as in its config; a relative path is
    /// the file's directory's) and `ingress = [...]` / `egress = [...]`, the names (with per-chain options, e.g.
    /// "noop:mode=async") appended to every stream's and subscription's chain.
    #[arg(long)]
    plugins: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Chains {
    /// The config's default chains.
    Default,
    /// No interceptors.
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum BaselineKind {
    /// One recv_from and one send_to per copy.
    Naive,
    /// recvmmsg batches and sendmmsg of [header, payload slice].
    Mmsg,
    /// The mmsg loop plus one UDP GSO message per run of equal-size copies to one destination.
    Gso,
}

#[derive(Clone, Copy, ValueEnum)]
enum CapacityKind {
    /// capacity-audio.toml.
    Audio,
    /// capacity-video.toml.
    Video,
}

#[derive(Clone, Copy, ValueEnum)]
enum Idle {
    Sleep,
    Spin,
    SpinThenSleep,
}

fn main() -> ExitCode {
    match dispatch(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ringfwd-bench {message}");
            ExitCode::FAILURE
        }
    }
}

fn write_outputs<T: serde::Serialize>(result: &T, out: &OutputArgs, md: impl FnOnce() -> String) -> Result<(), String> {
    if let Some(path) = &out.json {
        report::write_json(result, path).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let Some(path) = &out.markdown {
        std::fs::write(path, md()).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn dispatch(command: Command) -> Result<(), String> {
    match command {
        Command::Baseline { kind, config } => match kind {
            BaselineKind::Naive => baseline::naive::run(&config),
            BaselineKind::Mmsg => baseline::mmsg::run(&config),
            BaselineKind::Gso => baseline::gso::run(&config),
        }
        .map(|_| ())
        .map_err(|e| format!("baseline: {e}")),
        Command::Compare {
            quick,
            forwarders,
            scenarios,
            scenario_files,
            reps,
            p99_bound_us,
            fixed_out_pps,
            out,
            daemon,
        } => {
            let mut timing = if quick { Timing::quick() } else { Timing::full() };
            if let Some(reps) = reps {
                timing.reps = reps.clamp(1, 20);
            }
            if !(100..=1_000_000).contains(&p99_bound_us) {
                return Err(format!("compare: --p99-bound-us must be 100..=1000000, got {p99_bound_us}"));
            }
            if !(fixed_out_pps.is_finite() && (100.0..=10_000_000.0).contains(&fixed_out_pps)) {
                return Err(format!("compare: --fixed-out-pps must be 100..=10000000, got {fixed_out_pps}"));
            }
            timing.max_p99_ns = p99_bound_us * 1_000;
            timing.fixed_out_pps = fixed_out_pps;
            let mut loaded = Vec::new();
            for name in scenarios.iter().filter(|n| !n.is_empty()) {
                loaded.push(Scenario::builtin(name).map_err(|e| format!("compare: {e}"))?);
            }
            for path in &scenario_files {
                loaded.push(load_file(path).map_err(|e| format!("compare: {e}"))?);
            }
            if timing.smoke_test {
                eprintln!("{}", compare::SMOKE_TEST_NOTICE);
            }
            let options = options(forwarders, loaded, timing, daemon)?;
            let result = compare::run(&options)
                .map_err(|e| format!("compare: {e}\n(configs and logs kept in {})", options.work_dir.display()))?;
            print!("{}", report::render(&result));
            let _ = std::fs::remove_dir_all(&options.work_dir);
            write_outputs(&result, &out, || report::markdown(&result))
        }
        Command::Run { scenario, api, media, token_file, pid, seconds, out_pps, load_cores, red_pt, quiet, out } => {
            if !(seconds > 0.0 && seconds <= 600.0) {
                return Err(format!("run: need 0 < --seconds <= 600, got {seconds}"));
            }
            if out_pps.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                return Err(format!("run: --out-pps must be > 0, got {out_pps:?}"));
            }
            let token_file = match token_file {
                Some(file) => file,
                None => ringfwd_tuning::Auth::default().dev_token_location().map_err(|e| format!("run: {e}"))?.path,
            };
            let options = RunOptions {
                scenario: scenario.load().map_err(|e| format!("run: {e}"))?,
                api,
                media,
                token_file,
                pid,
                out_pps,
                duration: Duration::from_secs_f64(seconds),
                warmup: Duration::from_millis(500),
                pinning: Pinning { forwarder_cores: None, load_cores },
                progress: !quiet,
                red_pt,
            };
            let result = run_mode::run(&options).map_err(|e| format!("run: {e}"))?;
            print!("{}", run_mode::render(&result));
            write_outputs(&result, &out, || format!("```\n{}```\n", run_mode::render(&result)))
        }
        Command::Capacity {
            kinds,
            scenario_files,
            p99_budget_us,
            start,
            max_size,
            max_steps,
            step_seconds,
            max_seconds,
            out,
            daemon,
        } => {
            if !(step_seconds > 0.0 && step_seconds <= 60.0 && max_seconds > 0.0 && max_steps >= 1) {
                return Err("capacity: need 0 < --step-seconds <= 60, --max-seconds > 0, --max-steps >= 1".into());
            }
            let mut templates = Vec::new();
            if scenario_files.is_empty() {
                for kind in kinds {
                    let name = match kind {
                        CapacityKind::Audio => "capacity-audio",
                        CapacityKind::Video => "capacity-video",
                    };
                    templates.push(Scenario::builtin(name).map_err(|e| format!("capacity: {e}"))?);
                }
            }
            for path in &scenario_files {
                templates.push(load_file(path).map_err(|e| format!("capacity: {e}"))?);
            }
            let base = options(vec![ForwarderKind::Ringfwd], Vec::new(), Timing::full(), daemon)?;
            let plan = SizePlan { start, max: max_size, max_steps };
            let options = CapacityOptions {
                templates,
                p99_budget_ns: p99_budget_us.saturating_mul(1000),
                plan,
                step: Duration::from_secs_f64(step_seconds),
                warmup: Duration::from_millis(300),
                max_time: Duration::from_secs_f64(max_seconds),
                binaries: base.binaries.clone(),
                idle: base.idle,
                chains: base.chains.clone(),
                work_dir: base.work_dir.clone(),
                pinning: base.pinning.clone(),
            };
            let (placement, results) = capacity::run(&options)
                .map_err(|e| format!("capacity: {e}\n(configs and logs kept in {})", options.work_dir.display()))?;
            let _ = std::fs::remove_dir_all(&options.work_dir);
            let report = CapacityReport {
                machine: Machine::describe(Some(&options.binaries.ringfwd)),
                p99_budget_us,
                plan,
                step_s: step_seconds,
                worker_core: placement.worker_core,
                bench_core: placement.bench_core,
                capacity: results,
            };
            print!("{}", capacity_report::render(&report));
            write_outputs(&report, &out, || capacity_report::markdown(&report))
        }
        Command::Probe { forwarder, scenario, out_pps, seconds, daemon } => {
            if !(out_pps.is_finite() && out_pps > 0.0 && seconds > 0.0 && seconds <= 60.0) {
                return Err(format!("probe: need --out-pps > 0 and 0 < --seconds <= 60, got {out_pps} and {seconds}"));
            }
            let scenario = scenario.load().map_err(|e| format!("probe: {e}"))?;
            let options = options(vec![forwarder], vec![scenario.clone()], Timing::full(), daemon)?;
            let duration = Duration::from_secs_f64(seconds);
            let outcome = compare::run_once(&options, forwarder, &scenario, out_pps, duration);
            let _ = std::fs::remove_dir_all(&options.work_dir);
            let text = outcome.map_err(|e| format!("probe: {e}"))?;
            println!("{}", serde_json::to_string_pretty(&text).map_err(|e| format!("probe: {e}"))?);
            Ok(())
        }
        Command::Churn { scenario, seconds, concurrency, out_pps, json, daemon } => {
            let scenario = Scenario::load(&scenario).map_err(|e| format!("churn: {e}"))?;
            let defaults = scenario.file.churn;
            let seconds = seconds.or(defaults.map(|c| c.seconds)).unwrap_or(10.0);
            let concurrency = concurrency.or(defaults.map(|c| c.concurrency)).unwrap_or(4);
            let out_pps = out_pps.or(defaults.map(|c| c.out_pps)).unwrap_or(churn::DEFAULT_OUT_PPS);
            if !(seconds > 0.0 && seconds <= churn::MAX_SECONDS) {
                return Err(format!("churn: need 0 < --seconds <= {}, got {seconds}", churn::MAX_SECONDS));
            }
            let compare = options(vec![ForwarderKind::Ringfwd], Vec::new(), Timing::full(), daemon)?;
            let options = ChurnOptions {
                duration: Duration::from_secs_f64(seconds),
                concurrency,
                out_pps,
                binaries: compare.binaries,
                idle: compare.idle,
                chains: compare.chains,
                work_dir: compare.work_dir,
                pinning: compare.pinning,
                scenario,
            };
            let result = churn::run(&options)
                .map_err(|e| format!("churn: {e}\n(configs and logs kept in {})", options.work_dir.display()))?;
            print!("{}", churn::report::render(&result));
            let _ = std::fs::remove_dir_all(&options.work_dir);
            match json {
                Some(path) => {
                    report::write_json(&result, &path).map_err(|e| format!("writing {}: {e}", path.display()))
                }
                None => Ok(()),
            }
        }
        Command::Soak {
            duration,
            rate,
            churn,
            interval,
            scenario,
            concurrency,
            out,
            warmup_percent,
            max_rss_growth_mib,
            max_fd_growth,
            p99_bound_us,
            max_late,
            daemon,
        } => soak_command(
            SoakArgs { duration, rate, churn, interval, scenario, concurrency, out },
            Criteria {
                warmup_share: warmup_percent / 100.0,
                max_rss_growth_kib: max_rss_growth_mib * 1024.0,
                max_fd_growth,
                p99_bound_us: p99_bound_us as f64,
                max_late,
                min_churn_share: soak::verdict::DEFAULT_MIN_CHURN_SHARE,
            },
            daemon,
        ),
        Command::Plot { json, out } => {
            let written = plot::plot_file(&json, &out).map_err(|e| format!("plot: {e}"))?;
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Cascade { streams, pps, seconds, reps, ringfwd, out } => {
            if streams == 0 || reps == 0 || !(1.0..=1_000_000.0).contains(&pps) || !(0.5..=600.0).contains(&seconds) {
                return Err("cascade: --streams and --reps at least 1, --pps 1..=1000000, --seconds 0.5..=600".into());
            }
            let bench = std::env::current_exe().map_err(|e| format!("cannot locate own binary: {e}"))?;
            let ringfwd = ringfwd.unwrap_or_else(|| bench.with_file_name("ringfwd"));
            if !ringfwd.is_file() {
                return Err(format!("no ringfwd binary at {} (cargo build --release -p ringfwd)", ringfwd.display()));
            }
            let options = cascade::CascadeOptions {
                streams,
                pps,
                duration: Duration::from_secs_f64(seconds),
                warmup: Duration::from_secs(1),
                reps,
                binaries: Binaries { ringfwd, bench },
                work_dir: std::env::temp_dir().join(format!("ringfwd-bench-cascade-{}", std::process::id())),
                forwarder_core: 1,
                load_core: 0,
            };
            let result = cascade::run(&options).map_err(|e| format!("cascade: {e}"))?;
            print!("{}", cascade::markdown(&result));
            write_outputs(&result, &out, || cascade::markdown(&result))
        }
        Command::Micro { packets, reps, out } => {
            let result =
                micro::run(&micro::MicroOptions { packets, reps, pin: true }).map_err(|e| format!("micro: {e}"))?;
            print!("{}", micro::render(&result));
            write_outputs(&result, &out, || micro::markdown(&result))
        }
        Command::Scenarios => {
            for (name, _) in BUILTIN {
                let s = Scenario::builtin(name).map_err(|e| e.to_string())?;
                println!(
                    "{name:<15} {:>5} streams {:>6} subscriptions {:>9.0} out pps  {}",
                    s.streams.len(),
                    s.flows.len(),
                    s.base_out_pps(),
                    s.describe()
                );
            }
            Ok(())
        }
    }
}

/// `--duration` and `--interval`: humantime's syntax (30m, 90s, 1h30m, 500ms).
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (expected e.g. 30m, 90s, 1h30m or 500ms)"))
}

/// The message of a failed write of `path`.
fn written(path: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("soak: writing {}: {e}", path.display())
}

/// The soak's flags apart from its bounds and the daemon's.
struct SoakArgs {
    duration: Duration,
    rate: RateSpec,
    churn: f64,
    interval: Duration,
    scenario: Option<String>,
    concurrency: usize,
    out: Option<PathBuf>,
}

/// Runs `soak`: rows on stdout as they come (and into `soak.csv`), then the verdict; an error when a bound
/// was broken, so the exit status says it.
fn soak_command(args: SoakArgs, criteria: Criteria, daemon: DaemonArgs) -> Result<(), String> {
    let chosen = match &args.scenario {
        Some(name) => Some(Scenario::load(name).map_err(|e| format!("soak: --scenario {name}: {e}"))?),
        None => None,
    };
    let resolved = soak::rate::resolve(
        &args.rate,
        chosen,
        || Scenario::builtin("churn").map_err(|e| e.to_string()),
        |name| Scenario::builtin(name).map_err(|e| e.to_string()),
    )
    .map_err(|e| format!("soak: --rate {e}"))?;
    let base = options(vec![ForwarderKind::Ringfwd], Vec::new(), Timing::full(), daemon)?;
    let options = SoakOptions {
        scenario: resolved.scenario,
        in_pps: resolved.in_pps,
        rate_how: resolved.how,
        duration: args.duration,
        interval: args.interval,
        churn_ops_per_s: args.churn,
        concurrency: args.concurrency,
        criteria,
        binaries: base.binaries,
        idle: base.idle,
        chains: base.chains.clone(),
        work_dir: base.work_dir,
        pinning: base.pinning,
    };
    options.validate().map_err(|e| format!("soak: {e}"))?;
    let mut csv = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(written(dir))?;
            let path = dir.join("soak.csv");
            let mut file = std::fs::File::create(&path).map_err(written(&path))?;
            writeln!(file, "{}", soak::report::csv_header()).map_err(written(&path))?;
            Some((file, path))
        }
        None => None,
    };
    println!("{}", soak::report::header());
    let mut csv_failure = None;
    let mut on_sample = |sample: &soak::verdict::SoakSample| {
        println!("{}", soak::report::row(sample));
        if let Some((file, path)) = &mut csv {
            if let Err(e) = writeln!(file, "{}", soak::report::csv_row(sample)).and_then(|()| file.flush()) {
                csv_failure.get_or_insert_with(|| written(path)(e));
            }
        }
    };
    let result = soak::run(&options, &mut on_sample)
        .map_err(|e| format!("soak: {e}\n(configs and logs kept in {})", options.work_dir.display()))?;
    let _ = std::fs::remove_dir_all(&options.work_dir);
    print!("{}{}", soak::report::preamble(&result), soak::report::render_end(&result));
    if let Some(dir) = &args.out {
        let md = dir.join("soak.md");
        std::fs::write(&md, soak::report::markdown(&result)).map_err(written(&md))?;
        let json = dir.join("soak.json");
        report::write_json(&result, &json).map_err(written(&json))?;
    }
    if let Some(e) = csv_failure {
        return Err(e);
    }
    if result.verdict.pass {
        Ok(())
    } else {
        let failed: Vec<&str> = result.verdict.checks.iter().filter(|c| !c.pass).map(|c| c.name).collect();
        Err(format!("soak: FAIL ({})", failed.join(", ")))
    }
}

/// Options shared by `compare`, `probe`, `capacity` and `churn`; fails when ringfwd is asked for but
/// not found.
fn options(
    forwarders: Vec<ForwarderKind>,
    scenarios: Vec<Scenario>,
    timing: Timing,
    daemon: DaemonArgs,
) -> Result<CompareOptions, String> {
    let DaemonArgs { ringfwd, idle, forwarder_cores, load_cores, interceptors, plugins } = daemon;
    let plugins = plugins.map(|path| PluginsFile::load(&path)).transpose()?;
    let bench = std::env::current_exe().map_err(|e| format!("cannot locate own binary: {e}"))?;
    let ringfwd = ringfwd.unwrap_or_else(|| bench.with_file_name("ringfwd"));
    if forwarders.iter().any(|k| k.is_ringfwd()) && !ringfwd.is_file() {
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
    Ok(CompareOptions {
        forwarders,
        scenarios,
        timing,
        binaries: Binaries { ringfwd, bench },
        idle,
        chains: ChainSettings { defaults: matches!(interceptors, Chains::Default), plugins },
        work_dir,
        pinning: Pinning { forwarder_cores, load_cores },
    })
}
