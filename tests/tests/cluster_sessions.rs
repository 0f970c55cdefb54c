//! Sessions span the nodes of a cluster (`[cluster] directory = "redis"`): a session created on any node is held by
//! every node, and deleted on every node when deleted on any; endpoints stay on the node that created them.
//!
//! Two daemons on a real Redis server (Debian's `redis-server`, started by the test). What each node answers through
//! its API is checked, and what Redis holds (`redis-cli`): a session created on A before B started is on B once it
//! joined; one created on A and used on B at once is looked up by B's CreateEndpoint, and deleted on B it leaves A;
//! one created on B is on A, recorded in Redis as B's; creating it again on A takes it; deleting it on A
//! deletes B's copy with B's endpoint in it (B's watchers get `endpoint_left` and `session_ended`); a bad id never
//! reaches Redis; a node at its `admission.max_sessions` refuses a copy and counts it; a session deleted while B was
//! stopped is deleted from B's kept state when B starts again, not written back; with Redis down, a create is
//! UNAVAILABLE and changes nothing; and when Redis comes back empty, the nodes write their sessions back.

use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_proto::v1::event::Kind;
use ringfwd_tests::api::{endpoint, expect_status, wait_until, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::Peer;
use ringfwd_tests::redis::{ensure_redis, Redis};
use ringfwd_tests::scrape::sample;
use tonic::Code;

const ONE_WORKER: &str = "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n";
const HEARTBEAT_MS: u64 = 100;
const LEASE_MS: u64 = 500;
const WAIT: Duration = Duration::from_secs(5);

fn holds(api: &Api, session: &str) -> bool {
    api.session_ids().iter().any(|id| id == session)
}

fn get(api: &Api, session: &str) -> Result<v1::Session, tonic::Status> {
    api.get_session(v1::GetSessionRequest { session_id: session.into() })
}

fn delete(api: &Api, session: &str) -> Result<v1::DeleteResponse, tonic::Status> {
    api.delete_session(v1::DeleteSessionRequest { session_id: session.into() })
}

#[test]
fn a_session_created_on_one_node_is_held_by_every_node_and_deleted_on_every_node() {
    if !ensure_redis() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    let a = Daemon::start(&redis.node_config(ONE_WORKER, "a", HEARTBEAT_MS, LEASE_MS));
    let api_a = Api::dev(&a);

    // Created on A before B started: recorded as A's, and held by B once B joined.
    api_a.session("early").expect("early on a");
    assert!(redis.cli(&["HGET", "t:sessions", "early"]).contains(r#""node":"a""#), "recorded as a's");
    let b_config = format!("{ONE_WORKER}[admission]\nmax_sessions = 2\n");
    let b = Daemon::start(&redis.node_config(&b_config, "b", HEARTBEAT_MS, LEASE_MS));
    let api_b = Api::dev(&b);
    assert!(wait_until(WAIT, || holds(&api_b, "early")), "b holds early: {:?}", api_b.session_ids());
    // Created on A and used on B at once, before B heard of it: B's CreateEndpoint looks it up. Deleted on B, the
    // copy's holder: it leaves A.
    api_a.session("quick").expect("quick on a");
    let carol = Peer::bind("127.0.0.1");
    api_b.create_endpoint(endpoint("quick", "carol", carol.addr())).expect("carol on b, in a's session");
    delete(&api_b, "quick").expect("delete quick on b");
    let gone_from_a = || get(&api_a, "quick").is_err_and(|status| status.code() == Code::NotFound);
    assert!(wait_until(WAIT, gone_from_a), "a deleted quick: {:?}", api_a.session_ids());

    // Created on B: recorded as B's, held by A; each node's endpoints stay its own.
    api_b.session("call").expect("call on b");
    let record = redis.cli(&["HGET", "t:sessions", "call"]);
    assert!(record.contains(r#""node":"b""#), "recorded as b's: {record}");
    assert!(wait_until(WAIT, || holds(&api_a, "call")), "a holds call: {:?}", api_a.session_ids());
    let (alice, bob) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api_a.create_endpoint(endpoint("call", "alice", alice.addr())).expect("alice on a");
    api_b.create_endpoint(endpoint("call", "bob", bob.addr())).expect("bob on b");
    let endpoints = |api: &Api| {
        let list = api.list_endpoints(v1::ListEndpointsRequest { session_id: "call".into() }).expect("endpoints");
        list.endpoints.into_iter().map(|e| e.endpoint_id).collect::<Vec<_>>()
    };
    assert_eq!((endpoints(&api_a), endpoints(&api_b)), (vec!["alice".to_owned()], vec!["bob".to_owned()]));
    // Creating it again on A takes it: Redis still holds B's record.
    api_a.session("call").expect("call again on a");
    assert_eq!(redis.cli(&["HGET", "t:sessions", "call"]), record, "one record, b's");

    // Deleted on A: it leaves Redis, and B deletes its copy with bob in it.
    delete(&api_a, "call").expect("delete call on a");
    assert_eq!(redis.cli(&["HEXISTS", "t:sessions", "call"]), "0");
    let gone_from_b = || get(&api_b, "call").is_err_and(|status| status.code() == Code::NotFound);
    assert!(wait_until(WAIT, gone_from_b), "b deleted its copy: {:?}", api_b.session_ids());
    let left = api_b.wait_event("call", WAIT, |kind| match kind {
        Kind::EndpointLeft(e) => Some(e.endpoint_id.clone()),
        _ => None,
    });
    assert_eq!(left.as_deref(), Some("bob"), "b's watchers are told bob left");
    assert!(api_b.wait_event("call", WAIT, |kind| matches!(kind, Kind::SessionEnded(_)).then_some(())).is_some());
    // Deleting it again: it is nowhere.
    expect_status(delete(&api_b, "call"), Code::NotFound, &["call"]);

    // A bad id is refused before it reaches the directory.
    let before = redis.cli(&["HLEN", "t:sessions"]);
    expect_status(api_b.session("bad/id"), Code::InvalidArgument, &["session_id"]);
    assert_eq!(redis.cli(&["HLEN", "t:sessions"]), before);

    // B holds 2 sessions at most: a third created on A is A's alone, and B counts the copy it refused.
    api_b.session("second").expect("second on b");
    api_a.session("third").expect("third on a");
    let metrics = b.metrics.expect("b serves metrics");
    let copies = |result: &str| sample(metrics, "ringfwd_cluster_session_copies_total", &[("result", result)]);
    assert!(wait_until(WAIT, || copies("refused") == Some(1.0)), "b refused third: {:?}", copies("refused"));
    assert_eq!(copies("made"), Some(2.0), "b copied early and quick (call was its own)");
    assert!(!holds(&api_b, "third") && holds(&api_a, "second"));

    // B stops; early is deleted on A meanwhile; B starts again from its kept state, with early in it: it deletes
    // its copy instead of writing it back, and keeps its own second.
    let (exit, kept) = b.stop_for_restart();
    assert!(exit.success, "{}", exit.stderr);
    delete(&api_a, "early").expect("delete early on a while b is away");
    let b = Daemon::restart_in(&redis.node_config(&b_config, "b", HEARTBEAT_MS, LEASE_MS), kept);
    let api_b = Api::dev(&b);
    assert!(wait_until(WAIT, || !holds(&api_b, "early")), "b deleted early: {:?}", api_b.session_ids());
    assert!(holds(&api_b, "second"));
    assert_eq!(redis.cli(&["HEXISTS", "t:sessions", "early"]), "0", "early was not written back");
    assert!(!holds(&api_a, "early"));

    // Redis down: a create answers UNAVAILABLE, naming the directory, and creates nothing.
    let port = redis.kill();
    expect_status(api_a.session("offline"), Code::Unavailable, &["cluster directory"]);
    assert!(!holds(&api_a, "offline"));
    // Redis back, empty: every node writes its sessions back at its next heartbeat; none is lost.
    let redis = Redis::start_on(dir.path(), port);
    for session in ["second", "third"] {
        let back = || redis.cli(&["HEXISTS", "t:sessions", session]) == "1";
        assert!(wait_until(WAIT, back), "{session} written back: {}", redis.cli(&["HKEYS", "t:sessions"]));
    }
    assert_eq!(api_a.session_ids(), ["second", "third"]);

    for daemon in [a, b] {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}
