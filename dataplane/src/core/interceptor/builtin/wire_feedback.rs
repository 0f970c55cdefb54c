//! Readers and writers of the RTCP feedback messages the built-ins exchange, over byte slices.
//!
//! Owns the generic feedback header view ([`Feedback`], RFC 4585 §6.1), the generic NACK FCI reader
//! ([`NackSeqs`], RFC 4585 §6.2.1), the FIR FCI reader ([`FirEntries`], RFC 5104 §4.3.1), the PLI and FIR
//! writers ([`write_pli`], [`write_fir`]), the transport-wide congestion control feedback writer
//! ([`write_twcc`], draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) and the reader of the
//! transport-wide sequence number from an RTP header extension ([`read_transport_seq`], RFC 8285).
//! Must never allocate, copy a packet or panic, whatever the input bytes are: every read is checked.

use crate::core::packet::{read_be_u32, RtcpPacketRef, RtcpType, PT_PSFB, PT_RTPFB};
use crate::core::wire::{SeqNo, Ssrc};

pub use crate::core::packet::{FMT_FIR, FMT_GENERIC_NACK, FMT_PLI, FMT_TRANSPORT_CC};
/// Bytes of a PLI packet (header, sender SSRC, media SSRC; no FCI).
pub const PLI_LEN_BYTES: usize = 12;
/// Bytes of a FIR packet with one FCI entry.
pub const FIR_LEN_BYTES: usize = 20;

/// Header, sender SSRC, media SSRC, base/count, reference time/fb count.
const TWCC_FIXED_BYTES: usize = 20;
/// A run-length chunk holds at most this many statuses (13-bit run length).
const TWCC_MAX_RUN: usize = 0x1fff;

/// What a feedback packet asks for, by packet type and FMT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackKind {
    /// RTPFB FMT 1.
    GenericNack,
    /// RTPFB FMT 15.
    TransportCc,
    /// PSFB FMT 1.
    Pli,
    /// PSFB FMT 4.
    Fir,
    /// Any other RTPFB/PSFB format (TMMBR, SLI, REMB, ...).
    Other,
}

/// One RTPFB or PSFB packet of a validated compound (RFC 4585 §6.1), borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feedback<'a> {
    /// Which feedback message this is.
    pub kind: FeedbackKind,
    /// SSRC of the packet sender.
    pub sender_ssrc: Ssrc,
    /// SSRC of the media source (0 in a FIR, whose entries name the sources).
    pub media_ssrc: Ssrc,
    /// The feedback control information, padding excluded.
    pub fci: &'a [u8],
}

impl<'a> Feedback<'a> {
    /// The feedback packet `packet` of the compound `bytes`; `None` if it is not RTPFB/PSFB or has no
    /// room for the media SSRC.
    pub fn read(bytes: &'a [u8], packet: &RtcpPacketRef) -> Option<Feedback<'a>> {
        let kind = match (packet.kind, packet.count) {
            (RtcpType::TransportFeedback, FMT_GENERIC_NACK) => FeedbackKind::GenericNack,
            (RtcpType::TransportFeedback, FMT_TRANSPORT_CC) => FeedbackKind::TransportCc,
            (RtcpType::PayloadFeedback, FMT_PLI) => FeedbackKind::Pli,
            (RtcpType::PayloadFeedback, FMT_FIR) => FeedbackKind::Fir,
            (RtcpType::TransportFeedback | RtcpType::PayloadFeedback, _) => FeedbackKind::Other,
            _ => return None,
        };
        let body = bytes.get(packet.offset..packet.content_end)?;
        Some(Feedback {
            kind,
            sender_ssrc: Ssrc(read_be_u32(body, 4)?),
            media_ssrc: Ssrc(read_be_u32(body, 8)?),
            fci: body.get(12..)?,
        })
    }

    /// The sequence numbers a generic NACK asks for, in FCI order (empty for any other kind).
    pub fn nack_seqs(&self) -> NackSeqs<'a> {
        let fci = if self.kind == FeedbackKind::GenericNack { self.fci } else { &[] };
        NackSeqs { fci, pid: 0, pending: 0 }
    }

    /// The entries of a FIR (empty for any other kind).
    pub fn fir_entries(&self) -> FirEntries<'a> {
        let fci = if self.kind == FeedbackKind::Fir { self.fci } else { &[] };
        FirEntries { fci }
    }
}

/// Iterator over the sequence numbers of a generic NACK FCI: for each (PID, BLP) entry, PID and then
/// PID + i + 1 for each bit i of BLP set (RFC 4585 §6.2.1). A trailing partial entry is ignored.
#[derive(Clone, Debug)]
pub struct NackSeqs<'a> {
    fci: &'a [u8],
    pid: u16,
    /// Bit 0: PID itself; bit i + 1: BLP bit i. Cleared as they are yielded.
    pending: u32,
}

impl Iterator for NackSeqs<'_> {
    type Item = SeqNo;

    fn next(&mut self) -> Option<SeqNo> {
        loop {
            if self.pending != 0 {
                let bit = self.pending.trailing_zeros();
                self.pending &= self.pending - 1;
                return Some(SeqNo(self.pid.wrapping_add(bit as u16)));
            }
            let (entry, rest) = self.fci.split_first_chunk::<4>()?;
            self.fci = rest;
            self.pid = u16::from_be_bytes([entry[0], entry[1]]);
            self.pending = 1 | u32::from(u16::from_be_bytes([entry[2], entry[3]])) << 1;
        }
    }
}

/// One FIR FCI entry (RFC 5104 §4.3.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirEntry {
    /// The media sender asked for a decoder refresh point.
    pub ssrc: Ssrc,
    /// The request's command sequence number.
    pub seq_nr: u8,
}

/// Iterator over the entries of a FIR FCI; a trailing partial entry is ignored.
#[derive(Clone, Debug)]
pub struct FirEntries<'a> {
    fci: &'a [u8],
}

impl Iterator for FirEntries<'_> {
    type Item = FirEntry;

    fn next(&mut self) -> Option<FirEntry> {
        let (entry, rest) = self.fci.split_first_chunk::<8>()?;
        self.fci = rest;
        Some(FirEntry { ssrc: Ssrc(u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]])), seq_nr: entry[4] })
    }
}

/// Writes a PLI from `sender` about `media` into `buf`; the length written (12), or 0 if it does not fit.
pub fn write_pli(buf: &mut [u8], sender: Ssrc, media: Ssrc) -> usize {
    let Some(out) = buf.get_mut(..PLI_LEN_BYTES) else {
        return 0;
    };
    write_feedback_header(out, FMT_PLI, PT_PSFB, sender, media);
    PLI_LEN_BYTES
}

/// Writes a FIR from `sender` with one entry asking `target` for a refresh with command sequence
/// number `seq_nr`; the media SSRC field is 0 as RFC 5104 §4.3.1.2 requires. The length written (20),
/// or 0 if it does not fit.
pub fn write_fir(buf: &mut [u8], sender: Ssrc, target: Ssrc, seq_nr: u8) -> usize {
    let Some(out) = buf.get_mut(..FIR_LEN_BYTES) else {
        return 0;
    };
    write_feedback_header(out, FMT_FIR, PT_PSFB, sender, Ssrc(0));
    out[12..16].copy_from_slice(&target.0.to_be_bytes());
    out[16..20].copy_from_slice(&[seq_nr, 0, 0, 0]);
    FIR_LEN_BYTES
}

/// The reception status of one packet in a transport-wide feedback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwccStatus {
    /// Not received (no receive delta).
    NotReceived,
    /// Received `delta_250us` × 250 µs after the previous received packet of the feedback (the first:
    /// after the reference time). 0..=255 is sent as a small (1-byte) delta, anything else as large.
    Received {
        /// The receive delta in 250 µs units.
        delta_250us: i16,
    },
}

impl TwccStatus {
    /// The 2-bit status symbol: 0 not received, 1 small delta, 2 large or negative delta.
    fn symbol(self) -> u16 {
        match self {
            TwccStatus::NotReceived => 0,
            TwccStatus::Received { delta_250us: 0..=255 } => 1,
            TwccStatus::Received { .. } => 2,
        }
    }

    fn delta_bytes(self) -> usize {
        self.symbol() as usize
    }
}

/// The fixed fields of a transport-wide feedback packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwccHeader {
    /// SSRC of the feedback's sender.
    pub sender_ssrc: Ssrc,
    /// SSRC of the media source.
    pub media_ssrc: Ssrc,
    /// Transport-wide sequence number of the first status.
    pub base_seq: u16,
    /// Reference time in 64 ms units (24 bits; higher bits are dropped).
    pub reference_time_64ms: u32,
    /// Feedback packet count (wraps).
    pub fb_pkt_count: u8,
}

/// Writes a transport-wide feedback packet (RTPFB FMT 15) with as many of `statuses` (the packets
/// `base_seq`, `base_seq + 1`, ...) as fit in `buf`, padded to 32 bits with RFC 3550 padding (P bit,
/// count in the last byte), as libwebrtc does. Returns `(length written, statuses written)`; `(0, 0)`
/// if `statuses` is empty or not one fits. Chunks: a run-length chunk for a run of 14 or more equal
/// statuses (or the rest of the list), otherwise a 1-bit status vector of 14 when none of them needs
/// a large delta, otherwise a 2-bit vector of 7; unused vector symbols are "not received".
pub fn write_twcc(buf: &mut [u8], header: &TwccHeader, statuses: &[TwccStatus]) -> (usize, usize) {
    let statuses = statuses.get(..statuses.len().min(usize::from(u16::MAX))).unwrap_or(&[]);
    // Raw (unpadded) bytes that still pad to within `buf`.
    let limit_bytes = buf.len() / 4 * 4;
    // Pass 1: how many statuses fit, chunk by chunk. Pass 2 repeats exactly the same calls.
    let (mut covered, mut used_bytes) = (0, TWCC_FIXED_BYTES);
    while let Some((_, n, delta_bytes)) = plan_chunk(&statuses[covered..], limit_bytes.saturating_sub(used_bytes)) {
        covered += n;
        used_bytes += 2 + delta_bytes;
    }
    if covered == 0 {
        return (0, 0);
    }
    let raw_bytes = used_bytes;
    let len_bytes = padded(raw_bytes);
    let Some(out) = buf.get_mut(..len_bytes) else {
        return (0, 0);
    };
    write_feedback_header(out, FMT_TRANSPORT_CC, PT_RTPFB, header.sender_ssrc, header.media_ssrc);
    out[12..14].copy_from_slice(&header.base_seq.to_be_bytes());
    out[14..16].copy_from_slice(&(covered as u16).to_be_bytes());
    let reference_and_count = (header.reference_time_64ms & 0x00ff_ffff) << 8 | u32::from(header.fb_pkt_count);
    out[16..20].copy_from_slice(&reference_and_count.to_be_bytes());
    let (mut written, mut used_bytes, mut pos) = (0, TWCC_FIXED_BYTES, TWCC_FIXED_BYTES);
    while written < covered {
        let Some((chunk, n, delta_bytes)) = plan_chunk(&statuses[written..], limit_bytes.saturating_sub(used_bytes))
        else {
            break; // unreachable: pass 1 made the same calls
        };
        out[pos..pos + 2].copy_from_slice(&chunk.to_be_bytes());
        pos += 2;
        written += n;
        used_bytes += 2 + delta_bytes;
    }
    for status in &statuses[..covered] {
        if let TwccStatus::Received { delta_250us } = *status {
            if status.symbol() == 1 {
                out[pos] = delta_250us as u8;
                pos += 1;
            } else {
                out[pos..pos + 2].copy_from_slice(&delta_250us.to_be_bytes());
                pos += 2;
            }
        }
    }
    let padding = len_bytes - raw_bytes;
    if padding > 0 {
        out[0] |= 0x20;
        out[pos..len_bytes].fill(0);
        out[len_bytes - 1] = padding as u8;
    }
    (len_bytes, covered)
}

/// The next chunk for `rest` (the statuses not yet covered) within `room_bytes` (for the chunk and its
/// deltas): `(chunk, statuses covered, delta bytes)`, shortened to what fits; `None` if nothing fits.
fn plan_chunk(rest: &[TwccStatus], room_bytes: usize) -> Option<(u16, usize, usize)> {
    let room_deltas = room_bytes.checked_sub(2)?;
    if rest.is_empty() {
        return None;
    }
    let (chunk, n) = next_chunk(rest);
    let (mut fit, mut delta_bytes) = (0, 0);
    for status in &rest[..n] {
        if delta_bytes + status.delta_bytes() > room_deltas {
            break;
        }
        delta_bytes += status.delta_bytes();
        fit += 1;
    }
    match fit {
        0 => None,
        _ if fit == n => Some((chunk, n, delta_bytes)),
        // A prefix of a chunk's statuses always makes a chunk covering exactly that prefix.
        _ => Some((next_chunk(&rest[..fit]).0, fit, delta_bytes)),
    }
}

/// The next packet status chunk for the non-empty `statuses` and how many statuses it covers.
fn next_chunk(statuses: &[TwccStatus]) -> (u16, usize) {
    let first = statuses.first().map_or(0, |s| s.symbol());
    let run = statuses.iter().take(TWCC_MAX_RUN).take_while(|s| s.symbol() == first).count();
    if run >= 14 || run == statuses.len() {
        return (first << 13 | run as u16, run);
    }
    let one_bit = statuses.len().min(14);
    if statuses[..one_bit].iter().all(|s| s.symbol() < 2) {
        let chunk = statuses[..one_bit].iter().enumerate().fold(0x8000u16, |c, (i, s)| c | s.symbol() << (13 - i));
        return (chunk, one_bit);
    }
    let two_bit = statuses.len().min(7);
    let chunk = statuses[..two_bit].iter().enumerate().fold(0xc000u16, |c, (i, s)| c | s.symbol() << (12 - 2 * i));
    (chunk, two_bit)
}

/// Reads the transport-wide sequence number (a 16-bit element, draft-holmer §2) with extension id `id`
/// from the RTP header extension block at `extension_offset` of `pkt`: the one-byte form (profile
/// 0xBEDE, ids 1..=14) or the two-byte form (profile 0x100X, ids 1..=255) of RFC 8285. `None` when
/// there is no block, the element is absent or shorter than 2 bytes, or the block is malformed.
pub fn read_transport_seq(pkt: &[u8], extension_offset: Option<usize>, id: u8) -> Option<SeqNo> {
    let offset = extension_offset?;
    let profile = u16::from_be_bytes([*pkt.get(offset)?, *pkt.get(offset + 1)?]);
    let words = usize::from(u16::from_be_bytes([*pkt.get(offset + 2)?, *pkt.get(offset + 3)?]));
    let data = pkt.get(offset + 4..offset + 4 + words * 4)?;
    let two_byte = match profile {
        0xbede => false,
        p if p & 0xfff0 == 0x1000 => true,
        _ => return None,
    };
    let mut pos = 0;
    while let Some(&element_id) = data.get(pos) {
        if element_id == 0 {
            pos += 1; // padding
            continue;
        }
        let (len, header) = if two_byte {
            (usize::from(*data.get(pos + 1)?), 2)
        } else if element_id >> 4 == 15 {
            return None; // reserved id: stop processing (RFC 8285 §4.2)
        } else {
            (usize::from(element_id & 0x0f) + 1, 1)
        };
        let element_id = if two_byte { element_id } else { element_id >> 4 };
        let value = data.get(pos + header..pos + header + len)?;
        if element_id == id {
            return match value {
                [hi, lo, ..] => Some(SeqNo(u16::from_be_bytes([*hi, *lo]))),
                _ => None,
            };
        }
        pos += header + len;
    }
    None
}

fn write_feedback_header(out: &mut [u8], fmt: u8, pt: u8, sender: Ssrc, media: Ssrc) {
    let words = (out.len() / 4 - 1) as u16;
    out[0] = 0x80 | fmt;
    out[1] = pt;
    out[2..4].copy_from_slice(&words.to_be_bytes());
    out[4..8].copy_from_slice(&sender.0.to_be_bytes());
    out[8..12].copy_from_slice(&media.0.to_be_bytes());
}

fn padded(len_bytes: usize) -> usize {
    len_bytes.next_multiple_of(4)
}

/// Helpers shared by the tests of the feedback built-ins (`nack_cache`, `keyframe`, `twcc`,
/// `rate_limit`, `payload_filter`): packets built with the `rtp`/`rtcp` crates and a harness that drives
/// one interceptor on virtual time.
#[cfg(test)]
pub(crate) mod test_support {
    use std::time::{Duration, Instant};

    use webrtc_util::marshal::Marshal;

    use crate::core::interceptor::spec::{NtpEpoch, StreamInfo, SubscriptionInfo};
    use crate::core::interceptor::{
        Context, Interceptor, Outbox, RtcpFrom, RtpAttrs, Scope, Snapshot, Target, Verdict,
    };
    use crate::core::packet::{RtcpCompound, RtpView};
    use crate::core::wire::{RtpTimestamp, Ssrc};

    /// The publisher's SSRC in every test.
    pub const PUBLISHER: Ssrc = Ssrc(0x1111_1111);
    /// The SSRC ringfwd sends feedback with.
    pub const LOCAL: Ssrc = Ssrc(0x2222_2222);
    /// A subscriber's SSRC.
    pub const SUBSCRIBER: Ssrc = Ssrc(0x3333_3333);

    /// What an ingress chain of stream 0 is bound to, with its epoch at `t0`.
    pub fn stream_info(t0: Instant) -> StreamInfo {
        StreamInfo { ssrc: PUBLISHER, clock_rate_hz: 90_000, local_ssrc: LOCAL, epoch: NtpEpoch { at: t0, ntp: 0 } }
    }

    /// A subscription (flow 7) of the publisher.
    pub fn subscription_info(t0: Instant) -> SubscriptionInfo {
        SubscriptionInfo {
            flow: 7,
            source_ssrc: PUBLISHER,
            out_ssrc: Ssrc(0x4444_4444),
            clock_rate_hz: 90_000,
            epoch: NtpEpoch { at: t0, ntp: 0 },
        }
    }

    /// `t0 + ms` milliseconds.
    pub fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Header extensions of a test packet: the profile (0xBEDE or 0x1000) and the (id, value) elements.
    pub type Extensions<'a> = (u16, &'a [(u8, &'a [u8])]);

    /// An RTP packet of the publisher with `payload_bytes` of payload, sequence number `seq`, payload type
    /// `pt` and optional header extensions `(profile, [(id, value)])`.
    pub fn rtp(seq: u16, pt: u8, payload_bytes: usize, extensions: Option<Extensions<'_>>) -> Vec<u8> {
        let mut header = rtp::header::Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: u32::from(seq) * 3000,
            ssrc: PUBLISHER.0,
            ..Default::default()
        };
        if let Some((profile, elements)) = extensions {
            header.extension = true;
            header.extension_profile = profile;
            for (id, value) in elements {
                header.set_extension(*id, bytes::Bytes::copy_from_slice(value)).expect("extension");
            }
        }
        let packet = rtp::packet::Packet { header, payload: vec![0xab; payload_bytes].into() };
        packet.marshal().expect("marshal rtp").to_vec()
    }

    /// The attributes the forwarder would compute for `pkt` (an ingress chain).
    pub fn attrs(pkt: &[u8], ext_seq: u64, arrival: Instant) -> RtpAttrs {
        let view = RtpView::parse(pkt).expect("valid rtp");
        let extension_offset = (pkt[0] & 0x10 != 0).then(|| 12 + 4 * usize::from(pkt[0] & 0x0f));
        RtpAttrs {
            arrival,
            src: std::net::SocketAddr::from(([127, 0, 0, 1], 5000)),
            ssrc: view.ssrc(),
            seq: view.seq(),
            ext_seq,
            timestamp: RtpTimestamp(view.timestamp().0),
            payload_type: view.payload_type(),
            source_payload_type: view.payload_type(),
            marker: view.marker(),
            len_bytes: pkt.len(),
            payload_bytes: view.payload().len(),
            extension_offset,
        }
    }

    /// A compound of `packets`, marshalled by the `rtcp` crate.
    pub fn compound(packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>>) -> Vec<u8> {
        rtcp::packet::marshal(&packets).expect("marshal rtcp").to_vec()
    }

    /// Drives one interceptor on virtual time, keeping its timer and collecting what it emits.
    #[derive(Debug)]
    pub struct Harness {
        /// The chain's scope.
        pub scope: Scope,
        /// Where emissions go (drained by [`Harness::take`]).
        pub outbox: Outbox,
        /// The interceptor's timer.
        pub wake: Option<Instant>,
    }

    impl Harness {
        /// A harness for the ingress chain of stream 0, with an outbox of 64 slots of 1500 bytes.
        pub fn ingress() -> Harness {
            Harness::with_scope(Scope::Stream { stream: 0 })
        }

        /// A harness for the egress chain of subscription 7 of stream 0.
        pub fn egress() -> Harness {
            Harness::with_scope(Scope::Subscription { stream: 0, flow: 7 })
        }

        fn with_scope(scope: Scope) -> Harness {
            Harness { scope, outbox: Outbox::new(64, 1500), wake: None }
        }

        /// Fires the timer while it is due at or before `now` (each firing at its own time).
        pub fn advance(&mut self, interceptor: &mut dyn Interceptor, now: Instant) {
            while let Some(due) = self.wake.filter(|due| *due <= now) {
                self.wake = None;
                let mut ctx = Context::new(due, self.scope, &mut self.outbox, &mut self.wake);
                interceptor.on_timer(&mut ctx);
            }
        }

        /// Fires due timers, then runs `pkt` through `on_rtp` at its arrival time.
        pub fn rtp(&mut self, interceptor: &mut dyn Interceptor, pkt: &[u8], attrs: &RtpAttrs) -> Verdict {
            self.advance(interceptor, attrs.arrival);
            let mut ctx = Context::new(attrs.arrival, self.scope, &mut self.outbox, &mut self.wake);
            interceptor.on_rtp(pkt, attrs, &mut ctx)
        }

        /// Fires due timers, then runs the compound `bytes` from `from` through `on_rtcp` at `now`.
        pub fn rtcp(
            &mut self,
            interceptor: &mut dyn Interceptor,
            bytes: &[u8],
            from: RtcpFrom,
            now: Instant,
        ) -> Verdict {
            self.advance(interceptor, now);
            let compound = RtcpCompound::parse(bytes).expect("valid compound");
            let mut ctx = Context::new(now, self.scope, &mut self.outbox, &mut self.wake);
            interceptor.on_rtcp(&compound, from, &mut ctx)
        }

        /// Everything emitted since the last call, in order.
        pub fn take(&mut self) -> Vec<(Target, Vec<u8>)> {
            let emitted =
                (0..self.outbox.len()).filter_map(|i| self.outbox.get(i)).map(|(t, b)| (t, b.to_vec())).collect();
            self.outbox.clear();
            emitted
        }
    }

    /// The interceptor's snapshot contribution alone.
    pub fn snapshot(interceptor: &dyn Interceptor) -> Snapshot {
        let mut out = Snapshot::default();
        interceptor.snapshot(&mut out);
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use rtcp::payload_feedbacks::full_intra_request::{self, FullIntraRequest};
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::transport_feedbacks::transport_layer_cc::{
        PacketStatusChunk, SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
    };
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    use webrtc_util::marshal::Unmarshal;

    use super::test_support::*;
    use super::*;
    use crate::core::packet::RtcpCompound;

    fn feedbacks(bytes: &[u8]) -> Vec<Feedback<'_>> {
        let compound = RtcpCompound::parse(bytes).expect("valid");
        compound.packets().filter_map(|p| Feedback::read(bytes, &p)).collect()
    }

    #[test]
    fn nack_reader_matches_rtcp_crate() {
        let pairs = vec![
            NackPair { packet_id: 65530, lost_packets: 0b1000_0000_0010_0101 },
            NackPair { packet_id: 7, lost_packets: 0 },
            NackPair { packet_id: 100, lost_packets: 0xffff },
        ];
        let nack = TransportLayerNack { sender_ssrc: SUBSCRIBER.0, media_ssrc: PUBLISHER.0, nacks: pairs.clone() };
        let bytes =
            compound(vec![Box::new(ReceiverReport { ssrc: SUBSCRIBER.0, ..Default::default() }), Box::new(nack)]);
        let found = feedbacks(&bytes);
        assert_eq!(found.len(), 1, "the RR is not feedback");
        assert_eq!(found[0].kind, FeedbackKind::GenericNack);
        assert_eq!((found[0].sender_ssrc, found[0].media_ssrc), (SUBSCRIBER, PUBLISHER));
        let ours: Vec<u16> = found[0].nack_seqs().map(|s| s.0).collect();
        let theirs: Vec<u16> = pairs.iter().flat_map(|p| p.packet_list()).collect();
        assert_eq!(ours, theirs);
        // 65530 + bits 0, 2, 5 (65531, 65533, 0) and bit 15 (65530 + 16 = 10).
        assert_eq!(&ours[..5], &[65530, 65531, 65533, 0, 10]);
        assert_eq!(ours.len(), 5 + 1 + 17);
        assert_eq!(found[0].fir_entries().count(), 0);
    }

    #[test]
    fn pli_round_trips_with_rtcp_crate() {
        let mut buf = [0u8; 64];
        assert_eq!(write_pli(&mut buf[..11], LOCAL, PUBLISHER), 0, "too small");
        let len = write_pli(&mut buf, LOCAL, PUBLISHER);
        let parsed = PictureLossIndication::unmarshal(&mut &buf[..len]).expect("rtcp parses our PLI");
        assert_eq!((parsed.sender_ssrc, parsed.media_ssrc), (LOCAL.0, PUBLISHER.0));
        let theirs = compound(vec![Box::new(PictureLossIndication { sender_ssrc: 5, media_ssrc: 6 })]);
        let found = feedbacks(&theirs);
        assert_eq!(found[0].kind, FeedbackKind::Pli);
        assert_eq!((found[0].sender_ssrc, found[0].media_ssrc, found[0].fci), (Ssrc(5), Ssrc(6), &[][..]));
        assert_eq!(found[0].nack_seqs().count(), 0, "a PLI has no NACK items");
    }

    #[test]
    fn fir_round_trips_with_rtcp_crate() {
        let mut buf = [0u8; 64];
        assert_eq!(write_fir(&mut buf[..19], LOCAL, PUBLISHER, 1), 0, "too small");
        let len = write_fir(&mut buf, LOCAL, PUBLISHER, 201);
        let parsed = FullIntraRequest::unmarshal(&mut &buf[..len]).expect("rtcp parses our FIR");
        assert_eq!((parsed.sender_ssrc, parsed.media_ssrc), (LOCAL.0, 0));
        assert_eq!(parsed.fir, vec![full_intra_request::FirEntry { ssrc: PUBLISHER.0, sequence_number: 201 }]);
        let theirs = compound(vec![Box::new(FullIntraRequest {
            sender_ssrc: 5,
            media_ssrc: 0,
            fir: vec![
                full_intra_request::FirEntry { ssrc: 9, sequence_number: 3 },
                full_intra_request::FirEntry { ssrc: 10, sequence_number: 255 },
            ],
        })]);
        let found = feedbacks(&theirs);
        assert_eq!(found[0].kind, FeedbackKind::Fir);
        let entries: Vec<_> = found[0].fir_entries().collect();
        assert_eq!(entries, [FirEntry { ssrc: Ssrc(9), seq_nr: 3 }, FirEntry { ssrc: Ssrc(10), seq_nr: 255 }]);
    }

    /// The statuses and deltas (250 µs units) the `rtcp` crate reads from a TWCC packet.
    pub(crate) fn decode_twcc(parsed: &TransportLayerCc) -> Vec<Option<i64>> {
        let mut symbols = Vec::new();
        for chunk in &parsed.packet_chunks {
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
        symbols.truncate(usize::from(parsed.packet_status_count));
        let mut deltas = parsed.recv_deltas.iter();
        symbols
            .into_iter()
            .map(|s| match s {
                SymbolTypeTcc::PacketNotReceived => None,
                _ => Some(deltas.next().expect("a delta per received packet").delta / 250),
            })
            .collect()
    }

    fn expected(statuses: &[TwccStatus]) -> Vec<Option<i64>> {
        statuses
            .iter()
            .map(|s| match s {
                TwccStatus::NotReceived => None,
                TwccStatus::Received { delta_250us } => Some(i64::from(*delta_250us)),
            })
            .collect()
    }

    #[test]
    fn twcc_writer_round_trips_with_rtcp_crate() {
        use TwccStatus::*;
        let mut statuses = vec![Received { delta_250us: 3 }, NotReceived, NotReceived, Received { delta_250us: 255 }];
        statuses.extend(std::iter::repeat_n(Received { delta_250us: 1 }, 20)); // a run
        statuses.extend([Received { delta_250us: -4 }, Received { delta_250us: 256 }, NotReceived]); // 2-bit
        statuses.extend(std::iter::repeat_n(NotReceived, 30));
        statuses.push(Received { delta_250us: i16::MAX });
        let header = TwccHeader {
            sender_ssrc: LOCAL,
            media_ssrc: PUBLISHER,
            base_seq: 65_530,
            reference_time_64ms: 0x0123_4567,
            fb_pkt_count: 9,
        };
        let mut buf = [0u8; 1500];
        let (len, written) = write_twcc(&mut buf, &header, &statuses);
        assert_eq!(written, statuses.len());
        assert_eq!(len % 4, 0);
        assert!(RtcpCompound::parse(&buf[..len]).is_ok(), "valid for our own walker");
        let parsed = TransportLayerCc::unmarshal(&mut &buf[..len]).expect("rtcp parses our TWCC");
        assert_eq!((parsed.sender_ssrc, parsed.media_ssrc), (LOCAL.0, PUBLISHER.0));
        assert_eq!(parsed.base_sequence_number, 65_530);
        assert_eq!(parsed.packet_status_count as usize, statuses.len());
        assert_eq!(parsed.reference_time, 0x23_4567, "24 bits");
        assert_eq!(parsed.fb_pkt_count, 9);
        assert_eq!(decode_twcc(&parsed), expected(&statuses));
        let runs: Vec<_> = parsed
            .packet_chunks
            .iter()
            .filter_map(|c| match c {
                PacketStatusChunk::RunLengthChunk(run) => Some(run.run_length),
                PacketStatusChunk::StatusVectorChunk(_) => None,
            })
            .collect();
        assert_eq!(runs, [29, 1], "the long loss is one run-length chunk; so is the single last packet");
    }

    #[test]
    fn twcc_writer_stops_at_the_buffer_end() {
        let statuses = vec![TwccStatus::Received { delta_250us: -1 }; 100]; // 2 bytes each
        let header = TwccHeader {
            sender_ssrc: LOCAL,
            media_ssrc: PUBLISHER,
            base_seq: 1,
            reference_time_64ms: 0,
            fb_pkt_count: 0,
        };
        let mut buf = [0u8; 64];
        let (len, written) = write_twcc(&mut buf, &header, &statuses);
        assert_eq!(len, 64);
        assert_eq!(written, 21, "20 fixed + 2 (one run chunk) + 21 × 2 = 64");
        let parsed = TransportLayerCc::unmarshal(&mut &buf[..len]).expect("parses");
        assert_eq!(decode_twcc(&parsed), expected(&statuses[..21]));
        assert_eq!(write_twcc(&mut buf[..23], &header, &statuses), (0, 0), "not one fits");
        assert_eq!(write_twcc(&mut buf, &header, &[]), (0, 0));
    }

    #[test]
    fn transport_seq_from_one_and_two_byte_extensions() {
        let one = rtp(1, 96, 10, Some((0xbede, &[(3, &[0xaa][..]), (5, &[0x12, 0x34][..]), (7, &[1, 2, 3][..])])));
        let offset = Some(12);
        assert_eq!(read_transport_seq(&one, offset, 5), Some(SeqNo(0x1234)));
        assert_eq!(read_transport_seq(&one, offset, 3), None, "one byte is too short for a sequence number");
        assert_eq!(read_transport_seq(&one, offset, 4), None, "absent");
        assert_eq!(read_transport_seq(&one, None, 5), None, "no extension block");
        let two = rtp(1, 96, 10, Some((0x1000, &[(200, &[]), (17, &[0xfe, 0xdc][..])])));
        assert_eq!(read_transport_seq(&two, offset, 17), Some(SeqNo(0xfedc)));
        assert_eq!(read_transport_seq(&two, offset, 200), None, "empty element");
        let mut other_profile = one.clone();
        other_profile[12] = 0x12;
        assert_eq!(read_transport_seq(&other_profile, offset, 5), None);
        let mut too_long = one.clone();
        too_long[15] = 200; // block length beyond the packet
        assert_eq!(read_transport_seq(&too_long, offset, 5), None);
        // A reserved id 15 stops the one-byte walk.
        let stop = [0xbe, 0xde, 0, 1, 0xf0, 0x51, 0x12, 0x34];
        assert_eq!(read_transport_seq(&stop, Some(0), 5), None);
        let padded = [0xbe, 0xde, 0, 1, 0x00, 0x51, 0x12, 0x34];
        assert_eq!(read_transport_seq(&padded, Some(0), 5), Some(SeqNo(0x1234)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic_any_reader(bytes in proptest::collection::vec(any::<u8>(), 0..200), id in 0u8..=255, offset in 0usize..220) {
            let _ = read_transport_seq(&bytes, Some(offset), id);
            // Feedback-shaped compounds: random FMT and body behind a valid header.
            for (pt, fmt) in [(205u8, 1u8), (205, 15), (206, 1), (206, 4), (205, 3)] {
                let mut pkt = vec![0x80 | fmt, pt, 0, (bytes.len() / 4 + 2) as u8];
                pkt.extend_from_slice(&[0; 8]);
                pkt.extend_from_slice(&bytes[..bytes.len() / 4 * 4]);
                if let Ok(compound) = RtcpCompound::parse(&pkt) {
                    for packet in compound.packets() {
                        if let Some(fb) = Feedback::read(&pkt, &packet) {
                            prop_assert!(fb.nack_seqs().count() <= 17 * fb.fci.len() / 4);
                            prop_assert_eq!(fb.fir_entries().count(), if fb.kind == FeedbackKind::Fir { fb.fci.len() / 8 } else { 0 });
                        }
                    }
                }
            }
            if let Ok(compound) = RtcpCompound::parse(&bytes) {
                for packet in compound.packets() {
                    if let Some(fb) = Feedback::read(&bytes, &packet) {
                        let _ = (fb.nack_seqs().count(), fb.fir_entries().count());
                    }
                }
            }
        }

        #[test]
        fn twcc_any_statuses_round_trip(raw in proptest::collection::vec(prop_oneof![Just(None), (0i16..=255).prop_map(Some), any::<i16>().prop_map(Some)], 1..400), base: u16, size in 40usize..1500) {
            let mut statuses: Vec<TwccStatus> = raw.iter().map(|s| match s {
                None => TwccStatus::NotReceived,
                Some(d) => TwccStatus::Received { delta_250us: *d },
            }).collect();
            statuses.push(TwccStatus::Received { delta_250us: 1 }); // at least one delta follows the chunks
            let header = TwccHeader { sender_ssrc: LOCAL, media_ssrc: PUBLISHER, base_seq: base, reference_time_64ms: 5, fb_pkt_count: 1 };
            let mut buf = vec![0u8; size];
            let (len, written) = write_twcc(&mut buf, &header, &statuses);
            prop_assert!(len <= size && len % 4 == 0);
            if written > 0 && statuses[..written].iter().any(|s| *s != TwccStatus::NotReceived) {
                let parsed = TransportLayerCc::unmarshal(&mut &buf[..len]).expect("parses");
                prop_assert_eq!(decode_twcc(&parsed), expected(&statuses[..written]));
                prop_assert!(RtcpCompound::parse(&buf[..len]).is_ok());
            }
        }
    }
}
