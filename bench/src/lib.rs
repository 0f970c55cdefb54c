//! `ringfwd-bench`: the load-test suite of ringfwd.
//!
//! Owns everything needed to measure a forwarder from the outside, over loopback only:
//! - [`payload`]: the bench payload (send time, generator sequence, original header fields,
//!   a checkable byte pattern) that generator and sink agree on;
//! - [`pace`]: sans-IO pacing (constant packet rates, video frames sent as bursts), testable in
//!   virtual time;
//! - [`gen`]: the RTP generator (packets built once per stream with the `rtp` crate, then only
//!   patched; sent with `sendmmsg` and UDP GSO);
//! - [`account`] and [`sink`]: the sink socket and its per-subscription accounting (loss, reorder,
//!   duplicates, integrity, header rewriting, one-way latency);
//! - [`baseline`]: two reference forwarders (`naive`, `mmsg`) driven by static routes in a ringfwd
//!   config file (they have no control API);
//! - [`scenario`]: the `flat`, `conference` and `broadcast` topologies, their forwarder config and
//!   the session that routes them;
//! - [`forwarder`]: starting and stopping any forwarder process (the real daemon or a baseline)
//!   through the same stdout protocol;
//! - [`control`]: the client of ringfwd's gRPC control API (routing a scenario, churn calls);
//! - [`launch`]: placement, the rig, the config files, and a forwarder started and routed for a
//!   scenario (ringfwd through its API, baselines from their config);
//! - [`cpu`]: CPU time of a process and socket drop counters, read from `/proc`;
//! - [`step`]: one measurement step (generate, sink, count) at one offered rate;
//! - [`search`]: the pass/fail rule of a step and the bounded search of the highest rate;
//! - [`compare`] and [`report`]: the side-by-side comparison and its tables and JSON;
//! - [`churn`]: subscribe/unsubscribe operations per second through the API while ringfwd forwards
//!   the conference, and the loss of its original subscriptions meanwhile.
//!
//! It never touches a non-loopback address, and every load loop is bounded in count and time.
//! It contains no `unsafe`: batched socket I/O comes from `ringfwd_dataplane::driver::batch`.
//!
//! Running it: `cargo build --release -p ringfwd -p ringfwd-bench`, then
//! `target/release/ringfwd-bench compare` (about 8 minutes for three forwarders; `--quick` for a
//! smoke run, `--forwarders mmsg,naive` without the daemon, `--json FILE` for every step). The
//! forwarder under test runs on the second core, generator and sink on the first; the machine
//! should otherwise be idle. `ringfwd-bench probe --forwarder F --scenario S --out-pps N` measures
//! one operating point. `ringfwd-bench churn [--seconds N] [--concurrency C]` measures the control
//! plane under load (about N + 5 seconds).

#![forbid(unsafe_code)]

pub mod account;
pub mod baseline;
pub mod churn;
pub mod compare;
pub mod control;
pub mod cpu;
pub mod forwarder;
pub mod gen;
pub mod launch;
pub mod pace;
pub mod payload;
pub mod report;
pub mod scenario;
pub mod search;
pub mod sink;
pub mod step;
