//! Turning a comparison into tables and JSON.
//!
//! Owns the statistics shown (median over repetitions, spread as min–max and as (max−min)/median),
//! the per-scenario table, the ratios against the strongest baseline in the run (gso, else mmsg), the
//! smoke-test notice of a `--quick` run (first and last line of the table, first line of the Markdown),
//! and the JSON file (of any result). Must never
//! measure anything or change a result.

use std::fmt::Write as _;
use std::path::Path;

use crate::compare::{CompareResult, ForwarderResult, ScenarioResult};
use crate::forwarder::ForwarderKind;
use crate::search::Limit;
use crate::step::StepOutcome;

/// Median of `values` (mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `median (min–max)` with values scaled by `unit` and `digits` decimals; just the median
/// when there is one value.
pub fn with_spread(values: &[f64], unit: f64, digits: usize) -> String {
    let m = median(values) / unit;
    let finite = || values.iter().copied().filter(|x| x.is_finite());
    match (finite().reduce(f64::min), finite().reduce(f64::max)) {
        (Some(lo), Some(hi)) if values.len() > 1 => {
            format!("{m:.digits$} ({:.digits$}-{:.digits$})", lo / unit, hi / unit)
        }
        _ => format!("{m:.digits$}"),
    }
}

fn limit_note(f: &ForwarderResult) -> &'static str {
    let bench_limited = f.searches.iter().any(|s| matches!(s.limit, Limit::Generator | Limit::Bench));
    let ceiling = f.searches.iter().any(|s| s.limit == Limit::SearchCeiling);
    match (bench_limited, ceiling) {
        (true, _) => " >= (bench-limited)",
        (false, true) => " >= (ceiling)",
        _ => "",
    }
}

/// Spread of `values` as `(max - min) / median`, in percent (0 for fewer than two).
pub fn spread_percent(values: &[f64]) -> f64 {
    let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let m = median(&finite);
    match (finite.iter().copied().reduce(f64::min), finite.iter().copied().reduce(f64::max)) {
        (Some(lo), Some(hi)) if finite.len() > 1 && m > 0.0 => (hi - lo) / m * 100.0,
        _ => 0.0,
    }
}

/// The median over repetitions of one figure of a forwarder's steps.
fn med(steps: &[StepOutcome], pick: impl Fn(&StepOutcome) -> f64) -> f64 {
    median(&steps.iter().map(pick).collect::<Vec<_>>())
}

fn maxima(f: &ForwarderResult) -> Vec<f64> {
    f.searches.iter().map(|x| x.max_out_pps).collect()
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// The baseline every forwarder is compared with: the strongest one in the run (gso, else mmsg,
/// else naive).
pub fn reference(s: &ScenarioResult) -> Option<&ForwarderResult> {
    [ForwarderKind::Gso, ForwarderKind::Mmsg, ForwarderKind::Naive]
        .iter()
        .find_map(|&kind| s.forwarders.iter().find(|f| f.forwarder == kind))
}

/// One forwarder's row figures: medians over repetitions.
struct Row {
    max_out: f64,
    /// `max_out` over the scenario's fan-out.
    max_in: f64,
    spread: f64,
    cpu_at_max: f64,
    p50_at_max: f64,
    p99_at_max: f64,
    p999_at_max: f64,
    cpu_fixed: f64,
    p50_fixed: f64,
    p99_fixed: f64,
    p999_fixed: f64,
    loss_fixed_percent: f64,
    errors: u64,
}

impl Row {
    fn of(f: &ForwarderResult, out_per_in: f64) -> Row {
        let errors = f
            .fixed
            .iter()
            .chain(&f.at_max)
            .chain(f.searches.iter().flat_map(|x| &x.steps))
            .map(|x| x.integrity_failures + x.rewrite_errors + x.duplicates + x.unexpected)
            .sum();
        let max_out = median(&maxima(f));
        Row {
            max_out,
            max_in: max_out / out_per_in.max(f64::MIN_POSITIVE),
            spread: spread_percent(&maxima(f)),
            cpu_at_max: med(&f.at_max, StepOutcome::cpu_ns_per_input),
            p50_at_max: med(&f.at_max, |x| us(x.latency_p50_ns)),
            p99_at_max: med(&f.at_max, |x| us(x.latency_p99_ns)),
            p999_at_max: med(&f.at_max, |x| us(x.latency_p999_ns)),
            cpu_fixed: med(&f.fixed, StepOutcome::cpu_ns_per_input),
            p50_fixed: med(&f.fixed, |x| us(x.latency_p50_ns)),
            p99_fixed: med(&f.fixed, |x| us(x.latency_p99_ns)),
            p999_fixed: med(&f.fixed, |x| us(x.latency_p999_ns)),
            loss_fixed_percent: med(&f.fixed, |x| x.loss_ratio * 100.0),
            errors,
        }
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}x", ours / theirs)
    } else {
        "-".to_string()
    }
}

/// How each forwarder compares with the reference baseline, one line each.
fn ratio_lines(s: &ScenarioResult) -> Vec<String> {
    let Some(base) = reference(s) else {
        return Vec::new();
    };
    let b = Row::of(base, s.out_per_in);
    s.forwarders
        .iter()
        .filter(|f| f.forwarder != base.forwarder)
        .map(|f| {
            let r = Row::of(f, s.out_per_in);
            format!(
                "{} vs {}: max rate {}, cpu/in-pkt at max {}, at {:.0} pps: cpu/in-pkt {}, p50 {:+.0} us, p99 {}, \
                 p99.9 {}; max spread {:.0}% vs {:.0}%",
                f.forwarder,
                base.forwarder,
                ratio(r.max_out, b.max_out),
                ratio(r.cpu_at_max, b.cpu_at_max),
                s.fixed_out_pps,
                ratio(r.cpu_fixed, b.cpu_fixed),
                r.p50_fixed - b.p50_fixed,
                ratio(r.p99_fixed, b.p99_fixed),
                ratio(r.p999_fixed, b.p999_fixed),
                r.spread,
                b.spread,
            )
        })
        .collect()
}

/// The table of one scenario.
pub fn scenario_table(s: &ScenarioResult) -> String {
    let mut out = String::new();
    let reps = s.forwarders.first().map_or(0, |f| f.searches.len());
    let _ = writeln!(
        out,
        "\n{} — {} ({reps} repetition(s), medians; max as median (min-max) and spread = (max-min)/median)",
        s.scenario, s.description
    );
    let _ = writeln!(
        out,
        "{:<13} {:>34} {:>8} {:>10} | {:>31} | {:>38}",
        "",
        "",
        "",
        "",
        "at max",
        format!("at {:.0} out pps", s.fixed_out_pps)
    );
    let _ = writeln!(
        out,
        "{:<13} {:>34} {:>8} {:>10} | {:>7} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} {:>7} {:>6}  errors",
        "forwarder",
        format!("max out pps (p99 < {:.0} ms)", s.max_p99_ns as f64 / 1e6),
        "spread",
        "max in pps",
        "ns/in",
        "p50 us",
        "p99 us",
        "p99.9",
        "ns/in",
        "p50 us",
        "p99 us",
        "p99.9",
        "loss%",
    );
    for f in &s.forwarders {
        let r = Row::of(f, s.out_per_in);
        let _ = writeln!(
            out,
            "{:<13} {:>34} {:>7.0}% {:>10.0} | {:>7.0} {:>7.0} {:>7.0} {:>7.0} | {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>6.3}  {}",
            f.forwarder.to_string(),
            format!("{}{}", with_spread(&maxima(f), 1.0, 0), limit_note(f)),
            r.spread,
            r.max_in,
            r.cpu_at_max,
            r.p50_at_max,
            r.p99_at_max,
            r.p999_at_max,
            r.cpu_fixed,
            r.p50_fixed,
            r.p99_fixed,
            r.p999_fixed,
            r.loss_fixed_percent,
            r.errors
        );
    }
    for line in ratio_lines(s) {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// Every scenario's table, and the setup they ran on.
pub fn render(result: &CompareResult) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    let mut out = result.notice.map(|n| format!("{n}\n")).unwrap_or_default();
    let _ = writeln!(
        out,
        "ringfwd-bench compare: forwarder on core {}, generator+sink on core {}, generator GSO {}, sink GRO {}, \
         kernel rx timestamps {}",
        result.worker_core,
        result.bench_core,
        on(result.generator_gso),
        on(result.sink_gro),
        on(result.sink_kernel_timestamps),
    );
    for s in &result.scenarios {
        out.push_str(&scenario_table(s));
    }
    out.push_str(
        "\nmax: delivered output rate of the best step with loss < 0.1%, p99 one-way latency under the bound and the\n\
         generator holding its rate; '>= (bench-limited)': the bench core (generator and sink) saturated first.\n\
         ns/in: forwarder CPU (user+system) per input packet, all its copies included. Copies arriving over 50 ms\n\
         late count as lost. errors: damaged payloads + wrong rewrites + duplicates + unexpected datagrams.\n",
    );
    if let Some(notice) = result.notice {
        let _ = writeln!(out, "{notice}");
    }
    out
}

/// The comparison as Markdown: the setup, one table per scenario, the ratios against the strongest
/// baseline.
pub fn markdown(result: &CompareResult) -> String {
    let mut out = result.notice.map(|n| format!("**{n}**\n\n")).unwrap_or_default();
    let _ = writeln!(
        out,
        "Machine: {}. Forwarder on core {}, generator and sink on core {}.",
        result.machine.one_line(),
        result.worker_core,
        result.bench_core
    );
    for s in &result.scenarios {
        let reps = s.forwarders.first().map_or(0, |f| f.searches.len());
        let _ = writeln!(
            out,
            "\n**{}** — {} ({reps} repetition(s), medians; max as median (min–max))\n",
            s.scenario, s.description
        );
        let _ = writeln!(
            out,
            "| forwarder | max out pps (loss < 0.1%, p99 < {:.0} ms) | spread | max in pps | CPU ns/in-pkt at max | \
             p50 / p99 / p99.9 µs at max | CPU ns/in-pkt at {:.0} pps | p50 / p99 / p99.9 µs at {:.0} pps |",
            s.max_p99_ns as f64 / 1e6,
            s.fixed_out_pps,
            s.fixed_out_pps
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for f in &s.forwarders {
            let r = Row::of(f, s.out_per_in);
            let _ = writeln!(
                out,
                "| {} | {}{} | {:.0}% | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} | {:.0} | {:.0} / {:.0} / {:.0} |",
                f.forwarder,
                with_spread(&maxima(f), 1.0, 0),
                limit_note(f),
                r.spread,
                r.max_in,
                r.cpu_at_max,
                r.p50_at_max,
                r.p99_at_max,
                r.p999_at_max,
                r.cpu_fixed,
                r.p50_fixed,
                r.p99_fixed,
                r.p999_fixed,
            );
        }
        for line in ratio_lines(s) {
            let _ = writeln!(out, "\n{line}");
        }
    }
    out
}

/// Writes a whole result (a comparison's, a churn run's) as pretty JSON.
pub fn write_json<T: serde::Serialize>(result: &T, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(result).map_err(std::io::Error::other)?;
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Search;
    use crate::step::StepOutcome;

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
        assert_eq!(with_spread(&[2000.0, 1000.0, 3000.0], 1000.0, 1), "2.0 (1.0-3.0)");
        assert_eq!(with_spread(&[1500.0], 1.0, 0), "1500");
    }

    fn forwarder(kind: ForwarderKind, max: f64, cpu: f64, limit: Limit) -> ForwarderResult {
        let step = StepOutcome {
            sent_in: 1000,
            forwarder_cpu_ns: (cpu * 1000.0) as u64,
            latency_p50_ns: 10_000,
            latency_p99_ns: 20_000,
            ..Default::default()
        };
        ForwarderResult {
            forwarder: kind,
            searches: vec![
                Search { max_out_pps: max, limit, steps: vec![step.clone()] },
                Search { max_out_pps: max * 0.9, limit, steps: vec![] },
            ],
            fixed: vec![step.clone()],
            at_max: vec![step],
        }
    }

    #[test]
    fn tables_show_ratios_against_the_strongest_baseline_and_bench_limits() {
        let s = ScenarioResult {
            scenario: "flat".into(),
            description: "64 streams".into(),
            fixed_out_pps: 50_000.0,
            out_per_in: 4.0,
            max_p99_ns: 5_000_000,
            forwarders: vec![
                forwarder(ForwarderKind::Ringfwd, 400_000.0, 1500.0, Limit::Generator),
                forwarder(ForwarderKind::Mmsg, 100_000.0, 9000.0, Limit::Forwarder),
                forwarder(ForwarderKind::Gso, 200_000.0, 4500.0, Limit::Latency),
            ],
        };
        let table = scenario_table(&s);
        assert!(table.contains("at 50000 out pps"), "{table}");
        assert!(table.contains("p99 < 5 ms"), "{table}");
        assert!(table.contains(">= (bench-limited)"), "{table}");
        assert!(table.contains("ringfwd vs gso: max rate 2.00x, cpu/in-pkt at max 0.33x"), "{table}");
        assert!(table.contains("mmsg vs gso: max rate 0.50x"), "{table}");
        assert!(table.contains("max spread 11% vs 11%"), "{table}");
        // 380 000 out pps median at fan-out 4 = 95 000 in pps.
        assert!(table.contains(" 95000 "), "{table}");
        let md = markdown(&CompareResult {
            notice: None,
            machine: crate::machine::Machine::describe(None),
            pinning: Default::default(),
            timing: crate::compare::Timing::quick(),
            worker_core: 1,
            bench_core: 0,
            generator_gso: true,
            sink_gro: true,
            sink_kernel_timestamps: true,
            scenarios: vec![s],
        });
        assert!(md.contains("| gso | "), "{md}");
        assert!(md.contains("ringfwd vs gso"), "{md}");
    }

    #[test]
    fn spreads_are_relative_to_the_median() {
        assert_eq!(spread_percent(&[90.0, 100.0, 110.0]), 20.0);
        assert_eq!(spread_percent(&[100.0]), 0.0);
        assert_eq!(spread_percent(&[]), 0.0);
    }

    fn result(timing: crate::compare::Timing) -> CompareResult {
        let scenario = ScenarioResult {
            scenario: "flat".into(),
            description: "64 streams".into(),
            fixed_out_pps: 50_000.0,
            out_per_in: 1.0,
            max_p99_ns: 5_000_000,
            forwarders: vec![forwarder(ForwarderKind::Mmsg, 200_000.0, 4500.0, Limit::Forwarder)],
        };
        CompareResult {
            notice: timing.smoke_test.then_some(crate::compare::SMOKE_TEST_NOTICE),
            machine: crate::machine::Machine::describe(None),
            pinning: crate::launch::Pinning { forwarder_cores: None, load_cores: None },
            timing,
            worker_core: 1,
            bench_core: 0,
            generator_gso: false,
            sink_gro: false,
            sink_kernel_timestamps: false,
            scenarios: vec![scenario],
        }
    }

    #[test]
    fn a_quick_run_is_marked_a_smoke_test_in_every_output() {
        let notice = crate::compare::SMOKE_TEST_NOTICE;
        assert!(notice.starts_with("SMOKE TEST (--quick)") && notice.contains("not results"));
        let quick = result(crate::compare::Timing::quick());
        let table = render(&quick);
        assert!(table.starts_with(notice) && table.trim_end().ends_with(notice), "{table}");
        assert!(markdown(&quick).starts_with(&format!("**{notice}**")), "{}", markdown(&quick));
        let json = serde_json::to_value(&quick).unwrap();
        assert_eq!(json["notice"], notice);
        assert_eq!(json["timing"]["smoke_test"], true);

        let full = result(crate::compare::Timing::full());
        for text in [render(&full), markdown(&full), serde_json::to_string(&full).unwrap()] {
            assert!(!text.contains("SMOKE TEST"), "{text}");
        }
    }
}
