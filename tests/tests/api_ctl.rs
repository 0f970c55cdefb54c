//! `ringfwd ctl` as a process against the real daemon: tables by default, JSON with `--json`, the token from
//! `--token` or `RINGFWD_TOKEN`, a non-zero exit with the server's status on error, a message saying how to get
//! a token when there is none; SSRCs taken in decimal or hex, shown in hex in tables and as numbers in JSON; the
//! latched address in `endpoint get` and RTX in `subscription get`; and a call set up with it that forwards real
//! RTP.

use std::time::Duration;

use ringfwd_tests::api::{ctl, dev_token, parse_json, run_ringfwd, v1, Output};
use ringfwd_tests::{rtp_fields, rtp_packet, Api, Daemon, Peer};

const MEDIA: &str = "[media]\naddresses = [\"127.0.0.1:0\"]\n";

#[track_caller]
fn ok(out: Output) -> String {
    assert!(out.success, "ringfwd ctl failed: {out:?}");
    out.stdout
}

#[track_caller]
fn json(out: Output) -> serde_json::Value {
    parse_json(&ok(out))
}

#[test]
fn ctl_prints_tables_and_json_and_exits_non_zero_with_the_servers_error() {
    let daemon = Daemon::start(MEDIA);
    let token = dev_token(&daemon);

    let table = ok(ctl(&daemon, &token, &["session", "create", "x"]));
    assert!(table.contains("SESSION") && table.lines().any(|l| l.split_whitespace().any(|w| w == "x")), "{table}");

    let got = json(ctl(&daemon, &token, &["--json", "session", "get", "x"]));
    assert_eq!(got["sessionId"], "x", "{got}");

    let missing = ctl(&daemon, &token, &["session", "get", "missing"]);
    assert!(!missing.success, "{missing:?}");
    assert!(missing.stderr.contains("NotFound") && missing.stderr.contains("missing"), "{missing:?}");

    let invalid = ctl(&daemon, &token, &["session", "create", "no spaces"]);
    assert!(!invalid.success && invalid.stderr.contains("InvalidArgument"), "{invalid:?}");
    assert!(invalid.stderr.contains("session_id"), "{invalid:?}");

    // The token and the address from the environment.
    let api = daemon.api.to_string();
    let listed =
        run_ringfwd(&["ctl", "--json", "session", "list"], &[("RINGFWD_TOKEN", &token), ("RINGFWD_API", &api)]);
    let listed: serde_json::Value = serde_json::from_str(&ok(listed)).expect("JSON");
    let ids: Vec<&str> =
        listed["sessions"].as_array().expect("sessions").iter().filter_map(|s| s["sessionId"].as_str()).collect();
    assert_eq!(ids, ["x"]);

    // A token the daemon did not sign is the server's UNAUTHENTICATED, not a client failure.
    let forged = ctl(&daemon, &format!("{token}x"), &["session", "list"]);
    assert!(!forged.success && forged.stderr.contains("Unauthenticated"), "{forged:?}");

    let deleted = json(ctl(&daemon, &token, &["--json", "session", "delete", "x"]));
    assert_eq!(deleted["sessions"], 1, "{deleted}");
    assert!(daemon.stop().success);
}

#[test]
fn ctl_without_any_token_says_how_to_get_one() {
    let daemon = Daemon::start(MEDIA);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("ctl.toml");
    let absent = dir.path().join("no-such-token");
    std::fs::write(&config, format!("[auth]\ndev_token_file = {:?}\n", absent.display().to_string())).expect("config");
    let api = daemon.api.to_string();
    let out = run_ringfwd(&["ctl", "--api", &api, "--config", config.to_str().expect("utf-8"), "session", "list"], &[]);
    assert!(!out.success, "{out:?}");
    for hint in ["--token", "RINGFWD_TOKEN", "ringfwd token", absent.to_str().expect("utf-8")] {
        assert!(out.stderr.contains(hint), "the message does not mention {hint:?}: {}", out.stderr);
    }
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(daemon.stop().success);
}

#[test]
fn a_call_set_up_with_ctl_forwards_pauses_and_unsubscribes() {
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let daemon = Daemon::start(MEDIA);
    let media = daemon.media[0];
    let token = dev_token(&daemon);
    let (pub_addr, sub_addr) = (publisher.addr().to_string(), subscriber.addr().to_string());

    ok(ctl(&daemon, &token, &["session", "create", "c"]));
    let ep = json(ctl(&daemon, &token, &["--json", "endpoint", "create", "c", "pub", "--address", &pub_addr]));
    assert_eq!(ep["sendTo"][0], media.to_string(), "{ep}");
    ok(ctl(&daemon, &token, &["endpoint", "create", "c", "sub", "--address", &sub_addr]));
    let stream = ok(ctl(
        &daemon,
        &token,
        &["stream", "create", "c", "v", "--endpoint", "pub", "--ssrc", "0x1234", "--kind", "video"],
    ));
    assert!(stream.contains("0x00001234") && stream.contains("video"), "the stream is shown: {stream}");
    ok(ctl(&daemon, &token, &["sub", "create", "c", "s", "--stream", "v", "--endpoint", "sub", "--out-ssrc", "99"]));

    let send = |seq: u16| publisher.send(&rtp_packet(0x1234, seq, 0, 96, false, b"via ctl"), media);
    send(1);
    let got = subscriber.recv(1, Duration::from_secs(3));
    assert_eq!(got.len(), 1, "forwarded after ctl set it up");
    assert_eq!(rtp_fields(&got[0]).ssrc, 99);

    let paused = json(ctl(&daemon, &token, &["--json", "sub", "pause", "c", "s"]));
    assert_eq!(paused["paused"], true, "{paused}");
    send(2);
    assert!(subscriber.drain(Duration::from_millis(300)).is_empty(), "nothing while paused");
    ok(ctl(&daemon, &token, &["sub", "resume", "c", "s"]));
    // Its RTX settings show in the table.
    ok(ctl(&daemon, &token, &["sub", "update", "c", "s", "--rtx", "0x77:97"]));
    let table = ok(ctl(&daemon, &token, &["sub", "get", "c", "s"]));
    assert!(table.contains("RTX") && table.contains("0x00000077 pt 97"), "RTX shown: {table}");
    send(3);
    assert_eq!(subscriber.recv(1, Duration::from_secs(3)).len(), 1, "forwarded again after resume");

    ok(ctl(&daemon, &token, &["sub", "delete", "c", "s"]));
    send(4);
    assert!(subscriber.drain(Duration::from_millis(300)).is_empty(), "nothing after delete");
    let node = json(ctl(&daemon, &token, &["--json", "node"]));
    assert_eq!(node["usage"]["streams"], 1, "{node}");
    assert!(node["usage"]["subscriptions"].is_null() || node["usage"]["subscriptions"] == 0, "{node}");
    assert!(daemon.stop().success);
}

#[test]
fn ssrcs_are_taken_in_decimal_or_hex_shown_hex_in_tables_and_as_numbers_in_json() {
    let daemon = Daemon::start(MEDIA);
    let token = dev_token(&daemon);
    let ctl_ok = |args: &[&str]| ok(ctl(&daemon, &token, args));
    ctl_ok(&["session", "create", "c"]);
    ctl_ok(&["endpoint", "create", "c", "pub", "--address", "127.0.0.1:5000"]);
    ctl_ok(&["endpoint", "create", "c", "sub", "--address", "127.0.0.1:5002"]);
    // Decimal 4660 is 0x1234; 0X in capitals is hex too.
    let create = ["stream", "create", "c", "v", "--endpoint", "pub", "--kind", "video", "--ssrc", "4660"];
    let table = ctl_ok(&create);
    assert!(table.contains("0x00001234"), "a decimal SSRC, shown in hex: {table}");
    let got = json(ctl(&daemon, &token, &["--json", "stream", "get", "c", "v"]));
    assert_eq!(got["ssrc"], 4660, "the protobuf JSON mapping: a number: {got}");
    let updated = json(ctl(&daemon, &token, &["--json", "stream", "update", "c", "v", "--ssrc", "0X5678"]));
    assert_eq!(updated["ssrc"], 0x5678, "{updated}");
    let sub = ["sub", "create", "c", "s", "--stream", "v", "--endpoint", "sub", "--out-ssrc", "0xabc"];
    let table = ctl_ok(&[&sub[..], &["--rtx", "2749:97"]].concat());
    assert!(table.contains("0x00000abc") && table.contains("0x00000abd pt 97"), "{table}");
    let got = json(ctl(&daemon, &token, &["--json", "sub", "update", "c", "s", "--rtx", "0xabe:98"]));
    assert_eq!((got["outSsrc"].as_u64(), got["rtx"]["ssrc"].as_u64()), (Some(0xabc), Some(0xabe)), "{got}");
    // What is neither is refused before anything is sent, saying what would do.
    let bad = ctl(&daemon, &token, &["stream", "update", "c", "v", "--ssrc", "0x1_0000_0000"]);
    assert!(!bad.success && bad.stderr.contains("decimal (4660) or 0x-prefixed hex (0x1234)"), "{bad:?}");
    let bad = ctl(&daemon, &token, &["sub", "update", "c", "s", "--rtx", "12ab:97"]);
    assert!(!bad.success && bad.stderr.contains("\"12ab\""), "{bad:?}");
    // `ctl --help` says all of it.
    let help = ok(run_ringfwd(&["ctl", "--help"], &[]));
    for said in ["0x-prefixed hex", "decimal number", "protobuf JSON mapping", "--out-ssrc", "--rtx"] {
        assert!(help.contains(said), "ctl --help does not say {said:?}: {help}");
    }
    assert!(daemon.stop().success);
}

#[test]
fn endpoint_get_shows_where_a_latching_endpoint_latched() {
    let publisher = Peer::bind("127.0.0.1");
    let pub_addr = publisher.addr().to_string();
    let daemon = Daemon::start(MEDIA);
    let token = dev_token(&daemon);
    let ctl_ok = |args: &[&str]| ok(ctl(&daemon, &token, args));
    ctl_ok(&["session", "create", "c"]);
    ctl_ok(&["endpoint", "create", "c", "nat", "--latching"]);
    ctl_ok(&["stream", "create", "c", "a", "--endpoint", "nat", "--ssrc", "0x5151", "--kind", "audio"]);
    let before = ctl_ok(&["endpoint", "get", "c", "nat"]);
    assert!(before.contains("LATCHED ADDRESS") && !before.contains(&pub_addr), "{before}");

    publisher.send(&rtp_packet(0x5151, 1, 0, 0, false, b"latch here"), daemon.media[0]);
    // The latch is recorded before its source_changed event is published.
    let api = Api::dev(&daemon);
    let latched = api.wait_event("c", Duration::from_secs(5), |kind| match kind {
        v1::event::Kind::SourceChanged(s) => Some(s.source_address.clone()),
        _ => None,
    });
    assert_eq!(latched.as_deref(), Some(pub_addr.as_str()), "no source_changed to the publisher's address");
    let table = ctl_ok(&["endpoint", "get", "c", "nat"]);
    let row = table.lines().find(|l| l.contains(" nat ")).unwrap_or_else(|| panic!("no row for nat: {table}"));
    assert!(row.contains(&pub_addr), "the latched address is shown: {table}");
    let got = json(ctl(&daemon, &token, &["--json", "endpoint", "get", "c", "nat"]));
    assert_eq!((got["latching"].as_bool(), got["latchedAddress"].as_str()), (Some(true), Some(pub_addr.as_str())));
    assert!(daemon.stop().success);
}

#[test]
fn ctl_flags_go_anywhere_and_its_errors_say_what_to_do() {
    let daemon = Daemon::start(MEDIA);
    let token = dev_token(&daemon);
    let api = daemon.api.to_string();
    // --api, --token and --timeout-ms after the subcommand, as --json already could be.
    let node =
        json(run_ringfwd(&["ctl", "node", "--api", &api, "--token", &token, "--timeout-ms", "5000", "--json"], &[]));
    assert!(node["workers"].is_array(), "{node}");
    // Nothing listens there: the reason, not just "transport error", and what to check.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").to_string();
    let out = run_ringfwd(&["ctl", "node", "--api", &closed, "--token", &token], &[]);
    assert!(!out.success, "{out:?}");
    for hint in ["Connection refused", "--api"] {
        assert!(out.stderr.contains(hint), "the message does not mention {hint:?}: {}", out.stderr);
    }
    // A config with keys has no development token: say so rather than send a stale one.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("keys.toml");
    let key = "[[auth.keys]]\nid = \"ops\"\nsecret_base64 = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n";
    std::fs::write(&config, format!("[api]\nlisten = \"127.0.0.1:1\"\n{key}")).expect("config");
    let out = run_ringfwd(&["ctl", "node", "--config", config.to_str().expect("utf-8")], &[]);
    assert!(!out.success, "{out:?}");
    for hint in ["[[auth.keys]]", "--token", "ringfwd token"] {
        assert!(out.stderr.contains(hint), "the message does not mention {hint:?}: {}", out.stderr);
    }
    assert!(daemon.stop().success);
}
