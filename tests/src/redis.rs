//! A private Redis server for a test: Debian's `redis-server` (installed by `tests/scripts/install-redis.sh`), on a
//! free loopback port, with no persistence, killed when the test ends; and `redis-cli` to look at what it holds.
//!
//! Owns [`Redis`]'s lifecycle (through [`crate::process::Process`], so it never outlives a test). Knows nothing of
//! what ringfwd writes into it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::api::{wait_until, Api, KeyedConfig};
use crate::daemon::Daemon;
use crate::process::Process;

/// The password of a server [`Redis::start_bound`] starts.
const BOUND_PASSWORD: &str = "lab-secret";
/// How long a fresh server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a server that could not bind its port is started again (on another port when the port was free
/// a moment before, on the same one when it is a killed server's).
const BIND_ATTEMPTS: usize = 8;
/// The ports a server is put on: below Linux's default ephemeral range (32768–60999), so an outgoing TCP
/// connection of another test (a gRPC client's, a daemon's) cannot hold the port when the server binds it, or take
/// it between a kill and [`Redis::start_on`].
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Installs `redis-server` (and `redis-cli`) when missing: `false` when the test must return (skipped), as
/// [`crate::interop::install`] decides.
#[must_use]
pub fn ensure_redis() -> bool {
    crate::interop::install("install-redis.sh", &[], "the cluster directory's tests need a Redis server")
}

/// The `[[auth.keys]]` key (id, base64 secret) the nodes of the cluster tests share.
pub const SHARED_KEY: (&str, &str) = ("cluster", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");

/// A TCP port of `ip` in [`PORTS`] that was free a moment ago (picked at random, so tests running at once rarely try
/// the same one; [`Redis::start_at`] tries again when one was taken in between).
fn free_tcp_port(ip: std::net::IpAddr) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..256 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        let span = u64::from(PORTS.end - PORTS.start);
        let port = PORTS.start + u16::try_from(hasher.finish() % span).expect("below the span");
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port of {ip} in {PORTS:?} after 256 tries")
}

/// A running Redis server.
pub struct Redis {
    /// Its TCP port.
    pub port: u16,
    /// The address it listens on (127.0.0.1 unless started with [`Redis::start_bound`]).
    pub ip: std::net::IpAddr,
    /// The default user's password, when it needs one (a server bound to another address than loopback: Redis
    /// refuses clients from elsewhere without one).
    password: Option<&'static str>,
    process: Process,
}

impl Redis {
    /// Starts `redis-server` on a free port of 127.0.0.1, its files in `dir`, and waits until it answers.
    pub fn start(dir: &Path) -> Redis {
        Redis::start_at(dir, std::net::IpAddr::from([127, 0, 0, 1]), None, None)
    }

    /// Kills the server, as a crash would (it keeps nothing: it has no persistence); answers its port, for
    /// [`Redis::start_on`].
    pub fn kill(self) -> u16 {
        self.port
    }

    /// Starts `redis-server` on `port` of 127.0.0.1 (a port a killed server had), its files in `dir`, and waits until
    /// it answers.
    pub fn start_on(dir: &Path, port: u16) -> Redis {
        Redis::start_at(dir, std::net::IpAddr::from([127, 0, 0, 1]), Some(port), None)
    }

    /// Starts `redis-server` on a free port of `ip` (an address of this host, e.g. a test bridge's that nodes in network
    /// namespaces reach), with a password (in [`Redis::url`]), and waits until it answers.
    pub fn start_bound(dir: &Path, ip: std::net::IpAddr) -> Redis {
        Redis::start_at(dir, ip, None, Some(BOUND_PASSWORD))
    }

    /// Starts the server on `ip` and `port` (`None`: a free one of [`PORTS`]) and waits until it answers. A server
    /// that could not bind (another test's socket took the port) is started again, at most [`BIND_ATTEMPTS`] times.
    fn start_at(dir: &Path, ip: std::net::IpAddr, port: Option<u16>, password: Option<&'static str>) -> Redis {
        for attempt in 1..=BIND_ATTEMPTS {
            let chosen = port.unwrap_or_else(|| free_tcp_port(ip));
            let mut process = Redis::spawn(dir, ip, chosen, password);
            let deadline = std::time::Instant::now() + READY_TIMEOUT;
            let started = wait_until(READY_TIMEOUT, || {
                let output = process.output();
                output.contains("Ready to accept connections") || process.ended()
            });
            let output = process.output();
            if started && !process.ended() {
                let redis = Redis { port: chosen, ip, password, process };
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                assert!(
                    wait_until(left, || redis.cli(&["PING"]) == "PONG"),
                    "redis-server did not answer PING within {READY_TIMEOUT:?}:\n{}",
                    redis.process.output()
                );
                return redis;
            }
            assert!(
                output.contains("Address already in use") && attempt < BIND_ATTEMPTS,
                "redis-server did not start on {ip}:{chosen} (attempt {attempt} of {BIND_ATTEMPTS}):\n{output}"
            );
            if port.is_some() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        unreachable!("the last attempt either returns or fails its assertion")
    }

    fn spawn(dir: &Path, ip: std::net::IpAddr, port: u16, password: Option<&'static str>) -> Process {
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            &ip.to_string(),
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
        if let Some(password) = password {
            args.extend(["--requirepass".to_owned(), password.to_owned()]);
        }
        Process::start("redis", dir, "redis-server", &args, &[])
    }

    /// `redis://[:<password>@]<ip>:<port>/0`.
    pub fn url(&self) -> String {
        let password = self.password.map(|p| format!(":{p}@")).unwrap_or_default();
        format!("redis://{password}{}/0", std::net::SocketAddr::new(self.ip, self.port))
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

    /// Starts node `id` on this server's directory (heartbeat 100 ms, lease 500 ms) with [`SHARED_KEY`], as the nodes
    /// of a cluster that relay need: `base` (tables), then its `[cluster]` with `cluster_extra` (keys of that table).
    /// Answers its config, the daemon, and an admin client.
    pub fn keyed_node(&self, base: &str, id: &str, cluster_extra: &str) -> (KeyedConfig, Daemon, Api) {
        let cluster = format!("{}{cluster_extra}", self.node_config(base, id, 100, 500));
        let config = KeyedConfig::new(&cluster, SHARED_KEY.0, SHARED_KEY.1);
        let daemon = Daemon::start(&config.text);
        let api = Api::connect(daemon.api, Some(&config.mint("admin", "10m")));
        (config, daemon, api)
    }

    /// `redis-cli -h <ip> -p <port> [-a <password>] <args>`: its output, trimmed ("" when it failed).
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.arg("-h").arg(self.ip.to_string()).arg("-p").arg(self.port.to_string());
        if let Some(password) = self.password {
            command.args(["--no-auth-warning", "-a", password]);
        }
        let output = command.args(args).output();
        output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
    }

    /// What the server printed so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A killed server's port that another socket holds for a while: the server starts again once it is let go.
    #[test]
    fn a_server_whose_port_is_held_starts_once_the_port_is_let_go() {
        if !ensure_redis() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let port = free_tcp_port(ip);
        let holder = std::net::TcpListener::bind((ip, port)).expect("hold the port");
        let (let_go, held) = std::sync::mpsc::channel();
        let release = std::thread::spawn(move || {
            // Let go once the server has failed to bind at least once (it is started again 100 ms later).
            let dir_log = held.recv().expect("the log's path");
            let log = |path: &std::path::PathBuf| std::fs::read_to_string(path).unwrap_or_default();
            assert!(wait_until(READY_TIMEOUT, || log(&dir_log).contains("Address already in use")));
            drop(holder);
        });
        let_go.send(dir.path().join("redis.log")).expect("send");
        let redis = Redis::start_on(dir.path(), port);
        release.join().expect("the holder's thread");
        assert_eq!(redis.port, port);
        assert_eq!(redis.cli(&["PING"]), "PONG");
    }
}
