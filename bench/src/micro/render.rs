//! The microbenchmark's table, as text and as Markdown.
//!
//! Owns how a [`MicroReport`] is shown: one line per row (name, unit, raw and net medians, the raw
//! spread over repetitions, the sanity counts), then the whole-forwarder comparison. Must never
//! measure anything or change a figure.

use std::fmt::Write as _;

use super::{MicroReport, Row};
use crate::report::median;

/// `min-max` of `values`, or `-` for none.
fn spread(values: &[f64]) -> String {
    let finite = || values.iter().copied().filter(|v| v.is_finite());
    match (finite().reduce(f64::min), finite().reduce(f64::max)) {
        (Some(lo), Some(hi)) => format!("{lo:.1}-{hi:.1}"),
        _ => "-".to_string(),
    }
}

/// The cells of one row: name, unit, raw median, net median, raw spread, sanity counts.
fn cells(row: &Row) -> [String; 6] {
    let net = if row.net_ns.is_empty() { "-".to_string() } else { format!("{:.1}", median(&row.net_ns)) };
    let sanity = row.sanity.iter().map(|s| format!("{} {}", s.what, s.count)).collect::<Vec<_>>().join(", ");
    [row.name.clone(), row.per.clone(), format!("{:.1}", median(&row.raw_ns)), net, spread(&row.raw_ns), sanity]
}

fn header(r: &MicroReport) -> String {
    let pinned = match r.pinned_core {
        Some(core) => format!("pinned to core {core}"),
        None => "not pinned".to_string(),
    };
    format!(
        "machine: {}; {pinned}\nworkload: {}\n{} units x {} repetitions (interleaved); raw and net are medians over \
         repetitions, net = raw - median of the baseline row, spread = raw min-max\n",
        r.machine.one_line(),
        r.workload,
        r.packets,
        r.reps
    )
}

fn forwarder_line(r: &MicroReport) -> String {
    let f = &r.forwarder;
    format!(
        "forwarder, fan-out {}: {:.0} ns per received packet with the default chains, {:.0} without interceptors \
         (x{:.2}); per copy {:.1} and {:.1} ns\n",
        f.fan_out, f.default_ns, f.empty_ns, f.ratio, f.default_per_copy_ns, f.empty_per_copy_ns
    )
}

/// The report as a text table.
pub fn render(r: &MicroReport) -> String {
    let mut out = header(r);
    let _ = writeln!(out, "{:<26} {:<13} {:>9} {:>9} {:>17}  sanity", "name", "per", "raw ns", "net ns", "spread");
    for row in &r.rows {
        let [name, per, raw, net, spread, sanity] = cells(row);
        let _ = writeln!(out, "{name:<26} {per:<13} {raw:>9} {net:>9} {spread:>17}  {sanity}");
    }
    out.push_str(&forwarder_line(r));
    out
}

/// The report as Markdown.
pub fn markdown(r: &MicroReport) -> String {
    let mut out = String::from("## Interceptor cost per packet (`ringfwd-bench micro`)\n\n");
    for line in header(r).lines() {
        let _ = writeln!(out, "{line}  ");
    }
    out.push_str("\n| name | per | raw ns | net ns | spread (raw) | sanity |\n|---|---|--:|--:|--:|---|\n");
    for row in &r.rows {
        let _ = writeln!(out, "| {} |", cells(row).join(" | "));
    }
    out.push('\n');
    out.push_str(&forwarder_line(r));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::micro::Sanity;

    fn sanity(what: &str, count: u64) -> Sanity {
        Sanity { what: what.into(), count, required: true }
    }

    #[test]
    fn spread_and_net_are_shown() {
        assert_eq!(spread(&[3.0, 1.24, 2.0]), "1.2-3.0");
        assert_eq!(spread(&[]), "-");
        let row = Row {
            name: "x".into(),
            per: "rtp".into(),
            raw_ns: vec![5.0],
            baseline: None,
            net_ns: vec![],
            sanity: vec![],
        };
        assert_eq!(cells(&row)[3], "-");
        let with_net = Row { net_ns: vec![1.0, 3.0, 2.0], sanity: vec![sanity("n", 4)], ..row };
        assert_eq!(cells(&with_net), ["x", "rtp", "5.0", "2.0", "5.0-5.0", "n 4"].map(String::from));
    }
}
