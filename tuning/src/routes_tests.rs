//! Unit tests of the static-route rules in [`super`]: one test per rule, each checking the key
//! the error names. Tests only; never compiled into the library.

use super::*;
use crate::schema::Config;

fn endpoint(id: &str, address: Option<&str>, latching: bool) -> EndpointSpec {
    EndpointSpec { id: id.to_owned(), address: address.map(|a| a.parse().unwrap()), latching }
}

fn stream(id: &str, endpoint: &str, ssrc: u32) -> StreamSpec {
    StreamSpec { id: id.to_owned(), endpoint: endpoint.to_owned(), ssrc, ..StreamSpec::default() }
}

fn subscription(stream: &str, endpoint: &str, out_ssrc: Option<u32>) -> SubscriptionSpec {
    SubscriptionSpec {
        stream: stream.to_owned(),
        endpoint: endpoint.to_owned(),
        out_ssrc,
        ..SubscriptionSpec::default()
    }
}

/// A valid config: one session, a publisher with two streams, two subscribers.
fn base() -> Config {
    let session = SessionSpec {
        id: "room-1".to_owned(),
        endpoints: vec![
            endpoint("alice", Some("127.0.0.1:50000"), false),
            endpoint("bob", Some("127.0.0.1:50002"), false),
            endpoint("carol", Some("127.0.0.1:50004"), true),
            endpoint("dave", None, true),
        ],
        streams: vec![stream("a", "alice", 1), stream("v", "alice", 2)],
        subscriptions: vec![
            subscription("a", "bob", Some(11)),
            subscription("v", "bob", Some(12)),
            subscription("a", "carol", None),
        ],
    };
    Config { sessions: vec![session], ..Config::default() }
}

fn key_after(change: impl FnOnce(&mut Config)) -> String {
    let mut config = base();
    change(&mut config);
    match config.validate() {
        Ok(()) => "<valid>".to_owned(),
        Err(e) => e.key().unwrap_or("<no key>").to_owned(),
    }
}

fn session(c: &mut Config) -> &mut SessionSpec {
    &mut c.sessions[0]
}

#[test]
fn stream_clock_rate_is_checked_and_defaults_by_kind() {
    assert_eq!(key_after(|c| session(c).streams[0].clock_rate_hz = Some(0)), "sessions[0].streams[0].clock_rate_hz");
    assert_eq!(
        key_after(|c| session(c).streams[0].clock_rate_hz = Some(MAX_CLOCK_RATE_HZ + 1)),
        "sessions[0].streams[0].clock_rate_hz"
    );
    assert_eq!(key_after(|c| session(c).streams[0].clock_rate_hz = Some(8000)), "<valid>");
    let mut s = stream("v", "e", 1);
    assert_eq!(s.clock_rate_hz(), 48_000);
    s.kind = MediaKind::Video;
    assert_eq!(s.clock_rate_hz(), 90_000);
    let parsed: StreamSpec = toml::from_str("id = \"v\"\nendpoint = \"e\"\nssrc = 1\nkind = \"video\"").unwrap();
    assert_eq!(parsed.kind, MediaKind::Video);
}

#[test]
fn base_is_valid() {
    assert_eq!(key_after(|_| {}), "<valid>");
}

#[test]
fn session_id_rules() {
    assert_eq!(key_after(|c| session(c).id.clear()), "sessions[0].id");
    assert_eq!(key_after(|c| session(c).id = "a".repeat(65)), "sessions[0].id");
    assert_eq!(key_after(|c| session(c).id = "a".repeat(64)), "<valid>");
    assert_eq!(key_after(|c| session(c).id = "room 1".into()), "sessions[0].id");
    assert_eq!(key_after(|c| session(c).id = "räum".into()), "sessions[0].id");
    assert_eq!(key_after(|c| session(c).id = "A.b_c-9".into()), "<valid>");
}

#[test]
fn session_ids_are_unique() {
    let key = key_after(|c| {
        let mut copy = SessionSpec { id: "room-1".into(), ..SessionSpec::default() };
        copy.endpoints.push(endpoint("x", Some("127.0.0.1:50010"), false));
        c.sessions.push(copy);
    });
    assert_eq!(key, "sessions[1].id");
}

#[test]
fn endpoint_ids_are_checked_and_unique_per_session() {
    let key = key_after(|c| session(c).endpoints[1].id = "alice".into());
    assert_eq!(key, "sessions[0].endpoints[1].id");
    let key = key_after(|c| session(c).endpoints[1].id = String::new());
    assert_eq!(key, "sessions[0].endpoints[1].id");
}

#[test]
fn endpoint_without_address_must_latch() {
    let key = key_after(|c| session(c).endpoints[3].latching = false);
    assert_eq!(key, "sessions[0].endpoints[3].address");
}

#[test]
fn endpoint_address_needs_port_and_specified_ip() {
    let key = key_after(|c| session(c).endpoints[0].address = Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(key, "sessions[0].endpoints[0].address");
    let key = key_after(|c| session(c).endpoints[0].address = Some("0.0.0.0:5000".parse().unwrap()));
    assert_eq!(key, "sessions[0].endpoints[0].address");
    let key = key_after(|c| session(c).endpoints[0].address = Some("[::]:5000".parse().unwrap()));
    assert_eq!(key, "sessions[0].endpoints[0].address");
}

#[test]
fn stream_endpoint_must_exist() {
    let key = key_after(|c| session(c).streams[1].endpoint = "zed".into());
    assert_eq!(key, "sessions[0].streams[1].endpoint");
}

#[test]
fn stream_ids_are_checked_and_unique_per_session() {
    let key = key_after(|c| session(c).streams[1].id = "a".into());
    assert_eq!(key, "sessions[0].streams[1].id");
    let key = key_after(|c| session(c).streams[1].id = "v/1".into());
    assert_eq!(key, "sessions[0].streams[1].id");
}

#[test]
fn ssrc_is_unique_across_sessions() {
    let key = key_after(|c| {
        c.sessions.push(SessionSpec {
            id: "room-2".into(),
            endpoints: vec![endpoint("eve", Some("127.0.0.1:50020"), false)],
            streams: vec![stream("e", "eve", 2)],
            subscriptions: vec![],
        });
    });
    assert_eq!(key, "sessions[1].streams[0].ssrc");
}

#[test]
fn subscription_stream_and_endpoint_must_exist() {
    let key = key_after(|c| session(c).subscriptions[2].stream = "x".into());
    assert_eq!(key, "sessions[0].subscriptions[2].stream");
    let key = key_after(|c| session(c).subscriptions[2].endpoint = "x".into());
    assert_eq!(key, "sessions[0].subscriptions[2].endpoint");
}

#[test]
fn subscriber_needs_an_address() {
    let key = key_after(|c| session(c).subscriptions.push(subscription("a", "dave", None)));
    assert_eq!(key, "sessions[0].subscriptions[3].endpoint");
}

#[test]
fn stream_endpoint_pair_at_most_once() {
    let key = key_after(|c| session(c).subscriptions.push(subscription("a", "bob", Some(99))));
    assert_eq!(key, "sessions[0].subscriptions[3]");
}

#[test]
fn subscriber_family_must_match_a_media_address() {
    let mut config = base();
    config.media.addresses = vec!["[::1]:40000".parse().unwrap()];
    let err = config.validate().unwrap_err();
    assert_eq!(err.key(), Some("sessions[0].subscriptions[0]"));
    assert!(err.to_string().contains("= 127.0.0.1:50002:"), "{err}");
}

#[test]
fn payload_type_map_rules() {
    let key = key_after(|c| session(c).subscriptions[1].payload_type_map = vec![[96, 128]]);
    assert_eq!(key, "sessions[0].subscriptions[1].payload_type_map[0]");
    let key = key_after(|c| session(c).subscriptions[1].payload_type_map = vec![[200, 100]]);
    assert_eq!(key, "sessions[0].subscriptions[1].payload_type_map[0]");
    let key = key_after(|c| session(c).subscriptions[1].payload_type_map = vec![[96, 100], [97, 101], [96, 102]]);
    assert_eq!(key, "sessions[0].subscriptions[1].payload_type_map[2]");
    let key = key_after(|c| session(c).subscriptions[1].payload_type_map = vec![[96, 100], [100, 96]]);
    assert_eq!(key, "<valid>");
}

#[test]
fn subscriptions_per_stream_limit() {
    let key = key_after(|c| c.limits.max_subscriptions_per_stream = 1);
    assert_eq!(key, "sessions[0].subscriptions[2].stream");
    assert_eq!(key_after(|c| c.limits.max_subscriptions_per_stream = 2), "<valid>");
}

#[test]
fn out_ssrc_unique_per_endpoint() {
    let key = key_after(|c| session(c).subscriptions[1].out_ssrc = Some(11));
    assert_eq!(key, "sessions[0].subscriptions[1].out_ssrc");
    // The same out_ssrc toward another endpoint is fine.
    assert_eq!(key_after(|c| session(c).subscriptions[2].out_ssrc = Some(11)), "<valid>");
    // An explicit out_ssrc equal to an SSRC the endpoint already receives unchanged collides.
    let key = key_after(|c| session(c).subscriptions.push(subscription("v", "carol", Some(1))));
    assert_eq!(key, "sessions[0].subscriptions[3].out_ssrc");
}

#[test]
fn routes_round_trip_through_toml() {
    let config = base();
    let text = config.to_toml_string().unwrap();
    assert_eq!(Config::from_toml_str(&text).unwrap(), config);
}

#[test]
fn missing_required_route_key_is_named() {
    let text = "[[sessions]]\nid = \"r\"\n[[sessions.streams]]\nid = \"s\"\nendpoint = \"e\"\n";
    let err = Config::from_toml_str(text).unwrap_err();
    assert!(err.to_string().contains("ssrc"), "{err}");
}
