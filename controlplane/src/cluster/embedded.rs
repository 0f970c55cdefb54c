//! The embedded directory: the cluster is this process. The default, with nothing to install: the node list holds
//! this node, and the streams are the ones it publishes.
//!
//! Owns [`Embedded`]: leases with their deadline on the process's monotonic clock, placements in a map, changes on a
//! broadcast channel. Must never reach outside the process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::metadata::{merge_order, Entry, Member};
use tokio::time::{Duration, Instant};

use super::directory::{
    Change, Directory, DirectoryFuture, NodeLease, NodeRecord, SessionRecord, StreamKey, ENDED_SESSIONS_KEPT_MS,
};

/// The directory in this process.
pub struct Embedded {
    state: Mutex<State>,
    changes: broadcast::Sender<Change>,
}

#[derive(Default)]
struct State {
    /// Each node's record and when its lease runs out.
    nodes: BTreeMap<String, (NodeRecord, Instant)>,
    /// Where each stream is published.
    streams: BTreeMap<StreamKey, String>,
    sessions: BTreeMap<String, SessionRecord>,
    /// Ended sessions (id, creation time) and when they ended.
    ended: BTreeMap<(String, u64), u64>,
    /// The metadata shared: by session, member and key, the greatest entry in the merge order.
    metadata: BTreeMap<(String, Member, String), Entry>,
}

impl Embedded {
    /// An empty directory whose watchers may fall `buffer` changes behind.
    pub fn new(buffer: usize) -> Embedded {
        Embedded { state: Mutex::new(State::default()), changes: broadcast::channel(buffer.max(1)).0 }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send(&self, change: Change) {
        // No watcher is not an error.
        let _ = self.changes.send(change);
    }

    /// Drops the nodes whose lease ran out (and their streams), saying so.
    fn expire(&self, now: Instant) {
        let gone: Vec<String> = {
            let mut state = self.state();
            let gone: Vec<String> =
                state.nodes.iter().filter(|(_, (_, until))| *until <= now).map(|(id, _)| id.clone()).collect();
            for id in &gone {
                state.nodes.remove(id);
                state.streams.retain(|_, node| node != id);
            }
            gone
        };
        for node in gone {
            self.send(Change::NodeDown { node, expired: true });
        }
    }
}

impl Directory for Embedded {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn renew<'a>(&'a self, node: &'a NodeRecord, lease_ms: u32) -> DirectoryFuture<'a, Option<NodeRecord>> {
        Box::pin(async move {
            let now = Instant::now();
            self.expire(now);
            let until = now + Duration::from_millis(u64::from(lease_ms));
            let previous = self.state().nodes.insert(node.id.clone(), (node.clone(), until)).map(|(record, _)| record);
            if previous.is_none() {
                self.send(Change::NodeUp { node: node.id.clone() });
            }
            Ok(previous)
        })
    }

    fn leave<'a>(&'a self, node: &'a str) -> DirectoryFuture<'a, ()> {
        Box::pin(async move {
            let left = {
                let mut state = self.state();
                state.streams.retain(|_, on| on != node);
                state.nodes.remove(node).is_some()
            };
            if left {
                self.send(Change::NodeDown { node: node.to_owned(), expired: false });
            }
            Ok(())
        })
    }

    fn nodes(&self) -> DirectoryFuture<'_, Vec<NodeLease>> {
        Box::pin(async move {
            let now = Instant::now();
            self.expire(now);
            let state = self.state();
            let leases = state.nodes.values().map(|(record, until)| NodeLease {
                record: record.clone(),
                remaining_ms: u64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX),
            });
            Ok(leases.collect())
        })
    }

    fn place<'a>(&'a self, stream: &'a StreamKey, node: &'a str) -> DirectoryFuture<'a, ()> {
        Box::pin(async move {
            let moved = self.state().streams.insert(stream.clone(), node.to_owned());
            if moved.as_deref() != Some(node) {
                self.send(Change::StreamPlaced { stream: stream.encode(), node: node.to_owned() });
            }
            Ok(())
        })
    }

    fn remove<'a>(&'a self, stream: &'a StreamKey, node: &'a str) -> DirectoryFuture<'a, ()> {
        Box::pin(async move {
            let removed = {
                let mut state = self.state();
                let here = state.streams.get(stream).is_some_and(|on| on == node);
                here && state.streams.remove(stream).is_some()
            };
            if removed {
                self.send(Change::StreamRemoved { stream: stream.encode(), node: node.to_owned() });
            }
            Ok(())
        })
    }

    fn locate<'a>(&'a self, stream: &'a StreamKey) -> DirectoryFuture<'a, Option<String>> {
        Box::pin(async move { Ok(self.state().streams.get(stream).cloned()) })
    }

    fn streams(&self) -> DirectoryFuture<'_, Vec<(StreamKey, String)>> {
        Box::pin(async move { Ok(self.state().streams.iter().map(|(k, v)| (k.clone(), v.clone())).collect()) })
    }

    fn claim_session<'a>(&'a self, id: &'a str, record: &'a SessionRecord) -> DirectoryFuture<'a, SessionRecord> {
        Box::pin(async move {
            let held = self.state().sessions.entry(id.to_owned()).or_insert_with(|| record.clone()).clone();
            if held == *record {
                self.send(Change::SessionCreated { session: id.to_owned(), record: record.clone() });
            }
            Ok(held)
        })
    }

    fn end_session<'a>(
        &'a self,
        id: &'a str,
        incarnation: Option<u64>,
        now_unix_ms: u64,
    ) -> DirectoryFuture<'a, Option<SessionRecord>> {
        Box::pin(async move {
            let removed = {
                let mut state = self.state();
                let matches = state.sessions.get(id).is_some_and(|r| incarnation.is_none_or(|i| r.incarnation == i));
                let removed = if matches { state.sessions.remove(id) } else { None };
                if let Some(record) = &removed {
                    state.metadata.retain(|(session, _, _), _| session != id);
                    let forget_before = now_unix_ms.saturating_sub(ENDED_SESSIONS_KEPT_MS);
                    state.ended.retain(|_, ended| *ended >= forget_before);
                    state.ended.insert((id.to_owned(), record.created_unix_ms), now_unix_ms);
                }
                removed
            };
            if let Some(record) = &removed {
                self.send(Change::SessionDeleted { session: id.to_owned(), incarnation: record.incarnation });
            }
            Ok(removed)
        })
    }

    fn share_metadata<'a>(
        &'a self,
        session: &'a str,
        member: &'a Member,
        entries: &'a [Entry],
        node: &'a str,
    ) -> DirectoryFuture<'a, ()> {
        Box::pin(async move {
            {
                let mut state = self.state();
                for entry in entries {
                    let key = (session.to_owned(), member.clone(), entry.key.clone());
                    let kept = state.metadata.entry(key).or_insert_with(|| entry.clone());
                    if merge_order(entry, kept) == std::cmp::Ordering::Greater {
                        *kept = entry.clone();
                    }
                }
            }
            self.send(Change::MetadataShared {
                session: session.to_owned(),
                member: member.clone(),
                entries: entries.to_vec(),
                node: node.to_owned(),
            });
            Ok(())
        })
    }

    fn metadata<'a>(&'a self, session: &'a str) -> DirectoryFuture<'a, Vec<(Member, Entry)>> {
        Box::pin(async move {
            let state = self.state();
            let kept = state.metadata.iter().filter(|((s, _, _), _)| s == session);
            Ok(kept.map(|((_, member, _), entry)| (member.clone(), entry.clone())).collect())
        })
    }

    fn ended_sessions(&self) -> DirectoryFuture<'_, BTreeSet<(String, u64)>> {
        Box::pin(async move { Ok(self.state().ended.keys().cloned().collect()) })
    }

    fn session<'a>(&'a self, id: &'a str) -> DirectoryFuture<'a, Option<SessionRecord>> {
        Box::pin(async move { Ok(self.state().sessions.get(id).cloned()) })
    }

    fn sessions(&self) -> DirectoryFuture<'_, Vec<(String, SessionRecord)>> {
        Box::pin(async move { Ok(self.state().sessions.iter().map(|(k, v)| (k.clone(), v.clone())).collect()) })
    }

    fn watch(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::directory::Load;

    fn record(id: &str) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            relay_address: "127.0.0.1:40000".parse().unwrap(),
            api_address: "127.0.0.1:50051".parse().unwrap(),
            api_tls: false,
            started_unix_ms: 1,
            instance: 7,
            load: Load::default(),
        }
    }

    fn key(stream: &str) -> StreamKey {
        StreamKey { session_id: "s".into(), stream_id: stream.into() }
    }

    #[tokio::test(start_paused = true)]
    async fn leases_placements_and_their_changes() {
        let directory = Embedded::new(16);
        let mut changes = directory.watch();
        assert_eq!(directory.renew(&record("a"), 1000).await.unwrap(), None, "joined");
        assert_eq!(directory.renew(&record("a"), 1000).await.unwrap(), Some(record("a")), "renewed");
        directory.place(&key("v"), "a").await.unwrap();
        directory.place(&key("v"), "a").await.unwrap();
        assert_eq!(directory.locate(&key("v")).await.unwrap().as_deref(), Some("a"));
        directory.remove(&key("v"), "b").await.unwrap();
        assert_eq!(directory.streams().await.unwrap().len(), 1, "only the node it is on removes it");
        directory.remove(&key("v"), "a").await.unwrap();
        assert!(directory.streams().await.unwrap().is_empty());
        let nodes = directory.nodes().await.unwrap();
        assert_eq!((nodes.len(), nodes[0].remaining_ms), (1, 1000));
        // The lease runs out: the node and what it placed go, and watchers hear it.
        directory.place(&key("w"), "a").await.unwrap();
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(directory.nodes().await.unwrap().is_empty());
        assert!(directory.streams().await.unwrap().is_empty());
        let mut seen = Vec::new();
        while let Ok(change) = changes.try_recv() {
            seen.push(change);
        }
        assert_eq!(
            seen,
            [
                Change::NodeUp { node: "a".into() },
                Change::StreamPlaced { stream: "s/v".into(), node: "a".into() },
                Change::StreamRemoved { stream: "s/v".into(), node: "a".into() },
                Change::StreamPlaced { stream: "s/w".into(), node: "a".into() },
                Change::NodeDown { node: "a".into(), expired: true },
            ]
        );
        assert_eq!(directory.renew(&record("a"), 1000).await.unwrap(), None, "back: a new lease");
        directory.leave("a").await.unwrap();
        assert!(directory.nodes().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_first_claim_of_a_session_holds_and_only_its_creation_is_ended() {
        let directory = Embedded::new(16);
        let mut changes = directory.watch();
        let first = SessionRecord { node: "a".into(), created_unix_ms: 1, incarnation: 11 };
        let second = SessionRecord { node: "b".into(), created_unix_ms: 2, incarnation: 22 };
        assert_eq!(directory.claim_session("s", &first).await.unwrap(), first);
        assert_eq!(directory.claim_session("s", &second).await.unwrap(), first, "the first claim holds");
        assert_eq!(directory.session("s").await.unwrap(), Some(first.clone()));
        assert_eq!(directory.end_session("s", Some(22), 5).await.unwrap(), None, "another creation is not ended");
        assert_eq!(directory.sessions().await.unwrap(), [("s".to_owned(), first.clone())]);
        assert!(directory.ended_sessions().await.unwrap().is_empty());
        assert_eq!(directory.end_session("s", None, 5).await.unwrap(), Some(first.clone()));
        assert_eq!(directory.end_session("s", None, 6).await.unwrap(), None);
        assert_eq!(directory.session("s").await.unwrap(), None);
        assert_eq!(directory.ended_sessions().await.unwrap(), BTreeSet::from([("s".to_owned(), 1)]));
        // Remembered for ENDED_SESSIONS_KEPT_MS: forgotten at the next end after that.
        let t = SessionRecord { node: "a".into(), created_unix_ms: 3, incarnation: 33 };
        directory.claim_session("t", &t).await.unwrap();
        directory.end_session("t", None, 5 + ENDED_SESSIONS_KEPT_MS + 1).await.unwrap();
        assert_eq!(directory.ended_sessions().await.unwrap(), BTreeSet::from([("t".to_owned(), 3)]));
        let seen: Vec<Change> = std::iter::from_fn(|| changes.try_recv().ok()).collect();
        assert_eq!(
            seen,
            [
                Change::SessionCreated { session: "s".into(), record: first },
                Change::SessionDeleted { session: "s".into(), incarnation: 11 },
                Change::SessionCreated { session: "t".into(), record: t.clone() },
                Change::SessionDeleted { session: "t".into(), incarnation: 33 },
            ]
        );
    }

    #[tokio::test]
    async fn shared_metadata_keeps_the_merge_orders_winner_per_key_and_goes_with_its_session() {
        use crate::metadata::Version;
        let directory = Embedded::new(16);
        let mut changes = directory.watch();
        let record = SessionRecord { node: "a".into(), created_unix_ms: 1, incarnation: 11 };
        directory.claim_session("s", &record).await.unwrap();
        let entry = |value: &str, wall_us, set_once| Entry {
            key: "app.k".into(),
            version: Version { wall_us, counter: 0, node_id: 1 },
            value: Some(value.into()),
            set_once,
        };
        let session = Member::Session;
        directory.share_metadata("s", &session, &[entry("new", 20, false)], "a").await.unwrap();
        directory.share_metadata("s", &session, &[entry("late", 10, false)], "b").await.unwrap();
        assert_eq!(directory.metadata("s").await.unwrap(), [(Member::Session, entry("new", 20, false))], "later wins");
        directory.share_metadata("s", &session, &[entry("fixed", 30, true)], "b").await.unwrap();
        directory.share_metadata("s", &session, &[entry("second", 40, true)], "a").await.unwrap();
        assert_eq!(
            directory.metadata("s").await.unwrap(),
            [(Member::Session, entry("fixed", 30, true))],
            "first set-once"
        );
        let told = std::iter::from_fn(|| changes.try_recv().ok());
        let shared = told.filter(|c| matches!(c, Change::MetadataShared { .. })).count();
        assert_eq!(shared, 4, "every share is told, winner or not (each node merges by the same order)");
        directory.end_session("s", None, 5).await.unwrap();
        assert!(directory.metadata("s").await.unwrap().is_empty(), "gone with the session");
    }
}
