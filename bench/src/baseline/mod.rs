//! Reference forwarders that do the same work as ringfwd, to measure it against.
//!
//! Owns what both baselines share: the static routes read from a ringfwd config
//! ([`RouteTable`]: per publisher SSRC, its source and its subscribers' destinations and header
//! rewrites), the media socket, pinning to `placement.worker_cores[0]`, the stop flag set by
//! SIGTERM/SIGINT, the counters and the stdout protocol of [`crate::forwarder`]. The loops live
//! in [`naive`] (one `recv_from`, one `send_to` per copy), [`mmsg`] (`recvmmsg` batches,
//! `sendmmsg` of [rewritten header, payload slice]) and [`gso`] (the mmsg loop sending each run of
//! equal-size copies to one destination as one `UDP_SEGMENT` message: the strongest of the three).
//!
//! Must never forward a packet whose SSRC has no route or whose source is not the publisher's
//! address (no amplification), nor run after the stop flag is seen.

pub mod gso;
pub mod mmsg;
pub mod naive;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ringfwd_dataplane::core::{classify, PacketKind, Rewrite, RtpView, IDENTITY_PAYLOAD_TYPE_MAP};
use ringfwd_dataplane::driver::batch::{RecvBatch, SendBatch};
use ringfwd_tuning::{Config, ConfigError, WorkerCores};
use socket2::{Domain, Socket, Type};

use crate::forwarder::{FINAL_COUNTERS_PREFIX, READY_PREFIX};

/// Why a baseline cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The config file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A socket or signal operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

impl BaselineError {
    fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> BaselineError {
        let what = what.into();
        move |source| BaselineError::Io { what, source }
    }
}

/// One subscriber copy of a stream.
#[derive(Debug, Clone)]
pub struct Route {
    /// Where the copy goes.
    pub dest: SocketAddr,
    /// How its header is rewritten.
    pub rewrite: Rewrite,
}

/// Everything a publisher SSRC is forwarded to.
#[derive(Debug, Clone)]
pub struct StreamRoutes {
    /// The only source accepted, when the publisher has a fixed address.
    pub source: Option<SocketAddr>,
    /// Subscriber copies.
    pub routes: Vec<Route>,
}

/// The static routes of a config, by publisher SSRC.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    by_ssrc: HashMap<u32, StreamRoutes>,
}

impl RouteTable {
    /// Builds the table from the config's `[[sessions]]`, trusted as the bench wrote them
    /// ([`crate::launch::write_configs`]): `Config::from_file` checks their shape only, and what
    /// they mean is judged by ringfwd's registry (`ringfwd --check-config`), which a reference loop
    /// does not link. Still, nothing unresolved forwards: a stream whose publisher is not declared
    /// routes nothing, a subscriber without an address gets no copy, and an SSRC declared twice
    /// keeps its last stream.
    pub fn from_config(config: &Config) -> RouteTable {
        let mut by_ssrc = HashMap::new();
        for session in &config.sessions {
            let endpoint = |id: &str| session.endpoints.iter().find(|e| e.id == id);
            let address_of = |id: &str| endpoint(id).and_then(|e| e.address);
            for stream in &session.streams {
                // Without a declared publisher there is no source to check: accepting any would amplify.
                let Some(publisher) = endpoint(&stream.endpoint) else {
                    continue;
                };
                let routes = session
                    .subscriptions
                    .iter()
                    .filter(|s| s.stream == stream.id)
                    .filter_map(|s| {
                        let mut map = IDENTITY_PAYLOAD_TYPE_MAP;
                        for &[from, to] in &s.payload_type_map {
                            map[usize::from(from & 0x7f)] = to & 0x7f;
                        }
                        let rewrite = Rewrite {
                            out_ssrc: s.out_ssrc,
                            seq_offset: s.seq_offset,
                            ts_offset: s.ts_offset,
                            payload_type_map: map,
                        };
                        Some(Route { dest: address_of(&s.endpoint)?, rewrite })
                    })
                    .collect();
                by_ssrc.insert(stream.ssrc, StreamRoutes { source: publisher.address, routes });
            }
        }
        RouteTable { by_ssrc }
    }

    /// The routes of an RTP packet from `src`, or the reason it is dropped.
    pub fn lookup(&self, src: SocketAddr, pkt: &[u8]) -> Result<&[Route], DropReason> {
        if classify(pkt) != PacketKind::Rtp {
            return Err(DropReason::NotRtp);
        }
        let view = RtpView::parse(pkt).map_err(|_| DropReason::Malformed)?;
        let stream = self.by_ssrc.get(&view.ssrc().0).ok_or(DropReason::UnknownSsrc)?;
        match stream.source {
            Some(source) if source != src => Err(DropReason::WrongSource),
            _ => Ok(&stream.routes),
        }
    }

    /// Largest number of copies of one packet.
    pub fn max_fanout(&self) -> usize {
        self.by_ssrc.values().map(|s| s.routes.len()).max().unwrap_or(0)
    }
}

/// Why a baseline drops a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not RTP (RTCP, STUN, garbage).
    NotRtp,
    /// Claims to be RTP but does not parse.
    Malformed,
    /// No stream has this SSRC.
    UnknownSsrc,
    /// From an address other than the publisher's.
    WrongSource,
}

/// What a baseline counts; printed as the final counters.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Counters {
    /// Datagrams received.
    pub rx_packets: u64,
    /// Copies the kernel accepted.
    pub tx_packets: u64,
    /// Copies the kernel refused.
    pub tx_errors: u64,
    /// Dropped: not RTP.
    pub drop_not_rtp: u64,
    /// Dropped: malformed RTP.
    pub drop_malformed: u64,
    /// Dropped: unknown SSRC.
    pub drop_unknown_ssrc: u64,
    /// Dropped: wrong source address.
    pub drop_wrong_source: u64,
}

impl Counters {
    /// Counts a drop.
    pub fn dropped(&mut self, reason: DropReason) {
        match reason {
            DropReason::NotRtp => self.drop_not_rtp += 1,
            DropReason::Malformed => self.drop_malformed += 1,
            DropReason::UnknownSsrc => self.drop_unknown_ssrc += 1,
            DropReason::WrongSource => self.drop_wrong_source += 1,
        }
    }
}

/// A baseline ready to run: config read, socket bound, pinned, stop flag armed.
pub struct Setup {
    /// The config.
    pub config: Config,
    /// The routes.
    pub routes: RouteTable,
    /// The media socket (blocking).
    pub socket: UdpSocket,
    /// Set by SIGTERM or SIGINT.
    pub stop: Arc<AtomicBool>,
}

/// Reads the config, binds `media.addresses[0]`, pins to `placement.worker_cores[0]` (when a
/// list), arms the stop flag, then prints the ready line.
pub fn setup(config_path: &Path) -> Result<Setup, BaselineError> {
    let config = Config::from_file(config_path)?;
    let routes = RouteTable::from_config(&config);
    let addr = config.media.addresses[0];
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None).map_err(BaselineError::io("socket"))?;
    // One socket, one thread: sized like one ringfwd worker.
    let sizes = config.sizes(1);
    socket.set_recv_buffer_size(sizes.recv_buffer_bytes).map_err(BaselineError::io("SO_RCVBUF"))?;
    socket.set_send_buffer_size(sizes.send_buffer_bytes).map_err(BaselineError::io("SO_SNDBUF"))?;
    socket.bind(&addr.into()).map_err(BaselineError::io(format!("bind {addr}")))?;
    let socket: UdpSocket = socket.into();
    let bound = socket.local_addr().map_err(BaselineError::io("local_addr"))?;
    if let WorkerCores::List(cores) = &config.placement.worker_cores {
        if let Some(&core) = cores.first() {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                eprintln!("ringfwd-bench baseline: could not pin to core {core}; running unpinned");
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(BaselineError::io("signal handler"))?;
    }
    println!("{READY_PREFIX}workers=1 media={bound}");
    Ok(Setup { config, routes, socket, stop })
}

/// The receive and send batches of a batched loop: `recv` datagrams of up to the config's largest packet (plus one
/// byte, to see truncation), and `send` messages of up to `slices` slices each.
pub fn batches(
    config: &Config,
    recv: usize,
    send: usize,
    slices: usize,
) -> Result<(RecvBatch, SendBatch), BaselineError> {
    let size = |what: &str| {
        let what = what.to_string();
        move |e| BaselineError::Io { what, source: io::Error::other(e) }
    };
    let recv = RecvBatch::new(recv, config.media.max_packet_bytes + 1).map_err(size("receive batch"))?;
    let send = SendBatch::new(send, slices).map_err(size("send batch"))?;
    Ok((recv, send))
}

/// Longest wait in `poll` before a loop checks its stop flag again.
const POLL_TIMEOUT: rustix::event::Timespec = rustix::event::Timespec { tv_sec: 0, tv_nsec: 100_000_000 };

/// Waits in `poll(2)` until `socket` is readable (true), or for at most 100 ms, or until a signal (false: check
/// the stop flag and wait again). The batched loops wait here once a batch came back short, rather than paying
/// for a receive that would find nothing.
pub fn wait_readable(socket: &UdpSocket) -> Result<bool, BaselineError> {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(socket, PollFlags::IN)];
    match poll(&mut fds, Some(&POLL_TIMEOUT)) {
        Ok(0) | Err(rustix::io::Errno::INTR) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(BaselineError::Io { what: "poll".into(), source: e.into() }),
    }
}

/// Prints the final counters line.
pub fn print_final_counters(counters: &Counters) {
    let json = serde_json::to_string(counters).unwrap_or_else(|_| "{}".to_string());
    println!("{FINAL_COUNTERS_PREFIX}{json}");
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
