//! `ringfwd-bench run`: one scenario against a ringfwd that is already running.
//!
//! Owns [`run`]: binds the publishers and the sink, creates the scenario's session (`bench-NAME`)
//! through the daemon's control API with its token (a leftover session of that id from an
//! earlier run is deleted first), arms the sink with what the API answered (and NACKs when the
//! scenario asks for loss repair), warms up, measures one step while a `\r`-updated progress line
//! goes to stderr (at most [`crate::step::PROGRESS_EVERY`]), then deletes the session again. CPU
//! per packet comes from `/proc` when the daemon's pid is given or is the only process named
//! `ringfwd`. Also owns the per-subscription figures ([`FlowReport`]) and the final table.
//!
//! Must never talk to a non-loopback address or leave its session behind on success.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::compare::CompareError;
use crate::control::{self, Control};
use crate::cpu::find_processes;
use crate::launch::{self, arm_sink, Pinning};
use crate::machine::Machine;
use crate::scenario::Scenario;
use crate::step::{run_step, run_step_with_progress, Progress, Rig, StepOutcome, Target};

/// What `run` does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The scenario.
    pub scenario: Scenario,
    /// The daemon's control API (loopback).
    pub api: SocketAddr,
    /// The daemon's media address (loopback).
    pub media: SocketAddr,
    /// The admin token file (where the daemon wrote its development token).
    pub token_file: PathBuf,
    /// The daemon's pid, for CPU per packet (found by name when absent and unique).
    pub pid: Option<u32>,
    /// Offered output rate, copies/s (default: the scenario's own rate).
    pub out_pps: Option<f64>,
    /// Measured step.
    pub duration: Duration,
    /// Unrecorded warm-up.
    pub warmup: Duration,
    /// Load cores (the forwarder's are the operator's business here).
    pub pinning: Pinning,
    /// Show the progress line.
    pub progress: bool,
    /// The payload type of the RED payloads a plugin on the daemon makes, for the sink to unwrap.
    pub red_pt: Option<u8>,
}

/// What one subscription saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FlowReport {
    /// Outgoing SSRC (what the subscriber receives).
    pub out_ssrc: u32,
    /// Generator stream it carries.
    pub stream: usize,
    /// Copies it should have received.
    pub expected: u64,
    /// Distinct copies received.
    pub received: u64,
    /// `expected - received`.
    pub lost: u64,
    /// Out of order.
    pub reordered: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Damaged payloads.
    pub integrity_failures: u64,
    /// Wrong rewriting.
    pub rewrite_errors: u64,
    /// One-way latency p50, µs.
    pub p50_us: f64,
    /// p99, µs.
    pub p99_us: f64,
}

/// A `run`'s figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    /// Machine and versions.
    pub machine: Machine,
    /// Scenario name.
    pub scenario: String,
    /// What it is.
    pub description: String,
    /// Offered output rate, copies/s.
    pub offered_out_pps: f64,
    /// Whether CPU was read from /proc (the daemon's pid was known).
    pub cpu_measured: bool,
    /// The measured step (totals).
    pub step: StepOutcome,
    /// Per subscription (outgoing SSRC).
    pub flows: Vec<FlowReport>,
}

/// Per-flow figures of the rig's last step.
pub fn flow_reports(rig: &Rig) -> Vec<FlowReport> {
    let acc = &rig.sink.accounting;
    acc.specs()
        .iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            let f = acc.flow(i)?;
            let expected = rig.gen.step_sent(spec.stream);
            let us = |q| if f.latency_ns.is_empty() { 0.0 } else { f.latency_ns.value_at_quantile(q) as f64 / 1e3 };
            Some(FlowReport {
                out_ssrc: spec.out_ssrc,
                stream: spec.stream,
                expected,
                received: f.counts.unique,
                lost: expected.saturating_sub(f.counts.unique),
                reordered: f.counts.reordered,
                duplicates: f.counts.duplicates,
                integrity_failures: f.counts.integrity_failures,
                rewrite_errors: f.counts.rewrite_errors,
                p50_us: us(0.5),
                p99_us: us(0.99),
            })
        })
        .collect()
}

fn control_err(e: control::ControlError) -> CompareError {
    CompareError::Launch(e.into())
}

/// Runs the scenario once against the running daemon.
pub fn run(options: &RunOptions) -> Result<RunResult, CompareError> {
    let scenario = &options.scenario;
    launch::place(&options.pinning)?;
    let mut rig = launch::build_rig(scenario, options.red_pt)?;
    let io = |what: &str| {
        let what = what.to_string();
        move |source| CompareError::Io { what, source }
    };
    let publishers = rig.gen.publisher_addrs().map_err(io("publisher addresses"))?;
    let sink_port = rig.sink.local_addr().map_err(io("sink address"))?.port();
    let session = scenario.session(&publishers, sink_port);
    let token = control::read_token(&options.token_file).map_err(control_err)?;
    let runtime = control::runtime().map_err(control_err)?;
    let flows = runtime
        .block_on(async {
            let mut api = Control::connect(options.api, &token).await?;
            if api.delete_session(&session.id).await? {
                eprintln!("ringfwd-bench run: deleted a leftover session {}", session.id);
            }
            let created = api.install(&session).await?;
            api.verify(&session).await?;
            control::flow_specs(scenario, &created)
        })
        .map_err(control_err)?;
    arm_sink(&mut rig, scenario, flows, Some(options.media))?;
    let pid = options.pid.or_else(|| match find_processes("ringfwd").as_slice() {
        [one] => Some(*one),
        _ => None,
    });
    let target = Target { pid, media: options.media };
    let base = scenario.base_out_pps();
    let out_pps = options.out_pps.unwrap_or(base);
    let scale = out_pps / base;
    let measure = |rig: &mut Rig| -> Result<StepOutcome, CompareError> {
        run_step(rig, target, base, scale, options.warmup).map_err(io("warm-up step"))?;
        let mut line = ProgressLine::new(&scenario.name, options.progress);
        let step = run_step_with_progress(rig, target, base, scale, options.duration, Some(&mut |p| line.show(p)));
        line.finish();
        step.map_err(io("measurement step"))
    };
    let step = measure(&mut rig);
    // The session goes whether or not the step worked.
    let deleted = runtime.block_on(async {
        let mut api = Control::connect(options.api, &token).await?;
        api.delete_session(&session.id).await
    });
    let step = step?;
    deleted.map_err(control_err)?;
    Ok(RunResult {
        machine: Machine::describe(pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok()).as_deref()),
        scenario: scenario.name.clone(),
        description: scenario.describe(),
        offered_out_pps: out_pps,
        cpu_measured: pid.is_some(),
        flows: flow_reports(&rig),
        step,
    })
}

/// The `\r`-updated progress line on stderr.
pub struct ProgressLine {
    label: String,
    enabled: bool,
    shown: bool,
}

impl ProgressLine {
    /// A progress line for `label`; `enabled: false` prints nothing.
    pub fn new(label: &str, enabled: bool) -> ProgressLine {
        ProgressLine { label: label.to_string(), enabled, shown: false }
    }

    /// Rewrites the line with `p`.
    pub fn show(&mut self, p: &Progress) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{}", render_progress(&self.label, p));
        let _ = err.flush();
        self.shown = true;
    }

    /// Ends the line.
    pub fn finish(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

/// One progress line (no line end).
pub fn render_progress(label: &str, p: &Progress) -> String {
    let t = p.elapsed_s.max(1e-3);
    let missing = p.expected_out.saturating_sub(p.received_out);
    let loss = if p.expected_out == 0 { 0.0 } else { missing as f64 * 100.0 / p.expected_out as f64 };
    format!(
        "[{label}] {:>5.1}/{:.1} s  in {:>8.0} pps  out {:>9.0} pps  missing {:.3}% (in flight included)  ",
        p.elapsed_s,
        p.duration_s,
        p.sent_in as f64 / t,
        p.received_out as f64 / t,
        loss
    )
}

/// The final table of a run.
pub fn render(r: &RunResult) -> String {
    let s = &r.step;
    let mut out = String::new();
    let _ = writeln!(out, "ringfwd-bench run: {} — {}", r.scenario, r.description);
    let _ = writeln!(out, "machine: {}", r.machine.one_line());
    let _ = writeln!(
        out,
        "offered {:.0} out pps for {:.1} s: sent {} in, expected {} out, received {} ({:.0} pps)",
        r.offered_out_pps, s.duration_s, s.sent_in, s.expected_out, s.received_out, s.delivered_out_pps
    );
    let pct = |n: u64| if s.expected_out == 0 { 0.0 } else { n as f64 * 100.0 / s.expected_out as f64 };
    let _ = writeln!(out, "{:<28} {:>12} {:>9}", "", "copies", "%");
    for (name, n) in [
        ("lost (all)", s.lost),
        ("  injected on the way in", s.injected_lost),
        ("lost on the last mile", s.last_mile_dropped),
        ("  repaired (after a NACK)", s.repaired),
        ("late (> 50 ms)", s.late),
        ("reordered", s.reordered),
        ("  injected", s.injected_reordered),
        ("duplicates", s.duplicates),
        ("  injected", s.injected_duplicates),
        ("integrity failures", s.integrity_failures),
        ("rewrite errors", s.rewrite_errors),
        ("unexpected datagrams", s.unexpected),
    ] {
        let _ = writeln!(out, "{name:<28} {n:>12} {:>9.3}", pct(n));
    }
    if s.nack_requests > 0 || s.nacked > 0 {
        let _ = writeln!(
            out,
            "NACKs: {} copies NACKed, {} requests in {} RTCP packets; residual loss {:.3}% (injected {:.3}%)",
            s.nacked,
            s.nack_requests,
            s.nack_packets_sent,
            pct(s.lost),
            pct(s.injected_lost)
        );
    }
    let _ = writeln!(
        out,
        "latency one-way: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        s.latency_p50_ns as f64 / 1e3,
        s.latency_p99_ns as f64 / 1e3,
        s.latency_p999_ns as f64 / 1e3
    );
    if r.cpu_measured {
        let _ = writeln!(
            out,
            "forwarder cpu: {:.1} ms, {:.0} ns per forwarded copy",
            s.forwarder_cpu_ns as f64 / 1e6,
            s.cpu_ns_per_packet
        );
    } else {
        let _ = writeln!(out, "forwarder cpu: not measured (give --pid)");
    }
    let mut worst: Vec<&FlowReport> = r.flows.iter().filter(|f| f.lost + f.duplicates + f.reordered > 0).collect();
    worst.sort_by_key(|f| std::cmp::Reverse(f.lost));
    if !worst.is_empty() {
        let _ = writeln!(out, "worst subscriptions (of {}):", r.flows.len());
        let _ = writeln!(
            out,
            "  {:>10} {:>8} {:>8} {:>6} {:>6} {:>6} {:>9}",
            "out ssrc", "expected", "received", "lost", "reord", "dup", "p99 us"
        );
        for f in worst.iter().take(5) {
            let _ = writeln!(
                out,
                "  {:#010x} {:>8} {:>8} {:>6} {:>6} {:>6} {:>9.1}",
                f.out_ssrc, f.expected, f.received, f.lost, f.reordered, f.duplicates, f.p99_us
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_show_rates_and_missing_share() {
        let p =
            Progress { elapsed_s: 2.0, duration_s: 10.0, sent_in: 2000, received_out: 19_800, expected_out: 20_000 };
        let line = render_progress("flat", &p);
        assert!(line.starts_with("[flat]   2.0/10.0 s"), "{line}");
        assert!(line.contains("in     1000 pps") && line.contains("out      9900 pps"), "{line}");
        assert!(line.contains("missing 1.000%"), "{line}");
        assert!(!line.contains('\n'));
    }
}
