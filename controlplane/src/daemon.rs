//! The process lifecycle: config, data plane, control runtime, API, static sessions, signals, shutdown.
//!
//! Owns the order of things: load and validate the config; judge its static sessions with the registry's rules (a dry
//! run, [`routes::check`], as `--check-config` does); resolve where files go ([`StatePaths`]: the state directory,
//! and the tap's pcap directory under it, handed to the data plane as a plain path); read and parse the API's TLS
//! files (`[api.tls]`, [`crate::tls`]; or warn that a non-loopback API is plaintext by `api.allow_plaintext`); open
//! the state store (`[state]`, [`crate::state`]; before any socket is bound, so a second daemon on the same state
//! directory is refused); confine
//! the process's threads to
//! the control cores ([`crate::affinity`]: `placement.control_cores`, else every allowed core without a worker); start
//! the workers (each pins itself to its core); start the control runtime on its own thread (pinned to the first
//! `placement.control_cores` when given); set up authentication (the configured keys, or a generated development key
//! whose admin token is written to the development token file, in a private directory, for `ringfwd ctl`); start the lifecycle event bus, the drain
//! of the workers' event rings and the webhook senders (before the static sessions, so that they are reported too);
//! restore the kept state through the registry and from then on keep every commit and the subscribers' numbering;
//! create the config's static sessions through the registry; serve the gRPC API (with the health service and
//! reflection); print the banner and the ready line; log counters periodically; on SIGINT or SIGTERM report
//! NOT_SERVING on the health service, stop serving, stop the workers (they stop receiving and flush in-flight sends)
//! and print the final counters; the event watchers end and the webhook queues get [`WEBHOOK_FLUSH_ON_STOP`] to
//! deliver what they hold.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ringfwd_dataplane::control::{Dataplane, Plugins, StartError, Takeover};
use ringfwd_tuning::{Config, ConfigError, StateEnv};
use tokio::signal::unix::{signal, SignalKind};

use crate::affinity::{self, AffinityError};
use crate::api::{self, Api, NodeStatic};
use crate::auth::{self, AuthError, DevTokenError, Grant, Keys, Verifier};
use crate::commands::CommandClient;
use crate::events::{EventBus, EventLimits};
use crate::handover::{self, HandoverError};
use crate::metadata::MetadataLimits;
use crate::metrics::{self, ApiMetrics};
use crate::registry::{Chains, Registry};
use crate::report;
use crate::routes::{self, RouteError};
use crate::state::{numbering, restore, StateStore};
use crate::telemetry::{self, StatsStore};
use crate::webhooks::{WebhookError, Webhooks};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data plane could not start.
    #[error("data plane: {0}")]
    Start(#[from] StartError),
    /// The control threads could not be kept off the worker cores.
    #[error("placement: {0}")]
    Affinity(#[from] AffinityError),
    /// A static session could not be created.
    #[error("static sessions: {0}")]
    Routes(#[from] RouteError),
    /// The state store could not be opened or restored.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A takeover failed.
    #[error(transparent)]
    Handover(#[from] HandoverError),
    /// Webhooks could not start (a URL, the secret file).
    #[error(transparent)]
    Webhooks(#[from] WebhookError),
    /// A file of `[api.tls]` could not be used.
    #[error("control API TLS: {0}")]
    Tls(#[from] crate::tls::TlsFileError),
    /// Keys or the development token could not be set up.
    #[error("auth: {0}")]
    Auth(#[from] AuthError),
    /// The development token could not be written where it goes.
    #[error("auth: {0}")]
    DevToken(#[from] DevTokenError),
    /// This node could not join its cluster (`[cluster]`).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::JoinError),
    /// The API address could not be bound.
    #[error("control API at {address}: {source}")]
    Listen {
        /// `api.listen`.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The control runtime could not be built or a signal handler installed.
    #[error("control runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Sets up logging to stderr; `RUST_LOG` overrides the default level (`info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// The config from `path`, or the built-in default.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => Config::from_file(path),
        None => {
            let config = Config::default();
            config.validate()?;
            Ok(config)
        }
    }
}

/// Where the daemon keeps files, resolved once at start-up from the config and this process's user and
/// environment ([`Config::state_directory`], [`Config::tap_directory`]): both absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePaths {
    /// `state.directory`, or its default.
    pub state: PathBuf,
    /// Where the recording tap writes its pcap files (`interceptors.tap.directory` under `state`).
    pub tap: PathBuf,
}

impl StatePaths {
    /// The paths of `config` for this process.
    pub fn resolve(config: &Config) -> Result<StatePaths, ConfigError> {
        let env = StateEnv::from_process();
        Ok(StatePaths { state: config.state_directory(&env)?, tap: config.tap_directory(&env)? })
    }
}

/// How the daemon starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// On its own: it binds its sockets and restores what the state store kept.
    Fresh,
    /// Taking over from the daemon running on the same state directory (`ringfwd --take-over`, see
    /// [`crate::handover`]): its sockets and listeners, then its state.
    TakeOver,
    /// [`Start::TakeOver`] when a daemon answers on the handover socket, else [`Start::Fresh`]
    /// (`ringfwd --take-over=if-running`).
    TakeOverIfRunning,
}

/// Runs the daemon until SIGINT or SIGTERM, or until another process took over.
pub fn run(config: Config) -> Result<(), DaemonError> {
    run_with(config, Start::Fresh, &Plugins::none())
}

/// [`run`], started as `start` says, with the native `plugins` the program registered and the config's WebAssembly
/// plugins (the config's chains and the API may name them all).
pub fn run_with(config: Config, start: Start, plugins: &Plugins) -> Result<(), DaemonError> {
    let workers = affinity::worker_cores(&config)?;
    // Confined before the plugins load: an async plugin's thread, started by the load, inherits the control cores.
    let placed = affinity::confine_control_threads(&workers, &config.placement.control_cores, config.idle.strategy)?;
    let loaded = crate::plugins::load(&config, plugins.clone())?;
    let plugins = &loaded.registry;
    // The default chains against the registered plugins, then the static sessions, before anything is bound, as
    // `--check-config` judges them.
    let chains = Chains::new(config.interceptors.clone(), plugins.clone())?;
    routes::check(&config, workers.len(), &chains)?;
    if placed.shared_with_workers {
        tracing::warn!(
            cores = ?placed.cores,
            "every core this process may run on has a worker: the control plane shares them (leave a core free)"
        );
    }
    let paths = StatePaths::resolve(&config)?;
    // Read before anything starts: a TLS file that cannot be used stops the daemon at once, naming its key.
    let tls = api_tls(&config)?;
    let config_sessions = || config.sessions.iter().map(|s| s.id.clone()).collect();
    let handover_socket = handover::socket_path(&paths.state);
    let start = match start {
        Start::TakeOverIfRunning if handover::answers(&handover_socket) => Start::TakeOver,
        Start::TakeOverIfRunning => {
            tracing::info!(socket = %handover_socket.display(), "no ringfwd to take over from: starting on its own");
            Start::Fresh
        }
        start => start,
    };
    let (mut store, mut taking, takeover, inherited) = match start {
        Start::Fresh if config.state.persist => {
            // Opened before the media sockets are bound: its file lock refuses a second daemon on the same state
            // directory before it could join the media ports' reuseport groups.
            (Some(Arc::new(StateStore::open(&paths.state, config_sessions())?)), None, Takeover::default(), None)
        }
        Start::Fresh | Start::TakeOverIfRunning => (None, None, Takeover::default(), None),
        Start::TakeOver => {
            if !config.state.persist {
                let why = "state.persist = false: a takeover hands the state over through the state store";
                return Err(DaemonError::Handover(HandoverError::Protocol(why.into())));
            }
            let (conversation, offered) = handover::take(&handover_socket)?;
            tracing::info!(
                workers = offered.workers,
                addresses = ?offered.addresses,
                "taking over: got the running daemon's sockets; starting with receives held"
            );
            let takeover = Takeover { sockets: Some(offered.media), held: true };
            let listeners = Inherited { api: offered.api, metrics: offered.metrics };
            (None, Some(conversation), takeover, Some(listeners))
        }
    };
    let dataplane =
        match Dataplane::start_with(config.dataplane_settings(workers, &paths.tap, plugins.clone()), takeover) {
            Ok(dataplane) => dataplane,
            Err(e) => {
                if let Some(conversation) = taking.as_mut() {
                    let _ = conversation.send(&handover::Message::Refused { reason: e.to_string() }, &[]);
                }
                return Err(e.into());
            }
        };
    if let Some(conversation) = taking.as_mut() {
        // The running daemon stops forwarding now; the packets that arrive meanwhile wait in the shared sockets.
        conversation.send(&handover::Message::Ready, &[])?;
        conversation.expect(&handover::Message::Released)?;
        store = Some(Arc::new(StateStore::open(&paths.state, config_sessions())?));
    }
    let control_cores = config.placement.control_cores.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ringfwd-control")
        .enable_all()
        .on_thread_start(move || {
            if let Some(&core) = control_cores.first() {
                if !ringfwd_dataplane::control::pin_current_thread(core) {
                    tracing::warn!(core, "could not pin the control thread");
                }
            }
        })
        .build()?;
    let live = crate::plugins::live(loaded.clone());
    let started = Started { store, taking, inherited, chains, plugins: Arc::clone(&live) };
    let result = runtime.block_on(control(&config, &dataplane, &paths, tls, started));
    // The workers stop reading, finish what they received and publish their last numbering.
    let workers = dataplane.workers().to_vec();
    let final_counters = dataplane.stop();
    let result = match result {
        Ok(Stopped::HandedOver { mut conversation, store, api }) => {
            let result = runtime.block_on(release(&api, &workers, &store)).and_then(|()| {
                conversation.send(&handover::Message::Released, &[])?;
                conversation.expect(&handover::Message::Done)?;
                Ok(())
            });
            tracing::info!("handed over: the new daemon forwards and serves the API");
            result
        }
        // As for a takeover: the next start continues every subscriber's numbering exactly, not skipping ahead.
        Ok(Stopped::Signal { kept: Some((store, api)) }) => runtime.block_on(release(&api, &workers, &store)),
        Ok(Stopped::Signal { kept: None }) => Ok(()),
        Err(e) => Err(e),
    };
    println!("{}", report::final_line(&final_counters));
    // Each WebAssembly plugin's last counters, one line each (what `ringfwd ctl plugin list` showed last).
    for plugin in &crate::plugins::current(&live).wasm {
        let counters: Vec<String> =
            plugin.stats().named().iter().map(|(name, value)| format!("{name}={value}")).collect();
        println!("ringfwd: plugin {}: {}", plugin.name(), counters.join(" "));
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The listeners of the daemon taken over from.
struct Inherited {
    api: OwnedFd,
    metrics: Option<OwnedFd>,
}

/// What the control plane starts with.
struct Started {
    /// The state store (`None`: `state.persist = false`).
    store: Option<Arc<StateStore>>,
    /// The conversation with the daemon being taken over from, which is told when this one serves.
    taking: Option<handover::Conversation>,
    /// That daemon's listeners.
    inherited: Option<Inherited>,
    /// The registry's chain context: the default chains checked against the registered plugins.
    chains: Chains,
    /// The plugins chains may name (for the API's node info and the metrics endpoint), as the API changes them.
    plugins: crate::plugins::LivePlugins,
}

/// Why the control plane stopped.
enum Stopped {
    /// SIGINT or SIGTERM; with the state store and the API when state is kept (`state.persist`): the workers are to
    /// stop and their last numbering to be kept.
    Signal { kept: Option<(Arc<StateStore>, Arc<Api>)> },
    /// A new daemon is ready to take over: the API is closed; the workers are to stop and the state to be released.
    HandedOver { conversation: handover::Conversation, store: Arc<StateStore>, api: Arc<Api> },
}

/// After the workers stopped (a takeover or a stop): keeps the numbering they published last, marked exact, and closes
/// the store (the process taking over, or the next start, opens it).
async fn release(
    api: &Api,
    workers: &[ringfwd_dataplane::control::WorkerHandle],
    store: &Arc<StateStore>,
) -> Result<(), DaemonError> {
    let rings: Vec<_> = workers.iter().map(|w| Arc::clone(&w.numbering)).collect();
    let mut tracker = numbering::Tracker::default();
    let now = std::time::Instant::now();
    tracker.drain(&rings, now);
    let names = api.subscription_names(tracker.all()).await;
    let now_unix_ns = crate::clock::unix_ns();
    let rows: Vec<_> = names
        .into_iter()
        .filter_map(|(id, (session, subscription, _, _))| {
            Some((session, subscription, tracker.take_as(id, now_unix_ns, now, true)?))
        })
        .collect();
    tracing::info!(subscriptions = rows.len(), "keeping the exact numbering for the next daemon");
    store.keep_numbering(&rows)?;
    store.close();
    Ok(())
}

/// The API's TLS server config from `[api.tls]`, its files read now; `None` (plaintext) with a warning when the API
/// listens beyond loopback because `api.allow_plaintext` says so.
pub fn api_tls(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, crate::tls::TlsFileError> {
    let Some(tls) = &config.api.tls else {
        if !config.api.listen.ip().is_loopback() {
            tracing::warn!(
                api.listen = %config.api.listen,
                "api.allow_plaintext = true: the control API serves {} without TLS; bearer tokens and every call \
                 cross the network in the clear (add [api.tls])",
                config.api.listen
            );
        }
        return Ok(None);
    };
    crate::tls::server_config(tls).map(Some)
}

/// The configured keys, or a generated development key whose admin token is written for `ringfwd ctl`.
fn keys(config: &Config) -> Result<Keys, DaemonError> {
    if !config.auth.keys.is_empty() {
        return Ok(Keys::from_config(&config.auth)?);
    }
    let (keys, id) = Keys::generate_dev();
    let ttl = Duration::from_secs(config.auth.dev_token_ttl_s);
    let token = auth::mint(&keys, &id, Grant::Admin, "ringfwd-dev", ttl, crate::clock::unix_s())?;
    let location = config.auth.dev_token_location().map_err(DevTokenError::from)?;
    auth::write_dev_token(&location.path, &token)?;
    // The path only, never the token.
    tracing::warn!(
        "no [[auth.keys]] in the config: generated a development key (the API serves loopback only); its admin \
         token, valid {}s, is in {} (because {}; `ringfwd ctl` run by this user in this environment reads it)",
        config.auth.dev_token_ttl_s,
        location.path.display(),
        location.source
    );
    Ok(keys)
}

async fn control(
    config: &Config,
    dataplane: &Dataplane,
    paths: &StatePaths,
    tls: Option<Arc<rustls::ServerConfig>>,
    started: Started,
) -> Result<Stopped, DaemonError> {
    let Started { store, mut taking, inherited, chains, plugins } = started;
    let plugin_metrics = crate::plugins::metrics(&plugins);
    let (inherited_api, inherited_metrics) = match inherited {
        Some(Inherited { api, metrics }) => (Some(api), metrics),
        None => (None, None),
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let timeout = Duration::from_millis(config.control.command_timeout_ms);
    let client = CommandClient::start(dataplane.workers().to_vec(), Arc::clone(dataplane.control_wake()), timeout)?;
    let media = dataplane.media_addresses().to_vec();
    let advertise =
        if config.api.advertise_addresses.is_empty() { media.clone() } else { config.api.advertise_addresses.clone() };
    let boot_id: u64 = rand::random();
    let node = NodeStatic {
        version: env!("CARGO_PKG_VERSION"),
        boot_id,
        started_unix_ms: crate::clock::unix_ms(),
        driver: dataplane.backend().as_str(),
        media: media.clone(),
        rtcp: dataplane.rtcp_addresses().to_vec(),
        advertise_rtcp: if dataplane.rtcp_addresses().is_empty() {
            advertise.clone()
        } else {
            advertise.iter().filter_map(|a| Some(SocketAddr::new(a.ip(), a.port().checked_add(1)?))).collect()
        },
        advertise,
        workers: dataplane.workers().to_vec(),
        max_packets_per_second_per_source: config.admission.max_packets_per_second_per_source,
        plugins,
    };
    let registry = Registry::from_config(config, media.clone(), dataplane.workers().len(), chains);
    let metadata = MetadataLimits::from_config(config);
    let stats = Arc::new(std::sync::Mutex::new(StatsStore::new(
        config.admission.max_streams as usize + config.admission.max_subscriptions as usize,
        Duration::from_millis(u64::from(config.telemetry.stats_grace_ms)),
    )));
    // ---- lifecycle events and webhooks ([events], [webhooks]) ----
    // The bus exists before the API (and the static sessions) so that every commit is reported; its boot id
    // keeps event ids unique across restarts.
    let events = Arc::new(EventBus::new(EventLimits::from_config(config), boot_id));
    let webhooks = Webhooks::start(config, &events)?;
    let keys = keys(config)?;
    let verifier = Verifier::new(keys.clone());
    let api = Arc::new(Api::new(
        registry,
        client,
        node,
        metadata,
        Arc::clone(&stats),
        Arc::clone(&events),
        Duration::from_millis(u64::from(config.telemetry.stats_interval_ms)),
    ));
    let event_rings = dataplane.workers().iter().map(|w| Arc::clone(&w.events)).collect();
    let event_period = Duration::from_millis(u64::from(config.events.worker_poll_ms));
    let (events_stop_tx, events_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let event_drain = tokio::spawn(Arc::clone(&api).drain_worker_events(event_rings, event_period, async {
        let _ = events_stop_rx.await;
    }));
    // ---- end of lifecycle events and webhooks ----
    // The Prometheus endpoint ([metrics]) and the API request counters it exports.
    let api_metrics = Arc::new(ApiMetrics::new());
    let (metrics_stop_tx, metrics_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cluster_counters = Arc::new(crate::cluster::ClusterCounters::default());
    let cluster_metrics: Arc<dyn metrics::ExportMetrics> =
        Arc::new(metrics::cluster::ClusterMetrics { counters: Arc::clone(&cluster_counters) });
    let event_metrics: Arc<dyn metrics::ExportMetrics> = Arc::new(metrics::events::EventMetrics {
        bus: Arc::clone(events.counters()),
        webhooks: webhooks.counters().to_vec(),
    });
    let metrics_server = start_metrics(
        config,
        dataplane,
        &api,
        &api_metrics,
        &stats,
        vec![event_metrics, plugin_metrics, cluster_metrics],
        inherited_metrics,
        async {
            let _ = metrics_stop_rx.await;
        },
    )
    .await;
    let metrics_address = metrics_server.as_ref().map(|(address, _, _)| *address);

    let rings = dataplane.workers().iter().map(|w| Arc::clone(&w.stats)).collect();
    // Drained four times per round, so a round never waits long in the rings.
    let collect_period = Duration::from_millis(u64::from(config.telemetry.stats_interval_ms / 4).max(25));
    let (collect_stop_tx, collect_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(telemetry::collect::run(rings, stats, collect_period, async {
        let _ = collect_stop_rx.await;
    }));
    // ---- persistent state ([state]): what was kept is restored before the config's sessions and before the API
    // opens; from then on every commit is kept, and the workers' numbering every state.numbering_interval_ms ----
    let (numbering_stop_tx, numbering_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let numbering_keeper = match &store {
        Some(store) => {
            let restored = restore::restore(&api, store).await?;
            tracing::info!(
                sessions = restored.sessions,
                objects = restored.objects,
                continued = restored.continued,
                plugins = restored.plugins,
                "restored the kept state from {}",
                store.path().display()
            );
            api.keep_state(Arc::clone(store));
            let rings = dataplane.workers().iter().map(|w| Arc::clone(&w.numbering)).collect();
            let interval = Duration::from_millis(u64::from(config.state.numbering_interval_ms));
            Some(tokio::spawn(numbering::keep(Arc::clone(&api), rings, Arc::clone(store), interval, async {
                let _ = numbering_stop_rx.await;
            })))
        }
        None => None,
    };
    // ---- end of persistent state ----
    let installed = routes::install(&api, config, crate::clock::unix_s() * 1000).await?;
    // Everything is restored: a daemon taking over reads its sockets from now on (the packets that waited in them
    // first).
    dataplane.release_receives();
    let listen = config.api.listen;
    let listener = match inherited_api {
        // The listener of the daemon taken over from: connections made meanwhile wait in its backlog.
        Some(fd) => {
            let listener = std::net::TcpListener::from(fd);
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)?
        }
        None => tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| DaemonError::Listen { address: listen, source })?,
    };
    let api_address = listener.local_addr()?;
    // ---- the cluster ([cluster]): this node's lease and the streams it publishes, in the directory the nodes share;
    // joined once everything is restored and installed, so the first write holds them all ----
    let relay = media.first().copied().unwrap_or(api_address);
    let cluster =
        crate::cluster::join(config, &api, keys, relay, api_address, dataplane.workers().len(), cluster_counters)
            .await?;
    if let Err(e) = cluster.resync(&api).await {
        tracing::warn!("cluster: writing this node's streams failed (again at the next heartbeat): {e}");
    }
    api.attach_cluster(Arc::clone(&cluster));
    // Streams relayed here before a restart: Sub again (in the background: an origin that is gone costs retries).
    let resume = (Arc::clone(&api), Arc::clone(&cluster));
    tokio::spawn(async move { resume.0.resume_relays(&resume.1).await });
    tracing::info!(node = cluster.node_id(), directory = cluster.backend(), "cluster: joined");
    // ---- end of the cluster ----
    // Kept to hand over to a daemon taking over from this one.
    let api_fd = listener.as_fd().try_clone_to_owned()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = crate::incoming::ConnectionLimits {
        name: "API",
        max_connections: config.api.max_connections as usize,
        handshake_bytes: crate::incoming::HTTP2_PREFACE_BYTES,
        handshake_timeout: Duration::from_millis(u64::from(config.api.handshake_timeout_ms)),
    };
    let server = tokio::spawn(api::serve(listener, limits, tls, api.clone(), verifier, api_metrics, async {
        let _ = stop_rx.await;
    }));
    let banner = report::banner(config, dataplane.workers(), &media, api_address, metrics_address, installed, paths);
    eprintln!("{banner}");
    println!("{}", report::ready_line(dataplane.workers().len(), &media, api_address, metrics_address));
    if let Some(mut conversation) = taking.take() {
        tracing::info!("took over: forwarding and serving the API; the daemon taken over from exits");
        tokio::task::spawn_blocking(move || conversation.send(&handover::Message::Done, &[]))
            .await
            .map_err(std::io::Error::other)??;
    }
    // ---- handover ([state]): a daemon started with --take-over on this state directory gets this one's sockets ----
    let (handover_tx, mut handover_rx) = tokio::sync::mpsc::channel::<handover::Conversation>(1);
    let handover_server = match &store {
        Some(_) => {
            let mut fds: Vec<OwnedFd> = Vec::new();
            for socket in dataplane.socket_fds().into_iter().flatten() {
                fds.push(socket.try_clone_to_owned()?);
            }
            fds.push(api_fd);
            if let Some((_, _, metrics_fd)) = &metrics_server {
                fds.push(metrics_fd.try_clone()?);
            }
            let mut addresses = media.clone();
            addresses.extend_from_slice(dataplane.rtcp_addresses());
            let offer = handover::Message::Offer {
                workers: dataplane.workers().len(),
                addresses,
                api: api_address,
                metrics: metrics_address,
            };
            let path = handover::socket_path(&paths.state);
            Some(tokio::spawn(serve_handover(handover::listen(&path)?, path, offer, fds, handover_tx)))
        }
        None => None,
    };
    // ---- end of handover ----
    let period = Duration::from_secs(config.control.stats_log_interval_s.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let handed_over = loop {
        tokio::select! {
            _ = sigint.recv() => break None,
            _ = sigterm.recv() => break None,
            Some(conversation) = handover_rx.recv() => break Some(conversation),
            _ = ticker.tick(), if config.control.stats_log_interval_s > 0 => {
                tracing::info!("{}", report::periodic_line(&dataplane.counters()));
            }
        }
    };
    if let Some(server) = handover_server {
        server.abort();
    }
    match handed_over {
        Some(_) => tracing::info!("handing over: API closed, receives cancelled, in-flight sends flushed"),
        None => tracing::info!("stopping: API closed, receives cancelled, in-flight sends flushed"),
    }
    // Health probes and watchers see NOT_SERVING before the listener closes.
    api.begin_shutdown().await;
    // A daemon taking over keeps this node's lease and streams (it renews them from now on); a stop gives them up now.
    match handed_over {
        Some(_) => cluster.stop(),
        None => cluster.leave().await,
    }
    let _ = stop_tx.send(());
    let _ = collect_stop_tx.send(());
    let _ = collector.await;
    let _ = numbering_stop_tx.send(());
    if let Some(keeper) = numbering_keeper {
        let _ = keeper.await;
    }
    let _ = metrics_stop_tx.send(());
    if let Some((_, metrics_server, _)) = metrics_server {
        let _ = tokio::time::timeout(Duration::from_secs(2), metrics_server).await;
    }
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), server).await.unwrap_or(Ok(Ok(()))) {
        tracing::warn!(error = %e, "API server stopped with an error");
    }
    // ---- lifecycle events and webhooks: the workers' last events, then end the watchers and flush the
    // webhook queues for at most WEBHOOK_FLUSH_ON_STOP ----
    let _ = events_stop_tx.send(());
    let _ = event_drain.await;
    events.close();
    webhooks.stop(WEBHOOK_FLUSH_ON_STOP).await;
    Ok(match (handed_over, store) {
        (Some(conversation), Some(store)) => Stopped::HandedOver { conversation, store, api },
        (_, store) => Stopped::Signal { kept: store.map(|store| (store, api)) },
    })
}

/// Answers daemons that connect to take over, one at a time: offers them `offer` with `fds` and, once one is ready
/// (it runs on the sockets, receives held), hands its conversation to the control loop through `ready` and ends. A
/// daemon that refuses or fails leaves this one as it was (logged).
async fn serve_handover(
    listener: tokio::net::UnixListener,
    path: PathBuf,
    offer: handover::Message,
    fds: Vec<OwnedFd>,
    ready: tokio::sync::mpsc::Sender<handover::Conversation>,
) {
    let fds = Arc::new(fds);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "handover socket: accept failed");
                continue;
            }
        };
        let (path, offer, fds) = (path.clone(), offer.clone(), Arc::clone(&fds));
        let exchange = tokio::task::spawn_blocking(move || {
            let borrowed: Vec<_> = fds.iter().map(OwnedFd::as_fd).collect();
            let mut conversation = handover::offer(stream, &path, &offer, &borrowed)?;
            conversation.expect(&handover::Message::Ready)?;
            Ok::<_, HandoverError>(conversation)
        });
        match exchange.await {
            Ok(Ok(conversation)) => {
                tracing::info!("a daemon taking over is ready: handing over");
                let _ = ready.send(conversation).await;
                return;
            }
            Ok(Err(error)) => tracing::warn!(%error, "a takeover did not happen; this daemon goes on"),
            Err(error) => tracing::warn!(%error, "a takeover did not happen; this daemon goes on"),
        }
    }
}

/// How long the webhook queues may take to deliver what they hold at shutdown before they are given up.
pub const WEBHOOK_FLUSH_ON_STOP: Duration = Duration::from_secs(2);

/// Starts the Prometheus endpoint (`[metrics]`), on `inherited` (the listener of the daemon taken over from) or
/// bound to `metrics.listen`, serving until `stop`; answers its bound address, task and a duplicate of its listener
/// (for a daemon taking over from this one). `None` when it is disabled, or when its address cannot be bound: that is
/// logged as an error naming `metrics.listen`, and the daemon forwards without the endpoint (media does not depend
/// on it).
#[allow(clippy::too_many_arguments)]
async fn start_metrics(
    config: &Config,
    dataplane: &Dataplane,
    api: &Arc<Api>,
    api_metrics: &Arc<ApiMetrics>,
    stats: &Arc<std::sync::Mutex<StatsStore>>,
    extra: Vec<Arc<dyn metrics::ExportMetrics>>,
    inherited: Option<OwnedFd>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Option<(SocketAddr, tokio::task::JoinHandle<()>, OwnedFd)> {
    if !config.metrics.enabled {
        return None;
    }
    let listen = config.metrics.listen;
    let listener = match inherited {
        Some(fd) => {
            let listener = std::net::TcpListener::from(fd);
            listener.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(listener))
        }
        None => tokio::net::TcpListener::bind(listen).await,
    };
    let bound = match listener {
        Ok(listener) => listener.local_addr().map(|address| (listener, address)),
        Err(e) => Err(e),
    };
    let (listener, address) = match bound {
        Ok(bound) => bound,
        Err(error) => {
            tracing::error!(metrics.listen = %listen, %error, "metrics endpoint not served: cannot bind metrics.listen");
            return None;
        }
    };
    let sources = metrics::Sources {
        version: env!("CARGO_PKG_VERSION"),
        driver: dataplane.backend().as_str(),
        workers: dataplane.workers().to_vec(),
        latency: dataplane.latency().to_vec(),
        handover: dataplane.handover_rings(),
        pool_buffers_per_worker: dataplane.pool_buffers_per_worker(),
        api: Arc::clone(api_metrics),
        stats: Arc::clone(stats),
        recorder: dataplane.recorder_counters(),
        extra,
    };
    let max_connections = config.metrics.max_connections as usize;
    let duplicate = match listener.as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(error) => {
            tracing::error!(%error, "metrics endpoint not served: cannot duplicate its listener");
            return None;
        }
    };
    let task = tokio::spawn(metrics::serve(listener, sources, Arc::clone(api), max_connections, stop));
    Some((address, task, duplicate))
}
