//! Unit tests of [`super::check`]: every mistake a static session can hold is refused by the registry's rules, at
//! the config path of the entry, with the registry's reason. One test per rule the config refused when it had rules
//! of its own, so none became accepted by the move to the registry (but one, on purpose:
//! [`a_latching_subscriber_without_an_address_is_held_as_through_the_api`]). Tests only; never compiled into the
//! library.

use std::path::Path;

use ringfwd_tuning::{EndpointSpec, MediaKind, SessionSpec, StreamSpec, SubscriptionSpec};
use tonic::Code;

use super::*;

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

/// A valid config: one session, a publisher with two streams, two subscribers, a latching endpoint without an
/// address; media on IPv4 and IPv6 (the defaults).
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

/// What [`check`] says of [`base`] after `change`, on two workers.
fn check_after(change: impl FnOnce(&mut Config)) -> Result<usize, RouteError> {
    let mut config = base();
    change(&mut config);
    check(&config, 2, &chains(&config))
}

/// The chains a binary without plugins makes of `config`.
fn chains(config: &Config) -> Chains {
    Chains::new(config.interceptors.clone(), ringfwd_dataplane::control::Plugins::none()).unwrap()
}

/// The config path [`check`] refuses after `change`, or `<valid>`.
fn origin_after(change: impl FnOnce(&mut Config)) -> String {
    match check_after(change) {
        Ok(_) => "<valid>".to_owned(),
        Err(e) => e.origin,
    }
}

/// The refusal after `change`, which must be one.
#[track_caller]
fn refusal(change: impl FnOnce(&mut Config)) -> RouteError {
    check_after(change).expect_err("the change must be refused")
}

fn session(c: &mut Config) -> &mut SessionSpec {
    &mut c.sessions[0]
}

#[test]
fn base_is_valid_and_counts_what_it_creates() {
    assert_eq!(check_after(|_| {}).unwrap(), 1 + 4 + 2 + 3);
}

#[test]
fn errors_are_the_config_path_then_the_status_message_of_the_api() {
    let err = refusal(|c| session(c).streams[1].endpoint = "zed".into());
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].streams[1]", Code::NotFound));
    let api_message = status::registry(RegistryError::not_found("endpoint", "zed")).message().to_owned();
    assert_eq!(err.message, api_message);
    assert_eq!(err.to_string(), format!("sessions[0].streams[1]: {api_message}"));
}

#[test]
fn session_id_rules() {
    for bad in [String::new(), "a".repeat(65), "room 1".into(), "räum".into()] {
        let err = refusal(|c| session(c).id = bad.clone());
        assert_eq!((err.origin.as_str(), err.code), ("sessions[0]", Code::InvalidArgument), "{bad:?}");
        assert!(err.message.starts_with("invalid session_id: "), "{err}");
    }
    assert_eq!(origin_after(|c| session(c).id = "a".repeat(64)), "<valid>");
    assert_eq!(origin_after(|c| session(c).id = "A.b_c-9".into()), "<valid>");
}

#[test]
fn a_session_declared_twice_is_refused() {
    let err = refusal(|c| {
        let mut copy = SessionSpec { id: "room-1".into(), ..SessionSpec::default() };
        copy.endpoints.push(endpoint("x", Some("127.0.0.1:50010"), false));
        c.sessions.push(copy);
    });
    assert_eq!((err.origin.as_str(), err.code), ("sessions[1]", Code::AlreadyExists));
    assert_eq!(err.message, "session room-1 already exists: the config declares it twice");
}

#[test]
fn endpoint_ids_are_checked_and_declared_once_per_session() {
    let err = refusal(|c| session(c).endpoints[1].id = "alice".into());
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].endpoints[1]", Code::AlreadyExists));
    assert!(err.message.contains("endpoint alice already exists"), "{err}");
    let err = refusal(|c| session(c).endpoints.push(endpoint("bob", Some("127.0.0.1:50002"), false)));
    assert_eq!(err.origin, "sessions[0].endpoints[4]");
    assert!(err.message.contains("declares it twice"), "the same spec again: {err}");
    let err = refusal(|c| session(c).endpoints[1].id = String::new());
    assert_eq!(err.origin, "sessions[0].endpoints[1]");
    assert!(err.message.starts_with("invalid endpoint_id"), "{err}");
}

#[test]
fn endpoint_without_address_must_latch() {
    let err = refusal(|c| session(c).endpoints[3].latching = false);
    assert_eq!(err.origin, "sessions[0].endpoints[3]");
    assert!(err.message.contains("media_address") && err.message.contains("required unless latching"), "{err}");
}

#[test]
fn endpoint_address_needs_port_and_specified_ip() {
    for address in ["127.0.0.1:0", "0.0.0.0:5000", "[::]:5000"] {
        let err = refusal(|c| session(c).endpoints[0].address = Some(address.parse().unwrap()));
        assert_eq!((err.origin.as_str(), err.code), ("sessions[0].endpoints[0]", Code::InvalidArgument));
        assert!(err.message.starts_with("invalid media_address: ") && err.message.contains(address), "{err}");
    }
}

#[test]
fn stream_endpoint_must_exist() {
    let err = refusal(|c| session(c).streams[1].endpoint = "zed".into());
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].streams[1]", Code::NotFound));
    assert!(err.message.contains("endpoint zed"), "{err}");
}

#[test]
fn stream_ids_are_checked_and_declared_once_per_session() {
    let err = refusal(|c| session(c).streams[1].id = "a".into());
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].streams[1]", Code::AlreadyExists));
    assert!(err.message.contains("stream a already exists"), "{err}");
    let err = refusal(|c| session(c).streams.push(stream("v", "alice", 2)));
    assert!(err.message.contains("declares it twice"), "the same spec again: {err}");
    let err = refusal(|c| session(c).streams[1].id = "v/1".into());
    assert_eq!(err.origin, "sessions[0].streams[1]");
    assert!(err.message.starts_with("invalid stream_id"), "{err}");
}

#[test]
fn stream_clock_rate_is_checked() {
    for rate in [0, 1_000_001] {
        let err = refusal(|c| session(c).streams[0].clock_rate_hz = Some(rate));
        assert_eq!(err.origin, "sessions[0].streams[0]");
        assert!(err.message.starts_with("invalid clock_rate_hz") && err.message.contains(&rate.to_string()), "{err}");
    }
    assert_eq!(origin_after(|c| session(c).streams[0].clock_rate_hz = Some(8000)), "<valid>");
    assert_eq!(origin_after(|c| session(c).streams[0].kind = MediaKind::Video), "<valid>");
}

#[test]
fn ssrc_is_unique_across_sessions() {
    let err = refusal(|c| {
        c.sessions.push(SessionSpec {
            id: "room-2".into(),
            endpoints: vec![endpoint("eve", Some("127.0.0.1:50020"), false)],
            streams: vec![stream("e", "eve", 2)],
            subscriptions: vec![],
        });
    });
    assert_eq!((err.origin.as_str(), err.code), ("sessions[1].streams[0]", Code::AlreadyExists));
    assert!(err.message.contains("ssrc 2"), "{err}");
}

#[test]
fn subscription_stream_and_endpoint_must_exist() {
    let err = refusal(|c| session(c).subscriptions[2].stream = "x".into());
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].subscriptions[2]", Code::NotFound));
    assert!(err.message.contains("stream x"), "{err}");
    let err = refusal(|c| session(c).subscriptions[2].endpoint = "x".into());
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].subscriptions[2]", Code::NotFound));
    assert!(err.message.contains("endpoint x"), "{err}");
}

/// The one thing the config refused by rules of its own that it now takes: the API holds a subscription to a
/// latching endpoint without an address until the endpoint latches (when a stream it publishes latches), and so
/// does the config now, one rule for both.
#[test]
fn a_latching_subscriber_without_an_address_is_held_as_through_the_api() {
    assert_eq!(origin_after(|c| session(c).subscriptions.push(subscription("a", "dave", None))), "<valid>");
}

#[test]
fn a_publisher_cannot_subscribe_to_its_own_stream() {
    let err = refusal(|c| session(c).subscriptions.push(subscription("a", "alice", Some(99))));
    assert_eq!(err.origin, "sessions[0].subscriptions[3]");
    assert!(err.message.starts_with("invalid endpoint_id"), "{err}");
}

#[test]
fn stream_endpoint_pair_at_most_once() {
    let err = refusal(|c| session(c).subscriptions.push(subscription("a", "bob", Some(99))));
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].subscriptions[3]", Code::InvalidArgument));
    assert!(err.message.contains("endpoint bob already receives stream a by subscription a.bob"), "{err}");
    // The very same entry twice is refused the same way (it is a second subscription, not a retry).
    let err = refusal(|c| session(c).subscriptions.push(subscription("a", "bob", Some(11))));
    assert!(err.message.contains("already receives stream a"), "{err}");
}

#[test]
fn subscriber_family_must_match_a_media_address() {
    let mut config = base();
    config.media.addresses = vec!["[::1]:40000".parse().unwrap()];
    let err = check(&config, 1, &chains(&config)).unwrap_err();
    // The first IPv4 endpoint is refused, publisher or subscriber: nothing could be sent to it nor received.
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].endpoints[0]", Code::InvalidArgument));
    assert_eq!(err.message, "invalid media_address: 127.0.0.1:50000: this node has no IPv4 media address");
}

#[test]
fn payload_type_map_rules() {
    let err = refusal(|c| session(c).subscriptions[1].payload_type_map = vec![[96, 128]]);
    assert_eq!(err.origin, "sessions[0].subscriptions[1]");
    assert!(err.message.starts_with("invalid payload_type_map[0].to: 128"), "{err}");
    let err = refusal(|c| session(c).subscriptions[1].payload_type_map = vec![[200, 100]]);
    assert!(err.message.starts_with("invalid payload_type_map[0].from: 200"), "{err}");
    let err = refusal(|c| session(c).subscriptions[1].payload_type_map = vec![[96, 100], [97, 101], [96, 102]]);
    assert!(err.message.starts_with("invalid payload_type_map[2].from: 96"), "{err}");
    assert_eq!(origin_after(|c| session(c).subscriptions[1].payload_type_map = vec![[96, 100], [100, 96]]), "<valid>");
}

#[test]
fn subscriptions_per_stream_limit() {
    let err = refusal(|c| c.limits.max_subscriptions_per_stream = 1);
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].subscriptions[2]", Code::ResourceExhausted));
    assert_eq!(err.message, "limit limits.max_subscriptions_per_stream = 1 reached");
    assert_eq!(origin_after(|c| c.limits.max_subscriptions_per_stream = 2), "<valid>");
}

#[test]
fn admission_limits_count_static_sessions() {
    let err = refusal(|c| c.admission.max_endpoints = 3);
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].endpoints[3]", Code::ResourceExhausted));
    assert!(err.message.contains("admission.max_endpoints = 3"), "{err}");
}

#[test]
fn out_ssrc_unique_per_endpoint() {
    let err = refusal(|c| session(c).subscriptions[1].out_ssrc = Some(11));
    assert_eq!((err.origin.as_str(), err.code), ("sessions[0].subscriptions[1]", Code::InvalidArgument));
    assert!(err.message.starts_with("invalid out_ssrc: 0xb"), "{err}");
    // The same out_ssrc toward another endpoint is fine.
    assert_eq!(origin_after(|c| session(c).subscriptions[2].out_ssrc = Some(11)), "<valid>");
    // An explicit out_ssrc equal to an SSRC the endpoint already receives unchanged collides.
    let err = refusal(|c| session(c).subscriptions.push(subscription("v", "carol", Some(1))));
    assert_eq!(err.origin, "sessions[0].subscriptions[3]");
    assert!(err.message.starts_with("invalid out_ssrc"), "{err}");
}

#[test]
fn static_subscription_ids_are_valid_ids_and_one_per_entry() {
    let none = HashSet::new();
    assert_eq!(static_subscription_id(0, 1, "cam", "bob", &none), "cam.bob");
    let long = "x".repeat(40);
    assert_eq!(static_subscription_id(2, 3, &long, &long, &none), "static.2.3");
    let taken: HashSet<String> = ["a.b.c".to_owned(), "static.0.4".to_owned()].into();
    assert_eq!(static_subscription_id(0, 1, "a", "b.c", &taken), "static.0.1");
    assert_eq!(static_subscription_id(0, 4, "a", "b.c", &taken), "static.0.4.1");
    // Two different pairs whose natural ids are equal are both created.
    let ok = check_after(|c| {
        let s = session(c);
        s.endpoints.push(endpoint("v.bob", Some("127.0.0.1:50006"), false));
        s.streams.push(stream("a.v", "alice", 3));
        s.subscriptions.push(subscription("a", "v.bob", None));
        s.subscriptions.push(subscription("a.v", "bob", None));
    });
    assert_eq!(ok.unwrap(), 1 + 5 + 3 + 5);
}

#[test]
fn every_example_config_s_sessions_pass_the_registry() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/examples");
    let mut with_sessions = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = Config::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Err(e) = check(&config, 1, &chains(&config)) {
                panic!("{}: {e}", path.display());
            }
            with_sessions += usize::from(!config.sessions.is_empty());
        }
    }
    assert!(with_sessions >= 1, "static-conference.toml declares sessions");
}
