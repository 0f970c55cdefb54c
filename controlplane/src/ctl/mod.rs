//! `ringfwd ctl`: the command-line client of the control API, covering every RPC.
//!
//! Owns argument parsing for the `ctl` subcommands, the connection (address, plaintext or TLS, see [`connect`], and
//! bearer token: `--token`, `RINGFWD_TOKEN`, or the development token file a locally running daemon wrote, see
//! [`token`]), and the exit
//! status: non-zero with the server's status code and message on error. Output is a human-readable table by
//! default and the protobuf JSON mapping with `--json` (see [`output`]; SSRCs are hex in tables and decimal numbers
//! in JSON, as every gRPC client of the schema sees them; every SSRC option takes decimal or `0x` hex, see
//! [`args`]); `metadata watch` prints one line per event (see [`metadata`]); `events watch` likewise (see
//! [`events`]).

mod args;
mod connect;
mod events;
mod metadata;
mod output;
mod run;
mod token;

pub use args::CtlArgs;
pub use run::run;
