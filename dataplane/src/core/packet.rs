//! Demultiplexing and borrowed views of received datagrams.
//!
//! Owns the first-byte classification of RFC 7983 / RFC 5761 ([`classify`]), the parse error
//! ([`PacketError`]) and the borrowed RTP view ([`RtpView`], validated by `rtp-types`); the RTCP
//! compound walker lives in the submodule `rtcp` and is re-exported here. Must never copy,
//! allocate or panic, whatever the input bytes are.

mod rtcp;

pub use self::rtcp::{
    RtcpCompound, RtcpPacketRef, RtcpPackets, RtcpType, SdesChunks, FMT_FIR, FMT_GENERIC_NACK, FMT_PLI,
    FMT_TRANSPORT_CC, PT_PSFB, PT_RECEIVER_REPORT, PT_RTPFB, PT_SENDER_REPORT,
};
use super::wire::{RtpTimestamp, SeqNo, Ssrc};

/// What a datagram on the media port carries, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketKind {
    /// First byte 0..=3: a STUN message (ICE connectivity check).
    Stun,
    /// First byte 20..=63: a DTLS record.
    Dtls,
    /// First byte 128..=191 (version 2) and the second byte outside 192..=223.
    Rtp,
    /// First byte 128..=191 and the second byte (packet type) in 192..=223 (RFC 5761 §4).
    Rtcp,
    /// Anything else (empty, ZRTP, TURN channel data, garbage).
    Unknown,
}

/// Payload types that, sent with the marker bit, read as RTCP packet types 192–223 to a peer that multiplexes RTP and
/// RTCP on one port (RFC 5761 §4, the demultiplexing of [`classify`]): ringfwd never rewrites a packet to one of them
/// nor sends RTX with one.
pub const RTCP_LIKE_PAYLOAD_TYPES: std::ops::RangeInclusive<u8> = 64..=95;

/// Whether ringfwd may send RTP with payload type `pt` that it chose (a rewrite to it, RTX): a 7-bit type outside
/// [`RTCP_LIKE_PAYLOAD_TYPES`].
pub fn sendable_payload_type(pt: u8) -> bool {
    pt < 128 && !RTCP_LIKE_PAYLOAD_TYPES.contains(&pt)
}

/// Classifies a datagram by its first byte (RFC 7983 §7) and, for RTP/RTCP, its second (RFC 5761 §4).
///
/// A datagram of one byte in 128..=191 classifies as [`PacketKind::Rtp`] and fails parsing as truncated.
pub fn classify(pkt: &[u8]) -> PacketKind {
    match pkt {
        [] => PacketKind::Unknown,
        [0..=3, ..] => PacketKind::Stun,
        [20..=63, ..] => PacketKind::Dtls,
        [128..=191, 192..=223, ..] => PacketKind::Rtcp,
        [128..=191, ..] => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    }
}

/// Why a datagram is not a well-formed RTP packet or RTCP compound. Offsets are from the datagram start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the structure at `offset` needs.
    #[error("truncated at offset {offset}: need {needed_bytes} bytes, have {available_bytes}")]
    Truncated {
        /// Where the structure starts.
        offset: usize,
        /// Bytes it needs.
        needed_bytes: usize,
        /// Bytes left from `offset`.
        available_bytes: usize,
    },
    /// The version field is not 2.
    #[error("unsupported RTP/RTCP version {version} at offset {offset}")]
    Version {
        /// Where the packet starts.
        offset: usize,
        /// The version found.
        version: u8,
    },
    /// The padding count is 0 or longer than the payload.
    #[error("invalid padding count {count} at offset {offset}")]
    Padding {
        /// Where the packet starts.
        offset: usize,
        /// The padding count (last byte).
        count: u8,
    },
    /// An RTCP packet other than the last of its compound has the padding bit set (RFC 3550 §6.4.1).
    #[error("RTCP packet at offset {offset} is padded but not last in its compound")]
    PaddingNotLast {
        /// Where the packet starts.
        offset: usize,
    },
    /// The datagram is not RTP/RTCP at all.
    #[error("not an RTP/RTCP packet (first byte {first_byte:#04x})")]
    NotRtp {
        /// The first byte (0 for an empty datagram).
        first_byte: u8,
    },
}

/// A validated, borrowed RTP packet: the fixed header, CSRC list, extension and padding all fit.
#[derive(Clone, Copy, Debug)]
pub struct RtpView<'a> {
    bytes: &'a [u8],
    payload_offset: usize,
    payload_len: usize,
}

impl<'a> RtpView<'a> {
    /// Validates `bytes` as an RTP packet with `rtp_types::RtpPacket::parse`, without copying.
    pub fn parse(bytes: &'a [u8]) -> Result<RtpView<'a>, PacketError> {
        let parsed = rtp_types::RtpPacket::parse(bytes).map_err(|e| match e {
            rtp_types::RtpParseError::UnsupportedVersion(version) => PacketError::Version { offset: 0, version },
            rtp_types::RtpParseError::Truncated { expected, actual } => {
                PacketError::Truncated { offset: 0, needed_bytes: expected, available_bytes: actual }
            }
            rtp_types::RtpParseError::PaddingInvalid(count) => PacketError::Padding { offset: 0, count },
        })?;
        Ok(RtpView { bytes, payload_offset: parsed.payload_offset(), payload_len: parsed.payload_len() })
    }

    /// The whole packet.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The synchronization source.
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(be_u32(self.bytes, 8))
    }

    /// The sequence number.
    pub fn seq(&self) -> SeqNo {
        SeqNo(u16::from_be_bytes([self.bytes[2], self.bytes[3]]))
    }

    /// The media timestamp.
    pub fn timestamp(&self) -> RtpTimestamp {
        RtpTimestamp(be_u32(self.bytes, 4))
    }

    /// The payload type (7 bits).
    pub fn payload_type(&self) -> u8 {
        self.bytes[1] & 0x7f
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.bytes[1] & 0x80 != 0
    }

    /// The payload, without header, CSRCs, extension or padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.payload_offset..self.payload_offset + self.payload_len]
    }
}

/// Big-endian u32 at `at`; the caller has checked the bounds.
pub(crate) fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The big-endian u32 at `at`, if all four bytes are inside `bytes`.
pub(crate) fn read_be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classify_by_first_bytes() {
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0x00, 0x01]), PacketKind::Stun);
        assert_eq!(classify(&[3]), PacketKind::Stun);
        assert_eq!(classify(&[4]), PacketKind::Unknown);
        assert_eq!(classify(&[22, 0xfe]), PacketKind::Dtls);
        assert_eq!(classify(&[64]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80, 96]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 96 | 0x80]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 200]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x81, 223]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x80, 224]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80]), PacketKind::Rtp);
        assert_eq!(classify(&[192, 200]), PacketKind::Unknown);
    }

    #[test]
    fn rtp_view_reads_fields() {
        let pkt = [0x80, 0x80 | 111, 0xff, 0xfe, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3];
        let view = RtpView::parse(&pkt).expect("valid");
        assert_eq!(view.ssrc(), Ssrc(0xdead_beef));
        assert_eq!(view.seq(), SeqNo(0xfffe));
        assert_eq!(view.timestamp(), RtpTimestamp(0x1000));
        assert_eq!(view.payload_type(), 111);
        assert!(view.marker());
        assert_eq!(view.payload(), &[1, 2, 3]);
    }

    #[test]
    fn rtp_view_rejects_bad_csrc_extension_padding() {
        let mut pkt = [0u8; 16];
        pkt[0] = 0x82; // two CSRCs, need 20 bytes
        assert!(matches!(RtpView::parse(&pkt), Err(PacketError::Truncated { needed_bytes: 20, .. })));
        pkt[0] = 0x90; // extension header needs 16 bytes, length 0 -> fits exactly
        assert!(RtpView::parse(&pkt).is_ok());
        pkt[15] = 1; // extension of one word: needs 20
        assert!(matches!(RtpView::parse(&pkt), Err(PacketError::Truncated { needed_bytes: 20, .. })));
        let mut padded = [0u8; 14];
        padded[0] = 0xa0;
        padded[13] = 3; // 3 bytes of padding in a 2-byte payload
        assert!(matches!(RtpView::parse(&padded), Err(PacketError::Truncated { .. })));
        padded[13] = 0;
        assert_eq!(RtpView::parse(&padded).unwrap_err(), PacketError::Padding { offset: 0, count: 0 });
        assert_eq!(RtpView::parse(&[0x40; 12]).unwrap_err(), PacketError::Version { offset: 0, version: 1 });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = classify(&bytes);
            if let Ok(view) = RtpView::parse(&bytes) {
                prop_assert!(view.payload().len() + 12 <= bytes.len());
                let _ = (view.ssrc(), view.seq(), view.timestamp(), view.marker(), view.payload_type());
            }
        }
    }
}
