//! Target `rtp`: an RTP packet with CSRCs, one- or two-byte header extensions (RFC 8285) and padding.
//!
//! Checks [`RtpView::parse`] against the layout it claims (payload inside the packet, after the fixed header,
//! CSRCs and extension; the extension where `rtp_types` finds it), the reader of the transport-wide sequence
//! number ([`read_transport_seq`]) for every extension id against an independent walk of the extension
//! elements, and that a rewritten header ([`Rewrite::rtp_header`]) followed by the rest of the packet is again
//! a valid RTP packet that differs only in the rewritten fields.

use ringfwd_dataplane::core::interceptor::builtin::wire_feedback::read_transport_seq;
use ringfwd_dataplane::core::{classify, PacketError, PacketKind, Rewrite, RtpView, IDENTITY_PAYLOAD_TYPE_MAP};

/// Runs one packet.
pub fn run(data: &[u8]) {
    let view = match RtpView::parse(data) {
        Ok(view) => view,
        Err(error) => return check_error(data, error),
    };
    assert!(matches!(classify(data), PacketKind::Rtp | PacketKind::Rtcp), "a valid RTP packet starts with V=2");
    let csrc_count = usize::from(data[0] & 0x0f);
    let header_end = 12 + 4 * csrc_count;
    let extension_offset = (data[0] & 0x10 != 0).then_some(header_end);
    let payload_start = view.payload().as_ptr() as usize - data.as_ptr() as usize;
    let payload_end = payload_start + view.payload().len();
    assert!(payload_start >= header_end && payload_end <= data.len(), "payload inside the packet");
    let parsed = rtp_types::RtpPacket::parse(data).expect("RtpView accepted it");
    match (extension_offset, parsed.extension()) {
        (Some(at), Some((profile, bytes))) => {
            assert_eq!(profile, u16::from_be_bytes([data[at], data[at + 1]]));
            let words = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
            assert_eq!(bytes, &data[at + 4..at + 4 + 4 * words], "the extension block where the forwarder looks");
            assert_eq!(payload_start, at + 4 + 4 * words);
        }
        (None, None) => assert_eq!(payload_start, header_end),
        (ours, theirs) => panic!("extension at {ours:?}, rtp_types found {theirs:?}"),
    }
    for id in 0..=255u8 {
        let expected = extension_offset.and_then(|at| reference_element(data, at, id));
        assert_eq!(read_transport_seq(data, extension_offset, id), expected, "extension id {id}");
    }
    for rewrite in rewrites() {
        check_rewrite(data, &view, &rewrite);
    }
}

/// A parse error describes the input: a truncation needs more than there is, a version is not 2.
fn check_error(data: &[u8], error: PacketError) {
    match error {
        PacketError::Truncated { needed_bytes, available_bytes, .. } => {
            assert!(needed_bytes > available_bytes, "{error}");
        }
        PacketError::Version { version, .. } => assert_ne!(version, 2, "{error}"),
        PacketError::Padding { count, .. } => assert!(data.len() >= 12 && data[0] & 0x20 != 0, "{error}: {count}"),
        PacketError::PaddingNotLast { .. } | PacketError::NotRtp { .. } => panic!("not an RTP error: {error}"),
    }
}

/// The transport-wide sequence number of element `id` by a walk of RFC 8285 written apart from the data
/// plane's: collect the elements in order up to the end, a malformed one or (one-byte form) the reserved id 15;
/// then the first element with `id`, if it holds at least two bytes.
fn reference_element(pkt: &[u8], at: usize, id: u8) -> Option<ringfwd_dataplane::core::SeqNo> {
    let profile = u16::from_be_bytes([*pkt.get(at)?, *pkt.get(at + 1)?]);
    let words = usize::from(u16::from_be_bytes([*pkt.get(at + 2)?, *pkt.get(at + 3)?]));
    let block = pkt.get(at + 4..at + 4 + 4 * words)?;
    let two_byte = match profile {
        0xbede => false,
        p if p >> 4 == 0x100 => true,
        _ => return None,
    };
    let mut elements: Vec<(u8, &[u8])> = Vec::new();
    let mut rest = block;
    while let Some((&first, tail)) = rest.split_first() {
        if first == 0 {
            rest = tail;
            continue;
        }
        let (element_id, len, tail) = if two_byte {
            let Some((&len, tail)) = tail.split_first() else { break };
            (first, usize::from(len), tail)
        } else if first >> 4 == 15 {
            break;
        } else {
            (first >> 4, usize::from(first & 0x0f) + 1, tail)
        };
        if tail.len() < len {
            // Malformed from here on: no element at or after this one counts, this one included.
            return elements.iter().find(|(e, _)| *e == id).and_then(|(_, v)| seq_of(v));
        }
        elements.push((element_id, &tail[..len]));
        rest = &tail[len..];
    }
    elements.iter().find(|(e, _)| *e == id).and_then(|(_, v)| seq_of(v))
}

fn seq_of(value: &[u8]) -> Option<ringfwd_dataplane::core::SeqNo> {
    match value {
        [hi, lo, ..] => Some(ringfwd_dataplane::core::SeqNo(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

/// The identity, and one changing every field (offsets that wrap, a remapped payload type).
fn rewrites() -> [Rewrite; 2] {
    let mut map = IDENTITY_PAYLOAD_TYPE_MAP;
    for (from, to) in map.iter_mut().enumerate() {
        *to = (from as u8).wrapping_mul(37) & 0x7f;
    }
    let changing =
        Rewrite { out_ssrc: Some(0x0bad_cafe), seq_offset: 0xfff0, ts_offset: u32::MAX - 100, payload_type_map: map };
    [Rewrite::default(), changing]
}

/// The rewritten header and the rest of the packet form a valid RTP packet with the same payload, CSRCs and
/// extension, the fields rewritten as the rewrite says, and V/P/X/CC and the marker kept.
pub(crate) fn check_rewrite(data: &[u8], view: &RtpView<'_>, rewrite: &Rewrite) {
    let header = rewrite.rtp_header(data);
    let mut out = header.to_vec();
    out.extend_from_slice(&data[12..]);
    let after = RtpView::parse(&out).expect("a rewritten RTP packet is still valid");
    assert_eq!(after.payload(), view.payload());
    assert_eq!(&out[12..], &data[12..], "CSRCs, extension, payload and padding untouched");
    assert_eq!(out[0], data[0], "V/P/X/CC kept");
    assert_eq!(after.marker(), view.marker());
    assert_eq!(after.seq(), view.seq().add(rewrite.seq_offset));
    assert_eq!(after.timestamp(), view.timestamp().add(rewrite.ts_offset));
    assert_eq!(after.ssrc().0, rewrite.out_ssrc.unwrap_or(view.ssrc().0));
    assert_eq!(after.payload_type(), rewrite.payload_type_map[usize::from(view.payload_type())] & 0x7f);
}
