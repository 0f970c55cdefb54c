//! Hand-written RTCP report and generic NACK wire formats, written into caller slots and read from
//! validated compounds without copying.
//!
//! Owns the writers of the sender report (RFC 3550 §6.4.1, with zero or one report block), the
//! receiver report (§6.4.2, one block) and the generic NACK (RFC 4585 §6.2.1), the [`ReportBlock`]
//! and [`SenderInfo`] types, and the readers that walk an [`RtcpCompound`] for the sender info and the
//! report blocks of SR/RR packets (feedback readers live in [`super::wire_feedback`]). The `rtcp` crate
//! allocates per packet, so it only checks these in tests. Must never allocate, and never panic whatever the bytes:
//! writers return 0 when the slot is too small, readers use checked slicing.

use crate::core::packet::{
    read_be_u32, RtcpCompound, RtcpPackets, RtcpType, FMT_GENERIC_NACK, PT_RECEIVER_REPORT, PT_RTPFB, PT_SENDER_REPORT,
};
use crate::core::wire::{RtpTimestamp, SeqNo, Ssrc};

/// Bytes of a sender report without report blocks: header, sender SSRC and the 20-byte sender info.
pub const SENDER_REPORT_BYTES: usize = 28;
/// Bytes of a receiver report header with its sender SSRC, without report blocks.
pub const RECEIVER_REPORT_BYTES: usize = 8;
/// Bytes of one report block.
pub const REPORT_BLOCK_BYTES: usize = 24;
/// Bytes of a feedback header (common header, sender SSRC, media SSRC) before the FCI.
const FEEDBACK_HEADER_BYTES: usize = 12;
/// Bytes of one generic NACK FCI entry (PID + BLP).
const NACK_ENTRY_BYTES: usize = 4;

/// Largest cumulative loss a report block can carry (24-bit signed).
const MAX_CUMULATIVE_LOST: i32 = 0x7f_ffff;
/// Smallest cumulative loss a report block can carry (24-bit signed).
const MIN_CUMULATIVE_LOST: i32 = -0x80_0000;

/// One reception report block (RFC 3550 §6.4.1): what a receiver says about one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: Ssrc,
    /// Fraction lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire; clamped to it when written).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub extended_highest_seq: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source (LSR); 0: none.
    pub last_sr: u32,
    /// Delay since that SR was received, in 1/65536 s (DLSR); 0 when there is no LSR.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// Writes the block into `out` (at least [`REPORT_BLOCK_BYTES`]); returns the bytes written, 0 if
    /// `out` is too short.
    pub fn write(&self, out: &mut [u8]) -> usize {
        let Some(out) = out.get_mut(..REPORT_BLOCK_BYTES) else {
            return 0;
        };
        let lost = self.cumulative_lost.clamp(MIN_CUMULATIVE_LOST, MAX_CUMULATIVE_LOST) as u32;
        out[0..4].copy_from_slice(&self.ssrc.0.to_be_bytes());
        out[4..8].copy_from_slice(&(u32::from(self.fraction_lost) << 24 | (lost & 0xff_ffff)).to_be_bytes());
        out[8..12].copy_from_slice(&self.extended_highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
        REPORT_BLOCK_BYTES
    }

    /// Reads a block from the first [`REPORT_BLOCK_BYTES`] of `bytes`; None if shorter.
    pub fn read(bytes: &[u8]) -> Option<ReportBlock> {
        let block = bytes.get(..REPORT_BLOCK_BYTES)?;
        let word = |at: usize| u32::from_be_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]);
        let loss_word = word(4);
        Some(ReportBlock {
            ssrc: Ssrc(word(0)),
            fraction_lost: (loss_word >> 24) as u8,
            // Sign-extend the low 24 bits.
            cumulative_lost: ((loss_word << 8) as i32) >> 8,
            extended_highest_seq: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        })
    }
}

/// The sender part of a sender report (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderInfo {
    /// The sender's SSRC.
    pub ssrc: Ssrc,
    /// Wall-clock time of the report, 64-bit NTP.
    pub ntp: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_time: RtpTimestamp,
    /// RTP packets sent since the start (wraps).
    pub packet_count: u32,
    /// RTP payload octets sent since the start (wraps).
    pub octet_count: u32,
}

impl SenderInfo {
    /// The middle 32 bits of the NTP timestamp: what a receiver echoes as LSR.
    pub fn compact_ntp(&self) -> u32 {
        compact_ntp(self.ntp)
    }
}

/// The middle 32 bits of a 64-bit NTP timestamp (16.16 fixed-point seconds), as LSR and DLSR use.
pub fn compact_ntp(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Writes the common RTCP header: version 2, no padding, `count`, `pt` and the length of `len_bytes`
/// (a multiple of 4, at least 4, at most what `out` holds: the callers check).
fn write_header(out: &mut [u8], count: u8, pt: u8, len_bytes: usize) {
    out[0] = 0x80 | (count & 0x1f);
    out[1] = pt;
    out[2..4].copy_from_slice(&((len_bytes / 4 - 1) as u16).to_be_bytes());
}

/// Writes a sender report from `sender` with `block` (if any) into `slot`; returns its length, 0 if
/// the slot is too short.
pub fn write_sender_report(slot: &mut [u8], sender: &SenderInfo, block: Option<&ReportBlock>) -> usize {
    let len_bytes = SENDER_REPORT_BYTES + if block.is_some() { REPORT_BLOCK_BYTES } else { 0 };
    let Some(out) = slot.get_mut(..len_bytes) else {
        return 0;
    };
    write_header(out, u8::from(block.is_some()), PT_SENDER_REPORT, len_bytes);
    out[4..8].copy_from_slice(&sender.ssrc.0.to_be_bytes());
    out[8..16].copy_from_slice(&sender.ntp.to_be_bytes());
    out[16..20].copy_from_slice(&sender.rtp_time.0.to_be_bytes());
    out[20..24].copy_from_slice(&sender.packet_count.to_be_bytes());
    out[24..28].copy_from_slice(&sender.octet_count.to_be_bytes());
    if let Some(block) = block {
        block.write(&mut out[SENDER_REPORT_BYTES..]);
    }
    len_bytes
}

/// Writes a receiver report from `sender` with one `block` into `slot`; returns its length, 0 if the
/// slot is too short.
pub fn write_receiver_report(slot: &mut [u8], sender: Ssrc, block: &ReportBlock) -> usize {
    let len_bytes = RECEIVER_REPORT_BYTES + REPORT_BLOCK_BYTES;
    let Some(out) = slot.get_mut(..len_bytes) else {
        return 0;
    };
    write_header(out, 1, PT_RECEIVER_REPORT, len_bytes);
    out[4..8].copy_from_slice(&sender.0.to_be_bytes());
    block.write(&mut out[RECEIVER_REPORT_BYTES..]);
    len_bytes
}

/// What [`write_generic_nack`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NackWritten {
    /// The packet length in bytes (0: nothing written).
    pub len_bytes: usize,
    /// How many of the sequence numbers given (from the first, in order) the packet carries; the rest
    /// did not fit in the slot.
    pub seqs_written: usize,
}

/// Writes a generic NACK (RFC 4585 §6.2.1) from `sender` about `media` asking for `missing` into
/// `slot`. Consecutive numbers within 16 after an entry's PID share its BLP; give them in ascending
/// (serial) order for the fewest entries. Stops at the first number that no longer fits in the slot.
pub fn write_generic_nack(
    slot: &mut [u8],
    sender: Ssrc,
    media: Ssrc,
    missing: impl IntoIterator<Item = SeqNo>,
) -> NackWritten {
    let max_entries = slot.len().saturating_sub(FEEDBACK_HEADER_BYTES) / NACK_ENTRY_BYTES;
    let mut entries = 0usize;
    let mut seqs_written = 0usize;
    let mut current: Option<(SeqNo, u16)> = None;
    for seq in missing {
        if let Some((pid, blp)) = current.as_mut() {
            let distance = seq.distance(*pid);
            if distance == 0 {
                seqs_written += 1;
                continue;
            }
            if distance <= 16 {
                *blp |= 1 << (distance - 1);
                seqs_written += 1;
                continue;
            }
        }
        // `seq` starts a new entry: flush the current one, if there is room for another after it.
        if entries == max_entries {
            break;
        }
        if let Some((pid, blp)) = current {
            write_nack_entry(slot, entries - 1, pid, blp);
        }
        entries += 1;
        current = Some((seq, 0));
        seqs_written += 1;
    }
    let Some((pid, blp)) = current else {
        return NackWritten::default();
    };
    write_nack_entry(slot, entries - 1, pid, blp);
    let len_bytes = FEEDBACK_HEADER_BYTES + entries * NACK_ENTRY_BYTES;
    write_header(slot, FMT_GENERIC_NACK, PT_RTPFB, len_bytes);
    slot[4..8].copy_from_slice(&sender.0.to_be_bytes());
    slot[8..12].copy_from_slice(&media.0.to_be_bytes());
    NackWritten { len_bytes, seqs_written }
}

/// Writes FCI entry `index` (the caller checked it fits).
fn write_nack_entry(slot: &mut [u8], index: usize, pid: SeqNo, blp: u16) {
    let at = FEEDBACK_HEADER_BYTES + index * NACK_ENTRY_BYTES;
    slot[at..at + 2].copy_from_slice(&pid.0.to_be_bytes());
    slot[at + 2..at + 4].copy_from_slice(&blp.to_be_bytes());
}

/// The sender info of the first sender report in `compound`, if it has one.
pub fn sender_info(compound: &RtcpCompound<'_>) -> Option<SenderInfo> {
    let bytes = compound.bytes();
    let packet = compound.packets().find(|packet| packet.kind == RtcpType::SenderReport)?;
    let at = packet.offset;
    Some(SenderInfo {
        ssrc: Ssrc(read_be_u32(bytes, at + 4)?),
        ntp: u64::from(read_be_u32(bytes, at + 8)?) << 32 | u64::from(read_be_u32(bytes, at + 12)?),
        rtp_time: RtpTimestamp(read_be_u32(bytes, at + 16)?),
        packet_count: read_be_u32(bytes, at + 20)?,
        octet_count: read_be_u32(bytes, at + 24)?,
    })
}

/// Every report block of the SR and RR packets of `compound`, in order, with the reporter's SSRC.
pub fn report_blocks<'a>(compound: &RtcpCompound<'a>) -> ReportBlocks<'a> {
    ReportBlocks { bytes: compound.bytes(), packets: compound.packets(), reporter: Ssrc(0), next: 0, remaining: 0 }
}

/// Iterator over the report blocks of a compound: `(reporter SSRC, block)`.
#[derive(Clone, Debug)]
pub struct ReportBlocks<'a> {
    bytes: &'a [u8],
    packets: RtcpPackets<'a>,
    reporter: Ssrc,
    next: usize,
    remaining: u8,
}

impl Iterator for ReportBlocks<'_> {
    type Item = (Ssrc, ReportBlock);

    fn next(&mut self) -> Option<(Ssrc, ReportBlock)> {
        loop {
            if self.remaining > 0 {
                self.remaining -= 1;
                let block = self.bytes.get(self.next..).and_then(ReportBlock::read);
                self.next += REPORT_BLOCK_BYTES;
                match block {
                    Some(block) => return Some((self.reporter, block)),
                    // Cannot happen in a validated compound; stop this packet rather than read garbage.
                    None => self.remaining = 0,
                }
                continue;
            }
            let packet = self.packets.next()?;
            let first_block = match packet.kind {
                RtcpType::SenderReport => SENDER_REPORT_BYTES,
                RtcpType::ReceiverReport => RECEIVER_REPORT_BYTES,
                _ => continue,
            };
            self.reporter = Ssrc(read_be_u32(self.bytes, packet.offset + 4).unwrap_or(0));
            self.next = packet.offset + first_block;
            self.remaining = packet.count;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;
    use rtcp::packet::Packet;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    use webrtc_util::marshal::Unmarshal;

    use super::super::wire_feedback::{Feedback, FeedbackKind};
    use super::*;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: Ssrc(0x1122_3344),
            fraction_lost: 77,
            cumulative_lost: 123_456,
            extended_highest_seq: 0x0003_fff0,
            jitter: 4321,
            last_sr: 0xabcd_ef01,
            delay_since_last_sr: 65_536 * 3,
        }
    }

    fn assert_same_block(ours: &ReportBlock, theirs: &ReceptionReport) {
        assert_eq!(theirs.ssrc, ours.ssrc.0);
        assert_eq!(theirs.fraction_lost, ours.fraction_lost);
        assert_eq!(theirs.total_lost, (ours.cumulative_lost as u32) & 0xff_ffff);
        assert_eq!(theirs.last_sequence_number, ours.extended_highest_seq);
        assert_eq!(theirs.jitter, ours.jitter);
        assert_eq!(theirs.last_sender_report, ours.last_sr);
        assert_eq!(theirs.delay, ours.delay_since_last_sr);
    }

    #[test]
    fn sender_report_parses_with_rtcp() {
        let sender = SenderInfo {
            ssrc: Ssrc(0xdead_beef),
            ntp: 0xe5f0_1234_8000_0001,
            rtp_time: RtpTimestamp(0xffff_fff0),
            packet_count: 1000,
            octet_count: 1_200_000,
        };
        let mut slot = [0u8; 128];
        for with_block in [false, true] {
            let ours = block();
            let len = write_sender_report(&mut slot, &sender, with_block.then_some(&ours));
            assert_eq!(len, if with_block { 52 } else { 28 });
            let sr = SenderReport::unmarshal(&mut Bytes::copy_from_slice(&slot[..len])).expect("rtcp parses it");
            assert_eq!(sr.ssrc, sender.ssrc.0);
            assert_eq!(sr.ntp_time, sender.ntp);
            assert_eq!(sr.rtp_time, sender.rtp_time.0);
            assert_eq!(sr.packet_count, sender.packet_count);
            assert_eq!(sr.octet_count, sender.octet_count);
            assert_eq!(sr.reports.len(), usize::from(with_block));
            if with_block {
                assert_same_block(&ours, &sr.reports[0]);
            }
            let compound = RtcpCompound::parse(&slot[..len]).expect("valid compound");
            assert_eq!(sender_info(&compound), Some(sender));
        }
        assert_eq!(write_sender_report(&mut slot[..51], &sender, Some(&block())), 0, "slot too short");
    }

    #[test]
    fn receiver_report_parses_with_rtcp_and_clamps_loss() {
        let mut slot = [0u8; 64];
        let mut ours = block();
        for (lost, wire) in [(-5, 0xff_fffb), (9_000_000, 0x7f_ffff), (-9_000_000, 0x80_0000), (0, 0)] {
            ours.cumulative_lost = lost;
            let len = write_receiver_report(&mut slot, Ssrc(42), &ours);
            assert_eq!(len, 32);
            let rr = ReceiverReport::unmarshal(&mut Bytes::copy_from_slice(&slot[..len])).expect("rtcp parses it");
            assert_eq!(rr.ssrc, 42);
            assert_eq!(rr.reports.len(), 1);
            assert_eq!(rr.reports[0].total_lost, wire);
            let read = ReportBlock::read(&slot[8..]).expect("fits");
            assert_eq!(read.cumulative_lost, lost.clamp(MIN_CUMULATIVE_LOST, MAX_CUMULATIVE_LOST));
        }
        assert_eq!(write_receiver_report(&mut slot[..31], Ssrc(42), &ours), 0);
    }

    #[test]
    fn readers_walk_compounds_built_by_rtcp() {
        let report = |ssrc: u32, lost: u32| ReceptionReport {
            ssrc,
            fraction_lost: 3,
            total_lost: lost,
            last_sequence_number: 70_000,
            jitter: 90,
            last_sender_report: 0x1234_5678,
            delay: 6553,
        };
        let packets: Vec<Box<dyn Packet + Send + Sync>> = vec![
            Box::new(SenderReport {
                ssrc: 7,
                ntp_time: 0x0102_0304_0506_0708,
                rtp_time: 99,
                packet_count: 5,
                octet_count: 500,
                reports: vec![report(1, 10), report(2, 0xff_ffff)],
                ..Default::default()
            }),
            Box::new(ReceiverReport { ssrc: 8, reports: vec![report(3, 4)], ..Default::default() }),
            Box::new(TransportLayerNack {
                sender_ssrc: 8,
                media_ssrc: 7,
                nacks: vec![
                    NackPair { packet_id: 100, lost_packets: 0b101 },
                    NackPair { packet_id: 200, lost_packets: 0 },
                ],
            }),
        ];
        let bytes = rtcp::packet::marshal(&packets).expect("marshal");
        let compound = RtcpCompound::parse(&bytes).expect("valid");
        let info = sender_info(&compound).expect("has an SR");
        assert_eq!(
            info,
            SenderInfo {
                ssrc: Ssrc(7),
                ntp: 0x0102_0304_0506_0708,
                rtp_time: RtpTimestamp(99),
                packet_count: 5,
                octet_count: 500
            }
        );
        assert_eq!(info.compact_ntp(), 0x0304_0506);
        let blocks: Vec<_> =
            report_blocks(&compound).map(|(reporter, b)| (reporter.0, b.ssrc.0, b.cumulative_lost)).collect();
        assert_eq!(blocks, vec![(7, 1, 10), (7, 2, -1), (8, 3, 4)]);
    }

    #[test]
    fn generic_nack_packs_and_parses_with_rtcp() {
        let mut slot = [0u8; 256];
        let missing = [65_530u16, 65_531, 65_535, 0, 10, 11, 200, 216, 217];
        let written = write_generic_nack(&mut slot, Ssrc(1), Ssrc(2), missing.iter().map(|&s| SeqNo(s)));
        assert_eq!(written.seqs_written, missing.len());
        // 65530 covers up to 65530+16 = 10 (wrapping); 11 starts a new one; 200 covers 216; 217 new.
        assert_eq!(written.len_bytes, 12 + 4 * 4);
        let nack =
            TransportLayerNack::unmarshal(&mut Bytes::copy_from_slice(&slot[..written.len_bytes])).expect("parses");
        assert_eq!((nack.sender_ssrc, nack.media_ssrc), (1, 2));
        let asked: Vec<u16> = nack.nacks.iter().flat_map(|pair| pair.packet_list()).collect();
        assert_eq!(asked, missing);
        assert_eq!(nack.nacks[0].packet_id, 65_530);
        assert_eq!(nack.nacks[0].lost_packets, 1 | 1 << 4 | 1 << 5 | 1 << 15);

        // Only two entries fit: the numbers of the third are left for the caller.
        let written = write_generic_nack(&mut slot[..20], Ssrc(1), Ssrc(2), missing.iter().map(|&s| SeqNo(s)));
        assert_eq!(written, NackWritten { len_bytes: 20, seqs_written: 6 });
        assert_eq!(write_generic_nack(&mut slot, Ssrc(1), Ssrc(2), []), NackWritten::default());
        assert_eq!(write_generic_nack(&mut slot[..15], Ssrc(1), Ssrc(2), [SeqNo(1)]), NackWritten::default());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ReportBlock::read(&bytes);
            if let Ok(compound) = RtcpCompound::parse(&bytes) {
                let _ = sender_info(&compound);
                prop_assert!(report_blocks(&compound).count() <= bytes.len() / REPORT_BLOCK_BYTES);
            }
        }

        #[test]
        fn report_like_bytes_never_panic(pt in 200u8..=205, count in 0u8..32, tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = vec![0x80 | count, pt, 0, (tail.len() / 4) as u8];
            bytes.extend_from_slice(&tail);
            if let Ok(compound) = RtcpCompound::parse(&bytes) {
                let _ = sender_info(&compound);
                let _ = report_blocks(&compound).count();
            }
        }

        #[test]
        fn nack_round_trips(start: u16, steps in proptest::collection::vec(1u16..40, 1..60)) {
            let mut seqs = vec![SeqNo(start)];
            for step in steps {
                let last = *seqs.last().expect("non-empty");
                seqs.push(last.add(step));
            }
            let mut slot = [0u8; 1500];
            let written = write_generic_nack(&mut slot, Ssrc(5), Ssrc(6), seqs.iter().copied());
            prop_assert_eq!(written.seqs_written, seqs.len());
            let compound = RtcpCompound::parse(&slot[..written.len_bytes]).expect("valid");
            let packet = compound.packets().next().expect("one packet");
            let nack = Feedback::read(compound.bytes(), &packet).expect("a NACK");
            prop_assert_eq!((nack.kind, nack.sender_ssrc, nack.media_ssrc), (FeedbackKind::GenericNack, Ssrc(5), Ssrc(6)));
            prop_assert_eq!(nack.nack_seqs().collect::<Vec<_>>(), seqs.clone());
            let parsed = TransportLayerNack::unmarshal(&mut Bytes::copy_from_slice(&slot[..written.len_bytes])).expect("parses");
            let asked: Vec<u16> = parsed.nacks.iter().flat_map(|pair| pair.packet_list()).collect();
            prop_assert_eq!(asked, seqs.iter().map(|s| s.0).collect::<Vec<_>>());
        }
    }
}
