//! Per-chain options of a WebAssembly plugin, run by the plain `ringfwd` binary: each chain that names a plugin may
//! set its own failure path, mode and async pass after the name (`trap:on_failure=forward`,
//! `echo:mode=async:async_pass=consume`), in the config's chains and in the API's alike.
//!
//! - Failure path: a plugin loaded fail-closed traps on the packet whose payload starts with 5. One stream's chain
//!   names it plainly, another's with `on_failure=forward`, both on the one worker (one instance). The first stream's
//!   subscriber receives packets 0 to 4 and nothing after (the trap, then the plugin's `drop` path, counted under
//!   `drop_plugin`); the second stream's subscriber then receives all 10 packets byte for byte (its own `forward`
//!   path past the disabled instance).
//! - Mode: a plugin loaded sync that injects each packet back and consumes it runs inline on one stream and on its
//!   thread on another (`mode=async:async_pass=consume`, given out of order and answered in canonical order). Both
//!   subscribers receive every packet byte for byte, once; only the second stream's copies were queued for the
//!   thread, and the plugin has two instances (the worker's and the thread's).
//! - `ringfwd ctl plugin attach --on-failure drop` changes the options in place, `plugin detach` removes the
//!   plugin whatever its options; a bad option, and `mode` on a chain whose plugin cannot take it, are refused
//!   naming `interceptors.names[i]`.

use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{
    ctl, ctl_ok, dev_token, endpoint, expect_status, subscription, video_stream, wait_until, worker_total, Api,
};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtp_packet, Peer};
use ringfwd_tests::wasm::echo;
use tonic::Code;

/// Traps on the packet whose first payload byte (at 1024 + 12 in its buffer) is 5; lets every other one pass.
const TRAP_AT_FIVE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32)
    (if (i32.eq (i32.load8_u (i32.const 1036)) (i32.const 5)) (then unreachable))
    (i32.const 0)))"#;

const A_SSRC: u32 = 0x6161_6161;
const B_SSRC: u32 = 0x6262_6262;

fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
    rtp_packet(ssrc, seq, u32::from(seq) * 3000, 96, false, &[seq as u8; 160])
}

/// A daemon on one worker with the plugin `name` of `module` loaded from the config with `settings` (TOML lines).
fn daemon_with(dir: &tempfile::TempDir, name: &str, module: &str, settings: &str) -> Daemon {
    let path = dir.path().join(format!("{name}.wat"));
    std::fs::write(&path, module).expect("the module");
    Daemon::start(&format!(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[[plugins]]\nname = \"{name}\"\n\
         path = \"{}\"\nchains = [\"ingress\"]\n{settings}\n[interceptors]\ningress = []\negress = []\n",
        path.display()
    ))
}

/// Session `s` with a publisher, and per `(stream, chain, ssrc)` a stream through `chain` and a subscriber of it.
fn streams(api: &Api, chains: &[(&str, &[&str], u32)]) -> (Peer, Vec<Peer>) {
    api.session("s").expect("session");
    let publisher = Peer::bind("127.0.0.1");
    api.create_endpoint(endpoint("s", "pub", publisher.addr())).expect("publisher");
    let mut subscribers = Vec::new();
    for (stream_id, chain, ssrc) in chains {
        let mut stream = video_stream("s", stream_id, "pub", *ssrc);
        stream.interceptors = Some(v1::InterceptorChain { names: chain.iter().map(|n| n.to_string()).collect() });
        api.create_stream(stream).expect("the stream");
        let peer = Peer::bind("127.0.0.1");
        let sub = format!("{stream_id}_sub");
        api.create_endpoint(endpoint("s", &sub, peer.addr())).expect("subscriber");
        api.create_subscription(subscription("s", &format!("{stream_id}_a"), stream_id, &sub, *ssrc))
            .expect("subscription");
        subscribers.push(peer);
    }
    (publisher, subscribers)
}

fn chain_of(api: &Api, stream: &str) -> Vec<String> {
    let request = v1::GetStreamRequest { session_id: "s".into(), stream_id: stream.into() };
    api.get_stream(request).expect("the stream").interceptors
}

#[test]
fn each_chain_takes_its_own_failure_path_past_the_one_disabled_instance() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let daemon = daemon_with(&dir, "trap", TRAP_AT_FIVE, "on_failure = \"drop\"");
    let api = Api::dev(&daemon);
    let chains: [(&str, &[&str], u32); 2] =
        [("closed", &["trap"], A_SSRC), ("open", &["trap:on_failure=forward"], B_SSRC)];
    let (publisher, subscribers) = streams(&api, &chains);
    assert_eq!(chain_of(&api, "open"), ["trap:on_failure=forward"]);

    for seq in 0..10 {
        publisher.send(&packet(A_SSRC, seq), daemon.media[0]);
    }
    let got = subscribers[0].recv_rtp(5, Duration::from_secs(5));
    let expected: Vec<Vec<u8>> = (0..5).map(|seq| packet(A_SSRC, seq)).collect();
    assert!(got == expected, "the plugin's own path (drop) from the trap on: {} packets, not 0 to 4", got.len());
    let mut dropped = 0;
    wait_until(Duration::from_secs(5), || {
        dropped = worker_total(&api.node(), "drop_plugin");
        dropped == 5
    });
    assert_eq!(dropped, 5, "packets 5 to 9 dropped under plugin");

    for seq in 0..10 {
        publisher.send(&packet(B_SSRC, seq), daemon.media[0]);
    }
    let got = subscribers[1].recv_rtp(10, Duration::from_secs(5));
    let expected: Vec<Vec<u8>> = (0..10).map(|seq| packet(B_SSRC, seq)).collect();
    assert!(got == expected, "the chain's own path (forward): all 10, byte for byte; got {}", got.len());
    let info = api.node();
    let plugin = info.plugins.iter().find(|p| p.name == "trap").expect("listed");
    let counter = |name: &str| plugin.counters.get(name).copied().unwrap_or_default();
    assert_eq!((counter("traps"), counter("disabled"), counter("calls")), (1, 1, 6), "{:?}", plugin.counters);
    assert_eq!(counter("failure_path"), 14, "4 packets of the first stream and 10 of the second took a failure path");
    assert_eq!(plugin.on_failure, "drop", "the plugin's own setting is unchanged");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}

#[test]
fn a_plugin_loaded_sync_runs_on_its_thread_for_the_chain_that_says_async() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let daemon = daemon_with(&dir, "echo", &echo(2), "");
    let api = Api::dev(&daemon);
    let chains: [(&str, &[&str], u32); 2] =
        [("inline", &["echo"], A_SSRC), ("offloaded", &["echo:async_pass=consume:mode=async"], B_SSRC)];
    let (publisher, subscribers) = streams(&api, &chains);
    assert_eq!(chain_of(&api, "offloaded"), ["echo:mode=async:async_pass=consume"], "the canonical spelling");

    for seq in 0..20 {
        publisher.send(&packet(A_SSRC, seq), daemon.media[0]);
        publisher.send(&packet(B_SSRC, seq), daemon.media[0]);
    }
    for (subscriber, ssrc) in subscribers.iter().zip([A_SSRC, B_SSRC]) {
        let got = subscriber.recv_rtp(20, Duration::from_secs(5));
        let expected: Vec<Vec<u8>> = (0..20).map(|seq| packet(ssrc, seq)).collect();
        assert!(got == expected, "{ssrc:#x}: each packet once, byte for byte, in order; got {}", got.len());
    }
    let info = api.node();
    let plugin = info.plugins.iter().find(|p| p.name == "echo").expect("listed");
    let counter = |name: &str| plugin.counters.get(name).copied().unwrap_or_default();
    assert_eq!(plugin.mode, "sync", "the plugin's own mode");
    assert_eq!(counter("async_queued"), 20, "only the offloaded stream's copies went to the thread");
    assert_eq!((counter("instances"), counter("injected")), (2, 40), "{:?}", plugin.counters);

    // Refusals name the field and the reason.
    let mut bad = video_stream("s", "bad", "pub", 0x0bad_0bad);
    bad.interceptors = Some(v1::InterceptorChain { names: vec!["echo:mode=later".into()] });
    expect_status(api.create_stream(bad), Code::InvalidArgument, &["interceptors.names[0]", "sync, async"]);
    let twice = v1::UpdateStreamRequest {
        session_id: "s".into(),
        stream_id: "inline".into(),
        interceptors: Some(v1::InterceptorChain { names: vec!["echo".into(), "echo:mode=async".into()] }),
        ..Default::default()
    };
    expect_status(api.update_stream(twice), Code::InvalidArgument, &["interceptors.names[1]", "listed twice"]);

    // ctl: options changed in place, then the plugin detached whatever its options.
    let token = dev_token(&daemon);
    ctl_ok(&daemon, &token, &["plugin", "attach", "echo", "s", "--stream", "inline", "--on-failure", "drop"]);
    assert_eq!(chain_of(&api, "inline"), ["echo:on_failure=drop"]);
    let again = ctl(&daemon, &token, &["plugin", "attach", "echo", "s", "--stream", "inline", "--on-failure", "drop"]);
    assert!(!again.success && again.stderr.contains("already names echo:on_failure=drop"), "{again:?}");
    let refused = ctl(&daemon, &token, &["plugin", "attach", "echo", "s", "--stream", "inline", "--mode", "soon"]);
    assert!(!refused.success && refused.stderr.contains("interceptors.names[0]"), "{refused:?}");
    ctl_ok(&daemon, &token, &["plugin", "detach", "echo", "s", "--stream", "offloaded"]);
    assert!(chain_of(&api, "offloaded").is_empty());
    for seq in 20..25 {
        publisher.send(&packet(B_SSRC, seq), daemon.media[0]);
    }
    let got = subscribers[1].recv_rtp(5, Duration::from_secs(5));
    let expected: Vec<Vec<u8>> = (20..25).map(|seq| packet(B_SSRC, seq)).collect();
    assert!(got == expected, "forwarded plainly once detached; got {}", got.len());
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}
