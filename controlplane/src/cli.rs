//! The `ringfwd` command line: argument parsing and what each subcommand runs. The binary's `main` is
//! [`main`] with no plugins; a program that links ringfwd as a library calls [`main`] with its own.
//!
//! Owns the parsing and the exit codes (2: the config or a flag is refused; 1: a run failed). Never holds
//! logic a subcommand's module owns: each arm calls into `daemon`, `ctl`, `auth`, `routes` or the tuning crate.

use std::path::PathBuf;
use std::process::ExitCode;

use ringfwd_dataplane::control::Plugins;

use crate::registry::Chains;

use clap::{CommandFactory, Parser, Subcommand};
use ringfwd_tuning::host::{CheckItem, Status};

/// A thread-per-core io_uring RTP/RTCP media forwarder.
///
/// Without a subcommand, runs the forwarder.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// TOML config file; without it the built-in default config is used (see tuning/examples/dev-2core.toml).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective config on this host as TOML and exit: a config the daemon accepts, with
    /// `placement.worker_cores = "auto"` resolved and the sizes left to [load] derived, each such value
    /// marked by a trailing comment. Fails as --check-config does when the placement does not fit this host or
    /// a static session is refused.
    #[arg(long, conflicts_with = "check_config")]
    print_config: bool,
    /// Validate the config, its placement on this host (worker cores, packet memory) and its static sessions (by
    /// the rules the control API applies to the same creates), and exit.
    #[arg(long)]
    check_config: bool,
    /// Take over from the ringfwd running on the same state directory, without losing a packet: get its media
    /// sockets and listeners over its handover socket (`<state directory>/handover.sock`), start with receives held,
    /// then, once it stopped forwarding and released the state store, restore its state, forward and serve; it exits.
    /// Needs `state.persist = true`, and the same number of workers and the same addresses (the sockets are taken as
    /// they are). `--take-over` alone fails when no ringfwd answers; `--take-over=if-running` then starts as without
    /// the flag (what the ringfwd@.service units run). See README "Restarts and upgrades".
    #[arg(
        long,
        value_name = "WHEN",
        num_args = 0..=1,
        default_missing_value = "always",
        conflicts_with_all = ["check_config", "print_config"]
    )]
    take_over: Option<TakeOver>,
    #[command(flatten)]
    listen: crate::listen_flags::ListenFlags,
    #[command(subcommand)]
    command: Option<Command>,
}

/// When `--take-over` takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TakeOver {
    /// Always: fail when no ringfwd answers on the handover socket.
    Always,
    /// When a ringfwd runs on the state directory; else start as without the flag.
    IfRunning,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive a running ringfwd over its control API.
    Ctl(Box<crate::ctl::CtlArgs>),
    /// Mint a bearer token for the control API with a key from the config's [[auth.keys]].
    Token {
        /// The config holding the keys.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: crate::auth::TokenArgs,
    },
    /// Host tuning.
    #[command(subcommand)]
    Tune(TuneCommand),
    /// Print the shell completion script for SHELL to stdout (e.g. `ringfwd completions bash >
    /// /usr/share/bash-completion/completions/ringfwd`).
    Completions {
        /// The shell.
        #[arg(value_enum, value_name = "SHELL")]
        shell: crate::cli_docs::Shell,
    },
    /// Print the man page of ringfwd (roff) to stdout; with --dir, write it and one page per subcommand
    /// (ringfwd-ctl.1, ringfwd-ctl-session.1, ...) into DIR instead.
    Man {
        /// Write ringfwd.1 and a page per subcommand into this directory (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TuneCommand {
    /// Report, for this host and config, each tuning item as ok / warn / fail with its fix; only reads.
    /// Exits 1 when an item fails.
    Check {
        /// The config whose placement and buffer sizes are checked; default: the built-in config.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the items as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("ringfwd: {message}");
    ExitCode::from(code)
}

/// Runs the `ringfwd` command line (the daemon, `ctl`, `token`, `tune`, `completions`, `man`) with the given
/// native plugins registered: the whole of the `ringfwd` binary, whose `main` calls it with [`Plugins::none`].
///
/// A program that links ringfwd as a library registers its own interceptors and calls this from its `main`; the
/// config's `[interceptors]` and the API's `interceptors.names` then accept the plugins' names like any built-in
/// (see `examples/max_pps.rs` and [`crate::plugin`]).
pub fn main(plugins: Plugins) -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Ctl(args)) => {
            return match crate::ctl::run(*args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("ringfwd ctl: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Token { config, args }) => {
            let config = match crate::daemon::load_config(config.as_deref()) {
                Ok(config) => config,
                Err(e) => return fail(e, 2),
            };
            return match crate::auth::run(&args, &config, crate::clock::unix_s()) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            };
        }
        Some(Command::Tune(TuneCommand::Check { config, json })) => return tune_check(config.as_deref(), json),
        Some(Command::Completions { shell }) => {
            let out = &mut std::io::stdout().lock();
            return match crate::cli_docs::completions(shell, &mut Cli::command(), out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e, 1),
            };
        }
        Some(Command::Man { dir: None }) => {
            return match crate::cli_docs::man_page(Cli::command(), &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e, 1),
            };
        }
        Some(Command::Man { dir: Some(dir) }) => {
            return match crate::cli_docs::write_man_pages(Cli::command(), &dir) {
                Ok(written) => {
                    eprintln!("ringfwd: wrote {} man pages to {}", written.len(), dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            };
        }
        None => {}
    }
    crate::daemon::init_logging();
    let config = match crate::daemon::load_config(cli.config.as_deref()).and_then(|c| cli.listen.apply(c)) {
        Ok(config) => config,
        Err(e) => return fail(e, 2),
    };
    if cli.print_config {
        // Resolved as the daemon resolves it before it starts the workers; a config the daemon accepts: its chains
        // and its static sessions too.
        let (cores, _, _) = match dry_run(&config, plugins) {
            Ok(judged) => judged,
            Err(exit) => return exit,
        };
        return match config.to_effective_toml(&cores) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        };
    }
    if cli.check_config {
        // What the daemon checks before it binds anything: the config, where its files go, its placement on this
        // host, then its static sessions, judged by the registry's rules in a dry run on that many workers.
        let paths = match crate::daemon::StatePaths::resolve(&config) {
            Ok(paths) => paths,
            Err(e) => return fail(e, 2),
        };
        // The API's TLS files are read and parsed as at start-up.
        let tls = match config.api.tls.as_ref().map(crate::tls::server_config).transpose() {
            Ok(tls) => tls,
            Err(e) => return fail(format!("invalid config: {e}"), 2),
        };
        let api = match (&tls, &config.api.tls) {
            (Some(_), Some(files)) if files.client_ca_file.is_some() => "API over TLS with client certificates",
            (Some(_), _) => "API over TLS",
            _ => "API plaintext",
        };
        return match dry_run(&config, plugins) {
            Ok((cores, resources, wasm)) => {
                println!(
                    "ringfwd: config ok ({} workers on cores {cores:?}; {api}; WebAssembly plugins loaded: {wasm}; static \
                     sessions: {}, creating {resources} resources; state directory {}, pcap recordings in {})",
                    cores.len(),
                    config.sessions.len(),
                    paths.state.display(),
                    paths.tap.display()
                );
                ExitCode::SUCCESS
            }
            Err(exit) => exit,
        };
    }
    let start = match cli.take_over {
        None => crate::daemon::Start::Fresh,
        Some(TakeOver::Always) => crate::daemon::Start::TakeOver,
        Some(TakeOver::IfRunning) => crate::daemon::Start::TakeOverIfRunning,
    };
    match crate::daemon::run_with(config, start, &plugins) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, 1),
    }
}

/// What the daemon judges before it binds anything, once the config is read: the worker cores its placement
/// resolves to on this host, its WebAssembly plugins (loaded as at start-up), its chains against the registered
/// plugins, and its static sessions by the registry's
/// rules in a dry run on that many workers. Answers the cores, the number of resources the sessions create and the
/// number of WebAssembly plugins loaded, or the exit after the error was printed.
fn dry_run(config: &ringfwd_tuning::Config, plugins: Plugins) -> Result<(Vec<usize>, usize, usize), ExitCode> {
    let cores = crate::affinity::worker_cores(config).map_err(|e| fail(e, 2))?;
    let loaded = crate::plugins::load(config, plugins).map_err(|e| fail(e, 2))?;
    let chains = Chains::new(config.interceptors.clone(), loaded.registry).map_err(|e| fail(e, 2))?;
    let resources = crate::routes::check(config, cores.len(), &chains)
        .map_err(|e| fail(crate::daemon::DaemonError::Routes(e), 2))?;
    Ok((cores, resources, loaded.wasm.len()))
}

/// Width of the `tune check` table when stdout is not a terminal.
const TABLE_WIDTH_CHARS: u16 = 140;

/// `ringfwd tune check`: host facts from `/`, worker cores resolved from the online CPUs, the io_uring probe.
fn tune_check(config: Option<&std::path::Path>, json: bool) -> ExitCode {
    let config = match crate::daemon::load_config(config) {
        Ok(config) => config,
        Err(e) => return fail(e, 2),
    };
    let facts = ringfwd_tuning::host::read_host_facts(std::path::Path::new("/"));
    let mut items = vec![io_uring_item(config.media.driver)];
    let worker_cores = match config.resolve_placement(&ringfwd_tuning::read_topology(std::path::Path::new("/"))) {
        Ok(cores) => cores,
        Err(e) => {
            items.push(CheckItem::new("placement", Status::Fail, e.to_string()));
            Vec::new()
        }
    };
    items.extend(ringfwd_tuning::host::check(&facts, &config, &worker_cores));
    if json {
        match serde_json::to_string_pretty(&items) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(e, 1),
        }
    } else {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        if table.width().is_none() {
            // Not a terminal: wrap to a width that reads well in logs and notes.
            table.set_width(TABLE_WIDTH_CHARS);
        }
        table.set_header(["STATUS", "ITEM", "DETAIL", "FIX"]);
        for item in &items {
            let status = match item.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            table.add_row([status, item.name, &item.detail, item.fix.as_deref().unwrap_or("")]);
        }
        println!("{table}");
    }
    if items.iter().any(|i| i.status == Status::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The io_uring item: Fail (Warn when the config runs the mmsg driver) when the driver's ring cannot be built
/// or an opcode it needs is missing.
fn io_uring_item(driver: ringfwd_tuning::Driver) -> CheckItem {
    const NAME: &str = "io_uring";
    let unusable = if driver == ringfwd_tuning::Driver::Mmsg { Status::Warn } else { Status::Fail };
    match ringfwd_dataplane::control::io_uring_features() {
        Err(e) => CheckItem::new(NAME, unusable, e).with_fix(
            "use media.driver = \"mmsg\", or a kernel >= 6.1 with io_uring enabled (kernel.io_uring_disabled=0)",
        ),
        Ok(features) => {
            let present: Vec<&str> = features.iter().filter(|(_, ok)| *ok).map(|(name, _)| *name).collect();
            let missing: Vec<&str> = features.iter().filter(|(_, ok)| !*ok).map(|(name, _)| *name).collect();
            let needed_missing = missing.iter().any(|m| matches!(*m, "op_recvmsg" | "op_sendmsg"));
            let detail = format!(
                "available: {}; missing: {}",
                present.join(" "),
                if missing.is_empty() { "none".to_owned() } else { missing.join(" ") }
            );
            if needed_missing {
                CheckItem::new(NAME, unusable, detail).with_fix("use media.driver = \"mmsg\" or a newer kernel")
            } else {
                CheckItem::new(NAME, Status::Ok, detail)
            }
        }
    }
}
