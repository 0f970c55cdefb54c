//! The offered rate of a soak: a packet rate, or a share of a capacity.
//!
//! Owns [`RateSpec`] (what `--rate` says: `PPS`, `P%:PPS` or `P%:REPORT.json`), its parser with errors
//! that quote the value, and [`resolve`]: the rate in packets/s the publishers send, and the scenario it
//! is sent on. A share of a number is that share of it. A share of a `capacity --json` report is that
//! share of the capacity it measured for the soak's scenario: the scenario at the largest size that
//! passed, at that share of its own rate (which is what the capacity step offered). Must never measure
//! anything or read any file but the report it is given.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::scenario::Scenario;

/// Highest rate a soak may offer, packets/s in.
pub const MAX_IN_PPS: f64 = 10_000_000.0;

/// What `--rate` says.
#[derive(Debug, Clone, PartialEq)]
pub enum RateSpec {
    /// Packets per second the publishers send, all streams together.
    InPps(f64),
    /// `percent` % of a capacity.
    Share {
        /// 0 < percent <= 100.
        percent: f64,
        /// Of what.
        of: Capacity,
    },
}

/// The capacity a share is taken of.
#[derive(Debug, Clone, PartialEq)]
pub enum Capacity {
    /// A rate the user measured, packets/s in.
    InPps(f64),
    /// A report written by `ringfwd-bench capacity --json`.
    Report(PathBuf),
}

/// Why a rate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    /// The text of `--rate` is not a rate.
    #[error(
        "{value:?}: {reason} (expected PPS, P%:PPS or P%:CAPACITY.json, e.g. 5000, 70%:12000 or 70%:capacity.json)"
    )]
    Syntax {
        /// What was given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The capacity report cannot be read or does not fit the soak.
    #[error("capacity report {path}: {reason}")]
    Report {
        /// The report.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn syntax(value: &str, reason: impl Into<String>) -> RateError {
    RateError::Syntax { value: value.to_string(), reason: reason.into() }
}

fn positive(value: &str, text: &str, what: &str, max: f64) -> Result<f64, RateError> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n <= max => Ok(n),
        Ok(n) => Err(syntax(value, format!("{what} must be > 0 and <= {max}, got {n}"))),
        Err(_) => Err(syntax(value, format!("{what} {text:?} is not a number"))),
    }
}

impl FromStr for RateSpec {
    type Err = RateError;

    fn from_str(value: &str) -> Result<RateSpec, RateError> {
        let Some((share, of)) = value.split_once('%') else {
            return Ok(RateSpec::InPps(positive(value, value, "the rate (packets/s in)", MAX_IN_PPS)?));
        };
        let percent = positive(value, share, "the share (%)", 100.0)?;
        let Some(of) = of.strip_prefix(':').filter(|of| !of.is_empty()) else {
            return Err(syntax(value, "a share needs the capacity it is a share of after a colon"));
        };
        let of = match of.trim().parse::<f64>() {
            Ok(_) => Capacity::InPps(positive(value, of, "the capacity (packets/s in)", MAX_IN_PPS)?),
            Err(_) => Capacity::Report(PathBuf::from(of)),
        };
        Ok(RateSpec::Share { percent, of })
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateSpec::InPps(pps) => write!(f, "{pps}"),
            RateSpec::Share { percent, of: Capacity::InPps(pps) } => write!(f, "{percent}%:{pps}"),
            RateSpec::Share { percent, of: Capacity::Report(path) } => write!(f, "{percent}%:{}", path.display()),
        }
    }
}

/// A rate ready to offer.
#[derive(Debug, Clone)]
pub struct ResolvedRate {
    /// Packets per second the publishers send.
    pub in_pps: f64,
    /// The scenario it is sent on (resized when a capacity report says so).
    pub scenario: Scenario,
    /// How it was arrived at, for the report.
    pub how: String,
}

/// The parts of a `capacity --json` report a soak reads (the rest is ignored).
#[derive(Debug, serde::Deserialize)]
struct CapacityReportFile {
    capacity: Vec<CapacityEntry>,
}

#[derive(Debug, serde::Deserialize)]
struct CapacityEntry {
    scenario: String,
    search: CapacitySearch,
    best: Option<CapacityBest>,
}

#[derive(Debug, serde::Deserialize)]
struct CapacitySearch {
    limit: String,
}

#[derive(Debug, serde::Deserialize)]
struct CapacityBest {
    size: usize,
}

/// Resolves `spec` for `scenario` (the one the user chose, if any; else `default`, or with a capacity
/// report the report's only template, loaded with `load`).
pub fn resolve(
    spec: &RateSpec,
    scenario: Option<Scenario>,
    default: impl FnOnce() -> Result<Scenario, String>,
    load: impl FnOnce(&str) -> Result<Scenario, String>,
) -> Result<ResolvedRate, RateError> {
    let (percent, of) = match spec {
        RateSpec::InPps(in_pps) => {
            let scenario = scenario.map_or_else(default, Ok).map_err(|e| syntax(&spec.to_string(), e))?;
            return Ok(ResolvedRate { in_pps: *in_pps, scenario, how: format!("{in_pps:.0} packets/s in, as given") });
        }
        RateSpec::Share { percent, of } => (*percent, of),
    };
    match of {
        Capacity::InPps(capacity) => {
            let scenario = scenario.map_or_else(default, Ok).map_err(|e| syntax(&spec.to_string(), e))?;
            let in_pps = capacity * percent / 100.0;
            Ok(ResolvedRate {
                in_pps,
                scenario,
                how: format!("{percent}% of a capacity of {capacity:.0} packets/s in"),
            })
        }
        Capacity::Report(path) => from_report(path, percent, scenario, load),
    }
}

fn from_report(
    path: &Path,
    percent: f64,
    scenario: Option<Scenario>,
    load: impl FnOnce(&str) -> Result<Scenario, String>,
) -> Result<ResolvedRate, RateError> {
    let err = |reason: String| RateError::Report { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let report: CapacityReportFile =
        serde_json::from_str(&text).map_err(|e| err(format!("not a `capacity --json` report: {e}")))?;
    let names: Vec<&str> = report.capacity.iter().map(|c| c.scenario.as_str()).collect();
    let entry = match &scenario {
        Some(s) => report.capacity.iter().find(|c| c.scenario == s.name).ok_or_else(|| {
            err(format!("has no capacity of scenario {:?} (it has {names:?}); choose one of those", s.name))
        })?,
        None => match report.capacity.as_slice() {
            [one] => one,
            _ => return Err(err(format!("has {names:?}; choose one with --scenario"))),
        },
    };
    let best = entry
        .best
        .as_ref()
        .ok_or_else(|| err(format!("no size of {} passed: there is no capacity to take a share of", entry.scenario)))?;
    let template = match scenario {
        Some(s) => s,
        None => load(&entry.scenario).map_err(|e| err(format!("{e} (give its file with --scenario-file)")))?,
    };
    let scenario = template.with_size(best.size).map_err(|e| err(e.to_string()))?;
    let capacity = scenario.base_in_pps();
    let at_least = if entry.search.limit == "loss" || entry.search.limit == "latency" { "" } else { "at least " };
    let how = format!(
        "{percent}% of the capacity in {}: {} at size {} ({at_least}{capacity:.0} packets/s in; next size failed on {})",
        path.display(),
        entry.scenario,
        best.size,
        entry.search.limit
    );
    Ok(ResolvedRate { in_pps: capacity * percent / 100.0, scenario, how })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_shares_and_reports_are_parsed() {
        assert_eq!("5000".parse::<RateSpec>().unwrap(), RateSpec::InPps(5000.0));
        assert_eq!(
            "70%:12000".parse::<RateSpec>().unwrap(),
            RateSpec::Share { percent: 70.0, of: Capacity::InPps(12000.0) }
        );
        assert_eq!(
            "70%:out/capacity.json".parse::<RateSpec>().unwrap(),
            RateSpec::Share { percent: 70.0, of: Capacity::Report("out/capacity.json".into()) }
        );
        for (bad, says) in [
            ("fast", "\"fast\" is not a number"),
            ("0", "must be > 0"),
            ("70%", "after a colon"),
            ("70%:", "after a colon"),
            ("170%:1000", "the share (%) must be > 0 and <= 100"),
            ("x%:1000", "\"x\" is not a number"),
            ("70%:-5", "the capacity (packets/s in) must be > 0"),
        ] {
            let e = bad.parse::<RateSpec>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")) && e.contains(says), "{bad}: {e}");
        }
    }

    fn conference() -> Result<Scenario, String> {
        Scenario::builtin("churn").map_err(|e| e.to_string())
    }

    fn builtin(name: &str) -> Result<Scenario, String> {
        Scenario::builtin(name).map_err(|e| e.to_string())
    }

    #[test]
    fn a_share_of_a_number_scales_it() {
        let r = resolve(&"70%:10000".parse().unwrap(), None, conference, builtin).unwrap();
        assert_eq!((r.in_pps, r.scenario.name.as_str()), (7000.0, "churn"));
        let r = resolve(&"2500".parse().unwrap(), Some(builtin("flat").unwrap()), conference, builtin).unwrap();
        assert_eq!((r.in_pps, r.scenario.name.as_str()), (2500.0, "flat"));
    }

    #[test]
    fn a_share_of_a_capacity_report_takes_its_largest_passing_size() {
        let dir = std::env::temp_dir().join(format!("ringfwd-bench-rate-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("capacity.json");
        let entry = |name: &str, size: Option<usize>| {
            serde_json::json!({"scenario": name, "search": {"best": size.unwrap_or(0), "limit": "loss", "tried": []},
                               "best": size.map(|s| serde_json::json!({"size": s, "subscribers": 1})), "steps": []})
        };
        let write = |entries: Vec<serde_json::Value>| {
            std::fs::write(&path, serde_json::json!({"machine": {}, "capacity": entries}).to_string()).unwrap()
        };
        let spec: RateSpec = format!("70%:{}", path.display()).parse().unwrap();
        write(vec![entry("capacity-audio", Some(20))]);
        let r = resolve(&spec, None, conference, builtin).unwrap();
        // 20 rooms of 5 audio participants at 50 packets/s.
        assert_eq!((r.scenario.name.as_str(), r.scenario.streams.len()), ("capacity-audio", 100));
        assert!((r.in_pps - 0.7 * 5000.0).abs() < 1e-6, "{}", r.in_pps);
        assert!(r.how.contains("size 20") && r.how.contains("5000 packets/s in"), "{}", r.how);
        write(vec![entry("capacity-audio", Some(20)), entry("capacity-video", Some(3))]);
        let e = resolve(&spec, None, conference, builtin).unwrap_err().to_string();
        assert!(e.contains("choose one with --scenario"), "{e}");
        let video = builtin("capacity-video").unwrap();
        let r = resolve(&spec, Some(video), conference, builtin).unwrap();
        assert_eq!(r.scenario.name, "capacity-video");
        let e = resolve(&spec, Some(builtin("flat").unwrap()), conference, builtin).unwrap_err().to_string();
        assert!(e.contains("no capacity of scenario \"flat\""), "{e}");
        write(vec![entry("capacity-audio", None)]);
        let e = resolve(&spec, None, conference, builtin).unwrap_err().to_string();
        assert!(e.contains("no size of capacity-audio passed"), "{e}");
        std::fs::write(&path, "[]").unwrap();
        let e = resolve(&spec, None, conference, builtin).unwrap_err().to_string();
        assert!(e.contains("not a `capacity --json` report"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
