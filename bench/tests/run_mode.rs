//! End-to-end test of `ringfwd-bench run` against a ringfwd started beforehand, as an operator
//! would: the daemon runs with no routes, the bench sets the scenario up through the control API,
//! measures with a progress line, prints the table, writes JSON, and removes its session. Loopback
//! only; bounded in time.

mod common;

use std::process::Command;

use common::{ringfwd_binary, work_dir, BENCH};
use ringfwd_bench::forwarder::{Binaries, ForwarderKind, ForwarderProcess};
use ringfwd_bench::scenario::Scenario;
use ringfwd_tuning::IdleStrategy;

#[test]
fn run_sets_a_scenario_up_through_the_api_of_a_running_ringfwd_and_cleans_up() {
    let dir = work_dir("run-mode");
    let token = dir.join("token");
    let scenario = Scenario::builtin("audio-calls").unwrap();
    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len());
    let config =
        scenario.config("127.0.0.1:0".parse().unwrap(), cores.min(2) - 1, Vec::new(), IdleStrategy::Sleep, &token);
    let config_path = dir.join("ringfwd.toml");
    std::fs::write(&config_path, config.to_toml_string().unwrap()).unwrap();
    let binaries = Binaries { ringfwd: ringfwd_binary(), bench: BENCH.into() };
    let process = ForwarderProcess::start(ForwarderKind::Ringfwd, &config_path, &binaries, &dir).unwrap();
    let (api, media) = (process.api.unwrap(), process.media[0]);
    let json = dir.join("run.json");
    let out = Command::new(BENCH)
        .args(["run", "--scenario", "audio-calls", "--seconds", "1.5"])
        .args(["--api", &api.to_string(), "--media", &media.to_string(), "--pid", &process.pid().to_string()])
        .arg("--token-file")
        .arg(&token)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("\r[audio-calls]") && stderr.contains(" pps"), "{stderr}");
    assert!(stdout.contains("ringfwd-bench run: audio-calls") && stdout.contains("latency one-way"), "{stdout}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let n = |key: &str| r["step"][key].as_u64().unwrap_or_else(|| panic!("{key} in {r}"));
    // 120 parties at 50 pps, fanout 2, for 1.5 s: about 18 000 copies, all delivered and checked.
    assert!(n("expected_out") > 15_000, "{r}");
    for key in ["lost", "duplicates", "integrity_failures", "rewrite_errors", "unexpected"] {
        assert_eq!(n(key), 0, "{key}: {r}");
    }
    assert!(r["cpu_measured"].as_bool().unwrap() && r["step"]["cpu_ns_per_packet"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["flows"].as_array().map(Vec::len), Some(240));
    assert!(!r["machine"]["kernel"].as_str().unwrap().is_empty(), "{r}");
    // The session is gone again: the node holds nothing.
    let counters = process.stop().unwrap().expect("final counters");
    assert_eq!(counters["total"]["subscriptions"].as_u64(), Some(0), "{counters}");
    let _ = std::fs::remove_dir_all(&dir);
}
