//! Static sessions from the config are ordinary sessions of the control API: listed with their resources and
//! offsets, counted against the admission limits, and deleting one through the API stops its forwarding while the
//! others go on. They are judged by the same code as the API's creates: a mistake is refused by `--check-config`
//! (and `--print-config`), by the daemon's start and by the API with one reason text, the config naming the entry's
//! path before it.

use std::time::Duration;

use ringfwd_tests::api::{endpoint, expect_status, subscription, v1, video_stream, Code, Status};
use ringfwd_tests::daemon::run_to_exit;
use ringfwd_tests::{rtp_fields, rtp_packet, Api, Daemon, Peer};

const WAIT: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(300);

fn static_session(id: &str, publisher: &Peer, subscriber: &Peer, ssrc: u32) -> String {
    format!(
        "[[sessions]]\nid = \"{id}\"\n\
         endpoints = [ {{ id = \"pub\", address = \"{}\" }}, {{ id = \"sub\", address = \"{}\" }} ]\n\
         streams = [ {{ id = \"cam\", endpoint = \"pub\", ssrc = {ssrc} }} ]\n\
         subscriptions = [ {{ stream = \"cam\", endpoint = \"sub\", out_ssrc = 5, seq_offset = 1000 }} ]\n",
        publisher.addr(),
        subscriber.addr()
    )
}

#[test]
fn static_sessions_are_listed_limited_and_deletable_through_the_api() {
    let (pub_a, sub_a, pub_b, sub_b) =
        (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let config = format!(
        "[media]\naddresses = [\"127.0.0.1:0\"]\n[admission]\nmax_sessions = 2\n{}{}",
        static_session("a", &pub_a, &sub_a, 100),
        static_session("b", &pub_b, &sub_b, 200)
    );
    let daemon = Daemon::start(&config);
    let media = daemon.media[0];
    let api = Api::dev(&daemon);

    assert_eq!(api.session_ids(), ["a", "b"]);
    let a = api.get_session(v1::GetSessionRequest { session_id: "a".into() }).expect("GetSession");
    assert_eq!((a.endpoints, a.streams, a.subscriptions), (2, 1, 1));
    let subs = api.list_subscriptions(v1::ListSubscriptionsRequest { session_id: "a".into() }).expect("list");
    assert_eq!(subs.subscriptions.len(), 1);
    let sub = &subs.subscriptions[0];
    assert_eq!(
        (sub.subscription_id.as_str(), sub.stream_id.as_str(), sub.endpoint_id.as_str()),
        ("cam.sub", "cam", "sub")
    );
    assert_eq!((sub.out_ssrc, sub.seq_offset), (5, 1000));
    let streams = api.list_streams(v1::ListStreamsRequest { session_id: "b".into() }).expect("streams");
    assert_eq!(streams.streams.iter().map(|s| s.ssrc).collect::<Vec<_>>(), [200]);
    // The two static sessions fill `max_sessions = 2`.
    expect_status(api.session("c"), Code::ResourceExhausted, &["admission.max_sessions"]);

    // Both forward, as configured.
    pub_a.send(&rtp_packet(100, 1, 0, 96, false, b"a"), media);
    pub_b.send(&rtp_packet(200, 1, 0, 96, false, b"b"), media);
    for (peer, name) in [(&sub_a, "a"), (&sub_b, "b")] {
        let got = peer.recv(1, WAIT);
        assert_eq!(got.len(), 1, "static session {name} forwards");
        let f = rtp_fields(&got[0]);
        assert_eq!((f.ssrc, f.seq), (5, 1001), "static session {name}'s rewrite");
    }

    // Deleting "a" through the API stops it; "b" goes on (its packet, sent after a's, proves a's was handled).
    let removed = api.delete_session(v1::DeleteSessionRequest { session_id: "a".into() }).expect("DeleteSession");
    assert_eq!((removed.sessions, removed.endpoints, removed.streams, removed.subscriptions), (1, 2, 1, 1));
    for seq in 2..5 {
        pub_a.send(&rtp_packet(100, seq, 0, 96, false, b"a"), media);
    }
    pub_b.send(&rtp_packet(200, 2, 0, 96, false, b"b"), media);
    assert_eq!(sub_b.recv(1, WAIT).len(), 1, "static session b keeps forwarding");
    assert!(sub_a.drain(QUIET).is_empty(), "the deleted static session forwards nothing");
    assert_eq!(api.session_ids(), ["b"]);
    api.session("c").expect("room for a new session once a static one is gone");

    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    assert_eq!(exit.total("drop_unknown_ssrc"), 3, "a's packets after the delete are unknown");
    assert_eq!(exit.total("forwarded_packets"), 3);
}

/// The node of the mistakes below, for the config and the API alike: IPv4 media only, at most 2 subscriptions per
/// stream.
const STRICT_NODE: &str = "[media]\naddresses = [\"127.0.0.1:0\"]\n[limits]\nmax_subscriptions_per_stream = 2\n";

/// One mistake, as a config declares it and as a controller sends it.
struct Mistake {
    /// What is wrong.
    name: &'static str,
    /// Its `[[sessions]]` entry (one session, id `s`).
    session: &'static str,
    /// The config path of the entry the registry refuses.
    origin: &'static str,
    /// The status class the API answers.
    code: Code,
    /// The same creates through the API in session `id`: the last one's refusal.
    api: fn(&Api, &str) -> Status,
}

fn addr(text: &str) -> std::net::SocketAddr {
    text.parse().expect("test address")
}

/// Session `id` with endpoint `pub` at 127.0.0.1:50000 publishing stream `cam` (SSRC `ssrc`), and endpoints
/// `sub-1` .. `sub-<subscribers>` at 127.0.0.1:50001.. .
fn api_room(api: &Api, id: &str, ssrc: u32, subscribers: u16) {
    api.session(id).expect("session");
    api.create_endpoint(endpoint(id, "pub", addr("127.0.0.1:50000"))).expect("pub");
    for k in 1..=subscribers {
        let at = std::net::SocketAddr::from(([127, 0, 0, 1], 50000 + k));
        api.create_endpoint(endpoint(id, &format!("sub-{k}"), at)).expect("subscriber");
    }
    api.create_stream(video_stream(id, "cam", "pub", ssrc)).expect("cam");
}

const MISTAKES: [Mistake; 5] = [
    Mistake {
        name: "a stream of an unknown endpoint",
        session: "[[sessions]]\nid = \"s\"\n\
                  endpoints = [ { id = \"pub\", address = \"127.0.0.1:50000\" } ]\n\
                  streams = [ { id = \"cam\", endpoint = \"ghost\", ssrc = 101 } ]\n",
        origin: "sessions[0].streams[0]",
        code: Code::NotFound,
        api: |api, id| {
            api.session(id).expect("session");
            api.create_endpoint(endpoint(id, "pub", addr("127.0.0.1:50000"))).expect("pub");
            api.create_stream(video_stream(id, "cam", "ghost", 101)).expect_err("an unknown endpoint")
        },
    },
    Mistake {
        name: "an SSRC twice",
        session: "[[sessions]]\nid = \"s\"\n\
                  endpoints = [ { id = \"pub\", address = \"127.0.0.1:50000\" } ]\n\
                  streams = [ { id = \"cam\", endpoint = \"pub\", ssrc = 202 }, \
                  { id = \"cam-2\", endpoint = \"pub\", ssrc = 202 } ]\n",
        origin: "sessions[0].streams[1]",
        code: Code::AlreadyExists,
        api: |api, id| {
            api_room(api, id, 202, 0);
            api.create_stream(video_stream(id, "cam-2", "pub", 202)).expect_err("a taken SSRC")
        },
    },
    Mistake {
        name: "one stream to one endpoint twice",
        session: "[[sessions]]\nid = \"s\"\n\
                  endpoints = [ { id = \"pub\", address = \"127.0.0.1:50000\" }, \
                  { id = \"sub-1\", address = \"127.0.0.1:50001\" } ]\n\
                  streams = [ { id = \"cam\", endpoint = \"pub\", ssrc = 303 } ]\n\
                  subscriptions = [ { stream = \"cam\", endpoint = \"sub-1\", out_ssrc = 5 }, \
                  { stream = \"cam\", endpoint = \"sub-1\", out_ssrc = 6 } ]\n",
        origin: "sessions[0].subscriptions[1]",
        code: Code::InvalidArgument,
        api: |api, id| {
            api_room(api, id, 303, 1);
            // The id the config's first entry gets.
            api.create_subscription(subscription(id, "cam.sub-1", "cam", "sub-1", 5)).expect("first");
            api.create_subscription(subscription(id, "again", "cam", "sub-1", 6)).expect_err("the same pair")
        },
    },
    Mistake {
        name: "an endpoint of a family the node has no media address of",
        session: "[[sessions]]\nid = \"s\"\n\
                  endpoints = [ { id = \"pub\", address = \"127.0.0.1:50000\" }, \
                  { id = \"sub-1\", address = \"[::1]:50001\" } ]\n",
        origin: "sessions[0].endpoints[1]",
        code: Code::InvalidArgument,
        api: |api, id| {
            api.session(id).expect("session");
            api.create_endpoint(endpoint(id, "pub", addr("127.0.0.1:50000"))).expect("pub");
            api.create_endpoint(endpoint(id, "sub-1", addr("[::1]:50001"))).expect_err("IPv6 on an IPv4 node")
        },
    },
    Mistake {
        name: "more subscriptions of a stream than limits.max_subscriptions_per_stream",
        session: "[[sessions]]\nid = \"s\"\n\
                  endpoints = [ { id = \"pub\", address = \"127.0.0.1:50000\" }, \
                  { id = \"sub-1\", address = \"127.0.0.1:50001\" }, \
                  { id = \"sub-2\", address = \"127.0.0.1:50002\" }, \
                  { id = \"sub-3\", address = \"127.0.0.1:50003\" } ]\n\
                  streams = [ { id = \"cam\", endpoint = \"pub\", ssrc = 404 } ]\n\
                  subscriptions = [ { stream = \"cam\", endpoint = \"sub-1\" }, \
                  { stream = \"cam\", endpoint = \"sub-2\" }, { stream = \"cam\", endpoint = \"sub-3\" } ]\n",
        origin: "sessions[0].subscriptions[2]",
        code: Code::ResourceExhausted,
        api: |api, id| {
            api_room(api, id, 404, 3);
            for k in 1..=2 {
                let to = format!("sub-{k}");
                api.create_subscription(subscription(id, &format!("cam.{to}"), "cam", &to, 0)).expect("within");
            }
            api.create_subscription(subscription(id, "cam.sub-3", "cam", "sub-3", 0)).expect_err("over the limit")
        },
    },
];

/// Whether some line of `stderr` ends with `expected` (so nothing follows the reason).
fn has_line_ending_with(stderr: &str, expected: &str) -> bool {
    stderr.lines().any(|line| line.ends_with(expected))
}

#[test]
fn config_and_api_refuse_each_mistake_with_one_reason() {
    let daemon = Daemon::start(STRICT_NODE);
    let api = Api::dev(&daemon);
    for (i, mistake) in MISTAKES.iter().enumerate() {
        let name = mistake.name;
        let status = (mistake.api)(&api, &format!("api-{i}"));
        assert_eq!(status.code(), mistake.code, "{name}: {status:?}");
        let expected = format!("{}: {}", mistake.origin, status.message());
        let config = format!("{STRICT_NODE}{}", mistake.session);

        let (ok, stdout, stderr) = run_to_exit(&["--check-config"], Some(&config));
        assert!(!ok, "{name}: --check-config passed it: {stdout}");
        assert!(has_line_ending_with(&stderr, &expected), "{name}: --check-config says\n{stderr}\nnot {expected:?}");

        // --print-config prints only a config the daemon accepts.
        let (ok, _, stderr) = run_to_exit(&["--print-config"], Some(&config));
        assert!(!ok && has_line_ending_with(&stderr, &expected), "{name}: --print-config says\n{stderr}");

        let stderr = Daemon::start_refused(&config);
        assert!(has_line_ending_with(&stderr, &expected), "{name}: the daemon says\n{stderr}\nnot {expected:?}");
    }
    // Nothing refused was created: the API's sessions hold what came before each refusal only.
    let node = api.node();
    let usage = node.usage.expect("usage");
    assert_eq!((usage.sessions, usage.streams, usage.subscriptions), (5, 3, 3));
    assert!(daemon.stop().success);
}

#[test]
fn check_config_passes_what_the_daemon_starts() {
    let config = format!("{STRICT_NODE}{}", static_session("a", &Peer::bind("127.0.0.1"), &Peer::bind("127.0.0.1"), 9));
    let (ok, stdout, stderr) = run_to_exit(&["--check-config"], Some(&config));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("static sessions: 1, creating 5 resources"), "{stdout}");
    let daemon = Daemon::start(&config);
    assert_eq!(Api::dev(&daemon).session_ids(), ["a"]);
    assert!(daemon.stop().success);
}
