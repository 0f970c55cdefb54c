//! The ringfwd control plane: it owns the process.
//!
//! Loads and validates the config, starts the data plane, runs the control runtime (tokio, on its own
//! thread, off the worker cores) that talks to the workers only through their bounded rings, installs the
//! config's static routes, reports, and shuts everything down on SIGINT/SIGTERM. The gRPC API, the registry of
//! sessions, metadata and telemetry grow here.
//!
//! - [`commands`]: sending commands to workers and waiting for their acknowledgements.
//! - [`routes`]: the config's static sessions turned into worker commands.
//! - [`report`]: the start-up banner, the periodic counters line and the final counters.
//! - [`daemon`]: the process lifecycle.

#![forbid(unsafe_code)]

pub mod commands;
pub mod daemon;
pub mod report;
pub mod routes;
