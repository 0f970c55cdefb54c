//! Bearer tokens on the real daemon with a configured `[[auth.keys]]` key, tokens minted by `ringfwd token`:
//! UNAUTHENTICATED without a token, with garbage, with a token of a key the daemon does not have (unknown key id,
//! or the right id with another secret); PERMISSION_DENIED for a read-only token writing, which may still read.
//! (Expiry is unit-tested: the shortest token lives 1 s and the verifier allows leeway.)

use ringfwd_tests::api::{expect_status, Code, KeyedConfig};
use ringfwd_tests::{Api, Daemon};

/// base64 of the 32 bytes `0123456789abcdef0123456789abcdef`.
const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// base64 of 32 bytes of `k`: a secret the daemon does not have.
const OTHER_SECRET: &str = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=";

#[test]
fn tokens_are_checked_and_read_only_cannot_write() {
    let config = KeyedConfig::new("[media]\naddresses = [\"127.0.0.1:0\"]\n", "ops", SECRET);
    let daemon = Daemon::start(&config.text);
    assert!(!daemon.dev_token_file.exists(), "no development token when keys are configured");
    let admin = Api::connect(daemon.api, Some(&config.mint("admin", "1h")));
    let reader = Api::connect(daemon.api, Some(&config.mint("read", "1h")));

    // Unauthenticated: reads and writes alike, and nothing is created.
    let anonymous = Api::connect(daemon.api, None);
    expect_status(anonymous.session("x"), Code::Unauthenticated, &["missing token"]);
    expect_status(anonymous.get_node_info(Default::default()), Code::Unauthenticated, &["missing token"]);
    let garbage = Api::connect(daemon.api, Some("garbage"));
    expect_status(garbage.list_sessions(Default::default()), Code::Unauthenticated, &["malformed"]);
    let wrong_id = KeyedConfig::new("", "elsewhere", SECRET).mint("admin", "1h");
    let wrong_id = Api::connect(daemon.api, Some(&wrong_id));
    expect_status(wrong_id.session("x"), Code::Unauthenticated, &["unknown key id", "elsewhere"]);
    let wrong_secret = KeyedConfig::new("", "ops", OTHER_SECRET).mint("admin", "1h");
    let wrong_secret = Api::connect(daemon.api, Some(&wrong_secret));
    expect_status(wrong_secret.session("x"), Code::Unauthenticated, &["signature"]);
    expect_status(wrong_secret.list_sessions(Default::default()), Code::Unauthenticated, &["signature"]);

    // Read-only: every write is PERMISSION_DENIED, every read works.
    expect_status(reader.session("x"), Code::PermissionDenied, &["read-only", "admin"]);
    expect_status(reader.drain(Default::default()), Code::PermissionDenied, &["read-only"]);
    assert_eq!(reader.session_ids(), Vec::<String>::new(), "nothing was created by refused calls");
    assert!(!reader.node().draining, "the refused Drain did nothing");

    // Admin writes; the reader sees it and still cannot delete it.
    admin.session("x").expect("admin creates");
    assert_eq!(reader.session_ids(), vec!["x".to_string()]);
    let request = ringfwd_tests::api::v1::DeleteSessionRequest { session_id: "x".into() };
    expect_status(reader.delete_session(request.clone()), Code::PermissionDenied, &["read-only"]);
    assert_eq!(reader.node().usage.expect("usage").sessions, 1);
    admin.delete_session(request).expect("admin deletes");
    assert!(reader.session_ids().is_empty());
    assert!(daemon.stop().success);
}
