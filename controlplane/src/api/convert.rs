//! Between the wire (`ringfwd.v1` messages) and the registry's specs and views.

use std::net::SocketAddr;

use ringfwd_proto::v1;
use ringfwd_tuning::ChainName;

use crate::telemetry::StatsEntry;
use tonic::Status;

use super::status::invalid;
use crate::registry::{
    EndpointSpec, EndpointView, MediaKind, PayloadTypeMapping, RtcpSpec, RtxSpec, SessionView, StreamSpec, StreamView,
    SubscriptionSpec, SubscriptionUpdate, SubscriptionView, Usage,
};

/// Parses `media_address`: empty means none (latching), otherwise `ip:port`.
pub fn media_address(text: &str) -> Result<Option<SocketAddr>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| invalid("media_address", format!("{text:?} is not ip:port")))
}

/// Parses an endpoint's RTCP fields (`rtcp_address` empty: none).
pub fn rtcp(address: &str, port_plus_one: bool) -> Result<RtcpSpec, Status> {
    let address = if address.is_empty() {
        None
    } else {
        Some(address.parse().map_err(|_| invalid("rtcp_address", format!("{address:?} is not ip:port")))?)
    };
    Ok(RtcpSpec { address, port_plus_one })
}

/// The request as the registry's spec.
pub fn endpoint_spec(r: v1::CreateEndpointRequest) -> Result<EndpointSpec, Status> {
    Ok(EndpointSpec {
        media_address: media_address(&r.media_address)?,
        rtcp: rtcp(&r.rtcp_address, r.rtcp_port_plus_one)?,
        session_id: r.session_id,
        endpoint_id: r.endpoint_id,
        latching: r.latching,
    })
}

pub(crate) fn kind(value: i32) -> Result<Option<MediaKind>, Status> {
    match v1::MediaKind::try_from(value) {
        Ok(v1::MediaKind::Unspecified) => Ok(None),
        Ok(v1::MediaKind::Audio) => Ok(Some(MediaKind::Audio)),
        Ok(v1::MediaKind::Video) => Ok(Some(MediaKind::Video)),
        Err(_) => Err(invalid("kind", format!("{value} is not a MediaKind"))),
    }
}

/// A media kind on the wire.
pub(super) fn kind_to_wire(kind: MediaKind) -> i32 {
    match kind {
        MediaKind::Audio => v1::MediaKind::Audio.into(),
        MediaKind::Video => v1::MediaKind::Video.into(),
    }
}

/// What an `UpdateStream` request changes, as the registry's update.
pub fn stream_update(r: &v1::UpdateStreamRequest) -> crate::registry::StreamUpdate {
    crate::registry::StreamUpdate {
        ssrc: r.ssrc,
        payload_types: r.payload_types.as_ref().map(|types| types.values.clone()),
        interceptors: r.interceptors.as_ref().map(|chain| chain.names.clone()),
        endpoint_id: None,
    }
}

/// The request as the registry's spec.
pub fn stream_spec(r: v1::CreateStreamRequest) -> Result<StreamSpec, Status> {
    Ok(StreamSpec {
        kind: kind(r.kind)?,
        session_id: r.session_id,
        stream_id: r.stream_id,
        endpoint_id: r.endpoint_id,
        ssrc: r.ssrc,
        payload_types: r.payload_types,
        clock_rate_hz: r.clock_rate_hz,
        interceptors: r.interceptors.map(|chain| chain.names),
    })
}

fn mappings(map: Vec<v1::PayloadTypeMapping>) -> Vec<PayloadTypeMapping> {
    map.into_iter().map(|m| PayloadTypeMapping { from: m.from, to: m.to }).collect()
}

fn mappings_to_wire(map: &[PayloadTypeMapping]) -> Vec<v1::PayloadTypeMapping> {
    map.iter().map(|m| v1::PayloadTypeMapping { from: m.from, to: m.to }).collect()
}

/// The request as the registry's spec.
pub fn subscription_spec(r: v1::CreateSubscriptionRequest) -> SubscriptionSpec {
    SubscriptionSpec {
        payload_type_map: mappings(r.payload_type_map),
        session_id: r.session_id,
        subscription_id: r.subscription_id,
        stream_id: r.stream_id,
        endpoint_id: r.endpoint_id,
        out_ssrc: r.out_ssrc,
        paused: r.paused,
        // ringfwd chooses the offsets of API subscriptions (see `Subscription.seq_offset` in the schema).
        seq_offset: 0,
        ts_offset: 0,
        interceptors: r.interceptors.map(|chain| chain.names),
        rtx: r.rtx.map(|rtx| RtxSpec { ssrc: rtx.ssrc, payload_type: rtx.payload_type }),
    }
}

/// What an `UpdateSubscription` changes (an Rtx of zeros clears RTX; validation is the registry's, as for creates).
pub fn subscription_update(r: &v1::UpdateSubscriptionRequest) -> SubscriptionUpdate {
    SubscriptionUpdate {
        paused: r.paused,
        stream_id: r.stream_id.clone(),
        payload_type_map: r.payload_type_map.as_ref().map(|map| mappings(map.mappings.clone())),
        interceptors: r.interceptors.as_ref().map(|chain| chain.names.clone()),
        rtx: r.rtx.map(|rtx| {
            (rtx != v1::Rtx::default()).then_some(RtxSpec { ssrc: rtx.ssrc, payload_type: rtx.payload_type })
        }),
    }
}

/// Interceptor names as on the wire.
fn names(chain: &[ChainName]) -> Vec<String> {
    chain.iter().map(|name| name.as_str().to_owned()).collect()
}

/// A session on the wire.
pub fn session(v: SessionView) -> v1::Session {
    v1::Session {
        session_id: v.session_id,
        endpoints: v.endpoints,
        streams: v.streams,
        subscriptions: v.subscriptions,
        created_unix_ms: v.created_unix_ms,
    }
}

/// An endpoint on the wire; `send_to` are the addresses its peer must send media to, `rtcp_send_to` where it
/// sends RTCP when it does not mux it (shown only then).
pub fn endpoint(v: EndpointView, send_to: &[SocketAddr], rtcp_send_to: &[SocketAddr]) -> v1::Endpoint {
    let rtcp_send_to = if v.rtcp_address.is_some() { rtcp_send_to } else { &[] };
    v1::Endpoint {
        rtcp_send_to: rtcp_send_to.iter().map(ToString::to_string).collect(),
        session_id: v.session_id,
        endpoint_id: v.endpoint_id,
        media_address: v.media_address.map(|a| a.to_string()).unwrap_or_default(),
        latching: v.latching,
        send_to: send_to.iter().map(ToString::to_string).collect(),
        latched_address: v.latched_address.map(|a| a.to_string()).unwrap_or_default(),
        rtcp_address: v.rtcp_address.map(|a| a.to_string()).unwrap_or_default(),
        rtcp_port_plus_one: v.rtcp_port_plus_one,
    }
}

/// A stream on the wire.
pub fn stream(v: StreamView) -> v1::Stream {
    v1::Stream {
        session_id: v.session_id,
        stream_id: v.stream_id,
        endpoint_id: v.endpoint_id,
        ssrc: v.ssrc,
        kind: kind_to_wire(v.kind),
        payload_types: v.payload_types,
        clock_rate_hz: v.clock_rate_hz,
        worker: v.worker as u32,
        interceptors: names(&v.interceptors),
        learns_ssrc: v.learns_ssrc,
    }
}

/// A subscription on the wire.
pub fn subscription(v: SubscriptionView) -> v1::Subscription {
    v1::Subscription {
        payload_type_map: mappings_to_wire(&v.payload_type_map),
        session_id: v.session_id,
        subscription_id: v.subscription_id,
        stream_id: v.stream_id,
        endpoint_id: v.endpoint_id,
        out_ssrc: v.out_ssrc,
        paused: v.paused,
        seq_offset: u32::from(v.seq_offset),
        ts_offset: v.ts_offset,
        interceptors: names(&v.interceptors),
        rtx: v.rtx.map(|rtx| v1::Rtx { ssrc: rtx.ssrc, payload_type: rtx.payload_type }),
    }
}

/// Statistics on the wire, `now` giving their age.
pub fn stats_sample(entry: &StatsEntry, now: std::time::Instant) -> v1::StatsSample {
    let s = &entry.snapshot;
    v1::StatsSample {
        age_ms: now.saturating_duration_since(entry.at).as_millis() as u64,
        packets: s.packets,
        bytes: s.bytes,
        lost: s.lost,
        fraction_lost: u32::from(s.fraction_lost),
        jitter_us: s.jitter_us,
        reordered: s.reordered,
        duplicates: s.duplicates,
        bitrate_bps: s.bitrate_bps,
        nacks_received: s.nacks_received,
        nack_items_received: s.nack_items_received,
        nacks_sent: s.nacks_sent,
        plis_received: s.plis_received,
        firs_received: s.firs_received,
        keyframe_requests_sent: s.keyframe_requests_sent,
        rtt_us: s.rtt_us,
        retransmitted: s.retransmitted,
        retransmit_misses: s.retransmit_misses,
        rate_limited: s.rate_limited,
        payload_type_filtered: s.payload_type_filtered,
        sender_reports: s.sender_reports,
        receiver_reports: s.receiver_reports,
        twcc_feedback_sent: s.twcc_feedback_sent,
        tapped: s.tapped,
        tap_dropped: s.tap_dropped,
    }
}

/// What a delete removed, on the wire.
pub fn deleted(u: Usage) -> v1::DeleteResponse {
    v1::DeleteResponse {
        sessions: u.sessions,
        endpoints: u.endpoints,
        streams: u.streams,
        subscriptions: u.subscriptions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_are_named() {
        let e = media_address("localhost").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("media_address"), "{}", e.message());
        assert_eq!(media_address("").unwrap(), None);
        let r = v1::CreateStreamRequest { kind: 7, ..Default::default() };
        assert!(stream_spec(r).unwrap_err().message().contains("kind"));
        let r = v1::CreateStreamRequest { kind: 0, ..Default::default() };
        assert_eq!(stream_spec(r).unwrap().kind, None, "unspecified is left to the registry to refuse");
    }
}
