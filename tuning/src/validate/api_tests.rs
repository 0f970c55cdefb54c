//! Unit tests of the `[api]`, `[auth]` and `[admission]` rules in [`super`]: one test per rule,
//! each checking the key the error names. Tests only; never compiled into the library.

use super::*;
use crate::schema::Config;
use crate::validate::tests::key_after;

/// base64 of the 32 bytes `0123456789abcdef0123456789abcdef`.
const SECRET_32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// base64 of 31 bytes: one too few.
const SECRET_31: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZQ==";

fn auth_key(id: &str, secret_base64: &str) -> AuthKey {
    AuthKey { id: id.to_owned(), secret_base64: secret_base64.to_owned() }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn listen_port_zero_is_allowed() {
    assert_eq!(key_after(|c| c.api.listen = addr("127.0.0.1:0")), "<valid>");
    assert_eq!(key_after(|c| c.api.listen = addr("[::1]:0")), "<valid>");
}

#[test]
fn advertise_one_per_family_is_valid() {
    let key = key_after(|c| c.api.advertise_addresses = vec![addr("203.0.113.7:40000"), addr("[2001:db8::7]:40000")]);
    assert_eq!(key, "<valid>");
}

#[test]
fn advertise_port_zero_is_invalid() {
    let key = key_after(|c| c.api.advertise_addresses = vec![addr("203.0.113.7:0")]);
    assert_eq!(key, "api.advertise_addresses[0]");
}

#[test]
fn advertise_unspecified_ip_is_invalid() {
    let key = key_after(|c| c.api.advertise_addresses = vec![addr("0.0.0.0:40000")]);
    assert_eq!(key, "api.advertise_addresses[0]");
    let key = key_after(|c| c.api.advertise_addresses = vec![addr("203.0.113.7:40000"), addr("[::]:40000")]);
    assert_eq!(key, "api.advertise_addresses[1]");
}

#[test]
fn advertise_at_most_one_per_family() {
    let mut config = Config::default();
    config.api.advertise_addresses =
        vec![addr("203.0.113.7:40000"), addr("[2001:db8::7]:40000"), addr("198.51.100.1:40000")];
    let err = config.validate().unwrap_err();
    assert_eq!(err.key(), Some("api.advertise_addresses[2]"));
    let text = err.to_string();
    assert!(text.contains("= 198.51.100.1:40000:"), "{text}");
    assert!(text.contains("api.advertise_addresses[0]"), "{text}");
}

#[test]
fn advertise_family_needs_a_media_address() {
    let key = key_after(|c| {
        c.media.addresses = vec![addr("127.0.0.1:40000")];
        c.api.advertise_addresses = vec![addr("[2001:db8::7]:40000")];
    });
    assert_eq!(key, "api.advertise_addresses[0]");
}

#[test]
fn dev_key_only_on_loopback() {
    let mut config = Config::default();
    config.api.listen = addr("0.0.0.0:50051");
    let err = config.validate().unwrap_err();
    assert_eq!(err.key(), Some("auth.keys"));
    assert!(err.to_string().contains("0.0.0.0:50051"), "{err}");
    assert_eq!(key_after(|c| c.api.listen = addr("192.0.2.1:50051")), "auth.keys");
    assert_eq!(key_after(|c| c.api.listen = addr("[::1]:50051")), "<valid>");
    assert_eq!(key_after(|c| c.api.listen = addr("127.1.2.3:50051")), "<valid>");
}

#[test]
fn configured_keys_may_serve_any_address() {
    // Over TLS, or in plaintext when that is allowed (see api_tls.rs for the TLS rule).
    let key = key_after(|c| {
        c.api.listen = addr("0.0.0.0:50051");
        c.api.allow_plaintext = true;
        c.auth.keys = vec![auth_key("ops", SECRET_32)];
    });
    assert_eq!(key, "<valid>");
}

#[test]
fn key_id_rules() {
    for bad in ["", "has space", "slash/", "ä"] {
        let key = key_after(|c| c.auth.keys = vec![auth_key(bad, SECRET_32)]);
        assert_eq!(key, "auth.keys[0].id", "id {bad:?}");
    }
    let long = "k".repeat(65);
    let key = key_after(|c| c.auth.keys = vec![auth_key(&long, SECRET_32)]);
    assert_eq!(key, "auth.keys[0].id");
    let key = key_after(|c| c.auth.keys = vec![auth_key(&long[1..], SECRET_32)]);
    assert_eq!(key, "<valid>");
    let key = key_after(|c| c.auth.keys = vec![auth_key("A.z_0-9", SECRET_32)]);
    assert_eq!(key, "<valid>");
}

#[test]
fn key_ids_are_unique() {
    let key =
        key_after(|c| c.auth.keys = vec![auth_key("a", SECRET_32), auth_key("b", SECRET_32), auth_key("a", SECRET_32)]);
    assert_eq!(key, "auth.keys[2].id");
}

#[test]
fn secret_must_be_base64_and_is_never_echoed() {
    let secret = "this is not base64 but it is secret!!";
    let mut config = Config::default();
    config.auth.keys = vec![auth_key("ops", SECRET_32), auth_key("ci", secret)];
    let err = config.validate().unwrap_err();
    assert_eq!(err.key(), Some("auth.keys[1].secret_base64"));
    let text = err.to_string();
    assert!(text.contains("\"ci\""), "{text}");
    assert!(!text.contains("secret!!"), "{text}");
    assert!(!format!("{err:?}").contains("secret!!"));
}

#[test]
fn secret_must_decode_to_32_bytes() {
    let mut config = Config::default();
    config.auth.keys = vec![auth_key("ops", SECRET_31)];
    let err = config.validate().unwrap_err();
    assert_eq!(err.key(), Some("auth.keys[0].secret_base64"));
    let text = err.to_string();
    assert!(text.contains("31 bytes"), "{text}");
    assert!(!text.contains("MDEy"), "{text}");
    let unpadded = SECRET_32.trim_end_matches('=');
    let key = key_after(|c| c.auth.keys = vec![auth_key("ops", unpadded)]);
    assert_eq!(key, "<valid>");
}

#[test]
fn dev_token_file_must_be_absolute() {
    let key = "auth.dev_token_file";
    assert_eq!(key_after(|c| c.auth.dev_token_file = Some("".into())), key);
    assert_eq!(key_after(|c| c.auth.dev_token_file = Some("ringfwd-token".into())), key);
    assert_eq!(key_after(|c| c.auth.dev_token_file = Some("/".into())), key);
    assert_eq!(key_after(|c| c.auth.dev_token_file = Some("/run/ringfwd/..".into())), key);
    assert_eq!(key_after(|c| c.auth.dev_token_file = Some("/run/user/1000/ringfwd-token".into())), "<valid>");
    assert_eq!(key_after(|c| c.auth.dev_token_file = None), "<valid>");
}

#[test]
fn dev_token_ttl_range() {
    let key = "auth.dev_token_ttl_s";
    assert_eq!(key_after(|c| c.auth.dev_token_ttl_s = 59), key);
    assert_eq!(key_after(|c| c.auth.dev_token_ttl_s = 31_536_001), key);
    assert_eq!(key_after(|c| c.auth.dev_token_ttl_s = 60), "<valid>");
    assert_eq!(key_after(|c| c.auth.dev_token_ttl_s = 31_536_000), "<valid>");
}

type SetAdmission = fn(&mut Admission, u32);

#[test]
fn every_admission_limit_is_range_checked() {
    let setters: [(&str, SetAdmission); 4] = [
        ("admission.max_sessions", |a, v| a.max_sessions = v),
        ("admission.max_endpoints", |a, v| a.max_endpoints = v),
        ("admission.max_streams", |a, v| a.max_streams = v),
        ("admission.max_subscriptions", |a, v| a.max_subscriptions = v),
    ];
    for (key, set) in setters {
        assert_eq!(key_after(|c| set(&mut c.admission, 0)), key);
        assert_eq!(key_after(|c| set(&mut c.admission, (1 << 20) + 1)), key);
        assert_eq!(key_after(|c| set(&mut c.admission, 1 << 20)), "<valid>");
    }
}

#[test]
fn the_per_source_rate_limit_is_zero_or_bounded() {
    let key = "admission.max_packets_per_second_per_source";
    assert_eq!(key_after(|c| c.admission.max_packets_per_second_per_source = 0), "<valid>");
    assert_eq!(key_after(|c| c.admission.max_packets_per_second_per_source = 10_000_000), "<valid>");
    assert_eq!(key_after(|c| c.admission.max_packets_per_second_per_source = 10_000_001), key);
}

#[test]
fn validate_keys_alone_checks_only_the_keys() {
    let auth = Auth { keys: vec![auth_key("ops", SECRET_31)], ..Auth::default() };
    let err = auth.validate_keys().unwrap_err();
    assert_eq!(err.key(), Some("auth.keys[0].secret_base64"));
    let auth = Auth { dev_token_file: Some("relative".into()), ..Auth::default() };
    auth.validate_keys().unwrap();
}

#[test]
fn secret_bytes_returns_the_decoded_secret() {
    let bytes = auth_key("ops", SECRET_32).secret_bytes(0).unwrap();
    assert_eq!(bytes, b"0123456789abcdef0123456789abcdef");
    let err = auth_key("ops", SECRET_31).secret_bytes(3).unwrap_err();
    assert_eq!(err.key(), Some("auth.keys[3].secret_base64"));
}

#[test]
fn connection_bounds_are_checked_by_key() {
    assert_eq!(key_after(|c| c.api.max_connections = 0), "api.max_connections");
    assert_eq!(key_after(|c| c.api.max_connections = 65_537), "api.max_connections");
    assert_eq!(key_after(|c| c.api.handshake_timeout_ms = 99), "api.handshake_timeout_ms");
    assert_eq!(key_after(|c| c.api.handshake_timeout_ms = 600_001), "api.handshake_timeout_ms");
    assert_eq!(key_after(|c| (c.api.max_connections, c.api.handshake_timeout_ms) = (1, 100)), "<valid>");
}
