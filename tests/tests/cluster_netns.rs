//! Relaying across hosts that cannot all reach each other: three nodes, each in a network namespace the test creates
//! (its own address on a bridge of the test's), Redis on the bridge, and the route between A and C cut (a blackhole
//! on both sides) before C's viewer subscribes.
//!
//! What it proves: C's Sub to A fails (the route is gone: no acknowledgement), and C, with no rule in its config,
//! asks B, which reaches both, to relay: the viewer on C receives every packet the camera sent to A, byte for byte,
//! through B; C's copy names B as its publisher, B's names A. Needs root (CAP_NET_ADMIN) for the namespaces; as
//! another user the test says it is skipped.

use std::time::{Duration, Instant};

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, mint_token, subscription, video_stream, wait_until, Api};
use ringfwd_tests::daemon::{binary, Daemon};
use ringfwd_tests::netns::Lab;
use ringfwd_tests::peer::{rtp_packet, Peer};
use ringfwd_tests::redis::{ensure_redis, Redis};

const WAIT: Duration = Duration::from_secs(5);
const SSRC: u32 = 0x7e1a_0777;
const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Node `id` on host `host` of `lab`: every address on the host's own, the shared key, `redis`'s directory.
fn node_config(lab: &Lab, host: usize, id: &str, redis: &Redis, dir: &std::path::Path) -> String {
    let ip = lab.host_ip(host);
    let token = dir.join(format!("{id}.dev-token")).display().to_string();
    format!(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"{ip}:0\"]\n[api]\nlisten = \"{ip}:0\"\nallow_plaintext = true\n\
         [metrics]\nlisten = \"{ip}:0\"\n[auth]\ndev_token_file = {token:?}\n[[auth.keys]]\nid = \"lab\"\n\
         secret_base64 = \"{SECRET}\"\n[cluster]\ndirectory = \"redis\"\nredis_url = \"{}\"\nnamespace = \"t\"\n\
         node_id = \"{id}\"\nheartbeat_ms = 100\nlease_ms = 500\n",
        redis.url()
    )
}

#[test]
fn a_node_cut_off_from_the_origin_gets_the_stream_through_a_node_that_reaches_both() {
    if !running_as_root() {
        println!("skipped: network namespaces need root");
        return;
    }
    if !ensure_redis() {
        return;
    }
    let lab = Lab::create(3).unwrap_or_else(|e| panic!("the test's network namespaces: {e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start_bound(dir.path(), lab.bridge_ip());
    let mut nodes = Vec::new();
    for (host, id) in ["a", "b", "c"].into_iter().enumerate() {
        let config = node_config(&lab, host, id, &redis, dir.path());
        let path = dir.path().join(format!("{id}.toml"));
        std::fs::write(&path, &config).expect("write a config");
        let daemon = Daemon::start_program(&lab.wrapper(host, &binary()), &config, &[])
            .unwrap_or_else(|stderr| panic!("node {id} did not start in its namespace:\n{stderr}"));
        let api = Api::connect(daemon.api, Some(&mint_token(&path, "admin", "10m")));
        nodes.push((daemon, api));
    }
    let (api_a, api_b, api_c) = (&nodes[0].1, &nodes[1].1, &nodes[2].1);
    let media_a = nodes[0].0.media[0];
    assert_eq!(media_a.ip(), lab.host_ip(0), "a's media address is on its own host");

    // The camera and the viewer are on the test's bridge; A and C cannot reach each other.
    let (camera, viewer) = (Peer::bind(&lab.bridge_ip().to_string()), Peer::bind(&lab.bridge_ip().to_string()));
    lab.cut(0, 2).expect("cut a and c apart");
    api_a.session("s").expect("session on a");
    api_a.create_endpoint(endpoint("s", "cam", camera.addr())).expect("camera");
    api_a.create_stream(video_stream("s", "v", "cam", SSRC)).expect("stream on a");
    let located = || api_c.locate_stream(v1::LocateStreamRequest { session_id: "s".into(), stream_id: "v".into() });
    assert!(wait_until(WAIT, || located().is_ok()), "c locates v on a");

    api_c.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer on c");
    let asked = Instant::now();
    api_c.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on c");
    println!("c subscribed through b in {:?} (a cannot be reached)", asked.elapsed());
    let publisher = |api: &Api| {
        api.get_stream(v1::GetStreamRequest { session_id: "s".into(), stream_id: "v".into() }).map(|s| s.endpoint_id)
    };
    assert_eq!(publisher(api_c).expect("v on c"), "~b", "c gets v from b");
    assert_eq!(publisher(api_b).expect("v on b"), "~a", "b gets v from a");

    let sent: Vec<Vec<u8>> =
        (0..40u16).map(|i| rtp_packet(SSRC, 100 + i, 3000 * u32::from(i), 96, false, &[i as u8; 120])).collect();
    for packet in &sent {
        camera.send(packet, media_a);
    }
    assert_eq!(viewer.recv_rtp(sent.len(), WAIT), sent, "a -> b -> c byte for byte, around the cut");

    for (daemon, _) in nodes {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}
