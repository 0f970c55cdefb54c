//! TLS on the control API of the real daemon (`[api.tls]`), with certificates the test makes (a CA, a server
//! certificate for `localhost` and `127.0.0.1`, client certificates of that CA and of another), driven by
//! `ringfwd ctl` as an operator would:
//!
//! - server TLS: a plaintext client is refused and told about https:// and --tls-ca; ctl with `--tls-ca` works
//!   (by IP and by `https://localhost`); ctl trusting another CA, or checking another server name, fails saying
//!   which flag to pass; ctl with the daemon's `--config` verifies against its `api.tls.cert_file` chain;
//! - mutual TLS (`client_ca_file`): ctl without a client certificate is refused and told to pass
//!   --tls-cert/--tls-key, one with a certificate of another CA is refused, one with the CA's certificate works;
//! - start-up: a TLS file that is missing or not PEM stops the daemon and `--check-config` alike, naming the key
//!   and the path.
//!
//! The token check is unchanged by TLS (the development token is sent on every call).

use std::path::Path;

use ringfwd_tests::api::{dev_token, parse_json, run_ringfwd, Output};
use ringfwd_tests::daemon::FREE_PORT_FLAGS;
use ringfwd_tests::tls::TestPki;
use ringfwd_tests::Daemon;

const MEDIA: &str = "[media]\naddresses = [\"127.0.0.1:0\"]\n";

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `ringfwd ctl --api API --token TOKEN <tls...> --json node`.
fn node(api: &str, token: &str, tls: &[&str]) -> Output {
    let mut args = vec!["ctl", "--api", api, "--token", token];
    args.extend_from_slice(tls);
    args.extend_from_slice(&["--json", "node"]);
    run_ringfwd(&args, &[])
}

#[track_caller]
fn assert_works(out: &Output) {
    assert!(out.success, "ctl failed: {out:?}");
    let info = parse_json(&out.stdout);
    assert!(info["version"].is_string(), "{info}");
}

#[track_caller]
fn assert_refused(out: &Output, hints: &[&str]) {
    assert!(!out.success, "ctl succeeded where it must not: {out:?}");
    // Shown with --nocapture: the messages an operator would read.
    eprintln!("refused: {}", out.stderr.trim());
    for hint in hints {
        assert!(out.stderr.contains(hint), "the message does not mention {hint:?}: {}", out.stderr);
    }
}

#[test]
fn ctl_over_tls_verifies_the_server_and_plaintext_is_refused() {
    let pki = TestPki::new();
    let config = format!("{MEDIA}{}", pki.api_section(false));
    let daemon = Daemon::start(&config);
    let token = dev_token(&daemon);
    let api = daemon.api.to_string();
    let port = daemon.api.port();
    let ca = pki.ca();

    assert_works(&node(&api, &token, &["--tls-ca", path(&ca)]));
    assert_works(&node(&format!("https://localhost:{port}"), &token, &["--tls-ca", path(&ca)]));

    assert_refused(&node(&api, &token, &[]), &["https://", "--tls-ca"]);
    assert_refused(&node(&api, &token, &["--tls-ca", path(&pki.other_ca())]), &["not trusted", "--tls-ca"]);
    let wrong_name = ["--tls-ca", path(&ca), "--tls-server-name", "elsewhere.example"];
    assert_refused(&node(&api, &token, &wrong_name), &["does not carry the name", "--tls-server-name"]);

    // --config: TLS and the CA come from the daemon's own [api.tls] (its cert_file holds the chain).
    let file = pki.dir().join("daemon.toml");
    std::fs::write(&file, &config).expect("write the config");
    assert_works(&node(&api, &token, &["--config", path(&file)]));
    assert!(daemon.stop().success);
}

#[test]
fn mutual_tls_needs_a_client_certificate_of_the_configured_ca() {
    let pki = TestPki::new();
    let daemon = Daemon::start(&format!("{MEDIA}{}", pki.api_section(true)));
    let token = dev_token(&daemon);
    let api = format!("https://127.0.0.1:{}", daemon.api.port());
    let ca = pki.ca();

    assert_refused(&node(&api, &token, &["--tls-ca", path(&ca)]), &["client certificate", "--tls-cert"]);
    let stranger = pki.other_client();
    let refused = ["--tls-ca", path(&ca), "--tls-cert", path(&stranger.cert), "--tls-key", path(&stranger.key)];
    assert_refused(&node(&api, &token, &refused), &["--tls-cert"]);
    let client = pki.client();
    let accepted = ["--tls-ca", path(&ca), "--tls-cert", path(&client.cert), "--tls-key", path(&client.key)];
    assert_works(&node(&api, &token, &accepted));
    // A client certificate is no token: the bearer token is still checked.
    let mut anonymous = vec!["ctl", "--api", &api, "--token", "garbage"];
    anonymous.extend_from_slice(&accepted);
    anonymous.push("node");
    assert_refused(&run_ringfwd(&anonymous, &[]), &["Unauthenticated"]);
    assert!(daemon.stop().success);
}

#[test]
fn an_unusable_tls_file_stops_the_daemon_and_check_config_naming_key_and_path() {
    let pki = TestPki::new();
    let missing = pki.dir().join("absent.key");
    let server = pki.server();
    let cases = [
        (
            format!("cert_file = {:?}\nkey_file = {:?}\n", path(&server.cert), path(&missing)),
            "api.tls.key_file",
            path(&missing).to_owned(),
        ),
        (
            // A certificate where the key should be: PEM, but no private key in it.
            format!("cert_file = {:?}\nkey_file = {:?}\n", path(&server.cert), path(&server.cert)),
            "api.tls.key_file",
            path(&server.cert).to_owned(),
        ),
        (
            format!("cert_file = {:?}\nkey_file = {:?}\n", path(&server.key), path(&server.key)),
            "api.tls.cert_file",
            path(&server.key).to_owned(),
        ),
    ];
    for (i, (tls, key, shown)) in cases.iter().enumerate() {
        let file = pki.dir().join(format!("bad-{i}.toml"));
        std::fs::write(&file, format!("{MEDIA}[api]\nlisten = \"127.0.0.1:0\"\n[api.tls]\n{tls}")).expect("config");
        let check = run_ringfwd(&["--check-config", "--config", path(&file)], &[]);
        assert_refused(&check, &[key, shown]);
        let mut start = vec!["--config", path(&file)];
        start.extend_from_slice(&FREE_PORT_FLAGS);
        let start = run_ringfwd(&start, &[]);
        assert_refused(&start, &[key, shown]);
        assert!(!start.stdout.contains("ringfwd: ready"), "it must not serve: {start:?}");
    }
}
