//! Finding the highest rate a forwarder sustains: the pass/fail rule of one step and the
//! bounded search over rates.
//!
//! Owns [`verdict`] (a step passes when the generator offered its plan, fewer than [`MAX_LOSS`]
//! of the copies were lost or late, and the one-way latency's 99th percentile stayed under
//! [`MAX_P99_NS`]: a rate only counts if it is delivered in time; a failure is blamed on the bench when the sink
//! socket overflowed or the generator or sink lagged, else on the forwarder) and [`search_max`]
//! (geometric steps up from a start rate until one fails — down if the first fails — then
//! bisection of the bracket). A step that fails on latency or on the bench is measured once more and
//! fails only if the repeat fails too, at most [`SearchPlan::repeats`] times per search: on a shared VM
//! one stall of a few ms (the host deschedules the vCPU, or a kernel thread such as `kdamond` takes the
//! core) fails a 1.5 s step's p99 whatever the forwarder, while a forwarder at its limit fails both.
//! The search takes the measurement as a closure, so it is sans-IO and tested against simulated
//! forwarders. Must never run more than [`SearchPlan::max_steps`] steps.

use crate::step::StepOutcome;

/// Highest share of copies lost or late a step may have and still pass.
pub const MAX_LOSS: f64 = 0.001;
/// Default highest one-way p99 latency a step may have and still pass, ns: the latency bound of
/// "max rate".
pub const MAX_P99_NS: u64 = 5_000_000;
/// A generator or sink lagging more than this (99th percentile) was itself saturated.
pub const BENCH_LAG_NS: u64 = 20_000_000;

/// What ended a rate search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The forwarder lost more than [`MAX_LOSS`].
    Forwarder,
    /// The forwarder delivered, but its p99 one-way latency reached the bound.
    Latency,
    /// The sink's socket overflowed or the generator or sink lagged: the bench, not the
    /// forwarder, was the bottleneck.
    Bench,
    /// The generator could not send the planned rate: the bench was the bottleneck.
    Generator,
    /// Every rate tried passed: the maximum is at least the result.
    SearchCeiling,
}

/// How a search runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchPlan {
    /// First rate tried, output packets/s.
    pub start_out_pps: f64,
    /// Factor between geometric steps (at least 1.1).
    pub growth: f64,
    /// Most geometric steps in each direction.
    pub geometric_steps: usize,
    /// Bisection steps once a pass and a failure bracket the maximum.
    pub bisect_steps: usize,
    /// A step whose p99 one-way latency reaches this fails, ns.
    pub max_p99_ns: u64,
    /// Most steps measured again because they failed on latency or on the bench.
    pub repeats: usize,
}

impl SearchPlan {
    /// The most steps a search with this plan measures.
    pub fn max_steps(&self) -> usize {
        2 * self.geometric_steps + self.bisect_steps + self.repeats
    }
}

/// One rate search.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Search {
    /// Delivered output rate of the highest passing step, packets/s (0 if none passed).
    pub max_out_pps: f64,
    /// What stopped the search.
    pub limit: Limit,
    /// Every step, in order.
    pub steps: Vec<StepOutcome>,
}

/// `None` if the step passes with p99 latency under `max_p99_ns`, else what failed.
pub fn verdict(step: &StepOutcome, max_p99_ns: u64) -> Option<Limit> {
    if step.generator_short {
        Some(Limit::Generator)
    } else if step.loss_ratio >= MAX_LOSS {
        let sink_lost = step.sink_socket_drops * 2 >= step.lost + step.late;
        let bench_lagged = step.generator_lag_p99_ns > BENCH_LAG_NS || step.sink_lag_p99_ns > BENCH_LAG_NS;
        Some(if sink_lost || bench_lagged { Limit::Bench } else { Limit::Forwarder })
    } else if step.latency_p99_ns >= max_p99_ns {
        let bench_lagged = step.generator_lag_p99_ns > BENCH_LAG_NS || step.sink_lag_p99_ns > BENCH_LAG_NS;
        Some(if bench_lagged { Limit::Bench } else { Limit::Latency })
    } else {
        None
    }
}

/// Searches the highest passing output rate; `measure(out_pps)` runs one step at that rate.
pub fn search_max<E>(plan: &SearchPlan, mut measure: impl FnMut(f64) -> Result<StepOutcome, E>) -> Result<Search, E> {
    let growth = plan.growth.max(1.1);
    let mut steps = Vec::new();
    // Highest pass as (rate asked, rate delivered); lowest failure as (rate, why).
    let mut pass: Option<(f64, f64)> = None;
    let mut fail: Option<(f64, Limit)> = None;
    let mut repeats_left = plan.repeats;
    let mut try_rate = |rate: f64, pass: &mut Option<(f64, f64)>, fail: &mut Option<(f64, Limit)>| {
        let mut outcome = measure(rate)?;
        let mut v = verdict(&outcome, plan.max_p99_ns);
        if matches!(v, Some(Limit::Latency | Limit::Bench)) && repeats_left > 0 {
            repeats_left -= 1;
            steps.push(outcome);
            outcome = measure(rate)?;
            v = verdict(&outcome, plan.max_p99_ns);
        }
        match v {
            None if pass.is_none_or(|(r, _)| rate > r) => *pass = Some((rate, outcome.delivered_out_pps)),
            None => {}
            Some(limit) if fail.is_none_or(|(r, _)| rate < r) => *fail = Some((rate, limit)),
            Some(_) => {}
        }
        steps.push(outcome);
        Ok(v.is_none())
    };
    let mut rate = plan.start_out_pps;
    for _ in 0..plan.geometric_steps {
        if !try_rate(rate, &mut pass, &mut fail)? {
            break;
        }
        rate *= growth;
    }
    if pass.is_none() {
        for _ in 0..plan.geometric_steps {
            rate /= growth;
            if try_rate(rate, &mut pass, &mut fail)? {
                break;
            }
        }
    }
    for _ in 0..plan.bisect_steps {
        let (Some((lo, _)), Some((hi, _))) = (pass, fail) else {
            break;
        };
        try_rate((lo * hi).sqrt(), &mut pass, &mut fail)?;
    }
    Ok(Search {
        max_out_pps: pass.map_or(0.0, |(_, delivered)| delivered),
        limit: fail.map_or(Limit::SearchCeiling, |(_, limit)| limit),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A simulated forwarder that loses 1% above `capacity`.
    fn forwarder(capacity: f64) -> impl FnMut(f64) -> Result<StepOutcome, Infallible> {
        move |rate| {
            let expected = rate as u64;
            let lost = if rate > capacity { expected.div_ceil(100) } else { 0 };
            Ok(StepOutcome {
                target_out_pps: rate,
                expected_out: expected,
                received_out: expected - lost,
                delivered_out_pps: (expected - lost) as f64,
                lost,
                loss_ratio: lost as f64 / expected.max(1) as f64,
                forwarder_socket_drops: lost,
                ..Default::default()
            })
        }
    }

    fn plan(start_out_pps: f64) -> SearchPlan {
        SearchPlan {
            start_out_pps,
            growth: 2.0,
            geometric_steps: 7,
            bisect_steps: 4,
            max_p99_ns: MAX_P99_NS,
            repeats: 0,
        }
    }

    #[test]
    fn brackets_then_bisects_to_within_a_few_percent() {
        let s = search_max(&plan(10_000.0), forwarder(219_000.0)).unwrap();
        assert_eq!(s.limit, Limit::Forwarder);
        // 10k..160k pass, 320k fails, then 4 bisections of a factor-2 bracket: within 2^(1/16).
        assert!(s.max_out_pps <= 219_000.0 && s.max_out_pps > 219_000.0 / 2f64.powf(1.0 / 16.0), "{}", s.max_out_pps);
        assert_eq!(s.steps.len(), 6 + 4);
    }

    #[test]
    fn searches_down_when_the_start_already_fails() {
        let s = search_max(&plan(100_000.0), forwarder(30_000.0)).unwrap();
        assert_eq!(s.limit, Limit::Forwarder);
        assert!(s.max_out_pps <= 30_000.0 && s.max_out_pps > 30_000.0 / 1.1, "{}", s.max_out_pps);
        assert!(s.steps.len() <= 2 * 7 + 4);
    }

    #[test]
    fn a_forwarder_faster_than_every_step_reports_the_ceiling() {
        let s = search_max(&plan(1_000.0), forwarder(f64::INFINITY)).unwrap();
        assert_eq!(s.limit, Limit::SearchCeiling);
        assert_eq!(s.max_out_pps, 64_000.0);
        assert_eq!(s.steps.len(), 7);
    }

    #[test]
    fn nothing_passing_gives_zero_and_stays_bounded() {
        let s = search_max(&plan(1_000.0), forwarder(0.0)).unwrap();
        assert_eq!((s.max_out_pps, s.limit), (0.0, Limit::Forwarder));
        assert_eq!(s.steps.len(), 1 + 7);
    }

    /// A forwarder with capacity `capacity` whose steps listed in `stalled` (by call number, from 0) see one
    /// host stall: p99 over the bound, nothing lost.
    fn stalling(capacity: f64, stalled: &'static [usize]) -> impl FnMut(f64) -> Result<StepOutcome, Infallible> {
        let mut inner = forwarder(capacity);
        let mut call = 0;
        move |rate| {
            let mut outcome = inner(rate)?;
            if stalled.contains(&call) {
                outcome.latency_p99_ns = MAX_P99_NS + 1;
            }
            call += 1;
            Ok(outcome)
        }
    }

    #[test]
    fn a_step_failed_by_one_stall_is_measured_again() {
        // Call 2 (40 k) stalls once: its repeat passes and the search goes on to the real limit.
        let s = search_max(&SearchPlan { repeats: 3, ..plan(10_000.0) }, stalling(219_000.0, &[2])).unwrap();
        assert_eq!(s.limit, Limit::Forwarder);
        assert!(s.max_out_pps > 219_000.0 / 2f64.powf(1.0 / 16.0), "{}", s.max_out_pps);
        assert_eq!(s.steps.len(), 6 + 4 + 1);
        // Without repeats the stall ends the search at 20 k.
        let s = search_max(&plan(10_000.0), stalling(219_000.0, &[2])).unwrap();
        assert_eq!(s.limit, Limit::Latency);
    }

    #[test]
    fn a_step_failing_twice_fails_and_repeats_are_bounded() {
        // Every step stalls: each failure is repeated while repeats last, then counts.
        let all: &[usize] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23];
        let p = SearchPlan { repeats: 3, ..plan(10_000.0) };
        let s = search_max(&p, stalling(219_000.0, all)).unwrap();
        assert_eq!((s.max_out_pps, s.limit), (0.0, Limit::Latency));
        assert!(s.steps.len() <= p.max_steps(), "{} steps", s.steps.len());
        assert_eq!(s.steps.len(), 1 + 7 + 3);
    }

    #[test]
    fn errors_stop_the_search() {
        let mut calls = 0;
        let r = search_max(&plan(1_000.0), |_| {
            calls += 1;
            Err::<StepOutcome, &str>("forwarder died")
        });
        assert_eq!((r.err(), calls), (Some("forwarder died"), 1));
    }

    #[test]
    fn verdicts_tell_who_was_the_bottleneck() {
        let ok = StepOutcome { expected_out: 100_000, lost: 50, loss_ratio: 0.0005, ..Default::default() };
        assert_eq!(verdict(&ok, MAX_P99_NS), None);
        let fwd = StepOutcome { lost: 500, loss_ratio: 0.005, forwarder_socket_drops: 500, ..ok.clone() };
        assert_eq!(verdict(&fwd, MAX_P99_NS), Some(Limit::Forwarder));
        let sink = StepOutcome { sink_socket_drops: 400, ..fwd.clone() };
        assert_eq!(verdict(&sink, MAX_P99_NS), Some(Limit::Bench));
        let slow_sink = StepOutcome { sink_lag_p99_ns: 30_000_000, ..fwd.clone() };
        assert_eq!(verdict(&slow_sink, MAX_P99_NS), Some(Limit::Bench));
        let slow_gen = StepOutcome { generator_lag_p99_ns: 30_000_000, ..fwd.clone() };
        assert_eq!(verdict(&slow_gen, MAX_P99_NS), Some(Limit::Bench));
        let late = StepOutcome { late: 300, loss_ratio: 0.003, ..ok.clone() };
        assert_eq!(verdict(&late, MAX_P99_NS), Some(Limit::Forwarder));
        let slow = StepOutcome { latency_p99_ns: MAX_P99_NS, ..ok.clone() };
        assert_eq!(verdict(&slow, MAX_P99_NS), Some(Limit::Latency));
        let just_in_time = StepOutcome { latency_p99_ns: MAX_P99_NS - 1, ..ok.clone() };
        assert_eq!(verdict(&just_in_time, MAX_P99_NS), None);
        let slow_bench = StepOutcome { sink_lag_p99_ns: 30_000_000, ..slow };
        assert_eq!(verdict(&slow_bench, MAX_P99_NS), Some(Limit::Bench));
        let short = StepOutcome { generator_short: true, ..ok };
        assert_eq!(verdict(&short, MAX_P99_NS), Some(Limit::Generator));
    }
}
