//! This node in the cluster: its lease, renewed every `cluster.heartbeat_ms` with its load, and the streams it
//! publishes, kept in the directory.
//!
//! Owns [`Cluster`]: joining (the first renewal, which must succeed for the daemon to start), the heartbeat task, the
//! bounded queue of placements fed by the lifecycle events ([`StreamSink`], which never waits: a full queue makes the
//! next heartbeat write this node's whole list again), the task that logs and counts what the directory's watchers
//! hear, and leaving on a stop. Reads the registry only through [`crate::api::Api`]'s read calls. Must never hold the
//! registry while it talks to the directory, nor make the API wait for the directory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::directory::{Change, Directory, DirectoryError, Load, NodeLease, NodeRecord, StreamKey};
use super::relay::{node_of_endpoint, RelaySink, Relays};
use crate::api::Api;
use crate::events::{Event, EventKind, EventSink};

/// The longest a stop waits for the directory to take this node's leave.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest an API call waits for what it reads from the directory ([`Cluster::read`]).
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// What this node's part in the cluster did.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// Lease renewals the directory took.
    pub renewals: AtomicU64,
    /// Directory calls that failed (renewals, placements).
    pub errors: AtomicU64,
    /// Times this node wrote its whole list of streams again (it joined, came back after its lease ran out, or its
    /// update queue was full).
    pub resyncs: AtomicU64,
    /// Placements the full update queue did not take (a resync followed).
    pub updates_dropped: AtomicU64,
    /// Times another process was found renewing this node's id on two heartbeats in a row (two nodes configured
    /// with one id).
    pub id_conflicts: AtomicU64,
    /// Nodes the watchers heard join.
    pub nodes_up: AtomicU64,
    /// Nodes the watchers heard leave or lose their lease.
    pub nodes_down: AtomicU64,
    /// Sessions another node created that this node made its copy of.
    pub sessions_copied: AtomicU64,
    /// Sessions another node created that this node could not hold (its admission limit, say).
    pub sessions_not_copied: AtomicU64,
    /// Sub calls this node sent (each attempt).
    pub relay_subs_sent: AtomicU64,
    /// Cancel calls this node sent (each attempt).
    pub relay_cancels_sent: AtomicU64,
    /// Finish calls this node sent (each attempt).
    pub relay_finishes_sent: AtomicU64,
    /// Relay events or messages dropped: the relay queue was full, too many were in flight, or every attempt failed.
    pub relay_messages_dropped: AtomicU64,
    /// Relayed streams moved to another path: `[0]` through a relaying node (their path broke), `[1]` back to the
    /// direct path.
    pub path_moves: [AtomicU64; 2],
    /// Moves of relayed streams that failed (each is tried again later).
    pub path_move_failures: AtomicU64,
    /// Probes of other nodes' paths that failed.
    pub path_probes_failed: AtomicU64,
    /// Times the legs to a node were removed because it could not be reached for twice `cluster.lease_ms`.
    pub legs_given_up: AtomicU64,
    /// Metadata writes of this node shared with the others.
    pub metadata_shared: AtomicU64,
    /// Metadata writes of this node that could not be shared (too many at once, or the directory failed).
    pub metadata_not_shared: AtomicU64,
    /// Metadata writes of other nodes merged here that changed an object's metadata.
    pub metadata_merged: AtomicU64,
}

/// A placement to write.
#[derive(Debug)]
enum Update {
    Place(StreamKey),
    Remove(StreamKey),
}

/// This node's settings in the cluster.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Its record, load aside (filled at each heartbeat).
    pub record: NodeRecord,
    /// `cluster.heartbeat_ms`.
    pub heartbeat: Duration,
    /// `cluster.lease_ms`.
    pub lease_ms: u32,
    /// `cluster.update_queue`.
    pub update_queue: usize,
    /// `cluster.unreachable_nodes`.
    pub unreachable: BTreeSet<String>,
    /// `cluster.finish_inactive_streams`.
    pub finish_inactive: bool,
}

/// The bound of the queue of lifecycle events the relays act on ([`super::relay`]).
pub const RELAY_EVENT_QUEUE: usize = 1024;

/// This node in the cluster.
pub struct Cluster {
    directory: Arc<dyn Directory>,
    settings: NodeSettings,
    counters: Arc<ClusterCounters>,
    resync: Arc<AtomicBool>,
    /// The creation (incarnation) of each session of the directory this node holds; see [`super::sessions`].
    held: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Streams relayed to and from this node; see [`super::relay`].
    relays: Relays,
    /// Metadata writes being shared; see [`super::metadata`].
    metadata_shares: Arc<tokio::sync::Semaphore>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Cluster {
    /// Joins the cluster through `directory` (the first renewal must succeed), counting into `counters`, and starts
    /// the heartbeat, the placement writer and the watcher; the lifecycle events of `api`'s bus place and remove
    /// streams from now on. [`Cluster::resync`] after the restore and the config's sessions writes what existed
    /// before.
    pub async fn start(
        directory: Arc<dyn Directory>,
        settings: NodeSettings,
        relays: Relays,
        api: &Arc<Api>,
        counters: Arc<ClusterCounters>,
    ) -> Result<Arc<Cluster>, DirectoryError> {
        // Watched before the first renewal, so that this node's own joining is counted too.
        let changes = directory.watch();
        let resync = Arc::new(AtomicBool::new(true));
        let mut record = settings.record.clone();
        record.load = load_of(api, record.load.workers).await;
        let _previous = directory.renew(&record, settings.lease_ms).await?;
        counters.renewals.fetch_add(1, Ordering::Relaxed);
        let (updates, queued) = mpsc::channel(settings.update_queue.max(1));
        api.events().add_sink(Box::new(StreamSink {
            updates,
            resync: Arc::clone(&resync),
            counters: Arc::clone(&counters),
        }));
        let (relay_events, relay_queue) = mpsc::channel(RELAY_EVENT_QUEUE);
        api.events().add_sink(Box::new(RelaySink {
            events: relay_events,
            counters: Arc::clone(&counters),
            finish_inactive: settings.finish_inactive,
        }));
        let cluster = Arc::new(Cluster {
            directory,
            settings,
            counters,
            resync,
            held: std::sync::Mutex::default(),
            relays,
            metadata_shares: Arc::new(tokio::sync::Semaphore::new(super::metadata::MAX_SHARES)),
            tasks: std::sync::Mutex::default(),
        });
        let tasks = vec![
            tokio::spawn(Arc::clone(&cluster).heartbeat(Arc::clone(api))),
            tokio::spawn(Arc::clone(&cluster).write_updates(queued)),
            tokio::spawn(Arc::clone(&cluster).hear(changes, Arc::clone(api))),
            tokio::spawn(Arc::clone(&cluster).relay_loop(relay_queue, Arc::clone(api))),
            tokio::spawn(Arc::clone(&cluster).paths_loop(Arc::clone(api))),
        ];
        *cluster.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = tasks;
        Ok(cluster)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.settings.record.id
    }

    /// The directory's backend: "embedded" or "redis".
    pub fn backend(&self) -> &'static str {
        self.directory.backend()
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<ClusterCounters> {
        &self.counters
    }

    pub(super) fn metadata_shares(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.metadata_shares
    }

    pub(super) fn directory(&self) -> &dyn Directory {
        &*self.directory
    }

    pub(super) fn relays(&self) -> &Relays {
        &self.relays
    }

    /// Whether `cluster.unreachable_nodes` names `node`: its streams come through another node.
    pub fn unreachable(&self, node: &str) -> bool {
        self.settings.unreachable.contains(node)
    }

    /// `cluster.lease_ms`.
    pub fn lease_ms(&self) -> u32 {
        self.settings.lease_ms
    }

    /// Where other nodes send this node's relayed media.
    pub fn relay_address(&self) -> std::net::SocketAddr {
        self.settings.record.relay_address
    }

    /// The creation of each session this node holds of the directory's; never held across an `.await`.
    pub(super) fn held_sessions(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `read` (calls to this node's directory), bounded as a whole by [`READ_TIMEOUT`].
    pub async fn read<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        tokio::time::timeout(READ_TIMEOUT, read).await.unwrap_or_else(|_| {
            Err(DirectoryError::Backend {
                backend: self.backend(),
                message: format!("no answer within {READ_TIMEOUT:?}"),
            })
        })
    }

    /// The live nodes, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeLease>, DirectoryError> {
        self.directory.nodes().await
    }

    /// The node the directory places `stream` on, if any.
    pub async fn locate(&self, stream: &StreamKey) -> Result<Option<String>, DirectoryError> {
        self.directory.locate(stream).await
    }

    /// Every placed stream and its node.
    pub async fn streams(&self) -> Result<Vec<(StreamKey, String)>, DirectoryError> {
        self.directory.streams().await
    }

    /// Writes this node's whole list of streams into the directory now (after the restore and the config's
    /// sessions), and removes what the directory places here that this node no longer publishes; makes this node
    /// and the directory hold the same sessions ([`super::sessions`]).
    /// A failure is counted, and leaves the resync to the next heartbeat.
    pub async fn resync(&self, api: &Api) -> Result<(), DirectoryError> {
        self.resync.store(false, Ordering::Relaxed);
        let result = self.write_all(api).await;
        if result.is_err() {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            self.resync.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Stops renewing the lease and writing placements (on a handover: the successor renews the lease from now on).
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }

    /// Stops, and leaves the cluster (on a stop): the lease and the placements go now instead of when the lease
    /// runs out. Waits at most [`LEAVE_TIMEOUT`].
    pub async fn leave(&self) {
        self.stop();
        match tokio::time::timeout(LEAVE_TIMEOUT, self.directory.leave(self.node_id())).await {
            Ok(Ok(())) => tracing::info!(node = self.node_id(), "cluster: left"),
            Ok(Err(e)) => tracing::warn!("cluster: leaving failed (the lease runs out instead): {e}"),
            Err(_) => tracing::warn!("cluster: leaving took over {LEAVE_TIMEOUT:?} (the lease runs out instead)"),
        }
    }

    /// Places every stream this node holds, then removes what the directory places here that this node does not
    /// hold. The streams held are read again after the directory: a stream created meanwhile (and placed by the
    /// update writer) is not removed, and one deleted meanwhile (after this placed it again) does not stay.
    async fn write_all(&self, api: &Api) -> Result<(), DirectoryError> {
        self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        let node = self.node_id();
        for stream in api.stream_keys().await {
            self.directory.place(&stream, node).await?;
        }
        let placed = self.directory.streams().await?;
        let here: BTreeSet<StreamKey> = api.stream_keys().await.into_iter().collect();
        for (stream, on) in placed {
            if on == node && !here.contains(&stream) {
                self.directory.remove(&stream, node).await?;
            }
        }
        self.sync_sessions(api).await
    }

    async fn heartbeat(self: Arc<Self>, api: Arc<Api>) {
        let mut ticker = tokio::time::interval(self.settings.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut record = self.settings.record.clone();
        // Failed renewals in a row: the first and the recovery are logged, not every heartbeat in between.
        let mut failing = 0u64;
        // Renewals in a row that found another process's record in the lease.
        let mut foreign = 0u64;
        loop {
            ticker.tick().await;
            record.load = load_of(&api, record.load.workers).await;
            let previous = match self.directory.renew(&record, self.settings.lease_ms).await {
                Ok(previous) => previous,
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    if failing == 0 {
                        tracing::warn!("cluster: renewing the lease failed (retried every heartbeat): {e}");
                    }
                    failing += 1;
                    continue;
                }
            };
            self.counters.renewals.fetch_add(1, Ordering::Relaxed);
            if failing > 0 {
                tracing::info!(failed = failing, "cluster: renewing the lease works again");
                failing = 0;
            }
            self.judge_renewal(previous, record.instance, &mut foreign);
            if self.resync.load(Ordering::Relaxed) {
                if let Err(e) = self.resync(&api).await {
                    tracing::warn!("cluster: writing this node's streams failed (again at the next heartbeat): {e}");
                }
            }
        }
    }

    /// What a renewal found in the lease (`previous`): nothing (this node's lease had run out: its streams are
    /// written again), or another process's record (`instance` is this one's). Once in a row is a takeover (the
    /// successor's first renewal finds its predecessor's record); twice in a row, counted in `foreign`, is two nodes
    /// with one id.
    fn judge_renewal(&self, previous: Option<NodeRecord>, instance: u64, foreign: &mut u64) {
        let Some(previous) = previous else {
            tracing::warn!(node = self.node_id(), "cluster: this node's lease had run out; joined again");
            self.resync.store(true, Ordering::Relaxed);
            return;
        };
        if previous.instance == instance {
            *foreign = 0;
            return;
        }
        *foreign += 1;
        if *foreign == 2 {
            self.counters.id_conflicts.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                node = self.node_id(),
                other_started_unix_ms = previous.started_unix_ms,
                other_api = %previous.api_address,
                "cluster: another process renews this node's id: two nodes have one cluster.node_id"
            );
        }
    }

    async fn write_updates(self: Arc<Self>, mut queued: mpsc::Receiver<Update>) {
        while let Some(update) = queued.recv().await {
            let node = self.node_id();
            let result = match &update {
                Update::Place(stream) => self.directory.place(stream, node).await,
                Update::Remove(stream) => self.directory.remove(stream, node).await,
            };
            if let Err(e) = result {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.resync.store(true, Ordering::Relaxed);
                tracing::warn!(?update, "cluster: a directory update failed (the next heartbeat writes them all): {e}");
            }
        }
    }

    /// Logs and counts the nodes that join and leave, and publishes those of other nodes as lifecycle events without a
    /// session; holds the sessions other nodes create, and deletes those deleted on other nodes. A change missed (the
    /// watcher fell behind) makes the next heartbeat sync everything again.
    async fn hear(self: Arc<Self>, mut changes: broadcast::Receiver<Change>, api: Arc<Api>) {
        let events = Arc::clone(api.events());
        loop {
            match changes.recv().await {
                Ok(Change::NodeUp { node }) => {
                    self.counters.nodes_up.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(node, "cluster: a node joined");
                    if node != self.node_id() {
                        events.publish(String::new(), EventKind::NodeJoined { node }, crate::clock::unix_ms());
                    }
                }
                Ok(Change::NodeDown { node, expired }) => {
                    self.counters.nodes_down.fetch_add(1, Ordering::Relaxed);
                    if expired {
                        tracing::warn!(node, "cluster: a node's lease ran out; its streams left the directory");
                    } else {
                        tracing::info!(node, "cluster: a node left");
                    }
                    if node == self.node_id() {
                        self.resync.store(true, Ordering::Relaxed);
                    } else {
                        api.drop_relays_of(&self, &node).await;
                        events.publish(String::new(), EventKind::NodeLost { node, expired }, crate::clock::unix_ms());
                    }
                }
                Ok(Change::StreamPlaced { .. } | Change::StreamRemoved { .. }) => {}
                Ok(Change::SessionCreated { session, record }) => {
                    self.heard_session_created(&api, &session, &record).await;
                }
                Ok(Change::SessionDeleted { session, incarnation }) => {
                    self.heard_session_deleted(&api, &session, incarnation).await;
                }
                Ok(Change::MetadataShared { session, member, entries, node }) => {
                    self.heard_metadata(&api, session, member, entries, &node).await;
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "cluster: the directory's watcher fell behind (all is synced again)");
                    self.resync.store(true, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// What this node holds now.
async fn load_of(api: &Api, workers: u64) -> Load {
    let usage = api.usage().await;
    Load {
        sessions: u64::from(usage.sessions),
        streams: u64::from(usage.streams),
        subscriptions: u64::from(usage.subscriptions),
        workers,
    }
}

/// Turns the bus's stream events into placements; never waits.
struct StreamSink {
    updates: mpsc::Sender<Update>,
    resync: Arc<AtomicBool>,
    counters: Arc<ClusterCounters>,
}

impl EventSink for StreamSink {
    fn offer(&mut self, event: &Arc<Event>) {
        let key = |stream_id: &str| StreamKey { session_id: event.session_id.clone(), stream_id: stream_id.to_owned() };
        let update = match &event.kind {
            // A stream relayed here is its origin's: never placed here.
            EventKind::StreamPublished { stream, .. } if node_of_endpoint(&stream.endpoint_id).is_some() => return,
            EventKind::StreamUnpublished(stream) if node_of_endpoint(&stream.endpoint_id).is_some() => return,
            EventKind::StreamPublished { stream, .. } => Update::Place(key(&stream.stream_id)),
            EventKind::StreamUnpublished(stream) => Update::Remove(key(&stream.stream_id)),
            _ => return,
        };
        if self.updates.try_send(update).is_err() {
            self.counters.updates_dropped.fetch_add(1, Ordering::Relaxed);
            self.resync.store(true, Ordering::Relaxed);
        }
    }
}
