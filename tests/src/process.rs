//! Third-party programs as test peers (`gst-launch-1.0`, `ffmpeg`): started with their output in a log file, read
//! while they run, stopped with SIGINT (so they finish their output) and killed when that takes too long.
//!
//! Owns [`Process`]'s lifecycle: every one is killed and reaped when its handle is dropped, so no test leaves one
//! running on any exit path (a failed assertion included). Knows nothing of the programs it runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a process may take to stop after SIGINT before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How often the log and the process are looked at while waiting.
const POLL: Duration = Duration::from_millis(20);

/// A running program, its stdout and stderr going to `<dir>/<name>.log`; killed when dropped.
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `program` with `args` and `env` added to its environment, stdin closed.
    pub fn start(name: &'static str, dir: &Path, program: &str, args: &[String], env: &[(&str, &str)]) -> Process {
        let log = dir.join(format!("{name}.log"));
        let file = fs::File::create(&log).expect("process log");
        let child = Command::new(program)
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program} ({name}): {e}"));
        Process { name, child, log }
    }

    /// Its name, as given to [`Process::start`].
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        fs::read(&self.log).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    }

    /// Waits until `ready` holds for its output; fails the test (with the output) if it exits first or `timeout`
    /// passes.
    pub fn wait_output(&mut self, what: &str, timeout: Duration, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready(&self.output()) {
            let exited = self.child.try_wait().expect("wait").is_some();
            assert!(!exited, "{} exited before {what}:\n{}", self.name, self.output());
            assert!(Instant::now() < deadline, "{}: no {what} within {timeout:?}:\n{}", self.name, self.output());
            std::thread::sleep(POLL);
        }
    }

    /// Whether it ended (with any status): for a caller that retries a start that failed.
    pub fn ended(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_some()
    }

    /// Its exit status if it exited, failing the test if it exited with an error.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("wait")?;
        assert!(status.success(), "{} failed ({status}):\n{}", self.name, self.output());
        Some(status)
    }

    /// Waits until it ends by itself, at most `timeout`; fails the test if it does not, or fails.
    pub fn wait_exit(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.exited().is_none() {
            assert!(Instant::now() < deadline, "{} still runs after {timeout:?}:\n{}", self.name, self.output());
            std::thread::sleep(POLL);
        }
    }

    /// Stops it: SIGINT (gst-launch with `-e` sends EOS through its pipeline, ffmpeg finishes its output), then
    /// SIGKILL after [`STOP_TIMEOUT`]. Answers how it ended by itself (`None`: killed); an exit status after the
    /// SIGINT is the caller's to judge (ffmpeg says 255 when a signal ended it), one before it must be a success.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
