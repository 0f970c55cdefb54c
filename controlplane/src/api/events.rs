//! Lifecycle events in the API: publishing what the registry committed and what the workers reported, and
//! the WatchEvents RPC.
//!
//! Owns the translation of [`Event`] to the wire ([`event_to_wire`]), the publishing of each commit's events
//! (called by `apply` right after the commit, under the registry lock, so events are in commit order), the
//! drain of the workers' event rings (every `events.worker_poll_ms`: pop; under the registry lock, follow each
//! latch by moving the latching endpoint's subscriptions to its new address, see `Registry::plan_latch`, then
//! name the ids and publish), and each watcher's gRPC stream, which ends with RESOURCE_EXHAUSTED when the bus cut
//! the watcher off. Must never make a worker wait (it pops their rings, and sends a latch's commands as `apply`
//! does) nor hold the bus's lock across an `.await`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ringfwd_dataplane::control::StreamId;
use ringfwd_dataplane::control::{EventRing, WorkerEventKind};
use ringfwd_proto::v1;
use tonic::{Request, Response, Status};

use super::metadata_wire as wire;
use super::unclaimed::Unclaimed;
use super::Api;
use crate::events::worker::{Names, WorkerBatch};
use crate::events::{changes, Event, EventKind, StreamRef, SubscriptionRef, Watch, WatchError};
use crate::metadata::MetadataEvent;
use crate::registry::{Outcome, Registry, Removal, SubscriptionView};

/// Most worker events handled per round (the rest waits for the next round), so one round holds the registry
/// lock briefly.
pub const MAX_WORKER_EVENTS_PER_ROUND: usize = 4096;

fn stream_ref(s: &StreamRef) -> (String, String) {
    (s.stream_id.clone(), s.endpoint_id.clone())
}

fn subscription_ref(s: &SubscriptionRef) -> (String, String, String) {
    (s.subscription_id.clone(), s.stream_id.clone(), s.endpoint_id.clone())
}

/// An event on the wire.
pub fn event_to_wire(event: &Event) -> v1::Event {
    use v1::event::Kind;
    let kind = match &event.kind {
        EventKind::SessionStarted => Kind::SessionStarted(v1::SessionStarted {}),
        EventKind::SessionEnded => Kind::SessionEnded(v1::SessionEnded {}),
        EventKind::EndpointJoined { endpoint_id } => {
            Kind::EndpointJoined(v1::EndpointJoined { endpoint_id: endpoint_id.clone() })
        }
        EventKind::EndpointLeft { endpoint_id } => {
            Kind::EndpointLeft(v1::EndpointLeft { endpoint_id: endpoint_id.clone() })
        }
        EventKind::StreamPublished { stream, ssrc, kind } => {
            let (stream_id, endpoint_id) = stream_ref(stream);
            let kind = super::convert::kind_to_wire(*kind);
            Kind::StreamPublished(v1::StreamPublished { stream_id, endpoint_id, ssrc: *ssrc, kind })
        }
        EventKind::StreamUnpublished(s) => {
            let (stream_id, endpoint_id) = stream_ref(s);
            Kind::StreamUnpublished(v1::StreamUnpublished { stream_id, endpoint_id })
        }
        EventKind::StreamStarted(s) => {
            let (stream_id, endpoint_id) = stream_ref(s);
            Kind::StreamStarted(v1::StreamStarted { stream_id, endpoint_id })
        }
        EventKind::StreamInactive(s) => {
            let (stream_id, endpoint_id) = stream_ref(s);
            Kind::StreamInactive(v1::StreamInactive { stream_id, endpoint_id })
        }
        EventKind::StreamBye(s) => {
            let (stream_id, endpoint_id) = stream_ref(s);
            Kind::StreamBye(v1::StreamBye { stream_id, endpoint_id })
        }
        EventKind::StreamSsrcChanged { stream, ssrc, previous_ssrc } => {
            let (stream_id, endpoint_id) = stream_ref(stream);
            Kind::StreamSsrcChanged(v1::StreamSsrcChanged {
                stream_id,
                endpoint_id,
                ssrc: *ssrc,
                previous_ssrc: *previous_ssrc,
            })
        }
        EventKind::UnknownSsrc { endpoint_id, source, ssrc, payload_type } => Kind::UnknownSsrc(v1::UnknownSsrc {
            endpoint_id: endpoint_id.clone(),
            source_address: source.to_string(),
            ssrc: *ssrc,
            payload_type: u32::from(*payload_type),
        }),
        EventKind::SourceChanged { stream, source } => {
            let (stream_id, endpoint_id) = stream_ref(stream);
            Kind::SourceChanged(v1::SourceChanged { stream_id, endpoint_id, source_address: source.to_string() })
        }
        EventKind::SubscriberUnreachable { subscription, errno } => {
            let (subscription_id, stream_id, endpoint_id) = subscription_ref(subscription);
            Kind::SubscriberUnreachable(v1::SubscriberUnreachable {
                subscription_id,
                stream_id,
                endpoint_id,
                errno: *errno,
            })
        }
        EventKind::RateLimited { stream, dropped_packets } => {
            let (stream_id, endpoint_id) = stream_ref(stream);
            Kind::RateLimited(v1::RateLimited { stream_id, endpoint_id, dropped_packets: *dropped_packets })
        }
        EventKind::PluginDisabled { plugin, stream, subscription, fault } => {
            let (stream_id, endpoint_id) = stream_ref(stream);
            let (subscription_id, _, subscriber_endpoint_id) =
                subscription.as_ref().map(subscription_ref).unwrap_or_default();
            Kind::PluginDisabled(v1::PluginDisabled {
                plugin: plugin.clone(),
                stream_id,
                endpoint_id,
                subscription_id,
                subscriber_endpoint_id,
                fault: (*fault).to_owned(),
            })
        }
        EventKind::NodeJoined { node } => Kind::NodeJoined(v1::NodeJoined { node_id: node.clone() }),
        EventKind::NodeLost { node, expired } => {
            Kind::NodeLost(v1::NodeLost { node_id: node.clone(), expired: *expired })
        }
        EventKind::RelayMoved { stream_id, origin, from, to } => Kind::RelayMoved(v1::RelayMoved {
            stream_id: stream_id.clone(),
            origin_node_id: origin.clone(),
            from_node_id: from.clone(),
            to_node_id: to.clone(),
        }),
        EventKind::Subscribed(s) => {
            let (subscription_id, stream_id, endpoint_id) = subscription_ref(s);
            Kind::Subscribed(v1::Subscribed { subscription_id, stream_id, endpoint_id })
        }
        EventKind::Unsubscribed(s) => {
            let (subscription_id, stream_id, endpoint_id) = subscription_ref(s);
            Kind::Unsubscribed(v1::Unsubscribed { subscription_id, stream_id, endpoint_id })
        }
        EventKind::SubscriptionPaused(s) => {
            let (subscription_id, stream_id, endpoint_id) = subscription_ref(s);
            Kind::SubscriptionPaused(v1::SubscriptionPaused { subscription_id, stream_id, endpoint_id })
        }
        EventKind::SubscriptionResumed(s) => {
            let (subscription_id, stream_id, endpoint_id) = subscription_ref(s);
            Kind::SubscriptionResumed(v1::SubscriptionResumed { subscription_id, stream_id, endpoint_id })
        }
        EventKind::SubscriptionSwitched { subscription, previous_stream_id } => {
            let (subscription_id, stream_id, endpoint_id) = subscription_ref(subscription);
            Kind::SubscriptionSwitched(v1::SubscriptionSwitched {
                subscription_id,
                stream_id,
                endpoint_id,
                previous_stream_id: previous_stream_id.clone(),
            })
        }
        EventKind::MetadataChanged { object, change } => Kind::MetadataChanged(v1::MetadataChanged {
            target: Some(wire::target_to_wire(object)),
            version: Some(wire::version_to_wire(change.version)),
            entries: change.entries.iter().map(wire::entry).collect(),
        }),
    };
    v1::Event {
        id: event.id.clone(),
        seq: event.seq,
        unix_ms: event.unix_ms,
        session_id: event.session_id.clone(),
        kind: Some(kind),
    }
}

/// The stream of a WatchEvents call: the watch's events on the wire, ending with RESOURCE_EXHAUSTED when the
/// watcher was cut off.
#[derive(Debug)]
pub struct EventStream(Watch);

impl tokio_stream::Stream for EventStream {
    type Item = Result<v1::Event, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next(cx).map(|next| {
            next.map(|item| match item {
                Ok(event) => Ok(event_to_wire(&event)),
                Err(cut) => Err(Status::resource_exhausted(cut.to_string())),
            })
        })
    }
}

fn watch_status(e: WatchError) -> Status {
    let message = e.to_string();
    match e {
        WatchError::Resume(_) => Status::out_of_range(message),
        WatchError::TooManyWatchers { .. } => Status::resource_exhausted(message),
        WatchError::Closed => Status::unavailable(message),
    }
}

/// `Ok` for an empty filter or a well-formed session id.
fn session_filter(session_id: String) -> Result<Option<String>, Status> {
    if session_id.is_empty() {
        return Ok(None);
    }
    crate::registry::validate_id("session_id", &session_id).map_err(super::status::registry)?;
    Ok(Some(session_id))
}

impl Api {
    /// Publishes the events of a change just committed (under the registry lock, after the workers applied it):
    /// `removal` is what the registry said it removes and `replaced` the subscription it said it replaces, both
    /// read before the commit.
    pub(super) fn publish_commit(
        &self,
        outcome: &Outcome,
        removal: Option<Removal>,
        replaced: Option<SubscriptionView>,
    ) {
        let now = crate::clock::unix_ms();
        for (session, kind) in changes::of_commit(outcome, removal, replaced) {
            self.events.publish(session, kind, now);
        }
    }

    /// Publishes the event of a metadata change, if it reports one.
    pub(super) fn publish_metadata(&self, event: &MetadataEvent) {
        if let Some((session, kind)) = changes::of_metadata(event) {
            self.events.publish(session, kind, crate::clock::unix_ms());
        }
    }

    /// WatchEvents.
    pub(super) async fn watch_events_rpc(
        &self,
        request: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let r = request.into_inner();
        let session = session_filter(r.session_id)?;
        let watch = self.events.watch(r.from_seq, session).map_err(watch_status)?;
        Ok(Response::new(EventStream(watch)))
    }

    /// Pops what the workers pushed on `rings` and publishes it by the registry's names; an event whose stream
    /// or subscription is gone is counted, not published.
    pub async fn publish_worker_events(&self, rings: &[Arc<EventRing>]) {
        let batch = WorkerBatch::pop(rings, MAX_WORKER_EVENTS_PER_ROUND);
        if batch.events.is_empty() {
            return;
        }
        let (streams, subscriptions) = batch.ids();
        // Under the registry lock: a stream deleted before this cannot be reported after its deletion event.
        let mut registry = self.registry.lock().await;
        // A latching endpoint receives where it sends from: its subscriptions move there before the event is out.
        for event in &batch.events {
            if let WorkerEventKind::SourceChanged { stream, source } = event.kind {
                self.follow_latch(&mut registry, stream, source).await;
            }
        }
        // A stream that learns its SSRC takes an unknown one from its publisher; what it took is no longer unknown,
        // what none took is kept for a round (see `unclaimed`).
        let mut learned = Vec::new();
        for event in &batch.events {
            if let WorkerEventKind::UnknownSsrc { source, ssrc, payload_type } = event.kind {
                if self.follow_ssrc(&mut registry, source, ssrc, payload_type).await {
                    learned.push((source, ssrc));
                } else if let Ok(mut unclaimed) = self.unclaimed.lock() {
                    unclaimed.note(Unclaimed { source, ssrc, payload_type, seen: event.at });
                }
            }
        }
        let mut batch = batch;
        batch.events.retain(|e| {
            !matches!(e.kind, WorkerEventKind::UnknownSsrc { source, ssrc, .. } if learned.contains(&(source, ssrc)))
        });
        let (stream_names, subscription_names) = registry.names_of(&streams, &subscriptions);
        let endpoint_names = registry.endpoints_at(&batch.sources());
        let plugins = registry.plugins();
        let names =
            Names { streams: &stream_names, subscriptions: &subscription_names, endpoints: &endpoint_names, plugins };
        for resolved in batch.resolve(&names, Instant::now(), crate::clock::unix_ms()) {
            match resolved {
                Some((session, kind, unix_ms)) => {
                    self.events.publish(session, kind, unix_ms);
                }
                None => {
                    self.events.counters().worker_events_unresolved.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Moves the subscriptions of the endpoint that publishes `stream` to `source`, where its stream latched (see
    /// `Registry::plan_latch`), and records the address; a failure is logged and leaves everything as it was.
    async fn follow_latch(&self, registry: &mut Registry, stream: StreamId, source: SocketAddr) {
        let Some(plan) = registry.plan_latch(stream, source) else {
            return;
        };
        if let Err(status) = self.execute_and_commit(registry, plan).await {
            tracing::warn!(%stream, %source, error = %status.message(), "could not move subscriptions to a latched address");
        }
    }

    /// Lets the stream that learns its SSRC from `source` with `payload_type` take `ssrc` (see `Registry::plan_learn`)
    /// and publishes `stream_ssrc_changed`; false when no stream takes it or the workers refused (logged, nothing
    /// changed).
    pub(super) async fn follow_ssrc(
        &self,
        registry: &mut Registry,
        source: SocketAddr,
        ssrc: u32,
        payload_type: u8,
    ) -> bool {
        let Some((session_id, stream_id, plan)) = registry.plan_learn(source, ssrc, payload_type) else {
            return false;
        };
        let previous = registry.get_stream(&session_id, &stream_id).map(|s| s.ssrc).unwrap_or(0);
        match self.execute_and_commit(registry, plan).await {
            Ok((Outcome::Updated(crate::registry::View::Stream(view)), _)) => {
                let stream = StreamRef { stream_id: view.stream_id, endpoint_id: view.endpoint_id };
                let kind = EventKind::StreamSsrcChanged { stream, ssrc, previous_ssrc: previous };
                self.events.publish(session_id, kind, crate::clock::unix_ms());
                true
            }
            Ok(_) => false,
            Err(status) => {
                tracing::warn!(%source, ssrc, error = %status.message(), "could not let a stream learn its SSRC");
                false
            }
        }
    }

    /// Offers the unknown SSRCs no stream took in the last statistics round to the streams as they are now (after
    /// a commit: a stream that learns its SSRC may have been declared, or its endpoint's address set, a moment
    /// after its first packets were reported), so that such a stream learns at once, not a round later.
    pub(super) async fn offer_unclaimed(&self, registry: &mut Registry) {
        let fresh = match self.unclaimed.lock() {
            Ok(mut unclaimed) if !unclaimed.is_empty() => unclaimed.fresh(Instant::now()),
            _ => return,
        };
        for report in fresh {
            if self.follow_ssrc(registry, report.source, report.ssrc, report.payload_type).await {
                if let Ok(mut unclaimed) = self.unclaimed.lock() {
                    unclaimed.claimed(report.source, report.ssrc);
                }
            }
        }
    }

    /// Every `period`, until `stop` resolves, publishes the workers' events (a last round at the stop).
    pub async fn drain_worker_events(
        self: Arc<Self>,
        rings: Vec<Arc<EventRing>>,
        period: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        crate::clock::every(period, stop, || self.publish_worker_events(&rings)).await;
        self.publish_worker_events(&rings).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Change, Entry, Member, ObjectRef, Version};

    fn event(kind: EventKind) -> Event {
        Event { id: "00000000000000ab-3".into(), seq: 3, unix_ms: 99, session_id: "s".into(), kind }
    }

    #[test]
    fn events_go_on_the_wire_with_every_name() {
        let stream = StreamRef { stream_id: "v".into(), endpoint_id: "a".into() };
        let wire = event_to_wire(&event(EventKind::StreamPublished {
            stream,
            ssrc: 7,
            kind: crate::registry::MediaKind::Video,
        }));
        assert_eq!(
            (wire.id.as_str(), wire.seq, wire.unix_ms, wire.session_id.as_str()),
            ("00000000000000ab-3", 3, 99, "s")
        );
        let Some(v1::event::Kind::StreamPublished(p)) = wire.kind else { panic!("{wire:?}") };
        assert_eq!((p.stream_id.as_str(), p.endpoint_id.as_str(), p.ssrc), ("v", "a", 7));
        assert_eq!(p.kind, i32::from(v1::MediaKind::Video));

        let subscription =
            SubscriptionRef { subscription_id: "b-v".into(), stream_id: "v".into(), endpoint_id: "b".into() };
        let wire = event_to_wire(&event(EventKind::SubscriberUnreachable { subscription, errno: 111 }));
        let Some(v1::event::Kind::SubscriberUnreachable(u)) = wire.kind else { panic!("{wire:?}") };
        assert_eq!(
            (u.subscription_id.as_str(), u.stream_id.as_str(), u.endpoint_id.as_str(), u.errno),
            ("b-v", "v", "b", 111)
        );

        let subscription =
            SubscriptionRef { subscription_id: "b-v".into(), stream_id: "w".into(), endpoint_id: "b".into() };
        let switched = EventKind::SubscriptionSwitched { subscription, previous_stream_id: "v".into() };
        let Some(v1::event::Kind::SubscriptionSwitched(s)) = event_to_wire(&event(switched)).kind else {
            panic!("not a switch")
        };
        assert_eq!(
            (s.subscription_id.as_str(), s.stream_id.as_str(), s.endpoint_id.as_str(), s.previous_stream_id.as_str()),
            ("b-v", "w", "b", "v")
        );

        let version = Version { wall_us: 5, counter: 1, node_id: 2 };
        let change = Change {
            version,
            entries: vec![Entry { key: "app.k".into(), value: Some("x".into()), version, set_once: false }],
        };
        let object = ObjectRef { session_id: "s".into(), member: Member::Endpoint("a".into()) };
        let wire = event_to_wire(&event(EventKind::MetadataChanged { object, change: Arc::new(change) }));
        let Some(v1::event::Kind::MetadataChanged(m)) = wire.kind else { panic!("{wire:?}") };
        assert_eq!(m.target.unwrap().endpoint_id, "a");
        assert_eq!(m.version.unwrap().wall_us, 5);
        assert_eq!((m.entries[0].key.as_str(), m.entries[0].value.as_str()), ("app.k", "x"));
    }

    #[test]
    fn watch_refusals_have_their_status() {
        let resume = crate::events::ResumeError::Ahead { from_seq: 9, newest: 3 };
        assert_eq!(watch_status(WatchError::Resume(resume)).code(), tonic::Code::OutOfRange);
        let s = watch_status(WatchError::TooManyWatchers { max: 2 });
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("events.max_watchers"));
        assert_eq!(session_filter(String::new()).unwrap(), None);
        assert_eq!(session_filter("room-1".into()).unwrap().as_deref(), Some("room-1"));
        let e = session_filter("a b".into()).unwrap_err();
        assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("session_id"));
    }
}
