//! Static routes: sessions, endpoints, streams and subscriptions declared in the config file
//! (`[[sessions]]`), and their validation.
//!
//! Owns the spec structs and every rule that relates them (ids, references, SSRC uniqueness,
//! address families). Errors name the key as a path such as
//! `sessions[0].subscriptions[2].endpoint`. This module must never install routes or touch
//! sockets; the control plane turns validated specs into registry entries.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::schema::{Limits, Media};

/// Longest accepted session, endpoint or stream id, in bytes.
pub const MAX_ID_BYTES: usize = 64;

/// One session (room, call): endpoints, the streams they publish and who receives what.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// Session id: 1..=64 bytes of `[A-Za-z0-9._-]`, unique in the config.
    pub id: String,
    /// The session's endpoints (`[[sessions.endpoints]]`).
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
    /// Streams published by the endpoints (`[[sessions.streams]]`).
    #[serde(default)]
    pub streams: Vec<StreamSpec>,
    /// Streams forwarded to endpoints (`[[sessions.subscriptions]]`).
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSpec>,
}

/// One remote peer of a session.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Endpoint id, unique in its session; same character rules as a session id.
    pub id: String,
    /// The peer's media address; absent means it is learned from the first packet (latching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
    /// Learn (and follow) the peer's address from its packets within `media.latch_window_ms`.
    #[serde(default)]
    pub latching: bool,
}

/// One RTP stream published by an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// Stream id, unique in its session; same character rules as a session id.
    pub id: String,
    /// Id of the publishing endpoint in the same session.
    pub endpoint: String,
    /// The stream's SSRC, unique across the whole config.
    pub ssrc: u32,
    /// "audio" (default) or "video".
    #[serde(default)]
    pub kind: MediaKind,
    /// RTP clock rate in Hz, 1..=1000000; default 48000 for audio, 90000 for video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_rate_hz: Option<u32>,
}

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// Audio (default clock rate 48000 Hz).
    #[default]
    Audio,
    /// Video (default clock rate 90000 Hz).
    Video,
}

/// Largest accepted RTP clock rate, in Hz.
pub const MAX_CLOCK_RATE_HZ: u32 = 1_000_000;

impl StreamSpec {
    /// The configured clock rate, or the kind's default.
    pub fn clock_rate_hz(&self) -> u32 {
        self.clock_rate_hz.unwrap_or(match self.kind {
            MediaKind::Audio => 48_000,
            MediaKind::Video => 90_000,
        })
    }
}

/// One stream forwarded to one endpoint, with its egress rewriting.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// Id of the forwarded stream in the same session.
    pub stream: String,
    /// Id of the receiving endpoint in the same session; it must have an address.
    pub endpoint: String,
    /// SSRC written on egress; absent keeps the stream's SSRC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_ssrc: Option<u32>,
    /// Added (wrapping) to every forwarded sequence number.
    #[serde(default)]
    pub seq_offset: u16,
    /// Added (wrapping) to every forwarded RTP timestamp.
    #[serde(default)]
    pub ts_offset: u32,
    /// Payload-type rewrites `[incoming, outgoing]`, e.g. `[[96, 100]]`; both below 128.
    #[serde(default)]
    pub payload_type_map: Vec<[u8; 2]>,
}

/// Checks every static route rule; `media` and `limits` are the already validated sections.
pub(crate) fn validate_sessions(sessions: &[SessionSpec], media: &Media, limits: &Limits) -> Result<(), ConfigError> {
    let mut ssrc_keys: HashMap<u32, String> = HashMap::new();
    for (s, session) in sessions.iter().enumerate() {
        let earlier = sessions[..s].iter().map(|x| x.id.as_str());
        check_unique_id("sessions", s, &session.id, earlier)?;
        let key = format!("sessions[{s}]");
        validate_endpoints(&key, session)?;
        validate_streams(&key, session, &mut ssrc_keys)?;
        validate_subscriptions(&key, session, media, limits)?;
    }
    Ok(())
}

/// Non-empty, at most [`MAX_ID_BYTES`], only `[A-Za-z0-9._-]`.
fn check_id(key: &str, id: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| Err(ConfigError::invalid(key, format!("{id:?}"), reason));
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id.len() > MAX_ID_BYTES {
        return bad("longer than 64 bytes");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Checks the id of item `index` of the list at `list_key` (e.g. `sessions[0].endpoints`):
/// the [`check_id`] rules, and that none of the `earlier` items has the same id.
pub(crate) fn check_unique_id<'a>(
    list_key: &str,
    index: usize,
    id: &str,
    mut earlier: impl Iterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let key = format!("{list_key}[{index}].id");
    check_id(&key, id)?;
    match earlier.position(|other| other == id) {
        Some(first) => {
            Err(ConfigError::invalid(key, format!("{id:?}"), format!("duplicate of {list_key}[{first}].id")))
        }
        None => Ok(()),
    }
}

fn validate_endpoints(session_key: &str, session: &SessionSpec) -> Result<(), ConfigError> {
    for (e, endpoint) in session.endpoints.iter().enumerate() {
        let list_key = format!("{session_key}.endpoints");
        let earlier = session.endpoints[..e].iter().map(|x| x.id.as_str());
        check_unique_id(&list_key, e, &endpoint.id, earlier)?;
        let key = format!("{list_key}[{e}]");
        match endpoint.address {
            None if !endpoint.latching => {
                return Err(ConfigError::invalid(
                    format!("{key}.address"),
                    "none",
                    "an endpoint without an address must have latching = true",
                ));
            }
            Some(address) if address.port() == 0 => {
                return Err(ConfigError::invalid(format!("{key}.address"), address, "port 0 cannot receive media"));
            }
            Some(address) if address.ip().is_unspecified() => {
                return Err(ConfigError::invalid(
                    format!("{key}.address"),
                    address,
                    "an unspecified IP cannot receive media",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn validate_streams(
    session_key: &str,
    session: &SessionSpec,
    ssrc_keys: &mut HashMap<u32, String>,
) -> Result<(), ConfigError> {
    for (t, stream) in session.streams.iter().enumerate() {
        let list_key = format!("{session_key}.streams");
        let earlier = session.streams[..t].iter().map(|x| x.id.as_str());
        check_unique_id(&list_key, t, &stream.id, earlier)?;
        let key = format!("{list_key}[{t}]");
        if !session.endpoints.iter().any(|e| e.id == stream.endpoint) {
            return Err(ConfigError::invalid(
                format!("{key}.endpoint"),
                format!("{:?}", stream.endpoint),
                format!("no such endpoint in {session_key}"),
            ));
        }
        if let Some(rate) = stream.clock_rate_hz {
            if rate == 0 || rate > MAX_CLOCK_RATE_HZ {
                return Err(ConfigError::invalid(
                    format!("{key}.clock_rate_hz"),
                    rate,
                    format!("must be in 1..={MAX_CLOCK_RATE_HZ}"),
                ));
            }
        }
        let ssrc_key = format!("{key}.ssrc");
        if let Some(first) = ssrc_keys.get(&stream.ssrc) {
            return Err(ConfigError::invalid(ssrc_key, stream.ssrc, format!("SSRC already used by {first}")));
        }
        ssrc_keys.insert(stream.ssrc, ssrc_key);
    }
    Ok(())
}

fn validate_subscriptions(
    session_key: &str,
    session: &SessionSpec,
    media: &Media,
    limits: &Limits,
) -> Result<(), ConfigError> {
    let mut pairs: HashMap<(&str, &str), usize> = HashMap::new();
    let mut per_stream: HashMap<&str, u32> = HashMap::new();
    // (endpoint id, outgoing SSRC) -> key of the subscription that sends it.
    let mut out_ssrcs: HashMap<(&str, u32), String> = HashMap::new();
    for (i, sub) in session.subscriptions.iter().enumerate() {
        let key = format!("{session_key}.subscriptions[{i}]");
        let Some(stream) = session.streams.iter().find(|t| t.id == sub.stream) else {
            return Err(ConfigError::invalid(
                format!("{key}.stream"),
                format!("{:?}", sub.stream),
                format!("no such stream in {session_key}"),
            ));
        };
        let Some(endpoint) = session.endpoints.iter().find(|e| e.id == sub.endpoint) else {
            return Err(ConfigError::invalid(
                format!("{key}.endpoint"),
                format!("{:?}", sub.endpoint),
                format!("no such endpoint in {session_key}"),
            ));
        };
        let Some(address) = endpoint.address else {
            return Err(ConfigError::invalid(
                format!("{key}.endpoint"),
                format!("{:?}", sub.endpoint),
                "a subscriber endpoint needs an address",
            ));
        };
        if let Some(first) = pairs.insert((&sub.stream, &sub.endpoint), i) {
            return Err(ConfigError::invalid(
                key,
                format!("{:?} -> {:?}", sub.stream, sub.endpoint),
                format!("same stream and endpoint as {session_key}.subscriptions[{first}]"),
            ));
        }
        if !media.serves_family_of(&address) {
            return Err(ConfigError::invalid(
                key,
                address,
                "no media address of this address family (see media.addresses)",
            ));
        }
        validate_payload_type_map(&key, &sub.payload_type_map)?;
        let count = per_stream.entry(&sub.stream).or_insert(0);
        *count += 1;
        if *count > limits.max_subscriptions_per_stream {
            return Err(ConfigError::invalid(
                format!("{key}.stream"),
                format!("{:?}", sub.stream),
                format!(
                    "stream has more than limits.max_subscriptions_per_stream = {} subscriptions",
                    limits.max_subscriptions_per_stream
                ),
            ));
        }
        let out_ssrc = sub.out_ssrc.unwrap_or(stream.ssrc);
        let out_key = format!("{key}.out_ssrc");
        if let Some(first) = out_ssrcs.get(&(sub.endpoint.as_str(), out_ssrc)) {
            return Err(ConfigError::invalid(
                out_key,
                out_ssrc,
                format!("endpoint {:?} already receives this SSRC from {first}", sub.endpoint),
            ));
        }
        out_ssrcs.insert((&sub.endpoint, out_ssrc), key);
    }
    Ok(())
}

fn validate_payload_type_map(sub_key: &str, map: &[[u8; 2]]) -> Result<(), ConfigError> {
    let mut incoming = HashSet::new();
    for (m, &[from, to]) in map.iter().enumerate() {
        let key = format!("{sub_key}.payload_type_map[{m}]");
        if from >= 128 || to >= 128 {
            return Err(ConfigError::invalid(key, format!("[{from}, {to}]"), "payload types are 0..=127"));
        }
        if !incoming.insert(from) {
            return Err(ConfigError::invalid(
                key,
                format!("[{from}, {to}]"),
                format!("incoming payload type {from} is mapped twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
