//! WebAssembly plugins loaded from the config (`[[plugins]]`) by the plain `ringfwd` binary.
//!
//! The C example `plugins/examples/throttle.c`, built by `plugins/build.sh` with Debian's clang, caps each stream
//! at its `max_pps`: each subscriber receives exactly the first packets of its stream's burst, unchanged, and the
//! metrics endpoint counts the plugin's calls and drops; `plugins/examples/remb.c` sends the publisher a REMB of the
//! bitrate it measured, through the host's emit import once its timer fires, which the publisher's RTCP parser reads. Two WAT plugins show the isolation: one traps on its fifth
//! packet (fail-open: the stream goes on untouched), one spins forever on its third (stopped by its fuel budget;
//! fail-closed: its subscriber gets nothing more, while another subscriber of the same stream gets everything); each
//! fault is a `plugin_disabled` lifecycle event, a metric and a line in `ringfwd ctl plugin list`. The API attaches a
//! plugin to a live subscription (another subscriber of the stream losing nothing) or a live stream and detaches it
//! again. A
//! module that does not fit the ABI is refused at start and by `--check-config`, naming `plugins[N].path` and why.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ringfwd_proto::v1;
use ringfwd_tests::api::{
    ctl_ok, dev_token, endpoint, parse_json, subscription, video_stream, wait_until, worker_total, Api,
};
use ringfwd_tests::daemon::{run_to_exit, Daemon};
use ringfwd_tests::peer::{rtp_packet, Peer};

use ringfwd_tests::scrape::sample;

const MEDIA: &str = "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n";
const WAIT: Duration = Duration::from_secs(5);

fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
    rtp_packet(ssrc, seq, u32::from(seq) * 3000, 96, false, &[seq as u8; 160])
}

/// Sends packets `0..count` of `ssrc`; answers how long that took.
fn send(publisher: &Peer, ssrc: u32, count: u16, to: SocketAddr) -> Duration {
    let t0 = Instant::now();
    for seq in 0..count {
        publisher.send(&packet(ssrc, seq), to);
    }
    t0.elapsed()
}

/// What `peer` receives: `expected` packets, then whatever else comes within 300 ms.
fn received(peer: &Peer, expected: usize) -> Vec<Vec<u8>> {
    let mut got = peer.recv(expected, WAIT);
    got.extend(peer.drain(Duration::from_millis(300)));
    got
}

/// Creates stream `stream` (SSRC `ssrc`) published by `publisher` in session "s", and one subscriber endpoint per
/// entry, subscribed with that egress chain (`None`: the config's).
fn route(api: &Api, stream: &str, ssrc: u32, publisher: &Peer, subscribers: &[(&str, &Peer, Option<&[&str]>)]) {
    let publisher_id = format!("{stream}_pub");
    api.create_endpoint(endpoint("s", &publisher_id, publisher.addr())).expect("publisher");
    api.create_stream(video_stream("s", stream, &publisher_id, ssrc)).expect("stream");
    for (id, peer, chain) in subscribers {
        api.create_endpoint(endpoint("s", id, peer.addr())).expect("subscriber");
        let request = v1::CreateSubscriptionRequest {
            interceptors: chain
                .map(|names| v1::InterceptorChain { names: names.iter().map(|n| n.to_string()).collect() }),
            ..subscription("s", id, stream, id, 0)
        };
        api.create_subscription(request).expect("subscription");
    }
}

/// The plugin counter `name` for `plugin` once it reaches `at_least` (the workers publish as they go).
fn plugin_counter(daemon: &Daemon, name: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
    let metrics = daemon.metrics.expect("the daemon serves metrics");
    let mut value = 0.0;
    wait_until(WAIT, || {
        value = sample(metrics, name, labels).unwrap_or(0.0);
        value >= at_least
    });
    value
}

#[test]
fn the_c_throttle_caps_each_stream_and_the_metrics_count_its_calls_and_drops() {
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    let throttle = modules.path().join("throttle.wasm");
    let config = format!(
        "{MEDIA}[[plugins]]\nname = \"throttle\"\npath = \"{}\"\nchains = [\"ingress\"]\n[plugins.params]\nmax_pps = \
         \"20\"\n[interceptors]\ningress = [\"throttle\"]\negress = []\n",
        throttle.display()
    );
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let peers: Vec<(Peer, Peer)> = (0..2).map(|_| (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"))).collect();
    let ssrcs = [0x7468_0001u32, 0x7468_0002];
    for (index, (publisher, subscriber)) in peers.iter().enumerate() {
        route(&api, &format!("v{index}"), ssrcs[index], publisher, &[(&format!("sub{index}"), subscriber, None)]);
    }
    for (index, (publisher, subscriber)) in peers.iter().enumerate() {
        let took = send(publisher, ssrcs[index], 100, daemon.media[0]);
        assert!(took < Duration::from_millis(500), "the burst took {took:?}: not within one window");
        let expected: Vec<Vec<u8>> = (0..20).map(|seq| packet(ssrcs[index], seq)).collect();
        let got = received(subscriber, expected.len());
        assert_eq!(got.len(), 20, "stream {index}: received {} packets, the cap is 20 per stream", got.len());
        assert!(got == expected, "stream {index}: not the burst's first 20 packets unchanged");
    }
    let labels = [("plugin", "throttle")];
    assert_eq!(plugin_counter(&daemon, "ringfwd_plugin_drops_total", &labels, 160.0), 160.0);
    assert_eq!(plugin_counter(&daemon, "ringfwd_plugin_calls_total", &labels, 200.0), 200.0);
    assert_eq!(plugin_counter(&daemon, "ringfwd_plugin_instances", &labels, 1.0), 1.0, "one worker, one instance");
    let metrics = daemon.metrics.expect("metrics");
    assert_eq!(sample(metrics, "ringfwd_plugin_faults_total", &[("plugin", "throttle"), ("kind", "trap")]), Some(0.0));
    let mut drops = 0;
    wait_until(WAIT, || {
        drops = worker_total(&api.node(), "drop_plugin");
        drops >= 160
    });
    assert_eq!(drops, 160, "the workers count the plugin's drops under the reason plugin");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!((exit.total("forwarded_packets"), exit.total("plugin_failures")), (40, 0));
}

#[test]
fn the_c_remb_plugin_tells_the_publisher_its_bitrate_through_the_emit_import_and_a_timer() {
    use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    let remb = modules.path().join("remb.wasm");
    let config = format!(
        "{MEDIA}[[plugins]]\nname = \"remb\"\npath = \"{}\"\nchains = [\"ingress\"]\n[plugins.params]\npercent = \
         \"50\"\nsender_ssrc = \"1919249762\"\n[interceptors]\ningress = [\"remb\"]\negress = []\n",
        remb.display()
    );
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let ssrc = 0x7265_6d62;
    route(&api, "v", ssrc, &publisher, &[("sub", &subscriber, None)]);
    let took = send(&publisher, ssrc, 100, daemon.media[0]);
    assert!(took < Duration::from_millis(500), "the burst took {took:?}: not within one period");
    assert_eq!(received(&subscriber, 100).len(), 100, "every packet continues");

    // One second after the first packet: 100 packets of 172 bytes in that second, at 50 %. ringfwd itself sends the
    // publisher RTCP too (a PLI for the new video subscriber, with a receiver report): the REMB is the plugin's.
    let rembs = |got: Vec<Vec<u8>>| -> Vec<ReceiverEstimatedMaximumBitrate> {
        got.iter()
            .flat_map(|datagram| {
                rtcp::packet::unmarshal(&mut &datagram[..]).expect("RTCP the publisher's stack parses")
            })
            .filter_map(|p| p.as_any().downcast_ref::<ReceiverEstimatedMaximumBitrate>().cloned())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut found = Vec::new();
    while found.is_empty() && Instant::now() < deadline {
        found = rembs(publisher.recv(1, deadline.saturating_duration_since(Instant::now())));
    }
    assert_eq!(found.len(), 1, "the publisher got no REMB from the plugin");
    let remb = &found[0];
    assert_eq!(remb.sender_ssrc, 1_919_249_762, "the sender_ssrc parameter");
    assert_eq!(remb.ssrcs, [ssrc], "about the publisher's stream");
    assert_eq!(remb.bitrate, (100 * 172 * 8 / 2) as f32, "the measured bitrate at percent = 50");
    assert!(rembs(publisher.drain(Duration::from_millis(1500))).is_empty(), "an idle stream gets no further REMB");
    let metrics = daemon.metrics.expect("metrics");
    assert_eq!(sample(metrics, "ringfwd_plugin_emitted_total", &[("plugin", "remb")]), Some(1.0));
    assert_eq!(
        sample(metrics, "ringfwd_plugin_calls_total", &[("plugin", "remb")]),
        Some(101.0),
        "100 packets, 1 timer"
    );
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}

#[test]
fn the_api_attaches_a_plugin_to_a_live_subscription_or_stream_and_detaches_it_losing_nothing_elsewhere() {
    let dir = tempfile::tempdir().expect("a directory");
    let drop_all = write(dir.path(), "drop_all.wat", &wat("(i32.const 1)"));
    let config = format!("{MEDIA}[[plugins]]\nname = \"drop_all\"\npath = \"{drop_all}\"\n");
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let (publisher, changed, steady) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let ssrc = 0x6c69_7665;
    route(&api, "v", ssrc, &publisher, &[("changed", &changed, None), ("steady", &steady, None)]);
    let chain = |names: &[&str]| v1::UpdateSubscriptionRequest {
        session_id: "s".into(),
        subscription_id: "changed".into(),
        interceptors: Some(v1::InterceptorChain { names: names.iter().map(|n| n.to_string()).collect() }),
        ..Default::default()
    };
    // Three bursts of 50: before, while and after the plugin is on `changed`'s chain.
    let burst = |first: u16| -> Vec<Vec<u8>> {
        for seq in first..first + 50 {
            publisher.send(&packet(ssrc, seq), daemon.media[0]);
        }
        (first..first + 50).map(|seq| packet(ssrc, seq)).collect()
    };
    // `steady` gets every burst whole (no loss, in order); once it has one, `changed` has had its copies too.
    let mut steady_got = Vec::new();
    let before = burst(0);
    steady_got.extend(steady.recv(50, WAIT));
    assert!(received(&changed, 50) == before, "no plugin yet: every packet");
    let attached = api.update_subscription(chain(&["drop_all"])).expect("attach");
    assert_eq!(attached.interceptors, ["drop_all"]);
    burst(50);
    steady_got.extend(steady.recv(50, WAIT));
    assert!(changed.drain(Duration::from_millis(300)).is_empty(), "attached: the plugin drops every packet");
    let detached = api.update_subscription(chain(&[])).expect("detach");
    assert!(detached.interceptors.is_empty());
    let after = burst(100);
    steady_got.extend(received(&steady, 50));
    assert!(received(&changed, 50) == after, "detached: every packet again");
    let all: Vec<Vec<u8>> = (0..150).map(|seq| packet(ssrc, seq)).collect();
    assert!(steady_got == all, "the other subscription of the stream lost nothing, in order");

    // The same on the live stream's ingress chain: attached, no subscriber gets the burst; detached, both do.
    let stream_chain = |names: &[&str]| v1::UpdateStreamRequest {
        session_id: "s".into(),
        stream_id: "v".into(),
        interceptors: Some(v1::InterceptorChain { names: names.iter().map(|n| n.to_string()).collect() }),
        ..Default::default()
    };
    let attached = api.update_stream(stream_chain(&["stats", "drop_all"])).expect("attach to the stream");
    assert_eq!(attached.interceptors, ["stats", "drop_all"]);
    burst(150);
    assert!(steady.drain(Duration::from_millis(300)).is_empty(), "attached on ingress: nothing for anyone");
    assert!(changed.drain(Duration::from_millis(50)).is_empty());
    let detached = api.update_stream(stream_chain(&["stats"])).expect("detach from the stream");
    assert_eq!(detached.interceptors, ["stats"]);
    let last = burst(200);
    assert!(received(&steady, 50) == last && received(&changed, 50) == last, "detached: both get every packet");

    let metrics = daemon.metrics.expect("metrics");
    assert_eq!(plugin_counter(&daemon, "ringfwd_plugin_drops_total", &[("plugin", "drop_all")], 100.0), 100.0);
    assert_eq!(sample(metrics, "ringfwd_plugin_calls_total", &[("plugin", "drop_all")]), Some(100.0));
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.total("drop_plugin"), 100);
}

/// A module with the ABI's exports whose `on_rtp` counts its calls in `$calls` and then runs `body`.
fn wat(body: &str) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    {body}))"#
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the module");
    path.display().to_string()
}

#[test]
fn a_trap_and_an_endless_loop_disable_their_instances_and_packets_take_each_plugin_failure_path() {
    let dir = tempfile::tempdir().expect("a directory");
    let trap = write(
        dir.path(),
        "trap.wat",
        &wat("(if (i32.eq (global.get $calls) (i32.const 5)) (then unreachable)) (i32.const 0)"),
    );
    let spin = write(
        dir.path(),
        "spin.wat",
        &wat("(if (i32.eq (global.get $calls) (i32.const 3)) (then (loop $forever (br $forever)))) (i32.const 0)"),
    );
    let config = format!(
        "{MEDIA}[[plugins]]\nname = \"trap_fifth\"\npath = \"{trap}\"\nchains = [\"ingress\"]\n\
         [[plugins]]\nname = \"spin_third\"\npath = \"{spin}\"\nchains = [\"egress\"]\non_failure = \"drop\"\n\
         fuel_per_call = 100000\n[interceptors]\ningress = [\"trap_fifth\"]\negress = []\n"
    );
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let (publisher, open, closed) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let ssrc = 0x7472_6170;
    route(&api, "v", ssrc, &publisher, &[("open", &open, None), ("closed", &closed, Some(&["spin_third"]))]);
    send(&publisher, ssrc, 30, daemon.media[0]);

    let all: Vec<Vec<u8>> = (0..30).map(|seq| packet(ssrc, seq)).collect();
    assert!(received(&open, all.len()) == all, "fail-open after the trap: the stream goes on, every packet unchanged");
    let first_two: Vec<Vec<u8>> = all[..2].to_vec();
    assert!(received(&closed, 2) == first_two, "fail-closed after running out of fuel: only the first two");

    let trap_labels = [("plugin", "trap_fifth"), ("kind", "trap")];
    assert_eq!(plugin_counter(&daemon, "ringfwd_plugin_faults_total", &trap_labels, 1.0), 1.0);
    let fuel_labels = [("plugin", "spin_third"), ("kind", "out_of_fuel")];
    assert_eq!(plugin_counter(&daemon, "ringfwd_plugin_faults_total", &fuel_labels, 1.0), 1.0);
    let path = "ringfwd_plugin_failure_path_total";
    assert_eq!(plugin_counter(&daemon, path, &[("plugin", "trap_fifth")], 25.0), 25.0, "packets 6..=30");
    assert_eq!(plugin_counter(&daemon, path, &[("plugin", "spin_third")], 27.0), 27.0, "packets 4..=30");
    assert_eq!(plugin_counter(&daemon, "ringfwd_plugin_calls_total", &[("plugin", "spin_third")], 3.0), 3.0);

    // Each fault is a lifecycle event naming the plugin, the chain's stream (and subscription) and the fault.
    let disabled = |plugin: &'static str| {
        api.wait_event("s", WAIT, |kind| match kind {
            v1::event::Kind::PluginDisabled(d) if d.plugin == plugin => Some(d.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no plugin_disabled event for {plugin}"))
    };
    let trapped = disabled("trap_fifth");
    assert_eq!((trapped.fault.as_str(), trapped.stream_id.as_str()), ("trap", "v"));
    assert_eq!((trapped.endpoint_id.as_str(), trapped.subscription_id.as_str()), ("v_pub", ""));
    let spun = disabled("spin_third");
    assert_eq!((spun.fault.as_str(), spun.stream_id.as_str()), ("out_of_fuel", "v"));
    assert_eq!((spun.subscription_id.as_str(), spun.subscriber_endpoint_id.as_str()), ("closed", "closed"));

    // What an operator sees: `ringfwd ctl plugin list`, as a table and as JSON (GetNodeInfo's plugins).
    let token = dev_token(&daemon);
    let table = ctl_ok(&daemon, &token, &["plugin", "list"]);
    for word in ["trap_fifth", "spin_third", "wasm", "ingress", "egress", "forward", "drop", "1 / 1", &trap, &spin] {
        assert!(table.contains(word), "{word:?} not in\n{table}");
    }
    let listed = parse_json(&ctl_ok(&daemon, &token, &["--json", "plugin", "list"]));
    let plugin =
        |name: &str| listed.as_array().and_then(|all| all.iter().find(|p| p["name"] == name)).cloned().expect("listed");
    let (trapped, spun) = (plugin("trap_fifth"), plugin("spin_third"));
    assert_eq!((trapped["kind"].as_str(), trapped["onFailure"].as_str()), (Some("wasm"), Some("forward")));
    assert_eq!(trapped["counters"]["traps"], "1", "{trapped}");
    assert_eq!(trapped["counters"]["calls"], "5", "{trapped}");
    assert_eq!((spun["chains"][0].as_str(), spun["onFailure"].as_str()), (Some("egress"), Some("drop")));
    assert_eq!(spun["counters"]["out_of_fuel"], "1", "{spun}");
    assert_eq!(spun["fuelPerCall"], "100000", "{spun}");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert!(
        exit.stderr.contains("WebAssembly plugin disabled on this worker"),
        "each fault is logged: {}",
        exit.stderr
    );
    assert_eq!(exit.total("plugin_failures"), 2, "one per disabled instance");
    assert_eq!(exit.total("drop_plugin"), 28, "the spinning call's packet and the 27 after it");
    assert_eq!(exit.total("forwarded_packets"), 32);
}

#[test]
fn a_module_that_does_not_fit_the_abi_is_refused_naming_its_key_and_why() {
    let dir = tempfile::tempdir().expect("a directory");
    let no_rtp = write(
        dir.path(),
        "no_rtp.wat",
        r#"(module (memory (export "memory") 1)
             (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
             (func (export "ringfwd_packet_buffer") (result i32) (i32.const 0)))"#,
    );
    let importing = write(dir.path(), "import.wat", r#"(module (import "wasi_snapshot_preview1" "fd_write" (func)))"#);
    let missing = dir.path().join("missing.wasm").display().to_string();
    for (path, words) in [
        (&no_rtp, vec!["plugins[0].path", "no_rtp.wat", "it does not export on_rtp (ABI v1)"]),
        (
            &importing,
            vec!["plugins[0].path", "it imports wasi_snapshot_preview1.fd_write", "which ABI v1 does not provide"],
        ),
        (&missing, vec!["plugins[0].path", "cannot read it"]),
    ] {
        let config = format!("{MEDIA}[[plugins]]\nname = \"bad\"\npath = \"{path}\"\n");
        let stderr = Daemon::start_refused(&config);
        for word in &words {
            assert!(stderr.contains(word), "start: {word:?} not in {stderr:?}");
        }
        let (ok, _, stderr) = run_to_exit(&["--check-config"], Some(&config));
        assert!(!ok, "--check-config accepted {path}");
        for word in &words {
            assert!(stderr.contains(word), "--check-config: {word:?} not in {stderr:?}");
        }
    }
    let good = write(dir.path(), "good.wat", &wat("(i32.const 0)"));
    let config = format!("{MEDIA}[[plugins]]\nname = \"good\"\npath = \"{good}\"\n");
    let (ok, stdout, stderr) = run_to_exit(&["--check-config"], Some(&config));
    assert!(ok && stdout.contains("WebAssembly plugins loaded: 1"), "{stdout}{stderr}");
    // Named in a chain it may not join: refused as an unknown name there.
    let config = format!(
        "{MEDIA}[[plugins]]\nname = \"egress_only\"\npath = \"{good}\"\nchains = [\"egress\"]\n[interceptors]\ningress = \
         [\"egress_only\"]\n"
    );
    let stderr = Daemon::start_refused(&config);
    assert!(stderr.contains("interceptors.ingress[0]") && stderr.contains("egress_only"), "{stderr}");
}
