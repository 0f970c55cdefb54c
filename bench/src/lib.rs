//! `ringfwd-bench`: the load-test suite of ringfwd.
//!
//! Owns everything needed to measure a forwarder from the outside, over loopback only:
//! - [`scenario_file`] and [`scenario`]: scenarios as TOML files (`bench/scenarios/`, compiled in:
//!   `flat`, `conference`, `broadcast`, `audio-calls`, `loss-repair`, `churn`, `screen-share`,
//!   `impaired`, `capacity-audio`, `capacity-video`), validated with errors naming file, key and
//!   value, and expanded into streams, subscriptions, the forwarder config and the session;
//! - [`payload`]: the bench payload (send time, generator sequence, original header fields,
//!   a checkable byte pattern) that generator and sink agree on;
//! - [`pace`] and [`traffic`]: sans-IO pacing (constant packet rates, frames sent as bursts of
//!   ≤ 1200-byte packets) and frame sizes (video with a size distribution and periodic keyframes,
//!   screen share with rare large bursts), seeded and testable in virtual time;
//! - [`impair`]: seeded loss, reordering and duplication on the way in, counted exactly;
//! - [`gen`]: the RTP generator (packets built once per stream with the `rtp` crate, then only
//!   patched; sent with `sendmmsg` and UDP GSO);
//! - [`account`], [`nack`] and [`sink`]: the sink socket and its per-subscription accounting (loss,
//!   reorder, duplicates, integrity, header rewriting, one-way latency), and its generic NACKs;
//! - [`baseline`]: two reference forwarders (`naive`, `mmsg`) driven by static routes in a ringfwd
//!   config file (they have no control API);
//! - [`forwarder`]: starting and stopping any forwarder process (the real daemon or a baseline)
//!   through the same stdout protocol;
//! - [`control`]: the client of ringfwd's gRPC control API (routing a scenario, churn calls);
//! - [`launch`]: placement and pinning, the rig, the config files, and a forwarder started and
//!   routed for a scenario (ringfwd through its API, baselines from their config);
//! - [`cpu`], [`memory`] and [`machine`]: CPU time, socket drops, resident memory, threads and open
//!   descriptors from `/proc`; the machine's description;
//! - [`step`]: one measurement step (generate, sink, count) at one offered rate;
//! - [`search`]: the pass/fail rule of a step and the bounded search of the highest rate;
//! - [`compare`] and [`report`]: the side-by-side comparison and its tables, Markdown and JSON;
//! - [`run`]: one scenario against an already running ringfwd, with a progress line;
//! - [`capacity`] and [`capacity_report`]: subscribers one worker core carries within loss and
//!   latency budgets;
//! - [`churn`]: subscribe/unsubscribe operations per second through the API while ringfwd forwards,
//!   and the loss of its original subscriptions meanwhile;
//! - [`soak`]: a long run at a set rate (a number, or a share of a measured capacity) while the API is
//!   churned, sampling the daemon's footprint and the untouched subscriptions' loss and latency every
//!   interval, judged against stated bounds;
//! - [`plot`]: latency CDF and throughput charts from any results JSON, as SVG and PNG;
//! - [`micro`]: each interceptor's cost per packet, in-process on virtual time (no sockets).
//!
//! It never touches a non-loopback address, and every load loop is bounded in count and time.
//! It contains no `unsafe`: batched socket I/O comes from `ringfwd_dataplane::driver::batch`.
//!
//! Running it: `cargo build --release -p ringfwd -p ringfwd-bench`, then see `bench/RESULTS.md`
//! for the commands (`compare`, `capacity`, `run`, `churn`, `soak`, `plot`; `ringfwd-bench scenarios`
//! lists the built-in scenarios). The forwarder under test runs on the second core, generator and
//! sink on the first (`--forwarder-cores`, `--load-cores`); the machine should otherwise be idle.

#![forbid(unsafe_code)]

pub mod account;
pub mod baseline;
pub mod capacity;
pub mod capacity_report;
pub mod cascade;
pub mod chains;
pub mod churn;
pub mod compare;
pub mod control;
pub mod cpu;
pub mod forwarder;
pub mod gen;
pub mod impair;
pub mod launch;
pub mod machine;
pub mod memory;
pub mod micro;
pub mod nack;
pub mod pace;
pub mod payload;
pub mod plot;
pub mod report;
pub mod run;
pub mod scenario;
pub mod scenario_file;
pub mod search;
pub mod sink;
pub mod soak;
pub mod step;
pub mod traffic;
