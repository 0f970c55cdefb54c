//! Relaying across hosts that cannot all reach each other: three nodes, each in a network namespace the test creates
//! (its own address on a bridge of the test's), Redis on the bridge, and the route between A and C cut (a blackhole
//! on both sides) before C's viewer subscribes.
//!
//! What it proves: C's Sub to A fails (the route is gone: no acknowledgement), and C, with no rule in its config,
//! asks B, which reaches both, to relay: the viewer on C receives every packet the camera sent to A, byte for byte,
//! through B; C's copy names B as its publisher, B's names A.
//!
//! And a path that breaks while it carries a stream: A publishes to viewers on B and C, both direct; the route
//! between A and C is cut under a steady stream, and C moves to B within 2 s (no packet twice), and A gives its leg to
//! C up; the route is restored, and C moves back to A with its viewer's sequence numbers continuous across the move.
//!
//! And a relaying node that dies: with A and C cut apart, C's stream comes through B; B is killed, and C moves to D,
//! the other node that reaches A, keeping its viewer's subscription (the stream goes on, no packet twice). Needs root
//! (CAP_NET_ADMIN) for the namespaces; as another user the tests say they are skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, mint_token, subscription, video_stream, wait_until, Api};
use ringfwd_tests::daemon::{binary, Daemon};
use ringfwd_tests::netns::Lab;
use ringfwd_tests::peer::{rtp_fields, rtp_packet, Peer};
use ringfwd_tests::redis::{ensure_redis, Redis, SHARED_KEY};
use ringfwd_tests::scrape::sample;

const WAIT: Duration = Duration::from_secs(5);
const SSRC: u32 = 0x7e1a_0777;
const SECRET: &str = SHARED_KEY.1;

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

/// Nodes `ids`, each on its own host of `lab` (in order), sharing `redis`'s directory.
fn start_nodes(lab: &Lab, redis: &Redis, dir: &std::path::Path, ids: &[&str]) -> Vec<(Daemon, Api)> {
    let mut nodes = Vec::new();
    for (host, &id) in ids.iter().enumerate() {
        let config = node_config(lab, host, id, redis, dir);
        let path = dir.join(format!("{id}.toml"));
        std::fs::write(&path, &config).expect("write a config");
        let daemon = Daemon::start_program(&lab.wrapper(host, &binary()), &config, &[])
            .unwrap_or_else(|stderr| panic!("node {id} did not start in its namespace:\n{stderr}"));
        let api = Api::connect(daemon.api, Some(&mint_token(&path, "admin", "10m")));
        nodes.push((daemon, api));
    }
    nodes
}

/// The endpoint that publishes stream `v` of session `s` on the node `api` talks to.
fn publisher(api: &Api) -> Result<String, tonic::Status> {
    api.get_stream(v1::GetStreamRequest { session_id: "s".into(), stream_id: "v".into() }).map(|s| s.endpoint_id)
}

/// A test's hosts: one per node, Redis on their bridge (a test binds every field: each lives as long as the test).
struct Setup {
    nodes: Vec<(Daemon, Api)>,
    _redis: Redis,
    _dir: tempfile::TempDir,
    lab: Lab,
}

/// Nodes `ids` on hosts of their own; `None` (the test says it is skipped) when not running as root, or without a
/// Redis server to start.
fn setup(ids: &[&str]) -> Option<Setup> {
    if !running_as_root() {
        println!("skipped: network namespaces need root");
        return None;
    }
    if !ensure_redis() {
        return None;
    }
    let lab = Lab::create(ids.len()).unwrap_or_else(|e| panic!("the test's network namespaces: {e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start_bound(dir.path(), lab.bridge_ip());
    let nodes = start_nodes(&lab, &redis, dir.path(), ids);
    Some(Setup { nodes, _redis: redis, _dir: dir, lab })
}

/// Stream `v` of session `s` published on `origin` by `camera`, once `viewer_node` locates it there.
fn publish(origin: &Api, camera: &Peer, viewer_node: &Api) {
    origin.session("s").expect("session on a");
    origin.create_endpoint(endpoint("s", "cam", camera.addr())).expect("camera");
    origin.create_stream(video_stream("s", "v", "cam", SSRC)).expect("stream on a");
    let located =
        || viewer_node.locate_stream(v1::LocateStreamRequest { session_id: "s".into(), stream_id: "v".into() });
    assert!(wait_until(WAIT, || located().is_ok()), "the viewer's node locates v on a");
}

#[test]
fn a_node_cut_off_from_the_origin_gets_the_stream_through_a_node_that_reaches_both() {
    let Some(Setup { nodes, lab, _redis, _dir }) = setup(&["a", "b", "c"]) else { return };
    let (api_a, api_b, api_c) = (&nodes[0].1, &nodes[1].1, &nodes[2].1);
    let media_a = nodes[0].0.media[0];
    assert_eq!(media_a.ip(), lab.host_ip(0), "a's media address is on its own host");

    // The camera and the viewer are on the test's bridge; A and C cannot reach each other.
    let (camera, viewer) = (Peer::bind(&lab.bridge_ip().to_string()), Peer::bind(&lab.bridge_ip().to_string()));
    lab.cut(0, 2).expect("cut a and c apart");
    publish(api_a, &camera, api_c);

    api_c.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer on c");
    let asked = Instant::now();
    api_c.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on c");
    println!("c subscribed through b in {:?} (a cannot be reached)", asked.elapsed());
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

/// What a viewer received: each RTP packet with when it arrived.
type Received = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// Collects the RTP packets `viewer` receives until `stop`.
fn collect(viewer: Peer, stop: Arc<AtomicBool>) -> (Received, std::thread::JoinHandle<()>) {
    let received = Received::default();
    let into = Arc::clone(&received);
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for packet in viewer.recv(64, Duration::from_millis(50)) {
                if !(200..=204).contains(&packet[1]) {
                    into.lock().unwrap().push((Instant::now(), packet));
                }
            }
        }
    });
    (received, thread)
}

#[test]
fn a_path_that_breaks_moves_through_another_node_and_back_when_it_returns() {
    let Some(Setup { nodes, lab, _redis, _dir }) = setup(&["a", "b", "c"]) else { return };
    let (api_a, api_b, api_c) = (&nodes[0].1, &nodes[1].1, &nodes[2].1);
    let media_a = nodes[0].0.media[0];
    let bridge = lab.bridge_ip().to_string();
    let (camera, viewer_b, viewer_c) = (Peer::bind(&bridge), Peer::bind(&bridge), Peer::bind(&bridge));
    publish(api_a, &camera, api_c);
    for (api, viewer) in [(api_b, &viewer_b), (api_c, &viewer_c)] {
        api.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer");
        api.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription");
    }
    assert_eq!(publisher(api_c).expect("v on c"), "~a", "c gets v from a directly");

    // A steady stream: one packet every 5 ms, at most 4 000 (20 s), each one's send time kept.
    let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (got_b, thread_b) = collect(viewer_b, Arc::clone(&done));
    let (got_c, thread_c) = collect(viewer_c, Arc::clone(&done));
    let packet = |i: u16| rtp_packet(SSRC, i, 90 * 5 * u32::from(i), 96, false, &i.to_be_bytes().repeat(60));
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let sender = {
        let (stop, sent_at) = (Arc::clone(&stop), Arc::clone(&sent_at));
        let camera = camera.try_clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            for i in 0..4_000u16 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(
                    (start + Duration::from_millis(5) * u32::from(i)).saturating_duration_since(Instant::now()),
                );
                camera.send(&packet(i), media_a);
                sent_at.lock().unwrap().push(Instant::now());
            }
        })
    };
    let sent = || sent_at.lock().unwrap().len();
    assert!(wait_until(WAIT, || sent() >= 200), "the camera sends");

    // The cut: c notices it, and b relays to c.
    let cut_at = Instant::now();
    lab.cut(0, 2).expect("cut a and c apart");
    let cut_done = Instant::now();
    assert!(wait_until(WAIT, || publisher(api_c).is_ok_and(|p| p == "~b")), "c moves to b");
    let around = cut_at.elapsed();
    println!("c moved to b {around:?} after the cut");
    let legs = |api: &Api| {
        let all = api.list_subscriptions(v1::ListSubscriptionsRequest { session_id: "s".into() }).expect("list");
        let mut legs: Vec<String> =
            all.subscriptions.into_iter().map(|s| s.endpoint_id).filter(|e| e.starts_with('~')).collect();
        legs.sort();
        legs
    };
    // A cannot reach c either: it gives its leg to c up (c's Cancel cannot arrive while the route is cut).
    assert!(wait_until(WAIT, || legs(api_a) == ["~b"]), "a gives up its leg to c: {:?}", legs(api_a));
    let after_cut = sent();
    assert!(wait_until(WAIT, || sent() >= after_cut + 200), "the camera goes on");

    // The restore: c moves back to a directly.
    let restored_at = Instant::now();
    lab.restore(0, 2).expect("restore the route between a and c");
    assert!(wait_until(Duration::from_secs(10), || publisher(api_c).is_ok_and(|p| p == "~a")), "c moves back to a");
    println!("c moved back to a {:?} after the restore", restored_at.elapsed());
    let after_restore = sent();
    assert!(wait_until(WAIT, || sent() >= after_restore + 200), "the camera goes on");
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("the sender");
    let sent_at = sent_at.lock().unwrap().clone();
    let count = sent_at.len();
    let last = |got: &Received| got.lock().unwrap().last().map(|(_, p)| usize::from(rtp_fields(p).seq));
    assert!(wait_until(WAIT, || last(&got_b) == Some(count - 1) && last(&got_c) == Some(count - 1)), "the last packet");
    done.store(true, Ordering::Relaxed);
    thread_b.join().expect("b's viewer");
    thread_c.join().expect("c's viewer");
    let (got_b, got_c) = (got_b.lock().unwrap().clone(), got_c.lock().unwrap().clone());

    // b was never cut off: every packet, once, in order, byte for byte.
    let seqs = |got: &[(Instant, Vec<u8>)]| got.iter().map(|(_, p)| rtp_fields(p).seq).collect::<Vec<_>>();
    assert_eq!(seqs(&got_b), (0..count as u16).collect::<Vec<_>>(), "b's viewer gets every packet once");
    for (_, p) in got_b.iter().chain(&got_c) {
        assert_eq!(*p, packet(rtp_fields(p).seq), "byte for byte");
    }
    // c: no packet twice, nothing out of order; what is missing was sent during the cut, before c's viewer got
    // the first packet through b, which came within 2 s of the cut.
    let got = seqs(&got_c);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "c's viewer gets no packet twice, in order: {got:?}");
    let first_around = got_c
        .iter()
        .find(|(_, p)| sent_at[rtp_fields(p).seq as usize] > cut_done)
        .map(|(at, _)| *at)
        .expect("c's viewer gets packets sent after the cut");
    println!("c's viewer got the first packet sent after the cut {:?} after the cut", first_around - cut_at);
    assert!(first_around - cut_at <= Duration::from_secs(2), "through b within 2 s of the cut");
    let missing: Vec<u16> = (0..count as u16).filter(|seq| got.binary_search(seq).is_err()).collect();
    println!("c's viewer missed {} of {count} packets, all sent during the cut", missing.len());
    for seq in &missing {
        let at = sent_at[*seq as usize];
        assert!(at + Duration::from_millis(50) > cut_at && at < first_around, "packet {seq} missed outside the cut");
    }
    // From the first packet through b to the end, across the move back to a: continuous.
    let from = got.iter().position(|&seq| sent_at[seq as usize] > cut_done).expect("packets after the cut");
    assert_eq!(got[from..], (got[from]..count as u16).collect::<Vec<_>>()[..], "continuous across the move back");

    // What c held through b is gone from b; a sends one leg to each of b and c.
    assert!(wait_until(WAIT, || legs(api_b).is_empty()), "b keeps no leg to c: {:?}", legs(api_b));
    assert!(wait_until(WAIT, || legs(api_a) == ["~b", "~c"]), "a's legs: {:?}", legs(api_a));
    let metrics = nodes[2].0.metrics.expect("c serves metrics");
    let moves = |to: &str| sample(metrics, "ringfwd_cluster_path_moves_total", &[("to", to)]);
    assert_eq!((moves("relay"), moves("direct")), (Some(1.0), Some(1.0)), "c moved once each way");
    let moved_to = |to: &str| {
        api_c.wait_event("s", WAIT, |kind| match kind {
            v1::event::Kind::RelayMoved(m) if m.to_node_id == to => {
                Some((m.from_node_id.clone(), m.origin_node_id.clone()))
            }
            _ => None,
        })
    };
    assert_eq!(moved_to("b"), Some(("a".to_owned(), "a".to_owned())), "c's watchers: relay_moved a -> b");
    assert_eq!(moved_to("a"), Some(("b".to_owned(), "a".to_owned())), "c's watchers: relay_moved b -> a");
    let given_up = sample(nodes[0].0.metrics.expect("a serves metrics"), "ringfwd_cluster_legs_given_up_total", &[]);
    assert_eq!(given_up, Some(1.0), "a gave its legs to c up once");

    for (daemon, _) in nodes {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}

#[test]
fn a_relaying_node_that_dies_is_left_for_another() {
    let Some(Setup { mut nodes, lab, _redis, _dir }) = setup(&["a", "b", "c", "d"]) else { return };
    let media_a = nodes[0].0.media[0];
    let bridge = lab.bridge_ip().to_string();
    let (camera, viewer) = (Peer::bind(&bridge), Peer::bind(&bridge));
    lab.cut(0, 2).expect("cut a and c apart");
    {
        let (api_a, api_c) = (&nodes[0].1, &nodes[2].1);
        publish(api_a, &camera, api_c);
        api_c.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer on c");
        api_c.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on c");
        assert_eq!(publisher(api_c).expect("v on c"), "~b", "c gets v through b, the least loaded by its id");
    }
    let packet = |i: u16| rtp_packet(SSRC, i, 3000 * u32::from(i), 96, false, &i.to_be_bytes().repeat(50));
    let send = |range: std::ops::Range<u16>| {
        for i in range {
            camera.send(&packet(i), media_a);
        }
    };
    send(0..20);
    let before = viewer.recv_rtp(20, WAIT);
    assert_eq!(before, (0..20).map(packet).collect::<Vec<_>>(), "through b byte for byte");

    // B dies: c moves to d, its viewer's subscription intact.
    let (b, _) = nodes.remove(1);
    let killed = Instant::now();
    drop(b.crash());
    let (api_a, api_c) = (&nodes[0].1, &nodes[1].1);
    assert!(wait_until(WAIT, || publisher(api_c).is_ok_and(|p| p == "~d")), "c moves to d: {:?}", publisher(api_c));
    println!("c moved to d {:?} after b was killed", killed.elapsed());
    let kept =
        api_c.get_subscription(v1::GetSubscriptionRequest { session_id: "s".into(), subscription_id: "w".into() });
    assert_eq!(kept.expect("the viewer's subscription lives on").stream_id, "v");
    let moved = api_c.wait_event("s", WAIT, |kind| match kind {
        v1::event::Kind::RelayMoved(m) => Some((m.from_node_id.clone(), m.to_node_id.clone())),
        _ => None,
    });
    assert_eq!(moved, Some(("b".to_owned(), "d".to_owned())), "c's watchers: relay_moved b -> d");
    send(20..60);
    assert_eq!(viewer.recv_rtp(40, WAIT), (20..60).map(packet).collect::<Vec<_>>(), "through d, each packet once");
    let legs = api_a.list_subscriptions(v1::ListSubscriptionsRequest { session_id: "s".into() }).expect("a's legs");
    let mut to: Vec<String> = legs.subscriptions.into_iter().map(|s| s.endpoint_id).collect();
    to.sort();
    assert!(
        wait_until(WAIT, || {
            let legs = api_a.list_subscriptions(v1::ListSubscriptionsRequest { session_id: "s".into() });
            legs.is_ok_and(|l| l.subscriptions.iter().all(|s| s.endpoint_id == "~d"))
        }),
        "a's legs once b's lease ran out: only to d ({to:?} before)"
    );

    for (daemon, _) in nodes {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}
