//! Running GStreamer as a third-party RTP peer: making sure `gst-launch-1.0` and the elements the tests use are
//! installed (`tests/scripts/install-gstreamer.sh`, which owns that list), and a [`Pipeline`] that runs one
//! `gst-launch-1.0 -e -v` with its output in a file, waits for it to play, and stops it (SIGINT, then SIGKILL).
//!
//! Owns no knowledge of a particular pipeline; each test writes its own. Every wait is bounded in time and a
//! pipeline is killed on every exit path (when dropped).

use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a pipeline may take to start playing.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a pipeline may take to stop after SIGINT before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the install script, which does nothing when `gst-launch-1.0` and every element the pipelines use are
/// present and installs them otherwise; fails the test if it cannot.
pub fn ensure_gstreamer() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-gstreamer.sh");
    let out = Command::new("bash").arg(&script).stdin(Stdio::null()).output().expect("run install-gstreamer.sh");
    assert!(
        out.status.success(),
        "{} failed (the test needs GStreamer):\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback UDP port that was free a moment ago.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("free port").port()
}

/// A pipeline description split into `gst-launch-1.0`'s arguments.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

/// The number of frames a `fakesink name=frames silent=false` printed (one line per buffer).
pub fn frames_printed(output: &str) -> usize {
    output.lines().filter(|l| l.contains("frames: last-message = chain")).count()
}

/// A running `gst-launch-1.0`, its stdout and stderr going to a file; killed when dropped.
pub struct Pipeline {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Pipeline {
    /// Starts `gst-launch-1.0 -e -v` on `description`, logging to `dir/name.log`.
    pub fn start(name: &'static str, dir: &Path, description: &[String]) -> Pipeline {
        let log = dir.join(format!("{name}.log"));
        let file = fs::File::create(&log).expect("pipeline log");
        let child = Command::new("gst-launch-1.0")
            .args(["-e", "-v"])
            .args(description)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("spawn gst-launch-1.0");
        Pipeline { name, child, log }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        fs::read(&self.log).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    }

    /// Waits until the pipeline says it is playing; fails the test (with its output) on exit or timeout.
    pub fn wait_playing(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.output().contains("Setting pipeline to PLAYING") {
            let exited = self.child.try_wait().expect("wait").is_some();
            assert!(!exited && Instant::now() < deadline, "{} did not start playing:\n{}", self.name, self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its exit status if it exited, failing the test if it exited with an error.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("wait")?;
        assert!(status.success(), "{} failed ({status}):\n{}", self.name, self.output());
        Some(status)
    }

    /// Stops it: SIGINT (with `-e`, gst-launch sends EOS through the pipeline and exits once it arrived), then
    /// SIGKILL after [`STOP_TIMEOUT`]; answers whether it ended by EOS. Its output is complete either way: `-v`
    /// prints as things change, not at the end.
    pub fn stop(&mut self) -> bool {
        if self.exited().is_some() {
            return true;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
