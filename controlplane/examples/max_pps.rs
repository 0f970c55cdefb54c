//! A ringfwd of your own with a native plugin: `max_pps`, a packet-rate cap.
//!
//! The plugin lets at most `MAX_PPS_LIMIT` packets through per second (default 50): on a stream's ingress chain it
//! caps what the publisher may send to all of the stream's subscribers, on a subscription's egress chain what that
//! one subscriber gets. Each one-second window starts with the first packet after the previous window ended;
//! packets over the cap are dropped with the verdict `Drop(DropReason::Plugin)`, so they are counted as
//! `drop_plugin` (`ringfwd_packets_dropped_total{reason="plugin"}`). RTCP is never capped.
//!
//! The program is the `ringfwd` binary plus one registration: every subcommand, flag and config key works as in
//! `ringfwd`, and `max_pps` is a chain name like any built-in:
//!
//! ```text
//! MAX_PPS_LIMIT=100 cargo run --release --example max_pps -- --config my.toml
//! ```
//! with, in `my.toml`,
//! ```toml
//! [interceptors]
//! ingress = ["stats", "max_pps", "nack_cache", "receiver_reports"]
//! ```
//! or per subscription over the API: `interceptors { names: ["max_pps", "stats"] }`.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ringfwd::plugin::{Context, DropReason, Interceptor, Plugins, RtpAttrs, Verdict};

/// The environment variable holding the cap, in packets per second.
const LIMIT_VAR: &str = "MAX_PPS_LIMIT";
/// The cap when [`LIMIT_VAR`] is unset.
const DEFAULT_LIMIT: u32 = 50;
/// The highest cap accepted: above it the plugin would cap nothing a worker can forward.
const MAX_LIMIT: u32 = 10_000_000;
/// The length of one counting window.
const WINDOW: Duration = Duration::from_secs(1);

/// One instance per stream (ingress) or per subscription (egress): its own window and count.
#[derive(Debug)]
struct MaxPps {
    limit: u32,
    window_end: Option<Instant>,
    passed: u32,
}

impl MaxPps {
    fn new(limit: u32) -> MaxPps {
        MaxPps { limit, window_end: None, passed: 0 }
    }
}

impl Interceptor for MaxPps {
    fn on_rtp(&mut self, _pkt: &[u8], attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
        if self.window_end.is_none_or(|end| attrs.arrival >= end) {
            self.window_end = Some(attrs.arrival + WINDOW);
            self.passed = 0;
        }
        if self.passed < self.limit {
            self.passed += 1;
            Verdict::Continue
        } else {
            Verdict::Drop(DropReason::Plugin)
        }
    }
}

/// The cap from the environment, or why it is refused.
fn limit() -> Result<u32, String> {
    let Ok(text) = std::env::var(LIMIT_VAR) else { return Ok(DEFAULT_LIMIT) };
    match text.trim().parse::<u32>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(format!("{LIMIT_VAR}={text:?}: expected packets per second, 1 to {MAX_LIMIT}")),
    }
}

fn main() -> ExitCode {
    let limit = match limit() {
        Ok(limit) => limit,
        Err(message) => {
            eprintln!("max_pps: {message}");
            return ExitCode::from(2);
        }
    };
    let plugins = Plugins::none()
        .with_ingress("max_pps", move |_stream| Box::new(MaxPps::new(limit)))
        .and_then(|plugins| plugins.with_egress("max_pps", move |_subscription| Box::new(MaxPps::new(limit))));
    match plugins {
        Ok(plugins) => ringfwd::cli::main(plugins),
        Err(e) => {
            eprintln!("max_pps: {e}");
            ExitCode::FAILURE
        }
    }
}
