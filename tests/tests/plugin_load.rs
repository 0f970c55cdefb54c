//! WebAssembly plugins loaded and unloaded while the daemon runs (`LoadPlugin`, `UnloadPlugin`, `ringfwd ctl plugin
//! load|unload`).
//!
//! A module loaded by path and one sent as bytes are listed and act in the chains that name them right after the
//! load, on every worker; unloading is refused while a chain names the plugin (naming the stream), succeeds once it
//! is detached, and takes the plugin out of the list and its families out of the metrics. Under traffic on two
//! workers, detaching and unloading a plugin from one stream loses nothing of another stream, and the stream it
//! left gets every packet from then on. Bad requests are refused naming the field; names taken are ALREADY_EXISTS; a
//! config plugin cannot be unloaded. A plugin the API loaded comes back after a restart, before the stream that
//! names it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{
    ctl, ctl_ok, dev_token, endpoint, expect_status, parse_json, subscription, video_stream, wait_until, Api,
};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtp_packet, Peer};
use ringfwd_tests::scrape::sample;
use tonic::Code;

const ONE_WORKER: &str = "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n";
const TWO_WORKERS: &str = "[placement]\nworker_cores = [0, 1]\n[media]\naddresses = [\"127.0.0.1:0\"]\n";
const WAIT: Duration = Duration::from_secs(5);

fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
    rtp_packet(ssrc, seq, u32::from(seq) * 3000, 96, false, &[seq as u8; 160])
}

fn seq_of(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[2], packet[3]])
}

/// A module with the ABI's exports whose `on_rtp` answers `verdict` (WAT, with `$ext_seq` the extended sequence
/// number).
fn wat(verdict: &str) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param i32 i32 i32) (param $ext_seq i64) (param i64) (result i32)
    {verdict}))"#
    )
}

/// Drops packets with an odd sequence number.
fn drop_odd() -> String {
    wat("(i32.wrap_i64 (i64.and (local.get $ext_seq) (i64.const 1)))")
}

/// Drops every packet.
fn drop_all() -> String {
    wat("(i32.const 1)")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the module");
    path.display().to_string()
}

/// Creates stream `stream` (SSRC `ssrc`, ingress chain `ingress`) published by `publisher` in session "s", and a
/// subscriber endpoint and subscription `sub` for it with egress chain `egress` (`None`: the config's).
fn route(api: &Api, stream: &str, ssrc: u32, publisher: &Peer, ingress: &[&str], sub: (&str, &Peer, Option<&[&str]>)) {
    let chain = |names: &[&str]| v1::InterceptorChain { names: names.iter().map(|n| n.to_string()).collect() };
    let publisher_id = format!("{stream}_pub");
    api.create_endpoint(endpoint("s", &publisher_id, publisher.addr())).expect("publisher");
    let request = v1::CreateStreamRequest {
        interceptors: Some(chain(ingress)),
        ..video_stream("s", stream, &publisher_id, ssrc)
    };
    api.create_stream(request).expect("stream");
    let (id, peer, egress) = sub;
    api.create_endpoint(endpoint("s", id, peer.addr())).expect("subscriber");
    let request =
        v1::CreateSubscriptionRequest { interceptors: egress.map(chain), ..subscription("s", id, stream, id, 0) };
    api.create_subscription(request).expect("subscription");
}

/// Sends `seqs` of `ssrc` to `to`; answers the packets sent.
fn send(publisher: &Peer, ssrc: u32, seqs: std::ops::Range<u16>, to: SocketAddr) -> Vec<Vec<u8>> {
    seqs.map(|seq| {
        let p = packet(ssrc, seq);
        publisher.send(&p, to);
        p
    })
    .collect()
}

/// What `peer` receives: `expected` packets, then whatever else comes within 300 ms.
fn received(peer: &Peer, expected: usize) -> Vec<Vec<u8>> {
    let mut got = peer.recv(expected, WAIT);
    got.extend(peer.drain(Duration::from_millis(300)));
    got
}

fn listed(daemon: &Daemon, token: &str) -> serde_json::Value {
    parse_json(&ctl_ok(daemon, token, &["--json", "plugin", "list"]))
}

fn named<'a>(list: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    list.as_array().and_then(|all| all.iter().find(|p| p["name"] == name))
}

#[test]
fn ctl_loads_by_path_and_by_bytes_chains_use_it_at_once_and_unload_waits_for_the_detach() {
    let dir = tempfile::tempdir().expect("a directory");
    let odd_path = write(dir.path(), "drop_odd.wat", &drop_odd());
    let all_file = write(dir.path(), "drop_all.wat", &drop_all());
    let daemon = Daemon::start(TWO_WORKERS);
    let token = dev_token(&daemon);
    let loaded = parse_json(&ctl_ok(
        &daemon,
        &token,
        &[
            "--json", "plugin", "load", "--name", "drop_odd", "--path", &odd_path, "--chains", "ingress", "--param",
            "k=v",
        ],
    ));
    assert_eq!((loaded["name"].as_str(), loaded["source"].as_str()), (Some("drop_odd"), Some("api")), "{loaded}");
    assert_eq!((loaded["path"].as_str(), loaded["chains"][0].as_str()), (Some(odd_path.as_str()), Some("ingress")));
    let loaded = parse_json(&ctl_ok(
        &daemon,
        &token,
        &["--json", "plugin", "load", "--name", "drop_all", "--module-file", &all_file, "--on-failure", "drop"],
    ));
    assert_eq!((loaded["kind"].as_str(), loaded["onFailure"].as_str()), (Some("wasm"), Some("drop")), "{loaded}");
    let list = listed(&daemon, &token);
    for name in ["drop_odd", "drop_all"] {
        assert_eq!(named(&list, name).map(|p| p["source"].clone()), Some("api".into()), "{name} in {list}");
    }
    let table = ctl_ok(&daemon, &token, &["plugin", "list"]);
    assert!(table.contains("drop_odd") && table.contains(&odd_path), "{table}");

    // Right after the load, on both workers (an even and an odd SSRC): drop_odd on two streams' ingress, drop_all on
    // a subscription's egress.
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let peers: Vec<(Peer, Peer)> = (0..3).map(|_| (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"))).collect();
    let ssrcs = [0x6c6f_6100u32, 0x6c6f_6101, 0x6c6f_6102];
    route(&api, "v0", ssrcs[0], &peers[0].0, &["drop_odd"], ("sub0", &peers[0].1, None));
    route(&api, "v1", ssrcs[1], &peers[1].0, &["drop_odd"], ("sub1", &peers[1].1, None));
    route(&api, "v2", ssrcs[2], &peers[2].0, &[], ("sub2", &peers[2].1, Some(&["drop_all"])));
    for (index, (publisher, subscriber)) in peers.iter().enumerate().take(2) {
        let sent = send(publisher, ssrcs[index], 0..20, daemon.media[0]);
        let even: Vec<Vec<u8>> = sent.into_iter().filter(|p| seq_of(p).is_multiple_of(2)).collect();
        assert!(received(subscriber, even.len()) == even, "stream {index}: exactly the even packets");
    }
    send(&peers[2].0, ssrcs[2], 0..20, daemon.media[0]);
    assert!(peers[2].1.drain(Duration::from_millis(300)).is_empty(), "drop_all on the egress chain: nothing");

    // Unloading is refused while a chain names it, and names each chain.
    let refused = ctl(&daemon, &token, &["plugin", "unload", "drop_odd"]);
    assert!(!refused.success, "{refused:?}");
    for word in ["FailedPrecondition", "stream s/v0 ingress", "stream s/v1 ingress"] {
        assert!(refused.stderr.contains(word), "{word:?} not in {:?}", refused.stderr);
    }
    expect_status(
        api.unload_plugin(v1::UnloadPluginRequest { name: "drop_all".into() }),
        Code::FailedPrecondition,
        &["subscription s/sub2 egress"],
    );
    // Detached (`--interceptors` with no names: none), it unloads; the list and the metrics forget it.
    for stream in ["v0", "v1"] {
        let updated =
            parse_json(&ctl_ok(&daemon, &token, &["--json", "stream", "update", "s", stream, "--interceptors"]));
        assert!(updated.get("interceptors").is_none_or(|i| i.as_array().is_some_and(Vec::is_empty)), "{updated}");
    }
    let metrics = daemon.metrics.expect("the daemon serves metrics");
    let calls = |plugin: &str| sample(metrics, "ringfwd_plugin_calls_total", &[("plugin", plugin)]);
    assert!(wait_until(WAIT, || calls("drop_odd") == Some(40.0)), "40 calls counted: {:?}", calls("drop_odd"));
    // Time per call: the first call of each instance (one per worker, 20 calls each) is timed.
    let drop_odd = [("plugin", "drop_odd")];
    assert_eq!(sample(metrics, "ringfwd_plugin_timed_calls_total", &drop_odd), Some(2.0));
    let seconds = sample(metrics, "ringfwd_plugin_call_seconds_total", &drop_odd);
    assert!(seconds.is_some_and(|s| s > 0.0 && s < 0.1), "two calls' time: {seconds:?}");
    let table = ctl_ok(&daemon, &token, &["plugin", "list"]);
    assert!(table.contains("NS/CALL"), "{table}");
    let unloaded = parse_json(&ctl_ok(&daemon, &token, &["--json", "plugin", "unload", "drop_odd"]));
    assert_eq!(unloaded["counters"]["drops"], "20", "its last counters: {unloaded}");
    assert_eq!(unloaded["counters"]["timed_calls"], "2", "{unloaded}");
    let ns_per_call: u64 = unloaded["nsPerCall"].as_str().and_then(|ns| ns.parse().ok()).unwrap_or(0);
    let timed_ns: u64 = unloaded["counters"]["timed_ns"].as_str().and_then(|ns| ns.parse().ok()).unwrap_or(0);
    assert!(ns_per_call > 0 && ns_per_call == timed_ns / 2, "the mean of the two timed calls: {unloaded}");
    let list = listed(&daemon, &token);
    assert!(named(&list, "drop_odd").is_none() && named(&list, "drop_all").is_some(), "{list}");
    assert_eq!(calls("drop_odd"), None, "its families are gone from the metrics");
    assert!(calls("drop_all").is_some());
    for (index, (publisher, subscriber)) in peers.iter().enumerate().take(2) {
        let sent = send(publisher, ssrcs[index], 20..40, daemon.media[0]);
        assert!(received(subscriber, sent.len()) == sent, "stream {index}: every packet once detached");
    }
    // Gone: a chain may no longer name it; loaded again, the name works again.
    let request = v1::CreateStreamRequest {
        interceptors: Some(v1::InterceptorChain { names: vec!["drop_odd".into()] }),
        ..video_stream("s", "v3", "v0_pub", 0x6c6f_6103)
    };
    expect_status(api.create_stream(request.clone()), Code::InvalidArgument, &["drop_odd"]);
    expect_status(
        api.unload_plugin(v1::UnloadPluginRequest { name: "drop_odd".into() }),
        Code::NotFound,
        &["drop_odd"],
    );
    ctl_ok(&daemon, &token, &["plugin", "load", "--name", "drop_odd", "--path", &odd_path]);
    api.create_stream(request).expect("the name is known again");
    // `plugin attach` / `plugin detach` edit a live chain.
    let detached =
        parse_json(&ctl_ok(&daemon, &token, &["--json", "plugin", "detach", "drop_odd", "s", "--stream", "v3"]));
    assert!(detached.get("interceptors").is_none(), "{detached}");
    let attach = ["--json", "plugin", "attach", "drop_all", "s", "--subscription", "sub0"];
    let attached = parse_json(&ctl_ok(&daemon, &token, &attach));
    assert!(attached["interceptors"].as_array().is_some_and(|names| names.contains(&"drop_all".into())), "{attached}");
    let again = ctl(&daemon, &token, &attach);
    assert!(!again.success && again.stderr.contains("already names drop_all"), "{again:?}");
    expect_status(
        api.unload_plugin(v1::UnloadPluginRequest { name: "drop_all".into() }),
        Code::FailedPrecondition,
        &["subscription s/sub0 egress", "subscription s/sub2 egress"],
    );
    assert_eq!(sample(metrics, "ringfwd_plugin_drops_total", &[("plugin", "drop_all")]), Some(20.0));
    let exit = daemon.stop();
    // Worker 1 holds v1 alone (worker 0 also counts v2's packets that no subscription took, as drops).
    assert_eq!(exit.worker(1, "drop_plugin"), 10, "v1's 10 odd packets");
}

#[test]
fn detaching_and_unloading_under_traffic_loses_nothing_of_another_stream() {
    const PACKETS: u16 = 600;
    let dir = tempfile::tempdir().expect("a directory");
    let odd_path = write(dir.path(), "drop_odd.wat", &drop_odd());
    let daemon = Daemon::start(TWO_WORKERS);
    let api = Api::dev(&daemon);
    let load = v1::LoadPluginRequest {
        name: "drop_odd".into(),
        module: Some(v1::load_plugin_request::Module::Path(odd_path)),
        ..Default::default()
    };
    api.load_plugin(load).expect("loaded");
    api.session("s").expect("session");
    let (pub_a, sub_a, pub_b, sub_b) =
        (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    // One stream per worker.
    let (ssrc_a, ssrc_b) = (0x7472_6100u32, 0x7472_6101u32);
    route(&api, "a", ssrc_a, &pub_a, &["drop_odd"], ("sub_a", &sub_a, None));
    route(&api, "b", ssrc_b, &pub_b, &["stats"], ("sub_b", &sub_b, None));

    // Both streams paced at about 1000 packets per second, for a bounded count.
    let sent = Arc::new(AtomicU32::new(0));
    let sender = {
        let (sent, pub_a, pub_b, to) = (Arc::clone(&sent), pub_a.try_clone(), pub_b.try_clone(), daemon.media[0]);
        std::thread::spawn(move || {
            for seq in 0..PACKETS {
                pub_a.send(&packet(ssrc_a, seq), to);
                pub_b.send(&packet(ssrc_b, seq), to);
                sent.store(u32::from(seq) + 1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // Mid-traffic (B's subscriber has a sixth of the packets): detach from A, then unload.
    let early = sub_b.recv(usize::from(PACKETS / 6), WAIT);
    assert_eq!(early.len(), usize::from(PACKETS / 6), "traffic flows");
    let detach = v1::UpdateStreamRequest {
        session_id: "s".into(),
        stream_id: "a".into(),
        interceptors: Some(v1::InterceptorChain { names: Vec::new() }),
        ..Default::default()
    };
    let before_detach = sent.load(Ordering::SeqCst) as u16;
    api.update_stream(detach).expect("detached");
    let detached_at = sent.load(Ordering::SeqCst) as u16;
    api.unload_plugin(v1::UnloadPluginRequest { name: "drop_odd".into() }).expect("unloaded");
    let unloaded_at = sent.load(Ordering::SeqCst) as u16;
    assert!(unloaded_at < PACKETS, "the unload happened under traffic ({unloaded_at} of {PACKETS} sent)");
    sender.join().expect("the sender");

    let mut got_b = early;
    got_b.extend(received(&sub_b, usize::from(PACKETS) - got_b.len()));
    let all_b: Vec<Vec<u8>> = (0..PACKETS).map(|seq| packet(ssrc_b, seq)).collect();
    assert!(got_b == all_b, "stream B lost nothing, in order ({} of {PACKETS})", got_b.len());
    let got_a: Vec<u16> = received(&sub_a, 1).iter().map(|p| seq_of(p)).collect();
    let expected_a = |seq: &u16| seq.is_multiple_of(2) || *seq >= detached_at;
    let missing: Vec<u16> = (0..PACKETS).filter(expected_a).filter(|seq| !got_a.contains(seq)).collect();
    assert!(missing.is_empty(), "stream A: every even packet and every packet after the detach; missing {missing:?}");
    // Packets sent just before the call may still wait in the socket when the worker takes the new chain.
    let attached_until = before_detach.saturating_sub(5);
    let odd_before = got_a.iter().filter(|seq| !seq.is_multiple_of(2) && **seq < attached_until).count();
    assert_eq!(odd_before, 0, "the plugin dropped stream A's odd packets while attached");
    let node = api.node();
    assert!(node.plugins.iter().all(|p| p.name != "drop_odd"), "{:?}", node.plugins);
    eprintln!("detached after {detached_at}, unloaded after {unloaded_at} of {PACKETS} packets");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}

#[test]
fn bad_loads_name_their_field_and_taken_names_and_config_plugins_are_refused() {
    let dir = tempfile::tempdir().expect("a directory");
    let good = write(dir.path(), "good.wat", &wat("(i32.const 0)"));
    let no_rtp = r#"(module (memory (export "memory") 1)
        (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
        (func (export "ringfwd_packet_buffer") (result i32) (i32.const 0)))"#;
    let config = format!("{ONE_WORKER}[[plugins]]\nname = \"from_config\"\npath = \"{good}\"\n");
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    use v1::load_plugin_request::Module;
    let by_path = |name: &str, path: &str| v1::LoadPluginRequest {
        name: name.into(),
        module: Some(Module::Path(path.into())),
        ..Default::default()
    };
    let by_bytes = |name: &str, bytes: &[u8]| v1::LoadPluginRequest {
        name: name.into(),
        module: Some(Module::ModuleBytes(bytes.to_vec())),
        ..Default::default()
    };
    let bad = |request, words: &[&str]| expect_status(api.load_plugin(request), Code::InvalidArgument, words);
    bad(by_path("Bad-Name", &good), &["name", "Bad-Name"]);
    bad(by_path("stats", &good), &["name", "built-in"]);
    bad(by_path("rel", "plugins/good.wat"), &["path", "absolute"]);
    bad(by_path("missing", "/nonexistent/x.wasm"), &["path", "cannot read it"]);
    bad(by_bytes("junk", b"\0asm not really"), &["module_bytes", "not a valid WebAssembly module"]);
    bad(by_bytes("no_rtp", no_rtp.as_bytes()), &["module_bytes", "on_rtp"]);
    bad(v1::LoadPluginRequest { on_failure: "explode".into(), ..by_path("a", &good) }, &["on_failure"]);
    bad(v1::LoadPluginRequest { fuel_per_call: 1 << 40, ..by_path("a", &good) }, &["fuel_per_call"]);
    bad(v1::LoadPluginRequest { module: None, ..by_path("a", &good) }, &["module"]);
    expect_status(api.load_plugin(by_path("from_config", &good)), Code::AlreadyExists, &["from_config"]);
    api.load_plugin(by_path("twice", &good)).expect("loaded");
    expect_status(api.load_plugin(by_bytes("twice", wat("(i32.const 0)").as_bytes())), Code::AlreadyExists, &["twice"]);
    let unload = |name: &str| api.unload_plugin(v1::UnloadPluginRequest { name: name.into() });
    expect_status(unload("from_config"), Code::FailedPrecondition, &["from_config", "config"]);
    expect_status(unload("nope"), Code::NotFound, &["nope"]);
    unload("twice").expect("unloaded");
    // ctl says what is wrong too.
    let token = dev_token(&daemon);
    let out = ctl(&daemon, &token, &["plugin", "load", "--name", "x", "--path", "relative.wasm"]);
    assert!(!out.success && out.stderr.contains("InvalidArgument") && out.stderr.contains("path"), "{out:?}");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}

#[test]
fn a_plugin_the_api_loaded_comes_back_after_a_restart_before_the_stream_that_names_it() {
    let dir = tempfile::tempdir().expect("a directory");
    let odd_path = write(dir.path(), "drop_odd.wat", &drop_odd());
    let daemon = Daemon::start(ONE_WORKER);
    let api = Api::dev(&daemon);
    use v1::load_plugin_request::Module;
    let by_bytes = v1::LoadPluginRequest {
        name: "odd_bytes".into(),
        module: Some(Module::ModuleBytes(drop_odd().into_bytes())),
        chains: vec!["ingress".into()],
        ..Default::default()
    };
    api.load_plugin(by_bytes).expect("loaded from bytes");
    let by_path = v1::LoadPluginRequest {
        name: "odd_path".into(),
        module: Some(Module::Path(odd_path.clone())),
        ..Default::default()
    };
    api.load_plugin(by_path).expect("loaded from its path");
    api.session("s").expect("session");
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let ssrc = 0x7265_7374;
    route(&api, "v", ssrc, &publisher, &["odd_bytes"], ("sub", &subscriber, None));
    drop(api);
    let (exit, state) = daemon.stop_for_restart();
    assert!(exit.success, "{}", exit.stderr);

    let daemon = Daemon::restart_in(ONE_WORKER, state);
    let api = Api::dev(&daemon);
    let plugins = api.node().plugins;
    let find = |name: &str| plugins.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} in {plugins:?}"));
    assert_eq!(
        (find("odd_bytes").source.as_str(), find("odd_bytes").chains.as_slice()),
        ("api", &["ingress".to_string()][..])
    );
    assert_eq!((find("odd_path").source.as_str(), find("odd_path").path.as_str()), ("api", odd_path.as_str()));
    let stream = api.get_stream(v1::GetStreamRequest { session_id: "s".into(), stream_id: "v".into() }).expect("back");
    assert_eq!(stream.interceptors, ["odd_bytes"]);
    // The subscriber's numbering continues across the restart: a packet is told by its payload (its first seq).
    let sent = send(&publisher, ssrc, 0..20, daemon.media[0]);
    let even: Vec<u8> = sent.iter().map(|p| p[12]).filter(|seq| seq.is_multiple_of(2)).collect();
    let got: Vec<u8> = received(&subscriber, even.len()).iter().map(|p| p[12]).collect();
    assert_eq!(got, even, "the restored plugin acts in the restored chain");
    // Unloaded (detached first), it stays gone after the next restart.
    let detach = v1::UpdateStreamRequest {
        session_id: "s".into(),
        stream_id: "v".into(),
        interceptors: Some(v1::InterceptorChain { names: Vec::new() }),
        ..Default::default()
    };
    api.update_stream(detach).expect("detached");
    api.unload_plugin(v1::UnloadPluginRequest { name: "odd_bytes".into() }).expect("unloaded");
    drop(api);
    let (exit, state) = daemon.stop_for_restart();
    assert!(exit.success, "{}", exit.stderr);
    let daemon = Daemon::restart_in(ONE_WORKER, state);
    let names: Vec<String> = Api::dev(&daemon).node().plugins.into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["odd_path"]);
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}
