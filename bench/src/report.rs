//! Turning a comparison into tables and JSON.
//!
//! Owns the statistics shown (median over repetitions, spread as min–max), the per-scenario
//! table, the CPU-per-packet ratios against the mmsg baseline, the smoke-test notice of a `--quick` run (first
//! and last line of the table, first line of the Markdown), and the JSON file (of any result). Must never
//! measure anything or change a result.

use std::fmt::Write as _;
use std::path::Path;

use crate::compare::{CompareResult, ForwarderResult, ScenarioResult};
use crate::forwarder::ForwarderKind;
use crate::search::Limit;

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

fn median_cpu(f: &ForwarderResult) -> f64 {
    median(&f.fixed.iter().map(|s| s.cpu_ns_per_packet).collect::<Vec<_>>())
}

/// The table of one scenario.
pub fn scenario_table(s: &ScenarioResult) -> String {
    let mut out = String::new();
    let reps = s.forwarders.first().map_or(0, |f| f.searches.len());
    let _ = writeln!(out, "\n{} — {} ({reps} repetition(s), median (min-max))", s.scenario, s.description);
    let _ = writeln!(
        out,
        "{:<9} {:>30} {:>26} {:>8} {:>9} {:>9} {:>9}  errors",
        "forwarder",
        "max out pps, loss < 0.1%",
        format!("cpu ns/pkt @ {:.0} pps", s.fixed_out_pps),
        "loss %",
        "p50 us",
        "p99 us",
        "p99.9 us",
    );
    for f in &s.forwarders {
        let max: Vec<f64> = f.searches.iter().map(|x| x.max_out_pps).collect();
        let cpu: Vec<f64> = f.fixed.iter().map(|x| x.cpu_ns_per_packet).collect();
        let fixed_loss: Vec<f64> = f.fixed.iter().map(|x| x.loss_ratio * 100.0).collect();
        let lat = |pick: fn(&crate::step::StepOutcome) -> u64| {
            median(&f.latency.iter().map(|x| pick(x) as f64).collect::<Vec<_>>()) / 1e3
        };
        let errors: u64 = f
            .fixed
            .iter()
            .chain(&f.latency)
            .chain(f.searches.iter().flat_map(|x| &x.steps))
            .map(|x| x.integrity_failures + x.rewrite_errors + x.duplicates + x.unexpected)
            .sum();
        let _ = writeln!(
            out,
            "{:<9} {:>30} {:>26} {:>8.3} {:>9.1} {:>9.1} {:>9.1}  {}",
            f.forwarder.to_string(),
            format!("{}{}", with_spread(&max, 1.0, 0), limit_note(f)),
            with_spread(&cpu, 1.0, 0),
            median(&fixed_loss),
            lat(|x| x.latency_p50_ns),
            lat(|x| x.latency_p99_ns),
            lat(|x| x.latency_p999_ns),
            errors
        );
    }
    if let Some(mmsg) = s.forwarders.iter().find(|f| f.forwarder == ForwarderKind::Mmsg) {
        let reference = median_cpu(mmsg);
        if reference > 0.0 {
            let ratios: Vec<String> =
                s.forwarders.iter().map(|f| format!("{} {:.2}x", f.forwarder, median_cpu(f) / reference)).collect();
            let _ = writeln!(out, "cpu/pkt vs mmsg: {}", ratios.join(", "));
        }
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
        "\nmax: delivered rate of the best step with loss < 0.1%; '>= (bench-limited)': the bench core (generator\n\
         and sink) saturated first. Copies arriving over 50 ms late count as lost. errors: damaged payloads + wrong rewrites + duplicates + unexpected datagrams.\n",
    );
    if let Some(notice) = result.notice {
        let _ = writeln!(out, "{notice}");
    }
    out
}

/// The comparison as Markdown: the setup, one table per scenario, the CPU ratios against mmsg.
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
        let _ = writeln!(out, "\n**{}** — {} ({reps} repetition(s), median (min–max))\n", s.scenario, s.description);
        let _ = writeln!(
            out,
            "| forwarder | max out pps, loss < 0.1% | CPU ns/copy @ {:.0} pps | CPU vs mmsg | p50 µs | p99 µs | p99.9 µs |",
            s.fixed_out_pps
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        let reference = s.forwarders.iter().find(|f| f.forwarder == ForwarderKind::Mmsg).map(median_cpu);
        for f in &s.forwarders {
            let max: Vec<f64> = f.searches.iter().map(|x| x.max_out_pps).collect();
            let cpu: Vec<f64> = f.fixed.iter().map(|x| x.cpu_ns_per_packet).collect();
            let lat = |pick: fn(&crate::step::StepOutcome) -> u64| {
                median(&f.latency.iter().map(|x| pick(x) as f64).collect::<Vec<_>>()) / 1e3
            };
            let ratio =
                reference.filter(|&r| r > 0.0).map_or("–".to_string(), |r| format!("{:.2}×", median_cpu(f) / r));
            let _ = writeln!(
                out,
                "| {} | {}{} | {} | {} | {:.1} | {:.1} | {:.1} |",
                f.forwarder,
                with_spread(&max, 1.0, 0),
                limit_note(f),
                with_spread(&cpu, 1.0, 0),
                ratio,
                lat(|x| x.latency_p50_ns),
                lat(|x| x.latency_p99_ns),
                lat(|x| x.latency_p999_ns),
            );
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
        let step = StepOutcome { cpu_ns_per_packet: cpu, latency_p99_ns: 20_000, ..Default::default() };
        ForwarderResult {
            forwarder: kind,
            searches: vec![Search { max_out_pps: max, limit, steps: vec![step.clone()] }],
            fixed: vec![step.clone()],
            latency: vec![step],
        }
    }

    #[test]
    fn tables_show_ratios_against_mmsg_and_bench_limits() {
        let s = ScenarioResult {
            scenario: "flat".into(),
            description: "64 streams".into(),
            fixed_out_pps: 50_000.0,
            forwarders: vec![
                forwarder(ForwarderKind::Ringfwd, 400_000.0, 1500.0, Limit::Generator),
                forwarder(ForwarderKind::Mmsg, 200_000.0, 4500.0, Limit::Forwarder),
            ],
        };
        let table = scenario_table(&s);
        assert!(table.contains("cpu ns/pkt @ 50000 pps"), "{table}");
        assert!(table.contains("400000 >= (bench-limited)"), "{table}");
        assert!(table.contains("ringfwd 0.33x, mmsg 1.00x"), "{table}");
        assert!(table.contains("20.0"), "{table}");
    }

    fn result(timing: crate::compare::Timing) -> CompareResult {
        let scenario = ScenarioResult {
            scenario: "flat".into(),
            description: "64 streams".into(),
            fixed_out_pps: 50_000.0,
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
