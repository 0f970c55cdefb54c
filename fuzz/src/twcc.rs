//! Target `twcc`: the transport-wide congestion control path, from the header extension to the feedback.
//!
//! Drives one [`Twcc`] interceptor (any extension id and feedback interval) with a sequence of RTP packets whose
//! transport-wide sequence numbers step, wrap, jump, repeat and go back, arriving after any gap (up to a minute,
//! so deltas overflow two bytes), some without the extension, and with timer ticks in between. Every feedback it
//! emits must be a valid compound (RR, SDES CNAME, then the feedback) that the `rtcp` crate reads back, with
//! feedback packet counts that go up by one, and every packet it reports received must be one that was sent with
//! that number, at the arrival time it was sent (quantized to 250 µs). Then [`write_twcc`] on the input's own
//! statuses and buffer size: what it writes fits, pads to 32 bits, and reads back as exactly the statuses covered.

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use ringfwd_dataplane::core::interceptor::builtin::twcc::Twcc;
use ringfwd_dataplane::core::interceptor::builtin::wire_feedback::{write_twcc, TwccHeader, TwccStatus};
use ringfwd_dataplane::core::interceptor::spec::{NtpEpoch, StreamInfo, TwccParams};
use ringfwd_dataplane::core::interceptor::{Context, Interceptor, Outbox, RtpAttrs, Scope, Target};
use ringfwd_dataplane::core::{RtcpCompound, RtpTimestamp, SeqNo, Ssrc};
use rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
};
use webrtc_util::marshal::Unmarshal;

const PUBLISHER: Ssrc = Ssrc(0x1111_1111);
const LOCAL: Ssrc = Ssrc(0x2222_2222);

#[derive(Arbitrary, Debug)]
struct Input {
    extension_id: u8,
    interval_ms: u16,
    two_byte: bool,
    first_seq: u16,
    ops: Vec<Op>,
    statuses: Vec<Option<i16>>,
    room_bytes: u16,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// An RTP packet `gap_us` (taken modulo a minute) after the previous event.
    Packet { seq_step: i16, gap_us: u32, without_extension: bool },
    /// A jump of the transport-wide sequence number (the next packet's step is added to it).
    Jump { by: u16 },
    /// Time passes; due timers fire.
    Wait { ms: u16 },
}

/// Drives the interceptor on virtual time and checks what it emits.
struct Harness {
    twcc: Twcc,
    epoch: Instant,
    now: Instant,
    wake: Option<Instant>,
    outbox: Outbox,
    /// (transport seq, arrival in 250 µs ticks) of every packet sent with the extension.
    sent: Vec<(u16, u64)>,
    next_fb_count: Option<u8>,
    reported: usize,
}

/// The input `data` decodes to, as text.
pub fn describe(data: &[u8]) -> String {
    format!("{:#?}", crate::structured::<Input>(data))
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some(input) = crate::structured::<Input>(data) else {
        return;
    };
    let extension_id = input.extension_id % 14 + 1;
    let params = TwccParams { extension_id, feedback_interval_ms: u32::from(input.interval_ms % 2000) + 1 };
    let epoch = crate::epoch();
    let info =
        StreamInfo { ssrc: PUBLISHER, clock_rate_hz: 90_000, local_ssrc: LOCAL, epoch: NtpEpoch { at: epoch, ntp: 0 } };
    let mut h = Harness {
        twcc: Twcc::new(&params, &info),
        epoch,
        now: epoch + Duration::from_millis(1),
        wake: None,
        outbox: Outbox::new(64, 1500),
        sent: Vec::new(),
        next_fb_count: None,
        reported: 0,
    };
    let (mut tseq, mut seq, mut jump) = (input.first_seq, 0u16, 0u16);
    for op in input.ops.iter().take(4096) {
        match *op {
            Op::Packet { seq_step, gap_us, without_extension } => {
                h.advance(Duration::from_micros(u64::from(gap_us % 60_000_000)));
                tseq = tseq.wrapping_add(seq_step as u16).wrapping_add(std::mem::take(&mut jump));
                seq = seq.wrapping_add(1);
                let ext = (!without_extension).then_some((extension_id, tseq));
                let pkt = rtp_packet(seq, ext, input.two_byte);
                if ext.is_some() {
                    let ticks = (h.now.saturating_duration_since(h.epoch).as_micros() / 250) as u64;
                    h.sent.push((tseq, ticks));
                }
                h.rtp(&pkt, seq);
            }
            Op::Jump { by } => jump = jump.wrapping_add(by),
            Op::Wait { ms } => h.advance(Duration::from_millis(u64::from(ms))),
        }
    }
    h.advance(Duration::from_secs(5));
    assert!(h.reported <= h.sent.len(), "{} packets reported received of {} sent", h.reported, h.sent.len());
    writer_round_trip(&input.statuses, usize::from(input.room_bytes % 1600));
}

/// An RTP packet with the transport-wide sequence number in a one- or two-byte extension.
fn rtp_packet(seq: u16, ext: Option<(u8, u16)>, two_byte: bool) -> Vec<u8> {
    let mut pkt = vec![0x80, 96];
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(&3000u32.wrapping_mul(u32::from(seq)).to_be_bytes());
    pkt.extend_from_slice(&PUBLISHER.0.to_be_bytes());
    if let Some((id, tseq)) = ext {
        pkt[0] |= 0x10;
        let [hi, lo] = tseq.to_be_bytes();
        let (profile, element): (u16, Vec<u8>) =
            if two_byte { (0x1000, vec![id, 2, hi, lo]) } else { (0xbede, vec![id << 4 | 1, hi, lo, 0]) };
        pkt.extend_from_slice(&profile.to_be_bytes());
        pkt.extend_from_slice(&1u16.to_be_bytes());
        pkt.extend_from_slice(&element);
    }
    pkt.extend_from_slice(&[0xab; 20]);
    pkt
}

impl Harness {
    /// Moves time on by `by`, firing every timer due on the way at its own time.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(due) = self.wake.filter(|&due| due <= until) {
            self.wake = None;
            let mut ctx =
                Context::new(due.max(self.now), Scope::Stream { stream: 0 }, &mut self.outbox, &mut self.wake);
            self.twcc.on_timer(&mut ctx);
            self.check_emissions();
        }
        self.now = until;
    }

    fn rtp(&mut self, pkt: &[u8], seq: u16) {
        let attrs = RtpAttrs {
            arrival: self.now,
            src: "127.0.0.1:5000".parse().expect("an address"),
            ssrc: PUBLISHER,
            seq: SeqNo(seq),
            ext_seq: 1 << 16 | u64::from(seq),
            timestamp: RtpTimestamp(0),
            payload_type: 96,
            source_payload_type: 96,
            marker: false,
            len_bytes: pkt.len(),
            payload_bytes: 20,
            extension_offset: (pkt[0] & 0x10 != 0).then_some(12),
        };
        let mut ctx = Context::new(self.now, Scope::Stream { stream: 0 }, &mut self.outbox, &mut self.wake);
        let verdict = self.twcc.on_rtp(pkt, &attrs, &mut ctx);
        assert_eq!(verdict, ringfwd_dataplane::core::interceptor::Verdict::Continue, "TWCC never drops");
        self.check_emissions();
    }

    fn check_emissions(&mut self) {
        for index in 0..self.outbox.len() {
            let (target, bytes) = self.outbox.get(index).expect("queued");
            assert_eq!(target, Target::Publisher { stream: 0 });
            let compound = RtcpCompound::parse(bytes).expect("a valid compound");
            let last = compound.packets().last().expect("packets");
            assert_eq!((last.kind, last.count), (ringfwd_dataplane::core::RtcpType::TransportFeedback, 15));
            let feedback = &bytes[last.offset..];
            let received = check_feedback(feedback, &self.sent, &mut self.next_fb_count);
            self.reported += received;
        }
        self.outbox.clear();
    }
}

/// Checks one TWCC packet against what was sent; returns how many packets it reports received.
fn check_feedback(bytes: &[u8], sent: &[(u16, u64)], next_fb_count: &mut Option<u8>) -> usize {
    let fb = TransportLayerCc::unmarshal(&mut &bytes[..]).expect("the rtcp crate reads our feedback");
    assert_eq!((fb.sender_ssrc, fb.media_ssrc), (LOCAL.0, PUBLISHER.0));
    if let Some(expected) = *next_fb_count {
        assert_eq!(fb.fb_pkt_count, expected, "feedback packet counts go up by one");
    }
    *next_fb_count = Some(fb.fb_pkt_count.wrapping_add(1));
    let statuses = decode(&fb);
    assert_eq!(statuses.len(), usize::from(fb.packet_status_count));
    let mut ticks = i64::from(fb.reference_time) * 256;
    let mut received = 0;
    for (i, status) in statuses.iter().enumerate() {
        let Some(delta) = status else { continue };
        ticks += delta;
        let seq = fb.base_sequence_number.wrapping_add(i as u16);
        assert!(
            sent.iter().any(|&(s, t)| s == seq && t as i64 == ticks),
            "seq {seq} reported received at tick {ticks}, never sent then"
        );
        received += 1;
    }
    received
}

/// The statuses of a feedback as the `rtcp` crate reads them: `None` not received, else the delta in 250 µs.
fn decode(fb: &TransportLayerCc) -> Vec<Option<i64>> {
    let mut symbols = Vec::new();
    for chunk in &fb.packet_chunks {
        match chunk {
            PacketStatusChunk::RunLengthChunk(run) => {
                symbols.extend(std::iter::repeat_n(run.packet_status_symbol, usize::from(run.run_length)))
            }
            PacketStatusChunk::StatusVectorChunk(vector) => {
                let two_bit = vector.symbol_size == SymbolSizeTypeTcc::TwoBit;
                symbols.extend(vector.symbol_list.iter().map(|s| match (two_bit, s) {
                    (false, SymbolTypeTcc::PacketReceivedSmallDelta) => SymbolTypeTcc::PacketReceivedSmallDelta,
                    (false, _) => SymbolTypeTcc::PacketNotReceived,
                    (true, s) => *s,
                }))
            }
        }
    }
    symbols.truncate(usize::from(fb.packet_status_count));
    let mut deltas = fb.recv_deltas.iter();
    symbols
        .into_iter()
        .map(|s| match s {
            SymbolTypeTcc::PacketNotReceived => None,
            _ => Some(deltas.next().expect("a delta per received packet").delta / 250),
        })
        .collect()
}

/// `write_twcc` on arbitrary statuses into a buffer of `room_bytes`.
fn writer_round_trip(raw: &[Option<i16>], room_bytes: usize) {
    let statuses: Vec<TwccStatus> = raw
        .iter()
        .map(|s| match s {
            None => TwccStatus::NotReceived,
            Some(delta_250us) => TwccStatus::Received { delta_250us: *delta_250us },
        })
        .collect();
    let header =
        TwccHeader { sender_ssrc: LOCAL, media_ssrc: PUBLISHER, base_seq: 7, reference_time_64ms: 9, fb_pkt_count: 3 };
    let mut buf = vec![0u8; room_bytes];
    let (len, written) = write_twcc(&mut buf, &header, &statuses);
    assert!(len <= room_bytes && len % 4 == 0 && written <= statuses.len());
    assert_eq!(len == 0, written == 0, "a packet exactly when statuses were written");
    if written == 0 {
        return;
    }
    assert!(RtcpCompound::parse(&buf[..len]).is_ok(), "a valid compound");
    if statuses[..written].iter().any(|s| *s != TwccStatus::NotReceived) {
        let fb = TransportLayerCc::unmarshal(&mut &buf[..len]).expect("the rtcp crate reads it");
        let expected: Vec<Option<i64>> = raw[..written].iter().map(|s| s.map(i64::from)).collect();
        assert_eq!(decode(&fb), expected);
        assert_eq!(fb.base_sequence_number, 7);
    }
}
