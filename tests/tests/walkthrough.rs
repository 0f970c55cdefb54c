//! The README's walk-through, as written: its `ringfwd ctl` commands, read from README.md itself, run against a
//! daemon on the built-in default config (free ports, its token in a private `RUNTIME_DIRECTORY`, which ctl
//! finds by the same rule: no `--token`), then `tests/scripts/walkthrough.py` as alice and bob; bob must receive
//! every packet alice sent with his SSRC 0x22222222 and payload type 109. Alice's and bob's addresses
//! (127.0.0.1:5000 and :5002 in the README) are replaced by free ports, the only change made to the commands.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringfwd_tests::api::run_ringfwd;
use ringfwd_tests::interop::require_program;
use ringfwd_tests::process::Process;
use ringfwd_tests::Daemon;

/// Alice's and bob's addresses in the README's commands.
const README_ALICE: &str = "127.0.0.1:5000";
const README_BOB: &str = "127.0.0.1:5002";
/// Packets the script sends (its default).
const SENT: usize = 50;
/// How long the script may run: 50 packets 20 ms apart, then at most its 1 s wait after the last arrival.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `$ringfwd ctl ...` commands of the walk-through's first shell block that has them, continuation lines
/// joined and comments dropped, each as its arguments after `ctl`.
fn walkthrough_commands(readme: &str) -> Vec<Vec<String>> {
    let section = readme.split("\n## Walk-through").nth(1).expect("a Walk-through section in README.md");
    let block = section
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap_or_default())
        .find(|block| block.contains("$ringfwd ctl"))
        .expect("a sh block with $ringfwd ctl in the walk-through");
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| line.trim().strip_prefix("$ringfwd ctl "))
        .map(|command| command.split('#').next().unwrap_or_default())
        .map(|command| command.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn free_loopback_address() -> String {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("free port").to_string()
}

#[test]
fn the_readme_commands_and_script_forward_alices_rtp_to_bob_rewritten() {
    if !require_program("python3", "this test runs tests/scripts/walkthrough.py", "install Python 3") {
        return;
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let commands = walkthrough_commands(&readme);
    let (alice, bob) = (free_loopback_address(), free_loopback_address());
    assert!(commands.len() >= 5, "the walk-through's commands: {commands:?}");
    let text = format!("{commands:?}");
    assert!(text.contains(README_ALICE) && text.contains(README_BOB), "the README's addresses moved: {text}");

    let daemon = Daemon::spawn(None);
    let runtime = daemon.dev_token_file.parent().expect("the token's directory").to_str().expect("utf-8").to_owned();
    let api = daemon.api.to_string();
    let env = [("RUNTIME_DIRECTORY", runtime.as_str()), ("RINGFWD_API", api.as_str())];
    for command in &commands {
        let args: Vec<String> = std::iter::once("ctl".to_owned())
            .chain(command.iter().map(|a| a.replace(README_ALICE, &alice).replace(README_BOB, &bob)))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_ringfwd(&args, &env);
        assert!(out.success, "ringfwd {args:?} failed: {out:?}");
    }

    let media = daemon.media.iter().find(|m| m.is_ipv4()).expect("an IPv4 media address").to_string();
    let script = repo_root().join("tests/scripts/walkthrough.py").display().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let args = [script, "--media".into(), media, "--send-from".into(), alice, "--receive-on".into(), bob];
    let mut peers = Process::start("walkthrough", dir.path(), "python3", &args, &[]);
    peers.wait_exit(SCRIPT_TIMEOUT);
    let output = peers.output();

    let rtp: Vec<&str> = output.lines().filter(|l| l.starts_with("rtp ")).collect();
    assert_eq!(rtp.len(), SENT, "bob received every packet alice sent:\n{output}");
    for line in &rtp {
        assert!(line.contains("ssrc=0x22222222 pt=109 seq="), "not rewritten for bob: {line}\n{output}");
    }
    let summary = output.lines().find(|l| l.starts_with("summary: ")).expect("a summary line");
    assert!(summary.contains(&format!("received {SENT} RTP ({SENT} with ssrc=0x22222222 pt=109)")), "{summary}");
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    assert_eq!(exit.total("rx_rtp"), SENT as u64, "alice's packets, each received once");
}

#[test]
fn the_command_reader_sees_every_walkthrough_command() {
    let readme = "# x\n## Walk-through\n\n```sh\nringfwd=target/release/ringfwd\n$ringfwd ctl session create c \
                  # comment\n$ringfwd ctl sub create c s --stream a \\\n    --pt-map 1:2\n```\n\n```sh\n\
                  $ringfwd ctl node\n```\n";
    let commands = walkthrough_commands(readme);
    assert_eq!(
        commands,
        [vec!["session", "create", "c"], vec!["sub", "create", "c", "s", "--stream", "a", "--pt-map", "1:2"]]
    );
}
