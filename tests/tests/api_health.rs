//! The standard gRPC health service and server reflection of the real daemon, as a third-party client sees
//! them: Python's grpcio with grpcio-health-checking and grpcio-reflection (`tests/scripts/grpc_probe.py`,
//! installed into a project-local venv by `tests/scripts/install-grpc-python.sh`, which this test runs itself
//! when they are missing, and skips when that fails unless `RINGFWD_REQUIRE_INTEROP=1`), which never sends a
//! token. The daemon has a configured key, so every `ringfwd.v1.Ringfwd` call needs a real token.
//!
//! Asserted on what the client printed: Check of "" and of `ringfwd.v1.Ringfwd` is SERVING; reflection (v1 and
//! v1alpha) lists `ringfwd.v1.Ringfwd` and `grpc.health.v1.Health`, and resolves the API's file with its
//! `CreateSession` method; a `ringfwd.v1.Ringfwd` call without a token is still UNAUTHENTICATED; after an admin
//! `Drain` Check is NOT_SERVING and after its cancel SERVING again, and a Watch sees both changes; once SIGTERM
//! has begun the shutdown, a Watch sees NOT_SERVING.
//!
//! Over TLS (`[api.tls]`, certificates made by the test), the same client checks health with
//! `grpc.ssl_channel_credentials`: SERVING with the CA, UNAVAILABLE in plaintext or with another CA; with
//! `client_ca_file`, UNAVAILABLE without a client certificate and SERVING with one.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringfwd_tests::api::{expect_status, v1, Code, KeyedConfig};
use ringfwd_tests::interop::install;
use ringfwd_tests::tls::TestPki;
use ringfwd_tests::{Api, Daemon};
use serde_json::{json, Value};

/// base64 of the 32 bytes `0123456789abcdef0123456789abcdef`.
const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// How long one run of the client may take (its calls are bounded at 10 s; Python starts in well under 1 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a watcher may take to print its next line.
const WATCH_LINE_TIMEOUT: Duration = Duration::from_secs(15);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv the install script fills; passed to it explicitly, so the two never disagree.
fn venv() -> PathBuf {
    repo_root().join("target/grpc-python-venv")
}

/// Runs the install script, which does nothing when the venv already has the packages and installs them
/// otherwise; answers the venv's python, or `None` when it could not and the test must return (skipped; see
/// [`ringfwd_tests::interop::install`]).
fn ensure_grpc_python() -> Option<PathBuf> {
    let venv = venv();
    let needs = "this test needs Python's grpcio, grpcio-health-checking and grpcio-reflection";
    install("install-grpc-python.sh", &[("RINGFWD_GRPC_VENV", venv.as_os_str())], needs)
        .then(|| venv.join("bin/python"))
}

/// The client, run against `daemon` with `args`, its stdout piped.
fn client(python: &Path, daemon: &Daemon, args: &[&str]) -> Child {
    client_tls(python, daemon, &[], args)
}

/// [`client`] with the probe's TLS options `tls` (`--ca FILE`, `--cert FILE`, `--key FILE`).
fn client_tls(python: &Path, daemon: &Daemon, tls: &[&Path], args: &[&str]) -> Child {
    let options =
        ["--ca", "--cert", "--key"].iter().zip(tls).flat_map(|(flag, path)| [flag.as_ref(), path.as_os_str()]);
    Command::new(python)
        .arg(repo_root().join("tests/scripts/grpc_probe.py"))
        .args(options)
        .arg(daemon.api.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn grpc_probe.py")
}

/// The client's stdout, line by line as JSON, as it prints them.
fn json_lines(child: &mut Child) -> mpsc::Receiver<Value> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "unparsed": line }));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    rx
}

/// Every line of one run of the client, which must exit 0 within [`CLIENT_TIMEOUT`].
fn run(python: &Path, daemon: &Daemon, args: &[&str]) -> Vec<Value> {
    run_tls(python, daemon, &[], args)
}

/// [`run`] with the probe's TLS options (see [`client_tls`]).
fn run_tls(python: &Path, daemon: &Daemon, tls: &[&Path], args: &[&str]) -> Vec<Value> {
    let mut child = client_tls(python, daemon, tls, args);
    let lines = json_lines(&mut child);
    let mut printed = Vec::new();
    let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("grpc_probe.py {args:?} did not finish within {CLIENT_TIMEOUT:?}; printed {printed:?}");
            }
        }
    }
    let status = child.wait().expect("wait for grpc_probe.py");
    assert!(status.success(), "grpc_probe.py {args:?} failed ({status}); printed {printed:?}");
    printed
}

/// A running `watch` of the client: its lines as they come; killed on drop.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Watch {
    fn start(python: &Path, daemon: &Daemon, service: &str, updates: u32) -> Watch {
        let mut child = client(python, daemon, &["watch", service, &updates.to_string()]);
        let lines = json_lines(&mut child);
        Watch { child, lines }
    }

    fn next(&self) -> Value {
        self.lines.recv_timeout(WATCH_LINE_TIMEOUT).unwrap_or_else(|e| panic!("no watch line ({e:?})"))
    }

    /// Waits for the client to exit on its own (it has seen all its updates) and answers whether it succeeded.
    fn finish(mut self) -> bool {
        let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the watcher") {
                return status.success();
            }
            assert!(std::time::Instant::now() < deadline, "the watcher did not exit within {CLIENT_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn checks(status: &str) -> Vec<Value> {
    vec![json!({"check": "", "status": status}), json!({"check": "ringfwd.v1.Ringfwd", "status": status})]
}

fn watched(service: &str, status: &str) -> Value {
    json!({"watch": service, "status": status})
}

#[test]
fn health_and_reflection_answer_a_standard_client_without_a_token() {
    let Some(python) = ensure_grpc_python() else {
        return;
    };
    let config = KeyedConfig::new("[media]\naddresses = [\"127.0.0.1:0\"]\n", "ops", SECRET);
    let daemon = Daemon::start(&config.text);
    let admin = Api::connect(daemon.api, Some(&config.mint("admin", "1h")));

    assert_eq!(run(&python, &daemon, &["check"]), checks("SERVING"));

    let reflected = run(&python, &daemon, &["reflect"]);
    assert_eq!(reflected.len(), 3, "{reflected:?}");
    for (line, version) in reflected.iter().zip(["v1", "v1alpha"]) {
        assert_eq!(line["reflection"], version, "{line}");
        let services = line["services"].as_array().unwrap_or_else(|| panic!("no services listed: {line}"));
        for service in ["ringfwd.v1.Ringfwd", "grpc.health.v1.Health"] {
            assert!(services.contains(&json!(service)), "{version} does not list {service}: {line}");
        }
    }
    let api = &reflected[2];
    assert_eq!(api["service"], "ringfwd.v1.Ringfwd", "{api}");
    assert_eq!(api["file"], "ringfwd/v1/ringfwd.proto", "{api}");
    let methods = api["methods"].as_array().unwrap_or_else(|| panic!("no methods: {api}"));
    for method in ["CreateSession", "Drain", "WatchEvents"] {
        assert!(methods.contains(&json!(method)), "{method} not resolved: {api}");
    }

    // The exemption is by service: the API itself still wants a token, from Python as from Rust.
    let refused = run(&python, &daemon, &["no-token"]);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["code"], "UNAUTHENTICATED", "{refused:?}");
    assert!(refused[0]["details"].as_str().is_some_and(|d| d.contains("missing token")), "{refused:?}");
    let anonymous = Api::connect(daemon.api, None);
    expect_status(anonymous.get_node_info(Default::default()), Code::Unauthenticated, &["missing token"]);
    expect_status(anonymous.drain(Default::default()), Code::Unauthenticated, &["missing token"]);
    assert!(!admin.node().draining, "the refused Drain did nothing");

    // Drain and its cancel, seen by Check and by a Watch opened before.
    let watch = Watch::start(&python, &daemon, "ringfwd.v1.Ringfwd", 3);
    assert_eq!(watch.next(), watched("ringfwd.v1.Ringfwd", "SERVING"));
    assert!(admin.drain(v1::DrainRequest { cancel: false }).expect("admin drains").draining);
    assert_eq!(run(&python, &daemon, &["check"]), checks("NOT_SERVING"));
    assert_eq!(watch.next(), watched("ringfwd.v1.Ringfwd", "NOT_SERVING"));
    assert!(!admin.drain(v1::DrainRequest { cancel: true }).expect("admin cancels the drain").draining);
    assert_eq!(run(&python, &daemon, &["check"]), checks("SERVING"));
    assert_eq!(watch.next(), watched("ringfwd.v1.Ringfwd", "SERVING"));
    assert!(watch.finish(), "the watcher saw its three updates and exits 0");

    // Shutdown: a watcher of the overall status sees NOT_SERVING once SIGTERM arrived.
    let watch = Watch::start(&python, &daemon, "", 2);
    assert_eq!(watch.next(), watched("", "SERVING"));
    let exit = daemon.stop();
    assert_eq!(watch.next(), watched("", "NOT_SERVING"));
    assert!(watch.finish(), "the watcher saw both updates and exits 0");
    assert!(exit.success, "{}", exit.stderr);
}

/// What the probe printed for a Check that could not get through: the code of each of its two checks.
fn codes(lines: &[Value]) -> Vec<String> {
    lines.iter().map(|line| line["code"].as_str().unwrap_or("<answered>").to_owned()).collect()
}

#[test]
fn health_over_tls_answers_a_standard_client_with_the_ca_and_a_client_certificate() {
    let Some(python) = ensure_grpc_python() else {
        return;
    };
    let pki = TestPki::new();
    let media = "[media]\naddresses = [\"127.0.0.1:0\"]\n";
    let daemon = Daemon::start(&format!("{media}{}", pki.api_section(false)));
    let ca = pki.ca();
    assert_eq!(run_tls(&python, &daemon, &[&ca], &["check"]), checks("SERVING"));
    let unavailable = vec!["UNAVAILABLE".to_owned(); 2];
    assert_eq!(codes(&run(&python, &daemon, &["check"])), unavailable, "plaintext to a TLS listener");
    assert_eq!(codes(&run_tls(&python, &daemon, &[&pki.other_ca()], &["check"])), unavailable, "another CA");
    assert!(daemon.stop().success);

    let daemon = Daemon::start(&format!("{media}{}", pki.api_section(true)));
    assert_eq!(codes(&run_tls(&python, &daemon, &[&ca], &["check"])), unavailable, "no client certificate");
    let client = pki.client();
    assert_eq!(run_tls(&python, &daemon, &[&ca, &client.cert, &client.key], &["check"]), checks("SERVING"));
    let stranger = pki.other_client();
    let refused = run_tls(&python, &daemon, &[&ca, &stranger.cert, &stranger.key], &["check"]);
    assert_eq!(codes(&refused), unavailable, "a client certificate of another CA");
    assert!(daemon.stop().success);
}
