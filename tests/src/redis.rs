//! A private Redis server for a test: Debian's `redis-server` (installed by `tests/scripts/install-redis.sh`), on a
//! free loopback port, with no persistence, killed when the test ends; and `redis-cli` to look at what it holds.
//!
//! Owns [`Redis`]'s lifecycle (through [`crate::process::Process`], so it never outlives a test). Knows nothing of
//! what ringfwd writes into it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::api::wait_until;
use crate::gst::free_port;
use crate::process::Process;

/// How long a fresh server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs `redis-server` (and `redis-cli`) when missing: `false` when the test must return (skipped), as
/// [`crate::interop::install`] decides.
#[must_use]
pub fn ensure_redis() -> bool {
    crate::interop::install("install-redis.sh", &[], "the cluster directory's tests need a Redis server")
}

/// A running Redis server.
pub struct Redis {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    process: Process,
}

impl Redis {
    /// Starts `redis-server` on a free port of 127.0.0.1, its files in `dir`, and waits until it answers.
    pub fn start(dir: &Path) -> Redis {
        Redis::start_on(dir, free_port())
    }

    /// Kills the server, as a crash would (it keeps nothing: it has no persistence); answers its port, for
    /// [`Redis::start_on`].
    pub fn kill(self) -> u16 {
        self.port
    }

    /// Starts `redis-server` on `port` of 127.0.0.1 (a port a killed server had), its files in `dir`, and waits until
    /// it answers.
    pub fn start_on(dir: &Path, port: u16) -> Redis {
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.display().to_string(),
            // Expiry checked 100 times a second: a lease that runs out is seen within ~10 ms of its end.
            "--hz",
            "100",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let process = Process::start("redis", dir, "redis-server", &args, &[]);
        let redis = Redis { port, process };
        assert!(
            wait_until(READY_TIMEOUT, || redis.cli(&["PING"]) == "PONG"),
            "redis-server did not answer PING within {READY_TIMEOUT:?}:\n{}",
            redis.process.output()
        );
        redis
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `base` (a config) with a `[cluster]` on this server's directory under namespace `t`: node `node`, heartbeat
    /// and lease of `heartbeat_ms` and `lease_ms`.
    pub fn node_config(&self, base: &str, node: &str, heartbeat_ms: u64, lease_ms: u64) -> String {
        format!(
            "{base}[cluster]\ndirectory = \"redis\"\nredis_url = \"{}\"\nnamespace = \"t\"\nnode_id = \"{node}\"\n\
             heartbeat_ms = {heartbeat_ms}\nlease_ms = {lease_ms}\n",
            self.url()
        )
    }

    /// `redis-cli -p <port> <args>`: its output, trimmed ("" when it failed).
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli").arg("-p").arg(self.port.to_string()).args(args).output();
        output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
    }

    /// What the server printed so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}
