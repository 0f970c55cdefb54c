//! The control API's error classes on the real daemon, each with its gRPC code and a message that names the field,
//! the id or the limit: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS (and idempotent creates), RESOURCE_EXHAUSTED
//! from `[admission]` and `[limits]`, UNAVAILABLE while draining (existing sessions keep forwarding). A refused
//! request changes nothing.

use std::time::Duration;

use ringfwd_tests::api::{endpoint, expect_status, subscription, v1, video_stream, worker_total, Code};
use ringfwd_tests::{rtp_fields, rtp_packet, Api, Daemon, Peer};

const WAIT: Duration = Duration::from_secs(3);
const MEDIA: &str = "[media]\naddresses = [\"127.0.0.1:0\"]\n";

fn usage(api: &Api) -> (u32, u32, u32, u32) {
    let u = api.node().usage.expect("usage");
    (u.sessions, u.endpoints, u.streams, u.subscriptions)
}

#[test]
fn invalid_arguments_name_the_field_and_change_nothing() {
    let peer = Peer::bind("127.0.0.1");
    let daemon = Daemon::start(MEDIA);
    let api = Api::dev(&daemon);

    expect_status(api.session("bad id!"), Code::InvalidArgument, &["session_id", "' '"]);
    expect_status(api.session(""), Code::InvalidArgument, &["session_id", "got 0"]);
    expect_status(api.session(&"x".repeat(65)), Code::InvalidArgument, &["session_id", "got 65"]);
    api.session("s").expect("a valid session");

    let mut bad_address = endpoint("s", "e", peer.addr());
    bad_address.media_address = "nope".into();
    expect_status(api.create_endpoint(bad_address), Code::InvalidArgument, &["media_address", "nope"]);
    // A megabyte value is named, not echoed whole: the status stays small enough for the client to read it.
    let mut huge = endpoint("s", "e", peer.addr());
    huge.media_address = "9".repeat(1 << 20);
    let status = api.create_endpoint(huge).expect_err("a megabyte address");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("invalid media_address"), "{}", &status.message()[..80]);
    assert!(status.message().len() <= 1024 && status.message().contains("bytes in all"), "{}", status.message().len());
    expect_status(api.create_endpoint(endpoint("s", "a/b", peer.addr())), Code::InvalidArgument, &["endpoint_id"]);
    api.create_endpoint(endpoint("s", "pub", peer.addr())).expect("publisher");
    api.create_endpoint(endpoint("s", "sub", Peer::bind("127.0.0.1").addr())).expect("subscriber");

    let no_kind =
        v1::CreateStreamRequest { kind: v1::MediaKind::Unspecified.into(), ..video_stream("s", "v", "pub", 1) };
    expect_status(api.create_stream(no_kind), Code::InvalidArgument, &["kind"]);
    let zero_rate = v1::CreateStreamRequest { clock_rate_hz: 0, ..video_stream("s", "v", "pub", 1) };
    expect_status(api.create_stream(zero_rate), Code::InvalidArgument, &["clock_rate_hz", "0"]);
    let bad_pt = v1::CreateStreamRequest { payload_types: vec![96, 128], ..video_stream("s", "v", "pub", 1) };
    expect_status(api.create_stream(bad_pt), Code::InvalidArgument, &["payload_types[1]", "128"]);
    api.create_stream(video_stream("s", "v", "pub", 1)).expect("a valid stream");

    let mut pt_to_200 = subscription("s", "x", "v", "sub", 0);
    pt_to_200.payload_type_map = vec![v1::PayloadTypeMapping { from: 96, to: 200 }];
    expect_status(api.create_subscription(pt_to_200), Code::InvalidArgument, &["payload_type_map[0].to", "200"]);
    let to_itself = subscription("s", "x", "v", "pub", 0);
    expect_status(api.create_subscription(to_itself), Code::InvalidArgument, &["endpoint_id"]);

    assert_eq!(usage(&api), (1, 2, 1, 0), "refused requests created nothing");
    let node = api.node();
    assert_eq!(worker_total(&node, "commands_applied"), 1, "only the valid stream reached a worker");
    assert_eq!(worker_total(&node, "commands_failed"), 0);
    assert!(daemon.stop().success);
}

#[test]
fn unknown_ids_are_not_found_by_name() {
    let peer = Peer::bind("127.0.0.1");
    let daemon = Daemon::start(MEDIA);
    let api = Api::dev(&daemon);
    expect_status(api.get_session(v1::GetSessionRequest { session_id: "ghost".into() }), Code::NotFound, &["ghost"]);
    expect_status(api.create_endpoint(endpoint("ghost", "e", peer.addr())), Code::NotFound, &["session", "ghost"]);
    expect_status(
        api.delete_session(v1::DeleteSessionRequest { session_id: "ghost".into() }),
        Code::NotFound,
        &["ghost"],
    );
    api.session("s").expect("session");
    api.create_endpoint(endpoint("s", "sub", peer.addr())).expect("endpoint");
    expect_status(
        api.create_subscription(subscription("s", "x", "nostream", "sub", 0)),
        Code::NotFound,
        &["stream", "nostream"],
    );
    expect_status(api.create_stream(video_stream("s", "v", "nobody", 5)), Code::NotFound, &["endpoint", "nobody"]);
    let unknown_sub = v1::UpdateSubscriptionRequest {
        session_id: "s".into(),
        subscription_id: "nosub".into(),
        paused: Some(true),
        ..Default::default()
    };
    expect_status(api.update_subscription(unknown_sub), Code::NotFound, &["subscription", "nosub"]);
    assert_eq!(usage(&api), (1, 1, 0, 0));
    assert!(daemon.stop().success);
}

#[test]
fn the_same_spec_again_is_ok_a_different_one_already_exists() {
    let (alice, bob) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let daemon = Daemon::start(MEDIA);
    let api = Api::dev(&daemon);

    let first = api.session("room").expect("session");
    assert_eq!(api.session("room").expect("again"), first, "the same session, not a new one");

    let a = api.create_endpoint(endpoint("room", "alice", alice.addr())).expect("alice");
    assert_eq!(api.create_endpoint(endpoint("room", "alice", alice.addr())).expect("alice again"), a);
    expect_status(
        api.create_endpoint(endpoint("room", "alice", bob.addr())),
        Code::AlreadyExists,
        &["endpoint", "alice"],
    );
    api.create_endpoint(endpoint("room", "bob", bob.addr())).expect("bob");

    let s = api.create_stream(video_stream("room", "cam", "alice", 1000)).expect("stream");
    assert_eq!(api.create_stream(video_stream("room", "cam", "alice", 1000)).expect("stream again"), s);
    expect_status(api.create_stream(video_stream("room", "cam", "alice", 1001)), Code::AlreadyExists, &["cam"]);
    expect_status(api.create_stream(video_stream("room", "cam2", "bob", 1000)), Code::AlreadyExists, &["ssrc", "1000"]);

    let sub = api.create_subscription(subscription("room", "bob-cam", "cam", "bob", 7)).expect("subscription");
    assert_eq!(api.create_subscription(subscription("room", "bob-cam", "cam", "bob", 7)).expect("again"), sub);
    expect_status(
        api.create_subscription(subscription("room", "bob-cam", "cam", "bob", 8)),
        Code::AlreadyExists,
        &["subscription", "bob-cam"],
    );

    // Under another id, the same stream to the same endpoint, or another stream under an out SSRC the endpoint
    // already receives, is refused as the static config refuses it (each would break the first subscription).
    expect_status(
        api.create_subscription(subscription("room", "bob-cam-2", "cam", "bob", 9)),
        Code::InvalidArgument,
        &["stream_id", "already receives stream cam by subscription bob-cam"],
    );
    api.create_stream(video_stream("room", "cam-b", "alice", 1002)).expect("a second camera");
    expect_status(
        api.create_subscription(subscription("room", "bob-cam-b", "cam-b", "bob", 7)),
        Code::InvalidArgument,
        &["out_ssrc", "0x7"],
    );
    api.delete_stream(v1::DeleteStreamRequest { session_id: "room".into(), stream_id: "cam-b".into() })
        .expect("delete the second camera");

    assert_eq!(usage(&api), (1, 2, 1, 1), "retries created nothing more");
    // The single subscription forwards once per packet (a retry did not add a second copy on the worker).
    let media = daemon.media[0];
    alice.send(&rtp_packet(1000, 1, 0, 96, false, b"once"), media);
    let got = bob.recv(2, Duration::from_millis(500));
    assert_eq!(got.len(), 1, "exactly one copy");
    assert_eq!(rtp_fields(&got[0]).ssrc, 7);
    assert!(daemon.stop().success);
}

#[test]
fn admission_limits_are_resource_exhausted_naming_the_limit() {
    let daemon =
        Daemon::start(&format!("{MEDIA}[admission]\nmax_sessions = 2\n[limits]\nmax_subscriptions_per_stream = 2\n"));
    let api = Api::dev(&daemon);
    let limits = api.node().limits.expect("limits");
    assert_eq!((limits.max_sessions, limits.max_subscriptions_per_stream), (2, 2));

    api.session("a").expect("first");
    api.session("b").expect("second");
    expect_status(api.session("c"), Code::ResourceExhausted, &["admission.max_sessions", "2"]);
    api.session("a").expect("an existing session is still idempotent at the limit");
    api.delete_session(v1::DeleteSessionRequest { session_id: "b".into() }).expect("delete b");
    api.session("c").expect("room again after a delete");
    expect_status(api.session("d"), Code::ResourceExhausted, &["admission.max_sessions"]);

    let peers: Vec<Peer> = (0..4).map(|_| Peer::bind("127.0.0.1")).collect();
    for (i, p) in peers.iter().enumerate() {
        api.create_endpoint(endpoint("a", &format!("e{i}"), p.addr())).expect("endpoint");
    }
    api.create_stream(video_stream("a", "v", "e0", 9)).expect("stream");
    api.create_subscription(subscription("a", "s1", "v", "e1", 0)).expect("1st subscription");
    api.create_subscription(subscription("a", "s2", "v", "e2", 0)).expect("2nd subscription");
    expect_status(
        api.create_subscription(subscription("a", "s3", "v", "e3", 0)),
        Code::ResourceExhausted,
        &["limits.max_subscriptions_per_stream", "2"],
    );
    assert_eq!(usage(&api), (2, 4, 1, 2));
    // The two admitted subscriptions forward; the refused one does not.
    peers[0].send(&rtp_packet(9, 1, 0, 96, false, b"x"), daemon.media[0]);
    assert_eq!(peers[1].recv(1, WAIT).len(), 1);
    assert_eq!(peers[2].recv(1, WAIT).len(), 1);
    assert!(peers[3].drain(Duration::from_millis(300)).is_empty());
    assert!(daemon.stop().success);
}

#[test]
fn draining_refuses_new_sessions_and_keeps_forwarding() {
    let (publisher, subscriber, late) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let daemon = Daemon::start(MEDIA);
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    api.session("live").expect("session");
    api.create_endpoint(endpoint("live", "pub", publisher.addr())).expect("pub");
    api.create_endpoint(endpoint("live", "sub", subscriber.addr())).expect("sub");
    api.create_stream(video_stream("live", "v", "pub", 77)).expect("stream");
    api.create_subscription(subscription("live", "s", "v", "sub", 0)).expect("subscription");

    let drain = api.drain(v1::DrainRequest { cancel: false }).expect("Drain");
    assert_eq!((drain.draining, drain.sessions_remaining), (true, 1));
    assert!(api.node().draining);
    expect_status(api.session("new"), Code::Unavailable, &["drain"]);
    api.session("live").expect("re-creating an existing session is idempotent while draining");

    // Existing sessions keep forwarding, and can still change.
    for seq in 0..5 {
        publisher.send(&rtp_packet(77, seq, 0, 96, false, b"still here"), media);
    }
    assert_eq!(subscriber.recv(5, WAIT).len(), 5, "forwarding continues while draining");
    api.create_endpoint(endpoint("live", "late", late.addr())).expect("an endpoint in an existing session");
    api.create_subscription(subscription("live", "s2", "v", "late", 0)).expect("a subscription too");
    publisher.send(&rtp_packet(77, 5, 0, 96, false, b"both"), media);
    assert_eq!(late.recv(1, WAIT).len(), 1);
    assert_eq!(subscriber.recv(1, WAIT).len(), 1);

    api.delete_session(v1::DeleteSessionRequest { session_id: "live".into() }).expect("delete");
    let drain = api.drain(v1::DrainRequest { cancel: false }).expect("Drain again");
    assert_eq!((drain.draining, drain.sessions_remaining), (true, 0), "drained");
    expect_status(api.session("new"), Code::Unavailable, &["drain"]);

    let cancel = api.drain(v1::DrainRequest { cancel: true }).expect("cancel");
    assert_eq!((cancel.draining, cancel.sessions_remaining), (false, 0));
    assert!(!api.node().draining);
    api.session("new").expect("accepted again after cancel");
    assert!(daemon.stop().success);
}

#[test]
fn idle_connections_cannot_hold_the_api() {
    // Twice as many silent connections as places: each is closed once it has not said anything within the
    // handshake timeout, and a real client is served after them.
    let daemon = Daemon::start(&format!(
        "{MEDIA}[api]\nlisten = \"127.0.0.1:0\"\nmax_connections = 2\nhandshake_timeout_ms = 300\n"
    ));
    let silent: Vec<std::net::TcpStream> =
        (0..4).map(|_| std::net::TcpStream::connect(daemon.api).expect("connect")).collect();
    let api = Api::dev(&daemon);
    assert!(!api.node().version.is_empty(), "served after the silent connections");
    for mut connection in silent {
        connection.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        // The server's own preface (its SETTINGS) may come first; then the connection ends.
        let mut rest = Vec::new();
        let ended = match std::io::Read::read_to_end(&mut connection, &mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(ended, "a silent connection stayed open ({} bytes read)", rest.len());
    }
    assert!(daemon.stop().success);
}
