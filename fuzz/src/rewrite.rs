//! Target `rewrite`: the per-subscription rewrite path with any rewrite, stream SSRC and datagram.
//!
//! The datagram as RTP: the rewritten header plus the rest is valid RTP differing only in the rewritten fields
//! (see `rtp::check_rewrite`). As an RTCP compound from the publisher ([`Rewrite::rtcp_into`]): the copy is
//! exactly as long, still a valid compound with the same packets, and differs only in 32-bit fields that named
//! the stream's SSRC (now the out SSRC) and the RTP time of the stream's SRs (shifted by the timestamp offset).
//! As a subscriber's compound ([`translate_feedback`]): the copy is as long and valid, every sender SSRC kept,
//! and it differs only in fields that named the out SSRC (now the publisher's) and NACK packet ids (shifted
//! back by the sequence offset, so a NACK of what the subscriber received names what the publisher sent).

use arbitrary::Arbitrary;
use ringfwd_dataplane::core::feedback::translate_feedback;
use ringfwd_dataplane::core::{Rewrite, RtcpCompound, RtcpType, RtpView, IDENTITY_PAYLOAD_TYPE_MAP};

/// One input: a rewrite and the SSRC it is about; the datagram is the rest of the input.
#[derive(Arbitrary, Debug)]
struct Params {
    out_ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    /// `(incoming, outgoing)` payload-type map entries (both taken modulo 128).
    map: Vec<(u8, u8)>,
    /// The stream's SSRC: `None` takes the datagram's own first SSRC (so that fields match it).
    stream_ssrc: Option<u32>,
}

/// Seeds: each of `packets` as the datagram, behind the shortest prefix of zeros that decodes to the identity
/// rewrite of the packet's own SSRC.
pub fn seeds(packets: Vec<crate::seeds::Seed>) -> Vec<crate::seeds::Seed> {
    packets
        .into_iter()
        .filter_map(|(name, packet)| {
            (0..32).find_map(|zeros| {
                let mut data = vec![0u8; zeros];
                data.extend_from_slice(&packet);
                let (_, datagram) = crate::structured_then_bytes::<Params>(&data)?;
                (datagram == packet).then(|| (name.clone(), data))
            })
        })
        .collect()
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((input, pkt)) = crate::structured_then_bytes::<Params>(data) else {
        return;
    };
    let mut payload_type_map = IDENTITY_PAYLOAD_TYPE_MAP;
    for (from, to) in &input.map {
        payload_type_map[usize::from(from & 0x7f)] = to & 0x7f;
    }
    let rewrite = Rewrite {
        out_ssrc: input.out_ssrc,
        seq_offset: input.seq_offset,
        ts_offset: input.ts_offset,
        payload_type_map,
    };
    if let Ok(view) = RtpView::parse(pkt) {
        crate::rtp::check_rewrite(pkt, &view, &rewrite);
    }
    let Ok(compound) = RtcpCompound::parse(pkt) else {
        let mut out = vec![0u8; pkt.len()];
        assert_eq!(rewrite.rtcp_into(0, pkt, &mut out), None, "an invalid compound is not rewritten");
        return;
    };
    let stream_ssrc = input.stream_ssrc.unwrap_or(compound.first_ssrc().0);
    publisher_rtcp(&rewrite, stream_ssrc, &compound);
    let out_ssrc = rewrite.out_ssrc.unwrap_or(stream_ssrc);
    subscriber_rtcp(&rewrite, out_ssrc, input.stream_ssrc.unwrap_or(!out_ssrc), &compound);
}

fn be(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Both compounds have the same packets (offsets, types, counts, lengths).
fn same_layout(a: &RtcpCompound<'_>, b: &[u8]) {
    let b = RtcpCompound::parse(b).expect("the copy is a valid compound");
    assert!(a.packets().eq(b.packets()), "the same packets");
}

fn publisher_rtcp(rewrite: &Rewrite, stream_ssrc: u32, compound: &RtcpCompound<'_>) {
    let pkt = compound.bytes();
    let mut out = vec![0u8; pkt.len()];
    assert_eq!(rewrite.rtcp_into(stream_ssrc, pkt, &mut out), Some(pkt.len()));
    same_layout(compound, &out);
    let new_ssrc = rewrite.out_ssrc.unwrap_or(stream_ssrc);
    // The RTP time of an SR whose sender is the stream: shifted (checked first, then allowed to differ).
    let sr_times: Vec<usize> = compound
        .packets()
        .filter(|p| p.kind == RtcpType::SenderReport && be(pkt, p.offset + 4) == stream_ssrc)
        .map(|p| p.offset + 16)
        .collect();
    for &at in &sr_times {
        assert_eq!(be(&out, at), be(pkt, at).wrapping_add(rewrite.ts_offset), "SR RTP time at {at}");
    }
    let mut i = 0;
    while i < pkt.len() {
        if pkt[i] == out[i] {
            i += 1;
            continue;
        }
        let field = sr_times.iter().copied().find(|&at| (at..at + 4).contains(&i));
        if let Some(at) = field {
            i = at + 4;
            continue;
        }
        // Any other change is an SSRC field named the stream's SSRC, now the new one.
        let at = (i.saturating_sub(3)..=i)
            .find(|&at| at + 4 <= pkt.len() && be(pkt, at) == stream_ssrc && be(&out, at) == new_ssrc)
            .unwrap_or_else(|| panic!("byte {i} changed outside an SSRC field or an SR time"));
        i = at + 4;
    }
}

fn subscriber_rtcp(rewrite: &Rewrite, out_ssrc: u32, source_ssrc: u32, compound: &RtcpCompound<'_>) {
    let pkt = compound.bytes();
    let mut out = vec![0u8; pkt.len()];
    let n = translate_feedback(rewrite, out_ssrc, source_ssrc, compound, &mut out);
    assert_eq!(n, Some(pkt.len()));
    same_layout(compound, &out);
    let mut nack_pids = Vec::new();
    for packet in compound.packets() {
        if packet.content_end >= packet.offset + 8 {
            assert_eq!(be(&out, packet.offset + 4), be(pkt, packet.offset + 4), "the sender SSRC is kept");
        }
        if packet.kind == RtcpType::TransportFeedback && packet.count == 1 {
            let mut at = packet.offset + 12;
            while at + 4 <= packet.content_end {
                let pid = u16::from_be_bytes([pkt[at], pkt[at + 1]]);
                let back = u16::from_be_bytes([out[at], out[at + 1]]);
                assert_eq!(back, pid.wrapping_sub(rewrite.seq_offset), "NACK pid at {at}");
                nack_pids.push(at);
                at += 4;
            }
        }
    }
    let mut i = 0;
    while i < pkt.len() {
        if pkt[i] == out[i] {
            i += 1;
            continue;
        }
        if let Some(&at) = nack_pids.iter().find(|&&at| (at..at + 2).contains(&i)) {
            i = at + 2;
            continue;
        }
        let at = (i.saturating_sub(3)..=i)
            .find(|&at| at + 4 <= pkt.len() && be(pkt, at) == out_ssrc && be(&out, at) == source_ssrc)
            .unwrap_or_else(|| panic!("byte {i} changed outside a media SSRC field or a NACK pid"));
        i = at + 4;
    }
}
