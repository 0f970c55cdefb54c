//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines, then the samples of
//! one family together, label values escaped.
//!
//! Owns the format and nothing else: what is exported is decided by [`super::render`]. Written here rather
//! than with `prometheus-client`, which writes OpenMetrics 1.0 only (counter families named without their
//! `_total`, a `# EOF` line): Prometheus reads both, but the 0.0.4 text is what plain text-format parsers
//! and `curl` users expect. Must never emit a name that breaks the naming rules (checked by
//! [`valid_name`] in debug builds and in the tests).

use std::fmt::Write as _;

/// The `Content-Type` of a 0.0.4 exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic total; its name ends in `_total`.
    Counter,
    /// A level that goes up and down.
    Gauge,
    /// Cumulative buckets (`_bucket{le=..}`), `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value: counts stay integers, everything else is a float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// An integer count.
    Int(u64),
    /// A float (seconds, ratios).
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

/// Whether `name` is a valid metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names without `:`).
pub fn valid_name(name: &str, label: bool) -> bool {
    let ok = |c: char, first: bool| {
        c == '_' || c.is_ascii_alphabetic() || (!first && c.is_ascii_digit()) || (!label && c == ':')
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

/// An exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts the family `name`: its help and type. Its samples must follow before the next family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name, false), "metric name {name:?}");
        debug_assert_eq!(kind == Kind::Counter, name.ends_with("_total"), "counter names end in _total: {name}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        self.value(value.into());
        self.out.push('\n');
    }

    /// The samples of one histogram of the current family `name`: `cumulative[i]` observations at most
    /// `bounds[i]`, `count` in all (the `+Inf` bucket) and their `sum`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        cumulative: &[u64],
        count: u64,
        sum: f64,
    ) {
        for (bound, n) in bounds.iter().zip(cumulative) {
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&bound.to_string()));
            let _ = writeln!(self.out, " {n}");
        }
        let _ = write!(self.out, "{name}_bucket");
        self.labels(labels, Some("+Inf"));
        let _ = writeln!(self.out, " {count}");
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        self.out.push(' ');
        self.value(Value::Float(sum));
        let _ = write!(self.out, "\n{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {count}");
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        for (i, (key, value)) in labels.iter().chain(le.as_ref().map(|le| ("le", *le)).iter()).enumerate() {
            debug_assert!(valid_name(key, true), "label name {key:?}");
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{key}=\"{}\"", escape(value, true));
        }
        self.out.push('}');
    }

    fn value(&mut self, value: Value) {
        let _ = match value {
            Value::Int(v) => write!(self.out, "{v}"),
            Value::Float(v) if v.is_nan() => write!(self.out, "NaN"),
            Value::Float(v) if v.is_infinite() => write!(self.out, "{}Inf", if v > 0.0 { "+" } else { "-" }),
            Value::Float(v) => write!(self.out, "{v}"),
        };
    }
}

/// Escapes a label value (`\`, `"`, newline) or a help text (`\`, newline).
fn escape(text: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\\', '\n', '"']) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_help_type_and_escaped_labels() {
        let mut e = Exposition::new();
        e.family("ringfwd_x_total", Kind::Counter, "Back\\slash and\nnewline \"kept\".");
        e.sample("ringfwd_x_total", &[("worker", "0"), ("reason", "a\"b\\c\nd")], 7u64);
        e.sample("ringfwd_x_total", &[], 0.5);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP ringfwd_x_total Back\\\\slash and\\nnewline \"kept\".\n\
             # TYPE ringfwd_x_total counter\n\
             ringfwd_x_total{worker=\"0\",reason=\"a\\\"b\\\\c\\nd\"} 7\n\
             ringfwd_x_total 0.5\n"
        );
    }

    #[test]
    fn histogram_has_buckets_inf_sum_and_count() {
        let mut e = Exposition::new();
        e.family("lat_seconds", Kind::Histogram, "h");
        e.histogram("lat_seconds", &[("worker", "1")], &[0.000005, 0.5], &[1, 3], 4, 1.25);
        let text = e.finish();
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "lat_seconds_bucket{worker=\"1\",le=\"0.000005\"} 1",
                "lat_seconds_bucket{worker=\"1\",le=\"0.5\"} 3",
                "lat_seconds_bucket{worker=\"1\",le=\"+Inf\"} 4",
                "lat_seconds_sum{worker=\"1\"} 1.25",
                "lat_seconds_count{worker=\"1\"} 4",
            ]
        );
    }

    #[test]
    fn special_floats_are_spelled_as_prometheus_does() {
        let mut e = Exposition::new();
        e.sample("g", &[], f64::INFINITY);
        e.sample("g", &[], f64::NEG_INFINITY);
        e.sample("g", &[], f64::NAN);
        assert_eq!(e.finish(), "g +Inf\ng -Inf\ng NaN\n");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("ringfwd_rx_packets_total", false));
        assert!(valid_name("a:b", false));
        assert!(!valid_name("a:b", true));
        assert!(!valid_name("1abc", false));
        assert!(!valid_name("", false));
        assert!(!valid_name("a-b", false));
    }
}
