//! The ringfwd control plane: it owns the process.
//!
//! Loads and validates the config, starts the data plane, runs the control runtime (tokio, on its own
//! thread, off the worker cores) that talks to the workers only through their bounded rings, serves the gRPC
//! control API over the registry of sessions, installs the config's static sessions through that registry,
//! reports, and shuts everything down on SIGINT/SIGTERM.
//!
//! - [`api`]: the gRPC service (`ringfwd.v1.Ringfwd`).
//! - [`registry`]: sessions, endpoints, streams and subscriptions: the source of truth, and the plans that
//!   change the workers' tables.
//! - [`metadata`]: the controllers' key/value metadata on sessions, endpoints and streams (pure: merge rules,
//!   limits, change log); the API serves and watches it.
//! - [`events`]: lifecycle events: numbering, history, watchers, and the workers' events by name.
//! - [`webhooks`]: POSTing every event, signed, to the configured URLs, with bounded queues and retries.
//! - [`auth`]: bearer tokens (minting, verifying, the development key).
//! - [`tls`]: the API's TLS files (`[api.tls]`) loaded into the server config; [`incoming`]: the bounded accept,
//!   which runs the TLS handshake within the handshake timeout.
//! - [`commands`]: sending commands to workers and waiting for their acknowledgements.
//! - [`handover`]: upgrade without loss: the handover socket over which a new process takes the running one's sockets.
//! - [`state`]: persistent state: what the API accepted, kept in a store and restored at start-up.
//! - [`routes`]: the config's static sessions as registry creates: judged in a dry run (`--check-config`, and
//!   before start-up binds anything), then created through the API.
//! - [`cli`]: the `ringfwd` command line; [`cli::main`] is the binary, and the entry point of a program that links
//!   ringfwd as a library with its own [`plugin`]s.
//! - [`plugin`]: what a native (Rust) plugin is written against: the interceptor trait, its context and
//!   verdicts, and the registry of named plugins (re-exported from the data plane).
//! - [`plugins`]: the plugins a daemon runs: the native ones plus the config's WebAssembly plugins (`[[plugins]]`),
//!   loaded at start-up, and their metrics.
//! - [`ctl`]: `ringfwd ctl`, the command-line client.
//! - [`cli_docs`]: shell completions and man pages generated from the command line's definition.
//! - [`metrics`]: the Prometheus endpoint (`GET /metrics`) and the counting of API requests.
//! - [`report`]: the start-up banner, the periodic counters line and the final counters.
//! - [`daemon`]: the process lifecycle; [`listen_flags`]: its `--api-listen`, `--media-port`, `--metrics-listen`.

#![forbid(unsafe_code)]

pub mod affinity;
pub mod api;
pub mod auth;
pub mod cli;
pub mod cli_docs;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod ctl;
pub mod daemon;
pub mod events;
pub mod handover;
pub mod incoming;
pub mod listen_flags;
pub mod metadata;
pub mod metrics;
pub mod plugins;
pub mod registry;
pub mod report;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod webhooks;

pub use ringfwd_dataplane::plugin;
