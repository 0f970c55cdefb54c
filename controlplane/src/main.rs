//! `ringfwd`: the daemon's entry point. See the crate docs of `ringfwd` (controlplane/src/lib.rs).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// ringfwd: a thread-per-core io_uring RTP/RTCP media forwarder.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ringfwd::daemon::init_logging();
    let config = match ringfwd::daemon::load_config(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ringfwd: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        return match config.to_toml_string() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ringfwd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.check_config {
        println!("ringfwd: config ok");
        return ExitCode::SUCCESS;
    }
    match ringfwd::daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringfwd: {e}");
            ExitCode::FAILURE
        }
    }
}
