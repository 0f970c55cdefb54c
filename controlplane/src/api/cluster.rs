//! The cluster's part of the API: `GetNodeInfo`'s nodes, `LocateStream`, and the list of this node's streams the
//! cluster writes into its directory.
//!
//! Owns the conversion of what the directory says into the wire's messages. Must never wait for the directory longer
//! than [`crate::cluster::Cluster::read`] allows, nor hold the registry while it does.

use ringfwd_proto::v1;
use tonic::Status;

use super::{status, Api};
use crate::cluster::StreamKey;

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

    /// Every stream this node holds, by session and id.
    pub async fn stream_keys(&self) -> Vec<StreamKey> {
        let registry = self.registry.lock().await;
        let mut keys = Vec::new();
        for session in registry.list_sessions() {
            for stream in registry.list_streams(&session.session_id).unwrap_or_default() {
                keys.push(StreamKey { session_id: stream.session_id, stream_id: stream.stream_id });
            }
        }
        keys
    }
}
