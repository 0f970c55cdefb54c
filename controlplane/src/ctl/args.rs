//! The `ringfwd ctl` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Drive a running ringfwd over its gRPC control API.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The control API address (default: the config's `api.listen`, else 127.0.0.1:50051).
    #[arg(long, env = "RINGFWD_API")]
    pub api: Option<SocketAddr>,
    /// Bearer token (default: `RINGFWD_TOKEN`, else the development token file of the config).
    #[arg(long, env = "RINGFWD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the API address and the development token file from this config file.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the response as JSON (the protobuf JSON mapping) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Resources and operations.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Sessions: groups of endpoints exchanging media.
    #[command(subcommand)]
    Session(SessionCmd),
    /// Endpoints: remote peers and their media addresses.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Streams: RTP streams an endpoint publishes.
    #[command(subcommand)]
    Stream(StreamCmd),
    /// Subscriptions: a stream forwarded to an endpoint.
    #[command(subcommand, alias = "sub")]
    Subscription(SubscriptionCmd),
    /// The node: version, workers, limits, usage, counters.
    Node,
    /// Refuse new sessions and keep forwarding the existing ones (`--cancel` to accept again).
    Drain {
        /// Stop draining.
        #[arg(long)]
        cancel: bool,
    },
}

/// Session operations.
#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    /// Create a session (idempotent).
    Create {
        /// Session id.
        session: String,
    },
    /// Show a session.
    Get {
        /// Session id.
        session: String,
    },
    /// List sessions.
    List,
    /// Delete a session and everything in it.
    Delete {
        /// Session id.
        session: String,
    },
}

/// Endpoint operations.
#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Create an endpoint (idempotent).
    Create {
        /// Session id.
        session: String,
        /// Endpoint id.
        endpoint: String,
        /// The peer's media address, ip:port (required unless --latching).
        #[arg(long)]
        address: Option<SocketAddr>,
        /// Latch to the first source that sends a stream's SSRC.
        #[arg(long)]
        latching: bool,
    },
    /// Show an endpoint.
    Get {
        /// Session id.
        session: String,
        /// Endpoint id.
        endpoint: String,
    },
    /// List the endpoints of a session.
    List {
        /// Session id.
        session: String,
    },
    /// Delete an endpoint, its streams and the subscriptions to or from it.
    Delete {
        /// Session id.
        session: String,
        /// Endpoint id.
        endpoint: String,
    },
}

/// Media kinds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// Stream operations.
#[derive(Debug, Subcommand)]
pub enum StreamCmd {
    /// Create a stream (idempotent).
    Create {
        /// Session id.
        session: String,
        /// Stream id.
        stream: String,
        /// The publishing endpoint.
        #[arg(long)]
        endpoint: String,
        /// The publisher's SSRC (decimal or 0x-prefixed hex).
        #[arg(long, value_parser = parse_u32)]
        ssrc: u32,
        /// Audio or video.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Payload types the publisher uses (repeat or comma-separate).
        #[arg(long = "pt", value_delimiter = ',')]
        payload_types: Vec<u32>,
        /// RTP clock rate in Hz (default 48000 for audio, 90000 for video).
        #[arg(long)]
        clock_rate: Option<u32>,
    },
    /// Show a stream.
    Get {
        /// Session id.
        session: String,
        /// Stream id.
        stream: String,
    },
    /// List the streams of a session.
    List {
        /// Session id.
        session: String,
    },
    /// Delete a stream and its subscriptions.
    Delete {
        /// Session id.
        session: String,
        /// Stream id.
        stream: String,
    },
}

/// Subscription operations.
#[derive(Debug, Subcommand)]
pub enum SubscriptionCmd {
    /// Forward a stream to an endpoint (idempotent).
    Create {
        /// Session id.
        session: String,
        /// Subscription id.
        subscription: String,
        /// The stream.
        #[arg(long)]
        stream: String,
        /// The receiving endpoint.
        #[arg(long)]
        endpoint: String,
        /// SSRC the subscriber sees (decimal or 0x hex; default: the publisher's).
        #[arg(long, value_parser = parse_u32)]
        out_ssrc: Option<u32>,
        /// Payload-type mapping FROM:TO (repeat or comma-separate).
        #[arg(long = "pt-map", value_delimiter = ',', value_parser = parse_mapping)]
        pt_map: Vec<(u32, u32)>,
        /// Start paused.
        #[arg(long)]
        paused: bool,
    },
    /// Show a subscription.
    Get {
        /// Session id.
        session: String,
        /// Subscription id.
        subscription: String,
    },
    /// List the subscriptions of a session.
    List {
        /// Session id.
        session: String,
    },
    /// Stop forwarding until resumed.
    Pause {
        /// Session id.
        session: String,
        /// Subscription id.
        subscription: String,
    },
    /// Forward again.
    Resume {
        /// Session id.
        session: String,
        /// Subscription id.
        subscription: String,
    },
    /// Forward another stream of the session instead, with continuous sequence numbers and timestamps.
    Switch {
        /// Session id.
        session: String,
        /// Subscription id.
        subscription: String,
        /// The stream to forward from now on.
        #[arg(long)]
        stream: String,
    },
    /// Stop forwarding and remove the subscription.
    Delete {
        /// Session id.
        session: String,
        /// Subscription id.
        subscription: String,
    },
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("{s:?} is not a 32-bit number: {e}"))
}

fn parse_mapping(s: &str) -> Result<(u32, u32), String> {
    let (from, to) = s.split_once(':').ok_or_else(|| format!("{s:?} is not FROM:TO"))?;
    let number = |x: &str| x.trim().parse::<u32>().map_err(|e| format!("{x:?} in {s:?}: {e}"));
    Ok((number(from)?, number(to)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_mappings_parse_or_say_why_not() {
        assert_eq!(parse_u32("0xdeadbeef"), Ok(0xdead_beef));
        assert_eq!(parse_u32("42"), Ok(42));
        assert!(parse_u32("0x1_0000_0000").unwrap_err().contains("0x1_0000_0000"));
        assert_eq!(parse_mapping("96:100"), Ok((96, 100)));
        assert!(parse_mapping("96").unwrap_err().contains("FROM:TO"));
        assert!(parse_mapping("a:1").is_err());
    }
}
