//! Metadata is cluster-wide (`[cluster] directory = "redis"`): written on any node, read and watched on every node
//! that holds the object, the nodes converging by the last-writer-wins merge whatever the order of arrival.
//!
//! Real daemons on a real Redis server (Debian's `redis-server`, started by the test). A session's metadata set on A
//! is read on B and reaches a watcher on B; set on B it is read on A; a key deleted on one node is gone on the other;
//! two nodes writing one key at once end with the same value; a node that joins later takes what was written before;
//! a stream relayed to B carries its metadata there, and a write on either side reaches the other; what Redis keeps
//! for the session goes with it.

use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, metadata_target, subscription, video_stream, wait_until, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::Peer;
use ringfwd_tests::redis::{ensure_redis, Redis};
use ringfwd_tests::scrape::sample;

const ONE_WORKER: &str = "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n";
const WAIT: Duration = Duration::from_secs(5);

/// Node `id` (metadata node id `number`) on `redis`'s directory with the shared key; the daemon and an admin client.
fn start_node(redis: &Redis, id: &str, number: u32) -> (Daemon, Api) {
    let (_, daemon, api) = redis.keyed_node(&format!("{ONE_WORKER}[metadata]\nnode_id = {number}\n"), id, "");
    (daemon, api)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn metadata_written_on_any_node_is_read_and_watched_on_every_node() {
    if !ensure_redis() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    let (a, api_a) = start_node(&redis, "a", 1);
    let (b, api_b) = start_node(&redis, "b", 2);
    let session = metadata_target("s", "", "");
    api_a.session("s").expect("session on a");
    assert!(wait_until(WAIT, || api_b.session_ids().contains(&"s".to_owned())), "b holds s");

    // Set on A: read on B, and a watcher on B is told.
    let mut watch = api_b.watch_metadata(session.clone(), None).expect("watch on b");
    let first = api_b.next_event(&mut watch).expect("the watch's first event").expect("an event");
    assert!(matches!(first.kind, Some(v1::metadata_event::Kind::Snapshot(_))), "{first:?}");
    api_a.set_pairs(&session, &[("app.topic", "launch"), ("app.owner", "ann")]);
    let told = api_b.next_event(&mut watch).expect("a change on b").expect("an event");
    let Some(v1::metadata_event::Kind::Change(change)) = told.kind else { panic!("a change: {told:?}") };
    let written: Vec<(String, String)> = change.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
    assert_eq!(written, pairs(&[("app.owner", "ann"), ("app.topic", "launch")]), "b's watcher gets a's write");
    assert_eq!(api_b.metadata_pairs(&session), pairs(&[("app.owner", "ann"), ("app.topic", "launch")]));

    // Set on B: read on A; deleted on A: gone on B.
    api_b.set_pairs(&session, &[("app.topic", "review")]);
    let topic = pairs(&[("app.owner", "ann"), ("app.topic", "review")]);
    assert!(wait_until(WAIT, || api_a.metadata_pairs(&session) == topic), "a: {:?}", api_a.metadata_pairs(&session));
    let deletion = v1::MetadataDeletion { key: "app.owner".into(), expected_version: None };
    let request = v1::DeleteMetadataRequest { target: Some(session.clone()), deletions: vec![deletion] };
    api_a.delete_metadata(request).expect("delete on a");
    let left = pairs(&[("app.topic", "review")]);
    assert!(wait_until(WAIT, || api_b.metadata_pairs(&session) == left), "b: {:?}", api_b.metadata_pairs(&session));

    // Both write one key at once: both end with the same value, the later write's.
    for round in 0..5 {
        let (on_a, on_b) = (format!("a{round}"), format!("b{round}"));
        std::thread::scope(|scope| {
            scope.spawn(|| api_a.set_pairs(&session, &[("app.race", &on_a)]));
            scope.spawn(|| api_b.set_pairs(&session, &[("app.race", &on_b)]));
        });
        let race = |api: &Api| api.metadata_pairs(&session).into_iter().find(|(k, _)| k == "app.race");
        assert!(
            wait_until(WAIT, || race(&api_a).is_some() && race(&api_a) == race(&api_b)),
            "round {round}: a {:?}, b {:?}",
            race(&api_a),
            race(&api_b)
        );
    }
    let on_a = api_a.metadata_pairs(&session);

    // A node that joins later takes what was written before.
    let (c, api_c) = start_node(&redis, "c", 3);
    let on_c = || {
        let request = v1::GetMetadataRequest { target: Some(session.clone()), keys: Vec::new() };
        let got = api_c.get_metadata(request).ok()?;
        Some(got.entries.into_iter().map(|e| (e.key, e.value)).collect::<Vec<_>>())
    };
    assert!(wait_until(WAIT, || on_c() == Some(on_a.clone())), "c catches up: {:?} against {on_a:?}", on_c());

    // A stream relayed to B carries its metadata; a write on B's copy reaches A's stream.
    let (camera, viewer) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api_a.create_endpoint(endpoint("s", "cam", camera.addr())).expect("camera");
    api_a.create_stream(video_stream("s", "v", "cam", 0x5eed_0001)).expect("stream on a");
    let stream = metadata_target("s", "", "v");
    api_a.set_pairs(&stream, &[("app.title", "keynote")]);
    api_b.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer on b");
    api_b.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on b");
    assert_eq!(api_b.metadata_pairs(&stream), pairs(&[("app.title", "keynote")]), "b's copy has v's metadata");
    api_b.set_pairs(&stream, &[("app.lang", "en")]);
    let both = pairs(&[("app.lang", "en"), ("app.title", "keynote")]);
    assert!(wait_until(WAIT, || api_a.metadata_pairs(&stream) == both), "a: {:?}", api_a.metadata_pairs(&stream));

    let shared = |daemon: &Daemon, result: &str| {
        sample(daemon.metrics.expect("metrics"), "ringfwd_cluster_metadata_total", &[("result", result)])
    };
    assert!(shared(&a, "shared").is_some_and(|n| n >= 8.0), "a shared its writes: {:?}", shared(&a, "shared"));
    assert!(shared(&b, "merged").is_some_and(|n| n >= 3.0), "b merged a's: {:?}", shared(&b, "merged"));
    assert_eq!(shared(&a, "dropped"), Some(0.0));

    // Deleted, the session takes what Redis kept for it along.
    assert_ne!(redis.cli(&["EXISTS", "t:meta:s"]), "0", "kept while the session lives");
    api_a.delete_session(v1::DeleteSessionRequest { session_id: "s".into() }).expect("delete s");
    assert_eq!(redis.cli(&["EXISTS", "t:meta:s"]), "0", "gone with the session");

    for daemon in [a, b, c] {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}
