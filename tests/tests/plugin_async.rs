//! An async WebAssembly plugin whose queue overflows, run by the plain `ringfwd` binary: a plugin that spins through
//! a few milliseconds of work per packet, on its own thread with a queue of 4 and `async_pass = "consume"`, gets a
//! burst of 200 packets on one stream while a second stream on the same worker, without the plugin, gets a burst
//! too. The worker never waits for the plugin: the second stream's subscriber receives every packet, byte for byte;
//! the copies that found the queue full are counted (the plugin's `async_queue_full`, its Prometheus family, the
//! worker's `drop_plugin`), and every packet is counted exactly once as queued or dropped.
//!
//! Loaded over the API in async mode (`LoadPlugin` with `mode = "async"`), a plugin that injects each copy back into
//! its stream is attached to a live stream: its subscriber receives every packet, byte for byte, from the plugin's
//! thread; detached and unloaded, the thread is gone from the process and the stream goes on untouched.
//! `ringfwd ctl plugin load --mode async` does the same (its flags, `plugin list`'s MODE column, the JSON fields),
//! and refuses an async flag without `--mode async`, naming it.

use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{
    ctl, ctl_ok, dev_token, endpoint, parse_json, subscription, video_stream, wait_until, worker_total, Api,
};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtp_packet, Peer};
use ringfwd_tests::scrape::sample;
use ringfwd_tests::wasm::echo;

const SLOW_SSRC: u32 = 0x736c_6f77;
const FAST_SSRC: u32 = 0x6661_7374;
const BURST: u16 = 200;
const QUEUE: u64 = 4;

/// About a million instructions per packet (a few milliseconds), then continue.
const SLOW: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32) (local $i i32)
    (local.set $i (i32.const 1000000))
    (loop $spin (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br_if $spin (local.get $i)))
    (i32.const 0)))"#;

/// The daemon's threads called `name`.
fn threads_named(daemon: &Daemon, name: &str) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", daemon.pid())).expect("tasks");
    tasks
        .filter_map(Result::ok)
        .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name))
        .count()
}

fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
    rtp_packet(ssrc, seq, u32::from(seq) * 3000, 96, false, &[seq as u8; 160])
}

#[test]
fn a_full_async_queue_drops_and_counts_while_the_worker_forwards_the_rest_without_waiting() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let module = dir.path().join("slow.wat");
    std::fs::write(&module, SLOW).expect("the module");
    let config = format!(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[[plugins]]\nname = \"slow\"\npath = \
         \"{}\"\nchains = [\"ingress\"]\nfuel_per_call = 10000000\nmode = \"async\"\nasync_queue_packets = {QUEUE}\n\
         async_pass = \"consume\"\n[interceptors]\ningress = []\negress = []\n",
        module.display()
    );
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let (publisher, slow_sub, fast_sub) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api.create_endpoint(endpoint("s", "pub", publisher.addr())).expect("publisher");
    let mut slow = video_stream("s", "slow", "pub", SLOW_SSRC);
    slow.interceptors = Some(v1::InterceptorChain { names: vec!["slow".into()] });
    api.create_stream(slow).expect("the stream through the plugin");
    api.create_stream(video_stream("s", "fast", "pub", FAST_SSRC)).expect("the stream without it");
    api.create_endpoint(endpoint("s", "slow_sub", slow_sub.addr())).expect("subscriber");
    api.create_endpoint(endpoint("s", "fast_sub", fast_sub.addr())).expect("subscriber");
    api.create_subscription(subscription("s", "a", "slow", "slow_sub", SLOW_SSRC)).expect("subscription");
    api.create_subscription(subscription("s", "b", "fast", "fast_sub", FAST_SSRC)).expect("subscription");

    for seq in 0..BURST {
        publisher.send(&packet(SLOW_SSRC, seq), daemon.media[0]);
        publisher.send(&packet(FAST_SSRC, seq), daemon.media[0]);
    }
    let mut got = fast_sub.recv(usize::from(BURST), Duration::from_secs(5));
    got.extend(fast_sub.drain(Duration::from_millis(200)));
    got.retain(|datagram| !(200..=204).contains(&datagram[1]));
    let expected: Vec<Vec<u8>> = (0..BURST).map(|seq| packet(FAST_SSRC, seq)).collect();
    assert_eq!(got.len(), expected.len(), "the stream without the plugin lost nothing");
    assert!(got == expected, "byte for byte, in order");
    let rtp_to_slow =
        slow_sub.drain(Duration::from_millis(100)).iter().filter(|d| !(200..=204).contains(&d[1])).count();
    assert_eq!(rtp_to_slow, 0, "async_pass = consume: the chain stops every packet of the slow stream");

    let counters = |api: &Api| -> (u64, u64) {
        let info = api.node();
        let plugin = info.plugins.iter().find(|p| p.name == "slow").expect("listed").clone();
        let counter = |name: &str| plugin.counters.get(name).copied().unwrap_or_default();
        (counter("async_queued"), counter("async_queue_full"))
    };
    let mut seen = (0, 0);
    wait_until(Duration::from_secs(5), || {
        seen = counters(&api);
        seen.0 + seen.1 == u64::from(BURST)
    });
    let (queued, full) = seen;
    assert_eq!(queued + full, u64::from(BURST), "each packet counted once, queued or full");
    assert!(full >= u64::from(BURST) / 2, "a queue of {QUEUE} at a few ms per packet: {full} of {BURST} found it full");
    let mut dropped = 0;
    wait_until(Duration::from_secs(5), || {
        dropped = worker_total(&api.node(), "drop_plugin");
        dropped == full
    });
    assert_eq!(dropped, full, "with consume, a packet whose copy found the queue full is dropped under plugin");
    let metrics = daemon.metrics.expect("the daemon serves metrics");
    let family = sample(metrics, "ringfwd_plugin_async_queue_full_total", &[("plugin", "slow")]);
    assert_eq!(family, Some(full as f64));
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}

#[test]
fn an_async_plugin_loaded_over_the_api_runs_on_its_thread_until_unloaded() {
    let daemon = Daemon::start("[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n");
    let api = Api::dev(&daemon);
    let load = v1::LoadPluginRequest {
        name: "echo".into(),
        module: Some(v1::load_plugin_request::Module::ModuleBytes(echo(0).into_bytes())),
        chains: vec!["ingress".into()],
        mode: "async".into(),
        async_pass: "consume".into(),
        ..Default::default()
    };
    api.load_plugin(load).expect("loaded in async mode");
    assert!(wait_until(Duration::from_secs(5), || threads_named(&daemon, "plugin-echo") == 1), "its thread runs");
    api.session("s").expect("session");
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api.create_endpoint(endpoint("s", "pub", publisher.addr())).expect("publisher");
    let mut stream = video_stream("s", "v", "pub", SLOW_SSRC);
    stream.interceptors = Some(v1::InterceptorChain { names: vec!["echo".into()] });
    api.create_stream(stream).expect("a stream through the plugin");
    api.create_endpoint(endpoint("s", "sub", subscriber.addr())).expect("subscriber");
    api.create_subscription(subscription("s", "a", "v", "sub", SLOW_SSRC)).expect("subscription");

    // The next RTP packet the subscriber receives (RTCP skipped), within 5 s.
    let next_rtp = || -> Option<Vec<u8>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let datagram = subscriber.recv(1, left).into_iter().next()?;
            if !(200..=204).contains(&datagram[1]) {
                return Some(datagram);
            }
        }
    };
    for seq in 0..50 {
        publisher.send(&packet(SLOW_SSRC, seq), daemon.media[0]);
        assert_eq!(
            next_rtp(),
            Some(packet(SLOW_SSRC, seq)),
            "packet {seq} came back from the plugin's thread, unchanged"
        );
    }
    let info = api.node();
    let plugin = info.plugins.iter().find(|p| p.name == "echo").expect("listed");
    assert_eq!((plugin.mode.as_str(), plugin.async_pass.as_str()), ("async", "consume"));
    assert_eq!(plugin.counters.get("injected"), Some(&50), "{:?}", plugin.counters);

    let detach = v1::UpdateStreamRequest {
        session_id: "s".into(),
        stream_id: "v".into(),
        interceptors: Some(v1::InterceptorChain { names: Vec::new() }),
        ..Default::default()
    };
    api.update_stream(detach).expect("detached");
    api.unload_plugin(v1::UnloadPluginRequest { name: "echo".into() }).expect("unloaded");
    assert!(wait_until(Duration::from_secs(5), || threads_named(&daemon, "plugin-echo") == 0), "its thread stopped");
    for seq in 50..60 {
        publisher.send(&packet(SLOW_SSRC, seq), daemon.media[0]);
        assert_eq!(next_rtp(), Some(packet(SLOW_SSRC, seq)), "packet {seq} forwarded without the plugin");
    }

    // The same through `ringfwd ctl`: the async flags, the MODE column, the JSON fields, and an async flag without
    // `--mode async` refused, naming it.
    let token = dev_token(&daemon);
    let dir = tempfile::tempdir().expect("a directory");
    let file = dir.path().join("echo.wat");
    std::fs::write(&file, echo(0)).expect("written");
    let file = file.to_str().expect("a UTF-8 path");
    let refused =
        ctl(&daemon, &token, &["plugin", "load", "--name", "late", "--module-file", file, "--async-pass", "consume"]);
    assert!(!refused.success && refused.stderr.contains("async_pass"), "{refused:?}");
    let loaded = parse_json(&ctl_ok(
        &daemon,
        &token,
        &[
            "--json",
            "plugin",
            "load",
            "--name",
            "late",
            "--module-file",
            file,
            "--mode",
            "async",
            "--async-queue-packets",
            "8",
            "--async-wake-delay-us",
            "500",
        ],
    ));
    assert_eq!((loaded["mode"].as_str(), loaded["asyncPass"].as_str()), (Some("async"), Some("forward")), "{loaded}");
    assert_eq!((loaded["asyncQueuePackets"].as_u64(), loaded["asyncWakeDelayUs"].as_u64()), (Some(8), Some(500)));
    let table = ctl_ok(&daemon, &token, &["plugin", "list"]);
    assert!(table.contains("async/forward q8 +500us"), "{table}");
    assert!(wait_until(Duration::from_secs(5), || threads_named(&daemon, "plugin-late") == 1), "its thread runs");
    ctl_ok(&daemon, &token, &["plugin", "unload", "late"]);
    assert!(wait_until(Duration::from_secs(5), || threads_named(&daemon, "plugin-late") == 0), "its thread stopped");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}
