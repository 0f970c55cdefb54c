//! End-to-end tests of the bench over loopback: the baselines run as real processes (the
//! `ringfwd-bench` binary) from a generated ringfwd config, fed by the generator and checked by
//! the sink; and `compare --quick` as a smoke test. Every step is bounded in time.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringfwd_bench::account::Accounting;
use ringfwd_bench::forwarder::{Binaries, ForwarderKind, ForwarderProcess};
use ringfwd_bench::gen::Generator;
use ringfwd_bench::payload::Epoch;
use ringfwd_bench::scenario::{Scenario, ScenarioKind};
use ringfwd_bench::sink::Sink;
use ringfwd_bench::step::{run_step, Rig, StepOutcome, Target};
use ringfwd_tuning::IdleStrategy;

const BENCH: &str = env!("CARGO_BIN_EXE_ringfwd-bench");

fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringfwd-bench-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `kind` on `scenario` for one step of `duration` at `scale`; returns the step and the
/// forwarder's final counters.
fn run_baseline(
    kind: ForwarderKind,
    scenario_kind: ScenarioKind,
    scale: f64,
    duration: Duration,
) -> (StepOutcome, serde_json::Value) {
    let scenario = Scenario::new(scenario_kind);
    let sink_socket = Sink::bind(SocketAddr::from(([0, 0, 0, 0], 0))).unwrap();
    let sockets = (0..scenario.publishers).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let gen = Generator::new(sockets, &scenario.streams, true).unwrap();
    let accounting = Accounting::new(scenario.flow_specs(), scenario.streams.len());
    let sink = Sink::new(sink_socket, accounting).unwrap();
    let mut rig = Rig { gen, sink, epoch: Epoch::new() };

    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len());
    let worker_core = if cores >= 2 { 1 } else { 0 };
    let publishers = rig.gen.publisher_addrs().unwrap();
    let sink_port = rig.sink.local_addr().unwrap().port();
    let media = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = scenario.config(&publishers, sink_port, media, worker_core, Vec::new(), IdleStrategy::Sleep);
    let dir = work_dir(&format!("{kind}-{scenario_kind}"));
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config.to_toml_string().unwrap()).unwrap();

    let binaries = Binaries { ringfwd: PathBuf::from("/nonexistent/ringfwd"), bench: PathBuf::from(BENCH) };
    let process = ForwarderProcess::start(kind, &config_path, &binaries, &dir).unwrap();
    assert_eq!(process.workers, 1);
    let target = Target { pid: process.pid(), media: process.media[0] };
    assert!(target.media.ip().is_loopback() && target.media.port() != 0, "{}", target.media);
    let step = run_step(&mut rig, target, scenario.base_out_pps(), scale, duration).unwrap();
    let counters = process.stop().unwrap().expect("final counters line");
    let _ = std::fs::remove_dir_all(&dir);
    (step, counters)
}

fn assert_clean(step: &StepOutcome, counters: &serde_json::Value) {
    assert!(step.expected_out > 1000, "too little traffic: {step:?}");
    assert_eq!(step.lost, 0, "{step:?}");
    assert_eq!((step.integrity_failures, step.rewrite_errors), (0, 0), "{step:?}");
    assert_eq!((step.duplicates, step.unexpected), (0, 0), "{step:?}");
    assert!(!step.generator_short, "{step:?}");
    assert!(step.latency_p50_ns > 0 && step.latency_p50_ns <= step.latency_p999_ns, "{step:?}");
    assert_eq!(counters["tx_packets"].as_u64(), Some(step.expected_out), "{counters}");
    assert_eq!(counters["rx_packets"].as_u64(), Some(step.sent_in), "{counters}");
    for drop in ["drop_not_rtp", "drop_malformed", "drop_unknown_ssrc", "drop_wrong_source", "tx_errors"] {
        assert_eq!(counters[drop].as_u64(), Some(0), "{drop}: {counters}");
    }
}

#[test]
fn mmsg_baseline_forwards_a_conference_without_loss_and_rewrites_every_copy() {
    // Scale 0.3: 660 packets/s in, 6 600 copies/s out, for one second.
    let (step, counters) = run_baseline(ForwarderKind::Mmsg, ScenarioKind::Conference, 0.3, Duration::from_secs(1));
    assert_clean(&step, &counters);
    assert!(step.forwarder_cpu_ns > 0, "{step:?}");
}

#[test]
fn mmsg_baseline_fans_a_broadcast_out_to_200_subscribers() {
    let (step, counters) = run_baseline(ForwarderKind::Mmsg, ScenarioKind::Broadcast, 0.2, Duration::from_secs(1));
    assert_clean(&step, &counters);
}

#[test]
fn naive_baseline_forwards_flat_streams_without_loss() {
    let (step, counters) = run_baseline(ForwarderKind::Naive, ScenarioKind::Flat, 0.5, Duration::from_millis(800));
    assert_clean(&step, &counters);
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
    let dir = work_dir("compare");
    let json = dir.join("result.json");
    let out = Command::new(BENCH)
        .args(["compare", "--quick", "--forwarders", "mmsg,naive", "--scenarios", "flat", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("cpu/pkt vs mmsg: mmsg 1.00x, naive"), "{stdout}");
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(Path::new(&dir));
    let forwarders = json_at(&result, &["scenarios"])[0]["forwarders"].clone();
    assert_eq!(forwarders.as_array().map(Vec::len), Some(2));
    for f in forwarders.as_array().unwrap() {
        let max = f["searches"][0]["max_out_pps"].as_f64().unwrap();
        assert!(max > 1000.0, "{f}");
        assert!(f["fixed"][0]["cpu_ns_per_packet"].as_f64().unwrap() > 0.0, "{f}");
    }
}
