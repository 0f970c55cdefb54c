//! What the registry stores and what it hands out.
//!
//! Owns the request specs ([`EndpointSpec`], [`StreamSpec`], [`SubscriptionSpec`]), the owned read views
//! ([`SessionView`], [`EndpointView`], [`StreamView`], [`SubscriptionView`]), the counts ([`Usage`],
//! [`DeleteCounts`], [`WorkerLoad`]), the limits ([`RegistryLimits`]) and the registry's internal records.
//! Plain data: it must never validate (that is `validate`) nor decide anything (that is `plan`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ringfwd_dataplane::control::{StreamId, SubscriptionId};
use ringfwd_tuning::{ChainName, Config};

/// The registry's admission limits and the stream defaults it needs from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Sessions at once (`admission.max_sessions`).
    pub max_sessions: u32,
    /// Endpoints at once, all sessions together (`admission.max_endpoints`).
    pub max_endpoints: u32,
    /// Streams at once, all sessions together (`admission.max_streams`).
    pub max_streams: u32,
    /// Subscriptions at once, all sessions together (`admission.max_subscriptions`).
    pub max_subscriptions: u32,
    /// Subscriptions of one stream (`limits.max_subscriptions_per_stream`).
    pub max_subscriptions_per_stream: u32,
    /// Streams one worker holds (`limits.max_streams_per_worker`).
    pub max_streams_per_worker: u32,
    /// Subscriptions one worker holds (`limits.max_subscriptions_per_worker`).
    pub max_subscriptions_per_worker: u32,
    /// How long a latching endpoint's stream may latch after its creation (`media.latch_window_ms`).
    pub latch_window: Duration,
}

impl RegistryLimits {
    /// The limits a validated `config` sets.
    pub fn from_config(config: &Config) -> RegistryLimits {
        RegistryLimits {
            max_sessions: config.admission.max_sessions,
            max_endpoints: config.admission.max_endpoints,
            max_streams: config.admission.max_streams,
            max_subscriptions: config.admission.max_subscriptions,
            max_subscriptions_per_stream: config.limits.max_subscriptions_per_stream,
            max_streams_per_worker: config.limits.max_streams_per_worker,
            max_subscriptions_per_worker: config.limits.max_subscriptions_per_worker,
            latch_window: Duration::from_millis(config.media.latch_window_ms),
        }
    }
}

/// What a stream carries (the config's type: static routes and the API share it).
pub use ringfwd_tuning::MediaKind;

/// One payload-type rewrite of a subscription: incoming `from` goes out as `to` (both `0..=127`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadTypeMapping {
    /// Incoming payload type.
    pub from: u32,
    /// Outgoing payload type.
    pub to: u32,
}

/// Where an endpoint sends and receives RTCP when it does not mux it with RTP (no `a=rtcp-mux`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcpSpec {
    /// An explicit RTCP address ("a=rtcp:" in SDP).
    pub address: Option<SocketAddr>,
    /// RTCP at the media address's port + 1 (of the latched address once latched). Excludes `address`.
    pub port_plus_one: bool,
}

impl RtcpSpec {
    /// The effective RTCP address of a peer whose RTP is at `media` (`None`: muxed, or none yet).
    pub fn resolve(&self, media: Option<SocketAddr>) -> Option<SocketAddr> {
        if self.address.is_some() {
            return self.address;
        }
        let media = media.filter(|_| self.port_plus_one)?;
        Some(SocketAddr::new(media.ip(), media.port().checked_add(1)?))
    }
}

/// A `CreateEndpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// The session.
    pub session_id: String,
    /// The new endpoint's id.
    pub endpoint_id: String,
    /// The peer's media address; required unless `latching`.
    pub media_address: Option<SocketAddr>,
    /// Learn the publisher's source address from its first RTP (the address, if any, is the fallback).
    pub latching: bool,
    /// Its RTCP address when not muxed.
    pub rtcp: RtcpSpec,
}

/// A `CreateStream` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    /// The session.
    pub session_id: String,
    /// The new stream's id.
    pub stream_id: String,
    /// The publishing endpoint.
    pub endpoint_id: String,
    /// The publisher's SSRC, unique on the node; 0: learn it (see `Registry::plan_learn`).
    pub ssrc: u32,
    /// Audio or video; `None` (unspecified on the wire) is refused.
    pub kind: Option<MediaKind>,
    /// Payload types the publisher uses (each `0..=127`, no duplicates; empty: any).
    pub payload_types: Vec<u32>,
    /// RTP clock rate, `1..=1_000_000` Hz.
    pub clock_rate_hz: u32,
    /// The ingress interceptors by name; `None`: the config's `interceptors.ingress`.
    pub interceptors: Option<Vec<String>>,
}

/// RTX (RFC 4588) negotiated for a subscription's retransmissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtxSpec {
    /// The RTX stream's SSRC (not 0).
    pub ssrc: u32,
    /// The RTX payload type, `0..=127`.
    pub payload_type: u32,
}

/// A `CreateSubscription` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// The session.
    pub session_id: String,
    /// The new subscription's id.
    pub subscription_id: String,
    /// The stream to forward.
    pub stream_id: String,
    /// The receiving endpoint (its media address is the destination).
    pub endpoint_id: String,
    /// SSRC the subscriber sees; 0 keeps the publisher's.
    pub out_ssrc: u32,
    /// Payload-type rewrites, each `from` at most once.
    pub payload_type_map: Vec<PayloadTypeMapping>,
    /// Start paused.
    pub paused: bool,
    /// Initial sequence-number offset. The API has no such field and passes 0 (ringfwd chooses);
    /// the config's static routes may set one.
    pub seq_offset: u16,
    /// Initial timestamp offset; 0 from the API, as `seq_offset`.
    pub ts_offset: u32,
    /// The egress interceptors by name; `None`: the config's `interceptors.egress`.
    pub interceptors: Option<Vec<String>>,
    /// RTX for retransmissions to this subscriber, when negotiated.
    pub rtx: Option<RtxSpec>,
}

/// A session as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// Its id.
    pub session_id: String,
    /// Endpoints in it.
    pub endpoints: u32,
    /// Streams in it.
    pub streams: u32,
    /// Subscriptions in it.
    pub subscriptions: u32,
    /// When it was created, Unix time in milliseconds.
    pub created_unix_ms: u64,
}

/// An endpoint as the API reports it (the server adds the addresses peers send to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointView {
    /// Its session.
    pub session_id: String,
    /// Its id.
    pub endpoint_id: String,
    /// As requested.
    pub media_address: Option<SocketAddr>,
    /// As requested.
    pub latching: bool,
    /// The address its streams last latched to (`None`: none yet, or not latching): where it receives.
    pub latched_address: Option<SocketAddr>,
    /// Its effective RTCP address (`None`: RTCP muxed with RTP).
    pub rtcp_address: Option<SocketAddr>,
    /// As requested.
    pub rtcp_port_plus_one: bool,
}

/// A stream as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamView {
    /// Its session.
    pub session_id: String,
    /// Its id.
    pub stream_id: String,
    /// The publisher.
    pub endpoint_id: String,
    /// The publisher's SSRC (0 while a stream that learns it has not yet).
    pub ssrc: u32,
    /// Declared without an SSRC: it adopts the first one its publisher sends and follows changes.
    pub learns_ssrc: bool,
    /// Audio or video.
    pub kind: MediaKind,
    /// As requested.
    pub payload_types: Vec<u32>,
    /// RTP clock rate in Hz.
    pub clock_rate_hz: u32,
    /// The worker that holds it: `owner_of(ssrc, workers)`, unless it took an SSRC of another worker in place (a
    /// restarted publisher, an `UpdateStream`): it stays where its subscriptions' numbering lives, and the SSRC's
    /// owner hands its packets over (an SSRC alias, see `learn`).
    pub worker: usize,
    /// Its id in that worker's tables.
    pub data_plane_id: StreamId,
    /// Subscriptions to it.
    pub subscriptions: u32,
    /// Its ingress interceptors, in chain order.
    pub interceptors: Vec<ChainName>,
}

/// A subscription as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionView {
    /// Its session.
    pub session_id: String,
    /// Its id.
    pub subscription_id: String,
    /// The stream it forwards now.
    pub stream_id: String,
    /// The receiving endpoint.
    pub endpoint_id: String,
    /// SSRC the subscriber sees; 0 keeps the publisher's. A switch pins 0 to the SSRC seen so far.
    pub out_ssrc: u32,
    /// As requested.
    pub payload_type_map: Vec<PayloadTypeMapping>,
    /// Whether forwarding is paused.
    pub paused: bool,
    /// Sequence-number offset set at creation (0 from the API); after a switch the worker rebases it
    /// on its own.
    pub seq_offset: u16,
    /// Timestamp offset set at creation (0 from the API); after a switch the worker rebases it on its own.
    pub ts_offset: u32,
    /// Where the copies go: the endpoint's latched address once it has one, else its media address;
    /// `None` (a latching endpoint that has not sent yet): nowhere until it latches.
    pub destination: Option<SocketAddr>,
    /// The worker that forwards it (its stream's).
    pub worker: usize,
    /// Its id in that worker's tables.
    pub data_plane_id: SubscriptionId,
    /// Its egress interceptors, in chain order.
    pub interceptors: Vec<ChainName>,
    /// RTX for its retransmissions, when negotiated.
    pub rtx: Option<RtxSpec>,
}

/// How many of each resource the registry holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sessions.
    pub sessions: u32,
    /// Endpoints.
    pub endpoints: u32,
    /// Streams.
    pub streams: u32,
    /// Subscriptions.
    pub subscriptions: u32,
}

/// What a delete removed: the resource itself and everything that went with it.
pub type DeleteCounts = Usage;

/// What one worker holds, by the registry's account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Streams.
    pub streams: u32,
    /// Subscriptions.
    pub subscriptions: u32,
    /// Feedback routes to other workers' subscriptions (whose out SSRC this worker owns).
    pub feedback_routes: u32,
    /// SSRC aliases of other workers' streams (whose SSRC this worker owns; see `learn`).
    pub aliases: u32,
}

/// A session and everything in it, keyed by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionRecord {
    pub(crate) created_unix_ms: u64,
    pub(crate) endpoints: BTreeMap<String, EndpointRecord>,
    pub(crate) streams: BTreeMap<String, StreamRecord>,
    pub(crate) subscriptions: BTreeMap<String, SubscriptionRecord>,
}

/// An endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndpointRecord {
    pub(crate) media_address: Option<SocketAddr>,
    pub(crate) latching: bool,
    /// Set by the data plane's reports ([`Registry::plan_latch`](super::Registry::plan_latch)), not by requests.
    pub(crate) latched_address: Option<SocketAddr>,
    /// Its RTCP address as requested (muxed by default).
    pub(crate) rtcp: RtcpSpec,
}

/// A stream, with where it lives in the data plane and how many subscriptions it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StreamRecord {
    pub(crate) endpoint_id: String,
    /// The publisher's SSRC; while a stream that learns it has not yet, a placeholder no packet carries.
    pub(crate) ssrc: u32,
    /// Declared without an SSRC: it adopts the first one its publisher sends and follows changes (see `learn`).
    pub(crate) learns_ssrc: bool,
    /// It learned one (always true for a stream declared with its SSRC).
    pub(crate) ssrc_known: bool,
    pub(crate) kind: MediaKind,
    pub(crate) payload_types: Vec<u32>,
    pub(crate) clock_rate_hz: u32,
    pub(crate) worker: usize,
    pub(crate) data_plane_id: StreamId,
    pub(crate) subscriptions: u32,
    pub(crate) interceptors: Vec<ChainName>,
}

/// A subscription, with where it lives in the data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubscriptionRecord {
    pub(crate) stream_id: String,
    pub(crate) endpoint_id: String,
    pub(crate) out_ssrc: u32,
    pub(crate) payload_type_map: Vec<PayloadTypeMapping>,
    pub(crate) paused: bool,
    pub(crate) seq_offset: u16,
    pub(crate) ts_offset: u32,
    pub(crate) destination: Option<SocketAddr>,
    pub(crate) socket: usize,
    pub(crate) worker: usize,
    pub(crate) data_plane_id: SubscriptionId,
    pub(crate) interceptors: Vec<ChainName>,
    pub(crate) rtx: Option<RtxSpec>,
}

impl SessionRecord {
    /// An empty session created at `created_unix_ms`.
    pub(crate) fn new(created_unix_ms: u64) -> SessionRecord {
        SessionRecord {
            created_unix_ms,
            endpoints: BTreeMap::new(),
            streams: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
        }
    }

    pub(crate) fn view(&self, session_id: &str) -> SessionView {
        SessionView {
            session_id: session_id.to_owned(),
            endpoints: count(self.endpoints.len()),
            streams: count(self.streams.len()),
            subscriptions: count(self.subscriptions.len()),
            created_unix_ms: self.created_unix_ms,
        }
    }
}

impl EndpointRecord {
    pub(crate) fn view(&self, session_id: &str, endpoint_id: &str) -> EndpointView {
        EndpointView {
            session_id: session_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            media_address: self.media_address,
            latching: self.latching,
            latched_address: self.latched_address,
            rtcp_address: self.rtcp_address(),
            rtcp_port_plus_one: self.rtcp.port_plus_one,
        }
    }

    /// Where its RTCP comes from and goes to (`None`: muxed with its RTP): the explicit address, else with
    /// port + 1 that of the address it receives at (latched, else signalled).
    pub(crate) fn rtcp_address(&self) -> Option<SocketAddr> {
        self.rtcp.resolve(self.latched_address.or(self.media_address))
    }
}

impl StreamRecord {
    /// The worker holding its SSRC alias on a node of `workers` workers: its SSRC's owner when that is not the
    /// stream's worker (it took the SSRC in place, see `learn`), else `None`.
    pub(crate) fn alias(&self, workers: usize) -> Option<usize> {
        let owner = ringfwd_dataplane::control::owner_of(self.ssrc, workers);
        (owner != self.worker).then_some(owner)
    }

    pub(crate) fn view(&self, session_id: &str, stream_id: &str) -> StreamView {
        StreamView {
            session_id: session_id.to_owned(),
            stream_id: stream_id.to_owned(),
            endpoint_id: self.endpoint_id.clone(),
            ssrc: if self.ssrc_known { self.ssrc } else { 0 },
            learns_ssrc: self.learns_ssrc,
            kind: self.kind,
            payload_types: self.payload_types.clone(),
            clock_rate_hz: self.clock_rate_hz,
            worker: self.worker,
            data_plane_id: self.data_plane_id,
            subscriptions: self.subscriptions,
            interceptors: self.interceptors.clone(),
        }
    }
}

impl SubscriptionRecord {
    pub(crate) fn view(&self, session_id: &str, subscription_id: &str) -> SubscriptionView {
        SubscriptionView {
            session_id: session_id.to_owned(),
            subscription_id: subscription_id.to_owned(),
            stream_id: self.stream_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            out_ssrc: self.out_ssrc,
            payload_type_map: self.payload_type_map.clone(),
            paused: self.paused,
            seq_offset: self.seq_offset,
            ts_offset: self.ts_offset,
            destination: self.destination,
            worker: self.worker,
            data_plane_id: self.data_plane_id,
            interceptors: self.interceptors.clone(),
            rtx: self.rtx,
        }
    }
}

/// A collection size as a `u32` count (the registry's limits are `u32`, so it always fits).
pub(crate) fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
