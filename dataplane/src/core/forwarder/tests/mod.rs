//! Tests of the forwarding decision with a recording egress; deterministic (fixed packets, virtual
//! time). This file owns the shared harness; each submodule one group of behaviour.

mod admission;
mod alias;
mod commands;
mod events;
mod fan_out;
mod latch;
mod plugins;
mod rtcp_port;
mod sendrecv;
mod source_move;
mod switch;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use webrtc_util::marshal::{Marshal, Unmarshal};

use super::*;
use crate::core::command::{SourcePolicy, StreamId};
use crate::core::rewrite::{Rewrite, IDENTITY_PAYLOAD_TYPE_MAP};
use crate::core::transmit::{Transmit, Transmits};

const SSRC: u32 = 0x0000_1000; // owned by worker 0 of 2
const FOREIGN_SSRC: u32 = 0x0000_1001; // owned by worker 1 of 2

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn publisher() -> SocketAddr {
    addr("127.0.0.1:5000")
}

fn limits() -> ForwarderLimits {
    ForwarderLimits {
        max_streams: 4,
        max_subscriptions: 6,
        max_subscriptions_per_stream: 4,
        max_packet_bytes: 1500,
        max_packets_per_second_per_source: 0,
    }
}

/// One copy as the driver would put it on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    /// Sent by `forward_rtp` (header + the current packet's payload), not as an assembled copy.
    forwarded: bool,
    socket: usize,
    dest: SocketAddr,
    bytes: Vec<u8>,
}

/// Records every copy; refuses all copies while `refuse` is set. The forwarder queues into it (it derefs to its
/// transmit queue); what was queued is recorded, forwards with the current datagram's payload, before the
/// current datagram changes and whenever `sent()` is read.
struct Recorder {
    current: Vec<u8>,
    sent: Vec<Sent>,
    refuse: bool,
    queue: Transmits,
    full: Transmits,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            current: Vec::new(),
            sent: Vec::new(),
            refuse: false,
            queue: Transmits::with_capacity(64, 64, 64 * 1500),
            full: Transmits::with_capacity(0, 0, 0),
        }
    }

    /// Records what was queued, then makes `pkt` the datagram forwards refer to.
    fn set_current(&mut self, pkt: &[u8]) {
        self.record();
        self.current = pkt.to_vec();
    }

    /// Everything sent so far.
    fn sent(&mut self) -> &mut Vec<Sent> {
        self.record();
        &mut self.sent
    }

    fn record(&mut self) {
        let (current, sent) = (&self.current, &mut self.sent);
        self.queue.drain(|transmit| {
            sent.push(match transmit {
                Transmit::Forward { socket, dest, header, .. } => {
                    let mut bytes = header.to_vec();
                    bytes.extend_from_slice(&current[12..]);
                    Sent { forwarded: true, socket, dest, bytes }
                }
                Transmit::Copy { socket, dest, bytes } => {
                    Sent { forwarded: false, socket, dest, bytes: bytes.to_vec() }
                }
            });
            true
        });
    }
}

impl std::ops::Deref for Recorder {
    type Target = Transmits;

    fn deref(&self) -> &Transmits {
        &self.queue
    }
}

impl std::ops::DerefMut for Recorder {
    fn deref_mut(&mut self) -> &mut Transmits {
        if self.refuse {
            &mut self.full
        } else {
            &mut self.queue
        }
    }
}

struct Harness {
    fwd: Forwarder,
    start: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness { fwd: Forwarder::with_hash_seed(0, 2, limits(), 7), start: Instant::now() }
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// Adds a 90 kHz stream.
    fn stream(&mut self, id: u64, ssrc: u32, source: SourcePolicy) {
        self.stream_at_rate(id, ssrc, source, 90_000);
    }

    fn stream_at_rate(&mut self, id: u64, ssrc: u32, source: SourcePolicy, clock_rate_hz: u32) {
        let now = self.start;
        self.fwd
            .apply(
                now,
                Command::AddStream { id: StreamId(id), ssrc, source, clock_rate_hz, ingress: Default::default() },
            )
            .expect("add stream");
    }

    fn switch(&mut self, ms: u64, id: u64, stream: u64) -> Result<(), CommandError> {
        let cmd = Command::SwitchSubscription { id: SubscriptionId(id), stream: StreamId(stream) };
        self.fwd.apply(self.at(ms), cmd)
    }

    fn sub(&mut self, id: u64, stream: u64, dest: &str, rewrite: Rewrite) -> Result<(), CommandError> {
        let cmd = Command::AddSubscription {
            id: SubscriptionId(id),
            stream: StreamId(stream),
            dest: addr(dest),
            socket: id as usize % 2,
            rewrite,
            paused: false,
            egress: Default::default(),
            continues: None,
        };
        self.fwd.apply(self.start, cmd)
    }

    fn send(&mut self, ms: u64, src: SocketAddr, pkt: &[u8], egress: &mut Recorder) -> Outcome {
        egress.set_current(pkt);
        self.fwd.on_datagram(self.at(ms), 0, src, pkt, egress)
    }
}

fn rtp(ssrc: u32, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let packet = rtp::packet::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: 96,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            marker: true,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    };
    packet.marshal().expect("marshal").to_vec()
}

fn parse(bytes: &[u8]) -> rtp::packet::Packet {
    rtp::packet::Packet::unmarshal(&mut &bytes[..]).expect("valid rtp out")
}

fn rewrite(out_ssrc: u32, seq_offset: u16, ts_offset: u32, pt_to: u8) -> Rewrite {
    let mut payload_type_map = IDENTITY_PAYLOAD_TYPE_MAP;
    payload_type_map[96] = pt_to;
    Rewrite { out_ssrc: Some(out_ssrc), seq_offset, ts_offset, payload_type_map }
}

fn fixed_stream_with_subs(h: &mut Harness, subs: u64) {
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    for i in 1..=subs {
        h.sub(
            i,
            1,
            &format!("127.0.0.{}:{}", 10 + i, 6000 + i),
            rewrite(0xa000 + i as u32, i as u16 * 100, 0, 96 + i as u8),
        )
        .expect("add sub");
    }
}
