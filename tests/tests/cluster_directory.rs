//! The cluster directory (`[cluster]`): nodes with leases and loads, and where each stream is published.
//!
//! A single node (the embedded default) lists itself and its streams. Two nodes on a real Redis server (Debian's
//! `redis-server`, started by the test) list each other; a stream published on one is placed on it in Redis and
//! leaves when deleted (`LocateStream` on the other node finds it on the first, then not); when Redis crashes and
//! comes back empty, the nodes join again and write their streams again; a node killed with SIGKILL disappears from
//! the other's list once its lease runs out, and its streams leave the directory with it (a `node_lost` event says
//! so); a node that stops leaves at once. A directory that cannot be reached stops the daemon at start with an error
//! naming `cluster.redis_url`; two nodes configured with one id are told (a metric and an error in the log).

use std::time::{Duration, Instant};

use ringfwd_proto::v1;
use ringfwd_proto::v1::event::Kind;
use ringfwd_tests::api::{ctl, ctl_ok, dev_token, endpoint, expect_status, parse_json, video_stream, wait_until, Api};
use ringfwd_tests::daemon::{run_to_exit, Daemon};
use ringfwd_tests::gst::free_port;
use ringfwd_tests::peer::Peer;
use ringfwd_tests::redis::{ensure_redis, Redis};
use ringfwd_tests::scrape::sample;
use serde_json::Value;
use tonic::Code;

const ONE_WORKER: &str = "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n";
const HEARTBEAT_MS: u64 = 100;
const LEASE_MS: u64 = 500;
const WAIT: Duration = Duration::from_secs(5);

/// `ringfwd ctl --json node list` on `daemon`.
fn nodes(daemon: &Daemon, token: &str) -> Vec<Value> {
    let listed = parse_json(&ctl_ok(daemon, token, &["--json", "node", "list"]));
    listed.as_array().cloned().unwrap_or_default()
}

/// The ids of the nodes `daemon` lists.
fn node_ids(daemon: &Daemon, token: &str) -> Vec<String> {
    nodes(daemon, token).iter().filter_map(|n| n["nodeId"].as_str().map(str::to_owned)).collect()
}

/// A uint64 field of a listed node (protobuf JSON writes them as strings; 0 is left out).
fn number(node: &Value, field: &str) -> u64 {
    node[field].as_str().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// One worker, node `node` on `redis`'s directory under namespace `t`, a short heartbeat and lease.
fn redis_node(redis: &Redis, node: &str) -> String {
    redis.node_config(ONE_WORKER, node, HEARTBEAT_MS, LEASE_MS)
}

/// Creates session `s` (when `with_session`), a publisher and stream `stream` on `api`'s node.
fn publish(api: &Api, with_session: bool, stream: &str, ssrc: u32) {
    if with_session {
        api.session("s").expect("session");
    }
    let publisher = Peer::bind("127.0.0.1");
    let id = format!("{stream}_pub");
    api.create_endpoint(endpoint("s", &id, publisher.addr())).expect("publisher");
    api.create_stream(video_stream("s", stream, &id, ssrc)).expect("stream");
}

#[test]
fn a_single_node_lists_itself_and_its_streams_with_the_embedded_directory() {
    let config =
        format!("{ONE_WORKER}[cluster]\nnode_id = \"solo\"\nheartbeat_ms = {HEARTBEAT_MS}\nlease_ms = {LEASE_MS}\n");
    let daemon = Daemon::start(&config);
    let token = dev_token(&daemon);
    let listed = nodes(&daemon, &token);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let solo = &listed[0];
    assert_eq!((solo["nodeId"].as_str(), solo["thisNode"].as_bool()), (Some("solo"), Some(true)), "{solo}");
    assert_eq!(number(solo, "workers"), 1, "{solo}");
    assert!((1..=LEASE_MS).contains(&number(solo, "leaseRemainingMs")), "{solo}");
    assert_eq!(solo["apiAddress"].as_str(), Some(daemon.api.to_string().as_str()), "{solo}");
    assert_eq!(solo["relayAddress"].as_str(), Some(daemon.media[0].to_string().as_str()), "{solo}");

    publish(&Api::dev(&daemon), true, "v", 0x0c10_0001);
    let placed = || nodes(&daemon, &token).first().is_some_and(|n| number(n, "placedStreams") == 1);
    assert!(wait_until(WAIT, placed), "the stream is placed on this node: {:?}", nodes(&daemon, &token));
    let loaded = || nodes(&daemon, &token).first().is_some_and(|n| number(n, "streams") == 1);
    assert!(wait_until(WAIT, loaded), "the next heartbeat carries the load: {:?}", nodes(&daemon, &token));
    let located = parse_json(&ctl_ok(&daemon, &token, &["--json", "stream", "locate", "s", "v"]));
    assert_eq!((located["nodeId"].as_str(), located["thisNode"].as_bool()), (Some("solo"), Some(true)), "{located}");
    let table = ctl_ok(&daemon, &token, &["node", "list"]);
    assert!(table.contains("directory: embedded (this node: solo)") && table.contains("solo *"), "{table}");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);

    // The built-in config: the host's name (or "local"), the embedded directory.
    let daemon = Daemon::spawn(None);
    let info = parse_json(&ctl_ok(&daemon, &dev_token(&daemon), &["--json", "node"]));
    assert_eq!(info["directory"].as_str(), Some("embedded"), "{info}");
    assert!(info["nodeId"].as_str().is_some_and(|id| !id.is_empty()), "{info}");
    assert!(daemon.stop().success);
}

#[test]
fn nodes_share_a_redis_directory_and_a_killed_node_leaves_it_with_its_streams() {
    if !ensure_redis() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    let config = |node: &str| redis_node(&redis, node);
    // B first: its watcher hears A join.
    let b = Daemon::start(&config("b"));
    let a = Daemon::start(&config("a"));
    let (token_a, token_b) = (dev_token(&a), dev_token(&b));
    let both = ["a".to_owned(), "b".to_owned()];
    assert!(wait_until(WAIT, || node_ids(&a, &token_a) == both && node_ids(&b, &token_b) == both), "both listed");
    let events = redis.cli(&["CONFIG", "GET", "notify-keyspace-events"]);
    assert!(events.contains('E') && events.contains('x'), "ringfwd turned expiry events on: {events:?}");
    assert_eq!(redis.cli(&["SMEMBERS", "t:nodes"]).lines().count(), 2, "{}", redis.output());

    // A stream published on A is placed on A, as B sees it and as Redis holds it; deleted, it leaves.
    let api_a = Api::dev(&a);
    publish(&api_a, true, "v", 0x0c10_0002);
    assert!(wait_until(WAIT, || redis.cli(&["HGET", "t:streams", "s/v"]) == "a"), "placed on a in Redis");
    let placed_on_a = |n: &Value| n["nodeId"] == "a" && number(n, "placedStreams") == 1 && number(n, "streams") == 1;
    assert!(wait_until(WAIT, || nodes(&b, &token_b).iter().any(placed_on_a)), "{:?}", nodes(&b, &token_b));
    // Located from B: A, with A's API address, and not B itself; a malformed id is named, an unknown stream is not
    // found.
    let api_b = Api::dev(&b);
    let locate = |session: &str, stream: &str| {
        api_b.locate_stream(v1::LocateStreamRequest { session_id: session.into(), stream_id: stream.into() })
    };
    let located = locate("s", "v").expect("located");
    assert_eq!((located.node_id.as_str(), located.this_node), ("a", false), "{located:?}");
    assert_eq!(located.api_address, a.api.to_string());
    expect_status(locate("s", "v/x"), Code::InvalidArgument, &["stream_id"]);
    expect_status(locate("s", "nope"), Code::NotFound, &["s/nope"]);
    let table = ctl_ok(&b, &token_b, &["stream", "locate", "s", "v"]);
    assert!(table.contains(&a.api.to_string()) && !table.contains("a *"), "{table}");
    api_a.delete_stream(v1::DeleteStreamRequest { session_id: "s".into(), stream_id: "v".into() }).expect("delete");
    assert!(wait_until(WAIT, || redis.cli(&["HGET", "t:streams", "s/v"]).is_empty()), "removed from Redis");
    expect_status(locate("s", "v"), Code::NotFound, &["no node publishes stream s/v"]);
    publish(&api_a, false, "w", 0x0c10_0003);
    assert!(wait_until(WAIT, || redis.cli(&["HGET", "t:streams", "s/w"]) == "a"));

    // Redis crashes (the node list says the directory cannot be read) and comes back empty, with expiry events off:
    // both nodes join again at their next heartbeat, A writes its stream again, and the expiry events are turned on
    // again.
    let port = redis.kill();
    let down = ctl(&b, &token_b, &["node", "list"]);
    assert!(!down.success && down.stderr.contains("the directory could not be read"), "{down:?}");
    let redis = Redis::start_on(dir.path(), port);
    assert!(wait_until(WAIT, || redis.cli(&["HGET", "t:streams", "s/w"]) == "a"), "a placed its stream again");
    assert!(wait_until(WAIT, || node_ids(&b, &token_b) == both), "both joined again: {:?}", nodes(&b, &token_b));
    let expiry_on = || {
        let events = redis.cli(&["CONFIG", "GET", "notify-keyspace-events"]);
        events.contains('E') && events.contains('x')
    };
    assert!(wait_until(WAIT, expiry_on), "expiry events on again");
    // B's subscription is back before A is killed: its watcher hears what follows.
    assert!(wait_until(WAIT, || redis.cli(&["PUBSUB", "NUMSUB", "t:changes"]).ends_with('2')), "both subscribed");

    // A is killed: no leave, its lease runs out; B hears it, and A's streams leave the directory.
    let metrics = b.metrics.expect("b serves metrics");
    let downs = || sample(metrics, "ringfwd_cluster_node_changes_total", &[("change", "down")]).unwrap_or(0.0);
    let downs_before = downs();
    let killed = Instant::now();
    let killed_unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let _kept = a.crash();
    assert!(wait_until(WAIT, || node_ids(&b, &token_b) == ["b"]), "a left b's list: {:?}", nodes(&b, &token_b));
    let gone_after = killed.elapsed();
    assert!(
        gone_after <= Duration::from_millis(LEASE_MS + 2000),
        "a was listed {gone_after:?} after its kill (lease {LEASE_MS} ms)"
    );
    assert!(redis.cli(&["HGET", "t:streams", "s/w"]).is_empty(), "a's stream left with it");
    assert_eq!(redis.cli(&["SISMEMBER", "t:nodes", "a"]), "0");
    assert!(wait_until(WAIT, || downs() > downs_before), "b counted a node down: {}", downs());
    // What a controller watching B's events sees of the other node: A joining, then, after the kill, A lost with its
    // lease run out. B's own joins are not events.
    let joined = |node: &'static str| {
        api_b.wait_event("", WAIT, |kind| matches!(kind, Kind::NodeJoined(n) if n.node_id == node).then_some(()))
    };
    assert!(joined("a").is_some(), "a node_joined event for a");
    let quiet = Duration::from_millis(200);
    assert!(api_b
        .wait_event("", quiet, |kind| matches!(kind, Kind::NodeJoined(n) if n.node_id == "b").then_some(()))
        .is_none());
    let lost = api_b.wait_whole_event("", WAIT, |event| match &event.kind {
        Some(Kind::NodeLost(n)) if n.node_id == "a" && u128::from(event.unix_ms) >= killed_unix_ms => Some(n.expired),
        _ => None,
    });
    assert_eq!(lost, Some(true), "a node_lost event for a after its kill, its lease run out");

    // B stops: it leaves at once, without waiting for its lease.
    let exit = b.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(redis.cli(&["EXISTS", "t:node:b"]), "0", "b's lease went with its stop");
    assert_eq!(redis.cli(&["SMEMBERS", "t:nodes"]), "", "no node is left");
}

#[test]
fn two_nodes_configured_with_one_id_are_told() {
    if !ensure_redis() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    let config = redis_node(&redis, "twin");
    let (first, second) = (Daemon::start(&config), Daemon::start(&config));
    let conflicts = |daemon: &Daemon| {
        let metrics = daemon.metrics.expect("metrics");
        sample(metrics, "ringfwd_cluster_id_conflicts_total", &[]).unwrap_or(0.0)
    };
    assert!(
        wait_until(WAIT, || conflicts(&first) + conflicts(&second) >= 1.0),
        "neither node saw the other renew its id: {} / {}",
        conflicts(&first),
        conflicts(&second)
    );
    let said =
        [first.stop(), second.stop()].iter().any(|exit| exit.stderr.contains("two nodes have one cluster.node_id"));
    assert!(said, "the log names the conflict");
}

#[test]
fn an_unreachable_redis_stops_the_start_naming_the_key() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let config = format!(
        "{ONE_WORKER}[api]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [cluster]\ndirectory = \"redis\"\nredis_url = \"{url}\"\n"
    );
    let (ok, _, stderr) = run_to_exit(&[], Some(&config));
    assert!(!ok, "{stderr}");
    assert!(stderr.contains(&format!("cluster.redis_url = {url}: the redis directory: cannot connect")), "{stderr}");
}
