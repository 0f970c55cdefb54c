//! Starting, watching and stopping a forwarder process, whichever it is.
//!
//! Owns the process protocol every forwarder under test speaks: started with a ringfwd config
//! file, it prints `ringfwd: ready workers=N media=ADDR[,ADDR...] [api=ADDR]` on stdout once
//! forwarding (the daemon adds where its control API listens; the baselines have none); on
//! SIGTERM it stops, prints `ringfwd: final counters {json}` and exits 0. The real daemon
//! (`ringfwd --config F`) and the baselines (`ringfwd-bench baseline mmsg|naive --config F`)
//! are driven the same way. Stderr goes to a log file whose tail is quoted in errors.
//!
//! Must never leave a child behind: dropping a [`ForwarderProcess`] kills it.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// Prefix of the ready line.
pub const READY_PREFIX: &str = "ringfwd: ready ";
/// Prefix of the final counters line.
pub const FINAL_COUNTERS_PREFIX: &str = "ringfwd: final counters ";
/// How long a forwarder may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a forwarder may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which forwarder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwarderKind {
    /// The ringfwd daemon (with its default interceptor chains unless `--interceptors none`).
    Ringfwd,
    /// The ringfwd daemon with no interceptors: plain forwarding, to measure what the chains cost.
    RingfwdPlain,
    /// The `recvmmsg`/`sendmmsg` baseline.
    Mmsg,
    /// The mmsg baseline plus UDP GSO (the strongest baseline).
    Gso,
    /// The one-syscall-per-packet baseline.
    Naive,
}

impl ForwarderKind {
    /// True for the ringfwd daemon, with or without its interceptors.
    pub fn is_ringfwd(self) -> bool {
        matches!(self, ForwarderKind::Ringfwd | ForwarderKind::RingfwdPlain)
    }
}

impl fmt::Display for ForwarderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForwarderKind::Ringfwd => "ringfwd",
            ForwarderKind::RingfwdPlain => "ringfwd-plain",
            ForwarderKind::Mmsg => "mmsg",
            ForwarderKind::Gso => "gso",
            ForwarderKind::Naive => "naive",
        })
    }
}

impl FromStr for ForwarderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ringfwd" => Ok(ForwarderKind::Ringfwd),
            "ringfwd-plain" => Ok(ForwarderKind::RingfwdPlain),
            "mmsg" => Ok(ForwarderKind::Mmsg),
            "gso" => Ok(ForwarderKind::Gso),
            "naive" => Ok(ForwarderKind::Naive),
            other => Err(format!("unknown forwarder {other:?}: expected ringfwd, ringfwd-plain, gso, mmsg or naive")),
        }
    }
}

/// Where the forwarder binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The `ringfwd` daemon.
    pub ringfwd: PathBuf,
    /// This bench binary (runs the baselines).
    pub bench: PathBuf,
}

/// A forwarder process failed to start, run or stop as the protocol says.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The binary could not be started.
    #[error("starting {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// No ready line in time, or an unreadable one.
    #[error("{kind} did not report ready within {timeout_s} s; stderr tail:\n{log_tail}")]
    NotReady {
        /// The forwarder.
        kind: ForwarderKind,
        /// The timeout.
        timeout_s: u64,
        /// Last lines of its stderr.
        log_tail: String,
    },
    /// It did not exit 0 after SIGTERM.
    #[error("{kind} stopped badly ({status}); stderr tail:\n{log_tail}")]
    BadExit {
        /// The forwarder.
        kind: ForwarderKind,
        /// Its exit status, or what happened.
        status: String,
        /// Last lines of its stderr.
        log_tail: String,
    },
    /// Operating on the process failed.
    #[error("{kind}: {source}")]
    Io {
        /// The forwarder.
        kind: ForwarderKind,
        /// Why.
        source: io::Error,
    },
}

/// A running forwarder that reported ready.
pub struct ForwarderProcess {
    kind: ForwarderKind,
    child: Child,
    lines: Receiver<String>,
    log_path: PathBuf,
    /// Worker count it reported.
    pub workers: usize,
    /// Media addresses it reported, bound ports filled in.
    pub media: Vec<SocketAddr>,
    /// Where its control API listens, when it has one.
    pub api: Option<SocketAddr>,
}

/// What a ready line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Worker count.
    pub workers: usize,
    /// Media addresses, bound ports filled in.
    pub media: Vec<SocketAddr>,
    /// The control API's address (`api=`), absent for the baselines.
    pub api: Option<SocketAddr>,
}

/// Parses `ringfwd: ready workers=N media=ADDR[,ADDR...] [api=ADDR]`; an `api=` that is not an
/// address makes the line unreadable.
pub fn parse_ready(line: &str) -> Option<Ready> {
    let rest = line.trim_end().strip_prefix(READY_PREFIX)?;
    let mut workers = None;
    let mut media = None;
    let mut api = Ok(None);
    for field in rest.split_whitespace() {
        if let Some(n) = field.strip_prefix("workers=") {
            workers = n.parse().ok();
        } else if let Some(list) = field.strip_prefix("media=") {
            media = list.split(',').map(str::parse).collect::<Result<Vec<SocketAddr>, _>>().ok();
        } else if let Some(address) = field.strip_prefix("api=") {
            api = address.parse().map(Some);
        }
    }
    Some(Ready { workers: workers?, media: media.filter(|m| !m.is_empty())?, api: api.ok()? })
}

/// Runs `f` with the calling thread allowed on every CPU, then restores its affinity.
fn with_full_affinity<T>(f: impl FnOnce() -> T) -> T {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
    let saved = sched_getaffinity(None).ok();
    let mut all = CpuSet::new();
    for cpu in 0..CpuSet::MAX_CPU.min(1024) {
        all.set(cpu);
    }
    let _ = sched_setaffinity(None, &all);
    let result = f();
    if let Some(saved) = saved {
        let _ = sched_setaffinity(None, &saved);
    }
    result
}

/// Parses `ringfwd: final counters {json}`.
pub fn parse_final_counters(line: &str) -> Option<serde_json::Value> {
    serde_json::from_str(line.trim_end().strip_prefix(FINAL_COUNTERS_PREFIX)?).ok()
}

impl ForwarderProcess {
    /// Starts `kind` with `config`, logging its stderr into `log_dir`, and waits for it to be ready.
    pub fn start(
        kind: ForwarderKind,
        config: &Path,
        binaries: &Binaries,
        log_dir: &Path,
    ) -> Result<ForwarderProcess, HarnessError> {
        let mut command = match kind {
            ForwarderKind::Ringfwd | ForwarderKind::RingfwdPlain => Command::new(&binaries.ringfwd),
            ForwarderKind::Gso | ForwarderKind::Mmsg | ForwarderKind::Naive => {
                let mut c = Command::new(&binaries.bench);
                c.args(["baseline", &kind.to_string()]);
                c
            }
        };
        let log_path = log_dir.join(format!("{kind}.stderr.log"));
        let log = File::create(&log_path).map_err(|source| HarnessError::Io { kind, source })?;
        command.arg("--config").arg(config).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
        // ringfwd keeps what its API accepted in its state directory: each start gets an empty one of its own (never
        // the user's, nor what an earlier repetition kept).
        let state = log_dir.join(format!("{kind}.state"));
        let _ = std::fs::remove_dir_all(&state);
        command.env("STATE_DIRECTORY", &state);
        let path = command.get_program().into();
        // A child inherits the spawning thread's CPU affinity; the bench pins itself, so the forwarder is
        // spawned from the full mask and places its own threads from its config.
        let child = with_full_affinity(|| command.spawn());
        let mut child = child.map_err(|source| HarnessError::Spawn { path, source })?;
        let stdout =
            child.stdout.take().ok_or_else(|| HarnessError::Io { kind, source: io::Error::other("no stdout pipe") })?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = ForwarderProcess { kind, child, lines, log_path, workers: 0, media: Vec::new(), api: None };
        let deadline = Instant::now() + READY_TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match process.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(ready) = parse_ready(&line) {
                        process.workers = ready.workers;
                        process.media = ready.media;
                        process.api = ready.api;
                        return Ok(process);
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                // Stdout closed: the process ended without a ready line.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Err(HarnessError::NotReady { kind, timeout_s: READY_TIMEOUT.as_secs(), log_tail: process.log_tail() })
    }

    /// Which forwarder this is.
    pub fn kind(&self) -> ForwarderKind {
        self.kind
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, waits for exit 0 and returns the final counters it printed, if any.
    pub fn stop(mut self) -> Result<Option<serde_json::Value>, HarnessError> {
        let kind = self.kind;
        let pid = Pid::from_child(&self.child);
        kill_process(pid, Signal::TERM).map_err(|e| HarnessError::Io { kind, source: e.into() })?;
        let status = self.wait(STOP_TIMEOUT)?;
        let counters = self.lines.try_iter().find_map(|l| parse_final_counters(&l));
        match status {
            Some(s) if s.success() => Ok(counters),
            other => {
                let status = other.map_or_else(|| "no exit after SIGTERM; killed".to_string(), |s| s.to_string());
                Err(HarnessError::BadExit { kind, status, log_tail: self.log_tail() })
            }
        }
    }

    /// Waits up to `timeout` for the exit; kills the process if it does not come.
    fn wait(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, HarnessError> {
        let kind = self.kind;
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait().map_err(|source| HarnessError::Io { kind, source })? {
                Some(status) => {
                    // Let the reader thread deliver the last lines.
                    std::thread::sleep(Duration::from_millis(20));
                    return Ok(Some(status));
                }
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Ok(None);
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of its stderr log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ForwarderProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_are_parsed() {
        let ready = parse_ready("ringfwd: ready workers=2 media=127.0.0.1:40000,[::1]:40000").unwrap();
        assert_eq!(ready.workers, 2);
        assert_eq!(ready.media, vec!["127.0.0.1:40000".parse().unwrap(), "[::1]:40000".parse().unwrap()]);
        assert_eq!(ready.api, None);
        let daemon = parse_ready("ringfwd: ready workers=1 media=127.0.0.1:4 api=127.0.0.1:50051").unwrap();
        assert_eq!(daemon.api, Some("127.0.0.1:50051".parse().unwrap()));
        assert!(parse_ready("ringfwd: ready workers=1 media=127.0.0.1:4 api=nowhere").is_none());
        assert!(parse_ready("ringfwd: ready workers=1").is_none());
        assert!(parse_ready("ringfwd: ready workers=x media=127.0.0.1:1").is_none());
        assert!(parse_ready("ringfwd: ready workers=1 media=nonsense").is_none());
        assert!(parse_ready("something else").is_none());
    }

    #[test]
    fn final_counters_are_parsed() {
        let v = parse_final_counters("ringfwd: final counters {\"rx_packets\": 5}").unwrap();
        assert_eq!(v["rx_packets"], 5);
        assert!(parse_final_counters("ringfwd: final counters {broken").is_none());
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in [
            ForwarderKind::Ringfwd,
            ForwarderKind::RingfwdPlain,
            ForwarderKind::Gso,
            ForwarderKind::Mmsg,
            ForwarderKind::Naive,
        ] {
            assert_eq!(kind.to_string().parse::<ForwarderKind>(), Ok(kind));
        }
        assert!("rtpengine".parse::<ForwarderKind>().unwrap_err().contains("rtpengine"));
    }
}
