//! Static sessions from the config are ordinary sessions of the control API: listed with their resources and
//! offsets, counted against the admission limits, and deleting one through the API stops its forwarding while the
//! others go on.

use std::time::Duration;

use ringfwd_tests::api::{expect_status, v1, Code};
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
