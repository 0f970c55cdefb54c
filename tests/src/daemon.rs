//! Running the `ringfwd` binary under test.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// How long a daemon may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a daemon may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `ringfwd` binary cargo built next to the running test binary. The end-to-end tests are test targets of
/// the `ringfwd` package, so cargo builds the binary before running them.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let bin = dir.join("ringfwd");
    assert!(bin.exists(), "{} not found: run the tests with `cargo test --workspace`, which builds it", bin.display());
    bin
}

/// The example program `name` (`controlplane/examples/<name>.rs`, a ringfwd with native plugins) cargo built next
/// to the running test binary: `cargo test --workspace` builds the examples before it runs the tests.
pub fn example(name: &str) -> PathBuf {
    let bin = binary().parent().expect("target/<profile>").join("examples").join(name);
    assert!(bin.exists(), "{} not found: run the tests with `cargo test --workspace`, which builds it", bin.display());
    bin
}

/// A running daemon.
pub struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Bound media addresses from the ready line, in config order.
    pub media: Vec<SocketAddr>,
    /// Number of workers from the ready line.
    pub workers: usize,
    /// The control API address from the ready line.
    pub api: SocketAddr,
    /// The metrics endpoint's address from the ready line, when it serves one.
    pub metrics: Option<SocketAddr>,
    /// The development admin token the daemon wrote (when its config has no keys and sets no
    /// `auth.dev_token_file`): `$RUNTIME_DIRECTORY/dev-token`.
    pub dev_token_file: PathBuf,
    /// Its state directory: `$STATE_DIRECTORY`, as systemd would set it, in this daemon's own temporary
    /// folder (not created: the daemon creates what it writes under it).
    pub state_directory: PathBuf,
    /// Its temporary folder, handed to its [`Exit`] by [`Daemon::stop`].
    dir: Option<tempfile::TempDir>,
    _config: Option<tempfile::NamedTempFile>,
}

/// What a daemon left behind when it exited.
#[derive(Debug)]
pub struct Exit {
    /// Whether it exited with status 0.
    pub success: bool,
    /// The parsed `ringfwd: final counters {json}` line, if printed.
    pub counters: Option<Value>,
    /// Everything it wrote to stdout after its ready line.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// The daemon's temporary folder (its state directory, its token), kept until the exit is dropped so that a
    /// test can look at what the daemon left there.
    _dir: Option<tempfile::TempDir>,
}

impl Exit {
    /// A total counter from the final line.
    pub fn total(&self, name: &str) -> u64 {
        self.counters
            .as_ref()
            .and_then(|c| c["total"][name].as_u64())
            .unwrap_or_else(|| panic!("no total {name}: {self:?}"))
    }

    /// One worker's counter from the final line.
    pub fn worker(&self, worker: usize, name: &str) -> u64 {
        self.counters
            .as_ref()
            .and_then(|c| c["workers"][worker][name].as_u64())
            .unwrap_or_else(|| panic!("no counter {name} for worker {worker}: {self:?}"))
    }
}

impl Daemon {
    /// Starts `ringfwd --config <config>` and waits for its ready line.
    pub fn start(config: &str) -> Daemon {
        Daemon::spawn(Some(config))
    }

    /// Starts `ringfwd` with the config text, or with no `--config` at all (the built-in default) and
    /// [`FREE_PORT_FLAGS`].
    ///
    /// Unless the config says otherwise, the control API and the metrics endpoint listen on free loopback ports,
    /// and the development token goes to `$RUNTIME_DIRECTORY/dev-token` in a private directory of this daemon's
    /// own, and its state directory (`$STATE_DIRECTORY`) is its own, so tests running in parallel never collide,
    /// nor with a daemon the developer runs on the default ports and token path.
    pub fn spawn(config: Option<&str>) -> Daemon {
        Daemon::spawn_with(config, &[])
    }

    /// [`Daemon::spawn`] with `env` added to the daemon's environment after `RUNTIME_DIRECTORY` (an empty value
    /// counts as unset for the token's location; [`Daemon::dev_token_file`] is then not where the token is).
    pub fn spawn_with(config: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        match Daemon::try_spawn(config, env, None, &[]) {
            Ok(daemon) => daemon,
            Err(stderr) => panic!("ringfwd did not become ready; stderr:\n{stderr}"),
        }
    }

    /// Starts `program --config <config>` (a program built on ringfwd, e.g. an [`example`]) as [`Daemon::start`]
    /// starts `ringfwd`, with `env` added to its environment: the daemon, or what it wrote to stderr when it exited
    /// without becoming ready.
    pub fn start_program(program: &Path, config: &str, env: &[(&str, &str)]) -> Result<Daemon, String> {
        Daemon::try_spawn_program(program, Some(config), env, None, &[])
    }

    /// Starts `ringfwd --config <config>` as [`Daemon::start`] does, for a config it must refuse: answers what it
    /// wrote to stderr once it exited without becoming ready, and fails the test when it became ready.
    pub fn start_refused(config: &str) -> String {
        match Daemon::try_spawn(Some(config), &[], None, &[]) {
            Ok(daemon) => panic!("ringfwd started on a config it must refuse: {:?}", daemon.stop()),
            Err(stderr) => stderr,
        }
    }

    /// [`Daemon::spawn_with`], answering the daemon's stderr when it does not become ready (killed after
    /// [`READY_TIMEOUT`], or exited).
    fn try_spawn(
        config: Option<&str>,
        env: &[(&str, &str)],
        dir: Option<tempfile::TempDir>,
        args: &[&str],
    ) -> Result<Daemon, String> {
        Daemon::try_spawn_program(&binary(), config, env, dir, args)
    }

    /// [`Daemon::try_spawn`] of `program` instead of `ringfwd`.
    fn try_spawn_program(
        program: &Path,
        config: Option<&str>,
        env: &[(&str, &str)],
        dir: Option<tempfile::TempDir>,
        args: &[&str],
    ) -> Result<Daemon, String> {
        let dir = dir.unwrap_or_else(private_tempdir);
        let state_directory = dir.path().join("state");
        let config = config.map(isolated);
        let path = config.as_deref().map(temp_config);
        let mut cmd = Command::new(program);
        cmd.args(args);
        match &path {
            Some(p) => cmd.arg("--config").arg(p.path()),
            None => cmd.args(FREE_PORT_FLAGS),
        };
        let mut child = cmd
            .env("RUNTIME_DIRECTORY", dir.path())
            .env("STATE_DIRECTORY", &state_directory)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringfwd");
        let lines = forward_lines(child.stdout.take().expect("stdout"));
        let ready = match lines.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                // Exited (its stdout closed) or hung: killing an exited child is harmless, and stderr is then whole.
                let _ = child.kill();
                let _ = child.wait();
                let mut stderr = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut stderr));
                return Err(stderr);
            }
        };
        let (workers, media, api) = parse_ready(&ready).unwrap_or_else(|| panic!("unexpected first line {ready:?}"));
        let metrics = ready.split_whitespace().find_map(|field| field.strip_prefix("metrics=")?.parse().ok());
        let dev_token_file = dir.path().join("dev-token");
        let dir = Some(dir);
        Ok(Daemon { child, lines, media, workers, api, metrics, dev_token_file, state_directory, dir, _config: path })
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first media address of the family of `like`.
    pub fn media_for(&self, like: SocketAddr) -> SocketAddr {
        *self.media.iter().find(|m| m.is_ipv4() == like.is_ipv4()).expect("media address of that family")
    }

    /// Kills the daemon with SIGKILL, as a crash would (nothing flushed, no final line), and hands back its
    /// temporary folder (its state directory) for [`Daemon::restart_in`].
    pub fn crash(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().expect("the daemon's folder")
    }

    /// Starts `ringfwd --config <config>` as [`Daemon::start`] does, in `dir`, the folder of a daemon that ran before
    /// (see [`Daemon::crash`]): it finds that daemon's state directory.
    pub fn restart_in(config: &str, dir: tempfile::TempDir) -> Daemon {
        match Daemon::try_spawn(Some(config), &[], Some(dir), &[]) {
            Ok(daemon) => daemon,
            Err(stderr) => panic!("ringfwd did not become ready again; stderr:\n{stderr}"),
        }
    }

    /// Starts `ringfwd --take-over --config <config>` in this daemon's folder (its state directory), as an upgrade
    /// would, and waits for its ready line and for this daemon's exit; answers the new daemon and this one's exit.
    pub fn take_over(mut self, config: &str) -> (Daemon, Exit) {
        let dir = self.dir.take().expect("the daemon's folder");
        let new = match Daemon::try_spawn(Some(config), &[], Some(dir), &["--take-over"]) {
            Ok(daemon) => daemon,
            Err(stderr) => panic!("ringfwd --take-over did not become ready; stderr:\n{stderr}"),
        };
        (new, self.wait_exit("the takeover"))
    }

    /// Starts `ringfwd <args> --config <config>` as [`Daemon::start`] does: the daemon, or what it wrote to stderr
    /// when it exited without becoming ready.
    pub fn start_with_args(config: &str, args: &[&str]) -> Result<Daemon, String> {
        Daemon::try_spawn(Some(config), &[], None, args)
    }

    /// Sends SIGTERM, waits for the exit, and hands back the daemon's temporary folder (its state directory) for
    /// [`Daemon::restart_in`].
    pub fn stop_for_restart(mut self) -> (Exit, tempfile::TempDir) {
        let dir = self.dir.take().expect("the daemon's folder");
        (self.stop(), dir)
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(self) -> Exit {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        self.wait_exit("SIGTERM")
    }

    /// Waits at most [`EXIT_TIMEOUT`] for the daemon to exit after `after`, and collects what it left.
    fn wait_exit(mut self, after: &str) -> Exit {
        let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ringfwd did not exit within {EXIT_TIMEOUT:?} of {after}");
            }
            std::thread::sleep(Duration::from_millis(20)); // polling the child's exit: no event to wait on
        };
        let mut counters = None;
        let mut stdout = String::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            if let Some(json) = line.strip_prefix("ringfwd: final counters ") {
                counters = serde_json::from_str(json).ok();
            }
            stdout.push_str(&line);
            stdout.push('\n');
        }
        let mut stderr = String::new();
        let _ = self.child.stderr.take().map(|mut e| e.read_to_string(&mut stderr));
        Exit { success: status.success(), counters, stdout, stderr, _dir: self.dir.take() }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Parses `ringfwd: ready workers=N media=A,B api=C`.
pub fn parse_ready(line: &str) -> Option<(usize, Vec<SocketAddr>, SocketAddr)> {
    let rest = line.strip_prefix("ringfwd: ready ")?;
    let mut workers = None;
    let mut media = None;
    let mut api = None;
    for field in rest.split_whitespace() {
        if let Some(n) = field.strip_prefix("workers=") {
            workers = n.parse().ok();
        } else if let Some(list) = field.strip_prefix("media=") {
            media = list.split(',').map(|a| a.parse().ok()).collect::<Option<Vec<SocketAddr>>>();
        } else if let Some(a) = field.strip_prefix("api=") {
            api = a.parse().ok();
        }
    }
    Some((workers?, media?, api?))
}

/// Adds `[api] listen` and `[metrics] listen` on free ports unless the config sets those sections, and empty
/// interceptor chains unless it has an `[interceptors` section: interceptors send RTCP of their own (reports,
/// keyframe requests), and most tests count exactly the packets they forward. Tests of the interceptors write
/// their own section. The development token needs nothing here: `RUNTIME_DIRECTORY` puts it in the daemon's own
/// directory.
fn isolated(config: &str) -> String {
    let mut text = config.to_string();
    if !config.contains("[metrics]") {
        text.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    }
    if !config.contains("[interceptors") {
        text.push_str("\n[interceptors]\ningress = []\negress = []\n");
    }
    if !config.contains("[api]") {
        text.push_str("\n[api]\nlisten = \"127.0.0.1:0\"\n");
    }
    text
}

/// The daemon's flags that put every listener of the built-in default config on a free loopback port: a test
/// without a config file never takes the default ports (40000 media, 50051 API, 9464 metrics) a developer's own
/// daemon holds.
pub const FREE_PORT_FLAGS: [&str; 6] =
    ["--api-listen", "127.0.0.1:0", "--media-port", "0", "--metrics-listen", "127.0.0.1:0"];

/// A temporary directory of mode 0700: the daemon writes its development token only into a private directory.
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("ringfwd-test-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .expect("private temp dir")
}

/// Runs `ringfwd` with `args` to completion (for config errors and flags); returns (status ok, stdout, stderr).
/// Its development token, should it get that far, goes to a private directory of its own.
pub fn run_to_exit(args: &[&str], config: Option<&str>) -> (bool, String, String) {
    let path = config.map(temp_config);
    let dir = private_tempdir();
    let mut cmd = Command::new(binary());
    cmd.args(args).env("RUNTIME_DIRECTORY", dir.path()).env("STATE_DIRECTORY", dir.path());
    if let Some(p) = &path {
        cmd.arg("--config").arg(p.path());
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run ringfwd");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn temp_config(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().prefix("ringfwd-test-").suffix(".toml").tempfile().expect("temp config");
    std::io::Write::write_all(&mut file, contents.as_bytes()).expect("write temp config");
    file
}
