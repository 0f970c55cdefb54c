//! `ringfwd-bench cascade`: what relaying a stream across nodes costs. One publisher on node A, `streams` streams,
//! and one subscriber per stream on each of three nodes: A itself (no hop), B (one hop: A relays each stream to B)
//! and C (two hops: C is configured unable to reach A, so B relays its copy on to C). All on loopback.
//!
//! Owns [`run`] and [`CascadeOptions`]: starts a Redis server (`redis-server` from PATH) and three daemons sharing one
//! directory and one `[[auth.keys]]` key (the same binary, default interceptor chains, each worker on the
//! forwarder core, control threads elsewhere), routes through their APIs as a controller would (the session, the
//! publisher and the streams on A; on each node a sink endpoint and one subscription per stream), then, per
//! repetition, sends every stream at the offered rate from one paced thread on the load core (each payload carries
//! its send time) and receives each node's copies on a socket of its own. Reports per node: packets received of
//! those sent in the measured window (loss), one-way latency p50 / p99 / p99.9, the latency each hop adds (a node's
//! p50 minus the node's before it) and each daemon's CPU per packet it received (its utime + stime over the window);
//! medians over the repetitions with their spreads.
//!
//! Must never send anywhere but 127.0.0.1, and bounds every loop in count and time.

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringfwd_proto::v1::{self, ringfwd_client::RingfwdClient};
use tonic::transport::Channel;

use crate::cpu::process_cpu_ns;
use crate::forwarder::{Binaries, ForwarderKind, ForwarderProcess};

/// The nodes, in hop order.
pub const NODES: [&str; 3] = ["a", "b", "c"];
/// RTP datagram size.
const PACKET_BYTES: usize = 200;
/// The first stream's SSRC.
const SSRC_BASE: u32 = 0x0cad_0000;
/// The longest the directory may take to place the streams, and a daemon or Redis to answer.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Receivers stop this long after the last packet was sent.
const DRAIN: Duration = Duration::from_millis(300);
/// The shared key's secret (base64 of 32 bytes): loopback only, thrown away with the run.
const SECRET: &str = "Y2FzY2FkZS1iZW5jaC1rZXktMzItYnl0ZXMtbG9uZyE=";

/// What `cascade` does.
#[derive(Debug, Clone)]
pub struct CascadeOptions {
    /// Streams published on A (each subscribed once on every node).
    pub streams: usize,
    /// Packets per second sent, all streams together.
    pub pps: f64,
    /// The measured window of each repetition.
    pub duration: Duration,
    /// Unmeasured sending before it.
    pub warmup: Duration,
    /// Repetitions.
    pub reps: usize,
    /// The daemon.
    pub binaries: Binaries,
    /// Where configs, logs and Redis's files go.
    pub work_dir: PathBuf,
    /// The core the daemons' workers run on; the sender and receivers run on `load_core`.
    pub forwarder_core: usize,
    /// See `forwarder_core`.
    pub load_core: usize,
}

/// Why the cascade could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum CascadeError {
    /// A file, socket or process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A daemon did not start.
    #[error(transparent)]
    Harness(#[from] crate::forwarder::HarnessError),
    /// A daemon's API refused a call.
    #[error("node {node}: {call}: {status}")]
    Api {
        /// Which node.
        node: &'static str,
        /// Which call.
        call: String,
        /// What it answered.
        status: Box<tonic::Status>,
    },
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> CascadeError {
    let what = what.into();
    move |source| CascadeError::Io { what, source }
}

/// One node's figures in one repetition.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeFigures {
    /// Packets it delivered to its sink that were sent in the window.
    pub received: u64,
    /// One-way latency percentiles, microseconds.
    pub p50_us: f64,
    /// See `p50_us`.
    pub p99_us: f64,
    /// See `p50_us`.
    pub p999_us: f64,
    /// The daemon's CPU time per packet it received, nanoseconds.
    pub cpu_ns_per_packet: f64,
}

/// One repetition.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Repetition {
    /// Packets sent in the window (each node should deliver each once).
    pub sent: u64,
    /// By node, in hop order.
    pub nodes: Vec<NodeFigures>,
}

/// A cascade measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CascadeResult {
    /// Streams.
    pub streams: usize,
    /// Offered packets per second.
    pub pps: f64,
    /// Measured seconds per repetition.
    pub duration_s: f64,
    /// Every repetition.
    pub repetitions: Vec<Repetition>,
}

struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, CascadeError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err("finding a free port"))?;
    Ok(listener.local_addr().map_err(io_err("finding a free port"))?.port())
}

fn start_redis(dir: &Path) -> Result<Redis, CascadeError> {
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("redis.log")).map_err(io_err("redis log"))?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err("starting redis-server (install Debian's redis-server)"))?;
    let redis = Redis { child, port };
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let mut reply = [0u8; 7];
            if stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
            {
                return Ok(redis);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(CascadeError::Timeout(format!("redis-server did not answer on port {port}")))
}

fn config(node: &str, redis_port: u16, options: &CascadeOptions, dir: &Path) -> String {
    let mut text = format!(
        "[placement]\nworker_cores = [{worker}]\ncontrol_cores = [{load}]\n[media]\naddresses = [\"127.0.0.1:0\"]\n\
         [interceptors]\n[api]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[state]\npersist = false\n\
         [auth]\ndev_token_file = {token:?}\n[[auth.keys]]\nid = \"cascade\"\nsecret_base64 = \"{SECRET}\"\n\
         [cluster]\ndirectory = \"redis\"\nredis_url = \"redis://127.0.0.1:{redis_port}/0\"\nnamespace = \"cascade\"\n\
         node_id = \"{node}\"\nheartbeat_ms = 200\nlease_ms = 1000\n",
        worker = options.forwarder_core,
        load = options.load_core,
        token = dir.join("unused-dev-token").display().to_string(),
    );
    if node == "c" {
        text.push_str("unreachable_nodes = [\"a\"]\n");
    }
    text
}

fn mint(binaries: &Binaries, config: &Path) -> Result<String, CascadeError> {
    let out = Command::new(&binaries.ringfwd)
        .arg("token")
        .arg("--config")
        .arg(config)
        .args(["--grant", "admin", "--ttl", "1h"])
        .output()
        .map_err(io_err("ringfwd token"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(CascadeError::Io { what: "ringfwd token".into(), source: io::Error::other(stderr) });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

struct Node {
    name: &'static str,
    process: ForwarderProcess,
    client: RingfwdClient<Channel>,
    token: String,
}

impl Node {
    /// `message` with this node's token.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let header = format!("Bearer {}", self.token).parse().expect("a token is a header value");
        request.metadata_mut().insert("authorization", header);
        request
    }

    /// What a refusal of `call` by this node is.
    fn failed(&self, call: &str) -> impl FnOnce(tonic::Status) -> CascadeError {
        let (node, call) = (self.name, call.to_owned());
        move |status| CascadeError::Api { node, call, status: Box::new(status) }
    }
}

fn endpoint(id: &str, address: SocketAddr) -> v1::CreateEndpointRequest {
    v1::CreateEndpointRequest {
        session_id: "cascade".into(),
        endpoint_id: id.into(),
        media_address: address.to_string(),
        ..Default::default()
    }
}

/// Routes the cascade: the publisher and the streams on A, a sink endpoint and one subscription per stream on each
/// node (B's and C's make the relays).
async fn route(
    nodes: &mut [Node],
    publisher: SocketAddr,
    sinks: &[SocketAddr],
    streams: usize,
) -> Result<(), CascadeError> {
    let a = &mut nodes[0];
    let session = a.request(v1::CreateSessionRequest { session_id: "cascade".into(), metadata: Vec::new() });
    a.client.create_session(session).await.map_err(a.failed("CreateSession"))?;
    let publisher = a.request(endpoint("publisher", publisher));
    a.client.create_endpoint(publisher).await.map_err(a.failed("CreateEndpoint"))?;
    for i in 0..streams {
        let stream = a.request(v1::CreateStreamRequest {
            session_id: "cascade".into(),
            stream_id: format!("v{i}"),
            endpoint_id: "publisher".into(),
            ssrc: SSRC_BASE + i as u32,
            kind: v1::MediaKind::Video.into(),
            payload_types: vec![96],
            clock_rate_hz: 90_000,
            ..Default::default()
        });
        a.client.create_stream(stream).await.map_err(a.failed("CreateStream"))?;
    }
    // The directory places the streams a moment after their creation.
    let last = v1::LocateStreamRequest { session_id: "cascade".into(), stream_id: format!("v{}", streams - 1) };
    for node in nodes[1..].iter_mut() {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        while node.client.locate_stream(node.request(last.clone())).await.is_err() {
            if Instant::now() > deadline {
                return Err(CascadeError::Timeout(format!("node {} does not locate the streams", node.name)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for (node, sink) in nodes.iter_mut().zip(sinks) {
        let sink = node.request(endpoint("sink", *sink));
        node.client.create_endpoint(sink).await.map_err(node.failed("CreateEndpoint"))?;
        for i in 0..streams {
            let subscription = node.request(v1::CreateSubscriptionRequest {
                session_id: "cascade".into(),
                subscription_id: format!("s{i}"),
                stream_id: format!("v{i}"),
                endpoint_id: "sink".into(),
                ..Default::default()
            });
            node.client.create_subscription(subscription).await.map_err(node.failed("CreateSubscription"))?;
        }
    }
    Ok(())
}

/// An RTP packet of stream `stream` with sequence number `seq`, carrying `sent_ns` (since the run's epoch).
fn packet(stream: usize, seq: u16, sent_ns: u64) -> [u8; PACKET_BYTES] {
    let mut p = [0u8; PACKET_BYTES];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p[8..12].copy_from_slice(&(SSRC_BASE + stream as u32).to_be_bytes());
    p[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    p
}

/// What one sink measured: packets sent in the window it received, and their latencies (µs).
struct SinkResult {
    received: u64,
    latency: Histogram<u64>,
}

/// Receives on `socket` until `stop` is set (then `DRAIN` more), counting packets sent within `window` (ns since
/// `epoch`).
fn receive(socket: UdpSocket, epoch: Instant, window: (u64, u64), stop: Arc<AtomicBool>) -> SinkResult {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram bounds");
    let mut received = 0;
    let mut buffer = [0u8; 2048];
    let _ = socket.set_read_timeout(Some(Duration::from_millis(50)));
    let mut stop_at: Option<Instant> = None;
    loop {
        if stop_at.is_none() && stop.load(Ordering::Relaxed) {
            stop_at = Some(Instant::now() + DRAIN);
        }
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            break;
        }
        let Ok(n) = socket.recv(&mut buffer) else { continue };
        // RTP only (the daemons also send RTCP to the sinks).
        if n < 20 || buffer[1] & 0x7f != 96 {
            continue;
        }
        let now = epoch.elapsed().as_nanos() as u64;
        let sent = u64::from_be_bytes(buffer[12..20].try_into().expect("8 bytes"));
        if (window.0..window.1).contains(&sent) {
            received += 1;
            let _ = latency.record(now.saturating_sub(sent) / 1_000);
        }
    }
    SinkResult { received, latency }
}

/// Sends every stream round robin at `pps` until `end` (ns since `epoch`); answers the packets sent within `window`.
fn send(
    socket: &UdpSocket,
    to: SocketAddr,
    streams: usize,
    pps: f64,
    epoch: Instant,
    window: (u64, u64),
    end: u64,
) -> u64 {
    let interval_ns = (1e9 / pps) as u64;
    let mut next = epoch.elapsed().as_nanos() as u64;
    let mut seq = vec![0u16; streams];
    let (mut sent_in_window, mut i) = (0u64, 0usize);
    while next < end {
        let mut now = epoch.elapsed().as_nanos() as u64;
        while now < next {
            if next - now > 200_000 {
                std::thread::sleep(Duration::from_nanos(next - now - 100_000));
            } else {
                std::hint::spin_loop();
            }
            now = epoch.elapsed().as_nanos() as u64;
        }
        let stream = i % streams;
        let p = packet(stream, seq[stream], now);
        seq[stream] = seq[stream].wrapping_add(1);
        if socket.send_to(&p, to).is_ok() && (window.0..window.1).contains(&now) {
            sent_in_window += 1;
        }
        i += 1;
        next += interval_ns;
    }
    sent_in_window
}

/// Runs the cascade: see the module docs.
pub fn run(options: &CascadeOptions) -> Result<CascadeResult, CascadeError> {
    std::fs::create_dir_all(&options.work_dir).map_err(io_err("creating the work directory"))?;
    let redis = start_redis(&options.work_dir)?;
    let publisher = UdpSocket::bind("127.0.0.1:0").map_err(io_err("binding the publisher"))?;
    let sinks: Vec<UdpSocket> = (0..NODES.len())
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<io::Result<_>>()
        .map_err(io_err("binding the sinks"))?;
    for sink in &sinks {
        let socket = socket2::SockRef::from(sink);
        let _ = socket.set_recv_buffer_size(8 << 20);
    }
    let sink_addresses: Vec<SocketAddr> =
        sinks.iter().map(UdpSocket::local_addr).collect::<io::Result<_>>().map_err(io_err("sink addresses"))?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io_err("tokio runtime"))?;
    let mut nodes = Vec::new();
    for name in NODES {
        let dir = options.work_dir.join(name);
        std::fs::create_dir_all(&dir).map_err(io_err("a node's directory"))?;
        let path = dir.join("ringfwd.toml");
        std::fs::write(&path, config(name, redis.port, options, &dir)).map_err(io_err("writing a config"))?;
        let process = ForwarderProcess::start(ForwarderKind::Ringfwd, &path, &options.binaries, &dir)?;
        let api = process.api.ok_or_else(|| CascadeError::Timeout(format!("node {name} reported no API")))?;
        let token = mint(&options.binaries, &path)?;
        let channel = runtime
            .block_on(Channel::from_shared(format!("http://{api}")).expect("an address is a URI").connect())
            .map_err(|e| CascadeError::Io {
                what: format!("connecting to node {name}"),
                source: io::Error::other(e),
            })?;
        nodes.push(Node { name, process, client: RingfwdClient::new(channel), token });
    }
    let publisher_address = publisher.local_addr().map_err(io_err("publisher address"))?;
    runtime.block_on(route(&mut nodes, publisher_address, &sink_addresses, options.streams))?;
    let media_a = nodes[0].process.media[0];
    let pids: Vec<u32> = nodes.iter().map(|n| n.process.pid()).collect();

    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: options.load_core });
    let mut repetitions = Vec::new();
    for _ in 0..options.reps {
        let epoch = Instant::now();
        let warmup = options.warmup.as_nanos() as u64;
        let window = (warmup, warmup + options.duration.as_nanos() as u64);
        let stop = Arc::new(AtomicBool::new(false));
        let receivers: Vec<_> = sinks
            .iter()
            .map(|sink| {
                let (socket, stop) = (sink.try_clone(), Arc::clone(&stop));
                let load_core = options.load_core;
                std::thread::spawn(move || {
                    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: load_core });
                    socket.map(|socket| receive(socket, epoch, window, stop))
                })
            })
            .collect();
        // CPU over the window: read when it starts and ends, from this thread's clock.
        let cpu_reader = {
            let pids = pids.clone();
            std::thread::spawn(move || {
                let at = |ns: u64| {
                    let now = epoch.elapsed();
                    std::thread::sleep(Duration::from_nanos(ns).saturating_sub(now));
                    pids.iter().map(|pid| process_cpu_ns(*pid).unwrap_or(0)).collect::<Vec<u64>>()
                };
                let start = at(window.0);
                let end = at(window.1);
                end.iter().zip(start).map(|(e, s)| e.saturating_sub(s)).collect::<Vec<u64>>()
            })
        };
        let sent = send(&publisher, media_a, options.streams, options.pps, epoch, window, window.1);
        stop.store(true, Ordering::Relaxed);
        let cpu = cpu_reader.join().expect("the CPU reader does not panic");
        let mut figures = Vec::new();
        for (receiver, cpu_ns) in receivers.into_iter().zip(cpu) {
            let sink = receiver.join().expect("a receiver does not panic").map_err(io_err("a sink socket"))?;
            let quantile = |q: f64| sink.latency.value_at_quantile(q) as f64;
            figures.push(NodeFigures {
                received: sink.received,
                p50_us: quantile(0.5),
                p99_us: quantile(0.99),
                p999_us: quantile(0.999),
                cpu_ns_per_packet: cpu_ns as f64 / sent.max(1) as f64,
            });
        }
        repetitions.push(Repetition { sent, nodes: figures });
    }
    for node in nodes {
        let _ = node.process.stop();
    }
    drop(redis);
    Ok(CascadeResult {
        streams: options.streams,
        pps: options.pps,
        duration_s: options.duration.as_secs_f64(),
        repetitions,
    })
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = values.get(values.len() / 2).copied().unwrap_or(0.0);
    (median, values.first().copied().unwrap_or(0.0), values.last().copied().unwrap_or(0.0))
}

/// The result as a markdown table: per node, medians over the repetitions with their ranges.
pub fn markdown(result: &CascadeResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cascade: {} streams of {PACKET_BYTES}-byte RTP at {:.0} pps in all, {} x {:.1} s; medians (min-max) over \
         repetitions\n",
        result.streams,
        result.pps,
        result.repetitions.len(),
        result.duration_s
    );
    let _ = writeln!(
        out,
        "| node | hops | received / sent | p50 µs | p99 µs | p99.9 µs | added p50 µs per hop | CPU ns per packet in |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
    let mut previous_p50 = None;
    for (i, name) in NODES.iter().enumerate() {
        let pick =
            |f: &dyn Fn(&NodeFigures) -> f64| median(result.repetitions.iter().map(|r| f(&r.nodes[i])).collect());
        let received: u64 = result.repetitions.iter().map(|r| r.nodes[i].received).sum();
        let sent: u64 = result.repetitions.iter().map(|r| r.sent).sum();
        let (p50, p50_min, p50_max) = pick(&|n| n.p50_us);
        let (p99, p99_min, p99_max) = pick(&|n| n.p99_us);
        let (p999, _, _) = pick(&|n| n.p999_us);
        let (cpu, cpu_min, cpu_max) = pick(&|n| n.cpu_ns_per_packet);
        let added = previous_p50.map_or("-".to_owned(), |before: f64| format!("{:+.0}", p50 - before));
        previous_p50 = Some(p50);
        let _ = writeln!(
            out,
            "| {name} | {i} | {received} / {sent} | {p50:.0} ({p50_min:.0}-{p50_max:.0}) | {p99:.0} ({p99_min:.0}-{p99_max:.0}) \
             | {p999:.0} | {added} | {cpu:.0} ({cpu_min:.0}-{cpu_max:.0}) |"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_carries_its_stream_and_send_time() {
        let p = packet(3, 7, 123_456_789);
        assert_eq!((p[0], p[1]), (0x80, 96));
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 7);
        assert_eq!(u32::from_be_bytes(p[8..12].try_into().unwrap()), SSRC_BASE + 3);
        assert_eq!(u64::from_be_bytes(p[12..20].try_into().unwrap()), 123_456_789);
    }

    #[test]
    fn c_is_configured_unable_to_reach_a() {
        let options = CascadeOptions {
            streams: 1,
            pps: 1.0,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            reps: 1,
            binaries: Binaries { ringfwd: "ringfwd".into(), bench: "bench".into() },
            work_dir: "/tmp".into(),
            forwarder_core: 1,
            load_core: 0,
        };
        let c = config("c", 6379, &options, Path::new("/tmp"));
        let parsed = ringfwd_tuning::Config::from_toml_str(&c).expect("a config");
        parsed.validate().expect("valid");
        assert_eq!(parsed.cluster.unreachable_nodes, ["a"]);
        assert!(config("b", 6379, &options, Path::new("/tmp")).find("unreachable").is_none());
    }
}
