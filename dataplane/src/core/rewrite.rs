//! Per-subscription header rewriting: outgoing SSRC, sequence/timestamp offsets, payload-type map.
//!
//! Owns [`Rewrite`]: it produces the 12-byte RTP fixed header a subscriber receives (the rest of the
//! packet is sent unchanged from the receive buffer) and a rewritten copy of an RTCP compound.
//! Must never touch the RTP payload, CSRCs or extensions, never change an RTCP field that does not
//! name the stream's SSRC, and never allocate.

use super::packet::{be_u32, RtcpCompound, RtcpType, SdesChunks};

/// The identity payload-type map: every type maps to itself.
pub const IDENTITY_PAYLOAD_TYPE_MAP: [u8; 128] = {
    let mut map = [0u8; 128];
    let mut pt = 0;
    while pt < 128 {
        map[pt] = pt as u8;
        pt += 1;
    }
    map
};

/// How one subscription's copy of a stream differs from what the publisher sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// SSRC the subscriber sees; `None` keeps the publisher's.
    pub out_ssrc: Option<u32>,
    /// Added (wrapping) to every sequence number.
    pub seq_offset: u16,
    /// Added (wrapping) to every RTP timestamp, and to the RTP timestamp of the stream's sender reports.
    pub ts_offset: u32,
    /// Outgoing payload type indexed by incoming payload type; every entry must be below 128.
    pub payload_type_map: [u8; 128],
}

impl Default for Rewrite {
    fn default() -> Rewrite {
        Rewrite { out_ssrc: None, seq_offset: 0, ts_offset: 0, payload_type_map: IDENTITY_PAYLOAD_TYPE_MAP }
    }
}

impl Rewrite {
    /// True when this rewrite changes nothing.
    pub fn is_identity(&self) -> bool {
        *self == Rewrite::default()
    }

    /// The first entry of the payload-type map that is not a valid payload type, or rewrites a type to one that
    /// reads as RTCP with the marker set ([`super::packet::sendable_payload_type`]), as `(incoming, outgoing)`. An
    /// identity entry is never invalid: a packet ringfwd receives as RTP goes on as it came.
    pub fn invalid_payload_type(&self) -> Option<(u8, u8)> {
        (0u8..128)
            .zip(self.payload_type_map)
            .find(|&(from, to)| from != to && !super::packet::sendable_payload_type(to))
    }

    /// The rewritten RTP fixed header of `pkt`, a validated RTP packet of at least 12 bytes.
    ///
    /// Keeps version, padding, extension, CSRC count and marker; maps the payload type; adds the
    /// offsets to the sequence number and timestamp (wrapping); sets the SSRC. The caller sends it
    /// followed by `pkt[12..]`. A shorter `pkt` yields a header zero-filled past its end, never a panic.
    pub fn rtp_header(&self, pkt: &[u8]) -> [u8; 12] {
        let mut header = [0u8; 12];
        let n = pkt.len().min(12);
        header[..n].copy_from_slice(&pkt[..n]);
        let pt = header[1] & 0x7f;
        header[1] = (header[1] & 0x80) | (self.payload_type_map[usize::from(pt)] & 0x7f);
        let seq = u16::from_be_bytes([header[2], header[3]]).wrapping_add(self.seq_offset);
        header[2..4].copy_from_slice(&seq.to_be_bytes());
        let ts = be_u32(&header, 4).wrapping_add(self.ts_offset);
        header[4..8].copy_from_slice(&ts.to_be_bytes());
        if let Some(ssrc) = self.out_ssrc {
            header[8..12].copy_from_slice(&ssrc.to_be_bytes());
        }
        header
    }

    /// Copies the RTCP compound `pkt` into `out` and rewrites, where they equal `stream_ssrc`: the SR
    /// sender SSRC (and then its RTP timestamp, `+ ts_offset`), the RR sender SSRC, each SDES chunk
    /// SSRC, each BYE SSRC, and the sender SSRC (bytes 4..8) of APP, RTPFB, PSFB and XR packets.
    /// Report blocks, media SSRCs of feedback and everything else stay byte-identical.
    ///
    /// Returns the length written, or `None` if `pkt` is not a valid compound or `out` is too small.
    pub fn rtcp_into(&self, stream_ssrc: u32, pkt: &[u8], out: &mut [u8]) -> Option<usize> {
        self.compound_into(stream_ssrc, &RtcpCompound::parse(pkt).ok()?, out)
    }

    /// [`Rewrite::rtcp_into`] for a compound already validated (the forwarder parses each datagram once,
    /// then rewrites it for every subscription). `None` if `out` is too small.
    pub fn compound_into(&self, stream_ssrc: u32, compound: &RtcpCompound<'_>, out: &mut [u8]) -> Option<usize> {
        let pkt = compound.bytes();
        let out = out.get_mut(..pkt.len())?;
        out.copy_from_slice(pkt);
        let new_ssrc = self.out_ssrc.unwrap_or(stream_ssrc).to_be_bytes();
        let set_ssrc_at = |out: &mut [u8], at: usize| -> bool {
            if be_u32(out, at) == stream_ssrc {
                out[at..at + 4].copy_from_slice(&new_ssrc);
                true
            } else {
                false
            }
        };
        for packet in compound.packets() {
            let sender = packet.offset + 4;
            match packet.kind {
                RtcpType::SenderReport => {
                    if set_ssrc_at(out, sender) {
                        let ts_at = packet.offset + 16;
                        let ts = be_u32(out, ts_at).wrapping_add(self.ts_offset);
                        out[ts_at..ts_at + 4].copy_from_slice(&ts.to_be_bytes());
                    }
                }
                RtcpType::ReceiverReport
                | RtcpType::App
                | RtcpType::TransportFeedback
                | RtcpType::PayloadFeedback
                | RtcpType::ExtendedReport => {
                    set_ssrc_at(out, sender);
                }
                RtcpType::Goodbye => {
                    for i in 0..usize::from(packet.count) {
                        set_ssrc_at(out, sender + 4 * i);
                    }
                }
                RtcpType::SourceDescription => {
                    for chunk in SdesChunks::new(pkt, &packet) {
                        set_ssrc_at(out, chunk.ok()?);
                    }
                }
                RtcpType::Other(_) => {}
            }
        }
        Some(pkt.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::interceptor::spec::{EgressSpec, RtxParams};
    use crate::core::CommandError;
    use bytes::Bytes;
    use proptest::prelude::*;
    use rtcp::extended_report::{ExtendedReport, ReceiverReferenceTimeReportBlock};
    use rtcp::goodbye::Goodbye;
    use rtcp::packet::Packet;
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    use webrtc_util::marshal::Marshal;

    const STREAM: u32 = 0x1111_1111;
    const OTHER: u32 = 0x2222_2222;
    const OUT: u32 = 0x3333_3333;

    fn rtp_packet(seq: u16, ts: u32, pt: u8, marker: bool, csrc: Vec<u32>, payload: &[u8]) -> Vec<u8> {
        let packet = rtp::packet::Packet {
            header: rtp::header::Header {
                version: 2,
                marker,
                payload_type: pt,
                sequence_number: seq,
                timestamp: ts,
                ssrc: STREAM,
                csrc,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        packet.marshal().expect("marshal rtp").to_vec()
    }

    fn rewrite(seq_offset: u16, ts_offset: u32) -> Rewrite {
        let mut map = IDENTITY_PAYLOAD_TYPE_MAP;
        map[96] = 100;
        Rewrite { out_ssrc: Some(OUT), seq_offset, ts_offset, payload_type_map: map }
    }

    fn parse_rtp(bytes: &[u8]) -> rtp::packet::Packet {
        use webrtc_util::marshal::Unmarshal;
        rtp::packet::Packet::unmarshal(&mut &bytes[..]).expect("unmarshal rtp")
    }

    #[test]
    fn rtp_header_rewrites_only_its_fields() {
        let pkt = rtp_packet(65_530, u32::MAX - 5, 96, true, vec![7, 8], b"payload");
        let rw = rewrite(10, 10);
        let header = rw.rtp_header(&pkt);
        let mut out = header.to_vec();
        out.extend_from_slice(&pkt[12..]);
        let before = parse_rtp(&pkt);
        let after = parse_rtp(&out);
        assert_eq!(after.header.sequence_number, 4); // 65530 + 10 wraps
        assert_eq!(after.header.timestamp, 4); // 2^32 - 6 + 10 wraps
        assert_eq!(after.header.ssrc, OUT);
        assert_eq!(after.header.payload_type, 100);
        assert!(after.header.marker);
        assert_eq!(after.header.csrc, before.header.csrc);
        assert_eq!(after.payload, before.payload);
        assert_eq!(out[0], pkt[0]); // V, P, X, CC untouched
        assert_eq!(&out[12..], &pkt[12..]);
    }

    #[test]
    fn identity_rewrite_is_byte_identical() {
        let pkt = rtp_packet(1, 2, 111, false, vec![], b"x");
        assert!(Rewrite::default().is_identity());
        assert_eq!(Rewrite::default().rtp_header(&pkt), pkt[..12]);
        assert_eq!(Rewrite::default().invalid_payload_type(), None);
        let mut bad = Rewrite::default();
        bad.payload_type_map[5] = 200;
        assert_eq!(bad.invalid_payload_type(), Some((5, 200)));
        // With the marker set, 72 goes out as 0xc8: an SR to a peer that muxes RTCP (RFC 5761).
        let mut rtcp_like = Rewrite::default();
        rtcp_like.payload_type_map[96] = 72;
        assert_eq!(rtcp_like.invalid_payload_type(), Some((96, 72)));
        assert_eq!(rtcp_like.rtp_header(&rtp_packet(1, 2, 96, true, vec![], b"x"))[1], 0xc8);
        let spec =
            |payload_type| EgressSpec { rtx: Some(RtxParams { ssrc: 1, payload_type }), ..EgressSpec::default() };
        assert_eq!(spec(80).check_rtx(), Err(CommandError::RtxPayloadType { payload_type: 80 }));
        assert_eq!(spec(97).check_rtx(), Ok(()));
    }

    #[test]
    fn short_input_does_not_panic() {
        assert_eq!(rewrite(1, 1).rtp_header(&[0x80]).len(), 12);
        let mut out = [0u8; 64];
        assert_eq!(rewrite(1, 1).rtcp_into(STREAM, &[0x80, 200], &mut out), None);
    }

    fn marshal(packets: Vec<Box<dyn Packet + Send + Sync>>) -> Vec<u8> {
        rtcp::packet::marshal(&packets).expect("marshal rtcp").to_vec()
    }

    fn rewritten(rw: &Rewrite, pkt: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; pkt.len()];
        let n = rw.rtcp_into(STREAM, pkt, &mut out).expect("valid compound");
        assert_eq!(n, pkt.len());
        out
    }

    /// Asserts `a` and `b` differ only at the 4-byte fields starting at `at`.
    fn assert_identical_except(a: &[u8], b: &[u8], at: &[usize]) {
        assert_eq!(a.len(), b.len());
        for i in 0..a.len() {
            if !at.iter().any(|&f| (f..f + 4).contains(&i)) {
                assert_eq!(a[i], b[i], "byte {i} changed");
            }
        }
    }

    #[test]
    fn rtcp_rewrites_every_stream_ssrc_field() {
        let reports = vec![ReceptionReport { ssrc: STREAM, last_sequence_number: 5, ..Default::default() }];
        let pkt = marshal(vec![
            Box::new(SenderReport {
                ssrc: STREAM,
                ntp_time: 0x0102_0304_0506_0708,
                rtp_time: u32::MAX - 1,
                packet_count: 9,
                octet_count: 99,
                reports: reports.clone(),
                ..Default::default()
            }),
            Box::new(SourceDescription {
                chunks: vec![
                    SourceDescriptionChunk {
                        source: STREAM,
                        items: vec![SourceDescriptionItem { sdes_type: SdesType::SdesCname, text: "cname".into() }],
                    },
                    SourceDescriptionChunk {
                        source: OTHER,
                        items: vec![SourceDescriptionItem { sdes_type: SdesType::SdesName, text: "n".into() }],
                    },
                ],
            }),
            Box::new(ReceiverReport { ssrc: STREAM, reports, ..Default::default() }),
            Box::new(PictureLossIndication { sender_ssrc: STREAM, media_ssrc: STREAM }),
            Box::new(TransportLayerNack {
                sender_ssrc: STREAM,
                media_ssrc: OTHER,
                nacks: vec![NackPair { packet_id: 3, lost_packets: 0 }],
            }),
            Box::new(ExtendedReport {
                sender_ssrc: STREAM,
                reports: vec![Box::new(ReceiverReferenceTimeReportBlock { ntp_timestamp: 42 })],
            }),
            Box::new(Goodbye { sources: vec![OTHER, STREAM], reason: "done".into() }),
        ]);
        let out = rewritten(&rewrite(0, 3), &pkt);
        let walked = RtcpCompound::parse(&out).expect("still valid");
        let offsets: Vec<usize> = walked.packets().map(|p| p.offset).collect();
        let (sr, sdes, rr, pli, nack, xr, bye) =
            (offsets[0], offsets[1], offsets[2], offsets[3], offsets[4], offsets[5], offsets[6]);
        let changed = [sr + 4, sr + 16, sdes + 4, rr + 4, pli + 4, nack + 4, xr + 4, bye + 8];
        assert_identical_except(&pkt, &out, &changed);
        for at in [sr + 4, sdes + 4, rr + 4, pli + 4, nack + 4, xr + 4, bye + 8] {
            assert_eq!(be_u32(&out, at), OUT, "field at {at}");
        }
        assert_eq!(be_u32(&out, sr + 16), 1); // rtp_time wrapped: 2^32 - 2 + 3
                                              // Not the stream's: second SDES chunk, first BYE source, PLI media SSRC, report blocks.
        assert_eq!(be_u32(&out, bye + 4), OTHER);
        assert_eq!(be_u32(&out, pli + 8), STREAM);
        assert_eq!(be_u32(&out, sr + 28), STREAM);

        // And the rtcp crate agrees with the offsets.
        let decoded = rtcp::packet::unmarshal(&mut &out[..]).expect("unmarshal");
        let sr_decoded = decoded[0].as_any().downcast_ref::<SenderReport>().expect("SR first");
        assert_eq!((sr_decoded.ssrc, sr_decoded.rtp_time, sr_decoded.reports[0].ssrc), (OUT, 1, STREAM));
    }

    #[test]
    fn rtcp_of_another_ssrc_is_untouched() {
        let pkt = marshal(vec![
            Box::new(SenderReport { ssrc: OTHER, rtp_time: 5, ..Default::default() }),
            Box::new(Goodbye { sources: vec![OTHER], reason: Bytes::new() }),
        ]);
        assert_eq!(rewritten(&rewrite(0, 1000), &pkt), pkt);
    }

    #[test]
    fn rtcp_app_sender_rewritten() {
        // APP (204): header, SSRC, name, data. The rtcp crate has no APP type; built by hand.
        let mut pkt = marshal(vec![Box::new(ReceiverReport { ssrc: OTHER, ..Default::default() })]);
        pkt.extend_from_slice(&[0x80, 204, 0, 3]);
        pkt.extend_from_slice(&STREAM.to_be_bytes());
        pkt.extend_from_slice(b"NAMEdata");
        let out = rewritten(&rewrite(0, 0), &pkt);
        assert_identical_except(&pkt, &out, &[12]);
        assert_eq!(be_u32(&out, 12), OUT);
    }

    #[test]
    fn rtcp_into_needs_room_and_validity() {
        let pkt = marshal(vec![Box::new(ReceiverReport { ssrc: STREAM, ..Default::default() })]);
        let mut small = [0u8; 4];
        assert_eq!(rewrite(0, 0).rtcp_into(STREAM, &pkt, &mut small), None);
        let mut bad = pkt.clone();
        bad[3] = 9;
        assert_eq!(rewrite(0, 0).rtcp_into(STREAM, &bad, &mut [0u8; 64]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn rtp_offsets_wrap(seq: u16, ts: u32, seq_offset: u16, ts_offset: u32, pt in 0u8..128, marker: bool) {
            let pkt = rtp_packet(seq, ts, pt, marker, vec![], b"abc");
            let rw = Rewrite { out_ssrc: None, seq_offset, ts_offset, payload_type_map: IDENTITY_PAYLOAD_TYPE_MAP };
            let header = rw.rtp_header(&pkt);
            prop_assert_eq!(u16::from_be_bytes([header[2], header[3]]), seq.wrapping_add(seq_offset));
            prop_assert_eq!(be_u32(&header, 4), ts.wrapping_add(ts_offset));
            prop_assert_eq!(header[1], pkt[1]);
            prop_assert_eq!(&header[8..12], &pkt[8..12]);
            prop_assert_eq!(header[0], pkt[0]);
        }

        #[test]
        fn sr_timestamp_wraps(rtp_time: u32, ts_offset: u32) {
            let pkt = marshal(vec![Box::new(SenderReport { ssrc: STREAM, rtp_time, ..Default::default() })]);
            let out = rewritten(&rewrite(0, ts_offset), &pkt);
            prop_assert_eq!(be_u32(&out, 16), rtp_time.wrapping_add(ts_offset));
            assert_identical_except(&pkt, &out, &[4, 16]);
        }

        #[test]
        fn random_rtcp_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), ssrc: u32) {
            let mut out = [0u8; 256];
            if let Some(n) = rewrite(1, 1).rtcp_into(ssrc, &bytes, &mut out) {
                prop_assert_eq!(n, bytes.len());
                prop_assert!(RtcpCompound::parse(&out[..n]).is_ok());
            }
        }
    }
}
