//! Sessions span the cluster's nodes: a session created on any node is held by every node, and a session deleted on
//! any node is deleted on every node. Endpoints, streams and subscriptions stay on the node whose API created them.
//!
//! Owns this node's side of it, on [`Cluster`]: the claim a `CreateSession` makes in the directory before it creates
//! the session here (the first node to claim an id creates the session; the others' creates take it), the end a
//! `DeleteSession` writes before it deletes here, the copy this node makes of a session another node created (and
//! deletes when that creation is deleted) as the watcher hears it, and the sync after a join or a missed change:
//! what the directory holds and this node lacks is copied here; what this node holds and the directory lacks is
//! deleted here when the directory remembers it was deleted (this node was away then; for
//! [`super::directory::ENDED_SESSIONS_KEPT_MS`]), and written back otherwise (the directory came back empty, or this
//! node was cut off when it created the session). Every node's copy of a session has the creation time of its
//! record: with the id, it tells which creation a node holds across its restarts.
//! Which creation (incarnation) each session held here is, is kept per session so that a late deletion of an older
//! creation never deletes a newer one. Reaches the registry only through [`Api`]'s calls; must never hold the
//! registry or the table of incarnations while it talks to the directory.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::directory::{DirectoryError, SessionRecord};
use super::node::Cluster;
use crate::api::Api;

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This call wrote the session into the directory (a failed create here must end it again: [`Cluster::unclaim`]).
    New {
        /// The creation it wrote.
        incarnation: u64,
    },
    /// Another call had written it before: the session here is made with its creation time.
    Held {
        /// The creation held.
        incarnation: u64,
        /// Its creation time.
        created_unix_ms: u64,
    },
}

impl Claim {
    /// The creation the directory holds.
    pub fn incarnation(self) -> u64 {
        match self {
            Claim::New { incarnation } | Claim::Held { incarnation, .. } => incarnation,
        }
    }
}

impl Cluster {
    /// Writes session `id`, created at `created_unix_ms`, into the directory as created by this node, unless it
    /// holds it already; called by `CreateSession` before it creates the session here (with the creation time the
    /// claim answers, so every node's copy of a session has its creation time), which then calls
    /// [`Cluster::hold_session`] once it did.
    pub async fn claim_session(&self, id: &str, created_unix_ms: u64) -> Result<Claim, DirectoryError> {
        let record = SessionRecord { node: self.node_id().to_owned(), created_unix_ms, incarnation: rand::random() };
        let held = self.read(self.directory().claim_session(id, &record)).await?;
        Ok(if held == record {
            Claim::New { incarnation: record.incarnation }
        } else {
            Claim::Held { incarnation: held.incarnation, created_unix_ms: held.created_unix_ms }
        })
    }

    /// This node holds session `id` as creation `incarnation` (a deletion of another creation leaves it).
    pub fn hold_session(&self, id: &str, incarnation: u64) {
        self.held_sessions().insert(id.to_owned(), incarnation);
    }

    /// Ends the claim a failed create made (`Claim::New(incarnation)`), so that no node copies a session that was
    /// not created. A failure is logged: the other nodes then hold a session this node refused.
    pub async fn unclaim(&self, id: &str, incarnation: u64) {
        let end = self.directory().end_session(id, Some(incarnation), crate::clock::unix_ms());
        if let Err(e) = self.read(end).await {
            self.counters().errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(session_id = id, "cluster: ending the claim of a session that was not created failed: {e}");
        }
    }

    /// Removes session `id` from the directory, whichever node created it; called by `DeleteSession` before it
    /// deletes the session here. Answers whether the directory held it (every node then deletes its copy).
    pub async fn end_session(&self, id: &str) -> Result<bool, DirectoryError> {
        let ended = self.read(self.directory().end_session(id, None, crate::clock::unix_ms())).await?;
        Ok(ended.is_some())
    }

    /// Makes sure this node holds session `id` if the directory does: a call about to create something in a session
    /// this node has not heard of yet (created on another node a moment ago) copies it first. Answers nothing: a
    /// session neither holds stays unknown, and the call then says so.
    pub async fn fetch_session(&self, api: &Api, id: &str) {
        match self.read(self.directory().session(id)).await {
            Ok(Some(record)) => self.copy_session(api, id, &record).await,
            Ok(None) => {}
            Err(e) => tracing::debug!(session_id = id, "cluster: looking a session up failed: {e}"),
        }
    }

    /// Another node created session `id` (`record`): this node holds it from now on.
    pub(super) async fn heard_session_created(&self, api: &Api, id: &str, record: &SessionRecord) {
        if record.node == self.node_id() {
            return;
        }
        self.copy_session(api, id, record).await;
    }

    /// Session `id`'s creation `incarnation` was deleted on some node: this node's copy goes, unless it holds a newer
    /// creation.
    pub(super) async fn heard_session_deleted(&self, api: &Api, id: &str, incarnation: u64) {
        {
            let mut held = self.held_sessions();
            if held.get(id).is_some_and(|i| *i != incarnation) {
                return;
            }
            held.remove(id);
        }
        self.drop_copy(api, id).await;
    }

    /// Makes this node and the directory hold the same sessions: copies what the directory holds that this node
    /// lacks; of what this node holds that the directory lacks, deletes what the directory says was deleted (this
    /// node was away then) and writes back the rest.
    pub(super) async fn sync_sessions(&self, api: &Api) -> Result<(), DirectoryError> {
        let listed: BTreeMap<String, SessionRecord> = self.directory().sessions().await?.into_iter().collect();
        let ended = self.directory().ended_sessions().await?;
        let here: BTreeMap<String, u64> = api.sessions_here().await.into_iter().collect();
        for (id, created_unix_ms) in here.iter().filter(|(id, _)| !listed.contains_key(*id)) {
            if ended.contains(&(id.clone(), *created_unix_ms)) {
                tracing::info!(session_id = id, "cluster: a session deleted while this node was away is deleted here");
                self.held_sessions().remove(id);
                self.drop_copy(api, id).await;
            } else {
                let claim = self.claim_session(id, *created_unix_ms).await?;
                self.hold_session(id, claim.incarnation());
            }
        }
        for (id, record) in &listed {
            if here.contains_key(id) {
                self.hold_session(id, record.incarnation);
            } else {
                self.copy_session(api, id, record).await;
            }
        }
        Ok(())
    }

    /// Creates session `id` here as a copy of another node's (`record`: its creation time, and the creation held from
    /// then on); a copy this node cannot hold (e.g. at its `admission.max_sessions`) is counted and logged.
    async fn copy_session(&self, api: &Api, id: &str, record: &SessionRecord) {
        match api.copy_session(id, record.created_unix_ms).await {
            Ok(created) => {
                if created {
                    self.counters().sessions_copied.fetch_add(1, Ordering::Relaxed);
                }
                self.hold_session(id, record.incarnation);
                self.catch_up_metadata(api, id).await;
            }
            Err(status) => {
                self.counters().sessions_not_copied.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    session_id = id,
                    "cluster: this node cannot hold a session another node created: {status}"
                );
            }
        }
    }

    /// Deletes this node's copy of session `id` (deleted elsewhere); a failure is counted and logged.
    async fn drop_copy(&self, api: &Api, id: &str) {
        if let Err(status) = api.drop_session(id).await {
            self.counters().errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(session_id = id, "cluster: deleting a session deleted on another node failed: {status}");
        }
    }
}
