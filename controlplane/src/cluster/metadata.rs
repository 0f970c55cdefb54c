//! Metadata across the cluster: what a controller writes on one node is read and watched on every node that holds
//! the object (a session on every node; a stream on its origin and on each node it is relayed to).
//!
//! Each write this node applies (`SetMetadata`, `DeleteMetadata`, a create's metadata) is shared through the
//! directory ([`super::Directory::share_metadata`]: kept per key by the merge order, and told to every node as a
//! [`super::Change::MetadataShared`]); each write another node shared is merged into this node's store (the
//! last-writer-wins merge makes the nodes converge whatever the order of arrival) and told to this node's watchers
//! as a change of its own. A session copied here, or a stream relayed here, first takes what the directory kept for
//! the session. Sharing runs in the background, re-tried with backoff ([`SHARE_ATTEMPTS`]), at most
//! [`MAX_SHARES`] at once: past that, or after the last attempt, the write is counted as not shared
//! (`ringfwd_cluster_metadata_total{result="dropped"}`) and the other nodes miss it until the next write of the key.
//!
//! Must never hold the registry or the metadata store across a call to the directory (the merge takes them through
//! [`Api::merge_shared_metadata`]).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::node::Cluster;
use crate::api::Api;
use crate::metadata::{Entry, Member, MetadataEvent, ObjectRef};

/// Writes being shared at once; one more is dropped and counted.
pub const MAX_SHARES: usize = 256;
/// Times a share is tried (backoff from 100 ms, doubling).
pub const SHARE_ATTEMPTS: u32 = 5;

impl Cluster {
    /// Shares the write `event` says this node applied, in the background (see the module docs). Nothing with the
    /// embedded directory (one node) or for a deletion of the object (each node deletes its own).
    pub fn share_metadata(self: &Arc<Self>, event: &MetadataEvent) {
        let MetadataEvent::Changed { object, change } = event else { return };
        if self.backend() == "embedded" {
            return;
        }
        let Ok(permit) = Arc::clone(self.metadata_shares()).try_acquire_owned() else {
            self.counters().metadata_not_shared.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%object, "cluster: too many metadata writes being shared; this one is not");
            return;
        };
        let (cluster, object, entries) = (Arc::clone(self), object.clone(), change.entries.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut backoff = Duration::from_millis(100);
            for attempt in 1..=SHARE_ATTEMPTS {
                let share =
                    cluster.directory().share_metadata(&object.session_id, &object.member, &entries, cluster.node_id());
                match cluster.read(share).await {
                    Ok(()) => {
                        cluster.counters().metadata_shared.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(e) if attempt == SHARE_ATTEMPTS => {
                        cluster.counters().metadata_not_shared.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%object, "cluster: a metadata write could not be shared: {e}");
                    }
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
        });
    }

    /// Merges what node `node` shared for `member` of `session` (nothing when `node` is this one).
    pub(super) async fn heard_metadata(
        &self,
        api: &Api,
        session: String,
        member: Member,
        entries: Vec<Entry>,
        node: &str,
    ) {
        if node == self.node_id() {
            return;
        }
        let merged = api.merge_shared_metadata(ObjectRef { session_id: session, member }, entries).await;
        if merged {
            self.counters().metadata_merged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Merges what the directory kept for session `session_id`'s members into those this node holds: for a session
    /// copied here, or a stream relayed here. A directory that cannot be read is logged (the next write of each key
    /// still arrives).
    pub async fn catch_up_metadata(&self, api: &Api, session_id: &str) {
        let kept = match self.read(self.directory().metadata(session_id)).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(session_id, "cluster: reading the session's shared metadata failed: {e}");
                return;
            }
        };
        let mut by_member: BTreeMap<Member, Vec<Entry>> = BTreeMap::new();
        for (member, entry) in kept {
            by_member.entry(member).or_default().push(entry);
        }
        for (member, entries) in by_member {
            let object = ObjectRef { session_id: session_id.to_owned(), member };
            if api.merge_shared_metadata(object, entries).await {
                self.counters().metadata_merged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
