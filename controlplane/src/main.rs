//! `ringfwd`: the daemon's entry point, and its command-line client ([`ringfwd::cli`]), with no native plugins.
//! See the crate docs of `ringfwd` (controlplane/src/lib.rs).

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    ringfwd::cli::main(ringfwd::plugin::Plugins::none())
}
