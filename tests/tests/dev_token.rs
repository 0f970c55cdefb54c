//! Where the development token lives, as the daemon and `ringfwd ctl` meet it on the real file system: both follow
//! the one rule of `ringfwd_tuning::dev_token` (here `RUNTIME_DIRECTORY`, and `XDG_RUNTIME_DIR` when that is
//! unset), the daemon creates the directory 0700 and writes the token 0600; a symlink planted where the token goes
//! is refused by both, as is a token directory that is a symlink or open to others. Every daemon here runs the
//! built-in config on free ports ([`FREE_PORT_FLAGS`]) with its token in a private temporary directory.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use ringfwd_tests::api::run_ringfwd;
use ringfwd_tests::daemon::{private_tempdir, FREE_PORT_FLAGS};
use ringfwd_tests::Daemon;

/// A token-shaped text a symlink may point at: following the link would have found a usable token.
const PLANTED: &str = "planted.token.text";

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("metadata").permissions().mode() & 0o7777
}

/// Runs the daemon on the default config and free ports with `env`, expecting it to refuse to start; answers
/// its stderr.
fn daemon_refuses(env: &[(&str, &str)]) -> String {
    let out = run_ringfwd(&FREE_PORT_FLAGS, env);
    assert!(!out.success, "the daemon started: {out:?}");
    out.stderr
}

#[test]
fn a_planted_symlink_at_the_token_path_is_refused_by_the_daemon_and_by_ctl() {
    let dir = private_tempdir();
    let runtime = dir.path().to_str().expect("utf-8");
    let token_path = dir.path().join("dev-token");
    // The link points at a file of this user holding a token-shaped text, mode 0600.
    let target = dir.path().join("elsewhere");
    fs::write(&target, format!("{PLANTED}\n")).expect("target");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).expect("chmod");
    symlink(&target, &token_path).expect("plant the link");

    let stderr = daemon_refuses(&[("RUNTIME_DIRECTORY", runtime)]);
    assert!(stderr.contains(token_path.to_str().expect("utf-8")) && stderr.contains("symlink"), "{stderr}");
    assert_eq!(fs::read_to_string(&target).expect("target"), format!("{PLANTED}\n"), "the target was written");
    assert!(fs::symlink_metadata(&token_path).expect("link").file_type().is_symlink(), "the link was replaced");

    // ctl reads the token before it connects: it refuses the link and never sends what it points at.
    let out = run_ringfwd(&["ctl", "--api", "127.0.0.1:1", "node"], &[("RUNTIME_DIRECTORY", runtime)]);
    assert!(!out.success, "{out:?}");
    assert!(out.stderr.contains(token_path.to_str().expect("utf-8")) && out.stderr.contains("symlink"), "{out:?}");
    assert!(!out.stderr.contains(PLANTED), "{out:?}");
}

#[test]
fn a_token_directory_that_is_a_symlink_or_open_to_others_is_refused() {
    let parent = private_tempdir();
    let real = parent.path().join("real");
    fs::create_dir(&real).expect("mkdir");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = parent.path().join("link");
    symlink(&real, &link).expect("link");
    let stderr = daemon_refuses(&[("RUNTIME_DIRECTORY", link.to_str().expect("utf-8"))]);
    assert!(stderr.contains(link.to_str().expect("utf-8")) && stderr.contains("symlink"), "{stderr}");
    assert!(!real.join("dev-token").exists(), "written through the link");

    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).expect("chmod");
    let stderr = daemon_refuses(&[("RUNTIME_DIRECTORY", real.to_str().expect("utf-8"))]);
    assert!(stderr.contains(real.to_str().expect("utf-8")) && stderr.contains("0755"), "{stderr}");
    assert!(!real.join("dev-token").exists(), "written into a shared directory");
}

#[test]
fn ctl_finds_the_token_where_the_daemon_wrote_it_by_the_same_rule() {
    // XDG_RUNTIME_DIR, with RUNTIME_DIRECTORY unset (empty counts as unset): $XDG_RUNTIME_DIR/ringfwd/dev-token,
    // the ringfwd directory created 0700.
    let xdg = private_tempdir();
    let xdg_dir = xdg.path().to_str().expect("utf-8");
    let env = [("RUNTIME_DIRECTORY", ""), ("XDG_RUNTIME_DIR", xdg_dir)];
    let daemon = Daemon::spawn_with(None, &env);
    let token_path = xdg.path().join("ringfwd/dev-token");
    assert_eq!(mode(&xdg.path().join("ringfwd")), 0o700);
    assert_eq!(mode(&token_path), 0o600);

    let api = daemon.api.to_string();
    let node = run_ringfwd(&["ctl", "--api", &api, "--json", "node"], &env);
    assert!(node.success, "ctl did not find the daemon's token: {node:?}");
    // Another environment is another place: ctl says where it looked and what to do.
    let elsewhere = private_tempdir();
    let other = [("RUNTIME_DIRECTORY", elsewhere.path().to_str().expect("utf-8"))];
    let out = run_ringfwd(&["ctl", "--api", &api, "node"], &other);
    assert!(!out.success, "{out:?}");
    let looked = elsewhere.path().join("dev-token");
    for hint in [looked.to_str().expect("utf-8"), "RUNTIME_DIRECTORY is set", "XDG_RUNTIME_DIR", "--token"] {
        assert!(out.stderr.contains(hint), "the message does not mention {hint:?}: {}", out.stderr);
    }
    assert!(daemon.stop().success);
}
