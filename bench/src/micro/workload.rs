//! What the microbenchmark feeds: one video stream and the subscribers' feedback, on virtual time.
//!
//! Owns [`VideoStream`] (one 1200-byte RTP packet at 90 kHz, built once with the `rtp` crate and
//! then only patched in place: sequence number, timestamp, marker, payload type and the
//! transport-wide sequence number of its header extension), the times packets arrive at, and the
//! subscriber's generic NACK and PLI built once with the `rtcp` crate. Must never read a clock
//! (every time is the start plus a `Duration`) nor allocate per packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringfwd_dataplane::core::interceptor::RtpAttrs;
use ringfwd_dataplane::core::{RtpTimestamp, SeqNo, Ssrc};
use webrtc_util::marshal::{Marshal, MarshalSize};

use super::MicroError;

/// Packets per second of the stream: 30 frames/s of [`PACKETS_PER_FRAME`] packets (≈ 2.3 Mbit/s).
pub const PACKETS_PER_SECOND: u64 = 240;
/// Packets per video frame (all with the frame's timestamp, the marker on the last).
pub const PACKETS_PER_FRAME: u64 = 8;
/// RTP clock of video.
pub const CLOCK_RATE_HZ: u32 = 90_000;
/// Whole datagram, bytes.
pub const PACKET_BYTES: usize = 1200;
/// With gaps, one sequence number in this many never arrives (1 %).
pub const GAP_EVERY: u64 = 100;
/// With foreign payload types, one packet in this many carries [`FOREIGN_PAYLOAD_TYPE`] (1 %).
pub const FOREIGN_EVERY: u64 = 100;
/// The negotiated payload type of the video.
pub const PAYLOAD_TYPE: u8 = 96;
/// A payload type the subscriber did not negotiate.
pub const FOREIGN_PAYLOAD_TYPE: u8 = 97;
/// The publisher's SSRC.
pub const PUBLISHER_SSRC: u32 = 0x5eed_0001;
/// The SSRC the subscriber receives (egress chains) and the first of the forwarder's subscriptions.
pub const OUT_SSRC: u32 = 0x5eed_1000;
/// The subscriber's own SSRC (sender of its NACKs and PLIs).
pub const SUBSCRIBER_SSRC: u32 = 0x5eed_2000;
/// The first sequence number (close to the 16-bit wrap, so long runs cross it).
const FIRST_SEQ: u64 = 65_000;
/// RTP ticks per frame at 30 frames/s.
const TICKS_PER_FRAME: u64 = CLOCK_RATE_HZ as u64 / 30;

/// The publisher's address.
pub const PUBLISHER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);

/// One video stream whose packet buffer is patched to each delivered packet in turn.
#[derive(Debug)]
pub struct VideoStream {
    t0: Instant,
    buf: Vec<u8>,
    /// Offset of the two bytes of the transport-wide sequence number.
    twcc_offset: usize,
    gaps: bool,
    foreign: bool,
    /// The SSRC the attributes carry (the publisher's on ingress, the subscriber's on egress).
    attrs_ssrc: Ssrc,
}

impl VideoStream {
    /// A stream starting at `t0` whose packets carry the transport-wide sequence number under the
    /// one-byte extension id `twcc_id`; `gaps`: 1 % of sequence numbers never arrive; `foreign`: 1 %
    /// of packets carry a payload type the subscriber did not negotiate.
    pub fn new(t0: Instant, twcc_id: u8, gaps: bool, foreign: bool) -> Result<VideoStream, MicroError> {
        let template = |message: String| MicroError::Template { message };
        let mut header = rtp::header::Header {
            version: 2,
            payload_type: PAYLOAD_TYPE,
            ssrc: PUBLISHER_SSRC,
            extension: true,
            extension_profile: 0xbede,
            ..Default::default()
        };
        header.set_extension(twcc_id, Bytes::from_static(&[0, 0])).map_err(|e| template(e.to_string()))?;
        let payload_bytes = PACKET_BYTES.saturating_sub(header.marshal_size());
        let packet = rtp::packet::Packet { header, payload: Bytes::from(vec![0xab; payload_bytes]) };
        let buf = packet.marshal().map_err(|e| template(e.to_string()))?.to_vec();
        // RFC 8285 one-byte form: the 4-byte 0xBEDE word at 12, then the element header (id, length-1).
        let twcc_offset = 17;
        if buf.len() != PACKET_BYTES || buf.get(16) != Some(&(twcc_id << 4 | 1)) {
            return Err(template(format!("unexpected layout: {} bytes, element header {:?}", buf.len(), buf.get(16))));
        }
        Ok(VideoStream { t0, buf, twcc_offset, gaps, foreign, attrs_ssrc: Ssrc(PUBLISHER_SSRC) })
    }

    /// The same stream as a subscriber's egress chain sees it (attributes carry [`OUT_SSRC`]).
    pub fn as_egress(mut self) -> VideoStream {
        self.attrs_ssrc = Ssrc(OUT_SSRC);
        self
    }

    /// The position in the sequence (counting the gaps) of the `delivered`-th delivered packet.
    pub fn position(&self, delivered: u64) -> u64 {
        if self.gaps {
            delivered + delivered / (GAP_EVERY - 1)
        } else {
            delivered
        }
    }

    /// The RTP sequence number at `position`.
    pub fn seq_at(position: u64) -> SeqNo {
        SeqNo((FIRST_SEQ + position) as u16)
    }

    /// When the packet at `position` arrives.
    pub fn arrival_at(&self, position: u64) -> Instant {
        self.t0 + Duration::from_nanos(position * 1_000_000_000 / PACKETS_PER_SECOND)
    }

    /// Patches the buffer to the `delivered`-th delivered packet and returns its attributes.
    pub fn packet(&mut self, delivered: u64) -> RtpAttrs {
        let position = self.position(delivered);
        let seq = Self::seq_at(position);
        let timestamp = RtpTimestamp((position / PACKETS_PER_FRAME * TICKS_PER_FRAME) as u32);
        let marker = position % PACKETS_PER_FRAME == PACKETS_PER_FRAME - 1;
        let foreign = self.foreign && position % FOREIGN_EVERY == FOREIGN_EVERY / 2;
        let payload_type = if foreign { FOREIGN_PAYLOAD_TYPE } else { PAYLOAD_TYPE };
        self.buf[1] = u8::from(marker) << 7 | payload_type;
        self.buf[2..4].copy_from_slice(&seq.0.to_be_bytes());
        self.buf[4..8].copy_from_slice(&timestamp.0.to_be_bytes());
        self.buf[self.twcc_offset..self.twcc_offset + 2].copy_from_slice(&(position as u16).to_be_bytes());
        RtpAttrs {
            arrival: self.arrival_at(position),
            src: PUBLISHER,
            ssrc: self.attrs_ssrc,
            seq,
            ext_seq: (1 << 16) + FIRST_SEQ + position,
            timestamp,
            payload_type,
            source_payload_type: payload_type,
            marker,
            len_bytes: self.buf.len(),
            payload_bytes: self.buf.len() - 20,
            extension_offset: Some(12),
        }
    }

    /// The current packet's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// A subscriber's generic NACK asking for one packet, already in the publisher's SSRC (as an
/// ingress chain sees it); [`set_nack_pid`] changes the packet asked for.
pub fn nack() -> Result<Vec<u8>, MicroError> {
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    let nack = TransportLayerNack {
        sender_ssrc: SUBSCRIBER_SSRC,
        media_ssrc: PUBLISHER_SSRC,
        nacks: vec![NackPair { packet_id: 0, lost_packets: 0 }],
    };
    marshal(vec![Box::new(nack)])
}

/// Sets the packet id (the one sequence number asked for) of a [`nack`].
pub fn set_nack_pid(nack: &mut [u8], seq: SeqNo) {
    // Header (4), sender SSRC (4), media SSRC (4), then the FCI: PID (2), BLP (2).
    nack[12..14].copy_from_slice(&seq.0.to_be_bytes());
}

/// The publisher's compound as a user agent sends it: an SR with one report block, then an SDES chunk telling more
/// than a receiver needs (CNAME, NAME, EMAIL, TOOL).
pub fn sender_compound() -> Result<Vec<u8>, MicroError> {
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};
    let report = ReceptionReport { ssrc: SUBSCRIBER_SSRC, last_sequence_number: 7, ..Default::default() };
    let sr = SenderReport { ssrc: PUBLISHER_SSRC, packet_count: 100, reports: vec![report], ..Default::default() };
    let item = |sdes_type, text: &str| SourceDescriptionItem { sdes_type, text: text.as_bytes().to_vec().into() };
    let items = vec![
        item(SdesType::SdesCname, "cam-7.example"),
        item(SdesType::SdesName, "Alice"),
        item(SdesType::SdesEmail, "alice.example.org"),
        item(SdesType::SdesTool, "camera-app"),
    ];
    let sdes = SourceDescription { chunks: vec![SourceDescriptionChunk { source: PUBLISHER_SSRC, items }] };
    marshal(vec![Box::new(sr), Box::new(sdes)])
}

/// A subscriber's PLI for the publisher's stream.
pub fn pli() -> Result<Vec<u8>, MicroError> {
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    marshal(vec![Box::new(PictureLossIndication { sender_ssrc: SUBSCRIBER_SSRC, media_ssrc: PUBLISHER_SSRC })])
}

fn marshal(packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>>) -> Result<Vec<u8>, MicroError> {
    rtcp::packet::marshal(&packets).map(|b| b.to_vec()).map_err(|e| MicroError::Template { message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use ringfwd_dataplane::core::interceptor::builtin::wire_feedback::read_transport_seq;
    use ringfwd_dataplane::core::RtpView;
    use webrtc_util::marshal::Unmarshal;

    use super::*;

    #[test]
    fn patched_packets_parse_as_the_attributes_say() {
        let t0 = Instant::now();
        let mut stream = VideoStream::new(t0, 3, true, true).unwrap();
        let mut positions = Vec::new();
        for delivered in [0u64, 7, 98, 99, 150, 600] {
            let attrs = stream.packet(delivered);
            let view = RtpView::parse(stream.bytes()).unwrap();
            assert_eq!((view.seq(), view.timestamp(), view.marker()), (attrs.seq, attrs.timestamp, attrs.marker));
            assert_eq!(view.payload_type(), attrs.payload_type);
            assert_eq!(view.payload().len(), attrs.payload_bytes);
            assert_eq!(attrs.len_bytes, PACKET_BYTES);
            let position = stream.position(delivered);
            assert_eq!(read_transport_seq(stream.bytes(), attrs.extension_offset, 3), Some(SeqNo(position as u16)));
            assert_eq!(attrs.ext_seq & 0xffff, u64::from(attrs.seq.0), "extended number matches the wire");
            positions.push(position);
        }
        assert_eq!(positions, [0, 7, 98, 100, 151, 606], "one number in 100 (99, 199, ...) is skipped");
        assert_eq!(stream.packet(0).arrival, t0);
        assert_eq!(stream.packet(240).arrival - t0, Duration::from_nanos(242 * 1_000_000_000 / 240));
        assert_eq!(stream.packet(50).payload_type, FOREIGN_PAYLOAD_TYPE);
        assert!(stream.packet(7).marker);
        assert_eq!(stream.packet(8).timestamp.0 - stream.packet(7).timestamp.0, 3000, "next frame");
    }

    #[test]
    fn nack_asks_for_the_patched_packet() {
        let mut bytes = nack().unwrap();
        set_nack_pid(&mut bytes, SeqNo(4242));
        let parsed =
            rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack::unmarshal(&mut &bytes[..]).unwrap();
        assert_eq!(parsed.media_ssrc, PUBLISHER_SSRC);
        assert_eq!(parsed.nacks.len(), 1);
        assert_eq!((parsed.nacks[0].packet_id, parsed.nacks[0].lost_packets), (4242, 0));
        assert_eq!(pli().unwrap().len(), 12);
    }
}
