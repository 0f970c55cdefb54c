//! `ringfwd`: the daemon's entry point, and its command-line client. See the crate docs of `ringfwd`
//! (controlplane/src/lib.rs).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ringfwd: a thread-per-core io_uring RTP/RTCP media forwarder.
///
/// Without a subcommand, runs the forwarder.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file; without it the built-in default config is used (see tuning/examples/dev-2core.toml).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Validate the config and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive a running ringfwd over its control API.
    Ctl(ringfwd::ctl::CtlArgs),
    /// Mint a bearer token for the control API with a key from the config's [[auth.keys]].
    Token {
        /// The config holding the keys.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: ringfwd::auth::TokenArgs,
    },
}

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("ringfwd: {message}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Ctl(args)) => {
            return match ringfwd::ctl::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("ringfwd ctl: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Token { config, args }) => {
            let config = match ringfwd::daemon::load_config(config.as_deref()) {
                Ok(config) => config,
                Err(e) => return fail(e, 2),
            };
            return match ringfwd::auth::run(&args, &config, ringfwd::daemon::now_unix_s()) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            };
        }
        None => {}
    }
    ringfwd::daemon::init_logging();
    let config = match ringfwd::daemon::load_config(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => return fail(e, 2),
    };
    if cli.print_config {
        return match config.to_toml_string() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        };
    }
    if cli.check_config {
        println!("ringfwd: config ok");
        return ExitCode::SUCCESS;
    }
    match ringfwd::daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, 1),
    }
}
