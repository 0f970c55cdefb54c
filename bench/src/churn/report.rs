//! The churn measurement's table.
//!
//! Owns [`render`]: the control plane's figures (operations, operations/s per 1 s window and overall,
//! RPC latency, errors), the data plane's figures for the original subscriptions in the quiet
//! reference step and during the churn side by side (loss, late, reordered, duplicates, header
//! errors, CPU by thread), and a verdict line. Must never measure anything or change a result.

use std::fmt::Write as _;

use super::{ChurnResult, Forwarding};

/// CPU share of one core over a step, in %.
fn share(ns: u64, step_s: f64) -> f64 {
    if step_s > 0.0 {
        ns as f64 / (step_s * 1e9) * 100.0
    } else {
        0.0
    }
}

/// The table of a churn run.
pub fn render(r: &ChurnResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ringfwd-bench churn: {} — {}\nringfwd worker on core {}; generator, sink, churn clients and ringfwd's control \
         plane on core {}; {:.0} out pps offered; churn window {:.1} s, {} concurrent client(s)",
        r.scenario, r.description, r.worker_core, r.bench_core, r.out_pps, r.duration_s, r.concurrency
    );
    let errors = if r.errors_by_code.is_empty() {
        "none".to_string()
    } else {
        r.errors_by_code.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
    };
    let windows: Vec<String> = r.ops_per_window.iter().map(u64::to_string).collect();
    let _ = writeln!(out, "\ncontrol plane (extra subscriptions to a throwaway endpoint: create + delete)");
    let _ = writeln!(
        out,
        "  operations     {} ({} creates + {} deletes), errors: {errors}{}",
        r.operations,
        r.creates,
        r.deletes,
        if r.capped { " (operation cap reached)" } else { "" }
    );
    let _ = writeln!(
        out,
        "  ops/s          {:.0} median of 1 s windows, {:.0} overall; windows: {}",
        r.ops_per_s_median,
        r.ops_per_s_total,
        windows.join(" ")
    );
    for (name, l) in [("create", r.create_latency), ("delete", r.delete_latency)] {
        let _ = writeln!(
            out,
            "  {name} latency {:>8.0} us p50 {:>8.0} us p99 {:>8.0} us max",
            l.p50_us, l.p99_us, l.max_us
        );
    }
    let _ = writeln!(
        out,
        "  extra copies   {} delivered to the throwaway endpoint; session back to {} subscriptions (scenario: {})",
        r.extra_copies, r.subscriptions_after, r.subscriptions_expected
    );
    let known = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    let _ = writeln!(
        out,
        "  workers        {} subscriptions in their tables at exit; {} commands rejected",
        known(r.worker_subscriptions_after),
        known(r.commands_failed)
    );
    let _ = writeln!(out, "\ndata plane (the scenario's {} original subscriptions)", r.subscriptions_expected);
    let _ = writeln!(out, "  {:<26} {:>16} {:>16}", "", "quiet", "during churn");
    let row = |out: &mut String, name: &str, f: &dyn Fn(&Forwarding) -> String| {
        let _ = writeln!(out, "  {name:<26} {:>16} {:>16}", f(&r.quiet), f(&r.churn));
    };
    row(&mut out, "step, s", &|f| format!("{:.1}", f.step.duration_s));
    row(&mut out, "copies expected", &|f| f.step.expected_out.to_string());
    row(&mut out, "delivered out pps", &|f| format!("{:.0}", f.step.delivered_out_pps));
    row(&mut out, "lost", &|f| f.step.lost.to_string());
    row(&mut out, "late (> 50 ms)", &|f| f.step.late.to_string());
    row(&mut out, "reordered", &|f| f.step.reordered.to_string());
    row(&mut out, "duplicates", &|f| f.step.duplicates.to_string());
    row(&mut out, "bad payload / rewrite", &|f| format!("{} / {}", f.step.integrity_failures, f.step.rewrite_errors));
    row(&mut out, "latency p50 / p99, us", &|f| {
        format!("{:.0} / {:.0}", f.step.latency_p50_ns as f64 / 1e3, f.step.latency_p99_ns as f64 / 1e3)
    });
    row(&mut out, "worker cpu, % of a core", &|f| format!("{:.1}", share(f.cpu.worker_ns, f.step.duration_s)));
    row(&mut out, "control cpu, % of a core", &|f| format!("{:.1}", share(f.cpu.other_ns, f.step.duration_s)));
    row(&mut out, "generator short", &|f| f.step.generator_short.to_string());
    let s = &r.churn.step;
    let clean = s.lost == 0 && s.late == 0 && s.duplicates == 0 && s.integrity_failures == 0 && s.rewrite_errors == 0;
    let _ = writeln!(
        out,
        "\n{}: {:.0} subscribe/unsubscribe operations/s (median 1 s window) with {} errors, while forwarding {:.0} \
         copies/s; the original subscriptions lost {} of {} copies during the churn.",
        if clean && r.errors == 0 { "ok" } else { "NOT CLEAN" },
        r.ops_per_s_median,
        r.errors,
        s.delivered_out_pps,
        s.lost,
        s.expected_out
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::LatencyUs;
    use super::*;
    use crate::cpu::ThreadSplit;
    use crate::step::StepOutcome;

    fn forwarding(lost: u64) -> Forwarding {
        let step = StepOutcome { duration_s: 2.0, expected_out: 200_000, lost, ..Default::default() };
        Forwarding { step, cpu: ThreadSplit { worker_ns: 1_000_000_000, other_ns: 100_000_000 } }
    }

    fn result(lost: u64, errors: u64) -> ChurnResult {
        ChurnResult {
            scenario: "conference".into(),
            description: "11 participants".into(),
            out_pps: 100_000.0,
            duration_s: 2.0,
            concurrency: 4,
            worker_core: 1,
            bench_core: 0,
            creates: 3000,
            deletes: 3000,
            operations: 6000,
            errors,
            errors_by_code: if errors > 0 {
                [("DeadlineExceeded".to_string(), errors)].into()
            } else {
                Default::default()
            },
            ops_per_window: vec![2900, 3100],
            ops_per_s_median: 3000.0,
            ops_per_s_total: 2990.0,
            create_latency: LatencyUs { p50_us: 500.0, p99_us: 1500.0, max_us: 4000.0 },
            delete_latency: LatencyUs::default(),
            capped: false,
            extra_copies: 77,
            subscriptions_after: 220,
            subscriptions_expected: 220,
            worker_subscriptions_after: Some(220),
            commands_failed: None,
            quiet: forwarding(0),
            churn: forwarding(lost),
        }
    }

    #[test]
    fn the_table_shows_rates_latency_cpu_and_a_verdict() {
        let text = render(&result(0, 0));
        assert!(text.contains("3000 median of 1 s windows, 2990 overall; windows: 2900 3100"), "{text}");
        assert!(text.contains("500 us p50"), "{text}");
        assert!(text.contains("errors: none"), "{text}");
        assert!(text.contains("220 subscriptions in their tables at exit; ? commands rejected"), "{text}");
        // 1 s of worker CPU over a 2 s step.
        assert!(text.contains("50.0"), "{text}");
        assert!(text.starts_with("ringfwd-bench churn: conference"), "{text}");
        assert!(text.contains("\nok: 3000 subscribe/unsubscribe"), "{text}");
        let lossy = render(&result(5, 0));
        assert!(lossy.contains("NOT CLEAN") && lossy.contains("lost 5 of 200000"), "{lossy}");
        let failing = render(&result(0, 2));
        assert!(failing.contains("NOT CLEAN") && failing.contains("DeadlineExceeded 2"), "{failing}");
    }
}
