//! A session as it is kept across a restart: what was accepted, in the terms of the requests that recreate it.
//!
//! Owns [`SessionState`] (and its members' states) and [`Registry::export_session`]. A state names objects by
//! their ids and holds what their requests said (after updates) plus what the node learned about them (a latched
//! address, a learned SSRC); never a data-plane id, a worker or a socket: those are drawn again when the state is
//! restored through the registry's own planners (`plan_create_*`, `plan_restore_*`), by the same rules as any
//! request. Plain data: it must never validate, plan or change the registry.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::model::{MediaKind, PayloadTypeMapping, RtcpSpec, RtxSpec};
use super::{EndpointSpec, Registry, StreamSpec, SubscriptionSpec};

/// One session and everything in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// Its id.
    pub session_id: String,
    /// When it was created, Unix milliseconds.
    pub created_unix_ms: u64,
    /// Its endpoints, by id.
    pub endpoints: Vec<EndpointState>,
    /// Its streams, by id.
    pub streams: Vec<StreamState>,
    /// Its subscriptions, by id.
    pub subscriptions: Vec<SubscriptionState>,
}

/// An endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    /// Its id.
    pub endpoint_id: String,
    /// As requested.
    pub media_address: Option<SocketAddr>,
    /// As requested.
    pub latching: bool,
    /// Where it had latched (it receives there).
    pub latched_address: Option<SocketAddr>,
    /// Its explicit RTCP address, as requested.
    pub rtcp_address: Option<SocketAddr>,
    /// RTCP at port + 1, as requested.
    pub rtcp_port_plus_one: bool,
}

/// A stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// Its id.
    pub stream_id: String,
    /// The publisher.
    pub endpoint_id: String,
    /// Its SSRC (0: declared without one and none learned yet).
    pub ssrc: u32,
    /// Declared without an SSRC: it learns it and follows changes.
    pub learns_ssrc: bool,
    /// Audio or video.
    pub kind: MediaKind,
    /// As requested.
    pub payload_types: Vec<u32>,
    /// As requested.
    pub clock_rate_hz: u32,
    /// Its ingress interceptors, in chain order.
    pub interceptors: Vec<String>,
}

/// A subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionState {
    /// Its id.
    pub subscription_id: String,
    /// The stream it forwards now.
    pub stream_id: String,
    /// The receiving endpoint.
    pub endpoint_id: String,
    /// The SSRC the subscriber sees (0: the publisher's).
    pub out_ssrc: u32,
    /// `(from, to)` payload-type rewrites.
    pub payload_type_map: Vec<(u32, u32)>,
    /// Paused.
    pub paused: bool,
    /// Sequence-number offset it was created with.
    pub seq_offset: u16,
    /// Timestamp offset it was created with.
    pub ts_offset: u32,
    /// Its egress interceptors, in chain order.
    pub interceptors: Vec<String>,
    /// `(ssrc, payload type)` of its RTX, when negotiated.
    pub rtx: Option<(u32, u32)>,
}

impl Registry {
    /// Session `session_id` as it is kept across a restart (`None`: there is no such session).
    pub fn export_session(&self, session_id: &str) -> Option<SessionState> {
        let session = self.sessions.get(session_id)?;
        let names = |chain: &[ringfwd_tuning::ChainName]| chain.iter().map(|n| n.as_str().to_owned()).collect();
        Some(SessionState {
            session_id: session_id.to_owned(),
            created_unix_ms: session.created_unix_ms,
            endpoints: session
                .endpoints
                .iter()
                .map(|(id, e)| EndpointState {
                    endpoint_id: id.clone(),
                    media_address: e.media_address,
                    latching: e.latching,
                    latched_address: e.latched_address,
                    rtcp_address: e.rtcp.address,
                    rtcp_port_plus_one: e.rtcp.port_plus_one,
                })
                .collect(),
            streams: session
                .streams
                .iter()
                .map(|(id, s)| StreamState {
                    stream_id: id.clone(),
                    endpoint_id: s.endpoint_id.clone(),
                    ssrc: if s.ssrc_known { s.ssrc } else { 0 },
                    learns_ssrc: s.learns_ssrc,
                    kind: s.kind,
                    payload_types: s.payload_types.clone(),
                    clock_rate_hz: s.clock_rate_hz,
                    interceptors: names(&s.interceptors),
                })
                .collect(),
            subscriptions: session
                .subscriptions
                .iter()
                .map(|(id, s)| SubscriptionState {
                    subscription_id: id.clone(),
                    stream_id: s.stream_id.clone(),
                    endpoint_id: s.endpoint_id.clone(),
                    out_ssrc: s.out_ssrc,
                    payload_type_map: s.payload_type_map.iter().map(|m| (m.from, m.to)).collect(),
                    paused: s.paused,
                    seq_offset: s.seq_offset,
                    ts_offset: s.ts_offset,
                    interceptors: names(&s.interceptors),
                    rtx: s.rtx.map(|r| (r.ssrc, r.payload_type)),
                })
                .collect(),
        })
    }
}

impl EndpointState {
    /// The create request of the endpoint in `session_id` (its latched address is restored after it).
    pub fn spec(&self, session_id: &str) -> EndpointSpec {
        EndpointSpec {
            session_id: session_id.to_owned(),
            endpoint_id: self.endpoint_id.clone(),
            media_address: self.media_address,
            latching: self.latching,
            rtcp: RtcpSpec { address: self.rtcp_address, port_plus_one: self.rtcp_port_plus_one },
        }
    }
}

impl StreamState {
    /// The create request of the stream in `session_id`, with the SSRC it has (see
    /// [`Registry::plan_restore_stream`]).
    pub fn spec(&self, session_id: &str) -> StreamSpec {
        StreamSpec {
            session_id: session_id.to_owned(),
            stream_id: self.stream_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            ssrc: self.ssrc,
            kind: Some(self.kind),
            payload_types: self.payload_types.clone(),
            clock_rate_hz: self.clock_rate_hz,
            interceptors: Some(self.interceptors.clone()),
        }
    }
}

impl SubscriptionState {
    /// The create request of the subscription in `session_id`, as it is now (after updates).
    pub fn spec(&self, session_id: &str) -> SubscriptionSpec {
        SubscriptionSpec {
            session_id: session_id.to_owned(),
            subscription_id: self.subscription_id.clone(),
            stream_id: self.stream_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            out_ssrc: self.out_ssrc,
            payload_type_map: self.payload_type_map.iter().map(|&(from, to)| PayloadTypeMapping { from, to }).collect(),
            paused: self.paused,
            seq_offset: self.seq_offset,
            ts_offset: self.ts_offset,
            interceptors: Some(self.interceptors.clone()),
            rtx: self.rtx.map(|(ssrc, payload_type)| RtxSpec { ssrc, payload_type }),
        }
    }
}
