//! The SDP side of the test controller, with the `sdp` crate (webrtc-rs, MIT/Apache-2.0, the family of the `rtp`
//! and `rtcp` crates the tests already use): what a user agent's offer or answer tells ringfwd (its audio address,
//! payload types, clock rate, whether it muxes RTCP), and the same description re-pointed at ringfwd's media address
//! for the other user agent.
//!
//! Owns no state; never tells ringfwd an SSRC (SIP user agents rarely signal one: ringfwd learns it), and strips
//! `a=ssrc` and `a=rtcp` from what it re-points, since ringfwd chooses what it sends and RTCP is at its port + 1.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use sdp::description::common::{Address, ConnectionInformation};
use sdp::SessionDescription;

/// Why an SDP body does not describe an audio stream the controller can relay.
#[derive(Debug, thiserror::Error)]
pub enum SdpError {
    /// The body is not SDP.
    #[error("not SDP: {0}")]
    Parse(#[from] sdp::Error),
    /// No `m=audio` line with a port.
    #[error("no audio media description with a port")]
    NoAudio,
    /// No usable `c=` address for the audio.
    #[error("no connection address {0:?}")]
    Address(String),
    /// A format that is not an RTP payload type (0..=127).
    #[error("format {0:?} is not an RTP payload type")]
    Format(String),
}

/// What a user agent's SDP says about its audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioOffer {
    /// Where it receives RTP (and sends it from: user agents are symmetric).
    pub address: SocketAddr,
    /// The payload types of its `m=audio` line, in order.
    pub payload_types: Vec<u32>,
    /// The clock rate of the first payload type (`a=rtpmap`, or 8000 for the static G.711/G.729 ones).
    pub clock_rate_hz: u32,
    /// `a=rtcp-mux`: RTCP on the RTP port; otherwise on port + 1.
    pub rtcp_mux: bool,
    /// The `a=ssrc` it announced, if any: only for a test to compare with what ringfwd learned.
    pub announced_ssrc: Option<u32>,
}

/// Parses `body` and reads its first audio stream.
pub fn parse_audio(body: &[u8]) -> Result<(SessionDescription, AudioOffer), SdpError> {
    let description = SessionDescription::unmarshal(&mut Cursor::new(body))?;
    let audio = description
        .media_descriptions
        .iter()
        .find(|m| m.media_name.media == "audio" && m.media_name.port.value > 0)
        .ok_or(SdpError::NoAudio)?;
    let connection = audio.connection_information.as_ref().or(description.connection_information.as_ref());
    let ip_text = connection.and_then(|c| c.address.as_ref()).map(|a| a.address.clone()).unwrap_or_default();
    let ip: IpAddr = ip_text.parse().map_err(|_| SdpError::Address(ip_text.clone()))?;
    let port = u16::try_from(audio.media_name.port.value).map_err(|_| SdpError::NoAudio)?;
    let payload_types = audio
        .media_name
        .formats
        .iter()
        .map(|f| f.parse::<u32>().ok().filter(|pt| *pt <= 127).ok_or_else(|| SdpError::Format(f.clone())))
        .collect::<Result<Vec<u32>, SdpError>>()?;
    let first = *payload_types.first().ok_or(SdpError::NoAudio)?;
    let rtpmap_rate = audio.attributes.iter().filter(|a| a.key == "rtpmap").find_map(|a| {
        let (pt, encoding) = a.value.as_deref()?.split_once(' ')?;
        (pt.parse::<u32>().ok()? == first).then(|| encoding.split('/').nth(1)?.parse::<u32>().ok())?
    });
    let announced_ssrc = audio
        .attributes
        .iter()
        .find(|a| a.key == "ssrc")
        .and_then(|a| a.value.as_deref()?.split(' ').next()?.parse().ok());
    let offer = AudioOffer {
        address: SocketAddr::new(ip, port),
        payload_types,
        clock_rate_hz: rtpmap_rate.unwrap_or(8000),
        rtcp_mux: audio.has_attribute("rtcp-mux"),
        announced_ssrc,
    };
    Ok((description, offer))
}

/// `description` re-pointed at ringfwd: origin and connection address `media`'s IP, the audio port `media`'s
/// port, version `version` (one more for each new offer or answer on a dialog), no `a=ssrc` and no `a=rtcp`;
/// the codecs and every other attribute kept.
pub fn via_ringfwd(description: &SessionDescription, media: SocketAddr, session_id: u64, version: u64) -> String {
    let mut out = description.clone();
    let ip = media.ip().to_string();
    let address_type = if media.is_ipv4() { "IP4" } else { "IP6" };
    out.origin.username = "ringfwd-test".into();
    out.origin.session_id = session_id;
    out.origin.session_version = version;
    out.origin.address_type = address_type.into();
    out.origin.unicast_address = ip.clone();
    out.connection_information = Some(ConnectionInformation {
        network_type: "IN".into(),
        address_type: address_type.into(),
        address: Some(Address { address: ip, ttl: None, range: None }),
    });
    for m in &mut out.media_descriptions {
        m.connection_information = None;
        m.attributes.retain(|a| a.key != "ssrc" && a.key != "rtcp");
        if m.media_name.media == "audio" && m.media_name.port.value > 0 {
            m.media_name.port.value = isize::try_from(media.port()).unwrap_or(0);
        } else {
            // Only audio is relayed: anything else is refused (port 0).
            m.media_name.port.value = 0;
        }
    }
    out.marshal()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// baresip 1.0.0's offer, as it sends it.
    const OFFER: &str = "v=0\r\no=- 4076314558 407852667 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        a=tool:baresip 1.0.0\r\nm=audio 30068 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\na=label:1\r\na=rtcp-rsize\r\n\
        a=ssrc:1696126508 cname:sip:a@127.0.0.1:25060\r\na=minptime:20\r\na=ptime:20\r\n";

    #[test]
    fn an_offer_is_read_and_re_pointed_at_ringfwd() {
        let (description, offer) = parse_audio(OFFER.as_bytes()).expect("baresip's offer parses");
        assert_eq!(offer.address, "127.0.0.1:30068".parse().unwrap());
        assert_eq!((offer.payload_types.as_slice(), offer.clock_rate_hz, offer.rtcp_mux), (&[0, 101][..], 8000, false));
        assert_eq!(offer.announced_ssrc, Some(1_696_126_508));

        let media: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let text = via_ringfwd(&description, media, 7, 2);
        let (_, seen) = parse_audio(text.as_bytes()).expect("what it writes parses");
        assert_eq!(seen.address, media);
        assert_eq!(seen.payload_types, offer.payload_types);
        assert_eq!(seen.announced_ssrc, None, "a=ssrc is stripped");
        assert!(text.contains("o=ringfwd-test 7 2 IN IP4 127.0.0.1\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\n") && text.contains("a=ptime:20\r\n"), "{text}");
    }

    #[test]
    fn what_it_cannot_relay_is_an_error() {
        assert!(matches!(parse_audio(b"not sdp"), Err(SdpError::Parse(_))));
        let video = OFFER.replace("m=audio", "m=video");
        assert!(matches!(parse_audio(video.as_bytes()), Err(SdpError::NoAudio)));
        let no_address = OFFER.replace("c=IN IP4 127.0.0.1\r\n", "");
        assert!(matches!(parse_audio(no_address.as_bytes()), Err(SdpError::Address(_))));
        let bad_format = OFFER.replace("RTP/AVP 0 101", "RTP/AVP 0 200");
        assert!(matches!(parse_audio(bad_format.as_bytes()), Err(SdpError::Format(_))));
    }
}
