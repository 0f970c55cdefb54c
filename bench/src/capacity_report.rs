//! Turning `capacity` results into a table, Markdown and the JSON document.
//!
//! Owns [`CapacityReport`] (the JSON: machine, options and every step) and its text and Markdown
//! tables. Must never measure anything or change a result.

use std::fmt::Write as _;

use crate::capacity::{CapacityLimit, CapacityResult, SizePlan};
use crate::machine::Machine;

/// Everything a `capacity` run wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CapacityReport {
    /// Machine and versions.
    pub machine: Machine,
    /// The p99 latency budget, µs.
    pub p99_budget_us: u64,
    /// The search bounds.
    pub plan: SizePlan,
    /// Length of each step, s.
    pub step_s: f64,
    /// Core of the single worker.
    pub worker_core: usize,
    /// Core of generator and sink.
    pub bench_core: usize,
    /// Per template.
    pub capacity: Vec<CapacityResult>,
}

/// The cells of one template's row: scenario, size, subscribers, subscriptions (with `>=` when the
/// bench, not ringfwd, stopped the search), the subscriptions a fully busy worker would carry by
/// linear extrapolation of its CPU, out pps, CPU ns per copy, worker CPU, p99 ms, what failed next.
fn rows(r: &CapacityReport) -> Vec<[String; 10]> {
    r.capacity
        .iter()
        .map(|c| {
            let cell = |f: &dyn Fn(&crate::capacity::CapacityStep) -> String| c.best.as_ref().map_or("–".into(), f);
            [
                c.scenario.clone(),
                cell(&|b| format!("{} = {}", c.size_key.trim_start_matches("topology."), b.size)),
                cell(&|b| b.subscribers.to_string()),
                cell(&|b| {
                    let at_least =
                        matches!(c.search.limit, CapacityLimit::Bench | CapacityLimit::Bounds | CapacityLimit::Ceiling);
                    format!("{}{}", if at_least { ">= " } else { "" }, b.subscriptions)
                }),
                cell(&|b| {
                    let busy = b.worker_cpu_percent / 100.0;
                    if busy > 0.0 {
                        format!("~{:.0}", b.subscriptions as f64 / busy)
                    } else {
                        "–".into()
                    }
                }),
                cell(&|b| format!("{:.0}", b.outcome.delivered_out_pps)),
                cell(&|b| format!("{:.0}", b.outcome.cpu_ns_per_packet)),
                cell(&|b| format!("{:.0}%", b.worker_cpu_percent)),
                cell(&|b| format!("{:.2}", b.outcome.latency_p99_ns as f64 / 1e6)),
                format!("{:?}", c.search.limit).to_lowercase(),
            ]
        })
        .collect()
}

/// Column widths of the text table.
const WIDTHS: [usize; 10] = [16, 14, 11, 16, 16, 10, 11, 10, 8, 0];

fn text_row(cells: &[String]) -> String {
    let mut line = format!("{:<w$}", cells[0], w = WIDTHS[0]);
    for (cell, w) in cells.iter().zip(WIDTHS).skip(1).take(8) {
        let _ = write!(line, " {cell:>w$}");
    }
    let _ = write!(line, "  {}", cells[9]);
    line
}

/// The text table.
pub fn render(r: &CapacityReport) -> String {
    let mut out = format!(
        "ringfwd-bench capacity: one worker on core {}, load on core {}; pass = loss < 0.1% and p99 <= {:.1} ms\n\
         machine: {}\n",
        r.worker_core,
        r.bench_core,
        r.p99_budget_us as f64 / 1e3,
        r.machine.one_line()
    );
    let header = [
        "scenario",
        "size",
        "subscribers",
        "subscriptions",
        "est. @100% cpu",
        "out pps",
        "cpu ns/pkt",
        "worker cpu",
        "p99 ms",
    ];
    let mut cells: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    cells.push("next size failed on".into());
    let _ = writeln!(out, "{}", text_row(&cells));
    for row in rows(r) {
        let _ = writeln!(out, "{}", text_row(&row));
    }
    out.push_str(
        "subscriptions = consumers in mediasoup's terms (mediasoup documents about 500 per worker core).\n\
         est. @100% cpu: subscriptions / worker CPU share at that size, a linear extrapolation (not a measurement).\n\
         next size failed on: loss, latency (p99 over budget), bench (generator/sink saturated), ceiling (largest size \
         allowed passed), bounds (step or time limit).\n",
    );
    out
}

/// The Markdown table.
pub fn markdown(r: &CapacityReport) -> String {
    let mut out = format!(
        "One worker on core {}, load on core {}; pass = loss < 0.1% and p99 ≤ {:.1} ms. Machine: {}.\n\n",
        r.worker_core,
        r.bench_core,
        r.p99_budget_us as f64 / 1e3,
        r.machine.one_line()
    );
    out.push_str(
        "| scenario | size | subscribers | subscriptions (consumers) | linear est. at 100% worker CPU | out pps | \
         CPU ns/copy | worker CPU | p99 ms | next size failed on |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for row in rows(r) {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{CapacityStep, SizeSearch};
    use crate::step::StepOutcome;

    #[test]
    fn tables_show_the_largest_passing_size() {
        let step = CapacityStep {
            size: 25,
            subscribers: 125,
            subscriptions: 500,
            streams: 125,
            failed: None,
            worker_cpu_percent: 61.0,
            outcome: StepOutcome {
                delivered_out_pps: 25_000.0,
                cpu_ns_per_packet: 2100.0,
                latency_p99_ns: 3_100_000,
                ..Default::default()
            },
        };
        let r = CapacityReport {
            machine: Machine::default(),
            p99_budget_us: 10_000,
            plan: SizePlan { start: 4, max: 1000, max_steps: 12 },
            step_s: 2.0,
            worker_core: 1,
            bench_core: 0,
            capacity: vec![CapacityResult {
                scenario: "capacity-audio".into(),
                description: "rooms".into(),
                size_key: "topology.calls".into(),
                search: SizeSearch { best: 25, limit: CapacityLimit::Loss, tried: vec![(25, None)] },
                best: Some(step.clone()),
                steps: vec![step],
            }],
        };
        let text = render(&r);
        assert!(
            text.contains("calls = 25") && text.contains("500") && text.contains("3.10") && text.contains("loss"),
            "{text}"
        );
        let md = markdown(&r);
        assert!(
            md.contains("| capacity-audio | calls = 25 | 125 | 500 | ~820 | 25000 | 2100 | 61% | 3.10 | loss |"),
            "{md}"
        );
    }
}
