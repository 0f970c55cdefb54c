//! RTCP from subscribers: which subscription it is about, and its translation back to the publisher.
//!
//! Owns [`media_ssrc`] (the SSRC a subscriber's compound reports on or asks about: the first report
//! block of an RR/SR, else the media SSRC of the first feedback message), [`source_feedback`]
//! (which requests meant for the publisher it carries: generic NACK, PLI, FIR) and
//! [`translate_feedback`] (the inverse of a subscription's [`Rewrite`]: media SSRC fields naming the
//! subscription's out SSRC become the publisher's SSRC, NACKed sequence numbers go back to the
//! publisher's numbering). Works in place on a copy; must never allocate or panic on any input.

use super::packet::{read_be_u32, RtcpCompound, RtcpPacketRef, RtcpType, FMT_FIR, FMT_GENERIC_NACK, FMT_PLI};
use super::rewrite::Rewrite;

/// The SSRC a subscriber's compound is about: the SSRC of the first report block of its first RR or
/// SR that has one, else the media SSRC of its first RTPFB/PSFB message. `None` if neither exists.
pub fn media_ssrc(compound: &RtcpCompound<'_>) -> Option<u32> {
    let bytes = compound.bytes();
    let mut feedback = None;
    for packet in compound.packets() {
        match packet.kind {
            RtcpType::ReceiverReport if packet.count > 0 => return read_be_u32(bytes, packet.offset + 8),
            RtcpType::SenderReport if packet.count > 0 => return read_be_u32(bytes, packet.offset + 28),
            RtcpType::TransportFeedback | RtcpType::PayloadFeedback if feedback.is_none() => {
                feedback = media_field(&packet).and_then(|at| read_be_u32(bytes, at));
            }
            _ => {}
        }
    }
    feedback
}

/// Where the media SSRC of feedback message `packet` is (RFC 4585 §6.1: bytes 8..12), if the message is long enough
/// to have one: a validated feedback message may be only 8 bytes long, and the next packet's header must then
/// never be read (or rewritten) as its media SSRC.
fn media_field(packet: &RtcpPacketRef) -> Option<usize> {
    (packet.offset + 12 <= packet.content_end).then_some(packet.offset + 8)
}

/// What a subscriber's compound asks of the publisher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceFeedback {
    /// It holds a generic NACK.
    pub nack: bool,
    /// It holds a PLI or a FIR.
    pub keyframe: bool,
}

/// Which requests for the publisher the compound holds: generic NACKs, PLIs, FIRs.
pub fn source_feedback(compound: &RtcpCompound<'_>) -> SourceFeedback {
    let mut found = SourceFeedback::default();
    for packet in compound.packets() {
        match (packet.kind, packet.count) {
            (RtcpType::TransportFeedback, FMT_GENERIC_NACK) => found.nack = true,
            (RtcpType::PayloadFeedback, FMT_PLI | FMT_FIR) => found.keyframe = true,
            _ => {}
        }
    }
    found
}

/// Copies subscriber RTCP `compound` into `out` translated to the publisher's space: every report
/// block, feedback media SSRC and FIR entry naming `out_ssrc` names `source_ssrc` instead, and each
/// generic NACK's packet id has `rewrite.seq_offset` taken off (the bitmask is relative, so it stays).
/// The sender SSRC (the subscriber's own) is kept. Returns the length, or `None` if `out` is too short.
pub fn translate_feedback(
    rewrite: &Rewrite,
    out_ssrc: u32,
    source_ssrc: u32,
    compound: &RtcpCompound<'_>,
    out: &mut [u8],
) -> Option<usize> {
    let pkt = compound.bytes();
    let out = out.get_mut(..pkt.len())?;
    out.copy_from_slice(pkt);
    let source = source_ssrc.to_be_bytes();
    let map_ssrc = |out: &mut [u8], at: usize| {
        if read_be_u32(out, at) == Some(out_ssrc) {
            out[at..at + 4].copy_from_slice(&source);
        }
    };
    for packet in compound.packets() {
        let end = packet.content_end;
        match packet.kind {
            RtcpType::ReceiverReport | RtcpType::SenderReport => {
                let first_block = packet.offset + if packet.kind == RtcpType::SenderReport { 28 } else { 8 };
                for block in 0..usize::from(packet.count) {
                    let at = first_block + 24 * block;
                    if at + 24 <= end {
                        map_ssrc(out, at);
                    }
                }
            }
            RtcpType::TransportFeedback => {
                if let Some(at) = media_field(&packet) {
                    map_ssrc(out, at);
                }
                if packet.count == FMT_GENERIC_NACK {
                    let mut at = packet.offset + 12;
                    while at + 4 <= end {
                        let pid = u16::from_be_bytes([out[at], out[at + 1]]).wrapping_sub(rewrite.seq_offset);
                        out[at..at + 2].copy_from_slice(&pid.to_be_bytes());
                        at += 4;
                    }
                }
            }
            RtcpType::PayloadFeedback => {
                if let Some(at) = media_field(&packet) {
                    map_ssrc(out, at);
                }
                if packet.count == FMT_FIR {
                    let mut at = packet.offset + 12;
                    while at + 8 <= end {
                        map_ssrc(out, at);
                        at += 8;
                    }
                }
            }
            _ => {}
        }
    }
    Some(pkt.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rtcp::packet::Packet;
    use rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

    const OUT: u32 = 0x0a0b_0c0d;
    const SOURCE: u32 = 0x1111_2222;
    const SUBSCRIBER: u32 = 0x5555_6666;

    fn marshal(packets: Vec<Box<dyn Packet + Send + Sync>>) -> Vec<u8> {
        rtcp::packet::marshal(&packets).expect("marshal").to_vec()
    }

    fn translated(rewrite: &Rewrite, pkt: &[u8]) -> Vec<Box<dyn Packet + Send + Sync>> {
        let mut out = vec![0u8; pkt.len()];
        let compound = RtcpCompound::parse(pkt).expect("valid");
        let len = translate_feedback(rewrite, OUT, SOURCE, &compound, &mut out).expect("room");
        rtcp::packet::unmarshal(&mut &out[..len]).expect("still valid RTCP")
    }

    #[test]
    fn nack_pids_and_media_ssrc_go_back_to_the_publisher() {
        let rewrite = Rewrite { seq_offset: 1000, ..Rewrite::default() };
        let nack = TransportLayerNack {
            sender_ssrc: SUBSCRIBER,
            media_ssrc: OUT,
            nacks: vec![
                NackPair { packet_id: 1005, lost_packets: 0b101 },
                NackPair { packet_id: 500, lost_packets: 0 },
            ],
        };
        let pkt = marshal(vec![Box::new(nack)]);
        let compound = RtcpCompound::parse(&pkt).unwrap();
        assert_eq!(media_ssrc(&compound), Some(OUT));
        assert_eq!(source_feedback(&compound), SourceFeedback { nack: true, keyframe: false });
        let packets = translated(&rewrite, &pkt);
        let nack = packets[0].as_any().downcast_ref::<TransportLayerNack>().unwrap();
        assert_eq!((nack.sender_ssrc, nack.media_ssrc), (SUBSCRIBER, SOURCE));
        assert_eq!(nack.nacks[0], NackPair { packet_id: 5, lost_packets: 0b101 });
        assert_eq!(nack.nacks[1].packet_id, 500u16.wrapping_sub(1000), "wraps below zero");
    }

    #[test]
    fn reports_pli_and_fir_are_translated() {
        let rr = ReceiverReport {
            ssrc: SUBSCRIBER,
            reports: vec![
                ReceptionReport { ssrc: OUT, ..Default::default() },
                ReceptionReport { ssrc: 77, ..Default::default() },
            ],
            ..Default::default()
        };
        let pli = PictureLossIndication { sender_ssrc: SUBSCRIBER, media_ssrc: OUT };
        let fir = FullIntraRequest {
            sender_ssrc: SUBSCRIBER,
            media_ssrc: OUT,
            fir: vec![FirEntry { ssrc: OUT, sequence_number: 3 }],
        };
        let pkt = marshal(vec![Box::new(rr), Box::new(pli), Box::new(fir)]);
        let compound = RtcpCompound::parse(&pkt).unwrap();
        assert_eq!(media_ssrc(&compound), Some(OUT), "the first report block");
        assert_eq!(source_feedback(&compound), SourceFeedback { nack: false, keyframe: true });
        let packets = translated(&Rewrite::default(), &pkt);
        let rr = packets[0].as_any().downcast_ref::<ReceiverReport>().unwrap();
        assert_eq!((rr.ssrc, rr.reports[0].ssrc, rr.reports[1].ssrc), (SUBSCRIBER, SOURCE, 77));
        let pli = packets[1].as_any().downcast_ref::<PictureLossIndication>().unwrap();
        assert_eq!(pli.media_ssrc, SOURCE);
        let fir = packets[2].as_any().downcast_ref::<FullIntraRequest>().unwrap();
        assert_eq!((fir.media_ssrc, fir.fir[0].ssrc, fir.fir[0].sequence_number), (SOURCE, SOURCE, 3));
    }

    #[test]
    fn plain_receiver_reports_ask_nothing_of_the_publisher() {
        let rr = ReceiverReport { ssrc: SUBSCRIBER, ..Default::default() };
        let pkt = marshal(vec![Box::new(rr)]);
        let compound = RtcpCompound::parse(&pkt).unwrap();
        assert_eq!(media_ssrc(&compound), None, "no report block, no feedback");
        assert_eq!(source_feedback(&compound), SourceFeedback::default());
        assert_eq!(translate_feedback(&Rewrite::default(), OUT, SOURCE, &compound, &mut [0u8; 4]), None, "no room");
    }

    /// Found by the `rtcp` and `rewrite` fuzz targets: a feedback message of 8 bytes (header and sender SSRC, no
    /// media SSRC) followed by a packet whose header word equals the out SSRC. The media SSRC was read (and, when
    /// translating, rewritten) at bytes 8..12 of the message, which are the next packet's header: the compound was
    /// taken to be about that SSRC, and its translation broke the next header.
    #[test]
    fn a_feedback_message_without_media_ssrc_reads_nothing_of_the_next_packet() {
        let rr_header = [0x80, 201, 0, 1];
        let out_ssrc = u32::from_be_bytes(rr_header);
        let mut pkt = vec![0x81, 205, 0, 1];
        pkt.extend_from_slice(&SUBSCRIBER.to_be_bytes());
        pkt.extend_from_slice(&rr_header);
        pkt.extend_from_slice(&SUBSCRIBER.to_be_bytes());
        let compound = RtcpCompound::parse(&pkt).expect("valid: feedback needs only its sender SSRC");
        assert_eq!(media_ssrc(&compound), None, "no report block, no media SSRC");
        let mut out = vec![0u8; pkt.len()];
        let len = translate_feedback(&Rewrite::default(), out_ssrc, SOURCE, &compound, &mut out).expect("room");
        assert_eq!(&out[..len], &pkt[..], "nothing to translate");
        for kind in [205u8, 206] {
            pkt[1] = kind;
            let compound = RtcpCompound::parse(&pkt).expect("valid");
            assert_eq!(media_ssrc(&compound), None);
            translate_feedback(&Rewrite::default(), out_ssrc, SOURCE, &compound, &mut out).expect("room");
            assert_eq!(out, pkt, "PT {kind}: the next packet's header is kept");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), offset: u16) {
            let rewrite = Rewrite { seq_offset: offset, ..Rewrite::default() };
            let mut out = [0u8; 256];
            if let Ok(compound) = RtcpCompound::parse(&bytes) {
                let _ = translate_feedback(&rewrite, OUT, SOURCE, &compound, &mut out);
                let _ = (media_ssrc(&compound), source_feedback(&compound));
            }
        }
    }
}
