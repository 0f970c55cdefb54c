//! Setting a measurement up: where everything runs, the rig, the config files, and a forwarder
//! started and routed for a scenario.
//!
//! Owns [`place`] (bench on the first core, forwarder on the second), [`build_rig`] (sink and
//! publisher sockets), the config files of a scenario ([`write_configs`]: ringfwd's without routes, with the
//! chains and plugins of [`Chains`];
//! the baselines', which have no API, the same with the scenario as static `[[sessions]]`) and
//! [`start_routed`]: ringfwd is started, then routed through its control API with the development
//! token it wrote to the bench's directory, and its routes checked against the scenario; a baseline
//! is started on its static routes. Either way the sink is then armed with the expectations of what
//! that forwarder was told. The time routing takes is part of no measurement. [`start_ringfwd`] does
//! all of it for ringfwd alone (the churn and soak modes).
//!
//! Must never give ringfwd static routes, nor leave a forwarder running when routing it fails
//! (dropping the process kills it).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use ringfwd_tuning::{ConfigError, IdleStrategy, SessionSpec};
use socket2::{Domain, Socket, Type};

use crate::account::Accounting;
use crate::chains::Chains;
use crate::control::{self, ControlError};
use crate::forwarder::{Binaries, ForwarderKind, ForwarderProcess, HarnessError};
use crate::gen::{GenError, Generator};
use crate::payload::Epoch;
use crate::scenario::Scenario;
use crate::sink::Sink;
use crate::step::{Rig, Target};

/// Send buffer of each publisher socket.
const PUBLISHER_SEND_BUFFER_BYTES: usize = 4 << 20;

/// Why a measurement could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A forwarder did not start.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// ringfwd could not be routed through its API.
    #[error("routing ringfwd through its control API: {0}")]
    Control(#[from] ControlError),
    /// The generator could not be built.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// A config could not be serialized.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The cores asked for cannot be used.
    #[error("pinning: {0}")]
    Pinning(String),
    /// ringfwd's ready line had no `api=`.
    #[error("ringfwd reported no control API address (api=) in its ready line")]
    NoApi,
    /// A forwarder's ready line had no media address.
    #[error("{0} reported no media address in its ready line")]
    NoMedia(ForwarderKind),
    /// Socket or file trouble.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}

/// Where the forwarder and the bench run.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Core of generator, sink and churn clients (this thread is pinned to it).
    pub bench_core: usize,
    /// Core of the forwarder's worker.
    pub worker_core: usize,
    /// Cores of ringfwd's control plane (the bench core; none when there is only one core).
    pub control_cores: Vec<usize>,
}

/// Which cores the forwarder and the load use; `None` keeps the defaults of [`place`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pinning {
    /// The forwarder's cores: its one worker on the first, ringfwd's control plane on the others
    /// (default: the worker on the second core, the control plane on the load core).
    pub forwarder_cores: Option<Vec<usize>>,
    /// The load's cores: generator and sink (and churn clients) on the first (default: the first core).
    pub load_cores: Option<Vec<usize>>,
}

/// Places the bench and the forwarder per `pinning` (by default the bench on the first core and the
/// forwarder on the second), and pins this thread to the bench core. Fails on a core this process
/// may not run on. Call it once per process: the cores it sees are the calling thread's, which it
/// then restricts.
pub fn place(pinning: &Pinning) -> Result<Placement, LaunchError> {
    let cores: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    let (default_bench, default_worker) = match cores.as_slice() {
        [a, b, ..] => (*a, *b),
        [a] => (*a, *a),
        [] => (0, 0),
    };
    let check = |key: &str, list: &[usize]| -> Result<(), LaunchError> {
        match list.iter().find(|c| !cores.contains(c)) {
            Some(c) => Err(LaunchError::Pinning(format!("{key}: core {c} is not available (have {cores:?})"))),
            None if list.is_empty() => Err(LaunchError::Pinning(format!("{key}: empty list"))),
            None => Ok(()),
        }
    };
    let bench_core = match &pinning.load_cores {
        Some(list) => {
            check("--load-cores", list)?;
            list[0]
        }
        None => default_bench,
    };
    let (worker_core, mut control_cores) = match &pinning.forwarder_cores {
        Some(list) => {
            check("--forwarder-cores", list)?;
            (list[0], list[1..].to_vec())
        }
        None => (default_worker, Vec::new()),
    };
    if control_cores.is_empty() && bench_core != worker_core {
        control_cores.push(bench_core);
    }
    if bench_core == worker_core {
        eprintln!("ringfwd-bench: forwarder and load share core {bench_core}");
    }
    core_affinity::set_for_current(core_affinity::CoreId { id: bench_core });
    Ok(Placement { bench_core, worker_core, control_cores })
}

/// Binds the sink and one socket per publisher of `scenario`; the sink expects the static plan until
/// [`start_routed`] arms it, and unwraps RED payloads of `red_pt` (what a plugin makes: [`Chains::red_pt`], or
/// `run --red-pt` for a daemon started by hand), if given.
pub fn build_rig(scenario: &Scenario, red_pt: Option<u8>) -> Result<Rig, LaunchError> {
    let sink_socket = Sink::bind(SocketAddr::from(([0, 0, 0, 0], 0))).map_err(io_err("binding the sink"))?;
    let sockets = (0..scenario.publishers).map(|_| publisher_socket()).collect::<Result<Vec<_>, _>>()?;
    let gen = Generator::new(sockets, &scenario.streams, true)?;
    let mut accounting = Accounting::new(scenario.flow_specs(), scenario.streams.len());
    accounting.unwrap_red(red_pt);
    let sink = Sink::new(sink_socket, accounting).map_err(io_err("setting up the sink"))?;
    Ok(Rig { gen, sink, epoch: Epoch::new() })
}

fn publisher_socket() -> Result<UdpSocket, LaunchError> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(io_err("publisher socket"))?;
    socket.set_send_buffer_size(PUBLISHER_SEND_BUFFER_BYTES).map_err(io_err("publisher SO_SNDBUF"))?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).map_err(io_err("binding a publisher"))?;
    Ok(socket.into())
}

/// The files of one scenario's forwarders.
#[derive(Debug, Clone)]
pub struct ScenarioFiles {
    /// ringfwd's config: no routes; the control API on a free loopback port.
    pub ringfwd_config: PathBuf,
    /// The same with no interceptors (for `ringfwd-plain`).
    pub ringfwd_plain_config: PathBuf,
    /// The baselines' config: the same with the scenario as static `[[sessions]]`.
    pub baseline_config: PathBuf,
    /// Where ringfwd writes its development token.
    pub dev_token_file: PathBuf,
    /// The session routing the scenario, for the rig's sockets.
    pub session: SessionSpec,
}

/// Writes the config files of `scenario` into `dir` for the rig's sockets.
pub fn write_configs(
    scenario: &Scenario,
    rig: &Rig,
    placement: &Placement,
    idle: IdleStrategy,
    chains: &Chains,
    dir: &Path,
) -> Result<ScenarioFiles, LaunchError> {
    let publishers = rig.gen.publisher_addrs().map_err(io_err("publisher addresses"))?;
    let sink_port = rig.sink.local_addr().map_err(io_err("sink address"))?.port();
    let media = SocketAddr::from(([127, 0, 0, 1], 0));
    // ringfwd writes its development token only into a directory private to its user.
    let token_dir = dir.join("token");
    create_private_dir(&token_dir)?;
    let dev_token_file = token_dir.join(format!("{}.dev-token", scenario.name));
    let session = scenario.session(&publishers, sink_port);
    let mut config =
        scenario.config(media, placement.worker_core, placement.control_cores.clone(), idle, &dev_token_file);
    let mut plain = config.clone();
    plain.interceptors.ingress.clear();
    plain.interceptors.egress.clear();
    if !chains.defaults {
        config = plain.clone();
    }
    let mut with_plugins = config.clone();
    chains.add_plugins(&mut with_plugins);
    let ringfwd_config = dir.join(format!("{}-ringfwd.toml", scenario.name));
    std::fs::write(&ringfwd_config, with_plugins.to_toml_string()?)
        .map_err(io_err(format!("writing {}", ringfwd_config.display())))?;
    let ringfwd_plain_config = dir.join(format!("{}-ringfwd-plain.toml", scenario.name));
    std::fs::write(&ringfwd_plain_config, plain.to_toml_string()?)
        .map_err(io_err(format!("writing {}", ringfwd_plain_config.display())))?;
    config.sessions = vec![session.clone()];
    let baseline_config = dir.join(format!("{}-baseline.toml", scenario.name));
    std::fs::write(&baseline_config, config.to_toml_string()?)
        .map_err(io_err(format!("writing {}", baseline_config.display())))?;
    Ok(ScenarioFiles { ringfwd_config, ringfwd_plain_config, baseline_config, dev_token_file, session })
}

/// Creates `dir` (its parent must exist) or takes it as it is, and makes it mode 0700.
fn create_private_dir(dir: &Path) -> Result<(), LaunchError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(io_err(format!("creating {}", dir.display()))(e));
        }
        _ => {}
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("chmod 700 {}", dir.display())))
}

/// Starts `kind` (stderr logged into `log_dir`) routed for `scenario` as [`write_configs`] wrote it,
/// and arms `rig`'s sink with the expectations of that routing.
pub fn start_routed(
    kind: ForwarderKind,
    files: &ScenarioFiles,
    scenario: &Scenario,
    binaries: &Binaries,
    log_dir: &Path,
    rig: &mut Rig,
) -> Result<ForwarderProcess, LaunchError> {
    let config = match kind {
        ForwarderKind::Ringfwd => &files.ringfwd_config,
        ForwarderKind::RingfwdPlain => &files.ringfwd_plain_config,
        ForwarderKind::Gso | ForwarderKind::Mmsg | ForwarderKind::Naive => {
            let process = ForwarderProcess::start(kind, &files.baseline_config, binaries, log_dir)?;
            arm_sink(rig, scenario, scenario.flow_specs(), process.media.first().copied())?;
            return Ok(process);
        }
    };
    let process = ForwarderProcess::start(kind, config, binaries, log_dir)?;
    let api = process.api.ok_or(LaunchError::NoApi)?;
    let token = control::read_token(&files.dev_token_file)?;
    let runtime = control::runtime()?;
    let flows = runtime.block_on(async {
        let mut api = control::Control::connect(api, &token).await?;
        let created = api.install(&files.session).await?;
        api.verify(&files.session).await?;
        control::flow_specs(scenario, &created)
    })?;
    arm_sink(rig, scenario, flows, process.media.first().copied())?;
    Ok(process)
}

/// Arms `rig`'s sink with `flows` (what the forwarder was told) and, when the scenario asks for
/// loss repair, with NACKs to the forwarder's `media` address from each subscriber's address.
pub fn arm_sink(
    rig: &mut Rig,
    scenario: &Scenario,
    flows: Vec<crate::account::FlowSpec>,
    media: Option<SocketAddr>,
) -> Result<(), LaunchError> {
    let red_pt = rig.sink.accounting.red_pt();
    rig.sink.accounting = Accounting::new(flows, scenario.streams.len());
    rig.sink.accounting.unwrap_red(red_pt);
    let (Some(policy), Some(media)) = (scenario.nack(), media) else { return Ok(()) };
    let SocketAddr::V4(media) = media else {
        return Err(io_err("NACKs")(io::Error::other(format!("NACKs need an IPv4 media address, not {media}"))));
    };
    let port = rig.sink.local_addr().map_err(io_err("sink address"))?.port();
    let senders = scenario
        .flows
        .iter()
        .map(|f| match Scenario::subscriber_addr(f.subscriber, port) {
            SocketAddr::V4(a) => (*a.ip(), 0x6000_0000 + f.subscriber as u32),
            // Subscriber addresses are always IPv4 loopback.
            SocketAddr::V6(_) => (std::net::Ipv4Addr::LOCALHOST, 0x6000_0000 + f.subscriber as u32),
        })
        .collect();
    rig.sink.accounting.enable_nack(policy);
    rig.sink.route_nacks(crate::sink::NackRoute { media, senders });
    Ok(())
}

/// ringfwd started and routed for a scenario, with the rig armed for it.
pub struct RoutedRingfwd {
    /// Generator and sink.
    pub rig: Rig,
    /// Its config files and the session that routes the scenario.
    pub files: ScenarioFiles,
    /// The daemon (dropping it kills it).
    pub process: ForwarderProcess,
    /// What a step measures: its pid and media address.
    pub target: Target,
    /// Its control API.
    pub api: SocketAddr,
}

/// Builds the rig of `scenario`, writes its configs into `work_dir` for `placement`, starts ringfwd
/// (with the chains `chains` asks for) and routes it through its API.
pub fn start_ringfwd(
    scenario: &Scenario,
    placement: &Placement,
    idle: IdleStrategy,
    chains: &Chains,
    binaries: &Binaries,
    work_dir: &Path,
) -> Result<RoutedRingfwd, LaunchError> {
    let mut rig = build_rig(scenario, chains.red_pt())?;
    let files = write_configs(scenario, &rig, placement, idle, chains, work_dir)?;
    let kind = ForwarderKind::Ringfwd;
    let process = start_routed(kind, &files, scenario, binaries, work_dir, &mut rig)?;
    let media = process.media.first().copied().ok_or(LaunchError::NoMedia(kind))?;
    let api = process.api.ok_or(LaunchError::NoApi)?;
    let target = Target { pid: Some(process.pid()), media };
    Ok(RoutedRingfwd { rig, files, process, target, api })
}
