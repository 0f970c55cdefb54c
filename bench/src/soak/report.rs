//! The soak's tables: a text row per interval as it comes, the summary and verdict, the Markdown
//! document and the CSV time series.
//!
//! Owns [`header`] and [`row`] (the live table), [`render_end`] (churn totals, criteria and verdict),
//! [`markdown`] and [`csv_header`] / [`csv_row`]. Must never measure anything or change a result.

use std::fmt::Write as _;

use super::verdict::SoakSample;
use super::SoakResult;

const MIB: f64 = 1024.0;

/// The columns of the time series: name, unit and width in the text table.
const COLUMNS: [(&str, &str, usize); 17] = [
    ("t", "s", 7),
    ("rss", "MiB", 8),
    ("anon", "MiB", 8),
    ("fds", "", 4),
    ("thr", "", 4),
    ("worker", "cpu%", 6),
    ("ctl", "cpu%", 6),
    ("in", "pps", 8),
    ("out", "pps", 9),
    ("lost", "", 5),
    ("late", "", 5),
    ("err", "", 5),
    ("p50", "us", 7),
    ("p99", "us", 7),
    ("churn", "ops/s", 7),
    ("churn", "err", 5),
    ("load", "1m", 5),
];

/// One sample's cells, in [`COLUMNS`] order; a warm-up sample's time is marked `w`.
fn cells(s: &SoakSample) -> [String; 17] {
    [
        format!("{:.0}{}", s.t_s, if s.warmup { "w" } else { " " }),
        format!("{:.1}", s.rss_kib as f64 / MIB),
        format!("{:.1}", s.anon_kib as f64 / MIB),
        s.fds.to_string(),
        s.threads.to_string(),
        format!("{:.1}", s.worker_cpu_percent),
        format!("{:.1}", s.control_cpu_percent),
        format!("{:.0}", s.in_pps),
        format!("{:.0}", s.out_pps),
        s.lost.to_string(),
        s.late.to_string(),
        s.errors.to_string(),
        format!("{:.0}", s.p50_us),
        format!("{:.0}", s.p99_us),
        format!("{:.1}", s.churn_ops_per_s),
        s.churn_errors.to_string(),
        format!("{:.1}", s.load_1m),
    ]
}

fn text_line<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    cells.into_iter().zip(COLUMNS).map(|(cell, (_, _, w))| format!("{cell:>w$}")).collect::<Vec<_>>().join(" ")
}

/// The live table's column names (two lines: names, units).
pub fn header() -> String {
    format!("{}\n{}", text_line(COLUMNS.map(|c| c.0)), text_line(COLUMNS.map(|c| c.1)))
}

/// One interval's line of the live table; warm-up samples are marked `w`.
pub fn row(s: &SoakSample) -> String {
    text_line(cells(s).iter().map(String::as_str))
}

/// What the soak was: scenario, rate, churn, cores, machine.
pub fn preamble(r: &SoakResult) -> String {
    format!(
        "ringfwd-bench soak: {} — {}\n{} untouched subscriptions; {:.0} packets/s in, {:.0} copies/s out ({}); churn \
         {:.0} API operations/s by {} client(s); {:.0} s in intervals of {:.1} s\nringfwd worker on core {}; \
         generator, sink, churn clients and ringfwd's control plane on core {}\nmachine: {}\n",
        r.scenario,
        r.description,
        r.untouched_subscriptions,
        r.in_pps,
        r.out_pps,
        r.rate_how,
        r.churn_asked_ops_per_s,
        r.concurrency,
        r.duration_s,
        r.interval_s,
        r.worker_core,
        r.bench_core,
        r.machine.one_line()
    )
}

/// The churn totals, the criteria with what was measured, and the verdict line.
pub fn render_end(r: &SoakResult) -> String {
    let mut out = String::new();
    if let Some(c) = &r.churn {
        let errors = if c.errors_by_code.is_empty() {
            "none".to_string()
        } else {
            c.errors_by_code.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            out,
            "churn: {} operations ({} creates + {} deletes), {:.1}/s, errors: {errors}{}; create p50/p99 {:.0}/{:.0} us, \
             delete p50/p99 {:.0}/{:.0} us; {} copies reached the churned subscriptions",
            c.operations,
            c.creates,
            c.deletes,
            c.ops_per_s,
            if c.capped { " (operation cap reached)" } else { "" },
            c.create_latency.p50_us,
            c.create_latency.p99_us,
            c.delete_latency.p50_us,
            c.delete_latency.p99_us,
            c.extra_copies
        );
    }
    for c in &r.verdict.checks {
        let _ = writeln!(
            out,
            "{} {:<17} {} — measured: {}",
            if c.pass { "pass" } else { "FAIL" },
            c.name,
            c.criterion,
            c.measured
        );
    }
    let _ = writeln!(out, "verdict: {}", if r.verdict.pass { "PASS" } else { "FAIL" });
    out
}

/// The whole report as Markdown: what ran, the time series and the verdict.
pub fn markdown(r: &SoakResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "```\n{}```\n", preamble(r));
    let names =
        COLUMNS.map(|(name, unit, _)| if unit.is_empty() { name.to_string() } else { format!("{name} {unit}") });
    let _ = writeln!(out, "| {} |", names.join(" | "));
    let _ = writeln!(out, "|{}", "---:|".repeat(COLUMNS.len()));
    for s in &r.samples {
        let mut cells = cells(s);
        if s.warmup {
            cells[0] = format!("{:.0} (warm-up)", s.t_s);
        }
        let _ = writeln!(out, "| {} |", cells.map(|c| c.trim().to_string()).join(" | "));
    }
    out.push_str("\n| check | criterion | measured | |\n|---|---|---|---|\n");
    for c in &r.verdict.checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.name,
            c.criterion,
            c.measured,
            if c.pass { "pass" } else { "**FAIL**" }
        );
    }
    let _ = writeln!(out, "\n```\n{}```", render_end(r));
    out
}

/// The CSV time series' header line.
pub fn csv_header() -> &'static str {
    "t_s,warmup,rss_kib,anon_kib,fds,threads,worker_cpu_percent,control_cpu_percent,in_pps,out_pps,expected,lost,late,\
     errors,p50_us,p99_us,generator_short,generator_lag_p99_us,sink_lag_p99_us,churn_ops,churn_ops_per_s,churn_errors,\
     load_1m"
}

/// One sample as a CSV line (numbers and booleans only: nothing to quote).
pub fn csv_row(s: &SoakSample) -> String {
    format!(
        "{:.3},{},{},{},{},{},{:.2},{:.2},{:.1},{:.1},{},{},{},{},{:.1},{:.1},{},{:.1},{:.1},{},{:.2},{},{:.2}",
        s.t_s,
        s.warmup,
        s.rss_kib,
        s.anon_kib,
        s.fds,
        s.threads,
        s.worker_cpu_percent,
        s.control_cpu_percent,
        s.in_pps,
        s.out_pps,
        s.expected,
        s.lost,
        s.late,
        s.errors,
        s.p50_us,
        s.p99_us,
        s.generator_short,
        s.generator_lag_p99_us,
        s.sink_lag_p99_us,
        s.churn_ops,
        s.churn_ops_per_s,
        s.churn_errors,
        s.load_1m
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_csv_lines_line_up_with_their_headers() {
        let s = SoakSample {
            t_s: 30.0,
            warmup: true,
            rss_kib: 81_920,
            anon_kib: 40_960,
            fds: 31,
            threads: 9,
            p99_us: 812.4,
            churn_ops_per_s: 49.5,
            ..Default::default()
        };
        let line = row(&s);
        assert!(line.starts_with("    30w     80.0     40.0   31    9"), "{line}");
        assert_eq!(cells(&s).len(), COLUMNS.len());
        assert!(line.contains("    812") && line.contains("49.5"), "{line}");
        let width = |text: &str| text.lines().map(str::len).max().unwrap_or(0);
        assert_eq!(width(&header()), line.len(), "{}\n{line}", header());
        let columns = csv_header().split(',').count();
        assert_eq!(csv_row(&s).split(',').count(), columns);
        assert!(csv_row(&s).starts_with("30.000,true,81920,40960,31,9,"), "{}", csv_row(&s));
    }
}
