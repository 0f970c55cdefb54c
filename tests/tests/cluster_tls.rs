//! Relaying between nodes whose control API has TLS (`[api.tls]`), mutual TLS included: each node calls the
//! other's API over TLS, verifies its certificate against `cluster.tls_ca_file`, and presents its own when asked.
//!
//! Real daemons on a real Redis server, certificates made by the test (a CA; one node certificate for server and
//! client use, SAN 127.0.0.1; and an unrelated CA). What it proves: a stream published on A is subscribed on B and
//! reaches B's viewer byte for byte through a leg A added on B's Sub, sent over mutual TLS; a node that trusts
//! another CA cannot relay from A (UNAVAILABLE, saying why), and creates nothing.

use std::path::Path;
use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, mint_token, subscription, video_stream, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtp_packet, Peer};
use ringfwd_tests::redis::{ensure_redis, Redis, SHARED_KEY};
use ringfwd_tests::tls::TestPki;
use tonic::Code;

const ONE_WORKER: &str = "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n";
const SECRET: &str = SHARED_KEY.1;
const SSRC: u32 = 0x7e1a_7151;
const WAIT: Duration = Duration::from_secs(5);

/// Node `id` with mutual TLS on its API (the node certificate; clients of `pki`'s CA), trusting `trusted` for the
/// other nodes; started, with an admin client over TLS.
fn start_node(redis: &Redis, pki: &TestPki, dir: &Path, id: &str, trusted: &Path) -> (Daemon, Api) {
    let node = pki.node();
    let text = format!(
        "{}tls_ca_file = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n[api.tls]\ncert_file = {:?}\nkey_file = {:?}\n\
         client_ca_file = {:?}\n[auth]\ndev_token_file = {:?}\n[[auth.keys]]\nid = \"cluster\"\nsecret_base64 = {SECRET:?}\n",
        redis.node_config(ONE_WORKER, id, 100, 500),
        trusted.display().to_string(),
        node.cert.display().to_string(),
        node.key.display().to_string(),
        pki.ca().display().to_string(),
        dir.join(format!("{id}.dev-token")).display().to_string(),
    );
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, &text).expect("write a config");
    let daemon = Daemon::start(&text);
    let api = Api::connect_tls(daemon.api, &mint_token(&path, "admin", "10m"), &pki.ca(), Some(&pki.client()));
    (daemon, api)
}

#[test]
fn nodes_with_mutual_tls_on_their_api_relay_over_tls() {
    if !ensure_redis() {
        return;
    }
    let (dir, pki) = (tempfile::tempdir().expect("temp dir"), TestPki::new());
    let redis = Redis::start(dir.path());
    let (a, api_a) = start_node(&redis, &pki, dir.path(), "a", &pki.ca());
    let (b, api_b) = start_node(&redis, &pki, dir.path(), "b", &pki.ca());
    let (camera, viewer) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api_a.session("s").expect("session on a");
    api_a.create_endpoint(endpoint("s", "cam", camera.addr())).expect("camera");
    api_a.create_stream(video_stream("s", "v", "cam", SSRC)).expect("stream on a");
    let located = || api_b.locate_stream(v1::LocateStreamRequest { session_id: "s".into(), stream_id: "v".into() });
    assert!(ringfwd_tests::api::wait_until(WAIT, || located().is_ok()), "b locates v on a");
    api_b.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer on b");
    api_b.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on b, relayed over TLS");
    let legs = api_a.list_subscriptions(v1::ListSubscriptionsRequest { session_id: "s".into() }).expect("list");
    assert!(legs.subscriptions.iter().any(|s| s.endpoint_id == "~b"), "a's leg to b: {legs:?}");

    let sent: Vec<Vec<u8>> =
        (0..20u16).map(|i| rtp_packet(SSRC, 500 + i, 3000 * u32::from(i), 96, false, &[i as u8; 100])).collect();
    for packet in &sent {
        camera.send(packet, a.media[0]);
    }
    assert_eq!(viewer.recv_rtp(sent.len(), WAIT), sent, "a -> b byte for byte");

    // A node that trusts another CA cannot verify a's (nor b's) certificate: no relay, nothing created.
    let (c, api_c) = start_node(&redis, &pki, dir.path(), "c", &pki.other_ca());
    let located = || api_c.locate_stream(v1::LocateStreamRequest { session_id: "s".into(), stream_id: "v".into() });
    assert!(ringfwd_tests::api::wait_until(WAIT, || located().is_ok()), "c locates v on a");
    let other = Peer::bind("127.0.0.1");
    api_c.create_endpoint(endpoint("s", "viewer", other.addr())).expect("viewer on c");
    let refused = api_c.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect_err("c cannot relay");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    println!("c's subscription: {}", refused.message());
    let message = refused.message();
    assert!(message.contains("node a") && message.contains("invalid peer certificate"), "{message}");
    let streams = api_c.list_streams(v1::ListStreamsRequest { session_id: "s".into() }).expect("list on c");
    assert!(streams.streams.is_empty(), "nothing relayed to c: {streams:?}");

    for daemon in [a, b, c] {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}
