//! ringfwd's fuzz targets: one module per target, each with a `run(data: &[u8])` entry that never panics on any
//! input unless it found a bug, and asserts the invariants of what it drives (see each module's docs).
//!
//! - Parsers of the wire: [`packet`] (one datagram through every parser and a fixed forwarder), [`rtp`] (RTP with
//!   header extensions), [`rtcp`] (compounds with every report and feedback type), [`rewrite`] (the per-subscriber
//!   rewrite and the translation of feedback back to the publisher), [`twcc`] (the transport-wide feedback
//!   interceptor and its writer), [`recvmsg`] (the kernel's receive-message layout: io_uring's `recvmsg_out`, the
//!   source address, control messages).
//! - Parsers of the control plane: [`config`] (the config TOML and its static sessions), [`jwt`] (bearer tokens),
//!   [`metadata`] (metadata keys, values, versions and writes), [`api`] (protobuf requests through the conversion
//!   layer into the registry and on to the workers' tables).
//! - Stateful: [`forwarder`] (sequences of datagrams, commands and timer ticks through one forwarder with its
//!   interceptors).
//!
//! The libFuzzer binaries (`fuzz_targets/`, feature `libfuzzer`) call these entries; `tests/seeds.rs` replays
//! every target over its seed corpus (`seeds/<target>/`, written by [`seeds`]) on stable. This crate must never
//! be a dependency of the daemon: it allocates freely and panics on purpose when an invariant breaks.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod forwarder;
pub mod jwt;
pub mod metadata;
pub mod packet;
pub mod recvmsg;
pub mod rewrite;
pub mod rtcp;
pub mod rtp;
pub mod seeds;
pub mod twcc;

use std::sync::OnceLock;
use std::time::Instant;

/// A target: its name (the binary's, and its seed directory's) and its entry.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `fuzz/run.sh` runs them.
pub const TARGETS: [Target; 11] = [
    ("packet", packet::run),
    ("rtp", rtp::run),
    ("rtcp", rtcp::run),
    ("rewrite", rewrite::run),
    ("twcc", twcc::run),
    ("recvmsg", recvmsg::run),
    ("config", config::run),
    ("jwt", jwt::run),
    ("metadata", metadata::run),
    ("api", api::run),
    ("forwarder", forwarder::run),
];

/// One base time for a whole fuzzing run, so an input behaves the same on every execution (virtual time is an
/// offset from it).
pub fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Decodes `data` as a structured input with `arbitrary`, taking the whole of it (`None` when it is too short
/// for the structure: such inputs are simply not interesting).
pub fn structured<'a, T: arbitrary::Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(arbitrary::Unstructured::new(data)).ok()
}

/// Decodes the start of `data` as `T` and answers the rest as raw bytes: a datagram or a header that mutates
/// byte by byte (`arbitrary` would put a continuation byte before each byte of a `Vec<u8>`).
pub fn structured_then_bytes<'a, T: arbitrary::Arbitrary<'a>>(data: &'a [u8]) -> Option<(T, &'a [u8])> {
    let mut u = arbitrary::Unstructured::new(data);
    let params = u.arbitrary().ok()?;
    Some((params, u.take_rest()))
}

/// The structured input `data` decodes to for `target`, as text (for replaying a crash); the bytes' length for
/// targets whose input is the bytes themselves.
pub fn describe(target: &str, data: &[u8]) -> String {
    match target {
        "forwarder" => forwarder::describe(data),
        "api" => api::describe(data),
        "metadata" => metadata::describe(data),
        "twcc" => twcc::describe(data),
        _ => format!("{} bytes", data.len()),
    }
}

/// Whether a replay asked for a trace of each step (`RINGFWD_FUZZ_TRACE`, read once per process).
pub fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("RINGFWD_FUZZ_TRACE").is_some())
}
