//! Installing the third-party peers of the interop tests (GStreamer, ffmpeg, baresip, Python's gRPC client), and
//! what a test does when that cannot happen.
//!
//! Owns [`install`], which runs one of the idempotent `tests/scripts/install-*.sh` scripts and prints the exact
//! command it runs, [`require_program`] for a program no script installs (python3), and the skip-or-fail
//! decision ([`when_missing`], pure): when the script fails (not root, no apt-get, no network, anything else) the
//! test skips with a line saying which script to run, unless `RINGFWD_REQUIRE_INTEROP=1` (CI sets it, after
//! running the scripts itself), in which case it fails with the script's output. Knows nothing of the programs
//! the scripts install.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that turns a skip into a failure: `1` fails, unset, empty or `0` skips.
pub const REQUIRE_VAR: &str = "RINGFWD_REQUIRE_INTEROP";

/// How long an install script may run (apt-get update and install on a slow mirror) before it is killed.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// How often a running script is looked at.
const POLL: Duration = Duration::from_millis(50);

/// What a test does when its peer cannot be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Return early, passing, after saying so and which script to run.
    Skip,
    /// Fail, with the script's output.
    Fail,
}

/// The decision for the value of [`REQUIRE_VAR`]; a value other than `1`, `0` or empty is an error naming it.
pub fn when_missing(require: Option<&OsStr>) -> Result<Missing, String> {
    match require.map(|v| v.to_str()) {
        None | Some(Some("" | "0")) => Ok(Missing::Skip),
        Some(Some("1")) => Ok(Missing::Fail),
        Some(value) => Err(format!(
            "{REQUIRE_VAR}={:?}: expected 1 (a missing interop peer fails the test) or 0 / unset (it skips)",
            value.unwrap_or("<not UTF-8>")
        )),
    }
}

/// Runs `tests/scripts/<script>` with `env` added, which installs what the test needs (and does nothing when it
/// is all there). Answers whether the test can go on: `false` means it must return now (skipped; a line on the
/// terminal says so and which script to run). Fails the test instead when [`REQUIRE_VAR`] is `1`, or set to
/// anything else than `1`/`0`. `why` says what the test needs, e.g. "the interop tests need GStreamer".
#[must_use]
pub fn install(script: &str, env: &[(&str, &OsStr)], why: &str) -> bool {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(script);
    install_script(&path, env, why, || when_missing(std::env::var_os(REQUIRE_VAR).as_deref()))
}

/// [`install`] of the script at `path`, asking `decide` what to do should it fail.
fn install_script(
    path: &Path,
    env: &[(&str, &OsStr)],
    why: &str,
    decide: impl FnOnce() -> Result<Missing, String>,
) -> bool {
    let script = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let assignments: String = env.iter().map(|(key, value)| format!("{key}={} ", Path::new(value).display())).collect();
    let command = format!("{assignments}bash {}", path.display());
    // Captured by the test harness: shown with --nocapture and when the test fails.
    eprintln!("interop: running `{command}` ({why})");
    let failure = match run(path, env) {
        Ok(()) => return true,
        Err(failure) => failure,
    };
    eprintln!("interop: `{command}` failed: {failure}");
    let fail = format!("`{command}` failed: {failure}");
    let skip = format!("`{command}` could not install it ({})", failure.summary());
    let remedy =
        format!("run `bash tests/scripts/{script}` once yourself (as root or with sudo where it uses apt-get)");
    skip_or_fail(why, &fail, &skip, &remedy, decide)
}

/// Whether `program` runs (`<program> --version` exits 0), for a test that needs a program no script installs.
/// `false`: it does not, and the test must return (skipped, saying `remedy`); fails the test instead as
/// [`install`] does.
#[must_use]
pub fn require_program(program: &str, why: &str, remedy: &str) -> bool {
    let mut version = Command::new(program);
    version.arg("--version").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let detail = match version.status() {
        Ok(status) if status.success() => return true,
        Ok(status) => format!("`{program} --version` ended with {status}"),
        Err(e) => format!("cannot run {program}: {e}"),
    };
    skip_or_fail(why, &detail, &detail, remedy, || when_missing(std::env::var_os(REQUIRE_VAR).as_deref()))
}

/// The test cannot run because `why`: fails it with `fail_detail`, or (answering `false`) says on the terminal
/// that it is skipped, with `skip_detail` and `remedy`, as `decide` says.
fn skip_or_fail(
    why: &str,
    fail_detail: &str,
    skip_detail: &str,
    remedy: &str,
    decide: impl FnOnce() -> Result<Missing, String>,
) -> bool {
    match decide() {
        Err(message) => panic!("{message}"),
        Ok(Missing::Fail) => panic!("{why}, and {fail_detail} ({REQUIRE_VAR}=1, so this fails instead of skipping)"),
        Ok(Missing::Skip) => {
            let test = std::thread::current().name().unwrap_or("<test>").to_owned();
            let line = format!(
                "SKIPPED {test}: {why}, and {skip_detail}. To run it, {remedy}; set {REQUIRE_VAR}=1 to fail instead\n"
            );
            // Straight to the terminal, past the harness's capture: a skipped test must not look like a pass.
            let _ = std::io::stderr().write_all(line.as_bytes());
            false
        }
    }
}

/// Why a script did not succeed, and what it printed.
#[derive(Debug)]
struct Failure {
    /// How it ended: an exit status, a spawn error or the timeout.
    ended: String,
    /// Its stdout and stderr, interleaved as written.
    output: String,
}

impl Failure {
    /// How it ended and its last line of output.
    fn summary(&self) -> String {
        match self.output.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => format!("{}: {}", self.ended, last.trim()),
            None => self.ended.clone(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; its output:\n{}", self.ended, self.output)
    }
}

/// Runs `bash <script>` with `env`, its output going to a temporary file (no pipe to fill), at most
/// [`INSTALL_TIMEOUT`].
fn run(script: &Path, env: &[(&str, &OsStr)]) -> Result<(), Failure> {
    let log = tempfile::NamedTempFile::new()
        .map_err(|e| Failure { ended: format!("no log file: {e}"), output: "".into() })?;
    let read_log = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let handles = log.reopen().and_then(|out| Ok((out.try_clone()?, out)));
    let (stdout, stderr) = handles.map_err(|e| Failure { ended: format!("no log file: {e}"), output: "".into() })?;
    let mut child = Command::new("bash")
        .arg(script)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| Failure { ended: format!("cannot run bash: {e}"), output: String::new() })?;
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure { ended: format!("killed after {INSTALL_TIMEOUT:?}"), output: read_log() });
            }
            Err(e) => return Err(Failure { ended: format!("cannot wait for it: {e}"), output: read_log() }),
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(Failure { ended: status.to_string(), output: read_log() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_unless_required() {
        assert_eq!(when_missing(None), Ok(Missing::Skip));
        assert_eq!(when_missing(Some(OsStr::new(""))), Ok(Missing::Skip));
        assert_eq!(when_missing(Some(OsStr::new("0"))), Ok(Missing::Skip));
        assert_eq!(when_missing(Some(OsStr::new("1"))), Ok(Missing::Fail));
    }

    #[test]
    fn a_program_that_does_not_run_skips() {
        assert!(require_program("bash", "needs bash", "install bash"));
        let missing = std::env::var_os(REQUIRE_VAR).is_none_or(|v| v != "1");
        if missing {
            assert!(!require_program("ringfwd-no-such-program", "the test needs it", "install it"));
        }
    }

    #[test]
    fn any_other_value_is_an_error_naming_the_variable() {
        for value in ["yes", "true", "2", " 1"] {
            let err = when_missing(Some(OsStr::new(value))).unwrap_err();
            assert!(err.contains(REQUIRE_VAR) && err.contains(value), "{err}");
        }
    }

    #[test]
    fn a_script_that_cannot_install_skips_or_fails_as_decided() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.sh");
        std::fs::write(&ok, "exit 0\n").unwrap();
        assert!(install_script(&ok, &[], "needs nothing", || panic!("not asked when it succeeds")));
        let missing = dir.path().join("install-nothing.sh");
        assert!(!install_script(&missing, &[], "the test needs nothing", || Ok(Missing::Skip)));
        let required = std::panic::catch_unwind(|| install_script(&missing, &[], "needs it", || Ok(Missing::Fail)));
        let message = *required.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("install-nothing.sh") && message.contains(REQUIRE_VAR), "{message}");
        let bad =
            std::panic::catch_unwind(|| install_script(&missing, &[], "x", || when_missing(Some("yes".as_ref()))));
        assert!(bad.unwrap_err().downcast::<String>().unwrap().contains("\"yes\""));
    }

    #[test]
    fn a_failing_script_reports_its_status_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fail.sh");
        std::fs::write(&script, "echo checking\necho \"no apt-get: install $WHAT by hand\" >&2\nexit 3\n").unwrap();
        let failure = run(&script, &[("WHAT", OsStr::new("gst"))]).unwrap_err();
        assert!(failure.ended.contains('3'), "{failure}");
        assert!(failure.output.contains("checking") && failure.output.contains("install gst by hand"), "{failure}");
        assert!(failure.summary().ends_with("no apt-get: install gst by hand"), "{}", failure.summary());
        let ok = dir.path().join("ok.sh");
        std::fs::write(&ok, "exit 0\n").unwrap();
        run(&ok, &[]).unwrap();
    }
}
