//! The ringfwd control API schema: the single source of truth for the wire between a signaling controller and
//! ringfwd.
//!
//! Owns the versioned protobuf package (`ringfwd.v1`) and the Rust types generated from it. The control API
//! (sessions, endpoints, streams, subscriptions, node info, drain) is defined here when the gRPC server is
//! built; until then the daemon is driven by the static routes of its config file (see the `ringfwd-tuning`
//! crate). Nothing in this crate does I/O.

#![forbid(unsafe_code)]

/// The API package name every message and service of the schema lives in.
pub const API_PACKAGE: &str = "ringfwd.v1";
