//! The cluster's part of the API: `GetNodeInfo`'s nodes, `LocateStream`, the list of this node's streams the
//! cluster writes into its directory, and sessions across nodes: `CreateSession` and `DeleteSession` go through the
//! directory first ([`crate::cluster::sessions`]), and the cluster creates and deletes this node's copies of other
//! nodes' sessions through the same registry calls.
//!
//! Owns the conversion of what the directory says into the wire's messages. Must never wait for the directory longer
//! than [`crate::cluster::Cluster::read`] allows, nor hold the registry while it does.

use ringfwd_proto::v1;
use tonic::Status;

use super::{status, Api};
use crate::cluster::{Claim, DirectoryError, StreamKey};
use crate::metadata::{Member, ObjectRef};
use crate::registry::Outcome;

/// A directory that cannot be reached, as the API answers it.
fn directory_unavailable(error: &DirectoryError) -> Status {
    Status::unavailable(format!("the cluster directory: {error}"))
}

impl Api {
    /// The cluster's part of `GetNodeInfo`: this node's id, the directory's backend, its live nodes (or why they
    /// could not be read).
    pub(crate) async fn cluster_info(&self) -> v1::NodeInfo {
        let Some(cluster) = self.cluster.get() else {
            return v1::NodeInfo::default();
        };
        let read = cluster.read(async { Ok((cluster.nodes().await?, cluster.streams().await?)) }).await;
        let (cluster_nodes, directory_error) = match read {
            Ok((nodes, streams)) => {
                let placed = |node: &str| streams.iter().filter(|(_, on)| on == node).count() as u64;
                let nodes = nodes.into_iter().map(|lease| {
                    let record = lease.record;
                    v1::ClusterNode {
                        placed_streams: placed(&record.id),
                        this_node: record.id == cluster.node_id(),
                        relay_address: record.relay_address.to_string(),
                        api_address: record.api_address.to_string(),
                        lease_remaining_ms: lease.remaining_ms,
                        started_unix_ms: record.started_unix_ms,
                        sessions: record.load.sessions,
                        streams: record.load.streams,
                        subscriptions: record.load.subscriptions,
                        workers: record.load.workers,
                        node_id: record.id,
                    }
                });
                (nodes.collect(), String::new())
            }
            Err(e) => (Vec::new(), e.to_string()),
        };
        v1::NodeInfo {
            node_id: cluster.node_id().to_owned(),
            directory: cluster.backend().to_owned(),
            cluster_nodes,
            directory_error,
            ..Default::default()
        }
    }

    /// `LocateStream`: the node the directory says publishes the stream, with the addresses its lease gives.
    pub(crate) async fn locate_stream_rpc(&self, r: v1::LocateStreamRequest) -> Result<v1::StreamLocation, Status> {
        for (field, value) in [("session_id", &r.session_id), ("stream_id", &r.stream_id)] {
            crate::registry::validate::id(field, value).map_err(status::registry)?;
        }
        let cluster =
            self.cluster.get().ok_or_else(|| Status::unavailable("this node has not joined its cluster yet"))?;
        let key = StreamKey { session_id: r.session_id, stream_id: r.stream_id };
        let located = cluster.read(async { Ok((cluster.locate(&key).await?, cluster.nodes().await?)) }).await;
        let (node, nodes) = located.map_err(|e| Status::unavailable(e.to_string()))?;
        let not_found = || Status::not_found(format!("no node publishes stream {}/{}", key.session_id, key.stream_id));
        let node = node.ok_or_else(not_found)?;
        let lease = nodes.into_iter().find(|lease| lease.record.id == node).ok_or_else(not_found)?;
        Ok(v1::StreamLocation {
            this_node: node == cluster.node_id(),
            api_address: lease.record.api_address.to_string(),
            relay_address: lease.record.relay_address.to_string(),
            node_id: node,
            session_id: key.session_id,
            stream_id: key.stream_id,
        })
    }

    /// `CreateSession`: in a cluster, the session is claimed in the directory first (a directory that cannot be
    /// reached answers UNAVAILABLE and changes nothing); a claim whose create then fails here is ended again.
    pub(crate) async fn create_session_rpc(&self, r: v1::CreateSessionRequest) -> Result<Outcome, Status> {
        let object = ObjectRef { session_id: r.session_id.clone(), member: Member::Session };
        let now = crate::clock::unix_ms();
        // The id is checked before it reaches the directory, by the registry's own check.
        super::relay::refuse_relay_ids(&[("session_id", &r.session_id)])?;
        let Some(cluster) = self.cluster.get() else {
            return self.apply_create(object, r.metadata, |reg| reg.plan_create_session(&r.session_id, now)).await;
        };
        let claim = cluster.claim_session(&r.session_id, now).await.map_err(|e| directory_unavailable(&e))?;
        let created_unix_ms = match claim {
            Claim::New { .. } => now,
            Claim::Held { created_unix_ms, .. } => created_unix_ms,
        };
        let created =
            self.apply_create(object, r.metadata, |reg| reg.plan_create_session(&r.session_id, created_unix_ms)).await;
        match (&created, claim) {
            (Ok(_), claim) => cluster.hold_session(&r.session_id, claim.incarnation()),
            (Err(_), Claim::New { incarnation }) => cluster.unclaim(&r.session_id, incarnation).await,
            (Err(_), Claim::Held { .. }) => {}
        }
        created
    }

    /// `DeleteSession`: in a cluster, the session leaves the directory first (every node deletes its copy; a
    /// directory that cannot be reached answers UNAVAILABLE and changes nothing); a session the directory held is
    /// deleted, even when this node's copy went first (its watcher heard the deletion) or never was.
    pub(crate) async fn delete_session_rpc(&self, session_id: &str) -> Result<Option<Outcome>, Status> {
        let ended = match self.cluster.get() {
            Some(cluster) => cluster.end_session(session_id).await.map_err(|e| directory_unavailable(&e))?,
            None => false,
        };
        match self.apply_delete(session_id, |reg| reg.plan_delete_session(session_id)).await {
            Err(status) if ended && status.code() == tonic::Code::NotFound => Ok(None),
            deleted => deleted.map(Some),
        }
    }

    /// In a cluster, before something is created in session `session_id`: a session this node does not hold yet but
    /// the directory does (created on another node a moment ago, not heard of yet) is copied here first.
    pub(crate) async fn fetch_session(&self, session_id: &str) {
        let Some(cluster) = self.cluster.get() else { return };
        if self.registry.lock().await.get_session(session_id).is_ok() {
            return;
        }
        cluster.fetch_session(self, session_id).await;
    }

    /// Creates session `session_id` here as the copy of another node's, created at `created_unix_ms` (its metadata
    /// stays there); answers whether this call created it (`false`: it was here already).
    pub(crate) async fn copy_session(&self, session_id: &str, created_unix_ms: u64) -> Result<bool, Status> {
        let outcome = self.apply(|reg| reg.plan_create_session(session_id, created_unix_ms)).await?;
        Ok(matches!(outcome, Outcome::Created(_)))
    }

    /// Deletes this node's copy of session `session_id`, with all it holds in it; one already gone is no error.
    pub(crate) async fn drop_session(&self, session_id: &str) -> Result<(), Status> {
        self.delete_quietly(session_id, |reg| reg.plan_delete_session(session_id)).await
    }

    /// Runs the delete `plan` of something in session `session_id` as `Delete*` does; what is already gone (NOT_FOUND)
    /// is no error. For what the cluster deletes itself: copies, relays.
    pub(crate) async fn delete_quietly(
        &self,
        session_id: &str,
        plan: impl FnOnce(&crate::registry::Registry) -> Result<crate::registry::Plan, crate::registry::RegistryError>,
    ) -> Result<(), Status> {
        match self.apply_delete(session_id, plan).await {
            Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
            deleted => deleted.map(drop),
        }
    }

    /// The sessions this node holds: each one's id and creation time.
    pub async fn sessions_here(&self) -> Vec<(String, u64)> {
        let sessions = self.registry.lock().await.list_sessions();
        sessions.into_iter().map(|s| (s.session_id, s.created_unix_ms)).collect()
    }

    /// Every stream this node publishes (not those relayed here), by session and id.
    pub async fn stream_keys(&self) -> Vec<StreamKey> {
        let registry = self.registry.lock().await;
        let mut keys = Vec::new();
        for session in registry.list_sessions() {
            for stream in registry.list_streams(&session.session_id).unwrap_or_default() {
                // A stream relayed here is its origin's.
                if crate::cluster::relay::node_of_endpoint(&stream.endpoint_id).is_none() {
                    keys.push(StreamKey { session_id: stream.session_id, stream_id: stream.stream_id });
                }
            }
        }
        keys
    }
}
