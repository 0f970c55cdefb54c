//! Checks of request fields that need nothing but the request (and the node's media addresses).
//!
//! Owns the id syntax, the media-address rules, the payload-type and clock-rate ranges and the choice of a
//! sending socket. Every error names the protobuf request field and the offending value. Must never look
//! at the registry's contents: whether something exists is `plan`'s business.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use ringfwd_dataplane::control::MAX_CLOCK_RATE_HZ;

use super::error::RegistryError;
use super::model::{MediaKind, PayloadTypeMapping, RtcpSpec, RtxSpec};
use ringfwd_dataplane::control::Plugins;
use ringfwd_tuning::{resolve_chain, ChainName, ChainSide};

/// Longest accepted id, in bytes (the config's static routes take the same ids).
pub use ringfwd_tuning::MAX_ID_BYTES;

/// Payload types are 7-bit: every one is below this.
const PAYLOAD_TYPES: u32 = 128;

/// The first character of the ids of the objects the cluster makes for its relays (`~B`, `~B.<request id>`, see
/// `crate::cluster::relay`): ids of `[A-Za-z0-9._-]` after it, of at most `2 * MAX_ID_BYTES + 1` bytes (a node id,
/// a dot and a request id). No request of a controller may create one ([`new_id`]).
pub const RELAY_ID_PREFIX: char = '~';

/// Checks that `value` (the request's `field`) is 1..=64 bytes of `[A-Za-z0-9._-]`, or an id of the cluster's
/// relays ([`RELAY_ID_PREFIX`]).
pub(crate) fn id(field: &str, value: &str) -> Result<(), RegistryError> {
    let (body, max) = match value.strip_prefix(RELAY_ID_PREFIX) {
        Some(body) => (body, 2 * MAX_ID_BYTES + 1),
        None => (value, MAX_ID_BYTES),
    };
    if body.is_empty() || body.len() > max {
        return Err(RegistryError::invalid(field, format!("must be 1 to {max} bytes, got {}", body.len())));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let offset = value.len() - body.len();
    if let Some((at, c)) = body.char_indices().find(|&(_, c)| !allowed(c)) {
        let at = at + offset;
        return Err(RegistryError::invalid(field, format!("{c:?} at byte {at} is not one of [A-Za-z0-9._-]")));
    }
    Ok(())
}

/// [`id`], for an object a controller's request creates or names as a peer: not one of the cluster's relays.
pub(crate) fn new_id(field: &str, value: &str) -> Result<(), RegistryError> {
    if value.starts_with(RELAY_ID_PREFIX) {
        let reason = format!("ids starting with {RELAY_ID_PREFIX:?} are the cluster's relays', got {value:?}");
        return Err(RegistryError::invalid(field, reason));
    }
    id(field, value)
}

/// Checks an endpoint's `media_address`: required unless latching, a real host and port, and of a family
/// the node has a media address for (else nothing could be sent to it, nor received from it).
pub(crate) fn media_address(
    address: Option<SocketAddr>,
    latching: bool,
    media: &[SocketAddr],
) -> Result<(), RegistryError> {
    media_address_field("media_address", address, latching, media)
}

/// [`media_address`] for the request field `FIELD`.
fn media_address_field(
    field: &'static str,
    address: Option<SocketAddr>,
    latching: bool,
    media: &[SocketAddr],
) -> Result<(), RegistryError> {
    let Some(address) = address else {
        return if latching { Ok(()) } else { Err(RegistryError::invalid(field, "required unless latching")) };
    };
    if address.port() == 0 {
        return Err(RegistryError::invalid(field, format!("{address}: port must be 1..65535")));
    }
    if address.ip().is_unspecified() {
        return Err(RegistryError::invalid(field, format!("{address}: not a host address (unspecified)")));
    }
    if socket_for(address, media).is_none() {
        let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(RegistryError::invalid(field, format!("{address}: this node has no {family} media address")));
    }
    Ok(())
}

/// Checks an endpoint's RTCP address, for create and update alike: `rtcp_address` and `rtcp_port_plus_one`
/// exclude each other; an explicit address is checked as a media address; port + 1 needs a media port below
/// 65535 (a latching endpoint without an address resolves it once it latches).
pub(crate) fn rtcp(
    spec: RtcpSpec,
    media_address: Option<SocketAddr>,
    media: &[SocketAddr],
) -> Result<(), RegistryError> {
    match (spec.address, spec.port_plus_one) {
        (Some(_), true) => {
            Err(RegistryError::invalid("rtcp_port_plus_one", "excludes rtcp_address: give one or the other"))
        }
        (Some(address), false) if media_address.is_some_and(|m| m.is_ipv4() != address.is_ipv4()) => {
            Err(RegistryError::invalid("rtcp_address", format!("{address}: not of media_address's address family")))
        }
        (Some(address), false) => media_address_field("rtcp_address", Some(address), false, media),
        (None, true) if media_address.is_some_and(|a| a.port() == u16::MAX) => Err(RegistryError::invalid(
            "rtcp_port_plus_one",
            format!("media_address {} has no port + 1", media_address.map(|a| a.to_string()).unwrap_or_default()),
        )),
        (None, _) => Ok(()),
    }
}

/// The index of the media socket that sends to `dest`: the first media address of its family.
pub(crate) fn socket_for(dest: SocketAddr, media: &[SocketAddr]) -> Option<usize> {
    media.iter().position(|m| m.is_ipv4() == dest.is_ipv4())
}

/// The stream's kind, which must be given.
pub(crate) fn kind(kind: Option<MediaKind>) -> Result<MediaKind, RegistryError> {
    kind.ok_or_else(|| RegistryError::invalid("kind", "required: audio or video"))
}

/// Checks a stream's `clock_rate_hz` is `1..=MAX_CLOCK_RATE_HZ`.
pub(crate) fn clock_rate_hz(value: u32) -> Result<(), RegistryError> {
    if (1..=MAX_CLOCK_RATE_HZ).contains(&value) {
        Ok(())
    } else {
        Err(RegistryError::invalid("clock_rate_hz", format!("{value} is not in 1..={MAX_CLOCK_RATE_HZ}")))
    }
}

/// Checks a stream's `payload_types`: each below 128, none twice.
pub(crate) fn payload_types(types: &[u32]) -> Result<(), RegistryError> {
    let mut seen = BTreeSet::new();
    for (i, &pt) in types.iter().enumerate() {
        payload_type(&format!("payload_types[{i}]"), pt)?;
        if !seen.insert(pt) {
            return Err(RegistryError::invalid(format!("payload_types[{i}]"), format!("{pt} is listed twice")));
        }
    }
    Ok(())
}

/// The interceptors a request names (`field` is `interceptors.names`), or `default` when it names none, checked
/// for `side` against the registered `plugins` by the one chain check the config's default chains also pass
/// ([`ringfwd_tuning::resolve_chain`]). Returned in run order.
pub(crate) fn interceptors(
    requested: Option<&[String]>,
    default: &[ChainName],
    side: ChainSide,
    plugins: &Plugins,
) -> Result<Vec<ChainName>, RegistryError> {
    match requested {
        None => Ok(default.to_vec()),
        Some(names) => resolve_chain(names.iter().map(String::as_str), side, Some(plugins))
            .map_err(|e| RegistryError::invalid(format!("interceptors.names[{}]", e.index), e.reason)),
    }
}

/// Checks a subscription's `rtx`: a non-zero SSRC and a 7-bit payload type.
pub(crate) fn rtx(rtx: Option<&RtxSpec>) -> Result<(), RegistryError> {
    let Some(rtx) = rtx else {
        return Ok(());
    };
    if rtx.ssrc == 0 {
        return Err(RegistryError::invalid("rtx.ssrc", "must not be 0"));
    }
    sent_payload_type("rtx.payload_type", rtx.payload_type)
}

/// Checks a subscription's `payload_type_map`: every entry below 128, each `from` once, none rewriting to a type that
/// reads as RTCP with the marker set (64..=95).
pub(crate) fn payload_type_map(map: &[PayloadTypeMapping]) -> Result<(), RegistryError> {
    let mut seen = BTreeSet::new();
    for (i, entry) in map.iter().enumerate() {
        payload_type(&format!("payload_type_map[{i}].from"), entry.from)?;
        if entry.to != entry.from {
            sent_payload_type(&format!("payload_type_map[{i}].to"), entry.to)?;
        }
        payload_type(&format!("payload_type_map[{i}].to"), entry.to)?;
        if !seen.insert(entry.from) {
            return Err(RegistryError::invalid(
                format!("payload_type_map[{i}].from"),
                format!("{} is mapped twice", entry.from),
            ));
        }
    }
    Ok(())
}

/// A payload type ringfwd chooses to send (a rewrite's target, RTX): 7-bit, and not one that reads as RTCP to a peer
/// multiplexing RTP and RTCP when the marker is set (the data plane's `packet::sendable_payload_type`, RFC 5761 §4).
fn sent_payload_type(field: &str, pt: u32) -> Result<(), RegistryError> {
    payload_type(field, pt)?;
    if u8::try_from(pt).is_ok_and(ringfwd_dataplane::control::sendable_payload_type) {
        Ok(())
    } else {
        let reason = format!("{pt} reads as RTCP when the marker is set (RFC 5761: 64..=95 are not sent)");
        Err(RegistryError::invalid(field, reason))
    }
}

fn payload_type(field: &str, pt: u32) -> Result<(), RegistryError> {
    if pt < PAYLOAD_TYPES {
        Ok(())
    } else {
        Err(RegistryError::invalid(field, format!("{pt} is not a payload type (0..=127)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<(), RegistryError>) -> String {
        match result {
            Err(RegistryError::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn ids_are_1_to_64_bytes_of_a_small_alphabet() {
        assert!(id("session_id", "a").is_ok());
        assert!(id("session_id", "Room-1_b.c").is_ok());
        assert!(id("session_id", &"x".repeat(64)).is_ok());
        assert_eq!(field_of(id("session_id", "")), "session_id");
        assert_eq!(field_of(id("stream_id", &"x".repeat(65))), "stream_id");
        let err = id("endpoint_id", "a b").unwrap_err().to_string();
        assert_eq!(err, "invalid endpoint_id: ' ' at byte 1 is not one of [A-Za-z0-9._-]");
        assert!(id("endpoint_id", "é").is_err());
        assert!(id("endpoint_id", "a/b").is_err());
    }

    #[test]
    fn media_address_rules() {
        let v4_only: Vec<SocketAddr> = vec!["127.0.0.1:40000".parse().unwrap()];
        let addr = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert!(media_address(addr("127.0.0.1:5000"), false, &v4_only).is_ok());
        assert!(media_address(None, true, &v4_only).is_ok());
        let missing = media_address(None, false, &v4_only).unwrap_err();
        assert!(missing.to_string().contains("required unless latching"));
        let port0 = media_address(addr("127.0.0.1:0"), false, &v4_only).unwrap_err();
        assert!(port0.to_string().contains("port"), "{port0}");
        let any = media_address(addr("0.0.0.0:5000"), true, &v4_only).unwrap_err();
        assert!(any.to_string().contains("unspecified"), "{any}");
        let v6 = media_address(addr("[::1]:5000"), false, &v4_only).unwrap_err();
        assert_eq!(v6.to_string(), "invalid media_address: [::1]:5000: this node has no IPv6 media address");
        assert_eq!(field_of(Err(v6)), "media_address");
    }

    #[test]
    fn socket_is_the_first_media_address_of_the_family() {
        let media: Vec<SocketAddr> = vec![
            "127.0.0.1:40000".parse().unwrap(),
            "[::1]:40000".parse().unwrap(),
            "127.0.0.2:40000".parse().unwrap(),
        ];
        assert_eq!(socket_for("127.0.0.9:1".parse().unwrap(), &media), Some(0));
        assert_eq!(socket_for("[::1]:1".parse().unwrap(), &media), Some(1));
        assert_eq!(socket_for("[::1]:1".parse().unwrap(), &media[..1]), None);
    }

    #[test]
    fn payload_types_and_maps() {
        assert!(payload_types(&[0, 96, 127]).is_ok());
        assert_eq!(field_of(payload_types(&[96, 128])), "payload_types[1]");
        assert_eq!(field_of(payload_types(&[96, 97, 96])), "payload_types[2]");
        let m = |from, to| PayloadTypeMapping { from, to };
        assert!(payload_type_map(&[m(96, 100), m(97, 97)]).is_ok());
        assert_eq!(field_of(payload_type_map(&[m(96, 100), m(97, 200)])), "payload_type_map[1].to");
        assert_eq!(field_of(payload_type_map(&[m(300, 1)])), "payload_type_map[0].from");
        assert_eq!(field_of(payload_type_map(&[m(96, 100), m(96, 101)])), "payload_type_map[1].from");
    }

    #[test]
    fn clock_rate_and_kind() {
        assert!(clock_rate_hz(1).is_ok());
        assert!(clock_rate_hz(1_000_000).is_ok());
        assert_eq!(field_of(clock_rate_hz(0)), "clock_rate_hz");
        assert_eq!(field_of(clock_rate_hz(1_000_001)), "clock_rate_hz");
        assert_eq!(kind(Some(MediaKind::Video)), Ok(MediaKind::Video));
        assert_eq!(field_of(kind(None).map(|_| ())), "kind");
    }
}
