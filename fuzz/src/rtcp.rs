//! Target `rtcp`: an RTCP compound with any mix of SR, RR, SDES, BYE, APP, XR and feedback (generic NACK, TWCC,
//! PLI, FIR, REMB and other formats).
//!
//! Checks that [`RtcpCompound::parse`] accepts only what it documents (packets that cover the datagram exactly,
//! only the last padded, the first with an SSRC) and that every reader of a validated compound agrees with it:
//! SDES chunks, the BYE test, the feedback view with its NACK and FIR readers and the report readers (against
//! the `rtcp` crate where it parses the same packet), the CNAME reader, what a subscriber's compound is about
//! and asks for, and an identity rewrite and translation, which must copy it unchanged.

use ringfwd_dataplane::core::feedback::{media_ssrc, source_feedback, translate_feedback};
use ringfwd_dataplane::core::interceptor::builtin::wire_compound::find_cname;
use ringfwd_dataplane::core::interceptor::builtin::wire_feedback::{Feedback, FeedbackKind};
use ringfwd_dataplane::core::interceptor::builtin::wire_reports::{report_blocks, sender_info};
use ringfwd_dataplane::core::packet::SdesChunks;
use ringfwd_dataplane::core::{PacketError, Rewrite, RtcpCompound, RtcpPacketRef, RtcpType, Ssrc};
use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc_util::marshal::Unmarshal;

/// Runs one compound.
pub fn run(data: &[u8]) {
    let compound = match RtcpCompound::parse(data) {
        Ok(compound) => compound,
        Err(error) => return check_error(data, error),
    };
    let packets: Vec<RtcpPacketRef> = compound.packets().collect();
    let mut covered = 0;
    for (i, packet) in packets.iter().enumerate() {
        assert_eq!(packet.offset, covered, "packets follow each other");
        assert!(packet.len_bytes >= 4 && packet.content_end <= packet.offset + packet.len_bytes);
        assert!(packet.content_end >= packet.offset + 4);
        if packet.content_end != packet.offset + packet.len_bytes {
            assert_eq!(i, packets.len() - 1, "only the last packet is padded");
        }
        covered += packet.len_bytes;
        check_packet(data, packet);
    }
    assert_eq!(covered, data.len(), "the packets cover the datagram");
    assert_eq!(compound.first_ssrc(), Ssrc(u32::from_be_bytes([data[4], data[5], data[6], data[7]])));

    let bye_sources = packets
        .iter()
        .filter(|p| p.kind == RtcpType::Goodbye)
        .flat_map(|p| (0..usize::from(p.count)).map(move |i| u32::from_be_bytes(word(data, p.offset + 4 + 4 * i))));
    let bye_sources: Vec<u32> = bye_sources.collect();
    for ssrc in bye_sources.iter().copied().chain([compound.first_ssrc().0, 0]) {
        assert_eq!(compound.says_bye(Ssrc(ssrc)), bye_sources.contains(&ssrc), "BYE of {ssrc:#x}");
    }

    let asks = source_feedback(&compound);
    let has = |kind: RtcpType, fmts: &[u8]| packets.iter().any(|p| p.kind == kind && fmts.contains(&p.count));
    assert_eq!(asks.nack, has(RtcpType::TransportFeedback, &[1]));
    assert_eq!(asks.keyframe, has(RtcpType::PayloadFeedback, &[1, 4]));
    if let Some(media) = media_ssrc(&compound) {
        let named = packets.iter().any(|p| match p.kind {
            RtcpType::ReceiverReport if p.count > 0 => u32::from_be_bytes(word(data, p.offset + 8)) == media,
            RtcpType::SenderReport if p.count > 0 => u32::from_be_bytes(word(data, p.offset + 28)) == media,
            RtcpType::TransportFeedback | RtcpType::PayloadFeedback => {
                // Inside the feedback message itself, never the next packet's header.
                p.offset + 12 <= p.content_end && data[p.offset + 8..p.offset + 12] == media.to_be_bytes()
            }
            _ => false,
        });
        assert!(named, "media SSRC {media:#x} named by a report block or a feedback message of the compound");
    }

    if let Some(info) = sender_info(&compound) {
        let sr = packets.iter().find(|p| p.kind == RtcpType::SenderReport).expect("sender info comes from an SR");
        assert_eq!(info.ssrc.0, u32::from_be_bytes(word(data, sr.offset + 4)));
    }
    let blocks = report_blocks(&compound).count();
    let declared: usize = packets
        .iter()
        .filter(|p| matches!(p.kind, RtcpType::SenderReport | RtcpType::ReceiverReport))
        .map(|p| usize::from(p.count))
        .sum();
    assert!(blocks <= declared, "{blocks} report blocks read, {declared} declared");
    if let Some(cname) = find_cname(&compound, compound.first_ssrc()) {
        let start = cname.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + cname.len() <= data.len(), "the CNAME is inside the compound");
    }

    let mut out = vec![0u8; data.len()];
    let n = Rewrite::default().compound_into(compound.first_ssrc().0, &compound, &mut out);
    assert_eq!(n, Some(data.len()));
    assert_eq!(out, data, "the identity rewrite copies the compound");
    let ssrc = compound.first_ssrc().0;
    let n = translate_feedback(&Rewrite::default(), ssrc, ssrc, &compound, &mut out);
    assert_eq!((n, &out[..]), (Some(data.len()), data), "translating to the same SSRC copies the compound");
    assert_eq!(Rewrite::default().compound_into(ssrc, &compound, &mut out[..data.len() - 1]), None, "no room");
}

/// A parse error points inside the datagram and describes it.
fn check_error(data: &[u8], error: PacketError) {
    match error {
        PacketError::Truncated { offset, needed_bytes, available_bytes } => {
            assert!(needed_bytes > available_bytes && offset <= data.len(), "{error}");
        }
        PacketError::Version { offset, version } => assert!(version != 2 && offset < data.len(), "{error}"),
        PacketError::Padding { offset, .. } | PacketError::PaddingNotLast { offset } => {
            assert!(offset < data.len() && data[offset] & 0x20 != 0, "{error}");
        }
        PacketError::NotRtp { .. } => panic!("the walker does not classify: {error}"),
    }
}

/// The big-endian word at `at` (inside a validated compound).
fn word(data: &[u8], at: usize) -> [u8; 4] {
    [data[at], data[at + 1], data[at + 2], data[at + 3]]
}

/// Per-packet readers, checked against the `rtcp` crate where it parses the same (unpadded) packet.
fn check_packet(data: &[u8], packet: &RtcpPacketRef) {
    let bytes = &data[packet.offset..packet.offset + packet.len_bytes];
    let padded = packet.content_end != packet.offset + packet.len_bytes;
    if packet.kind == RtcpType::SourceDescription {
        let chunks: Vec<usize> = SdesChunks::new(data, packet).map(|c| c.expect("validated SDES")).collect();
        assert_eq!(chunks.len(), usize::from(packet.count));
        assert!(chunks.iter().all(|&at| at + 4 <= packet.content_end), "chunks inside the packet");
    }
    let Some(feedback) = Feedback::read(data, packet) else {
        let feedback_kind = matches!(packet.kind, RtcpType::TransportFeedback | RtcpType::PayloadFeedback);
        assert!(!feedback_kind || packet.content_end - packet.offset < 12, "a feedback message read as none");
        return;
    };
    assert_eq!(feedback.fci.len(), packet.content_end - packet.offset - 12);
    let seqs: Vec<u16> = feedback.nack_seqs().map(|s| s.0).collect();
    let firs: Vec<_> = feedback.fir_entries().collect();
    match feedback.kind {
        FeedbackKind::GenericNack => {
            assert!(seqs.len() <= 17 * (feedback.fci.len() / 4) && seqs.len() >= feedback.fci.len() / 4);
            let theirs = (!padded).then(|| TransportLayerNack::unmarshal(&mut &bytes[..]).ok()).flatten();
            if let Some(theirs) = theirs {
                let expected: Vec<u16> = theirs.nacks.iter().flat_map(|pair| pair.packet_list()).collect();
                assert_eq!(seqs, expected, "NACK sequence numbers as the rtcp crate reads them");
                assert_eq!((theirs.sender_ssrc, theirs.media_ssrc), (feedback.sender_ssrc.0, feedback.media_ssrc.0));
            }
        }
        FeedbackKind::Fir => {
            assert!(seqs.is_empty());
            assert_eq!(firs.len(), feedback.fci.len() / 8);
            // The rtcp crate reads whole entries only (it panics on a partial one).
            let whole = feedback.fci.len() % 8 == 0;
            let theirs = (!padded && whole).then(|| FullIntraRequest::unmarshal(&mut &bytes[..]).ok()).flatten();
            if let Some(theirs) = theirs {
                let expected: Vec<(u32, u8)> = theirs.fir.iter().map(|e| (e.ssrc, e.sequence_number)).collect();
                let ours: Vec<(u32, u8)> = firs.iter().map(|e| (e.ssrc.0, e.seq_nr)).collect();
                assert_eq!(ours, expected, "FIR entries as the rtcp crate reads them");
            }
        }
        FeedbackKind::Pli => {
            assert!(seqs.is_empty() && firs.is_empty());
            let theirs = (!padded).then(|| PictureLossIndication::unmarshal(&mut &bytes[..]).ok()).flatten();
            if let Some(theirs) = theirs {
                assert_eq!((theirs.sender_ssrc, theirs.media_ssrc), (feedback.sender_ssrc.0, feedback.media_ssrc.0));
            }
        }
        FeedbackKind::TransportCc | FeedbackKind::Other => assert!(seqs.is_empty() && firs.is_empty()),
    }
}
