//! End-to-end tests of the bench over loopback: the baselines run as real processes (the
//! `ringfwd-bench` binary) from a generated ringfwd config with static routes, fed by the generator
//! and checked by the sink; and `compare --quick` as a smoke test. Every step is bounded in time.

mod common;

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

use common::{assert_clean_step, bench_json, run_forwarder, work_dir, Run, BENCH};
use ringfwd_bench::forwarder::ForwarderKind;
use ringfwd_bench::scenario::Scenario;

/// Runs baseline `kind` on `scenario` for one step of `duration` at `scale`.
fn run_baseline(kind: ForwarderKind, scenario: &str, scale: f64, duration: Duration) -> Run {
    let run = run_forwarder(kind, scenario, scale, duration, |process, files, _| {
        assert_eq!(process.api, None, "a baseline has no control API");
        let config = ringfwd_tuning::Config::from_file(&files.baseline_config).unwrap();
        assert_eq!(config.sessions.len(), 1, "the baselines read static routes");
    });
    // The baselines apply the static plan's offsets.
    assert_eq!(run.flows, Scenario::builtin(scenario).unwrap().flow_specs());
    run
}

fn assert_clean(run: &Run) {
    let (step, counters) = (&run.step, &run.counters);
    assert_clean_step(step);
    assert_eq!(counters["tx_packets"].as_u64(), Some(step.expected_out), "{counters}");
    assert_eq!(counters["rx_packets"].as_u64(), Some(step.sent_in), "{counters}");
    for drop in ["drop_not_rtp", "drop_malformed", "drop_unknown_ssrc", "drop_wrong_source", "tx_errors"] {
        assert_eq!(counters[drop].as_u64(), Some(0), "{drop}: {counters}");
    }
}

#[test]
fn mmsg_baseline_forwards_a_conference_without_loss_and_rewrites_every_copy() {
    // Scale 0.3: 660 packets/s in, 6 600 copies/s out, for one second.
    let run = run_baseline(ForwarderKind::Mmsg, "conference", 0.3, Duration::from_secs(1));
    assert_clean(&run);
    assert!(run.step.forwarder_cpu_ns > 0, "{:?}", run.step);
}

#[test]
fn mmsg_baseline_fans_a_broadcast_out_to_200_subscribers() {
    let run = run_baseline(ForwarderKind::Mmsg, "broadcast", 0.2, Duration::from_secs(1));
    assert_clean(&run);
}

#[test]
fn gso_baseline_forwards_a_conference_without_loss_and_rewrites_every_copy() {
    let run = run_baseline(ForwarderKind::Gso, "conference", 0.3, Duration::from_secs(1));
    assert_clean(&run);
}

#[test]
fn gso_baseline_fans_a_broadcast_out_to_200_subscribers() {
    // 1200-byte packets to 200 destinations: runs of one destination, never over 64 KiB.
    let run = run_baseline(ForwarderKind::Gso, "broadcast", 0.2, Duration::from_secs(1));
    assert_clean(&run);
}

#[test]
fn gso_baseline_forwards_flat_streams_with_fanout_four() {
    let run = run_baseline(ForwarderKind::Gso, "flat-fanout4", 1.0, Duration::from_secs(1));
    assert_clean(&run);
}

#[test]
fn gso_baseline_keeps_each_destinations_order_under_injected_impairment() {
    let run = run_forwarder(ForwarderKind::Gso, "impaired", 0.35, Duration::from_secs(1), |_, _, _| {});
    let s = &run.step;
    assert!(s.injected_lost > 0 && s.injected_reordered > 0 && s.injected_duplicates > 0, "{s:?}");
    // Exactly what was injected: grouping copies per destination reorders nothing.
    assert_eq!((s.lost, s.duplicates, s.reordered), (s.injected_lost, s.injected_duplicates, s.injected_reordered));
    assert_eq!((s.integrity_failures, s.rewrite_errors, s.unexpected), (0, 0, 0), "{s:?}");
}

#[test]
fn naive_baseline_forwards_flat_streams_without_loss() {
    let run = run_baseline(ForwarderKind::Naive, "flat", 0.5, Duration::from_millis(800));
    assert_clean(&run);
}

#[test]
fn baseline_rejects_a_bad_config_with_the_key_named() {
    let dir = work_dir("bad-config");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[pool]\nbuffers_per_worker = 1000\n").unwrap();
    let out = Command::new(BENCH).args(["baseline", "mmsg", "--config"]).arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pool.buffers_per_worker"), "{stderr}");
}

fn json_at(value: &serde_json::Value, path: &[&str]) -> serde_json::Value {
    path.iter().fold(value.clone(), |v, key| v[*key].clone())
}

#[test]
fn quick_compare_runs_both_baselines_and_writes_json() {
    // A loose latency bound: this checks that compare runs and reports, not how fast anything is
    // (other tests share the cores; performance is the bench suite's job).
    let args = ["compare", "--quick", "--forwarders", "gso,mmsg", "--scenarios", "flat", "--p99-bound-us", "1000000"]
        .map(OsStr::new);
    let (stdout, result) = bench_json(&args, "compare");
    assert!(stdout.contains("mmsg vs gso: max rate "), "{stdout}");
    assert!(stdout.contains("at 50000 out pps"), "{stdout}");
    let forwarders = json_at(&result, &["scenarios"])[0]["forwarders"].clone();
    assert_eq!(forwarders.as_array().map(Vec::len), Some(2));
    for f in forwarders.as_array().unwrap() {
        let max = f["searches"][0]["max_out_pps"].as_f64().unwrap();
        assert!(max > 1000.0, "{f}");
        assert!(f["fixed"][0]["cpu_ns_per_packet"].as_f64().unwrap() > 0.0, "{f}");
        assert!(f["at_max"][0]["latency_p99_ns"].as_u64().unwrap() > 0, "{f}");
    }
}

#[test]
fn injected_loss_reordering_and_duplicates_arrive_exactly_through_the_mmsg_baseline() {
    // The impaired conference (6 participants, fanout 5) at a third of its rate for one second.
    let run = run_forwarder(ForwarderKind::Mmsg, "impaired", 0.35, Duration::from_secs(1), |_, _, _| {});
    let s = &run.step;
    assert!(s.expected_out > 2000, "{s:?}");
    assert!(s.injected_lost > 0 && s.injected_reordered > 0 && s.injected_duplicates > 0, "{s:?}");
    // What the subscribers miss, see twice or out of order is what was injected times the fanout.
    assert_eq!(s.lost, s.injected_lost, "{s:?}");
    assert_eq!(s.duplicates, s.injected_duplicates, "{s:?}");
    assert_eq!(s.reordered, s.injected_reordered, "{s:?}");
    // None of it is the forwarder's loss.
    assert_eq!(s.loss_ratio, 0.0, "{s:?}");
    assert_eq!((s.integrity_failures, s.rewrite_errors, s.unexpected), (0, 0, 0), "{s:?}");
}
