//! The RTCP compound validator and walker, written over the byte slice.
//!
//! Owns [`RtcpCompound`] (validation of a whole compound, RFC 3550 §6.1), [`RtcpPacketRef`] (typed
//! offsets of one packet), [`RtcpPackets`] and [`SdesChunks`] (iterators). It hands out offsets, not
//! copies, because the forwarder patches SSRC fields in place; the `rtcp` crate allocates per packet.
//! Must never copy, allocate or panic, whatever the input bytes are.

use super::{be_u32, PacketError};
use crate::core::wire::Ssrc;

/// Packet type of a sender report (RFC 3550 §6.4.1).
pub const PT_SENDER_REPORT: u8 = 200;
/// Packet type of a receiver report (RFC 3550 §6.4.2).
pub const PT_RECEIVER_REPORT: u8 = 201;
/// Packet type of transport-layer feedback, RTPFB (RFC 4585 §6.1).
pub const PT_RTPFB: u8 = 205;
/// Packet type of payload-specific feedback, PSFB (RFC 4585 §6.1).
pub const PT_PSFB: u8 = 206;
/// RTPFB format of a generic NACK (RFC 4585 §6.2.1).
pub const FMT_GENERIC_NACK: u8 = 1;
/// RTPFB format of transport-wide congestion control feedback (draft-holmer §3.1).
pub const FMT_TRANSPORT_CC: u8 = 15;
/// PSFB format of a Picture Loss Indication (RFC 4585 §6.3.1).
pub const FMT_PLI: u8 = 1;
/// PSFB format of a Full Intra Request (RFC 5104 §4.3.1).
pub const FMT_FIR: u8 = 4;

/// RTCP packet types (RFC 3550 §12.1, RFC 4585, RFC 3611).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpType {
    /// 200 SR.
    SenderReport,
    /// 201 RR.
    ReceiverReport,
    /// 202 SDES.
    SourceDescription,
    /// 203 BYE.
    Goodbye,
    /// 204 APP.
    App,
    /// 205 RTPFB (generic NACK, TWCC, ...).
    TransportFeedback,
    /// 206 PSFB (PLI, FIR, REMB, ...).
    PayloadFeedback,
    /// 207 XR.
    ExtendedReport,
    /// Any other type in 192..=223.
    Other(u8),
}

impl RtcpType {
    fn from_byte(pt: u8) -> RtcpType {
        match pt {
            200 => RtcpType::SenderReport,
            201 => RtcpType::ReceiverReport,
            202 => RtcpType::SourceDescription,
            203 => RtcpType::Goodbye,
            204 => RtcpType::App,
            205 => RtcpType::TransportFeedback,
            206 => RtcpType::PayloadFeedback,
            207 => RtcpType::ExtendedReport,
            other => RtcpType::Other(other),
        }
    }

    /// The smallest length in bytes (header included) a packet of this type may have, beyond what its
    /// count field requires: SR needs its sender info, the rest that have a sender SSRC need it.
    fn min_len_bytes(self) -> usize {
        match self {
            RtcpType::SenderReport => 28,
            RtcpType::ReceiverReport
            | RtcpType::App
            | RtcpType::TransportFeedback
            | RtcpType::PayloadFeedback
            | RtcpType::ExtendedReport => 8,
            RtcpType::SourceDescription | RtcpType::Goodbye | RtcpType::Other(_) => 4,
        }
    }
}

/// One packet of a validated compound, as offsets into the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcpPacketRef {
    /// Where the packet's header starts.
    pub offset: usize,
    /// The packet length in bytes, header and padding included (`(length field + 1) * 4`).
    pub len_bytes: usize,
    /// Payload end (exclusive, absolute): `offset + len_bytes` minus the padding.
    pub content_end: usize,
    /// The packet type.
    pub kind: RtcpType,
    /// The 5-bit count field (report count, source count or FMT).
    pub count: u8,
}

/// A validated RTCP compound packet (RFC 3550 §6.1): every packet is version 2, its length fits, only
/// the last is padded, the packets cover the datagram exactly, the first has an SSRC at bytes 4..8,
/// and the per-type structure the rewriter touches (SR sender info, RR/feedback/APP/XR sender SSRC,
/// BYE source list, SDES chunks) fits inside each packet.
#[derive(Clone, Copy, Debug)]
pub struct RtcpCompound<'a> {
    bytes: &'a [u8],
}

impl<'a> RtcpCompound<'a> {
    /// Validates `bytes` as an RTCP compound.
    pub fn parse(bytes: &'a [u8]) -> Result<RtcpCompound<'a>, PacketError> {
        if bytes.len() < 8 {
            return Err(PacketError::Truncated { offset: 0, needed_bytes: 8, available_bytes: bytes.len() });
        }
        let mut offset = 0;
        while offset < bytes.len() {
            let packet = packet_at(bytes, offset)?;
            if offset == 0 && packet.len_bytes < 8 {
                return Err(PacketError::Truncated { offset, needed_bytes: 8, available_bytes: packet.len_bytes });
            }
            validate_body(bytes, &packet)?;
            offset += packet.len_bytes;
        }
        Ok(RtcpCompound { bytes })
    }

    /// The same compound in `patched`, a copy of it whose packets had fields inside them rewritten
    /// (SSRCs, timestamps, sequence numbers — never a header, so the layout validated here holds): no
    /// second validation. `None` if `patched` is not as long as this compound.
    pub fn patched<'b>(&self, patched: &'b [u8]) -> Option<RtcpCompound<'b>> {
        (patched.len() == self.bytes.len()).then_some(RtcpCompound { bytes: patched })
    }

    /// The whole compound.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The SSRC at bytes 4..8 of the first packet: the sender for SR/RR/feedback/APP/XR, the first
    /// source for SDES/BYE. Steering and stream lookup use it.
    pub fn first_ssrc(&self) -> Ssrc {
        Ssrc(be_u32(self.bytes, 4))
    }

    /// The packets, in order.
    pub fn packets(&self) -> RtcpPackets<'a> {
        RtcpPackets { bytes: self.bytes, offset: 0 }
    }

    /// True if a BYE packet of the compound lists `ssrc` among its sources (RFC 3550 §6.6).
    pub fn says_bye(&self, ssrc: Ssrc) -> bool {
        let wanted = ssrc.0.to_be_bytes();
        self.packets().filter(|packet| packet.kind == RtcpType::Goodbye).any(|packet| {
            // Validated: the source list fits in the packet; `get` keeps it panic-free anyway.
            (0..usize::from(packet.count)).any(|i| {
                let at = packet.offset + 4 + 4 * i;
                self.bytes.get(at..at + 4) == Some(&wanted[..])
            })
        })
    }
}

/// Iterator over the packets of an [`RtcpCompound`].
#[derive(Clone, Debug)]
pub struct RtcpPackets<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Iterator for RtcpPackets<'_> {
    type Item = RtcpPacketRef;

    fn next(&mut self) -> Option<RtcpPacketRef> {
        // The compound was validated, so an error cannot happen here; stop rather than panic if it did.
        let packet = packet_at(self.bytes, self.offset).ok()?;
        self.offset += packet.len_bytes;
        Some(packet)
    }
}

/// Reads and checks the common header of the packet at `offset` (version, length, padding position).
fn packet_at(bytes: &[u8], offset: usize) -> Result<RtcpPacketRef, PacketError> {
    let available_bytes = bytes.len().saturating_sub(offset);
    if available_bytes < 4 {
        return Err(PacketError::Truncated { offset, needed_bytes: 4, available_bytes });
    }
    let first = bytes[offset];
    let version = first >> 6;
    if version != 2 {
        return Err(PacketError::Version { offset, version });
    }
    let len_bytes = (usize::from(u16::from_be_bytes([bytes[offset + 2], bytes[offset + 3]])) + 1) * 4;
    if len_bytes > available_bytes {
        return Err(PacketError::Truncated { offset, needed_bytes: len_bytes, available_bytes });
    }
    let end = offset + len_bytes;
    let mut content_end = end;
    if first & 0x20 != 0 {
        if end != bytes.len() {
            return Err(PacketError::PaddingNotLast { offset });
        }
        let count = bytes[end - 1];
        if count == 0 || usize::from(count) > len_bytes - 4 {
            return Err(PacketError::Padding { offset, count });
        }
        content_end -= usize::from(count);
    }
    Ok(RtcpPacketRef {
        offset,
        len_bytes,
        content_end,
        kind: RtcpType::from_byte(bytes[offset + 1]),
        count: first & 0x1f,
    })
}

/// Checks the per-type structure of one packet whose common header is valid.
fn validate_body(bytes: &[u8], packet: &RtcpPacketRef) -> Result<(), PacketError> {
    let content_bytes = packet.content_end - packet.offset;
    let mut needed_bytes = packet.kind.min_len_bytes();
    match packet.kind {
        RtcpType::SenderReport => needed_bytes += 24 * usize::from(packet.count),
        RtcpType::ReceiverReport => needed_bytes += 24 * usize::from(packet.count),
        RtcpType::Goodbye => needed_bytes += 4 * usize::from(packet.count),
        RtcpType::SourceDescription => {
            let mut chunks = SdesChunks::new(bytes, packet);
            for chunk in &mut chunks {
                chunk?;
            }
            return Ok(());
        }
        _ => {}
    }
    if content_bytes < needed_bytes {
        return Err(PacketError::Truncated { offset: packet.offset, needed_bytes, available_bytes: content_bytes });
    }
    Ok(())
}

/// Iterator over the chunk offsets of an SDES packet (RFC 3550 §6.5): yields the absolute offset of
/// each chunk's SSRC/CSRC, or an error (once, then stops) if a chunk overruns the packet.
#[derive(Clone, Debug)]
pub struct SdesChunks<'a> {
    bytes: &'a [u8],
    packet_offset: usize,
    content_end: usize,
    next: usize,
    remaining: u8,
}

impl<'a> SdesChunks<'a> {
    /// The chunks of `packet` (an SDES packet of the compound `bytes`).
    pub fn new(bytes: &'a [u8], packet: &RtcpPacketRef) -> SdesChunks<'a> {
        SdesChunks {
            bytes,
            packet_offset: packet.offset,
            content_end: packet.content_end,
            next: packet.offset + 4,
            remaining: packet.count,
        }
    }

    fn truncated(&mut self, at: usize, needed_bytes: usize) -> PacketError {
        self.remaining = 0;
        PacketError::Truncated { offset: at, needed_bytes, available_bytes: self.content_end.saturating_sub(at) }
    }
}

impl Iterator for SdesChunks<'_> {
    type Item = Result<usize, PacketError>;

    fn next(&mut self) -> Option<Result<usize, PacketError>> {
        if self.remaining == 0 {
            return None;
        }
        let chunk = self.next;
        if chunk + 4 > self.content_end {
            return Some(Err(self.truncated(chunk, 4)));
        }
        let mut pos = chunk + 4;
        loop {
            match self.bytes.get(pos).copied() {
                Some(0) if pos < self.content_end => {
                    // END item: skip the null octet(s) to the next 32-bit boundary of the packet.
                    let relative = pos + 1 - self.packet_offset;
                    pos = self.packet_offset + relative.next_multiple_of(4);
                    if pos > self.content_end {
                        return Some(Err(self.truncated(chunk, pos - chunk)));
                    }
                    break;
                }
                Some(_) if pos + 2 <= self.content_end => {
                    pos += 2 + usize::from(self.bytes[pos + 1]);
                    if pos > self.content_end {
                        return Some(Err(self.truncated(chunk, pos - chunk)));
                    }
                }
                _ => return Some(Err(self.truncated(chunk, pos + 2 - chunk))),
            }
        }
        self.next = pos;
        self.remaining -= 1;
        Some(Ok(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rtcp::goodbye::Goodbye;
    use rtcp::packet::Packet;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};

    fn compound(packets: Vec<Box<dyn Packet + Send + Sync>>) -> Vec<u8> {
        rtcp::packet::marshal(&packets).expect("marshal").to_vec()
    }

    #[test]
    fn a_patched_copy_keeps_the_layout_and_needs_the_same_length() {
        let bytes = compound(vec![Box::new(ReceiverReport { ssrc: 7, ..Default::default() })]);
        let parsed = RtcpCompound::parse(&bytes).unwrap();
        let mut copy = bytes.clone();
        copy[4..8].copy_from_slice(&9u32.to_be_bytes());
        let patched = parsed.patched(&copy).expect("same length");
        assert_eq!(patched.first_ssrc(), Ssrc(9));
        assert_eq!(patched.packets().count(), parsed.packets().count());
        assert!(parsed.patched(&copy[..4]).is_none());
    }

    #[test]
    fn walks_a_compound_built_by_rtcp() {
        let bytes = compound(vec![
            Box::new(SenderReport {
                ssrc: 7,
                reports: vec![ReceptionReport { ssrc: 9, ..Default::default() }],
                ..Default::default()
            }),
            Box::new(SourceDescription {
                chunks: vec![
                    SourceDescriptionChunk {
                        source: 7,
                        items: vec![SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "abc".into() }],
                    },
                    SourceDescriptionChunk {
                        source: 8,
                        items: vec![SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "defgh".into() }],
                    },
                ],
            }),
            Box::new(Goodbye { sources: vec![7, 8], reason: "bye".into() }),
            Box::new(ReceiverReport { ssrc: 7, ..Default::default() }),
        ]);
        let parsed = RtcpCompound::parse(&bytes).expect("valid compound");
        assert_eq!(parsed.first_ssrc(), Ssrc(7));
        let kinds: Vec<_> = parsed.packets().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [RtcpType::SenderReport, RtcpType::SourceDescription, RtcpType::Goodbye, RtcpType::ReceiverReport]
        );
        let total: usize = parsed.packets().map(|p| p.len_bytes).sum();
        assert_eq!(total, bytes.len());
        let sdes = parsed.packets().nth(1).unwrap();
        let chunks: Vec<_> = SdesChunks::new(&bytes, &sdes).map(|c| be_u32(&bytes, c.unwrap())).collect();
        assert_eq!(chunks, [7, 8]);
        assert!(parsed.says_bye(Ssrc(7)) && parsed.says_bye(Ssrc(8)));
        assert!(!parsed.says_bye(Ssrc(9)), "a report block's SSRC is not a BYE source");
        let no_bye = compound(vec![Box::new(ReceiverReport { ssrc: 7, ..Default::default() })]);
        assert!(!RtcpCompound::parse(&no_bye).unwrap().says_bye(Ssrc(7)));
    }

    #[test]
    fn rejects_malformed_compounds() {
        let rr = compound(vec![Box::new(ReceiverReport { ssrc: 1, ..Default::default() })]);
        let mut two = rr.clone();
        two.extend_from_slice(&rr);
        assert!(RtcpCompound::parse(&two).is_ok());
        // Trailing bytes that are not a whole packet.
        let mut trailing = two.clone();
        trailing.extend_from_slice(&[0x80, 201]);
        assert!(matches!(RtcpCompound::parse(&trailing), Err(PacketError::Truncated { offset: 16, .. })));
        // Length field too long.
        let mut long = rr.clone();
        long[3] = 5;
        assert!(matches!(RtcpCompound::parse(&long), Err(PacketError::Truncated { offset: 0, .. })));
        // Padding bit on the first of two.
        let mut padded_first = two.clone();
        padded_first[0] |= 0x20;
        assert_eq!(RtcpCompound::parse(&padded_first).unwrap_err(), PacketError::PaddingNotLast { offset: 0 });
        // Padding on the last, valid then invalid count.
        let mut padded_last = vec![0x80, 201, 0, 1, 0, 0, 0, 1, 0xa0, 201, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4];
        assert!(RtcpCompound::parse(&padded_last).is_ok());
        assert_eq!(RtcpCompound::parse(&padded_last).unwrap().packets().nth(1).unwrap().content_end, 16);
        padded_last[19] = 9;
        assert_eq!(RtcpCompound::parse(&padded_last).unwrap_err(), PacketError::Padding { offset: 8, count: 9 });
        padded_last[19] = 5; // leaves 7 content bytes: no room for the RR's SSRC
        assert!(matches!(RtcpCompound::parse(&padded_last), Err(PacketError::Truncated { offset: 8, .. })));
        // Wrong version in the second packet.
        let mut bad_version = two.clone();
        bad_version[8] = 0x40;
        assert_eq!(RtcpCompound::parse(&bad_version).unwrap_err(), PacketError::Version { offset: 8, version: 1 });
        // An RR claiming one report block without the block.
        let mut short_rr = rr.clone();
        short_rr[0] |= 1;
        assert!(matches!(RtcpCompound::parse(&short_rr), Err(PacketError::Truncated { needed_bytes: 32, .. })));
        // A BYE claiming more sources than it has.
        let bye = compound(vec![
            Box::new(ReceiverReport { ssrc: 1, ..Default::default() }),
            Box::new(Goodbye { sources: vec![1], reason: Default::default() }),
        ]);
        let mut short_bye = bye.clone();
        short_bye[8] = 0xa3; // three sources in a packet with room for one (the rtcp crate pads BYE)
        assert!(matches!(RtcpCompound::parse(&short_bye), Err(PacketError::Truncated { offset: 8, .. })));
        // SDES chunk whose item overruns the packet.
        let sdes = compound(vec![
            Box::new(ReceiverReport { ssrc: 1, ..Default::default() }),
            Box::new(SourceDescription {
                chunks: vec![SourceDescriptionChunk {
                    source: 1,
                    items: vec![SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "x".into() }],
                }],
            }),
        ]);
        assert!(RtcpCompound::parse(&sdes).is_ok());
        let mut bad_sdes = sdes.clone();
        bad_sdes[8 + 9] = 200; // item length
        assert!(matches!(RtcpCompound::parse(&bad_sdes), Err(PacketError::Truncated { .. })));
        // First packet without an SSRC.
        assert!(RtcpCompound::parse(&[0x80, 203, 0, 0, 0x80, 203, 0, 0]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(compound) = RtcpCompound::parse(&bytes) {
                let mut covered = 0;
                for packet in compound.packets() {
                    prop_assert_eq!(packet.offset, covered);
                    covered += packet.len_bytes;
                    if packet.kind == RtcpType::SourceDescription {
                        for chunk in SdesChunks::new(&bytes, &packet) {
                            prop_assert!(chunk.is_ok());
                        }
                    }
                }
                prop_assert_eq!(covered, bytes.len());
            }
        }

        #[test]
        fn rtcp_like_bytes_never_panic(pt in 192u8..224, count in 0u8..32, tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            // Biased towards plausible headers so the walker's deeper checks run.
            let mut bytes = vec![0x80 | count, pt, 0, (tail.len() / 4) as u8];
            bytes.extend_from_slice(&tail);
            if let Ok(compound) = RtcpCompound::parse(&bytes) {
                prop_assert_eq!(compound.packets().map(|p| p.len_bytes).sum::<usize>(), bytes.len());
            }
        }
    }
}
