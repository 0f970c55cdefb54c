//! The metadata RPCs: SetMetadata, DeleteMetadata, GetMetadata, WatchMetadata, the metadata given to a create,
//! and dropping an object's metadata when the registry deletes it; in a cluster, each write handed to the cluster to
//! share, and what other nodes shared merged in (see [`crate::cluster::metadata`]).
//!
//! Owns the order of locks (the registry first, to check that the object exists and to keep it existing while
//! its metadata changes; then the hub, never across an `.await`) and each watcher's stream: a task that sends
//! the watch's first events, then forwards the object's events from the hub, and ends the stream after a
//! deletion (OK), when the client goes away, or — when the watcher fell more than
//! `metadata.watch_buffer_events` behind — with RESOURCE_EXHAUSTED naming the version to resume from.
//!
//! A stream's metadata is also the data plane's: its worker holds a snapshot of the stream's, its publishing
//! endpoint's and its session's (for each, `key=value` lines of the live entries, sorted by key, the lines that fit
//! in `MAX_METADATA_BYTES`) that plugins read; and for each subscription one of its receiving endpoint's, that its
//! egress chain's plugins read. Each is given again, under the registry lock, after each write of an object it holds
//! (a session's write reaches every stream of the session; an endpoint's every stream it publishes and every
//! subscription it receives), after a create that carried some, after a restore, and after any plan that (re)adds
//! the stream or the subscription on a worker ([`Api::push_added_metadata`]). A worker that does not take it is
//! logged: the write stands (the API refuses nothing for the data plane's sake).

use std::sync::{Arc, MutexGuard, PoisonError};

use ringfwd_dataplane::control::{Command, Metadata, StreamId, SubscriptionId};
use ringfwd_proto::v1;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::metadata_hub::MetadataHub;
use super::metadata_wire as wire;
use super::{status, Api};
use crate::metadata::{Member, MetadataEvent, ObjectRef, Origin, Version, Write};
use crate::registry::{Outcome, Plan, Registry, RegistryError, StreamView, SubscriptionView};
use crate::state::KeptMetadata;

/// The stream of a WatchMetadata call.
pub type WatchStream = ReceiverStream<Result<v1::MetadataEvent, Status>>;

/// Events handed from a watcher's task to its gRPC stream at a time (the hub's channel holds the backlog).
const STREAM_HANDOFF_EVENTS: usize = 8;

/// `Ok` when `object` exists in `registry`, else the registry's `NotFound` (or `InvalidArgument` for a bad id).
fn exists(registry: &Registry, object: &ObjectRef) -> Result<(), RegistryError> {
    match &object.member {
        Member::Session => registry.get_session(&object.session_id).map(drop),
        Member::Endpoint(id) => registry.get_endpoint(&object.session_id, id).map(drop),
        Member::Stream(id) => registry.get_stream(&object.session_id, id).map(drop),
    }
}

impl Api {
    fn hub(&self) -> MutexGuard<'_, MetadataHub> {
        self.metadata.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks the metadata of a create before anything is created.
    pub(super) fn check_initial_metadata(&self, writes: &[Write]) -> Result<(), Status> {
        self.hub().store.check_initial(writes).map_err(status::metadata)
    }

    /// Writes a create's metadata to the object it just created (called under the registry lock, right after
    /// the commit). Checked beforehand, so a refusal here is a bug, logged.
    pub(super) fn install_metadata(&self, object: &ObjectRef, writes: Vec<Write>) {
        if writes.is_empty() {
            return;
        }
        let mut hub = self.hub();
        match hub.store.write(object, writes, Origin::Controller, crate::clock::unix_us()) {
            Ok(outcome) => outcome.event.into_iter().for_each(|e| {
                self.publish_metadata(&e);
                self.share_metadata(&e);
                hub.publish(e);
            }),
            Err(e) => tracing::warn!(%object, error = %e, "could not write the checked metadata of a new object"),
        }
    }

    /// The metadata of `session_id`'s objects that `registry` holds, as the state store keeps it.
    pub(super) fn export_metadata(&self, registry: &Registry, session_id: &str) -> Vec<KeptMetadata> {
        let hub = self.hub();
        let objects = hub.store.export(session_id).into_iter();
        objects
            .filter(|(object, _, _)| exists(registry, object).is_ok())
            .map(|(object, entries, version)| KeptMetadata { member: object.member, version, entries })
            .collect()
    }

    /// Puts back the kept `metadata` of `session_id`'s objects (restored just before) without telling anyone: it
    /// is what the objects had. Metadata of an object the registry does not hold is left out. The streams' workers
    /// are given theirs.
    pub(crate) async fn restore_metadata(&self, session_id: &str, metadata: &[KeptMetadata]) {
        let registry = self.registry.lock().await;
        let mut streams = Vec::new();
        {
            let mut hub = self.hub();
            for kept in metadata {
                let object = ObjectRef { session_id: session_id.to_owned(), member: kept.member.clone() };
                if exists(&registry, &object).is_ok() {
                    hub.store.restore(object.clone(), kept.entries.clone(), kept.version);
                    streams.push(object);
                }
            }
        }
        for object in &streams {
            self.push_metadata(&registry, object).await;
        }
    }

    /// The snapshot a worker holds for `stream` (of `session_id`, published by `publisher`): the live entries of
    /// the stream, its publisher and its session, each sorted by key, the lines that fit.
    fn snapshot(&self, session_id: &str, stream: &str, publisher: &str) -> Metadata {
        let hub = self.hub();
        let entries = |member: Member| hub.store.get(&ObjectRef { session_id: session_id.to_owned(), member }, &[]).0;
        let (stream, publisher, session) = (
            entries(Member::Stream(stream.to_owned())),
            entries(Member::Endpoint(publisher.to_owned())),
            entries(Member::Session),
        );
        Metadata::from_objects(live(&stream), live(&publisher), live(&session))
    }

    /// The snapshot a worker holds for a subscription that `endpoint` (of `session_id`) receives: its live entries,
    /// sorted by key, the lines that fit.
    fn subscriber_snapshot(&self, session_id: &str, endpoint: &str) -> Metadata {
        let hub = self.hub();
        let object = ObjectRef { session_id: session_id.to_owned(), member: Member::Endpoint(endpoint.to_owned()) };
        Metadata::of_subscriber(live(&hub.store.get(&object, &[]).0))
    }

    /// Gives the worker of each stream and subscription whose snapshot holds `object`'s metadata (the stream itself;
    /// every stream an endpoint publishes and every subscription it receives; every stream of a session) its snapshot
    /// as the store has it now. Called under the registry lock (its guard is `registry`), so the last snapshot given
    /// is the last written; a refusal is logged.
    pub(super) async fn push_metadata(&self, registry: &Registry, object: &ObjectRef) {
        if let Member::Endpoint(endpoint_id) = &object.member {
            let subscriptions = registry.list_subscriptions(&object.session_id).unwrap_or_default();
            for subscription in subscriptions.iter().filter(|s| s.endpoint_id == *endpoint_id) {
                let metadata = self.subscriber_snapshot(&object.session_id, endpoint_id);
                self.give_subscription(subscription, metadata).await;
            }
        }
        let streams = match &object.member {
            Member::Stream(stream_id) => registry.get_stream(&object.session_id, stream_id).into_iter().collect(),
            Member::Endpoint(endpoint_id) => registry
                .list_streams(&object.session_id)
                .unwrap_or_default()
                .into_iter()
                .filter(|stream| stream.endpoint_id == *endpoint_id)
                .collect(),
            Member::Session => registry.list_streams(&object.session_id).unwrap_or_default(),
        };
        for stream in streams {
            let metadata = self.snapshot(&object.session_id, &stream.stream_id, &stream.endpoint_id);
            self.give(&stream, metadata).await;
        }
    }

    /// Gives `stream`'s worker `metadata` (its snapshot); a refusal is logged.
    async fn give(&self, stream: &StreamView, metadata: Metadata) {
        let command = Command::SetStreamMetadata { id: stream.data_plane_id, metadata };
        if let Err(error) = self.client.execute(stream.worker, command).await {
            let (session, stream) = (&stream.session_id, &stream.stream_id);
            tracing::warn!(%session, %stream, %error, "the stream's worker could not take its metadata; plugins read the previous");
        }
    }

    /// Gives `subscription`'s worker `metadata` (its subscriber's snapshot); a refusal is logged.
    async fn give_subscription(&self, subscription: &SubscriptionView, metadata: Metadata) {
        let command = Command::SetSubscriptionMetadata { id: subscription.data_plane_id, metadata };
        if let Err(error) = self.client.execute(subscription.worker, command).await {
            let (session, subscription) = (&subscription.session_id, &subscription.subscription_id);
            tracing::warn!(%session, %subscription, %error, "the subscription's worker could not take its subscriber's metadata; plugins read the previous");
        }
    }

    /// Gives the streams and subscriptions `added` (just added on a worker by a committed plan, so holding none there)
    /// the metadata they have, if any.
    pub(super) async fn push_added_metadata(
        &self,
        registry: &Registry,
        (streams, subscriptions): (&[StreamId], &[SubscriptionId]),
    ) {
        if streams.is_empty() && subscriptions.is_empty() {
            return;
        }
        let (stream_names, subscription_names) =
            registry.names_of(&streams.iter().copied().collect(), &subscriptions.iter().copied().collect());
        for (session_id, stream_id, _) in stream_names.into_values() {
            let Ok(stream) = registry.get_stream(&session_id, &stream_id) else { continue };
            let metadata = self.snapshot(&session_id, &stream_id, &stream.endpoint_id);
            if !metadata.is_empty() {
                self.give(&stream, metadata).await;
            }
        }
        for (session_id, subscription_id, _, endpoint_id) in subscription_names.into_values() {
            let Ok(subscription) = registry.get_subscription(&session_id, &subscription_id) else { continue };
            let metadata = self.subscriber_snapshot(&session_id, &endpoint_id);
            if !metadata.is_empty() {
                self.give_subscription(&subscription, metadata).await;
            }
        }
    }

    /// Drops the metadata of every object of `session_id` that the registry no longer has, telling their
    /// watchers (called under the registry lock, right after a delete's commit).
    pub(super) fn purge_metadata(&self, registry: &Registry, session_id: &str) {
        let mut hub = self.hub();
        for event in hub.store.remove_gone(session_id, |o| exists(registry, o).is_ok()) {
            hub.publish(event);
        }
    }

    /// Runs a create's `plan` carrying `metadata` for the `object` it creates: the metadata is checked first (a
    /// refusal creates nothing) and written right after the commit, only when the object was created: an
    /// idempotent repeat (the object exists) leaves the object's metadata as it is.
    pub(super) async fn apply_create(
        &self,
        object: ObjectRef,
        metadata: Vec<v1::MetadataWrite>,
        plan: impl FnOnce(&Registry) -> Result<Plan, RegistryError>,
    ) -> Result<Outcome, Status> {
        let writes = wire::writes(metadata);
        self.check_initial_metadata(&writes)?;
        let carried = !writes.is_empty();
        let outcome = self
            .apply_then(plan, |registry, outcome| {
                if matches!(outcome, Outcome::Created(_)) && !writes.is_empty() {
                    self.install_metadata(&object, writes);
                    return self.keep(registry, &object.session_id);
                }
                Ok(())
            })
            .await?;
        if carried && matches!(outcome, Outcome::Created(_)) && matches!(object.member, Member::Stream(_)) {
            let registry = self.registry.lock().await;
            self.push_metadata(&registry, &object).await;
        }
        Ok(outcome)
    }

    /// Runs a delete's `plan` in `session_id`, then drops the metadata of what it removed.
    pub(super) async fn apply_delete(
        &self,
        session_id: &str,
        plan: impl FnOnce(&Registry) -> Result<Plan, RegistryError>,
    ) -> Result<Outcome, Status> {
        self.apply_then(plan, |registry, _| {
            self.purge_metadata(registry, session_id);
            Ok(())
        })
        .await
    }

    async fn write_metadata(&self, object: ObjectRef, writes: Vec<Write>) -> Result<v1::MetadataWriteResponse, Status> {
        let registry = self.registry.lock().await;
        exists(&registry, &object).map_err(status::registry)?;
        let (changed, version) = {
            let mut hub = self.hub();
            let outcome = hub
                .store
                .write(&object, writes, Origin::Controller, crate::clock::unix_us())
                .map_err(status::metadata)?;
            let changed = outcome.event.is_some();
            if let Some(event) = outcome.event {
                self.publish_metadata(&event);
                self.share_metadata(&event);
                hub.publish(event);
            }
            (changed, outcome.version)
        };
        if changed {
            self.push_metadata(&registry, &object).await;
            self.keep(&registry, &object.session_id)?;
        }
        Ok(v1::MetadataWriteResponse { version: Some(wire::version_to_wire(version)) })
    }

    /// Hands a write this node applied to the cluster, which shares it with the other nodes (see
    /// [`crate::cluster::metadata`]); nothing before the node joined one.
    fn share_metadata(&self, event: &MetadataEvent) {
        if let Some(cluster) = self.cluster.get() {
            cluster.share_metadata(event);
        }
    }

    /// Merges `entries` another node wrote for `object` when this node holds it: its watchers are told, its workers
    /// given their snapshots, the state kept, as after a write here. Answers whether the object's metadata changed.
    pub(crate) async fn merge_shared_metadata(&self, object: ObjectRef, entries: Vec<crate::metadata::Entry>) -> bool {
        let registry = self.registry.lock().await;
        if exists(&registry, &object).is_err() {
            return false;
        }
        let changed = {
            let mut hub = self.hub();
            match hub.store.merge_remote(&object, entries, crate::clock::unix_us()) {
                Some(event) => {
                    self.publish_metadata(&event);
                    hub.publish(event);
                    true
                }
                None => false,
            }
        };
        if changed {
            self.push_metadata(&registry, &object).await;
            if let Err(status) = self.keep(&registry, &object.session_id) {
                tracing::warn!(%object, "keeping metadata another node wrote failed: {status}");
            }
        }
        changed
    }

    /// SetMetadata.
    pub(super) async fn set_metadata_rpc(
        &self,
        request: Request<v1::SetMetadataRequest>,
    ) -> Result<Response<v1::MetadataWriteResponse>, Status> {
        let r = request.into_inner();
        let object = wire::target(r.target)?;
        Ok(Response::new(self.write_metadata(object, wire::writes(r.writes)).await?))
    }

    /// DeleteMetadata.
    pub(super) async fn delete_metadata_rpc(
        &self,
        request: Request<v1::DeleteMetadataRequest>,
    ) -> Result<Response<v1::MetadataWriteResponse>, Status> {
        let r = request.into_inner();
        let object = wire::target(r.target)?;
        Ok(Response::new(self.write_metadata(object, wire::deletions(r.deletions)).await?))
    }

    /// GetMetadata.
    pub(super) async fn get_metadata_rpc(
        &self,
        request: Request<v1::GetMetadataRequest>,
    ) -> Result<Response<v1::GetMetadataResponse>, Status> {
        let r = request.into_inner();
        let object = wire::target(r.target)?;
        let registry = self.registry.lock().await;
        exists(&registry, &object).map_err(status::registry)?;
        let (entries, version) = self.hub().store.get(&object, &r.keys);
        Ok(Response::new(v1::GetMetadataResponse {
            entries: entries.iter().map(wire::entry).collect(),
            version: Some(wire::version_to_wire(version)),
        }))
    }

    /// WatchMetadata.
    pub(super) async fn watch_metadata_rpc(
        &self,
        request: Request<v1::WatchMetadataRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let r = request.into_inner();
        let object = wire::target(r.target)?;
        let resume_from = r.resume_from.map(|v| wire::version(Some(v)));
        // Held by the watcher's task until it ends.
        let permit = Arc::clone(&self.metadata_watchers).try_acquire_owned().map_err(|_| {
            let max = self.hub().store.limits().max_watchers;
            Status::resource_exhausted(format!(
                "{max} metadata watchers are open (limit metadata.max_watchers = {max})"
            ))
        })?;
        let (first, receiver, buffer) = {
            let registry = self.registry.lock().await;
            exists(&registry, &object).map_err(status::registry)?;
            let mut hub = self.hub();
            // Under one lock: the first events and the subscription see the same state, so nothing is missed
            // or repeated between them.
            let start = hub.store.watch_start(&object, resume_from);
            let version = match &start {
                crate::metadata::WatchStart::Snapshot { version, .. }
                | crate::metadata::WatchStart::Replay { version, .. } => *version,
            };
            let first = wire::start_events(&object, &start);
            (
                Watch { first, last_sent: resume_from.unwrap_or(version) },
                hub.subscribe(&object),
                hub.store.limits().watch_buffer_events,
            )
        };
        let (tx, rx) = mpsc::channel(STREAM_HANDOFF_EVENTS);
        tokio::spawn(async move {
            forward(object, first, receiver, buffer, tx).await;
            drop(permit);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A watch's first events, and the version the watcher is at before them.
struct Watch {
    first: Vec<v1::MetadataEvent>,
    last_sent: Version,
}

/// Sends a watcher its first events, then the object's events, until the object is deleted, the client goes
/// away, or the watcher lags behind.
async fn forward(
    object: ObjectRef,
    watch: Watch,
    mut events: broadcast::Receiver<Arc<MetadataEvent>>,
    buffer: usize,
    tx: mpsc::Sender<Result<v1::MetadataEvent, Status>>,
) {
    let mut last_sent = watch.last_sent;
    for event in watch.first {
        let version = wire::version(event.version);
        if tx.send(Ok(event)).await.is_err() {
            return;
        }
        last_sent = version;
    }
    loop {
        let received = tokio::select! {
            () = tx.closed() => return,
            received = events.recv() => received,
        };
        let (event, last) = match received {
            Ok(event) => match &*event {
                MetadataEvent::Changed { change, .. } => (wire::change_event(&object, change), false),
                MetadataEvent::Deleted { version, .. } => (wire::deleted_event(&object, *version), true),
            },
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let message = format!(
                    "watcher of {object} fell {missed} changes behind (limit metadata.watch_buffer_events = \
                     {buffer}); watch again with resume_from {last_sent}"
                );
                let _ = tx.send(Err(Status::resource_exhausted(message))).await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let version = wire::version(event.version);
        if tx.send(Ok(event)).await.is_err() || last {
            return;
        }
        last_sent = version;
    }
}

/// The `(key, value)` pairs of the live `entries` (a deletion's tombstone has no value).
fn live(entries: &[crate::metadata::Entry]) -> impl Iterator<Item = (&str, &str)> {
    entries.iter().filter_map(|entry| Some((entry.key.as_str(), entry.value.as_deref()?)))
}
