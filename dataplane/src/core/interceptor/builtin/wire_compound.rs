//! The compound framing of every RTCP packet ringfwd originates: a report first, then an SDES packet
//! with the sender's CNAME, then any feedback (RFC 3550 §6.1, RFC 4585 §3.1).
//!
//! Owns [`Cname`] (a CNAME held in a fixed array, at most [`MAX_CNAME_BYTES`]), the SDES CNAME writer
//! ([`write_sdes_cname`]), the empty receiver report that leads a feedback compound, the two compound
//! writers every built-in uses ([`write_report_compound`] for SR/RR, [`write_feedback_compound`] for
//! NACK/PLI/FIR/TWCC) and the CNAME reader of a received compound ([`find_cname`]). Reduced-size RTCP
//! (RFC 5506) is not used: peers that did not negotiate it must drop a compound that does not start
//! with SR/RR or lacks a CNAME, and ringfwd's signalling never negotiates it.
//! Must never allocate or panic, whatever the bytes: writers return 0 when the slot is too small,
//! readers use checked slicing.

use crate::core::packet::{RtcpCompound, RtcpType, SdesChunks, PT_RECEIVER_REPORT};
use crate::core::wire::Ssrc;

/// The longest CNAME an SDES item can carry (its length is one octet, RFC 3550 §6.5).
pub const MAX_CNAME_BYTES: usize = 255;
/// Packet type of a source description (RFC 3550 §6.5).
const PT_SOURCE_DESCRIPTION: u8 = 202;
/// SDES item type of the canonical name (RFC 3550 §6.5.1).
const SDES_CNAME: u8 = 1;
/// Bytes of an empty receiver report: header and sender SSRC.
pub const EMPTY_RECEIVER_REPORT_BYTES: usize = 8;

/// A canonical name, held inline (no allocation): 1 to [`MAX_CNAME_BYTES`] bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cname {
    bytes: [u8; MAX_CNAME_BYTES],
    len_bytes: u8,
}

impl std::fmt::Debug for Cname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cname({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl Cname {
    /// `text` as a CNAME; `None` when it is empty or longer than [`MAX_CNAME_BYTES`].
    pub fn new(text: &[u8]) -> Option<Cname> {
        let len_bytes = u8::try_from(text.len()).ok().filter(|&len| len > 0)?;
        let mut bytes = [0u8; MAX_CNAME_BYTES];
        bytes[..text.len()].copy_from_slice(text);
        Some(Cname { bytes, len_bytes })
    }

    /// ringfwd's own CNAME for what it sends from (or about) `ssrc`: `ringfwd-` and 8 hex digits. Stable
    /// for the life of the stream or subscription, so a peer ties every report of it together.
    pub fn ringfwd(ssrc: Ssrc) -> Cname {
        const PREFIX: &[u8] = b"ringfwd-";
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; PREFIX.len() + 8];
        text[..PREFIX.len()].copy_from_slice(PREFIX);
        for (i, digit) in text[PREFIX.len()..].iter_mut().enumerate() {
            *digit = HEX[(ssrc.0 >> (28 - 4 * i) & 0xf) as usize];
        }
        Cname::new(&text).unwrap_or(Cname { bytes: [b'r'; MAX_CNAME_BYTES], len_bytes: 1 })
    }

    /// Replaces the name with `text` if it is a valid CNAME (else keeps it); true if it changed.
    pub fn set(&mut self, text: &[u8]) -> bool {
        match Cname::new(text) {
            Some(cname) if cname != *self => {
                *self = cname;
                true
            }
            _ => false,
        }
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len_bytes)]
    }
}

/// Writes an SDES packet with one chunk, `ssrc`'s CNAME, into `out`; returns its length (a multiple of 4),
/// 0 if `out` is too short.
pub fn write_sdes_cname(out: &mut [u8], ssrc: Ssrc, cname: &Cname) -> usize {
    let name = cname.as_bytes();
    // Header, SSRC, the item (type, length, text) and at least one null octet, padded to 32 bits.
    let len_bytes = (4 + 4 + 2 + name.len() + 1).next_multiple_of(4);
    let Some(out) = out.get_mut(..len_bytes) else {
        return 0;
    };
    out[0] = 0x81; // version 2, one chunk
    out[1] = PT_SOURCE_DESCRIPTION;
    out[2..4].copy_from_slice(&((len_bytes / 4 - 1) as u16).to_be_bytes());
    out[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    out[8] = SDES_CNAME;
    out[9] = name.len() as u8;
    out[10..10 + name.len()].copy_from_slice(name);
    out[10 + name.len()..].fill(0);
    len_bytes
}

/// Writes a receiver report from `sender` without report blocks (what leads a compound of a sender that
/// receives nothing to report on, RFC 4585 §3.1); returns [`EMPTY_RECEIVER_REPORT_BYTES`], 0 if `out` is
/// too short.
pub fn write_empty_receiver_report(out: &mut [u8], sender: Ssrc) -> usize {
    let Some(out) = out.get_mut(..EMPTY_RECEIVER_REPORT_BYTES) else {
        return 0;
    };
    out[0] = 0x80;
    out[1] = PT_RECEIVER_REPORT;
    out[2..4].copy_from_slice(&1u16.to_be_bytes());
    out[4..8].copy_from_slice(&sender.0.to_be_bytes());
    EMPTY_RECEIVER_REPORT_BYTES
}

/// Writes the compound [`report` (an SR or RR writer), SDES with `ssrc`'s `cname`] into `slot`; returns
/// its length, 0 if anything did not fit (or `report` wrote nothing).
pub fn write_report_compound(
    slot: &mut [u8],
    report: impl FnOnce(&mut [u8]) -> usize,
    ssrc: Ssrc,
    cname: &Cname,
) -> usize {
    let report_bytes = report(slot);
    if report_bytes == 0 || report_bytes > slot.len() {
        return 0;
    }
    match write_sdes_cname(&mut slot[report_bytes..], ssrc, cname) {
        0 => 0,
        sdes_bytes => report_bytes + sdes_bytes,
    }
}

/// Writes the compound [empty RR from `sender`, SDES with its `cname`, `feedback`] into `slot`: `feedback`
/// gets the rest of the slot and returns what it wrote. Returns the compound's length, 0 if anything did
/// not fit or `feedback` wrote nothing.
pub fn write_feedback_compound(
    slot: &mut [u8],
    sender: Ssrc,
    cname: &Cname,
    feedback: impl FnOnce(&mut [u8]) -> usize,
) -> usize {
    let head_bytes = write_report_compound(slot, |out| write_empty_receiver_report(out, sender), sender, cname);
    if head_bytes == 0 {
        return 0;
    }
    let rest = &mut slot[head_bytes..];
    match feedback(rest) {
        0 => 0,
        written if written > rest.len() => 0,
        written => head_bytes + written,
    }
}

/// The CNAME `compound` gives for `ssrc` (the first CNAME item of its first SDES chunk about `ssrc`).
pub fn find_cname<'a>(compound: &RtcpCompound<'a>, ssrc: Ssrc) -> Option<&'a [u8]> {
    let bytes = compound.bytes();
    for packet in compound.packets().filter(|packet| packet.kind == RtcpType::SourceDescription) {
        for chunk in SdesChunks::new(bytes, &packet) {
            let chunk = chunk.ok()?;
            if bytes.get(chunk..chunk + 4)? != ssrc.0.to_be_bytes() {
                continue;
            }
            // Items until the END (type 0) octet; the validated chunk keeps every item in the packet.
            let mut at = chunk + 4;
            while let (Some(&kind), Some(&len)) = (bytes.get(at), bytes.get(at + 1)) {
                if kind == 0 {
                    break;
                }
                let text = bytes.get(at + 2..at + 2 + usize::from(len))?;
                if kind == SDES_CNAME {
                    return Some(text);
                }
                at += 2 + usize::from(len);
            }
        }
    }
    None
}

/// Checks on what the built-ins send, for their tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// What follows the leading report and SDES of `bytes`, a compound ringfwd originated, after checking
    /// that it is one: it validates, starts with an SR or RR, and its second packet is an SDES giving a
    /// CNAME for the report's sender.
    pub fn after_cname(bytes: &[u8]) -> &[u8] {
        let compound = RtcpCompound::parse(bytes).expect("a valid compound");
        let mut packets = compound.packets();
        let report = packets.next().expect("a first packet");
        assert!(matches!(report.kind, RtcpType::SenderReport | RtcpType::ReceiverReport), "{:?} first", report.kind);
        let sdes = packets.next().expect("an SDES after the report");
        assert_eq!(sdes.kind, RtcpType::SourceDescription);
        assert!(find_cname(&compound, compound.first_ssrc()).is_some(), "no CNAME for the sender");
        &bytes[sdes.offset + sdes.len_bytes..]
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rtcp::goodbye::Goodbye;
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};

    use super::super::wire_feedback::write_pli;
    use super::*;

    fn sdes_of(packets: &[Box<dyn rtcp::packet::Packet + Send + Sync>]) -> Option<(u32, String)> {
        packets.iter().find_map(|p| {
            let sdes = p.as_any().downcast_ref::<SourceDescription>()?;
            let chunk = sdes.chunks.first()?;
            let item = chunk.items.iter().find(|item| item.sdes_type == SdesType::SdesCname)?;
            Some((chunk.source, String::from_utf8(item.text.to_vec()).ok()?))
        })
    }

    #[test]
    fn cnames_are_bounded_and_ringfwds_is_stable() {
        assert!(Cname::new(b"").is_none());
        assert!(Cname::new(&[b'a'; 256]).is_none());
        assert_eq!(Cname::new(&[b'a'; 255]).expect("255 bytes fit").as_bytes().len(), 255);
        assert_eq!(Cname::ringfwd(Ssrc(0x0a0b_c0de)).as_bytes(), b"ringfwd-0a0bc0de");
        let mut cname = Cname::ringfwd(Ssrc(1));
        assert!(!cname.set(b""), "an empty name is refused");
        assert!(cname.set(b"alice@example"));
        assert!(!cname.set(b"alice@example"), "unchanged");
        assert_eq!(cname.as_bytes(), b"alice@example");
    }

    #[test]
    fn sdes_cname_parses_for_every_name_length() {
        for len in 1..=MAX_CNAME_BYTES {
            let text = vec![b'x'; len];
            let cname = Cname::new(&text).expect("valid");
            let mut slot = [0xffu8; 300];
            let written = write_sdes_cname(&mut slot, Ssrc(9), &cname);
            assert_eq!(written % 4, 0);
            let packets =
                rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(&slot[..written])).expect("rtcp parses it");
            assert_eq!(sdes_of(&packets), Some((9, String::from_utf8(text).unwrap())), "length {len}");
            let parsed = RtcpCompound::parse(&slot[..written]).expect("valid");
            assert_eq!(find_cname(&parsed, Ssrc(9)), Some(cname.as_bytes()));
            assert_eq!(write_sdes_cname(&mut slot[..written - 1], Ssrc(9), &cname), 0, "too short");
        }
    }

    #[test]
    fn feedback_compound_is_rr_sdes_then_feedback() {
        let cname = Cname::ringfwd(Ssrc(5));
        let mut slot = [0u8; 1500];
        let len = write_feedback_compound(&mut slot, Ssrc(5), &cname, |out| write_pli(out, Ssrc(5), Ssrc(7)));
        let packets = rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(&slot[..len])).expect("rtcp parses it");
        assert_eq!(packets.len(), 3);
        let rr = packets[0].as_any().downcast_ref::<ReceiverReport>().expect("an RR first");
        assert_eq!((rr.ssrc, rr.reports.len()), (5, 0));
        assert_eq!(sdes_of(&packets), Some((5, "ringfwd-00000005".into())));
        let pli = packets[2].as_any().downcast_ref::<PictureLossIndication>().expect("the PLI last");
        assert_eq!((pli.sender_ssrc, pli.media_ssrc), (5, 7));
        assert!(RtcpCompound::parse(&slot[..len]).is_ok());
        // Too short for the feedback, or nothing to send: nothing written.
        assert_eq!(
            write_feedback_compound(&mut slot[..len - 1], Ssrc(5), &cname, |o| write_pli(o, Ssrc(5), Ssrc(7))),
            0
        );
        assert_eq!(write_feedback_compound(&mut slot, Ssrc(5), &cname, |_| 0), 0);
        assert_eq!(write_feedback_compound(&mut slot[..10], Ssrc(5), &cname, |_| 4), 0);
    }

    #[test]
    fn cname_is_found_only_for_its_ssrc() {
        let packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> = vec![
            Box::new(ReceiverReport { ssrc: 1, ..Default::default() }),
            Box::new(SourceDescription {
                chunks: vec![
                    SourceDescriptionChunk {
                        source: 2,
                        items: vec![SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "two".into() }],
                    },
                    SourceDescriptionChunk {
                        source: 1,
                        items: vec![
                            SourceDescriptionItem { sdes_type: SdesType::SdesName, text: "Alice".into() },
                            SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "one".into() },
                        ],
                    },
                ],
            }),
            Box::new(Goodbye { sources: vec![1], reason: "".into() }),
        ];
        let bytes = rtcp::packet::marshal(&packets).expect("marshal");
        let compound = RtcpCompound::parse(&bytes).expect("valid");
        assert_eq!(find_cname(&compound, Ssrc(1)), Some(&b"one"[..]));
        assert_eq!(find_cname(&compound, Ssrc(2)), Some(&b"two"[..]));
        assert_eq!(find_cname(&compound, Ssrc(3)), None);
    }
}
