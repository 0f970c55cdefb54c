//! End-to-end tests of the bench against the real ringfwd daemon (built next to the bench binary by
//! `cargo test --workspace`): the scenario is routed through the control API, never from the
//! config file, with exactly the scenario's resources and the rewriting the API answered; and a
//! short `churn` run subscribes and unsubscribes through the API while forwarding stays clean.
//! Loopback only; every step bounded in time.

mod common;

use std::ffi::OsStr;
use std::time::Duration;

use common::{assert_clean_step, bench_json, ringfwd_binary, run_forwarder, run_with_chains};
use ringfwd_bench::chains::{Chains, PluginsFile};
use ringfwd_bench::control::{self, Control};
use ringfwd_bench::forwarder::{ForwarderKind, ForwarderProcess};
use ringfwd_bench::launch::ScenarioFiles;
use ringfwd_bench::scenario::Scenario;
use ringfwd_bench::step::Rig;

/// Checks, while ringfwd runs, that the node holds exactly the scenario's resources, created through
/// the API (no static routes), and that the sink expects what the API answered.
fn check_routing(scenario: &Scenario, process: &ForwarderProcess, files: &ScenarioFiles, rig: &Rig) {
    let config = ringfwd_tuning::Config::from_file(&files.ringfwd_config).unwrap();
    assert!(config.sessions.is_empty(), "ringfwd must get no static routes");
    let api = process.api.expect("ringfwd reports its API address");
    assert!(api.ip().is_loopback() && api.port() != 0, "{api}");
    let token = control::read_token(&files.dev_token_file).unwrap();
    control::runtime().unwrap().block_on(async {
        let mut client = Control::connect(api, &token).await.unwrap();
        let usage = client.usage().await.unwrap();
        assert_eq!((usage.sessions, usage.endpoints, usage.streams, usage.subscriptions), (1, 128, 64, 64));
        let session = client.session(&scenario.session_id()).await.unwrap();
        assert_eq!((session.endpoints, session.streams, session.subscriptions), (128, 64, 64));
        // Flow by flow, the sink expects what the API says the subscription does.
        let listed = client.subscriptions(&scenario.session_id()).await.unwrap();
        let specs = rig.sink.accounting.specs();
        assert_eq!((listed.len(), specs.len()), (64, 64));
        for (i, spec) in specs.iter().enumerate() {
            let sub = listed.iter().find(|s| s.subscription_id == Scenario::subscription_id(i)).unwrap();
            assert_eq!((sub.stream_id.as_str(), sub.out_ssrc), (format!("s-{}", spec.stream).as_str(), spec.out_ssrc));
            assert_eq!((sub.seq_offset, sub.ts_offset), (u32::from(spec.seq_offset), spec.ts_offset));
            let map: Vec<[u8; 2]> = sub.payload_type_map.iter().map(|m| [m.from as u8, m.to as u8]).collect();
            assert_eq!(map, spec.payload_type_map);
            let planned = &scenario.flows[i].spec;
            assert_eq!((spec.out_ssrc, &spec.payload_type_map), (planned.out_ssrc, &planned.payload_type_map));
        }
        // ringfwd chose its own offsets: the static plan's are not what the sink checks.
        assert!(specs.iter().zip(&scenario.flow_specs()).any(|(api, plan)| api.seq_offset != plan.seq_offset));
    });
}

#[test]
fn ringfwd_is_routed_through_its_api_with_exactly_the_scenarios_resources() {
    let scenario = Scenario::builtin("flat").unwrap();
    // Scale 0.5: 3 200 packets/s in and out, for one second.
    let run = run_forwarder(ForwarderKind::Ringfwd, "flat", 0.5, Duration::from_secs(1), |p, f, r| {
        check_routing(&scenario, p, f, r)
    });
    // The sink checked every copy against what the API returned: nothing lost, no wrong header.
    assert_clean_step(&run.step);
    assert_eq!((run.flows.len(), run.step.rewrite_errors), (64, 0));
    let total = &run.counters["total"];
    assert_eq!(total["forwarded_packets"].as_u64(), Some(run.step.expected_out), "{total}");
    assert_eq!(total["rx_packets"].as_u64(), Some(run.step.sent_in), "{total}");
    assert_eq!((total["streams"].as_u64(), total["subscriptions"].as_u64()), (Some(64), Some(64)), "{total}");
    for counter in ["commands_failed", "send_errors", "drop_unknown_ssrc", "drop_wrong_source", "drop_tx_full"] {
        assert_eq!(total[counter].as_u64(), Some(0), "{counter}: {total}");
    }
}

#[test]
fn churn_smoke_run_subscribes_and_unsubscribes_without_errors_or_loss() {
    let ringfwd = ringfwd_binary();
    let args = ["churn", "--seconds", "2", "--concurrency", "2", "--out-pps", "6000", "--ringfwd"].map(OsStr::new);
    let (stdout, r) = bench_json(&[&args[..], &[ringfwd.as_os_str()]].concat(), "churn");
    assert!(stdout.contains("ops/s") && stdout.contains("during churn"), "{stdout}");
    let n = |key: &str| r[key].as_u64().unwrap_or_else(|| panic!("{key} in {r}"));
    assert!(n("operations") > 0, "{r}");
    assert_eq!(n("errors"), 0, "{r}");
    // Every create was followed by its delete.
    assert_eq!(n("creates"), n("deletes"), "{r}");
    assert!(r["ops_per_s_median"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["create_latency"]["p50_us"].as_f64().unwrap() > 0.0, "{r}");
    // The extra subscriptions forwarded, and were all gone afterwards, in the registry and in the workers.
    assert!(n("extra_copies") > 0, "{r}");
    assert_eq!((n("subscriptions_after"), n("worker_subscriptions_after")), (220, 220), "{r}");
    assert_eq!(n("commands_failed"), 0, "{r}");
    let during = &r["churn"]["step"];
    let d = |key: &str| during[key].as_u64().unwrap_or_else(|| panic!("{key} in {during}"));
    assert!(d("expected_out") > 5000, "{during}");
    for key in ["lost", "duplicates", "integrity_failures", "rewrite_errors", "unexpected"] {
        assert_eq!(d(key), 0, "{key}: {during}");
    }
}

#[test]
fn loss_repair_last_mile_loss_is_nacked_and_repaired_from_ringfwds_cache() {
    let run = run_forwarder(ForwarderKind::Ringfwd, "loss-repair", 1.0, Duration::from_millis(1500), |_, _, _| {});
    let s = &run.step;
    assert!(s.last_mile_dropped > 0, "{s:?}");
    // The sink NACKed the gaps, its RTCP reached ringfwd as subscriber feedback, and the cache answered.
    assert!(s.nacked > 0 && s.nack_packets_sent > 0, "{s:?}");
    let total = &run.counters["total"];
    let counter = |name: &str| total[name].as_u64().unwrap_or(0);
    assert!(counter("rx_feedback") >= s.nack_packets_sent, "{total} vs {s:?}");
    assert!(counter("retransmissions") >= s.repaired, "{total} vs {s:?}");
    assert!(s.repaired * 10 >= s.last_mile_dropped * 9, "at least 90% repaired: {s:?}");
    assert_eq!((s.integrity_failures, s.rewrite_errors, s.duplicates), (0, 0, 0), "{s:?}");
}

#[test]
fn a_red_plugin_on_every_stream_is_unwrapped_by_the_sink_and_every_primary_block_is_intact() {
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    let file = modules.path().join("red.toml");
    let text = "red_pt = 120\ningress = [\"red\"]\n[[plugins]]\nname = \"red\"\npath = \"red.wasm\"\n\
                chains = [\"ingress\"]\n[plugins.params]\nred_pt = \"120\"\n";
    std::fs::write(&file, text).expect("the plugins file");
    let chains = Chains { defaults: true, plugins: Some(PluginsFile::load(&file).expect("read")) };
    let run = run_with_chains(ForwarderKind::Ringfwd, "flat", &chains, (0.5, Duration::from_secs(1)), |_, _, _| {});
    // Every copy was RED (the sink refuses a RED payload it was not asked to unwrap, and the plugin rewrote every
    // packet), with the publisher's payload type in its primary block and the bench payload intact in it.
    assert_clean_step(&run.step);
    let total = &run.counters["total"];
    assert_eq!(total["rewritten_by_plugin"].as_u64(), Some(run.step.sent_in), "{total}");
    assert_eq!(total["drop_tx_full"].as_u64(), Some(0), "{total}");
}
