//! The IP + UDP datagram a tapped packet is recorded as (pcap link type RAW), so a capture tool decodes
//! the recording as the RTP/RTCP over UDP it was on the wire.
//!
//! Owns [`write_frame`]: an IPv4 or IPv6 header and a UDP header (built with `etherparse`) from the
//! publisher's address to the media address, with lengths of the packet as received, followed by the
//! bytes kept. The UDP checksum is computed when every byte was kept and is 0 (IPv4: "none"; IPv6: left
//! for the reader to flag) when the packet was truncated. Must never panic on any length: a datagram
//! that cannot be described is an error the caller counts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use etherparse::{IpNumber, Ipv4Header, Ipv6Header, UdpHeader};

/// Hop limit written in the synthesized IP header.
const HOP_LIMIT: u8 = 64;
/// The longest IP + UDP header written: IPv6 (40) + UDP (8).
pub const MAX_HEADER_BYTES: usize = Ipv6Header::LEN + UdpHeader::LEN;

/// Why a packet could not be written as a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a UDP datagram of {orig_len_bytes} payload bytes does not fit the IP and UDP length fields")]
pub struct FrameError {
    /// The payload length that did not fit.
    pub orig_len_bytes: usize,
}

/// The address as recorded: an IPv4-mapped IPv6 address (a dual-stack socket) as plain IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// The local end of a recorded datagram from `src`: the first of `media` of the same address family,
/// else the unspecified address of that family with the first media port.
pub fn local_for(src: SocketAddr, media: &[SocketAddr]) -> SocketAddr {
    let src = canonical(src);
    let same_family = media.iter().map(|m| canonical(*m)).find(|m| m.is_ipv4() == src.is_ipv4());
    same_family.unwrap_or_else(|| {
        let port = media.first().map_or(0, SocketAddr::port);
        let ip = if src.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
        SocketAddr::new(ip, port)
    })
}

/// Replaces `out` with an IP + UDP datagram from `src` to `dst` (the same family; [`canonical`] first)
/// whose UDP payload was `orig_len_bytes` long, of which `kept` are its first bytes. Returns the
/// datagram's length as it was on the wire (`out` is shorter when the payload was truncated).
pub fn write_frame(
    src: SocketAddr,
    dst: SocketAddr,
    orig_len_bytes: usize,
    kept: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, FrameError> {
    out.clear();
    let err = FrameError { orig_len_bytes };
    let complete = kept.len() == orig_len_bytes;
    let udp_len = u16::try_from(UdpHeader::LEN + orig_len_bytes).map_err(|_| err)?;
    let udp = |checksum| UdpHeader { source_port: src.port(), destination_port: dst.port(), length: udp_len, checksum };
    match (canonical(src).ip(), canonical(dst).ip()) {
        (IpAddr::V4(from), IpAddr::V4(to)) => {
            let mut ip =
                Ipv4Header::new(udp_len, HOP_LIMIT, IpNumber::UDP, from.octets(), to.octets()).map_err(|_| err)?;
            ip.header_checksum = ip.calc_header_checksum();
            let checksum = if complete { udp(0).calc_checksum_ipv4(&ip, kept).map_err(|_| err)? } else { 0 };
            out.extend_from_slice(&ip.to_bytes());
            out.extend_from_slice(&udp(checksum).to_bytes());
        }
        (IpAddr::V6(from), IpAddr::V6(to)) => {
            let ip = Ipv6Header {
                payload_length: udp_len,
                next_header: IpNumber::UDP,
                hop_limit: HOP_LIMIT,
                source: from.octets(),
                destination: to.octets(),
                ..Default::default()
            };
            let checksum = if complete { udp(0).calc_checksum_ipv6(&ip, kept).map_err(|_| err)? } else { 0 };
            out.extend_from_slice(&ip.to_bytes());
            out.extend_from_slice(&udp(checksum).to_bytes());
        }
        // Mixed families cannot be one datagram: the caller picks `dst` of `src`'s family.
        _ => return Err(err),
    }
    let wire_len = out.len() + orig_len_bytes;
    out.extend_from_slice(kept);
    Ok(wire_len)
}

#[cfg(test)]
mod tests {
    use etherparse::{LaxNetSlice, LaxSlicedPacket, NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    fn udp_of(frame: &[u8]) -> (SocketAddr, SocketAddr, Vec<u8>, u16) {
        let sliced = SlicedPacket::from_ip(frame).expect("a valid datagram");
        let (src, dst) = match sliced.net.expect("ip") {
            NetSlice::Ipv4(v4) => (IpAddr::V4(v4.header().source_addr()), IpAddr::V4(v4.header().destination_addr())),
            NetSlice::Ipv6(v6) => (IpAddr::V6(v6.header().source_addr()), IpAddr::V6(v6.header().destination_addr())),
            other => panic!("{other:?}"),
        };
        let Some(TransportSlice::Udp(udp)) = sliced.transport else { panic!("not udp") };
        (
            SocketAddr::new(src, udp.source_port()),
            SocketAddr::new(dst, udp.destination_port()),
            udp.payload().to_vec(),
            udp.checksum(),
        )
    }

    #[test]
    fn ipv4_and_ipv6_datagrams_decode_with_checksums() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        let mut out = Vec::new();
        for (src, dst) in [("192.0.2.1:4000", "198.51.100.9:5004"), ("[2001:db8::1]:4000", "[2001:db8::2]:5004")] {
            let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let wire = write_frame(src, dst, payload.len(), &payload, &mut out).unwrap();
            assert_eq!(wire, out.len());
            let (from, to, bytes, checksum) = udp_of(&out);
            assert_eq!((from, to, bytes), (src, dst, payload.clone()));
            assert_ne!(checksum, 0);
            let sliced = SlicedPacket::from_ip(&out).unwrap();
            let Some(TransportSlice::Udp(udp)) = sliced.transport else { panic!() };
            let expected = match sliced.net.unwrap() {
                NetSlice::Ipv4(v4) => udp.to_header().calc_checksum_ipv4(&v4.header().to_header(), &payload).unwrap(),
                NetSlice::Ipv6(v6) => udp.to_header().calc_checksum_ipv6(&v6.header().to_header(), &payload).unwrap(),
                other => panic!("{other:?}"),
            };
            assert_eq!(checksum, expected);
        }
    }

    #[test]
    fn truncated_payloads_keep_the_wire_lengths() {
        let src: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let dst: SocketAddr = "192.0.2.2:5004".parse().unwrap();
        let mut out = Vec::new();
        let wire = write_frame(src, dst, 1200, &[7u8; 100], &mut out).unwrap();
        assert_eq!((wire, out.len()), (20 + 8 + 1200, 20 + 8 + 100));
        let lax = LaxSlicedPacket::from_ip(&out).unwrap();
        let Some(LaxNetSlice::Ipv4(v4)) = lax.net else { panic!() };
        assert_eq!(v4.header().total_len(), 1228);
        assert_eq!(&out[24..26], &1208u16.to_be_bytes(), "UDP length");
        assert_eq!(&out[26..28], &[0, 0], "no checksum over a truncated payload");
    }

    #[test]
    fn addresses_are_paired_by_family() {
        let media: Vec<SocketAddr> = vec!["[::]:5004".parse().unwrap(), "127.0.0.1:5006".parse().unwrap()];
        let mapped: SocketAddr = "[::ffff:192.0.2.5]:7000".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.5:7000".parse().unwrap());
        assert_eq!(local_for(mapped, &media), "127.0.0.1:5006".parse().unwrap());
        assert_eq!(local_for("[2001:db8::1]:1".parse().unwrap(), &media), media[0]);
        let v6_only = ["[::1]:5004".parse().unwrap()];
        assert_eq!(local_for("192.0.2.5:7000".parse().unwrap(), &v6_only), "0.0.0.0:5004".parse().unwrap());
        let mut out = Vec::new();
        let v6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        assert!(write_frame(v6, media[1], 10, &[0; 10], &mut out).is_err(), "mixed families");
        assert!(write_frame(media[1], media[1], 70_000, &[0; 10], &mut out).is_err(), "too long for UDP");
        let mut out = Vec::new();
        write_frame(mapped, media[1], 4, &[1, 2, 3, 4], &mut out).unwrap();
        assert_eq!(udp_of(&out).0, "192.0.2.5:7000".parse().unwrap());
    }
}
