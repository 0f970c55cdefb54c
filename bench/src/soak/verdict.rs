//! The soak's pass/fail rule: explicit criteria over the time series and the state at the end.
//!
//! Owns [`Criteria`] (the bounds, with their defaults), [`SoakSample`] (one interval's row) and
//! [`judge`]: memory and descriptors flat after the warm-up (growth fitted by least squares over the
//! samples after the first [`Criteria::warmup_share`], so one noisy sample decides nothing), no copy
//! of an untouched subscription lost, duplicated or damaged, none late (or at most a stated number), p99 of every interval within the
//! bound, the rate offered, the churn done at the rate asked without errors, the daemon alive to the
//! end and back to exactly the scenario's objects. Sans-IO: every figure is an argument. Must never
//! measure anything or pass a run that has too few samples to judge.

/// Bounds a soak must stay within.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Criteria {
    /// Share of the samples (the first ones) that is warm-up, left out of the growth fits.
    pub warmup_share: f64,
    /// Largest resident-memory growth over the samples after warm-up (least-squares fit), KiB.
    pub max_rss_growth_kib: f64,
    /// Largest growth of open descriptors over the samples after warm-up (least-squares fit).
    pub max_fd_growth: f64,
    /// Largest p99 one-way latency of any interval, µs.
    pub p99_bound_us: f64,
    /// Most copies of the untouched subscriptions that may arrive late (> 50 ms) over the whole run.
    pub max_late: u64,
    /// Share of the churn rate asked for that must have been reached.
    pub min_churn_share: f64,
}

/// Warm-up share by default: the first 10 % of the samples.
pub const DEFAULT_WARMUP_SHARE: f64 = 0.1;
/// Resident-memory growth allowed after warm-up by default, MiB.
pub const DEFAULT_MAX_RSS_GROWTH_MIB: f64 = 4.0;
/// Descriptor growth allowed after warm-up by default.
pub const DEFAULT_MAX_FD_GROWTH: f64 = 2.0;
/// Share of the asked churn rate that must be reached by default.
pub const DEFAULT_MIN_CHURN_SHARE: f64 = 0.9;
/// Fewest samples after warm-up that a growth can be judged from.
pub const MIN_JUDGED_SAMPLES: usize = 2;

/// One interval of a soak.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SoakSample {
    /// Seconds since the soak started, when the sample was taken (after the interval's drain).
    pub t_s: f64,
    /// Whether it is in the warm-up (left out of the growth fits).
    pub warmup: bool,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Resident anonymous memory, KiB.
    pub anon_kib: u64,
    /// Open descriptors.
    pub fds: u64,
    /// Threads.
    pub threads: u64,
    /// Worker threads' CPU over the interval, % of one core.
    pub worker_cpu_percent: f64,
    /// Other threads' CPU (control plane), % of one core.
    pub control_cpu_percent: f64,
    /// Packets/s the publishers sent.
    pub in_pps: f64,
    /// Copies/s the untouched subscriptions received.
    pub out_pps: f64,
    /// Copies the untouched subscriptions should have received.
    pub expected: u64,
    /// Copies that never arrived (loss injected on the way in not counted).
    pub lost: u64,
    /// Copies that arrived more than 50 ms after sending.
    pub late: u64,
    /// Duplicates, damaged payloads, wrong rewrites and datagrams of no untouched subscription.
    pub errors: u64,
    /// One-way latency p50 over the interval, µs.
    pub p50_us: f64,
    /// p99, µs.
    pub p99_us: f64,
    /// The generator fell short of its plan.
    pub generator_short: bool,
    /// The machine's 1-minute load average when the sample was taken (what else ran besides the soak).
    pub load_1m: f64,
    /// 99th percentile of how late the generator sent against its schedule, µs (the bench's health).
    pub generator_lag_p99_us: f64,
    /// 99th percentile of how long copies waited in the sink socket before the bench read them, µs.
    pub sink_lag_p99_us: f64,
    /// Churn operations that succeeded in the interval.
    pub churn_ops: u64,
    /// Churn operations per second over the interval.
    pub churn_ops_per_s: f64,
    /// Churn operations that failed in the interval.
    pub churn_errors: u64,
}

/// How the run ended, beyond the time series.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct EndState {
    /// Why the run stopped before its duration, if it did (the daemon died, a step failed).
    pub aborted: Option<String>,
    /// Churn operations/s asked for (0: none).
    pub churn_asked_ops_per_s: f64,
    /// Churn operations/s reached over the whole run.
    pub churn_ops_per_s: f64,
    /// Failed churn operations over the whole run.
    pub churn_errors: u64,
    /// The churn itself failed (its connection, or its clean-up at the end).
    pub churn_failure: Option<String>,
    /// (sessions, endpoints, streams, subscriptions) the registry held after the churn ended.
    pub registry_after: Option<[u32; 4]>,
    /// What the scenario alone holds.
    pub registry_expected: [u32; 4],
    /// Subscriptions in the workers' tables at exit (`total.subscriptions` of the final counters).
    pub worker_subscriptions_after: Option<u64>,
    /// Control commands the workers rejected over the whole run.
    pub commands_failed: Option<u64>,
    /// How the daemon stopped: `None` when cleanly (exit 0 after SIGTERM), else what happened.
    pub exit_problem: Option<String>,
}

/// One criterion and how the run did on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// The rule, with its bound.
    pub criterion: String,
    /// What was measured.
    pub measured: String,
    /// Whether it held.
    pub pass: bool,
}

/// Every check and the overall outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// All checks passed.
    pub pass: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

/// How many of `n` samples are warm-up: `ceil(share × n)`, at least 1 when there are more than
/// [`MIN_JUDGED_SAMPLES`].
pub fn warmup_samples(n: usize, share: f64) -> usize {
    let w = (share.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    if n > MIN_JUDGED_SAMPLES {
        w.max(1).min(n - MIN_JUDGED_SAMPLES)
    } else {
        w.min(n)
    }
}

/// Least-squares slope of `points` (x, y), per unit of x; 0 with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + (x - mx) * (y - my), b + (x - mx).powi(2)));
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

/// Growth of `value` fitted over `samples` (slope × their time span), and the plain last − first.
fn growth(samples: &[SoakSample], value: impl Fn(&SoakSample) -> u64) -> (f64, i128) {
    let points: Vec<(f64, f64)> = samples.iter().map(|s| (s.t_s, value(s) as f64)).collect();
    let span = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b.t_s - a.t_s,
        _ => 0.0,
    };
    let plain = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => i128::from(value(b)) - i128::from(value(a)),
        _ => 0,
    };
    (slope(&points) * span, plain)
}

/// Judges a soak's `samples` (warm-up flags set) and `end` against `criteria`.
pub fn judge(samples: &[SoakSample], end: &EndState, criteria: &Criteria) -> Verdict {
    let mut checks = Vec::new();
    let judged: Vec<SoakSample> = samples.iter().filter(|s| !s.warmup).cloned().collect();
    let enough = judged.len() >= MIN_JUDGED_SAMPLES;
    let span_min = match (judged.first(), judged.last()) {
        (Some(a), Some(b)) => (b.t_s - a.t_s) / 60.0,
        _ => 0.0,
    };
    let warm = samples.len() - judged.len();
    checks.push(Check {
        name: "samples",
        criterion: format!(
            "at least {MIN_JUDGED_SAMPLES} samples after the warm-up (the first {:.0}% of the samples)",
            criteria.warmup_share * 100.0
        ),
        measured: format!("{} samples, {warm} warm-up, {} judged over {span_min:.1} min", samples.len(), judged.len()),
        pass: enough,
    });
    let (rss_fit, rss_plain) = growth(&judged, |s| s.rss_kib);
    let (anon_fit, _) = growth(&judged, |s| s.anon_kib);
    let per_min = |fit: f64| if span_min > 0.0 { fit / span_min } else { 0.0 };
    checks.push(Check {
        name: "memory flat",
        criterion: format!(
            "resident memory after warm-up grows by at most {:.1} MiB (least-squares fit over the judged samples)",
            criteria.max_rss_growth_kib / 1024.0
        ),
        measured: format!(
            "RSS {:+.2} MiB fitted ({:+.1} KiB/min), {:+.2} MiB last - first; anon {:+.2} MiB fitted; RSS {:.1}..{:.1} MiB",
            rss_fit / 1024.0,
            per_min(rss_fit),
            rss_plain as f64 / 1024.0,
            anon_fit / 1024.0,
            judged.iter().map(|s| s.rss_kib).min().unwrap_or(0) as f64 / 1024.0,
            judged.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        ),
        pass: enough && rss_fit <= criteria.max_rss_growth_kib,
    });
    let (fd_fit, fd_plain) = growth(&judged, |s| s.fds);
    checks.push(Check {
        name: "descriptors flat",
        criterion: format!(
            "open descriptors after warm-up grow by at most {} (least-squares fit)",
            criteria.max_fd_growth
        ),
        measured: format!(
            "{fd_fit:+.2} fitted, {fd_plain:+} last - first; {}..{} open",
            judged.iter().map(|s| s.fds).min().unwrap_or(0),
            judged.iter().map(|s| s.fds).max().unwrap_or(0)
        ),
        pass: enough && fd_fit <= criteria.max_fd_growth,
    });
    let sum = |f: fn(&SoakSample) -> u64| samples.iter().map(f).sum::<u64>();
    let (expected, lost, late, errors) = (sum(|s| s.expected), sum(|s| s.lost), sum(|s| s.late), sum(|s| s.errors));
    checks.push(Check {
        name: "no loss",
        criterion: "no copy of an untouched subscription lost, in any interval".into(),
        measured: format!("{lost} lost of {expected} copies"),
        pass: lost == 0 && expected > 0,
    });
    checks.push(Check {
        name: "in time",
        criterion: format!(
            "at most {} copies of the untouched subscriptions late (> 50 ms after sending: as good as lost)",
            criteria.max_late
        ),
        measured: format!("{late} late, in {} intervals", samples.iter().filter(|s| s.late > 0).count()),
        pass: late <= criteria.max_late,
    });
    checks.push(Check {
        name: "no damage",
        criterion: "no duplicate, damaged payload, wrong rewrite or stray datagram on the untouched subscriptions"
            .into(),
        measured: format!("{errors}"),
        pass: errors == 0,
    });
    let worst = samples.iter().max_by(|a, b| a.p99_us.total_cmp(&b.p99_us));
    let worst_p99 = worst.map_or(0.0, |s| s.p99_us);
    checks.push(Check {
        name: "p99 bound",
        criterion: format!("p99 one-way latency of every interval <= {:.0} us", criteria.p99_bound_us),
        measured: format!(
            "worst {worst_p99:.0} us (at {:.0} s, load average {:.1}); {} of {} intervals over",
            worst.map_or(0.0, |s| s.t_s),
            worst.map_or(0.0, |s| s.load_1m),
            samples.iter().filter(|s| s.p99_us > criteria.p99_bound_us).count(),
            samples.len()
        ),
        pass: worst_p99 <= criteria.p99_bound_us,
    });
    let short = samples.iter().filter(|s| s.generator_short).count();
    checks.push(Check {
        name: "rate offered",
        criterion: "the generator sent its plan in every interval".into(),
        measured: format!("{short} intervals short"),
        pass: short == 0,
    });
    let asked = end.churn_asked_ops_per_s;
    checks.push(Check {
        name: "churn",
        criterion: if asked > 0.0 {
            format!(
                "churn reached {:.0}% of {asked:.0} operations/s with no failed operation",
                criteria.min_churn_share * 100.0
            )
        } else {
            "no churn asked for".into()
        },
        measured: format!(
            "{:.1} operations/s, {} failed{}",
            end.churn_ops_per_s,
            end.churn_errors,
            end.churn_failure.as_ref().map_or(String::new(), |e| format!("; the churn failed: {e}"))
        ),
        pass: end.churn_errors == 0
            && end.churn_failure.is_none()
            && end.churn_ops_per_s >= asked * criteria.min_churn_share,
    });
    let registry_ok = end.registry_after == Some(end.registry_expected);
    let workers_ok = end.worker_subscriptions_after == Some(u64::from(end.registry_expected[3]));
    let show = |v: Option<[u32; 4]>| v.map_or("unknown".to_string(), |v| format!("{v:?}"));
    checks.push(Check {
        name: "objects back",
        criterion: format!(
            "after the churn the registry holds exactly the scenario's (sessions, endpoints, streams, subscriptions) \
             {:?}, the workers its subscriptions, and no command failed",
            end.registry_expected
        ),
        measured: format!(
            "registry {}, workers {} subscriptions, {} commands failed",
            show(end.registry_after),
            end.worker_subscriptions_after.map_or("unknown".into(), |n| n.to_string()),
            end.commands_failed.map_or("unknown".into(), |n| n.to_string())
        ),
        pass: registry_ok && workers_ok && end.commands_failed == Some(0),
    });
    checks.push(Check {
        name: "daemon healthy",
        criterion: "ringfwd ran the whole duration and exited 0 on SIGTERM".into(),
        measured: match (&end.aborted, &end.exit_problem) {
            (None, None) => "yes".into(),
            (aborted, exit) => {
                [aborted.as_deref(), exit.as_deref()].into_iter().flatten().collect::<Vec<_>>().join("; ")
            }
        },
        pass: end.aborted.is_none() && end.exit_problem.is_none(),
    });
    Verdict { pass: checks.iter().all(|c| c.pass), checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria() -> Criteria {
        Criteria {
            warmup_share: 0.1,
            max_rss_growth_kib: 4096.0,
            max_fd_growth: 2.0,
            p99_bound_us: 5000.0,
            max_late: 0,
            min_churn_share: 0.9,
        }
    }

    /// 20 clean samples, 10 s apart, RSS from `rss(i)`.
    fn series(rss: impl Fn(usize) -> u64) -> Vec<SoakSample> {
        let n = 20;
        let warm = warmup_samples(n, 0.1);
        (0..n)
            .map(|i| SoakSample {
                t_s: 10.0 * (i + 1) as f64,
                warmup: i < warm,
                rss_kib: rss(i),
                fds: 30,
                expected: 1000,
                p99_us: 800.0,
                ..Default::default()
            })
            .collect()
    }

    fn clean_end() -> EndState {
        EndState {
            churn_asked_ops_per_s: 50.0,
            churn_ops_per_s: 49.0,
            registry_after: Some([1, 11, 22, 220]),
            registry_expected: [1, 11, 22, 220],
            worker_subscriptions_after: Some(220),
            commands_failed: Some(0),
            ..Default::default()
        }
    }

    fn failed(v: &Verdict) -> Vec<&'static str> {
        v.checks.iter().filter(|c| !c.pass).map(|c| c.name).collect()
    }

    #[test]
    fn warmup_is_the_first_tenth_and_leaves_enough_to_judge() {
        assert_eq!(warmup_samples(180, 0.1), 18);
        assert_eq!(warmup_samples(20, 0.1), 2);
        assert_eq!(warmup_samples(5, 0.1), 1);
        assert_eq!(warmup_samples(3, 0.5), 1);
        assert_eq!(warmup_samples(2, 0.1), 1);
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
        assert_eq!(slope(&[(1.0, 1.0)]), 0.0);
    }

    #[test]
    fn a_flat_clean_run_passes_even_with_a_big_warmup_and_a_noisy_sample() {
        // Warm-up grows 50 MiB; afterwards one sample spikes by 3 MiB and the rest are flat.
        let samples = series(|i| match i {
            0 => 50_000,
            1 => 100_000,
            9 => 103_000,
            _ => 101_000,
        });
        let v = judge(&samples, &clean_end(), &criteria());
        assert!(v.pass, "{v:#?}");
        assert_eq!(v.checks.len(), 11);
    }

    #[test]
    fn a_steady_leak_fails_on_memory() {
        // 512 KiB per 10 s after warm-up: about 8.5 MiB over the judged 170 s.
        let samples = series(|i| 100_000 + 512 * i as u64);
        let v = judge(&samples, &clean_end(), &criteria());
        assert_eq!(failed(&v), ["memory flat"]);
        let memory = &v.checks[1];
        assert!(memory.measured.contains("+8.50 MiB fitted"), "{memory:?}");
    }

    #[test]
    fn loss_latency_descriptors_churn_and_end_state_each_fail_their_check() {
        let mut samples = series(|_| 100_000);
        samples[5].lost = 1;
        samples[6].late = 2;
        samples[7].p99_us = 7000.0;
        samples[8].generator_short = true;
        samples[9].errors = 1;
        for (i, s) in samples.iter_mut().enumerate().skip(2) {
            s.fds = 30 + i as u64;
        }
        let end = EndState {
            churn_ops_per_s: 20.0,
            churn_errors: 3,
            registry_after: Some([2, 13, 23, 221]),
            worker_subscriptions_after: Some(221),
            exit_problem: Some("exit status 101".into()),
            ..clean_end()
        };
        let v = judge(&samples, &end, &criteria());
        assert!(!v.pass);
        assert_eq!(
            failed(&v),
            [
                "descriptors flat",
                "no loss",
                "in time",
                "no damage",
                "p99 bound",
                "rate offered",
                "churn",
                "objects back",
                "daemon healthy"
            ]
        );
        assert!(v.checks[3].measured.contains("1 lost of"), "{:?}", v.checks[3]);
        assert!(v.checks[4].measured.contains("2 late, in 1 intervals"), "{:?}", v.checks[4]);
        let tolerant = Criteria { max_late: 2, ..criteria() };
        assert!(!failed(&judge(&samples, &end, &tolerant)).contains(&"in time"));
    }

    #[test]
    fn too_few_samples_or_no_traffic_never_pass() {
        let samples = series(|_| 100_000);
        let v = judge(&samples[..1], &clean_end(), &criteria());
        assert!(!v.pass && failed(&v).contains(&"samples"), "{v:#?}");
        let mut silent = series(|_| 100_000);
        silent.iter_mut().for_each(|s| s.expected = 0);
        assert_eq!(failed(&judge(&silent, &clean_end(), &criteria())), ["no loss"]);
        let no_churn = EndState { churn_asked_ops_per_s: 0.0, churn_ops_per_s: 0.0, ..clean_end() };
        assert!(judge(&samples, &no_churn, &criteria()).pass);
    }
}
