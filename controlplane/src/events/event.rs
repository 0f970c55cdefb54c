//! What a lifecycle event is.
//!
//! Owns [`Event`] (id, sequence number, time, session, kind) and [`EventKind`], with the names it carries as
//! strings ([`StreamRef`], [`SubscriptionRef`]). Plain data: it must never assign a sequence number (that is
//! [`super::history`]) nor know the wire (that is [`super::wire`]).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::metadata::{Change, ObjectRef};
use crate::registry::MediaKind;

/// A stream as events name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRef {
    /// The stream's id.
    pub stream_id: String,
    /// Its publishing endpoint.
    pub endpoint_id: String,
}

/// A subscription as events name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRef {
    /// The subscription's id.
    pub subscription_id: String,
    /// The stream it forwards.
    pub stream_id: String,
    /// The receiving endpoint.
    pub endpoint_id: String,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The session was created.
    SessionStarted,
    /// The session was deleted.
    SessionEnded,
    /// An endpoint was created.
    EndpointJoined {
        /// Its id.
        endpoint_id: String,
    },
    /// An endpoint was deleted.
    EndpointLeft {
        /// Its id.
        endpoint_id: String,
    },
    /// A stream was created.
    StreamPublished {
        /// Which.
        stream: StreamRef,
        /// The publisher's SSRC.
        ssrc: u32,
        /// Audio or video.
        kind: MediaKind,
    },
    /// A stream was deleted.
    StreamUnpublished(StreamRef),
    /// A stream's first packet arrived (after creation, or after it was inactive).
    StreamStarted(StreamRef),
    /// A stream received nothing for `telemetry.inactive_after_ms`.
    StreamInactive(StreamRef),
    /// A stream's publisher said BYE in its RTCP (it stopped sending).
    StreamBye(StreamRef),
    /// A stream that learns its SSRC took a new one.
    StreamSsrcChanged {
        /// Which.
        stream: StreamRef,
        /// The SSRC from now on.
        ssrc: u32,
        /// The one before (0: none yet).
        previous_ssrc: u32,
    },
    /// RTP with an SSRC no stream has arrived from an endpoint's address.
    UnknownSsrc {
        /// The endpoint at that address.
        endpoint_id: String,
        /// The address.
        source: SocketAddr,
        /// The SSRC.
        ssrc: u32,
        /// The payload type of its first packet.
        payload_type: u8,
    },
    /// A stream's source address changed.
    SourceChanged {
        /// Which.
        stream: StreamRef,
        /// Where its packets now come from.
        source: SocketAddr,
    },
    /// Sends to a subscriber fail with an ICMP-reported error.
    SubscriberUnreachable {
        /// Which.
        subscription: SubscriptionRef,
        /// The errno the send completed with.
        errno: i32,
    },
    /// A stream's source went over its rate limit.
    RateLimited {
        /// Which.
        stream: StreamRef,
        /// Packets dropped since the previous such event of the stream.
        dropped_packets: u64,
    },
    /// A plugin faulted in a stream's ingress chain (`subscription: None`) or a subscription's egress chain, and was
    /// disabled.
    PluginDisabled {
        /// The plugin's name.
        plugin: String,
        /// The stream.
        stream: StreamRef,
        /// The subscription, on egress.
        subscription: Option<SubscriptionRef>,
        /// "panic", "trap", "out_of_fuel", "bad_verdict" or "bad_rewrite".
        fault: &'static str,
    },
    /// A subscription was created.
    Subscribed(SubscriptionRef),
    /// A subscription was deleted.
    Unsubscribed(SubscriptionRef),
    /// A subscription was paused (by the API; the workers applied it).
    SubscriptionPaused(SubscriptionRef),
    /// A paused subscription was resumed (by the API; the workers applied it).
    SubscriptionResumed(SubscriptionRef),
    /// A subscription was switched to another stream of its session (by the API; the workers applied it).
    SubscriptionSwitched {
        /// Which, with the stream it forwards from now on.
        subscription: SubscriptionRef,
        /// The stream it forwarded before.
        previous_stream_id: String,
    },
    /// A node of the cluster took a lease (no session: the event's session id is empty).
    NodeJoined {
        /// Its id.
        node: String,
    },
    /// A node of the cluster left, or its lease ran out (`expired`).
    NodeLost {
        /// Its id.
        node: String,
        /// Whether its lease ran out (rather than it leaving).
        expired: bool,
    },
    /// A stream relayed here moved to another path (see `cluster::paths`).
    RelayMoved {
        /// Which.
        stream_id: String,
        /// The node that publishes it.
        origin: String,
        /// The node it came from before.
        from: String,
        /// The node it comes from now.
        to: String,
    },
    /// Metadata of the session, an endpoint or a stream changed.
    MetadataChanged {
        /// Whose.
        object: ObjectRef,
        /// What was written, with its version (shared with the metadata watchers).
        change: Arc<Change>,
    },
}

impl EventKind {
    /// The event's name in logs: the protobuf oneof field's name.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::SessionStarted => "session_started",
            EventKind::SessionEnded => "session_ended",
            EventKind::EndpointJoined { .. } => "endpoint_joined",
            EventKind::EndpointLeft { .. } => "endpoint_left",
            EventKind::StreamPublished { .. } => "stream_published",
            EventKind::StreamUnpublished(_) => "stream_unpublished",
            EventKind::StreamStarted(_) => "stream_started",
            EventKind::StreamInactive(_) => "stream_inactive",
            EventKind::StreamBye(_) => "stream_bye",
            EventKind::UnknownSsrc { .. } => "unknown_ssrc",
            EventKind::StreamSsrcChanged { .. } => "stream_ssrc_changed",
            EventKind::SourceChanged { .. } => "source_changed",
            EventKind::SubscriberUnreachable { .. } => "subscriber_unreachable",
            EventKind::RateLimited { .. } => "rate_limited",
            EventKind::PluginDisabled { .. } => "plugin_disabled",
            EventKind::Subscribed(_) => "subscribed",
            EventKind::Unsubscribed(_) => "unsubscribed",
            EventKind::SubscriptionPaused(_) => "subscription_paused",
            EventKind::SubscriptionResumed(_) => "subscription_resumed",
            EventKind::SubscriptionSwitched { .. } => "subscription_switched",
            EventKind::MetadataChanged { .. } => "metadata_changed",
            EventKind::NodeJoined { .. } => "node_joined",
            EventKind::NodeLost { .. } => "node_lost",
            EventKind::RelayMoved { .. } => "relay_moved",
        }
    }
}

/// One lifecycle event as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Unique, also across restarts: `<boot id as 16 hex digits>-<seq>`.
    pub id: String,
    /// 1 for the node's first event, then +1 per event.
    pub seq: u64,
    /// When it happened, Unix time in milliseconds.
    pub unix_ms: u64,
    /// The session it concerns.
    pub session_id: String,
    /// What happened.
    pub kind: EventKind,
}
