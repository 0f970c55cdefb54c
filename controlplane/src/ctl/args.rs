//! The `ringfwd ctl` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::metadata::Version;

/// What `ctl --help` says about SSRCs, in and out.
const SSRC_HELP: &str = "\
SSRCs: every option that takes one (--ssrc, --out-ssrc, --rtx SSRC:PT) accepts decimal (4660) or
0x-prefixed hex (0x1234). Tables print SSRCs as 0x-prefixed hex (0x00001234). --json prints the
protobuf JSON mapping of the response, exactly what every gRPC client of the schema, grpcurl and
the webhooks see: an SSRC is a decimal number there (\"ssrc\": 4660), so compare it as a number
(jq '.streams[] | select(.ssrc == 4660)'); 64-bit integers such as event seqs are strings.";

/// Drive a running ringfwd over its gRPC control API.
#[derive(Debug, Args)]
#[command(after_help = SSRC_HELP)]
pub struct CtlArgs {
    /// The control API address: HOST:PORT, http://HOST:PORT, or https://HOST:PORT for TLS (default: the config's
    /// `api.listen`, over TLS when it has [api.tls], else 127.0.0.1:50051).
    #[arg(long, env = "RINGFWD_API", global = true, value_name = "ADDR")]
    pub api: Option<super::connect::ApiAddress>,
    /// TLS: --tls-ca (and TLS without https://), --tls-cert/--tls-key for mutual TLS, --tls-server-name.
    #[command(flatten)]
    pub tls: super::connect::TlsFlags,
    /// Bearer token (default: `RINGFWD_TOKEN`, else the development token file: the config's
    /// `auth.dev_token_file`, else `$RUNTIME_DIRECTORY/dev-token`, else `$XDG_RUNTIME_DIR/ringfwd/dev-token`, else
    /// `/run/ringfwd/dev-token` for root, else `/tmp/ringfwd-<uid>/dev-token`, as the daemon writes it).
    #[arg(long, env = "RINGFWD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Read the API address, its TLS (`[api.tls]`: the server is verified against its cert_file unless --tls-ca is
    /// given) and the development token file from this config file.
    #[arg(long, short, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Print the response as JSON (the protobuf JSON mapping: SSRCs are decimal numbers) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 10_000, global = true)]
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
    /// Metadata: the controller's key/value pairs on a session, endpoint or stream.
    #[command(subcommand, alias = "meta")]
    Metadata(MetadataCmd),
    /// Lifecycle events: watch them as they happen.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Statistics: of a stream and its subscriptions, of an endpoint, or of a whole session.
    Stats {
        /// Session id.
        session: String,
        /// A stream: its ingress statistics and each subscription's.
        #[arg(long, conflicts_with = "endpoint")]
        stream: Option<String>,
        /// An endpoint: the streams it publishes and the subscriptions it receives, aggregated.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// The node: version, workers, limits, usage, counters, the cluster (`node list`: its nodes).
    Node {
        #[command(subcommand)]
        cmd: Option<NodeCmd>,
    },
    /// Plugins: the native and WebAssembly plugins chains may name, with their counters.
    #[command(subcommand)]
    Plugin(PluginCmd),
    /// Refuse new sessions and keep forwarding the existing ones (`--cancel` to accept again).
    Drain {
        /// Stop draining.
        #[arg(long)]
        cancel: bool,
    },
}

/// Node operations (none: this node's info).
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// The cluster's live nodes as the directory knows them: id, relay and API addresses, lease left, load, the
    /// streams published on each.
    List,
    /// This node's relays: the legs it sends to other nodes (packets, loss and round-trip time as the next node
    /// reports them) and the streams relayed to it (packets, loss, jitter).
    Relays,
}

/// Plugin operations.
#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// List them: kind, chains, failure path, limits, and the WebAssembly plugins' calls, mean ns per call (one call
    /// in 64 timed), drops, faults and disabled instances, summed over the workers.
    List,
    /// Load a WebAssembly plugin into the running node (checked as a [[plugins]] entry; every worker has it when
    /// this returns, so a chain may name it right after).
    Load {
        /// Its name in chains (a-z, 0-9, _; not a built-in's).
        #[arg(long)]
        name: String,
        /// The module's absolute path, read by the daemon (.wasm or WAT text).
        #[arg(long, required_unless_present = "module_file", conflicts_with = "module_file")]
        path: Option<String>,
        /// A module file read by ctl and sent whole (at most 16 MiB).
        #[arg(long)]
        module_file: Option<std::path::PathBuf>,
        /// The chains that may name it (comma-separated: ingress, egress; default both).
        #[arg(long, value_delimiter = ',')]
        chains: Vec<String>,
        /// Once its instance on a worker is disabled: forward (default) or drop.
        #[arg(long)]
        on_failure: Option<String>,
        /// Fuel per call (default 100000).
        #[arg(long)]
        fuel_per_call: Option<u64>,
        /// Each instance's memory limit in bytes (default 16 MiB).
        #[arg(long)]
        memory_max_bytes: Option<u64>,
        /// sync (default: inline on each worker) or async (one instance on its own thread, off the worker cores).
        #[arg(long)]
        mode: Option<String>,
        /// Async only: packets each of its queues holds per worker (default 1024).
        #[arg(long)]
        async_queue_packets: Option<u32>,
        /// Async only: forward (default: the packet goes on) or consume (it stops at the plugin).
        #[arg(long)]
        async_pass: Option<String>,
        /// Async only: microseconds its thread waits, once woken, before it takes the copies (default 0).
        #[arg(long)]
        async_wake_delay_us: Option<u32>,
        /// A parameter for its ringfwd_init, KEY=VALUE (repeat).
        #[arg(long = "param", value_parser = parse_pair)]
        params: Vec<(String, String)>,
    },
    /// Unload a plugin loaded through the API (refused while a stream's or subscription's chain names it).
    Unload {
        /// Its name.
        name: String,
    },
    /// Add a plugin to a live stream's ingress chain or subscription's egress chain, or change the options it has
    /// there (the chain is read, the name added as NAME:KEY=VALUE..., the chain replaced: `stream update` /
    /// `subscription update --interceptors`).
    Attach {
        /// The plugin and the chain.
        #[command(flatten)]
        target: ChainTarget,
        /// This chain's options for it: what it does once failed here.
        #[command(flatten)]
        options: AttachOptions,
    },
    /// Remove a plugin from a live stream's ingress chain or subscription's egress chain.
    Detach(ChainTarget),
}

/// One chain's options for a plugin (`plugin attach`); each unset takes the plugin's own setting.
#[derive(Debug, Default, clap::Args)]
pub struct AttachOptions {
    /// Once the plugin failed: forward (fail-open) or drop (fail-closed) this chain's packets.
    #[arg(long)]
    pub on_failure: Option<String>,
    /// WebAssembly only: sync (inline on the worker) or async (copies to the plugin's thread) on this chain.
    #[arg(long)]
    pub mode: Option<String>,
    /// WebAssembly only, with async: forward (the packet goes on) or consume (it stops at the plugin).
    #[arg(long)]
    pub async_pass: Option<String>,
}

impl AttachOptions {
    /// `name` with these options, as chains spell it (`jitter:mode=async`); the server checks it.
    pub fn spell(&self, name: &str) -> String {
        let mut spelled = name.to_owned();
        for (key, value) in [("on_failure", &self.on_failure), ("mode", &self.mode), ("async_pass", &self.async_pass)] {
            if let Some(value) = value {
                spelled.push_str(&format!(":{key}={value}"));
            }
        }
        spelled
    }
}

/// A plugin and the chain `plugin attach` / `plugin detach` change.
#[derive(Debug, clap::Args)]
pub struct ChainTarget {
    /// The plugin's name.
    pub name: String,
    /// Session id.
    pub session: String,
    /// The stream whose ingress chain changes.
    #[arg(long, required_unless_present = "subscription", conflicts_with = "subscription")]
    pub stream: Option<String>,
    /// The subscription whose egress chain changes.
    #[arg(long)]
    pub subscription: Option<String>,
}

/// Session operations.
#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    /// Create a session (idempotent).
    Create {
        /// Session id.
        session: String,
        /// Initial metadata KEY=VALUE (repeat).
        #[arg(long = "meta", value_parser = parse_pair)]
        meta: Vec<(String, String)>,
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
        /// RTCP without rtcp-mux: the peer's RTCP address, ip:port (excludes --rtcp-port-plus-one).
        #[arg(long)]
        rtcp_address: Option<SocketAddr>,
        /// RTCP without rtcp-mux at the media address's port + 1.
        #[arg(long)]
        rtcp_port_plus_one: bool,
        /// Initial metadata KEY=VALUE (repeat).
        #[arg(long = "meta", value_parser = parse_pair)]
        meta: Vec<(String, String)>,
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
    /// Move an endpoint to a new media address (a re-INVITE); its streams and subscriptions live on.
    Update {
        /// Session id.
        session: String,
        /// Endpoint id.
        endpoint: String,
        /// The peer's new media address, ip:port (may be left out only for a latching endpoint).
        #[arg(long)]
        address: Option<SocketAddr>,
        /// RTCP without rtcp-mux: the peer's RTCP address, ip:port (excludes --rtcp-port-plus-one).
        #[arg(long)]
        rtcp_address: Option<SocketAddr>,
        /// RTCP without rtcp-mux at the media address's port + 1.
        #[arg(long)]
        rtcp_port_plus_one: bool,
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
        /// The publisher's SSRC, decimal or 0x-prefixed hex; 0: learn it from its first RTP (needs --pt).
        #[arg(long, value_parser = parse_ssrc)]
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
        /// Initial metadata KEY=VALUE (repeat).
        #[arg(long = "meta", value_parser = parse_pair)]
        meta: Vec<(String, String)>,
        /// Ingress interceptors (comma-separated names; given with no names: none). Default: the
        /// config's interceptors.ingress.
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        interceptors: Option<Vec<String>>,
    },
    /// Show a stream.
    Get {
        /// Session id.
        session: String,
        /// Stream id.
        stream: String,
    },
    /// Where a stream is published in the cluster: its node, with the node's API and relay addresses.
    Locate {
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
    /// Change a stream in place (a re-INVITE): its SSRC, its payload types, its ingress interceptors (what is not
    /// given stays).
    Update {
        /// Session id.
        session: String,
        /// Stream id.
        stream: String,
        /// The publisher's new SSRC, decimal or 0x-prefixed hex.
        #[arg(long, value_parser = parse_ssrc)]
        ssrc: Option<u32>,
        /// The payload types from now on (repeat or comma-separate; given with none: any).
        #[arg(long = "pt", value_delimiter = ',', num_args = 0..)]
        payload_types: Option<Vec<u32>>,
        /// The new ingress interceptors (comma-separated names, plugins included; given with no names: none).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        interceptors: Option<Vec<String>>,
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
        /// SSRC the subscriber sees, decimal or 0x-prefixed hex (default: the publisher's).
        #[arg(long, value_parser = parse_ssrc)]
        out_ssrc: Option<u32>,
        /// Payload-type mapping FROM:TO (repeat or comma-separate).
        #[arg(long = "pt-map", value_delimiter = ',', value_parser = parse_mapping)]
        pt_map: Vec<(u32, u32)>,
        /// Start paused.
        #[arg(long)]
        paused: bool,
        /// Egress interceptors (comma-separated names; given with no names: none). Default: the
        /// config's interceptors.egress.
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        interceptors: Option<Vec<String>>,
        /// RTX for retransmissions, SSRC:PAYLOAD_TYPE (the SSRC decimal or 0x-prefixed hex).
        #[arg(long, value_parser = parse_rtx)]
        rtx: Option<(u32, u32)>,
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
    /// Renegotiate: replace the payload-type map, the egress interceptors or RTX (what is not given stays).
    Update {
        /// Session id.
        session: String,
        /// Subscription id.
        subscription: String,
        /// The whole new payload-type map, FROM:TO (repeat or comma-separate; given with none: identity).
        #[arg(long = "pt-map", value_delimiter = ',', value_parser = parse_mapping, num_args = 0..)]
        pt_map: Option<Vec<(u32, u32)>>,
        /// The new egress interceptors (comma-separated names; given with no names: none).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        interceptors: Option<Vec<String>>,
        /// RTX from now on, SSRC:PAYLOAD_TYPE (the SSRC decimal or 0x-prefixed hex).
        #[arg(long, value_parser = parse_rtx, conflicts_with = "no_rtx")]
        rtx: Option<(u32, u32)>,
        /// No RTX from now on.
        #[arg(long)]
        no_rtx: bool,
    },
    /// Stop forwarding and remove the subscription.
    Delete {
        /// Session id.
        session: String,
        /// Subscription id.
        subscription: String,
    },
}

/// The object whose metadata is meant: a session, or one of its endpoints or streams.
#[derive(Debug, Args)]
pub struct MetadataTarget {
    /// Session id.
    pub session: String,
    /// An endpoint of the session instead of the session.
    #[arg(long, conflicts_with = "stream")]
    pub endpoint: Option<String>,
    /// A stream of the session instead of the session.
    #[arg(long)]
    pub stream: Option<String>,
}

/// Metadata operations. Keys are dotted lowercase names (`sip.call_id`); versions are WALL_US.COUNTER.NODE_ID
/// as printed (`0` = not set).
#[derive(Debug, Subcommand)]
pub enum MetadataCmd {
    /// Set keys, all at once (one version).
    Set {
        /// Which object.
        #[command(flatten)]
        target: MetadataTarget,
        /// KEY=VALUE pairs.
        #[arg(required = true, value_parser = parse_pair)]
        pairs: Vec<(String, String)>,
        /// Make these keys immutable from now on.
        #[arg(long)]
        set_once: bool,
        /// Compare-and-set: KEY=VERSION, write only if KEY is at VERSION (0: only if not set). Repeat.
        #[arg(long = "expect", value_parser = parse_expect)]
        expect: Vec<(String, Version)>,
    },
    /// Show keys (all when none are named).
    Get {
        /// Which object.
        #[command(flatten)]
        target: MetadataTarget,
        /// Only these keys.
        keys: Vec<String>,
    },
    /// Delete keys, all at once.
    Delete {
        /// Which object.
        #[command(flatten)]
        target: MetadataTarget,
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Compare-and-set: KEY=VERSION, delete only if KEY is at VERSION. Repeat.
        #[arg(long = "expect", value_parser = parse_expect)]
        expect: Vec<(String, Version)>,
    },
    /// Print the whole map, then every change, one line each, until the object is deleted.
    Watch {
        /// Which object.
        #[command(flatten)]
        target: MetadataTarget,
        /// Resume after this version (the last one printed) instead of starting with the whole map.
        #[arg(long, value_parser = parse_version)]
        resume_from: Option<Version>,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

/// Lifecycle-event operations.
#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Print every event as it happens, one line each (`--json`: one protobuf-JSON object per line), until
    /// interrupted, `--count` events were printed, or the server ends the watch (a watcher too slow to keep up
    /// is cut off: the message names the seq to resume from with `--from`).
    Watch {
        /// Resume after this sequence number (the last one printed): first every event after it that the node
        /// still keeps, then the live ones.
        #[arg(long = "from", value_name = "SEQ")]
        from_seq: Option<u64>,
        /// Only the events of this session.
        #[arg(long)]
        session: Option<String>,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (key, value) = s.split_once('=').ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    Ok((key.to_owned(), value.to_owned()))
}

fn parse_version(s: &str) -> Result<Version, String> {
    if s == "0" {
        return Ok(Version::ZERO);
    }
    s.parse().map_err(|e: crate::metadata::ParseVersionError| e.to_string())
}

fn parse_expect(s: &str) -> Result<(String, Version), String> {
    let (key, version) = s.split_once('=').ok_or_else(|| format!("{s:?} is not KEY=VERSION"))?;
    Ok((key.to_owned(), parse_version(version)?))
}

/// An SSRC as every ctl option takes it: decimal, or hex after `0x` (or `0X`).
fn parse_ssrc(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("SSRC {s:?} is not a 32-bit number, decimal (4660) or 0x-prefixed hex (0x1234): {e}"))
}

fn parse_rtx(s: &str) -> Result<(u32, u32), String> {
    let (ssrc, pt) = s.split_once(':').ok_or_else(|| format!("{s:?} is not SSRC:PAYLOAD_TYPE"))?;
    let pt = pt.trim().parse::<u32>().map_err(|e| format!("payload type {pt:?} in {s:?}: {e}"))?;
    Ok((parse_ssrc(ssrc.trim())?, pt))
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
        assert_eq!(parse_ssrc("0xdeadbeef"), Ok(0xdead_beef));
        assert_eq!(parse_ssrc("0XDEADBEEF"), Ok(0xdead_beef));
        assert_eq!(parse_ssrc("4294967295"), Ok(u32::MAX));
        assert_eq!(parse_rtx("0x3333:97"), Ok((0x3333, 97)));
        assert_eq!(parse_rtx("13107:97"), Ok((0x3333, 97)));
        assert!(parse_rtx("97").unwrap_err().contains("SSRC:PAYLOAD_TYPE"));
        assert_eq!(parse_ssrc("42"), Ok(42));
        assert!(parse_ssrc("0x1_0000_0000").unwrap_err().contains("0x1_0000_0000"));
        for bad in ["4294967296", "0x100000000", "0x", "-1", "1234h", ""] {
            assert!(parse_ssrc(bad).unwrap_err().contains("0x-prefixed hex"), "{bad:?}");
        }
        assert_eq!(parse_mapping("96:100"), Ok((96, 100)));
        assert!(parse_mapping("96").unwrap_err().contains("FROM:TO"));
        assert!(parse_mapping("a:1").is_err());
    }

    #[test]
    fn metadata_pairs_and_versions_parse_or_say_why_not() {
        assert_eq!(parse_pair("app.a=x=y"), Ok(("app.a".into(), "x=y".into())));
        assert_eq!(parse_pair("app.a="), Ok(("app.a".into(), String::new())));
        assert!(parse_pair("app.a").unwrap_err().contains("KEY=VALUE"));
        assert_eq!(parse_expect("app.a=0"), Ok(("app.a".into(), Version::ZERO)));
        let v = Version { wall_us: 12, counter: 3, node_id: 1 };
        assert_eq!(parse_expect("app.a=12.3.1"), Ok(("app.a".into(), v)));
        assert!(parse_expect("app.a=12").unwrap_err().contains("WALL_US.COUNTER.NODE_ID"));
    }
}
