//! The process lifecycle: config, data plane, control runtime, static routes, signals, shutdown.
//!
//! Owns the order of things: load and validate the config; start the workers; start the control runtime on
//! its own thread (pinned to `placement.control_cores` when given, never on a worker core by validation);
//! install the static routes and wait for every acknowledgement; print the banner and the ready line; log
//! counters periodically; on SIGINT or SIGTERM stop the workers (they stop receiving, flush in-flight sends)
//! and print the final counters.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ringfwd_dataplane::runtime::{Dataplane, StartError};
use ringfwd_tuning::{Config, ConfigError};
use tokio::signal::unix::{signal, SignalKind};

use crate::commands::CommandClient;
use crate::report;
use crate::routes::{self, RouteError};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data plane could not start.
    #[error("data plane: {0}")]
    Start(#[from] StartError),
    /// A static route could not be installed.
    #[error("static routes: {0}")]
    Routes(#[from] RouteError),
    /// The control runtime could not be built or a signal handler installed.
    #[error("control runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Sets up logging to stderr; `RUST_LOG` overrides the default level (`info`).
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
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

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let dataplane = Dataplane::start(&config)?;
    let control_cores = config.placement.control_cores.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ringfwd-control")
        .enable_all()
        .on_thread_start(move || {
            if let Some(&core) = control_cores.first() {
                core_affinity_pin(core);
            }
        })
        .build()?;
    let result = runtime.block_on(control(&config, &dataplane));
    let final_counters = dataplane.stop();
    println!("{}", report::final_line(&final_counters));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

fn core_affinity_pin(core: usize) {
    if !ringfwd_dataplane::runtime::pin_current_thread(core) {
        tracing::warn!(core, "could not pin the control thread");
    }
}

async fn control(config: &Config, dataplane: &Dataplane) -> Result<(), DaemonError> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let timeout = Duration::from_millis(config.control.command_timeout_ms);
    let client = CommandClient::start(
        dataplane.workers().to_vec(),
        Arc::clone(dataplane.control_wake()),
        timeout,
    )?;
    let planned = routes::plan(
        config,
        dataplane.media_addresses(),
        dataplane.workers().len(),
    )?;
    let installed = routes::install(&client, planned).await?;
    eprintln!(
        "{}",
        report::banner(
            config,
            dataplane.workers(),
            dataplane.media_addresses(),
            installed
        )
    );
    println!(
        "{}",
        report::ready_line(dataplane.workers().len(), dataplane.media_addresses())
    );
    let period = Duration::from_secs(config.control.stats_log_interval_s.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = ticker.tick(), if config.control.stats_log_interval_s > 0 => {
                tracing::info!("{}", report::periodic_line(&dataplane.counters()));
            }
        }
    }
    tracing::info!("stopping: receives cancelled, in-flight sends flushed");
    Ok(())
}
