//! Support for ringfwd's end-to-end tests: run the real `ringfwd` binary on a config, drive it through its gRPC
//! control API and `ringfwd ctl`, talk to it over real loopback sockets, stop it with a signal and read its final
//! counters; run third-party peers (GStreamer, ffmpeg) as processes that never outlive a test, installing them
//! first or skipping the test when that cannot happen ([`interop`]).
//!
//! Owns nothing of the daemon; it only drives it from outside, as an operator or a peer would.

#![forbid(unsafe_code)]

pub mod api;
pub mod baresip;
pub mod config;
pub mod daemon;
pub mod ffmpeg;
pub mod flow;
pub mod gst;
pub mod interop;
pub mod netns;
pub mod peer;
pub mod process;
pub mod redis;
pub mod relay;
pub mod scrape;
pub mod sip;
pub mod tls;
pub mod wasm;

pub use api::Api;
pub use daemon::{Daemon, Exit};
pub use peer::{rtcp_sender_report, rtp_fields, rtp_packet, Peer, RtpFields};
