//! Fuzzes every parser of datagrams from the wire (demux, RTP view, RTCP walker, RTCP rewriter) and
//! `Forwarder::on_datagram` with a fixed table, through `ringfwd_dataplane::core::fuzz_entry` — the
//! same entry point the CI property test runs on stable. Owns nothing else.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;

/// One base time for the whole run, so an input behaves the same on every execution.
static START: OnceLock<Instant> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    ringfwd_dataplane::core::fuzz_entry(*START.get_or_init(Instant::now), data);
});
