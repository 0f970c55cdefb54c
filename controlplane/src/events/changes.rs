//! The lifecycle events of a registry commit and of a metadata change.
//!
//! Owns the rule of what each committed change reports: a create its one event; a delete one event per
//! resource that went, innermost first (every subscription, then every stream, then every endpoint, then the
//! session), mirroring the order in which the commit removes them; an idempotent repeat or an update nothing.
//! A metadata change reports `MetadataChanged`; the deletion of an object's metadata with the object reports
//! nothing (the object's own event says it). Pure: it must never publish (the caller does) nor read the clock.

use crate::metadata::MetadataEvent;
use crate::registry::{Outcome, Removal, View};

use super::event::{EventKind, StreamRef, SubscriptionRef};

/// The events of a committed change: `(session, kind)` in publishing order. `removal` is what
/// [`Registry::removal`](crate::registry::Registry::removal) said the change removes (read before the commit).
pub fn of_commit(outcome: &Outcome, removal: Option<Removal>) -> Vec<(String, EventKind)> {
    match (outcome, removal) {
        (Outcome::Created(view), _) => vec![created(view)],
        (Outcome::Deleted(_), Some(removal)) => removed(removal),
        _ => Vec::new(),
    }
}

fn created(view: &View) -> (String, EventKind) {
    match view {
        View::Session(s) => (s.session_id.clone(), EventKind::SessionStarted),
        View::Endpoint(e) => (e.session_id.clone(), EventKind::EndpointJoined { endpoint_id: e.endpoint_id.clone() }),
        View::Stream(s) => (
            s.session_id.clone(),
            EventKind::StreamPublished {
                stream: StreamRef { stream_id: s.stream_id.clone(), endpoint_id: s.endpoint_id.clone() },
                ssrc: s.ssrc,
                kind: s.kind,
            },
        ),
        View::Subscription(s) => (
            s.session_id.clone(),
            EventKind::Subscribed(SubscriptionRef {
                subscription_id: s.subscription_id.clone(),
                stream_id: s.stream_id.clone(),
                endpoint_id: s.endpoint_id.clone(),
            }),
        ),
    }
}

fn removed(removal: Removal) -> Vec<(String, EventKind)> {
    let Removal { session_id, session, endpoints, streams, subscriptions } = removal;
    let unsubscribed = subscriptions.into_iter().map(|s| {
        EventKind::Unsubscribed(SubscriptionRef {
            subscription_id: s.subscription_id,
            stream_id: s.stream_id,
            endpoint_id: s.endpoint_id,
        })
    });
    let unpublished = streams
        .into_iter()
        .map(|s| EventKind::StreamUnpublished(StreamRef { stream_id: s.stream_id, endpoint_id: s.endpoint_id }));
    let left = endpoints.into_iter().map(|endpoint_id| EventKind::EndpointLeft { endpoint_id });
    let ended = session.then_some(EventKind::SessionEnded);
    unsubscribed.chain(unpublished).chain(left).chain(ended).map(|kind| (session_id.clone(), kind)).collect()
}

/// The event of a metadata change, if it reports one.
pub fn of_metadata(event: &MetadataEvent) -> Option<(String, EventKind)> {
    match event {
        MetadataEvent::Changed { object, change } => Some((
            object.session_id.clone(),
            EventKind::MetadataChanged { object: object.clone(), change: std::sync::Arc::clone(change) },
        )),
        MetadataEvent::Deleted { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tests as fixtures;
    use crate::registry::{Registry, RegistryLimits, SessionView, Usage};

    fn room() -> (Registry, Vec<(String, EventKind)>) {
        let config = ringfwd_tuning::Config::default();
        let media = vec!["127.0.0.1:40000".parse().unwrap()];
        let mut reg = Registry::new(RegistryLimits::from_config(&config), media, 1);
        let mut events = Vec::new();
        let mut apply = |reg: &mut Registry, plan: crate::registry::Plan| {
            let removal = reg.removal(&plan.change);
            reg.commit(plan.change);
            events.extend(of_commit(&plan.outcome, removal));
        };
        let plan = reg.plan_create_session("s", 1).unwrap();
        apply(&mut reg, plan);
        for (id, address) in [("a", "127.0.0.1:5000"), ("b", "127.0.0.1:5002")] {
            let plan = reg.plan_create_endpoint(fixtures::endpoint("s", id, Some(address))).unwrap();
            apply(&mut reg, plan);
        }
        let stream = crate::registry::StreamSpec {
            kind: Some(crate::registry::MediaKind::Video),
            payload_types: vec![],
            clock_rate_hz: 90_000,
            ..fixtures::stream("s", "v", "a", 7)
        };
        let plan = reg.plan_create_stream(stream.clone()).unwrap();
        apply(&mut reg, plan);
        let plan = reg.plan_create_stream(stream).unwrap();
        apply(&mut reg, plan);
        let sub = fixtures::subscription("s", "b-v", "v", "b");
        let plan = reg.plan_create_subscription(sub).unwrap();
        apply(&mut reg, plan);
        let plan = reg.plan_delete_session("s").unwrap();
        apply(&mut reg, plan);
        (reg, events)
    }

    #[test]
    fn creates_report_once_and_a_session_delete_reports_everything_innermost_first() {
        let (_, events) = room();
        let names: Vec<_> = events.iter().map(|(session, kind)| (session.as_str(), kind.name())).collect();
        assert_eq!(
            names,
            [
                ("s", "session_started"),
                ("s", "endpoint_joined"),
                ("s", "endpoint_joined"),
                ("s", "stream_published"),
                ("s", "subscribed"),
                ("s", "unsubscribed"),
                ("s", "stream_unpublished"),
                ("s", "endpoint_left"),
                ("s", "endpoint_left"),
                ("s", "session_ended"),
            ],
            "the repeated stream create is idempotent and reports nothing"
        );
        let v = StreamRef { stream_id: "v".into(), endpoint_id: "a".into() };
        assert_eq!(
            events[3].1,
            EventKind::StreamPublished { stream: v.clone(), ssrc: 7, kind: crate::registry::MediaKind::Video }
        );
        assert_eq!(events[6].1, EventKind::StreamUnpublished(v));
    }

    #[test]
    fn a_delete_without_a_removal_and_an_update_report_nothing() {
        let view =
            SessionView { session_id: "s".into(), endpoints: 0, streams: 0, subscriptions: 0, created_unix_ms: 0 };
        assert!(of_commit(&Outcome::Deleted(Usage::default()), None).is_empty());
        assert!(of_commit(&Outcome::Existing(View::Session(view.clone())), None).is_empty());
        assert!(of_commit(&Outcome::Updated(View::Session(view)), None).is_empty());
    }

    #[test]
    fn metadata_changes_report_and_deletions_do_not() {
        use crate::metadata::{Member, MetadataLimits, MetadataStore, ObjectRef, Origin, Write};
        let mut store = MetadataStore::new(MetadataLimits::from_config(&ringfwd_tuning::Config::default()));
        let object = ObjectRef { session_id: "s".into(), member: Member::Stream("v".into()) };
        let outcome = store.write(&object, vec![Write::set("app.k", "x")], Origin::Controller, 5).unwrap();
        let (session, kind) = of_metadata(&outcome.event.unwrap()).unwrap();
        assert_eq!(session, "s");
        let EventKind::MetadataChanged { object: o, change } = kind else { panic!("{kind:?}") };
        assert_eq!((o, change.entries[0].key.as_str()), (object, "app.k"));
        for event in store.remove_gone("s", |_| false) {
            assert_eq!(of_metadata(&event), None);
        }
    }
}
