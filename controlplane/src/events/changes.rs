//! The lifecycle events of a registry commit and of a metadata change.
//!
//! Owns the rule of what each committed change reports: a create its one event; a delete one event per
//! resource that went, innermost first (every subscription, then every stream, then every endpoint, then the
//! session), mirroring the order in which the commit removes them; a subscription update what it changed of
//! the paused state and the stream, in the order the workers apply it (a pause before the switch, a resume
//! after it); an idempotent repeat, any other update or an update that changed neither nothing.
//! A metadata change reports `MetadataChanged`; the deletion of an object's metadata with the object reports
//! nothing (the object's own event says it). Pure: it must never publish (the caller does) nor read the clock.

use crate::metadata::MetadataEvent;
use crate::registry::{Outcome, Removal, SubscriptionView, View};

use super::event::{EventKind, StreamRef, SubscriptionRef};

/// The events of a committed change: `(session, kind)` in publishing order. `removal` is what
/// [`Registry::removal`](crate::registry::Registry::removal) said the change removes, and `replaced` what
/// [`Registry::replaced_subscription`](crate::registry::Registry::replaced_subscription) said it replaces (both
/// read before the commit).
pub fn of_commit(
    outcome: &Outcome,
    removal: Option<Removal>,
    replaced: Option<SubscriptionView>,
) -> Vec<(String, EventKind)> {
    match (outcome, removal, replaced) {
        (Outcome::Created(view), _, _) => vec![created(view)],
        (Outcome::Deleted(_), Some(removal), _) => removed(removal),
        (Outcome::Updated(View::Subscription(after)), _, Some(before)) => subscription_updated(&before, after),
        _ => Vec::new(),
    }
}

fn subscription_ref(s: &SubscriptionView) -> SubscriptionRef {
    SubscriptionRef {
        subscription_id: s.subscription_id.clone(),
        stream_id: s.stream_id.clone(),
        endpoint_id: s.endpoint_id.clone(),
    }
}

/// Paused, switched, resumed: in the order `Registry::plan_update` has the workers apply them.
fn subscription_updated(before: &SubscriptionView, after: &SubscriptionView) -> Vec<(String, EventKind)> {
    let mut kinds = Vec::new();
    if after.paused && !before.paused {
        kinds.push(EventKind::SubscriptionPaused(subscription_ref(before)));
    }
    if after.stream_id != before.stream_id {
        let previous_stream_id = before.stream_id.clone();
        kinds.push(EventKind::SubscriptionSwitched { subscription: subscription_ref(after), previous_stream_id });
    }
    if before.paused && !after.paused {
        kinds.push(EventKind::SubscriptionResumed(subscription_ref(after)));
    }
    kinds.into_iter().map(|kind| (after.session_id.clone(), kind)).collect()
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
        View::Subscription(s) => (s.session_id.clone(), EventKind::Subscribed(subscription_ref(s))),
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

    /// Commits `plan` as the API does and answers its events.
    fn apply(reg: &mut Registry, plan: crate::registry::Plan) -> Vec<(String, EventKind)> {
        let (removal, replaced) = (reg.removal(&plan.change), reg.replaced_subscription(&plan.change));
        reg.commit(plan.change);
        of_commit(&plan.outcome, removal, replaced)
    }

    fn video(id: &str, ssrc: u32) -> crate::registry::StreamSpec {
        crate::registry::StreamSpec {
            kind: Some(crate::registry::MediaKind::Video),
            payload_types: vec![],
            clock_rate_hz: 90_000,
            ..fixtures::stream("s", id, "a", ssrc)
        }
    }

    /// Session `s`: endpoints `a` and `b`, `a` publishing stream `v` (SSRC 7), `b` subscribed to it as `b-v`.
    fn room() -> (Registry, Vec<(String, EventKind)>) {
        let config = ringfwd_tuning::Config::default();
        let media = vec!["127.0.0.1:40000".parse().unwrap()];
        let mut reg = Registry::new(RegistryLimits::from_config(&config), media, 1);
        let mut events = Vec::new();
        let plan = reg.plan_create_session("s", 1).unwrap();
        events.extend(apply(&mut reg, plan));
        for (id, address) in [("a", "127.0.0.1:5000"), ("b", "127.0.0.1:5002")] {
            let plan = reg.plan_create_endpoint(fixtures::endpoint("s", id, Some(address))).unwrap();
            events.extend(apply(&mut reg, plan));
        }
        let plan = reg.plan_create_stream(video("v", 7)).unwrap();
        events.extend(apply(&mut reg, plan));
        let plan = reg.plan_create_stream(video("v", 7)).unwrap();
        events.extend(apply(&mut reg, plan));
        let sub = fixtures::subscription("s", "b-v", "v", "b");
        let plan = reg.plan_create_subscription(sub).unwrap();
        events.extend(apply(&mut reg, plan));
        (reg, events)
    }

    #[test]
    fn creates_report_once_and_a_session_delete_reports_everything_innermost_first() {
        let (mut reg, mut events) = room();
        let plan = reg.plan_delete_session("s").unwrap();
        events.extend(apply(&mut reg, plan));
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
    fn subscription_updates_report_pause_switch_and_resume_in_the_order_the_workers_apply_them() {
        let (mut reg, _) = room();
        let plan = reg.plan_create_stream(video("w", 8)).unwrap();
        apply(&mut reg, plan);
        let sub = |stream: &str| SubscriptionRef {
            subscription_id: "b-v".into(),
            stream_id: stream.into(),
            endpoint_id: "b".into(),
        };
        let mut update = |paused: Option<bool>, stream: Option<&str>| {
            let plan = reg.plan_update_subscription("s", "b-v", paused, stream).unwrap();
            let events = apply(&mut reg, plan);
            assert!(events.iter().all(|(session, _)| session == "s"), "{events:?}");
            events.into_iter().map(|(_, kind)| kind).collect::<Vec<_>>()
        };
        assert_eq!(update(Some(true), None), [EventKind::SubscriptionPaused(sub("v"))]);
        assert_eq!(update(Some(true), None), [], "already paused: nothing changed, nothing reported");
        let switched = |to: &str, from: &str| EventKind::SubscriptionSwitched {
            subscription: sub(to),
            previous_stream_id: from.into(),
        };
        assert_eq!(update(Some(false), Some("w")), [switched("w", "v"), EventKind::SubscriptionResumed(sub("w"))]);
        assert_eq!(update(Some(true), Some("v")), [EventKind::SubscriptionPaused(sub("w")), switched("v", "w")]);
        assert_eq!(update(None, Some("v")), [], "the stream it already forwards");
        assert_eq!(update(Some(false), None), [EventKind::SubscriptionResumed(sub("v"))]);
        let rtx = crate::registry::SubscriptionUpdate { rtx: Some(None), ..Default::default() };
        let plan = reg.plan_update("s", "b-v", &rtx).unwrap();
        assert_eq!(apply(&mut reg, plan), [], "a renegotiation is not a pause, resume or switch");
    }

    #[test]
    fn a_delete_without_a_removal_and_an_update_report_nothing() {
        let view =
            SessionView { session_id: "s".into(), endpoints: 0, streams: 0, subscriptions: 0, created_unix_ms: 0 };
        assert!(of_commit(&Outcome::Deleted(Usage::default()), None, None).is_empty());
        assert!(of_commit(&Outcome::Existing(View::Session(view.clone())), None, None).is_empty());
        assert!(of_commit(&Outcome::Updated(View::Session(view)), None, None).is_empty());
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
