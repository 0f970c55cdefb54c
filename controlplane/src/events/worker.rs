//! Turning the workers' events into lifecycle events: the data plane's ids become the registry's names.
//!
//! Owns [`WorkerBatch`]: what was popped from the workers' bounded event rings in one round, the data-plane
//! ids it needs names for, and its translation ([`WorkerBatch::resolve`]) with the names the registry gave
//! for them. Pure: the registry lookup, the clock and the rings are the caller's (`api::events`). An event
//! whose stream or subscription is gone is not published (counted by the caller). Must never make a worker
//! wait: the caller only pops.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use ringfwd_dataplane::control::{EventRing, WorkerEvent, WorkerEventKind};
use ringfwd_dataplane::control::{Plugins, StreamId, SubscriptionId};

use super::event::{EventKind, StreamRef, SubscriptionRef};
use crate::registry::{EndpointNames, StreamNames, SubscriptionNames};

/// The registry's names of what a batch's events refer to.
#[derive(Clone, Copy, Debug)]
pub struct Names<'a> {
    /// Streams by data-plane id.
    pub streams: &'a StreamNames,
    /// Subscriptions by data-plane id.
    pub subscriptions: &'a SubscriptionNames,
    /// Endpoints by the address they send from.
    pub endpoints: &'a EndpointNames,
    /// The plugins, by id.
    pub plugins: &'a Plugins,
}

/// The worker events of one round.
#[derive(Debug, Default)]
pub struct WorkerBatch {
    /// The events, worker by worker, each worker's in the order it pushed them.
    pub events: Vec<WorkerEvent>,
}

impl WorkerBatch {
    /// Pops everything queued in `rings`, at most `max` events (the rest waits for the next round).
    pub fn pop(rings: &[std::sync::Arc<EventRing>], max: usize) -> WorkerBatch {
        let mut events = Vec::new();
        for ring in rings {
            while events.len() < max {
                match ring.pop() {
                    Some(event) => events.push(event),
                    None => break,
                }
            }
        }
        WorkerBatch { events }
    }

    /// The source addresses the events name (of unknown SSRCs).
    pub fn sources(&self) -> BTreeSet<SocketAddr> {
        let source = |event: &WorkerEvent| match event.kind {
            WorkerEventKind::UnknownSsrc { source, .. } => Some(source),
            _ => None,
        };
        self.events.iter().filter_map(source).collect()
    }

    /// The stream and subscription ids the events name.
    pub fn ids(&self) -> (BTreeSet<StreamId>, BTreeSet<SubscriptionId>) {
        let (mut streams, mut subscriptions) = (BTreeSet::new(), BTreeSet::new());
        for event in &self.events {
            match event.kind {
                WorkerEventKind::StreamStarted { stream }
                | WorkerEventKind::StreamInactive { stream }
                | WorkerEventKind::StreamBye { stream }
                | WorkerEventKind::SourceChanged { stream, .. }
                | WorkerEventKind::RateLimited { stream, .. } => {
                    streams.insert(stream);
                }
                WorkerEventKind::SubscriberUnreachable { subscription, .. } => {
                    subscriptions.insert(subscription);
                }
                WorkerEventKind::PluginDisabled { stream, subscription, .. } => {
                    streams.insert(stream);
                    subscriptions.extend(subscription);
                }
                WorkerEventKind::UnknownSsrc { .. } => {}
            }
        }
        (streams, subscriptions)
    }

    /// Each event as `(session, kind, unix_ms)`, in order; `None` for one whose stream or subscription has no
    /// name (it was deleted). `now`/`now_unix_ms` date the events (their `at` is a monotonic instant).
    pub fn resolve(&self, names: &Names<'_>, now: Instant, now_unix_ms: u64) -> Vec<Option<(String, EventKind, u64)>> {
        let (streams, subscriptions) = (names.streams, names.subscriptions);
        let stream = |id: &StreamId| {
            streams.get(id).map(|(session, stream_id, endpoint_id)| {
                (session.clone(), StreamRef { stream_id: stream_id.clone(), endpoint_id: endpoint_id.clone() })
            })
        };
        let subscription = |id: &SubscriptionId| {
            subscriptions.get(id).map(|(_, subscription_id, stream_id, endpoint_id)| SubscriptionRef {
                subscription_id: subscription_id.clone(),
                stream_id: stream_id.clone(),
                endpoint_id: endpoint_id.clone(),
            })
        };
        self.events
            .iter()
            .map(|event| {
                let unix_ms = occurred_unix_ms(event.at, now, now_unix_ms);
                let (session, kind) = match event.kind {
                    WorkerEventKind::StreamStarted { stream: id } => {
                        stream(&id).map(|(s, r)| (s, EventKind::StreamStarted(r)))?
                    }
                    WorkerEventKind::StreamInactive { stream: id } => {
                        stream(&id).map(|(s, r)| (s, EventKind::StreamInactive(r)))?
                    }
                    WorkerEventKind::StreamBye { stream: id } => {
                        stream(&id).map(|(s, r)| (s, EventKind::StreamBye(r)))?
                    }
                    WorkerEventKind::SourceChanged { stream: id, source } => {
                        stream(&id).map(|(s, r)| (s, EventKind::SourceChanged { stream: r, source }))?
                    }
                    WorkerEventKind::RateLimited { stream: id, dropped } => {
                        stream(&id).map(|(s, r)| (s, EventKind::RateLimited { stream: r, dropped_packets: dropped }))?
                    }
                    WorkerEventKind::UnknownSsrc { source, ssrc, payload_type } => {
                        let (session, endpoint_id) = names.endpoints.get(&source)?;
                        let endpoint_id = endpoint_id.clone();
                        (session.clone(), EventKind::UnknownSsrc { endpoint_id, source, ssrc, payload_type })
                    }
                    WorkerEventKind::SubscriberUnreachable { subscription, errno } => {
                        let (session, subscription_id, stream_id, endpoint_id) = subscriptions.get(&subscription)?;
                        let subscription = SubscriptionRef {
                            subscription_id: subscription_id.clone(),
                            stream_id: stream_id.clone(),
                            endpoint_id: endpoint_id.clone(),
                        };
                        (session.clone(), EventKind::SubscriberUnreachable { subscription, errno })
                    }
                    WorkerEventKind::PluginDisabled { plugin, stream: id, subscription: flow, fault } => {
                        let (session, stream) = stream(&id)?;
                        // On egress the subscription must still be there too (else it was deleted meanwhile).
                        let subscription = match flow {
                            Some(flow) => Some(subscription(&flow)?),
                            None => None,
                        };
                        let plugin = names.plugins.name(plugin).to_owned();
                        (session, EventKind::PluginDisabled { plugin, stream, subscription, fault: fault.as_str() })
                    }
                };
                Some((session, kind, unix_ms))
            })
            .collect()
    }
}

/// The Unix time in milliseconds of the monotonic instant `at`, given that `now` is `now_unix_ms`.
pub fn occurred_unix_ms(at: Instant, now: Instant, now_unix_ms: u64) -> u64 {
    let ago_ms = u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX);
    now_unix_ms.saturating_sub(ago_ms)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ringfwd_dataplane::control::PluginFault;

    use super::*;

    fn event(worker: usize, at: Instant, kind: WorkerEventKind) -> WorkerEvent {
        WorkerEvent { worker, at, kind }
    }

    #[test]
    fn worker_events_become_named_lifecycle_events_in_ring_order() {
        let t0 = Instant::now();
        let rings = [Arc::new(EventRing::new(8)), Arc::new(EventRing::new(8))];
        let source = "127.0.0.1:5000".parse().unwrap();
        assert!(rings[0].push(event(0, t0, WorkerEventKind::StreamStarted { stream: StreamId(1) })));
        assert!(rings[0].push(event(0, t0, WorkerEventKind::SourceChanged { stream: StreamId(1), source })));
        assert!(rings[1].push(event(1, t0, WorkerEventKind::RateLimited { stream: StreamId(2), dropped: 9 })));
        let unreachable = WorkerEventKind::SubscriberUnreachable { subscription: SubscriptionId(3), errno: 111 };
        assert!(rings[1].push(event(1, t0 + Duration::from_millis(5), unreachable)));
        assert!(rings[1].push(event(1, t0, WorkerEventKind::StreamInactive { stream: StreamId(4) })));
        assert!(rings[1].push(event(1, t0, WorkerEventKind::StreamBye { stream: StreamId(2) })));
        let disabled = |subscription, fault| WorkerEventKind::PluginDisabled {
            plugin: ringfwd_dataplane::control::PluginId(0),
            stream: StreamId(1),
            subscription,
            fault,
        };
        assert!(rings[0].push(event(0, t0, disabled(None, PluginFault::Trap))));
        assert!(rings[0].push(event(0, t0, disabled(Some(SubscriptionId(3)), PluginFault::Panic))));
        assert!(rings[0].push(event(0, t0, disabled(Some(SubscriptionId(9)), PluginFault::OutOfFuel))));
        let batch = WorkerBatch::pop(&rings, 100);
        assert!(rings.iter().all(|r| r.pop().is_none()), "the rings are drained");
        let (streams, subscriptions) = batch.ids();
        assert_eq!(streams, BTreeSet::from([StreamId(1), StreamId(2), StreamId(4)]));
        assert_eq!(subscriptions, BTreeSet::from([SubscriptionId(3), SubscriptionId(9)]));

        let names = |s: &str, st: &str, e: &str| (s.to_owned(), st.to_owned(), e.to_owned());
        let stream_names =
            StreamNames::from([(StreamId(1), names("s", "v", "a")), (StreamId(2), names("t", "w", "b"))]);
        let sub_name = ("s".to_owned(), "b-v".to_owned(), "v".to_owned(), "b".to_owned());
        let subscription_names = SubscriptionNames::from([(SubscriptionId(3), sub_name)]);
        let now = t0 + Duration::from_millis(40);
        let endpoints = EndpointNames::new();
        #[derive(Debug)]
        struct Pass;
        impl ringfwd_dataplane::plugin::Interceptor for Pass {}
        let plugins = Plugins::none().with_ingress("probe", |_| Box::new(Pass)).expect("registered");
        let names = Names {
            streams: &stream_names,
            subscriptions: &subscription_names,
            endpoints: &endpoints,
            plugins: &plugins,
        };
        let out = batch.resolve(&names, now, 10_000);
        let v = StreamRef { stream_id: "v".into(), endpoint_id: "a".into() };
        assert_eq!(out[0], Some(("s".into(), EventKind::StreamStarted(v.clone()), 9_960)));
        assert_eq!(out[1], Some(("s".into(), EventKind::SourceChanged { stream: v.clone(), source }, 9_960)));
        let plugin = "probe".to_owned();
        let trap =
            EventKind::PluginDisabled { plugin: plugin.clone(), stream: v.clone(), subscription: None, fault: "trap" };
        assert_eq!(out[2], Some(("s".into(), trap, 9_960)));
        let sub = SubscriptionRef { subscription_id: "b-v".into(), stream_id: "v".into(), endpoint_id: "b".into() };
        let panic = EventKind::PluginDisabled { plugin, stream: v, subscription: Some(sub), fault: "panic" };
        assert_eq!(out[3], Some(("s".into(), panic, 9_960)));
        assert_eq!(out[4], None, "subscription 9 was deleted: nothing to report");
        let out = &out[3..];
        let w = StreamRef { stream_id: "w".into(), endpoint_id: "b".into() };
        assert_eq!(out[2], Some(("t".into(), EventKind::RateLimited { stream: w, dropped_packets: 9 }, 9_960)));
        let subscription =
            SubscriptionRef { subscription_id: "b-v".into(), stream_id: "v".into(), endpoint_id: "b".into() };
        assert_eq!(out[3], Some(("s".into(), EventKind::SubscriberUnreachable { subscription, errno: 111 }, 9_965)));
        assert_eq!(out[4], None, "stream 4 was deleted: nothing to report");
        let w = StreamRef { stream_id: "w".into(), endpoint_id: "b".into() };
        assert_eq!(out[5], Some(("t".into(), EventKind::StreamBye(w), 9_960)));
    }

    #[test]
    fn a_round_pops_at_most_its_bound() {
        let ring = Arc::new(EventRing::new(8));
        for i in 0..5 {
            ring.push(event(0, Instant::now(), WorkerEventKind::StreamStarted { stream: StreamId(i) }));
        }
        assert_eq!(WorkerBatch::pop(&[Arc::clone(&ring)], 3).events.len(), 3);
        assert_eq!(WorkerBatch::pop(&[ring], 3).events.len(), 2);
    }

    #[test]
    fn event_times_are_dated_back_from_now() {
        let t0 = Instant::now();
        assert_eq!(occurred_unix_ms(t0, t0 + Duration::from_millis(250), 1_000), 750);
        assert_eq!(occurred_unix_ms(t0 + Duration::from_secs(1), t0, 1_000), 1_000, "never in the future");
        assert_eq!(occurred_unix_ms(t0, t0 + Duration::from_secs(5), 10), 0);
    }
}
