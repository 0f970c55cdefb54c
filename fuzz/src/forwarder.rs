//! Target `forwarder`: the stateful one. Sequences of datagrams, commands and timer ticks through one
//! [`Forwarder`] (worker 0 of 2) whose streams and subscriptions run any combination of the built-in
//! interceptors, on virtual time.
//!
//! Datagrams are RTP (with or without the transport-wide sequence number extension) and RTCP compounds built from
//! parts (SR, RR, SDES, BYE, APP, NACK, PLI, FIR, TWCC, REMB) naming the SSRCs in play, or any bytes, from
//! publishers, subscribers, RTCP ports or a stranger, as received or handed over by another worker; the transmit
//! queue is small enough to refuse some sends when the input says so. Commands are every [`Command`] over small pools of ids, SSRCs and
//! addresses; ticks advance the clock and run due timers; a statistics round reads snapshots and events.
//!
//! After each step: every datagram is counted once as received (or handed over) and ends under exactly the
//! outcome it reports (forwarded with as many copies as the queue accepted beyond the interceptors' own
//! packets, consumed, intercepted, handed to another worker, or dropped under its counted reason); every RTCP
//! sent is a valid compound and every retransmission valid RTP; nothing is ever sent to an address no command
//! named and no stream latched to (no amplification); a refused command changes no table; the gauges match the
//! tables; after the timers ran, none is due.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::seeds::words;
use arbitrary::Arbitrary;
use ringfwd_dataplane::control::Plugins;
use ringfwd_dataplane::core::interceptor::builtin::tap::TapRing;
use ringfwd_dataplane::core::interceptor::spec::{EgressSpec, IngressSpec, RtxParams};
use ringfwd_dataplane::core::{
    classify, Command, Counters, Forwarder, ForwarderLimits, Numbering, Outcome, PacketKind, Rewrite, RtcpCompound,
    RtpView, SourcePolicy, StreamId, SubscriptionId, Transmit, Transmits, IDENTITY_PAYLOAD_TYPE_MAP, MAX_HANDOVERS,
    NO_DESTINATION,
};
use ringfwd_tuning::{ChainName, InterceptorName, Interceptors};

const WORKERS: usize = 2;
/// Every address in play: publishers, an RTCP port, subscribers, a stranger, IPv6.
const ADDRESSES: [&str; 8] = [
    "127.0.0.1:5000",
    "127.0.0.1:5002",
    "127.0.0.1:5001",
    "127.0.0.2:6000",
    "127.0.0.3:6000",
    "127.0.0.2:6001",
    "127.0.0.9:7000",
    "[::1]:5000",
];
/// SSRCs in play: this worker's (even), the other worker's (odd), out and RTX SSRCs.
const SSRCS: [u32; 8] = [2, 4, 6, 3, 0x100, 0x102, 0x201, 0xabcd_ef00];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    rate_limit_pps: Option<u8>,
    rtcp_sockets: bool,
    /// The transmit queue holds only n (n = 2..) forwards and n copies: the rest are refused (`tx_full`).
    refuse_every: Option<u8>,
    ops: Vec<Op<'a>>,
}

#[derive(Arbitrary, Debug)]
enum Op<'a> {
    Rtp {
        from: u8,
        ssrc: u8,
        seq_step: i8,
        ts_step: u16,
        pt: u8,
        marker: bool,
        twcc: Option<u16>,
        payload: u8,
    },
    Rtcp {
        from: u8,
        parts: Vec<Part>,
        padded: bool,
    },
    Raw {
        from: u8,
        bytes: &'a [u8],
    },
    /// The last datagram again, as handed over by another worker for the `handovers`-th time.
    Handover {
        handovers: u8,
    },
    Command(Cmd),
    Tick {
        ms: u16,
    },
    Stats,
}

#[derive(Arbitrary, Debug)]
enum Part {
    Sr { ssrc: u8, blocks: Vec<u8> },
    Rr { ssrc: u8, blocks: Vec<(u8, u8, u16)> },
    Sdes { ssrc: u8, cname: Vec<u8> },
    Bye { ssrcs: Vec<u8> },
    App { ssrc: u8, data: Vec<u8> },
    Nack { sender: u8, media: u8, pid: u16, blp: u16 },
    Pli { sender: u8, media: u8 },
    Fir { sender: u8, target: u8, seq: u8 },
    Twcc { sender: u8, media: u8, fci: Vec<u8> },
    Remb { sender: u8, bitrate: u32, target: u8 },
}

#[derive(Arbitrary, Debug)]
enum Cmd {
    AddStream {
        id: u8,
        ssrc: u8,
        source: Source,
        clock: u8,
        ingress: u16,
    },
    RemoveStream {
        id: u8,
    },
    AddSubscription {
        id: u8,
        stream: u8,
        dest: Option<u8>,
        socket: u8,
        rewrite: Rw,
        paused: bool,
        egress: Eg,
        /// A numbering to continue (after a restart): sequence number, timestamp, milliseconds before now.
        continues: Option<(u16, u32, u16)>,
    },
    RemoveSubscription {
        id: u8,
    },
    Switch {
        id: u8,
        stream: u8,
    },
    SetPaused {
        id: u8,
        paused: bool,
    },
    Reconfigure {
        id: u8,
        map: Vec<(u8, u8)>,
        egress: Eg,
    },
    ChangeSsrc {
        id: u8,
        ssrc: u8,
    },
    Alias {
        ssrc: u8,
        owner: u8,
    },
    RemoveAlias {
        ssrc: u8,
    },
    SetDestination {
        id: u8,
        dest: Option<u8>,
        socket: u8,
    },
    SetSource {
        id: u8,
        source: u8,
        overlap: bool,
    },
    SetRtcpSource {
        id: u8,
        source: Option<u8>,
    },
    SetRtcpDestination {
        id: u8,
        dest: Option<u8>,
    },
    RequestKeyframe {
        id: u8,
    },
    AddFeedbackRoute {
        id: u8,
        dest: u8,
        out_ssrc: u8,
        owner: u8,
    },
    RemoveFeedbackRoute {
        id: u8,
        dest: u8,
        out_ssrc: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Source {
    Fixed(u8),
    Latch { window_ms: u16, fallback: Option<u8> },
}

#[derive(Arbitrary, Debug)]
struct Rw {
    out_ssrc: Option<u8>,
    seq_offset: u16,
    ts_offset: u32,
    map: Vec<(u8, u8)>,
}

#[derive(Arbitrary, Debug)]
struct Eg {
    names: u8,
    allowed: u128,
    rtx: Option<(u8, u8)>,
}

fn addr(i: u8) -> SocketAddr {
    ADDRESSES[usize::from(i) % ADDRESSES.len()].parse().expect("a pool address")
}

fn ssrc(i: u8) -> u32 {
    SSRCS[usize::from(i) % SSRCS.len()]
}

fn config() -> Interceptors {
    let mut config = Interceptors::default();
    config.nack_cache.max_packets = 32;
    config.reports.interval_ms = 300;
    config.twcc.extension_id = 5;
    config.twcc.feedback_interval_ms = 50;
    config.rate_limit.max_packets_per_second = 40;
    config.rate_limit.max_bits_per_second = 400_000;
    config
}

/// The built-ins whose bit is set in `bits` (bit i: the i-th of [`InterceptorName::ALL`]).
fn chosen(bits: u16) -> Vec<ChainName> {
    InterceptorName::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| bits >> i & 1 == 1)
        .map(|(_, name)| ChainName::Builtin(*name))
        .collect()
}

fn ingress(bits: u16) -> IngressSpec {
    ringfwd_tuning::specs::ingress(&chosen(bits), &config(), &Plugins::none())
}

fn egress(eg: &Eg) -> EgressSpec {
    let mut spec = ringfwd_tuning::specs::egress(&chosen(u16::from(eg.names)), &config(), eg.allowed, &Plugins::none());
    spec.rtx = eg.rtx.map(|(s, pt)| RtxParams { ssrc: ssrc(s), payload_type: pt % 128 });
    spec
}

fn payload_type_map(map: &[(u8, u8)]) -> [u8; 128] {
    let mut table = IDENTITY_PAYLOAD_TYPE_MAP;
    for (from, to) in map {
        table[usize::from(from % 128)] = to % 128;
    }
    table
}

fn command(cmd: &Cmd, now: Instant) -> Command {
    let stream = |id: u8| StreamId(u64::from(id % 5));
    let sub = |id: u8| SubscriptionId(u64::from(id % 7));
    let dest = |d: Option<u8>| d.map_or(NO_DESTINATION, addr);
    match cmd {
        Cmd::AddStream { id, ssrc: s, source, clock, ingress: bits } => Command::AddStream {
            id: stream(*id),
            ssrc: ssrc(*s),
            source: match source {
                Source::Fixed(a) => SourcePolicy::Fixed(addr(*a)),
                Source::Latch { window_ms, fallback } => SourcePolicy::Latch {
                    window: Duration::from_millis(u64::from(*window_ms)),
                    fallback: fallback.map(addr),
                },
            },
            clock_rate_hz: [90_000, 48_000, 8_000, 1][usize::from(clock % 4)],
            ingress: ingress(*bits),
        },
        Cmd::RemoveStream { id } => Command::RemoveStream { id: stream(*id) },
        Cmd::AddSubscription { id, stream: s, dest: d, socket, rewrite, paused, egress: eg, continues } => {
            Command::AddSubscription {
                id: sub(*id),
                stream: stream(*s),
                dest: dest(*d),
                socket: usize::from(socket % 2),
                rewrite: Rewrite {
                    out_ssrc: rewrite.out_ssrc.map(ssrc),
                    seq_offset: rewrite.seq_offset,
                    ts_offset: rewrite.ts_offset,
                    payload_type_map: payload_type_map(&rewrite.map),
                },
                paused: *paused,
                egress: egress(eg),
                continues: continues.map(|(seq, ts, ago)| Numbering {
                    seq,
                    ts,
                    at: now.checked_sub(Duration::from_millis(u64::from(ago))).unwrap_or(now),
                }),
            }
        }
        Cmd::RemoveSubscription { id } => Command::RemoveSubscription { id: sub(*id) },
        Cmd::Switch { id, stream: s } => Command::SwitchSubscription { id: sub(*id), stream: stream(*s) },
        Cmd::SetPaused { id, paused } => Command::SetPaused { id: sub(*id), paused: *paused },
        Cmd::Reconfigure { id, map, egress: eg } => Command::ReconfigureSubscription {
            id: sub(*id),
            payload_type_map: payload_type_map(map),
            egress: egress(eg),
        },
        Cmd::ChangeSsrc { id, ssrc: s } => Command::ChangeStreamSsrc { id: stream(*id), ssrc: ssrc(*s) },
        Cmd::Alias { ssrc: s, owner } => Command::AliasSsrc { ssrc: ssrc(*s), owner: usize::from(owner % 3) },
        Cmd::RemoveAlias { ssrc: s } => Command::RemoveSsrcAlias { ssrc: ssrc(*s) },
        Cmd::SetDestination { id, dest: d, socket } => {
            Command::SetDestination { id: sub(*id), dest: dest(*d), socket: usize::from(socket % 2) }
        }
        Cmd::SetSource { id, source, overlap } => {
            Command::SetSource { id: stream(*id), source: addr(*source), overlap: *overlap }
        }
        Cmd::SetRtcpSource { id, source } => Command::SetRtcpSource { id: stream(*id), source: source.map(addr) },
        Cmd::SetRtcpDestination { id, dest: d } => Command::SetRtcpDestination { id: sub(*id), dest: d.map(addr) },
        Cmd::RequestKeyframe { id } => Command::RequestKeyframe { id: sub(*id) },
        Cmd::AddFeedbackRoute { id, dest: d, out_ssrc, owner } => Command::AddFeedbackRoute {
            id: sub(*id),
            dest: addr(*d),
            out_ssrc: ssrc(*out_ssrc),
            owner: usize::from(owner % 3),
        },
        Cmd::RemoveFeedbackRoute { id, dest: d, out_ssrc } => {
            Command::RemoveFeedbackRoute { id: sub(*id), dest: addr(*d), out_ssrc: ssrc(*out_ssrc) }
        }
    }
}

/// The addresses a command names (where the forwarder may send from now on).
fn named(command: &Command) -> Vec<SocketAddr> {
    match command {
        Command::AddStream { source: SourcePolicy::Fixed(a), .. } => vec![*a],
        Command::AddStream { source: SourcePolicy::Latch { fallback, .. }, .. } => fallback.iter().copied().collect(),
        Command::AddSubscription { dest, .. } | Command::SetDestination { dest, .. } => vec![*dest],
        Command::SetSource { source, .. } => vec![*source],
        Command::SetRtcpSource { source, .. } => source.iter().copied().collect(),
        Command::SetRtcpDestination { dest, .. } => dest.iter().copied().collect(),
        Command::AddFeedbackRoute { dest, .. } => vec![*dest],
        _ => Vec::new(),
    }
}

/// One RTCP packet: header with `count` (5 bits) and `pt`, then `body` zero-padded to 32 bits.
fn rtcp_packet(count: u8, pt: u8, body: &[u8]) -> Vec<u8> {
    crate::seeds::rtcp(count & 0x1f, pt, body)
}

fn part(p: &Part) -> Vec<u8> {
    match p {
        Part::Sr { ssrc: s, blocks } => {
            let blocks: Vec<u8> =
                blocks.iter().take(31).flat_map(|b| words(&[ssrc(*b), 0, 0x0001_0000, 0, 0, 0])).collect();
            let mut body = words(&[ssrc(*s), 0xe000_0000, 0, 90_000, 10, 1000]);
            body.extend(&blocks);
            rtcp_packet((blocks.len() / 24) as u8, 200, &body)
        }
        Part::Rr { ssrc: s, blocks } => {
            let mut body = words(&[ssrc(*s)]);
            for (b, fraction, highest) in blocks.iter().take(31) {
                body.extend(words(&[
                    ssrc(*b),
                    u32::from(*fraction) << 24 | 3,
                    1 << 16 | u32::from(*highest),
                    20,
                    0,
                    0,
                ]));
            }
            rtcp_packet(blocks.len().min(31) as u8, 201, &body)
        }
        Part::Sdes { ssrc: s, cname } => {
            let cname = &cname[..cname.len().min(64)];
            let mut body = words(&[ssrc(*s)]);
            body.extend([1, cname.len() as u8]);
            body.extend(cname);
            body.push(0);
            rtcp_packet(1, 202, &body)
        }
        Part::Bye { ssrcs } => {
            let list: Vec<u32> = ssrcs.iter().take(31).map(|s| ssrc(*s)).collect();
            let list = if list.is_empty() { vec![ssrc(0)] } else { list };
            rtcp_packet(list.len() as u8, 203, &words(&list))
        }
        Part::App { ssrc: s, data } => {
            let mut body = words(&[ssrc(*s)]);
            body.extend(b"NAME");
            body.extend(&data[..data.len().min(64)]);
            rtcp_packet(0, 204, &body)
        }
        Part::Nack { sender, media, pid, blp } => {
            rtcp_packet(1, 205, &words(&[ssrc(*sender), ssrc(*media), u32::from(*pid) << 16 | u32::from(*blp)]))
        }
        Part::Pli { sender, media } => rtcp_packet(1, 206, &words(&[ssrc(*sender), ssrc(*media)])),
        Part::Fir { sender, target, seq } => {
            rtcp_packet(4, 206, &words(&[ssrc(*sender), 0, ssrc(*target), u32::from(*seq) << 24]))
        }
        Part::Twcc { sender, media, fci } => {
            let mut body = words(&[ssrc(*sender), ssrc(*media)]);
            body.extend(&fci[..fci.len().min(64)]);
            rtcp_packet(15, 205, &body)
        }
        Part::Remb { sender, bitrate, target } => {
            let mut body = words(&[ssrc(*sender), 0]);
            body.extend(b"REMB");
            body.extend(words(&[1 << 24 | (bitrate & 0x3ffff), ssrc(*target)]));
            rtcp_packet(15, 206, &body)
        }
    }
}

/// Records what the forwarder queues and checks each packet.
struct Recorder {
    /// Sends accepted during the current step.
    accepted: u32,
    /// The forwarder's transmit queue, drained after every call.
    queue: Transmits,
    /// The first byte of the datagram being processed (forwarded RTP keeps it).
    first_byte: Option<u8>,
    allowed: BTreeSet<SocketAddr>,
    /// The source of the datagram being processed.
    source: Option<SocketAddr>,
    /// Something was sent to `source` while it was not (yet) allowed.
    sent_to_source: bool,
}

impl Recorder {
    /// Checks and counts everything queued, and empties the queue.
    fn record(&mut self) {
        let mut queue = std::mem::replace(&mut self.queue, Transmits::with_capacity(0, 0, 0));
        queue.drain(|transmit| {
            match transmit {
                Transmit::Forward { header, .. } => {
                    let first = self.first_byte.expect("RTP is forwarded only while a datagram is processed");
                    assert_eq!(header[0], first, "V/P/X/CC kept");
                }
                Transmit::Copy { bytes, .. } => match classify(bytes) {
                    PacketKind::Rtcp => assert!(RtcpCompound::parse(bytes).is_ok(), "RTCP sent is a valid compound"),
                    PacketKind::Rtp => assert!(RtpView::parse(bytes).is_ok(), "RTP sent is valid"),
                    kind => panic!("sent a {kind:?} packet"),
                },
            }
            let dest = match transmit {
                Transmit::Forward { dest, .. } | Transmit::Copy { dest, .. } => dest,
            };
            self.send(dest);
            true
        });
        self.queue = queue;
    }

    fn send(&mut self, dest: SocketAddr) {
        // The source of the datagram being processed: allowed if it latched a stream (checked after the datagram).
        if self.source == Some(dest) && !self.allowed.contains(&dest) {
            self.sent_to_source = true;
        } else {
            assert!(self.allowed.contains(&dest), "sent to {dest}, which no command named and no stream latched to");
        }
        self.accepted += 1;
    }
}

struct State {
    fwd: Forwarder,
    now: Instant,
    egress: Recorder,
    last: Option<(SocketAddr, Vec<u8>)>,
    /// (sequence number, timestamp) per SSRC slot.
    numbering: [(u16, u32); SSRCS.len()],
}

/// The input `data` decodes to, as text.
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", crate::structured::<Input<'_>>(data))
}

/// Runs one input.
pub fn run(data: &[u8]) {
    if let Some(input) = crate::structured::<Input>(data) {
        drive(&input);
    }
}

/// Drives one forwarder through `input`; answers the counters at the end.
fn drive(input: &Input<'_>) -> Counters {
    let limits = ForwarderLimits {
        max_streams: 4,
        max_subscriptions: 8,
        max_subscriptions_per_stream: 4,
        max_packet_bytes: 1500,
        max_packets_per_second_per_source: input.rate_limit_pps.map_or(0, |pps| u32::from(pps) + 1),
    };
    let mut fwd = Forwarder::with_hash_seed(0, WORKERS, limits, 0);
    fwd.set_tap_ring(Arc::new(TapRing::new(16, 256)));
    if input.rtcp_sockets {
        fwd.set_rtcp_socket_offset(Some(2));
    }
    let mut state = State {
        fwd,
        now: crate::epoch(),
        egress: Recorder {
            accepted: 0,
            queue: match input.refuse_every.map(|n| usize::from(n % 8) + 2) {
                Some(n) => Transmits::with_capacity(n, n, n * 1500),
                None => Transmits::for_limits(&limits),
            },
            first_byte: None,
            allowed: BTreeSet::new(),
            source: None,
            sent_to_source: false,
        },
        last: None,
        numbering: [(1000, 90_000); SSRCS.len()],
    };
    for op in input.ops.iter().take(256) {
        state.step(op);
        let counters = state.fwd.counters();
        assert_eq!(counters.streams, state.fwd.stream_count() as u64);
        assert_eq!(counters.subscriptions, state.fwd.subscription_count() as u64);
        assert!(state.fwd.stream_count() <= limits.max_streams as usize);
        assert!(state.fwd.subscription_count() <= limits.max_subscriptions as usize);
    }
    state.fwd.counters().clone()
}

impl State {
    fn step(&mut self, op: &Op<'_>) {
        match op {
            Op::Rtp { from, ssrc: s, seq_step, ts_step, pt, marker, twcc, payload } => {
                let slot = usize::from(*s) % SSRCS.len();
                let (seq, ts) = &mut self.numbering[slot];
                *seq = seq.wrapping_add(*seq_step as u16);
                *ts = ts.wrapping_add(u32::from(*ts_step));
                let mut pkt = vec![0x80, (u8::from(*marker) << 7) | (pt % 128)];
                pkt.extend_from_slice(&seq.to_be_bytes());
                pkt.extend_from_slice(&ts.to_be_bytes());
                pkt.extend_from_slice(&SSRCS[slot].to_be_bytes());
                if let Some(tseq) = twcc {
                    pkt[0] |= 0x10;
                    pkt.extend_from_slice(&[0xbe, 0xde, 0, 1, 5 << 4 | 1]);
                    pkt.extend_from_slice(&tseq.to_be_bytes());
                    pkt.push(0);
                }
                pkt.extend(std::iter::repeat_n(0xa5, usize::from(*payload) * 4));
                self.datagram(addr(*from), pkt, 0);
            }
            Op::Rtcp { from, parts, padded } => {
                let mut pkt: Vec<u8> = parts.iter().take(8).flat_map(part).collect();
                if pkt.is_empty() {
                    return;
                }
                if *padded {
                    // Padding on the last packet: four bytes, counted in its length.
                    let last = rtcp_last_offset(&pkt);
                    pkt[last] |= 0x20;
                    let words = u16::from_be_bytes([pkt[last + 2], pkt[last + 3]]) + 1;
                    pkt[last + 2..last + 4].copy_from_slice(&words.to_be_bytes());
                    pkt.extend_from_slice(&[0, 0, 0, 4]);
                }
                self.datagram(addr(*from), pkt, 0);
            }
            Op::Raw { from, bytes } => self.datagram(addr(*from), bytes.to_vec(), 0),
            Op::Handover { handovers } => {
                if let Some((src, pkt)) = self.last.clone() {
                    self.datagram(src, pkt, 1 + handovers % MAX_HANDOVERS);
                }
            }
            Op::Command(cmd) => {
                let command = command(cmd, self.now);
                let sizes = |f: &Forwarder| (f.stream_count(), f.subscription_count(), f.alias_count());
                let before = sizes(&self.fwd);
                let applied = self.fwd.counters().commands_applied;
                match self.fwd.apply(self.now, command.clone()) {
                    Ok(()) => {
                        assert_eq!(self.fwd.counters().commands_applied, applied + 1);
                        self.egress.allowed.extend(named(&command));
                    }
                    Err(error) => {
                        assert_eq!(sizes(&self.fwd), before, "a refused command changes no table: {error}");
                        assert!(!error.to_string().is_empty());
                    }
                }
                // A keyframe request makes the timers due at once.
                self.timers();
            }
            Op::Tick { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.timers();
            }
            Op::Stats => {
                self.fwd.check_activity(self.now, Duration::from_secs(1));
                self.fwd.for_each_snapshot(|_, _| {});
                self.fwd.drain_events(|_| {});
                self.fwd.drain_final_snapshots(|_, _| {});
            }
        }
    }

    fn timers(&mut self) {
        if self.fwd.next_timer().is_some_and(|at| at <= self.now) {
            self.egress.first_byte = None;
            self.fwd.on_timers(self.now, &mut self.egress.queue);
            self.egress.record();
            assert!(self.fwd.next_timer().is_none_or(|at| at > self.now), "a timer still due after the sweep");
        }
    }

    /// One datagram from `src`: as received (`handovers` 0) or handed over.
    fn datagram(&mut self, src: SocketAddr, pkt: Vec<u8>, handovers: u8) {
        let before: Counters = self.fwd.counters().clone();
        self.egress.accepted = 0;
        self.egress.first_byte = pkt.first().copied();
        (self.egress.source, self.egress.sent_to_source) = (Some(src), false);
        let outcome = if handovers == 0 {
            self.fwd.on_datagram(self.now, 0, src, &pkt, &mut self.egress.queue)
        } else {
            self.fwd.on_handover(self.now, 0, src, &pkt, handovers, &mut self.egress.queue)
        };
        self.egress.record();
        let after = self.fwd.counters();
        if handovers == 0 {
            assert_eq!(after.rx_packets, before.rx_packets + 1, "counted as received once");
        } else {
            assert_eq!((after.rx_packets, after.handover_in), (before.rx_packets, before.handover_in + 1));
        }
        if after.latched > before.latched {
            self.egress.allowed.insert(src);
        }
        assert!(!self.egress.sent_to_source || self.egress.allowed.contains(&src), "sent to {src}, not latched");
        self.egress.source = None;
        let emitted = after.interceptor_emitted - before.interceptor_emitted;
        let copies = u64::from(self.egress.accepted).checked_sub(emitted).expect("emissions are sends");
        match outcome {
            Outcome::Forwarded { copies: reported } => {
                assert!(reported >= 1);
                assert_eq!(u64::from(reported), copies, "copies the egress accepted");
                assert_eq!(after.forwarded_packets - before.forwarded_packets, copies);
            }
            Outcome::Dropped(reason) | Outcome::CopiesDropped(reason) => {
                assert_eq!(copies, 0, "a dropped datagram is not forwarded");
                assert!(after.drops(reason) > before.drops(reason), "{reason:?} counted");
            }
            Outcome::Consumed => {
                assert_eq!(copies, 0);
                assert_eq!(after.consumed_no_subscriber, before.consumed_no_subscriber + 1);
            }
            Outcome::Intercepted => {
                assert_eq!(copies, 0);
                let handled = (after.consumed_by_interceptor - before.consumed_by_interceptor)
                    + (after.rx_feedback - before.rx_feedback);
                assert!(handled >= 1, "counted as consumed or as subscriber RTCP");
            }
            Outcome::Handover { owner } => {
                assert!(owner < WORKERS && owner != 0, "handed to another worker: {owner}");
                assert!(handovers < MAX_HANDOVERS, "handed over at most {MAX_HANDOVERS} times");
                assert_eq!(after.handover_out, before.handover_out + 1);
            }
        }
        self.last = Some((src, pkt));
        self.egress.first_byte = None;
    }
}

/// Where the last packet of a compound built by [`part`] starts.
fn rtcp_last_offset(pkt: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let len = (usize::from(u16::from_be_bytes([pkt[at + 2], pkt[at + 3]])) + 1) * 4;
        if at + len >= pkt.len() {
            return at;
        }
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness reaches forwarding: a stream, two subscribers, RTP and RTCP from the publisher, a NACK and a
    /// PLI from a subscriber, and time for the reports.
    #[test]
    fn a_call_is_forwarded_and_answered() {
        let all = Eg { names: 0xff, allowed: u128::MAX, rtx: None };
        let rewrite = || Rw { out_ssrc: None, seq_offset: 0, ts_offset: 0, map: vec![] };
        let mut ops = vec![
            Op::Command(Cmd::AddStream { id: 0, ssrc: 0, source: Source::Fixed(0), clock: 0, ingress: 0x3ff }),
            Op::Command(Cmd::AddSubscription {
                id: 0,
                stream: 0,
                dest: Some(3),
                socket: 0,
                rewrite: rewrite(),
                paused: false,
                egress: all,
                continues: None,
            }),
            Op::Command(Cmd::AddSubscription {
                id: 1,
                stream: 0,
                dest: Some(4),
                socket: 1,
                rewrite: Rw { out_ssrc: Some(4), seq_offset: 7, ts_offset: 9, map: vec![(96, 100)] },
                paused: false,
                egress: Eg { names: 0, allowed: 0, rtx: Some((5, 97)) },
                continues: Some((65_000, 7, 40)),
            }),
        ];
        for _ in 0..20 {
            ops.push(Op::Rtp {
                from: 0,
                ssrc: 0,
                seq_step: 1,
                ts_step: 3000,
                pt: 96,
                marker: false,
                twcc: Some(1),
                payload: 50,
            });
            ops.push(Op::Tick { ms: 40 });
        }
        ops.push(Op::Rtcp {
            from: 0,
            parts: vec![Part::Sr { ssrc: 0, blocks: vec![] }, Part::Sdes { ssrc: 0, cname: b"pub".to_vec() }],
            padded: true,
        });
        ops.push(Op::Rtcp {
            from: 3,
            parts: vec![
                Part::Rr { ssrc: 6, blocks: vec![(0, 0, 1010)] },
                Part::Nack { sender: 6, media: 0, pid: 1005, blp: 1 },
            ],
            padded: false,
        });
        ops.push(Op::Rtcp { from: 4, parts: vec![Part::Pli { sender: 6, media: 4 }], padded: false });
        ops.push(Op::Rtp { from: 6, ssrc: 0, seq_step: 1, ts_step: 1, pt: 96, marker: false, twcc: None, payload: 1 });
        ops.push(Op::Tick { ms: 2000 });
        ops.push(Op::Stats);
        let counters = drive(&Input { rate_limit_pps: None, rtcp_sockets: false, refuse_every: None, ops });
        assert!(counters.forwarded_packets >= 40, "{counters:?}");
        assert!(counters.rx_feedback >= 2 && counters.retransmissions >= 1, "{counters:?}");
        assert!(counters.interceptor_emitted >= 5, "reports and TWCC feedback: {counters:?}");
        assert_eq!(counters.drops(ringfwd_dataplane::core::DropReason::WrongSource), 1, "the stranger");
    }
}
