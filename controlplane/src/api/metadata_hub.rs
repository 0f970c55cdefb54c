//! The metadata store with its watchers: who is told about each object's changes.
//!
//! Owns [`MetadataHub`]: the pure [`MetadataStore`] plus, per watched object, a bounded broadcast channel of
//! `metadata.watch_buffer_events` events (the channel rounds it up to a power of two). Publishing never waits: a watcher that falls further behind loses its
//! place (tokio's `Lagged`) and is cut off by its stream (see [`super::metadata`]), so a slow watcher never
//! slows a writer. A deletion event is the last on its channel: the channel is dropped after it, so the
//! watchers' streams end. Held under a short synchronous lock; must never be held across an `.await`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::metadata::{MetadataEvent, MetadataLimits, MetadataStore, ObjectRef};

/// The store and its watchers' channels.
#[derive(Debug)]
pub struct MetadataHub {
    /// Every object's metadata.
    pub store: MetadataStore,
    watchers: BTreeMap<ObjectRef, broadcast::Sender<Arc<MetadataEvent>>>,
}

impl MetadataHub {
    /// An empty hub with `limits`.
    pub fn new(limits: MetadataLimits) -> MetadataHub {
        MetadataHub { store: MetadataStore::new(limits), watchers: BTreeMap::new() }
    }

    /// A receiver of `object`'s events from now on.
    pub fn subscribe(&mut self, object: &ObjectRef) -> broadcast::Receiver<Arc<MetadataEvent>> {
        let capacity = self.store.limits().watch_buffer_events.max(1);
        self.watchers.entry(object.clone()).or_insert_with(|| broadcast::channel(capacity).0).subscribe()
    }

    /// Tells `event`'s object's watchers, without waiting for any. A channel without receivers, or after a
    /// deletion, is dropped.
    pub fn publish(&mut self, event: MetadataEvent) {
        let object = event.object().clone();
        let last = matches!(event, MetadataEvent::Deleted { .. });
        if let Some(sender) = self.watchers.get(&object) {
            let nobody = sender.send(Arc::new(event)).is_err();
            if nobody || last {
                self.watchers.remove(&object);
            }
        }
    }

    /// Objects with a watcher channel (some of whose watchers may have gone since the last event).
    #[cfg(test)]
    fn watched_objects(&self) -> usize {
        self.watchers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Member, Origin, Write};

    fn hub(buffer: u32) -> MetadataHub {
        let mut config = ringfwd_tuning::Config::default();
        config.metadata.watch_buffer_events = buffer;
        MetadataHub::new(MetadataLimits::from_config(&config))
    }

    #[test]
    fn a_slow_watcher_lags_and_never_blocks_the_writer() {
        let mut hub = hub(2);
        let object = ObjectRef { session_id: "s".into(), member: Member::Session };
        let mut rx = hub.subscribe(&object);
        for i in 0..5 {
            let outcome = hub.store.write(&object, vec![Write::set("app.k", i.to_string())], Origin::Controller, 1);
            hub.publish(outcome.unwrap().event.expect("a change"));
        }
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(3))));
    }

    #[test]
    fn deletion_is_the_last_event_and_drops_the_channel() {
        let mut hub = hub(4);
        let object = ObjectRef { session_id: "s".into(), member: Member::Session };
        let mut rx = hub.subscribe(&object);
        hub.store.write(&object, vec![Write::set("app.k", "v")], Origin::Controller, 1).unwrap();
        for event in hub.store.remove_gone("s", |_| false) {
            hub.publish(event);
        }
        assert_eq!(hub.watched_objects(), 0);
        assert!(matches!(rx.try_recv().as_deref(), Ok(MetadataEvent::Deleted { .. })));
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Closed)));
    }
}
