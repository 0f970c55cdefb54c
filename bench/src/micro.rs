//! `ringfwd-bench micro`: what each built-in interceptor costs per packet, in-process, on virtual time.
//!
//! Owns the microbenchmark: every built-in alone in a `Chain` bound by `ChainFactory` from
//! `spec::from_config` with the default `[interceptors]` parameters (ns per RTP packet, timers that fall
//! due included, the outbox drained), the feedback costs (a subscriber's NACK answered from the
//! retransmission cache, a PLI through the keyframe throttle), the plugin rows (`plugins`: per RTP packet, and per
//! publisher's RTCP compound for a plugin that reads it and one that rewrites it), and the whole `Forwarder` with a
//! fan-out of [`FAN_OUT`] with the default chains and with none. Each figure is raw and net of its
//! baseline (the same loop through an empty chain, or the forwarder without interceptors). Repetitions
//! are interleaved (one of every row, then the next), so a noisy moment hits every row alike.
//!
//! Single-threaded, pinned to one core when it can be; time is virtual (one `Instant` at start,
//! packets spaced by `Duration`s); the clock is read only around a whole batch. Every row also
//! checks that its interceptor really worked (counts from `Chain::snapshot` and the forwarder's
//! counters) and fails when a required count is zero. Must never open a socket, read the clock per
//! packet, or report a figure whose sanity count is zero.

mod plugins;
pub mod render;
mod rows;
pub mod workload;

use std::time::{Duration, Instant};

use ringfwd_dataplane::core::CommandError;
use ringfwd_tuning::{InterceptorName, Interceptors};
use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use rows::{forwarder_once, nack_once, pli_once, rtcp_once, rtp_once, Member, Side, PLI_SPACING_MS, TIMER_SWEEP};
use workload::{CLOCK_RATE_HZ, PACKETS_PER_SECOND};

pub use render::{markdown, render};

/// Default packets (or NACKs, PLIs) per repetition.
pub const DEFAULT_PACKETS: u64 = 200_000;
/// Default repetitions.
pub const DEFAULT_REPS: usize = 5;
/// Fewest packets per repetition: 1000 packets are ~4 s of virtual time, enough for every report timer.
pub const MIN_PACKETS: u64 = 1000;
/// Most packets per repetition.
pub const MAX_PACKETS: u64 = 50_000_000;
/// Most repetitions.
pub const MAX_REPS: usize = 50;
/// Subscriptions of the whole-forwarder stream (the conference shape).
pub const FAN_OUT: u32 = 10;
/// Units of the untimed warm-up run of every row.
const WARMUP_UNITS: u64 = 10_000;
/// What one run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MicroOptions {
    /// Packets (or NACKs, PLIs) per repetition.
    pub packets: u64,
    /// Repetitions of every row.
    pub reps: usize,
    /// Pin the thread to one core (the last one it may run on).
    pub pin: bool,
}

impl Default for MicroOptions {
    fn default() -> MicroOptions {
        MicroOptions { packets: DEFAULT_PACKETS, reps: DEFAULT_REPS, pin: true }
    }
}

/// Why the microbenchmark gave no figures.
#[derive(Debug, thiserror::Error)]
pub enum MicroError {
    /// An option out of its range.
    #[error("--{name} must be within {min}..={max}, got {value}")]
    Option {
        /// The option.
        name: &'static str,
        /// Its value.
        value: u64,
        /// Least allowed.
        min: u64,
        /// Most allowed.
        max: u64,
    },
    /// The test packets could not be built.
    #[error("building the test packets: {message}")]
    Template {
        /// What went wrong.
        message: String,
    },
    /// The spec built from config did not bind what the row asks for.
    #[error("row {row}: the chain holds {bound} interceptors, expected {expected}")]
    NotBound {
        /// The row.
        row: &'static str,
        /// Interceptors bound.
        bound: usize,
        /// Interceptors asked for.
        expected: usize,
    },
    /// A required sanity count stayed zero: the row's time would be meaningless.
    #[error("row {row}: {what} is 0 after {units} units, so the setup is broken and its time means nothing")]
    NoWork {
        /// The row.
        row: &'static str,
        /// The count.
        what: String,
        /// Units (packets, NACKs, PLIs) run.
        units: u64,
    },
    /// The forwarder refused a command while being set up.
    #[error("setting up the forwarder: {0}")]
    Command(#[from] CommandError),
}

/// One count showing an interceptor did its work during the last repetition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sanity {
    /// What was counted.
    pub what: String,
    /// The count.
    pub count: u64,
    /// True: zero fails the run.
    pub required: bool,
}

/// One measured figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Row name (an interceptor, `nack_cache_per_nack`, `baseline_rtp`, `forwarder_default`, ...).
    pub name: String,
    /// What one unit is: `rtp`, `nack`, `pli` or `received rtp`.
    pub per: String,
    /// Nanoseconds per unit, one per repetition.
    pub raw_ns: Vec<f64>,
    /// The row subtracted for the net figure.
    pub baseline: Option<String>,
    /// `raw_ns` minus the baseline's median, one per repetition.
    pub net_ns: Vec<f64>,
    /// Counts of the last repetition.
    pub sanity: Vec<Sanity>,
}

/// The whole-forwarder comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwarderFigures {
    /// Subscriptions of the stream.
    pub fan_out: u32,
    /// Median ns per received packet with the default chains.
    pub default_ns: f64,
    /// Median ns per received packet without interceptors.
    pub empty_ns: f64,
    /// `default_ns / empty_ns`.
    pub ratio: f64,
    /// `default_ns / fan_out`.
    pub default_per_copy_ns: f64,
    /// `empty_ns / fan_out`.
    pub empty_per_copy_ns: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MicroReport {
    /// The machine.
    pub machine: Machine,
    /// The core the thread was pinned to, if it was.
    pub pinned_core: Option<usize>,
    /// Units per repetition.
    pub packets: u64,
    /// Repetitions.
    pub reps: usize,
    /// The traffic, in words.
    pub workload: String,
    /// Every figure, baselines first.
    pub rows: Vec<Row>,
    /// The forwarder's figures.
    pub forwarder: ForwarderFigures,
}

impl MicroReport {
    /// The row named `name`.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.name == name)
    }
}

/// Every RTP row: name, chain, the built-in alone, whether 1 % of packets carry a foreign payload type.
const RTP_ROWS: [(&str, Side, InterceptorName, bool); 10] = [
    ("rate_limit", Side::Ingress, InterceptorName::RateLimit, false),
    ("stats_ingress", Side::Ingress, InterceptorName::Stats, false),
    ("twcc", Side::Ingress, InterceptorName::Twcc, false),
    ("nack_generator", Side::Ingress, InterceptorName::NackGenerator, false),
    ("keyframe_throttle", Side::Ingress, InterceptorName::KeyframeThrottle, false),
    ("nack_cache", Side::Ingress, InterceptorName::NackCache, false),
    ("receiver_reports", Side::Ingress, InterceptorName::ReceiverReports, false),
    ("payload_type_filter", Side::Egress, InterceptorName::PayloadTypeFilter, true),
    ("stats_egress", Side::Egress, InterceptorName::Stats, false),
    ("sender_reports", Side::Egress, InterceptorName::SenderReports, false),
];

/// Every row name, in the order of the report.
pub const ROW_NAMES: [&str; 27] = [
    "baseline_rtp",
    "rate_limit",
    "stats_ingress",
    "twcc",
    "nack_generator",
    "keyframe_throttle",
    "nack_cache",
    "receiver_reports",
    "payload_type_filter",
    "stats_egress",
    "sender_reports",
    "plugin_native_noop",
    "plugin_wasm_noop",
    "plugin_wasm_throttle",
    "plugin_wasm_rewrite",
    "plugin_wasm_async",
    "baseline_nack",
    "nack_cache_per_nack",
    "baseline_pli",
    "keyframe_throttle_per_pli",
    "baseline_rtcp",
    "plugin_wasm_rtcp_noop",
    "plugin_wasm_rtcp_rewrite",
    "forwarder_empty",
    "forwarder_default",
    "forwarder_default_wasm_noop",
    "forwarder_default_wasm_rewrite",
];

/// The traffic, in words (for the report).
pub fn workload_description() -> String {
    format!(
        "one video stream of {}-byte RTP packets at {} Hz, {} packets/s (30 frames/s of {}), a one-byte \
         transport-wide sequence header extension on every packet, 1% of sequence numbers never arriving \
         (payload_type_filter: 1% of packets of a payload type not negotiated); NACK row: 1 NACK with 1 PID \
         for a cached packet; PLI row: 1 PLI per {} ms; plugin rows: a native and a WebAssembly no-op, a \
         WebAssembly throttle at 80% of the packet rate, and a WebAssembly plugin rewriting each packet 4 bytes \
         longer; forwarder: fan-out {}, timers swept every {} ms, the default chains alone, with the WebAssembly \
         no-op and with the rewriting plugin on ingress",
        workload::PACKET_BYTES,
        CLOCK_RATE_HZ,
        PACKETS_PER_SECOND,
        workload::PACKETS_PER_FRAME,
        PLI_SPACING_MS,
        FAN_OUT,
        TIMER_SWEEP.as_millis(),
    )
}

/// One repetition of a row: its time and its counts.
type Once<'a> = Box<dyn FnMut(u64) -> Result<(Duration, Vec<Sanity>), MicroError> + 'a>;

/// Runs every row `options.reps` times, interleaved; fails on an option out of range or a row that did
/// no work.
pub fn run(options: &MicroOptions) -> Result<MicroReport, MicroError> {
    check_range("packets", options.packets, MIN_PACKETS, MAX_PACKETS)?;
    check_range("reps", options.reps as u64, 1, MAX_REPS as u64)?;
    // Loaded before pinning: the async plugin's thread must not share the bench thread's core.
    let (plugins, wasm_plugins) = plugins::registry()?;
    let pinned_core = if options.pin { pin() } else { None };
    let t0 = Instant::now();
    let mut config = Interceptors::default();
    // The default rate limit is unlimited (a no-op); 80 % of the stream's packet rate makes it drop.
    config.rate_limit.max_packets_per_second = (PACKETS_PER_SECOND * 8 / 10) as u32;
    config.rate_limit.max_bits_per_second = 10_000_000;
    let config = &config;
    let plugins = &plugins;

    let mut jobs: Vec<(&'static str, &'static str, Option<&'static str>, Once<'_>)> = Vec::new();
    jobs.push((
        "baseline_rtp",
        "rtp",
        None,
        Box::new(move |n| rtp_once("baseline_rtp", Side::Ingress, Member::Empty, false, config, n, t0)),
    ));
    for (name, side, built_in, foreign) in RTP_ROWS {
        let once = move |n| rtp_once(name, side, Member::Builtin(built_in), foreign, config, n, t0);
        jobs.push((name, "rtp", Some("baseline_rtp"), Box::new(once)));
    }
    for (name, plugin, drops) in plugins::ROWS {
        let member = Member::Plugin { plugins, name: plugin, drops };
        let once = move |n| rtp_once(name, Side::Ingress, member, false, config, n, t0);
        jobs.push((name, "rtp", Some("baseline_rtp"), Box::new(once)));
    }
    jobs.push(("baseline_nack", "nack", None, Box::new(move |n| nack_once("baseline_nack", false, config, n, t0))));
    let nack = move |n| nack_once("nack_cache_per_nack", true, config, n, t0);
    jobs.push(("nack_cache_per_nack", "nack", Some("baseline_nack"), Box::new(nack)));
    jobs.push(("baseline_pli", "pli", None, Box::new(move |n| pli_once("baseline_pli", false, config, n, t0))));
    let pli = move |n| pli_once("keyframe_throttle_per_pli", true, config, n, t0);
    jobs.push(("keyframe_throttle_per_pli", "pli", Some("baseline_pli"), Box::new(pli)));
    let baseline_rtcp = move |n| rtcp_once("baseline_rtcp", Member::Empty, false, config, n, t0);
    jobs.push(("baseline_rtcp", "rtcp", None, Box::new(baseline_rtcp)));
    for (name, plugin, rewrites) in plugins::RTCP_ROWS {
        let member = Member::Plugin { plugins, name: plugin, drops: false };
        let once = move |n| rtcp_once(name, member, rewrites, config, n, t0);
        jobs.push((name, "rtcp", Some("baseline_rtcp"), Box::new(once)));
    }
    jobs.push(("forwarder_empty", "received rtp", None, Box::new(move |n| forwarder_once(false, None, config, n, t0))));
    let default = move |n| forwarder_once(true, None, config, n, t0);
    jobs.push(("forwarder_default", "received rtp", Some("forwarder_empty"), Box::new(default)));
    let noop = move |n| forwarder_once(true, Some((plugins, "wasm_noop", false)), config, n, t0);
    jobs.push(("forwarder_default_wasm_noop", "received rtp", Some("forwarder_empty"), Box::new(noop)));
    let rewrite = move |n| forwarder_once(true, Some((plugins, "wasm_grow", true)), config, n, t0);
    jobs.push(("forwarder_default_wasm_rewrite", "received rtp", Some("forwarder_empty"), Box::new(rewrite)));

    for (_, _, _, once) in &mut jobs {
        once(options.packets.min(WARMUP_UNITS))?;
    }
    let mut rows: Vec<Row> = jobs
        .iter()
        .map(|(name, per, baseline, _)| Row {
            name: name.to_string(),
            per: per.to_string(),
            raw_ns: Vec::with_capacity(options.reps),
            baseline: baseline.map(str::to_string),
            net_ns: Vec::new(),
            sanity: Vec::new(),
        })
        .collect();
    for _ in 0..options.reps {
        for ((name, _, _, once), row) in jobs.iter_mut().zip(rows.iter_mut()) {
            let (elapsed, sanity) = once(options.packets)?;
            if let Some(zero) = sanity.iter().find(|s| s.required && s.count == 0) {
                return Err(MicroError::NoWork { row: name, what: zero.what.clone(), units: options.packets });
            }
            row.raw_ns.push(elapsed.as_nanos() as f64 / options.packets as f64);
            row.sanity = sanity;
        }
    }
    drop(jobs);
    for plugin in wasm_plugins.iter().filter(|p| matches!(p.mode(), ringfwd_dataplane::wasm::PluginMode::Async(_))) {
        let stats = plugin.stats();
        eprintln!(
            "{}: {} copies handed to its thread, {} found its queue full, {} calls there",
            plugin.name(),
            stats.async_queued,
            stats.async_queue_full,
            stats.calls
        );
    }
    let medians: Vec<(String, f64)> = rows.iter().map(|r| (r.name.clone(), crate::report::median(&r.raw_ns))).collect();
    for row in &mut rows {
        if let Some(base) = medians.iter().find(|(name, _)| Some(name) == row.baseline.as_ref()) {
            row.net_ns = row.raw_ns.iter().map(|raw| raw - base.1).collect();
        }
    }
    let median_of = |name: &str| medians.iter().find(|(n, _)| n == name).map_or(0.0, |(_, m)| *m);
    let (default_ns, empty_ns) = (median_of("forwarder_default"), median_of("forwarder_empty"));
    let forwarder = ForwarderFigures {
        fan_out: FAN_OUT,
        default_ns,
        empty_ns,
        ratio: if empty_ns > 0.0 { default_ns / empty_ns } else { 0.0 },
        default_per_copy_ns: default_ns / f64::from(FAN_OUT),
        empty_per_copy_ns: empty_ns / f64::from(FAN_OUT),
    };
    Ok(MicroReport {
        machine: Machine::describe(None),
        pinned_core,
        packets: options.packets,
        reps: options.reps,
        workload: workload_description(),
        rows,
        forwarder,
    })
}

fn check_range(name: &'static str, value: u64, min: u64, max: u64) -> Result<(), MicroError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(MicroError::Option { name, value, min, max })
    }
}

/// Pins this thread to the last core it may run on; the core, if that worked.
fn pin() -> Option<usize> {
    let core = core_affinity::get_core_ids()?.into_iter().last()?;
    core_affinity::set_for_current(core).then_some(core.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_measured_and_every_interceptor_worked() {
        let report = run(&MicroOptions { packets: 2000, reps: 2, pin: false }).unwrap();
        for name in ROW_NAMES {
            let row = report.row(name).unwrap_or_else(|| panic!("row {name} missing"));
            assert_eq!(row.raw_ns.len(), 2, "{name}");
            assert!(row.raw_ns.iter().all(|ns| ns.is_finite() && *ns > 0.0), "{name}: {:?}", row.raw_ns);
            let required: Vec<&Sanity> = row.sanity.iter().filter(|s| s.required).collect();
            assert!(!required.is_empty(), "{name} checks something");
            assert!(required.iter().all(|s| s.count > 0), "{name}: {:?}", row.sanity);
            assert_eq!(row.baseline.is_some(), !row.net_ns.is_empty(), "{name}");
        }
        assert_eq!(report.rows.len(), ROW_NAMES.len());
        let count = |row: &str, what: &str| {
            report.row(row).and_then(|r| r.sanity.iter().find(|s| s.what == what)).map(|s| s.count)
        };
        assert_eq!(count("stats_ingress", "packets counted"), Some(2000), "stats counted every packet");
        assert_eq!(count("stats_egress", "packets counted"), Some(2000));
        assert_eq!(count("nack_cache_per_nack", "retransmitted"), Some(2000), "every NACK answered");
        assert_eq!(count("nack_cache_per_nack", "misses"), Some(0));
        assert_eq!(count("keyframe_throttle_per_pli", "consumed"), Some(2000), "every PLI absorbed");
        assert_eq!(count("forwarder_default", "copies forwarded"), Some(2000 * u64::from(FAN_OUT)));
        let rewrite = "forwarder_default_wasm_rewrite";
        assert_eq!(count(rewrite, "copies forwarded"), Some(2000 * u64::from(FAN_OUT)));
        assert_eq!(count(rewrite, "rewritten by a plugin"), Some(2000));
        assert_eq!(count("plugin_wasm_rewrite", "rewritten"), Some(2000));
        assert_eq!(count("plugin_wasm_rtcp_noop", "passed on"), Some(2000), "every compound let through");
        assert_eq!(count("plugin_wasm_rtcp_noop", "rewritten"), Some(0));
        assert_eq!(count("plugin_wasm_rtcp_rewrite", "rewritten"), Some(2000), "every compound rewritten");
        assert_eq!(count("forwarder_empty", "copies forwarded"), Some(2000 * u64::from(FAN_OUT)));
        assert_eq!(count("forwarder_empty", "interceptor packets emitted"), Some(0));
        let filtered = count("payload_type_filter", "filtered").unwrap_or(0);
        assert!((15..=25).contains(&filtered), "about 1% filtered: {filtered}");
        let limited = count("rate_limit", "rate_limited").unwrap_or(0);
        assert!((50..=600).contains(&limited), "some over the limit after its one-second burst: {limited}");
        assert!(report.forwarder.ratio > 0.0 && report.forwarder.default_ns > 0.0);
        let table = render(&report);
        assert!(ROW_NAMES.iter().all(|name| table.contains(name)), "{table}");
        assert!(markdown(&report).contains("| nack_cache_per_nack |"));
    }

    #[test]
    fn options_out_of_range_are_refused_by_name() {
        let err = run(&MicroOptions { packets: 10, reps: 1, pin: false }).unwrap_err();
        assert!(err.to_string().contains("--packets") && err.to_string().contains("10"), "{err}");
        let err = run(&MicroOptions { packets: 1000, reps: 0, pin: false }).unwrap_err();
        assert!(err.to_string().contains("--reps"), "{err}");
    }
}
