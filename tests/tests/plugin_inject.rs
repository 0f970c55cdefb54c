//! A plugin that injects packets into its stream (ABI v1 import `inject`), loaded from the config by the plain
//! `ringfwd` binary: a WAT plugin on the stream's ingress chain consumes every packet and injects it back twice.
//! Each subscriber receives every packet exactly twice, byte for byte what was sent under the header its
//! subscription rewrites (one subscription maps the SSRC and the payload type, one rewrites nothing); the plugin's
//! `injected` counter and the workers' count them.

use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{
    ctl_ok, dev_token, endpoint, parse_json, subscription, video_stream, wait_until, worker_total, Api,
};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtp_packet, Peer};
use ringfwd_tests::scrape::sample;

const WAIT: Duration = Duration::from_secs(5);
const SSRC: u32 = 0x696e_6a31;
const COUNT: u16 = 40;

/// Consumes every packet after injecting it twice.
const TWICE: &str = r#"(module
  (import "ringfwd" "inject" (func $inject (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param $len i32) (param i32 i32 i64 i64) (result i32)
    (if (call $inject (i32.const 1024) (local.get $len)) (then unreachable))
    (if (call $inject (i32.const 1024) (local.get $len)) (then unreachable))
    (i32.const 2)))"#;

fn packet(seq: u16) -> Vec<u8> {
    rtp_packet(SSRC, seq, u32::from(seq) * 3000, 96, seq % 10 == 9, &[seq as u8; 160])
}

/// `sent` as subscription rewrites it: SSRC `ssrc` (0: the publisher's), payload type `pt`.
fn rewritten(sent: &[u8], ssrc: u32, pt: u8) -> Vec<u8> {
    let mut copy = sent.to_vec();
    copy[1] = (copy[1] & 0x80) | pt;
    if ssrc != 0 {
        copy[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }
    copy
}

#[test]
fn a_plugin_that_injects_every_packet_twice_reaches_every_subscriber_twice_under_its_rewrite() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("twice.wat");
    std::fs::write(&path, TWICE).expect("write the module");
    let config = format!(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[[plugins]]\nname = \"twice\"\npath \
         = \"{}\"\nchains = [\"ingress\"]\n[interceptors]\ningress = [\"twice\"]\negress = []\n",
        path.display()
    );
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let (publisher, mapped, plain) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api.create_endpoint(endpoint("s", "pub", publisher.addr())).expect("publisher");
    api.create_stream(video_stream("s", "v", "pub", SSRC)).expect("stream");
    api.create_endpoint(endpoint("s", "mapped", mapped.addr())).expect("subscriber");
    api.create_endpoint(endpoint("s", "plain", plain.addr())).expect("subscriber");
    let mapped_ssrc = 0x6d61_7070;
    let request = v1::CreateSubscriptionRequest {
        payload_type_map: vec![v1::PayloadTypeMapping { from: 96, to: 111 }],
        ..subscription("s", "mapped", "v", "mapped", mapped_ssrc)
    };
    api.create_subscription(request).expect("mapped subscription");
    api.create_subscription(subscription("s", "plain", "v", "plain", 0)).expect("plain subscription");

    let sent: Vec<Vec<u8>> = (0..COUNT).map(packet).collect();
    for (index, pkt) in sent.iter().enumerate() {
        publisher.send(pkt, daemon.media[0]);
        if index % 10 == 9 {
            std::thread::sleep(Duration::from_millis(2)); // paced: well inside the socket buffers
        }
    }
    let twice = |copy: &dyn Fn(&[u8]) -> Vec<u8>| -> Vec<Vec<u8>> {
        sent.iter().flat_map(|pkt| [copy(pkt), copy(pkt)]).collect()
    };
    let got = mapped.recv_rtp(2 * usize::from(COUNT), WAIT);
    assert_eq!(got.len(), 2 * usize::from(COUNT), "mapped: every packet twice");
    assert!(got == twice(&|pkt| rewritten(pkt, mapped_ssrc, 111)), "mapped: not each packet twice under its rewrite");
    let got = plain.recv_rtp(2 * usize::from(COUNT), WAIT);
    assert_eq!(got.len(), 2 * usize::from(COUNT), "plain: every packet twice");
    assert!(got == twice(&|pkt| pkt.to_vec()), "plain: not each packet twice, unchanged");

    let metrics = daemon.metrics.expect("the daemon serves metrics");
    let injected = 2.0 * f64::from(COUNT);
    let mut value = 0.0;
    wait_until(WAIT, || {
        value = sample(metrics, "ringfwd_plugin_injected_total", &[("plugin", "twice")]).unwrap_or(0.0);
        value >= injected
    });
    assert_eq!(value, injected, "the plugin's injected counter");
    let token = dev_token(&daemon);
    let listed = parse_json(&ctl_ok(&daemon, &token, &["--json", "plugin", "list"]));
    let twice = listed.as_array().and_then(|all| all.iter().find(|p| p["name"] == "twice")).cloned().expect("listed");
    assert_eq!(twice["counters"]["injected"], (2 * COUNT).to_string(), "{twice}");
    let mut workers = 0;
    wait_until(WAIT, || {
        workers = worker_total(&api.node(), "injected");
        workers >= 2 * u64::from(COUNT)
    });
    assert_eq!(workers, 2 * u64::from(COUNT), "the workers count each injected packet once");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.total("forwarded_packets"), 4 * u64::from(COUNT), "2 copies of each injection");
    assert_eq!(exit.total("consumed_by_interceptor"), u64::from(COUNT));
}
