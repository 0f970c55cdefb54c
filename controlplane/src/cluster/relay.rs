//! Relaying a stream from the node that publishes it (the origin) to another node that has subscribers for it: the
//! Sub / Data / Finish / Cancel protocol, over the direct path between the two nodes.
//!
//! A subscription created on node B for a stream the directory places on node A makes B send Sub (`RelaySubscribe`,
//! with a request id and B's relay address) to A's API, re-sent with backoff until A acknowledges it. A adds one
//! relay leg: endpoint `~B` at B's relay address and its subscription `~B.<request id>` to the stream, keeping the
//! publisher's SSRC and sequence numbers. B then publishes the stream locally from endpoint `~A` (A's relay address,
//! from which A's media socket sends), and its subscriptions are fed from it as from a local publisher (their
//! interceptors, rewriting, NACK cache); RTCP feedback of B's subscribers goes to B's publisher, that is to A, whose
//! leg takes it as a subscriber's. Data is the media itself, on the data plane. One leg per stream per node,
//! however many subscribers. B's last subscription to the stream gone, B deletes the relayed stream and sends Cancel
//! (`RelayCancel`); the leg gone on A (the stream deleted, Cancel, a newer Sub), A sends Finish (`RelayFinish`) and B
//! deletes its relayed stream when it is that request's (with `cluster.finish_inactive_streams`, a stream published
//! here that goes inactive removes its legs too). A node whose lease runs out is Cancel and Finish at once:
//! every node deletes its endpoint `~N`, and with it the legs to N and the streams relayed from N.
//!
//! Owns this node's side, on [`Cluster`]: the ids of relay objects, the inter-node client (one channel per peer API
//! address, over TLS when the peer's record says its API has it, verified against `cluster.tls_ca_file`; a token
//! minted per call with this node's first `[[auth.keys]]` key: the nodes must share their keys),
//! the table of the streams relayed here (their origin and request id, bounded by `admission.max_streams`), the
//! Cancel and Finish messages still to deliver (each retried with backoff, at most [`MAX_DELIVERIES`] at once),
//! and the sink of lifecycle events that notices a relayed stream's last subscription and a leg leaving.
//!
//! Direct first: B sends Sub to A itself unless `cluster.unreachable_nodes` names A; when A does not acknowledge
//! ([`DIRECT_SUB_ATTEMPTS`]) or is named there, B asks another live node (the least loaded first, never one B
//! cannot reach) to relay: that node (the relayer) relays the stream in from A directly (never through a third
//! node, so a path never loops) and adds a leg to B from its relayed copy, which is then a subscription of it like a
//! local one: its last subscription or leg gone, it sends Cancel on to A; A's Finish deletes its copy, whose legs'
//! removal sends Finish on. A path that breaks later, or a direct path that returns, moves the stream (see
//! [`super::paths`]), and so does one whose relaying node left the cluster (the origin directly, else another node;
//! what cannot move ends with the relaying node's lease). What is not built: feedback or NACKs answered at each hop
//! beyond what each node's own interceptors do.
//! Reaches the registry only through [`Api`]; must never hold the registry or its tables across a call to another
//! node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_proto::v1::ringfwd_client::RingfwdClient;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::directory::{NodeRecord, StreamKey};
use super::node::Cluster;
use crate::api::Api;
use crate::auth::{Grant, Keys};
use crate::events::{Event, EventKind, EventSink};

/// The longest one inter-node call may take (a Sub to a relaying node waits for that node's own Sub to the origin).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest a connection to another node may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Sub is sent this many times at most to a relaying node (backoff 100, 200, 400 ms between) before the subscription
/// that needed it fails.
pub const SUB_ATTEMPTS: u32 = 4;
/// Sub is sent this many times at most to the origin directly before another node is asked to relay.
pub const DIRECT_SUB_ATTEMPTS: u32 = 2;
/// Cancel and Finish are sent this many times at most (backoff from 100 ms, doubling up to 5 s).
pub const DELIVERY_ATTEMPTS: u32 = 8;
/// Cancel and Finish messages being delivered at once; one more is dropped and counted (the lease of a node that
/// went away cleans up after it).
pub const MAX_DELIVERIES: usize = 256;
/// Channels to other nodes kept open; past it they are all made again as needed.
const MAX_PEERS: usize = 256;
/// How long a minted inter-node token lasts.
const TOKEN_TTL: Duration = Duration::from_secs(60);

/// The relay endpoint for node `node` (on the origin: where its legs send; on the receiver: the relayed streams'
/// publisher).
pub fn endpoint_id(node: &str) -> String {
    format!("{}{node}", crate::registry::RELAY_ID_PREFIX)
}

/// The node a relay endpoint id stands for.
pub fn node_of_endpoint(endpoint_id: &str) -> Option<&str> {
    endpoint_id.strip_prefix(crate::registry::RELAY_ID_PREFIX).filter(|node| !node.is_empty())
}

/// The id of the leg subscription for node `node`'s request `request_id`.
pub fn leg_id(node: &str, request_id: u64) -> String {
    format!("{}{node}.{request_id:016x}", crate::registry::RELAY_ID_PREFIX)
}

/// A request id for a Sub: random, never 0.
pub fn new_request_id() -> u64 {
    rand::random::<u64>().max(1)
}

/// The node and request id of a leg subscription id.
pub fn parse_leg_id(subscription_id: &str) -> Option<(&str, u64)> {
    let rest = subscription_id.strip_prefix(crate::registry::RELAY_ID_PREFIX)?;
    let (node, request) = rest.rsplit_once('.')?;
    let request_id = u64::from_str_radix(request, 16).ok().filter(|id| *id != 0 && request.len() == 16)?;
    (!node.is_empty()).then_some((node, request_id))
}

/// A stream relayed to this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The node whose leg sends it here: its origin (the direct path) or a relaying node.
    pub from: String,
    /// The node that publishes it.
    pub origin: String,
    /// The Sub (to `from`) that made its leg.
    pub request_id: u64,
}

/// Why an inter-node call failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The node is not in the directory (not alive), or the directory could not be read.
    #[error("node {node} cannot be found in the cluster directory: {reason}")]
    NoNode {
        /// Which.
        node: String,
        /// Why.
        reason: String,
    },
    /// The TLS of the call to the node cannot be set up.
    #[error("node {node}: TLS: {reason}")]
    Tls {
        /// Which.
        node: String,
        /// Why.
        reason: String,
    },
    /// No token could be minted for the call.
    #[error("this node cannot mint a token for node {node}: {reason}")]
    Token {
        /// Which.
        node: String,
        /// Why.
        reason: String,
    },
    /// The node answered with an error, or did not answer.
    #[error("node {node} ({address}): {status}")]
    Call {
        /// Which.
        node: String,
        /// Its API address.
        address: SocketAddr,
        /// What it answered.
        status: tonic::Status,
    },
}

impl RelayError {
    /// Whether the node answered and refused (as opposed to not answering, or not being found): asking again, or
    /// asking another node to relay, would not help.
    pub fn is_refusal(&self) -> bool {
        match self {
            RelayError::Call { status, .. } => !matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            ),
            RelayError::Token { .. } | RelayError::Tls { .. } => true,
            RelayError::NoNode { .. } => false,
        }
    }

    /// The status an API call that needed the relay answers: the node's refusal of this node's token says the
    /// nodes must share their keys.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            RelayError::Call { status, .. } if status.code() == tonic::Code::Unauthenticated => {
                tonic::Status::failed_precondition(format!(
                    "{self}: the nodes of a cluster must share their [[auth.keys]] to relay streams"
                ))
            }
            RelayError::Call { status, .. } if status.code() == tonic::Code::NotFound => {
                tonic::Status::not_found(self.to_string())
            }
            _ => tonic::Status::unavailable(self.to_string()),
        }
    }
}

/// A Cancel or Finish to deliver.
#[derive(Clone, Debug)]
enum Message {
    Cancel { to: String, request: v1::RelayCancelRequest },
    Finish { to: String, request: v1::RelayFinishRequest },
}

/// This node's relays: see the module docs.
pub struct Relays {
    keys: Keys,
    /// The TLS of calls to nodes whose API has `[api.tls]`.
    tls: tonic::transport::ClientTlsConfig,
    incoming: std::sync::Mutex<BTreeMap<(String, String), Incoming>>,
    /// By API address and whether it speaks TLS.
    channels: std::sync::Mutex<BTreeMap<(SocketAddr, bool), Channel>>,
    /// The streams a Sub or a release is under way for: one at a time per stream, so that two subscriptions to one
    /// stream make one leg (and two nodes relaying different streams through each other never wait on each other).
    busy: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
    /// Woken when a stream leaves `busy`.
    freed: tokio::sync::Notify,
    deliveries: Arc<tokio::sync::Semaphore>,
}

impl Relays {
    /// Relays whose calls carry tokens minted with `keys`' first key, over `tls` to a node whose API has TLS.
    pub fn new(keys: Keys, tls: tonic::transport::ClientTlsConfig) -> Relays {
        Relays {
            keys,
            tls,
            incoming: std::sync::Mutex::default(),
            channels: std::sync::Mutex::default(),
            busy: std::sync::Mutex::default(),
            freed: tokio::sync::Notify::new(),
            deliveries: Arc::new(tokio::sync::Semaphore::new(MAX_DELIVERIES)),
        }
    }

    fn incoming(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Incoming>> {
        self.incoming.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A stream marked busy ([`Cluster::subscribing`]) until dropped.
pub struct Busy<'a> {
    relays: &'a Relays,
    key: (String, String),
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.relays.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.key);
        self.relays.freed.notify_waiters();
    }
}

/// What the relay sink hands to the relay task.
#[derive(Debug)]
pub(super) enum RelayEvent {
    /// A subscription left stream `stream_id` of session `session_id` (deleted, or switched away).
    Left { session_id: String, stream_id: String, subscription_id: String, endpoint_id: String },
    /// A stream was deleted.
    Unpublished { session_id: String, stream_id: String, endpoint_id: String },
    /// A stream went inactive (told only with `cluster.finish_inactive_streams`).
    Inactive { session_id: String, stream_id: String },
}

/// Hands the events the relays act on to the relay task; never waits (a full queue is counted: the lease of the
/// node concerned, or the next subscription, cleans up).
pub(super) struct RelaySink {
    pub(super) events: mpsc::Sender<RelayEvent>,
    pub(super) counters: Arc<super::ClusterCounters>,
    /// `cluster.finish_inactive_streams`: inactive streams are handed on too.
    pub(super) finish_inactive: bool,
}

impl EventSink for RelaySink {
    fn offer(&mut self, event: &Arc<Event>) {
        let session_id = event.session_id.clone();
        let relay_event = match &event.kind {
            EventKind::Unsubscribed(s) => RelayEvent::Left {
                session_id,
                stream_id: s.stream_id.clone(),
                subscription_id: s.subscription_id.clone(),
                endpoint_id: s.endpoint_id.clone(),
            },
            EventKind::SubscriptionSwitched { subscription, previous_stream_id } => RelayEvent::Left {
                session_id,
                stream_id: previous_stream_id.clone(),
                subscription_id: subscription.subscription_id.clone(),
                endpoint_id: subscription.endpoint_id.clone(),
            },
            EventKind::StreamUnpublished(s) => RelayEvent::Unpublished {
                session_id,
                stream_id: s.stream_id.clone(),
                endpoint_id: s.endpoint_id.clone(),
            },
            EventKind::StreamInactive(s) if self.finish_inactive && node_of_endpoint(&s.endpoint_id).is_none() => {
                RelayEvent::Inactive { session_id, stream_id: s.stream_id.clone() }
            }
            _ => return,
        };
        if self.events.try_send(relay_event).is_err() {
            self.counters.relay_messages_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Cluster {
    /// The stream relayed here as `session_id`/`stream_id`, if any.
    pub fn incoming(&self, session_id: &str, stream_id: &str) -> Option<Incoming> {
        self.relays().incoming().get(&(session_id.to_owned(), stream_id.to_owned())).cloned()
    }

    /// Every stream relayed here, with where it comes from.
    pub fn all_incoming(&self) -> Vec<(StreamKey, Incoming)> {
        let incoming = self.relays().incoming();
        let key = |(session_id, stream_id): &(String, String)| StreamKey {
            session_id: session_id.clone(),
            stream_id: stream_id.clone(),
        };
        incoming.iter().map(|(k, incoming)| (key(k), incoming.clone())).collect()
    }

    /// Forgets every stream relayed here from node `node` (it left the cluster).
    pub fn forget_incoming_from(&self, node: &str) {
        self.relays().incoming().retain(|_, incoming| incoming.from != node);
    }

    /// Forgets the channel to API address `address`: the next call connects afresh.
    pub(super) fn drop_channel(&self, address: SocketAddr) {
        let mut channels = self.relays().channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        channels.retain(|(to, _), _| *to != address);
    }

    /// A client of node `node`'s API, and the node's record.
    pub(super) async fn client(&self, node: &str) -> Result<(RingfwdClient<Channel>, NodeRecord), RelayError> {
        let nodes = self.read(self.directory().nodes()).await;
        let nodes = nodes.map_err(|e| RelayError::NoNode { node: node.to_owned(), reason: e.to_string() })?;
        let lease = nodes
            .into_iter()
            .find(|lease| lease.record.id == node)
            .ok_or_else(|| RelayError::NoNode { node: node.to_owned(), reason: "it holds no lease".to_owned() })?;
        let (address, tls) = (lease.record.api_address, lease.record.api_tls);
        let mut channels = self.relays().channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // One channel per live node: those of nodes gone go.
        if !channels.contains_key(&(address, tls)) && channels.len() >= MAX_PEERS {
            channels.clear();
        }
        let channel = match channels.get(&(address, tls)) {
            Some(channel) => channel.clone(),
            None => {
                let scheme = if tls { "https" } else { "http" };
                let endpoint = Channel::from_shared(format!("{scheme}://{address}"))
                    .expect("a socket address is a valid URI authority")
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(CALL_TIMEOUT);
                let endpoint = if tls {
                    // The other node's certificate must name its API address.
                    let config = self.relays().tls.clone().domain_name(address.ip().to_string());
                    endpoint
                        .tls_config(config)
                        .map_err(|e| RelayError::Tls { node: node.to_owned(), reason: e.to_string() })?
                } else {
                    endpoint
                };
                let channel = endpoint.connect_lazy();
                channels.insert((address, tls), channel.clone());
                channel
            }
        };
        drop(channels);
        Ok((RingfwdClient::new(channel), lease.record))
    }

    /// `request` with a token minted for this call.
    pub(super) fn authorized<T>(&self, node: &str, request: T) -> Result<tonic::Request<T>, RelayError> {
        let keys = &self.relays().keys;
        let token_error = |reason: String| RelayError::Token { node: node.to_owned(), reason };
        let key_id = keys.ids().next().ok_or_else(|| token_error("it has no key".to_owned()))?;
        let subject = format!("node:{}", self.node_id());
        let token = crate::auth::mint(keys, key_id, Grant::Admin, &subject, TOKEN_TTL, crate::clock::unix_s())
            .map_err(|e| token_error(e.to_string()))?;
        let mut request = tonic::Request::new(request);
        let header = format!("Bearer {token}").parse().map_err(|_| token_error("not a header value".to_owned()))?;
        request.metadata_mut().insert("authorization", header);
        Ok(request)
    }

    /// Sends Sub for `session_id`/`stream_id` to `origin`, re-sent with backoff (`attempts` in all) until it is
    /// acknowledged; answers the stream as the origin publishes it, and the origin's relay address. A refusal (the
    /// origin does not publish it, or refused the token) is not re-sent.
    pub async fn subscribe_remote(
        &self,
        origin: &str,
        session_id: &str,
        stream_id: &str,
        request_id: u64,
        attempts: u32,
    ) -> Result<(v1::RelaySubscribeResponse, SocketAddr), RelayError> {
        let request = v1::RelaySubscribeRequest {
            session_id: session_id.to_owned(),
            stream_id: stream_id.to_owned(),
            node_id: self.node_id().to_owned(),
            relay_address: self.relay_address().to_string(),
            request_id,
        };
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let (mut client, record) = self.client(origin).await?;
            let address = record.api_address;
            let answer = client.relay_subscribe(self.authorized(origin, request.clone())?).await;
            self.counters().relay_subs_sent.fetch_add(1, Ordering::Relaxed);
            let status = match answer {
                Ok(response) => return Ok((response.into_inner(), record.relay_address)),
                Err(status) => status,
            };
            let retry = matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded);
            if !retry || attempt >= attempts {
                return Err(RelayError::Call { node: origin.to_owned(), address, status });
            }
            tracing::debug!(origin, attempt, "cluster: Sub not acknowledged, sent again: {status}");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    /// Records that `session_id`/`stream_id`, published on `origin`, is relayed here from `from` (the origin itself or
    /// a relaying node) by `request_id`.
    pub fn relayed_here(&self, session_id: &str, stream_id: &str, from: &str, origin: &str, request_id: u64) {
        let incoming = Incoming { from: from.to_owned(), origin: origin.to_owned(), request_id };
        self.relays().incoming().insert((session_id.to_owned(), stream_id.to_owned()), incoming);
    }

    /// Forgets the stream relayed here as `session_id`/`stream_id` when `matches` says so; answers what it forgot.
    pub fn forget_incoming(
        &self,
        session_id: &str,
        stream_id: &str,
        matches: impl FnOnce(&Incoming) -> bool,
    ) -> Option<Incoming> {
        let mut incoming = self.relays().incoming();
        let key = (session_id.to_owned(), stream_id.to_owned());
        if incoming.get(&key).is_some_and(matches) {
            incoming.remove(&key)
        } else {
            None
        }
    }

    /// One Sub or release at a time for stream `session_id`/`stream_id`: held by the caller from before it looks
    /// whether the stream is relayed here until it recorded (or removed) the relay.
    pub async fn subscribing(&self, session_id: &str, stream_id: &str) -> Busy<'_> {
        let key = (session_id.to_owned(), stream_id.to_owned());
        loop {
            let freed = self.relays().freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between the check and the wait is not missed.
            freed.as_mut().enable();
            if self.relays().busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.clone()) {
                return Busy { relays: self.relays(), key };
            }
            freed.await;
        }
    }

    /// Delivers Cancel of `request_id` (0: any) for `session_id`/`stream_id` to `origin`, in the background.
    pub fn send_cancel(self: &Arc<Self>, origin: &str, session_id: &str, stream_id: &str, request_id: u64) {
        let request = v1::RelayCancelRequest {
            session_id: session_id.to_owned(),
            stream_id: stream_id.to_owned(),
            node_id: self.node_id().to_owned(),
            request_id,
        };
        self.deliver(Message::Cancel { to: origin.to_owned(), request });
    }

    /// Delivers Finish of `request_id` for `session_id`/`stream_id` to `node`, in the background.
    pub fn send_finish(self: &Arc<Self>, node: &str, session_id: &str, stream_id: &str, request_id: u64) {
        let request = v1::RelayFinishRequest {
            session_id: session_id.to_owned(),
            stream_id: stream_id.to_owned(),
            node_id: self.node_id().to_owned(),
            request_id,
        };
        self.deliver(Message::Finish { to: node.to_owned(), request });
    }

    fn deliver(self: &Arc<Self>, message: Message) {
        let Ok(permit) = Arc::clone(&self.relays().deliveries).try_acquire_owned() else {
            self.counters().relay_messages_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(?message, "cluster: too many relay messages in flight; this one is dropped");
            return;
        };
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            let _permit = permit;
            let mut backoff = Duration::from_millis(100);
            for attempt in 1..=DELIVERY_ATTEMPTS {
                match cluster.send_once(&message).await {
                    Ok(()) => return,
                    // The node is gone: its lease's end cleans up on both sides.
                    Err(RelayError::NoNode { .. }) => return,
                    Err(RelayError::Call { status, .. })
                        if !matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) =>
                    {
                        tracing::warn!(?message, "cluster: a relay message was refused: {status}");
                        return;
                    }
                    Err(e) if attempt == DELIVERY_ATTEMPTS => {
                        cluster.counters().relay_messages_dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(?message, "cluster: a relay message could not be delivered: {e}");
                    }
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    async fn send_once(&self, message: &Message) -> Result<(), RelayError> {
        let (Message::Cancel { to, .. } | Message::Finish { to, .. }) = message;
        let (mut client, record) = self.client(to).await?;
        let answer = match message {
            Message::Cancel { request, .. } => {
                self.counters().relay_cancels_sent.fetch_add(1, Ordering::Relaxed);
                client.relay_cancel(self.authorized(to, request.clone())?).await.map(drop)
            }
            Message::Finish { request, .. } => {
                self.counters().relay_finishes_sent.fetch_add(1, Ordering::Relaxed);
                client.relay_finish(self.authorized(to, request.clone())?).await.map(drop)
            }
        };
        answer.map_err(|status| RelayError::Call { node: to.clone(), address: record.api_address, status })
    }

    /// Acts on what the relay sink heard: a leg gone on this node (the origin) sends Finish to its node (and its relay
    /// endpoint goes once unused); a relayed
    /// stream's last subscription gone deletes the relayed stream here and sends Cancel; a relayed stream deleted
    /// here by other means (an operator, a Finish already handled) sends Cancel if it was still recorded.
    pub(super) async fn relay_loop(self: Arc<Self>, mut events: mpsc::Receiver<RelayEvent>, api: Arc<Api>) {
        while let Some(event) = events.recv().await {
            match event {
                RelayEvent::Left { session_id, stream_id, subscription_id, endpoint_id: receiver } => {
                    if let Some((node, request_id)) = parse_leg_id(&subscription_id) {
                        if receiver == endpoint_id(node) {
                            self.send_finish(node, &session_id, &stream_id, request_id);
                            api.drop_unused_relay_endpoint(&session_id, node).await;
                        }
                    }
                    // A relayed stream whose last subscription (or leg, on a relaying node) left.
                    if self.incoming(&session_id, &stream_id).is_some() {
                        api.release_relayed(&self, &session_id, &stream_id).await;
                    }
                }
                RelayEvent::Inactive { session_id, stream_id } => {
                    // Each leg's removal sends its Finish (above, as a subscription that left).
                    api.drop_legs(&session_id, &stream_id).await;
                }
                RelayEvent::Unpublished { session_id, stream_id, endpoint_id: publisher } => {
                    if node_of_endpoint(&publisher).is_none() {
                        continue;
                    }
                    if let Some(gone) = self.forget_incoming(&session_id, &stream_id, |_| true) {
                        self.send_cancel(&gone.from, &session_id, &stream_id, gone.request_id);
                    }
                }
            }
        }
    }
}
