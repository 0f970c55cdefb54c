//! A media peer on loopback: a UDP socket that sends RTP/RTCP built with the `rtp` and `rtcp` crates and
//! collects what it receives.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use webrtc_util::marshal::Marshal;

/// One UDP endpoint.
pub struct Peer {
    socket: UdpSocket,
}

impl Peer {
    /// Binds to `ip:0` (e.g. `127.0.0.1` or `::1`), with a receive buffer large enough for a test's burst
    /// (capped by the host's `net.core.rmem_max`).
    pub fn bind(ip: &str) -> Peer {
        let socket = UdpSocket::bind((ip, 0)).expect("bind peer");
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        Peer { socket }
    }

    /// A second handle on the same socket (e.g. for a thread that answers RTCP while another sends).
    pub fn try_clone(&self) -> Peer {
        Peer { socket: self.socket.try_clone().expect("clone socket") }
    }

    /// Its address, to put in a config.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local addr")
    }

    /// Sends one datagram.
    pub fn send(&self, bytes: &[u8], to: SocketAddr) {
        self.socket.send_to(bytes, to).expect("send");
    }

    /// Receives until `count` datagrams arrived or `timeout` passed.
    pub fn recv(&self, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < count && Instant::now() < deadline {
            if let Ok((n, _)) = self.socket.recv_from(&mut buf) {
                got.push(buf[..n].to_vec());
            }
        }
        got
    }

    /// Receives for `quiet` and returns everything that arrived (to check that nothing does).
    pub fn drain(&self, quiet: Duration) -> Vec<Vec<u8>> {
        self.recv(usize::MAX, quiet)
    }

    /// The RTP packets it receives (RTCP, payload types 200..=204, left out): `expected` of them within `timeout`,
    /// then whatever else comes within 300 ms (to catch extras).
    pub fn recv_rtp(&self, expected: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let is_rtp = |datagram: &Vec<u8>| !(200..=204).contains(&datagram[1]);
        let mut got: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + timeout;
        while got.len() < expected && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            got.extend(self.recv(expected - got.len(), left).into_iter().filter(is_rtp));
        }
        got.extend(self.drain(Duration::from_millis(300)).into_iter().filter(is_rtp));
        got
    }
}

/// An RTP packet with the given header fields and payload.
pub fn rtp_packet(ssrc: u32, seq: u16, timestamp: u32, payload_type: u8, marker: bool, payload: &[u8]) -> Vec<u8> {
    let packet = rtp::packet::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type,
            sequence_number: seq,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    };
    packet.marshal().expect("marshal rtp").to_vec()
}

/// An RTCP compound: a sender report of `ssrc` with `rtp_time`, then an SDES CNAME chunk for `ssrc`.
pub fn rtcp_sender_report(ssrc: u32, rtp_time: u32) -> Vec<u8> {
    let sr = rtcp::sender_report::SenderReport {
        ssrc,
        ntp_time: 0x0102_0304_0506_0708,
        rtp_time,
        packet_count: 10,
        octet_count: 1000,
        ..Default::default()
    };
    let sdes = rtcp::source_description::SourceDescription {
        chunks: vec![rtcp::source_description::SourceDescriptionChunk {
            source: ssrc,
            items: vec![rtcp::source_description::SourceDescriptionItem {
                sdes_type: rtcp::source_description::SdesType::SdesCname,
                text: Bytes::from_static(b"publisher@test"),
            }],
        }],
    };
    let mut out = sr.marshal().expect("marshal sr").to_vec();
    out.extend_from_slice(&sdes.marshal().expect("marshal sdes"));
    out
}

/// The fixed-header fields of an RTP packet a test checks, and its payload (no CSRCs or extension expected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpFields {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Everything after the 12-byte fixed header.
    pub payload: Vec<u8>,
}

/// Reads the fixed RTP header of `packet`; fails the test when it is not a 12-byte-header RTP packet.
pub fn rtp_fields(packet: &[u8]) -> RtpFields {
    assert!(packet.len() >= 12 && packet[0] == 0x80, "not a plain RTP packet: {packet:02x?}");
    RtpFields {
        payload_type: packet[1] & 0x7f,
        seq: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        payload: packet[12..].to_vec(),
    }
}

/// An RTCP generic NACK (RFC 4585) from `sender_ssrc` asking `media_ssrc`'s sender for `seqs`, built with
/// the `rtcp` crate.
pub fn rtcp_generic_nack(sender_ssrc: u32, media_ssrc: u32, seqs: &[u16]) -> Vec<u8> {
    use rtcp::transport_feedbacks::transport_layer_nack::{nack_pairs_from_sequence_numbers, TransportLayerNack};
    let nack = TransportLayerNack { sender_ssrc, media_ssrc, nacks: nack_pairs_from_sequence_numbers(seqs) };
    nack.marshal().expect("marshal NACK").to_vec()
}

/// The sequence numbers the generic NACKs of RTCP compound `bytes` ask for (empty for other RTCP, or for
/// anything that does not parse), read with the `rtcp` crate.
pub fn rtcp_generic_nack_seqs(bytes: &[u8]) -> Vec<u16> {
    use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    let Ok(packets) = rtcp::packet::unmarshal(&mut &bytes[..]) else {
        return Vec::new();
    };
    packets
        .iter()
        .filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>())
        .flat_map(|nack| nack.nacks.iter().flat_map(|pair| pair.packet_list()))
        .collect()
}
