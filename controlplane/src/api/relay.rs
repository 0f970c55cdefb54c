//! The cluster's relays in the API (see [`crate::cluster::relay`] for the protocol): on the origin, the leg a Sub adds
//! and a Cancel removes (`RelaySubscribe`, `RelayCancel`); on the receiving node, the relayed stream a subscription
//! makes (Sub sent before the subscription is created) and a Finish or the last subscription's end removes
//! (`RelayFinish`); on every node, the relays of a node that left. All through the same registry plans as a
//! controller's calls, with ids of the cluster's own (`~...`), which no controller call may create
//! ([`refuse_relay_ids`]).
//!
//! Must never hold the registry across a call to another node.

use std::net::SocketAddr;
use std::sync::Arc;

use ringfwd_proto::v1;
use tonic::Status;

use super::{convert, status, Api};
use crate::cluster::relay::{self as relays, node_of_endpoint, parse_leg_id};
use crate::cluster::{Cluster, StreamKey};
use crate::registry::{EndpointSpec, RtcpSpec, StreamSpec, SubscriptionSpec, SubscriptionView};

/// The egress chain of a relay leg: its statistics, and sender reports (with the next node's receiver reports they
/// give the leg's round-trip time and loss); nothing that changes the packets the next node receives.
const LEG_INTERCEPTORS: &[&str] = &["stats", "sender_reports"];

/// INVALID_ARGUMENT naming the first of `fields` (request field, id) that is one of the cluster's relay ids.
pub(crate) fn refuse_relay_ids(fields: &[(&str, &str)]) -> Result<(), Status> {
    for (field, id) in fields {
        crate::registry::validate_new_id(field, id).map_err(status::registry)?;
    }
    Ok(())
}

impl Api {
    /// Whether this node has joined a cluster (only then can it have relays).
    pub(crate) fn in_cluster(&self) -> bool {
        self.cluster.get().is_some()
    }

    fn clustered(&self) -> Result<&Arc<Cluster>, Status> {
        self.cluster.get().ok_or_else(|| Status::failed_precondition("this node has not joined a cluster yet"))
    }

    /// Makes endpoint `~node` of `session_id` send to and take packets from `address`.
    async fn ensure_relay_endpoint(&self, session_id: &str, node: &str, address: SocketAddr) -> Result<(), Status> {
        let endpoint_id = relays::endpoint_id(node);
        let current = self.read(|reg| reg.get_endpoint(session_id, &endpoint_id)).await;
        match current {
            Ok(view) if view.media_address == Some(address) => Ok(()),
            Ok(_) => {
                let plan = |reg: &crate::registry::Registry| {
                    reg.plan_update_endpoint(session_id, &endpoint_id, Some(address), RtcpSpec::default())
                };
                self.apply(plan).await.map(drop)
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                let spec = EndpointSpec {
                    session_id: session_id.to_owned(),
                    endpoint_id,
                    media_address: Some(address),
                    latching: false,
                    rtcp: RtcpSpec::default(),
                };
                self.apply(|reg| reg.plan_create_endpoint(spec)).await.map(drop)
            }
            Err(status) => Err(status),
        }
    }

    /// The legs of stream `stream_id` of `session_id` to node `node`: each one's subscription id and request id.
    async fn legs_to(
        &self,
        session_id: &str,
        stream_id: &str,
        node: &str,
    ) -> Result<Vec<(String, Option<u64>)>, Status> {
        let endpoint_id = relays::endpoint_id(node);
        let subscriptions = self.read(|reg| reg.list_subscriptions(session_id)).await?;
        let legs = subscriptions.into_iter().filter(|s| s.endpoint_id == endpoint_id && s.stream_id == stream_id);
        Ok(legs
            .map(|s| {
                let request_id = parse_leg_id(&s.subscription_id).map(|(_, id)| id);
                (s.subscription_id, request_id)
            })
            .collect())
    }

    /// Deletes endpoint `~node` of `session_id` if no leg sends to it and no relayed stream comes from it.
    pub(crate) async fn drop_unused_relay_endpoint(&self, session_id: &str, node: &str) {
        let endpoint_id = relays::endpoint_id(node);
        let used = self
            .read(|reg| {
                let legs = reg.list_subscriptions(session_id)?.into_iter().any(|s| s.endpoint_id == endpoint_id);
                let streams = reg.list_streams(session_id)?.into_iter().any(|s| s.endpoint_id == endpoint_id);
                Ok(legs || streams)
            })
            .await;
        if used.is_ok_and(|used| !used) {
            let deleted = self.delete_quietly(session_id, |reg| reg.plan_delete_endpoint(session_id, &endpoint_id));
            if let Err(status) = deleted.await {
                tracing::warn!(session_id, endpoint_id, "cluster: deleting an unused relay endpoint failed: {status}");
            }
        }
    }

    /// `RelaySubscribe` (Sub), on the origin or on a relaying node: adds the leg (see the module docs of
    /// [`crate::cluster::relay`]); a relaying node that does not hold the stream relays it in from the origin first.
    pub(crate) async fn relay_subscribe_rpc(
        &self,
        r: v1::RelaySubscribeRequest,
    ) -> Result<v1::RelaySubscribeResponse, Status> {
        let cluster = self.clustered()?;
        crate::registry::validate_new_id("session_id", &r.session_id).map_err(status::registry)?;
        crate::registry::validate_new_id("stream_id", &r.stream_id).map_err(status::registry)?;
        ringfwd_tuning::validate::check_node_id(&r.node_id)
            .map_err(|reason| Status::invalid_argument(format!("invalid node_id: {reason}")))?;
        if r.node_id == cluster.node_id() {
            return Err(Status::invalid_argument("invalid node_id: it is this node's own"));
        }
        let address: SocketAddr = r
            .relay_address
            .parse()
            .map_err(|e| Status::invalid_argument(format!("invalid relay_address {:?}: {e}", r.relay_address)))?;
        if r.request_id == 0 {
            return Err(Status::invalid_argument("invalid request_id: must not be 0"));
        }
        // A stream this node does not hold (asked to relay it): relayed in from its origin directly first.
        self.relay_in_from(&r.session_id, &r.stream_id, false).await?;
        let stream = self.read(|reg| reg.get_stream(&r.session_id, &r.stream_id)).await?;
        self.ensure_relay_endpoint(&r.session_id, &r.node_id, address).await?;
        let endpoint_id = relays::endpoint_id(&r.node_id);
        let leg = relays::leg_id(&r.node_id, r.request_id);
        // A newer Sub of the same node replaces its leg (the older one's removal sends Finish for the older request).
        for (id, _) in self.legs_to(&r.session_id, &r.stream_id, &r.node_id).await?.into_iter().filter(|l| l.0 != leg) {
            self.delete_quietly(&r.session_id, |reg| reg.plan_delete_subscription(&r.session_id, &id)).await?;
        }
        let spec = SubscriptionSpec {
            session_id: r.session_id.clone(),
            subscription_id: leg.clone(),
            stream_id: r.stream_id.clone(),
            endpoint_id,
            out_ssrc: 0,
            payload_type_map: Vec::new(),
            paused: false,
            seq_offset: 0,
            ts_offset: 0,
            interceptors: Some(LEG_INTERCEPTORS.iter().map(|name| (*name).to_owned()).collect()),
            rtx: None,
        };
        if let Err(status) = self.apply(|reg| reg.plan_create_subscription(spec)).await {
            // A copy relayed in for this leg alone does not stay.
            if cluster.incoming(&r.session_id, &r.stream_id).is_some() {
                self.release_relayed(cluster, &r.session_id, &r.stream_id).await;
            }
            return Err(status);
        }
        tracing::info!(session_id = r.session_id, stream_id = r.stream_id, node = r.node_id, leg, "cluster: relay leg");
        Ok(v1::RelaySubscribeResponse { stream: Some(convert::stream(stream)), leg_id: leg })
    }

    /// Deletes the legs of session `session_id` that `pick` picks (each removal sends Finish to its node); a failure is
    /// logged with `why` (what the cluster was doing).
    async fn delete_legs(&self, session_id: &str, pick: impl Fn(&SubscriptionView) -> bool, why: &str) {
        let subscriptions = self.read(|reg| reg.list_subscriptions(session_id)).await.unwrap_or_default();
        let legs = subscriptions.into_iter().filter(|s| parse_leg_id(&s.subscription_id).is_some() && pick(s));
        for leg in legs.collect::<Vec<_>>() {
            let id = leg.subscription_id;
            let deleted = self.delete_quietly(session_id, |reg| reg.plan_delete_subscription(session_id, &id));
            if let Err(status) = deleted.await {
                tracing::warn!(session_id, leg = id, "cluster: removing a leg ({why}) failed: {status}");
            }
        }
    }

    /// Removes every leg of stream `stream_id` of `session_id`: the stream went inactive on its origin
    /// (`cluster.finish_inactive_streams`).
    pub(crate) async fn drop_legs(&self, session_id: &str, stream_id: &str) {
        self.delete_legs(session_id, |s| s.stream_id == stream_id, "an inactive stream").await;
        tracing::info!(session_id, stream_id, "cluster: the stream went inactive; its legs are finished");
    }

    /// The nodes this node sends legs to.
    pub(crate) async fn leg_nodes(&self) -> std::collections::BTreeSet<String> {
        let reg = self.registry.lock().await;
        let mut nodes = std::collections::BTreeSet::new();
        for session in reg.list_sessions() {
            for sub in reg.list_subscriptions(&session.session_id).unwrap_or_default() {
                if let Some((node, _)) = parse_leg_id(&sub.subscription_id) {
                    if sub.endpoint_id == relays::endpoint_id(node) {
                        nodes.insert(node.to_owned());
                    }
                }
            }
        }
        nodes
    }

    /// Removes every leg this node sends to node `node`, in every session, and its relay endpoint once unused: the
    /// node cannot be reached (see [`crate::cluster::paths`]).
    pub(crate) async fn drop_legs_to(&self, node: &str) {
        let endpoint_id = relays::endpoint_id(node);
        for (session_id, _) in self.sessions_here().await {
            self.delete_legs(&session_id, |s| s.endpoint_id == endpoint_id, "a node cut off").await;
            self.drop_unused_relay_endpoint(&session_id, node).await;
        }
    }

    /// `RelayCancel` (Cancel), on the origin: removes the node's legs of the stream (of that request, or all), and
    /// its relay endpoint once it is unused.
    pub(crate) async fn relay_cancel_rpc(&self, r: v1::RelayCancelRequest) -> Result<v1::RelayCancelResponse, Status> {
        self.clustered()?;
        let legs = self.legs_to(&r.session_id, &r.stream_id, &r.node_id).await?;
        let legs: Vec<String> = legs
            .into_iter()
            .filter(|(_, id)| r.request_id == 0 || *id == Some(r.request_id))
            .map(|(leg, _)| leg)
            .collect();
        for id in &legs {
            self.delete_quietly(&r.session_id, |reg| reg.plan_delete_subscription(&r.session_id, id)).await?;
        }
        self.drop_unused_relay_endpoint(&r.session_id, &r.node_id).await;
        Ok(v1::RelayCancelResponse { removed: !legs.is_empty() })
    }

    /// `RelayFinish` (Finish), on the receiving node: deletes the stream relayed here for that request (with the
    /// subscriptions to it), and the relay endpoint once it is unused.
    pub(crate) async fn relay_finish_rpc(&self, r: v1::RelayFinishRequest) -> Result<v1::RelayFinishResponse, Status> {
        let cluster = self.clustered()?;
        let same = |incoming: &relays::Incoming| incoming.from == r.node_id && incoming.request_id == r.request_id;
        if cluster.forget_incoming(&r.session_id, &r.stream_id, same).is_none() {
            return Ok(v1::RelayFinishResponse { removed: false });
        }
        self.drop_relayed_stream(&r.session_id, &r.stream_id, &r.node_id).await;
        Ok(v1::RelayFinishResponse { removed: true })
    }

    async fn drop_relayed_stream(&self, session_id: &str, stream_id: &str, origin: &str) {
        let deleted = self.delete_quietly(session_id, |reg| reg.plan_delete_stream(session_id, stream_id)).await;
        if let Err(status) = deleted {
            tracing::warn!(session_id, stream_id, "cluster: deleting a relayed stream failed: {status}");
        }
        self.drop_unused_relay_endpoint(session_id, origin).await;
    }

    /// Before a subscription is created on (or switched to) stream `stream_id` of `session_id`: when this node does
    /// not publish it and the directory places it on another node, the stream is relayed here (see
    /// [`Api::relay_in_from`]), from its origin directly or, when that fails, through another node. Nothing happens
    /// with the embedded directory, for a stream this node holds, or for one no node publishes (the subscription then
    /// says it is not found).
    pub(crate) async fn relay_in(&self, session_id: &str, stream_id: &str) -> Result<(), Status> {
        self.relay_in_from(session_id, stream_id, true).await
    }

    /// [`Api::relay_in`], with a relayer's choice when `fallback` is false (a Sub another node sent here): from the
    /// origin directly or not at all.
    async fn relay_in_from(&self, session_id: &str, stream_id: &str, fallback: bool) -> Result<(), Status> {
        let Some(cluster) = self.cluster.get() else { return Ok(()) };
        if cluster.backend() == "embedded" {
            return Ok(());
        }
        let here = |reg: &crate::registry::Registry| Ok(reg.get_stream(session_id, stream_id).is_ok());
        if crate::registry::validate_id("stream_id", stream_id).is_err() || self.read(here).await? {
            return Ok(());
        }
        let key = StreamKey { session_id: session_id.to_owned(), stream_id: stream_id.to_owned() };
        let origin = cluster.read(cluster.locate(&key)).await;
        let origin = origin.map_err(|e| Status::unavailable(format!("the cluster directory: {e}")))?;
        let Some(origin) = origin.filter(|node| node != cluster.node_id()) else { return Ok(()) };
        let _one_at_a_time = cluster.subscribing(session_id, stream_id).await;
        if self.read(here).await? {
            return Ok(());
        }
        let request_id = relays::new_request_id();
        let direct = if cluster.unreachable(&origin) {
            None
        } else {
            let attempts = relays::DIRECT_SUB_ATTEMPTS;
            Some(cluster.subscribe_remote(&origin, session_id, stream_id, request_id, attempts).await)
        };
        let why = match direct {
            Some(Ok(answer)) => Ok((origin.clone(), answer)),
            // A refusal (the origin does not publish it, or refused this node's token) is the answer; so is any
            // failure for a relaying node.
            Some(Err(e)) if e.is_refusal() || !fallback => return Err(e.to_status()),
            Some(Err(e)) => Err(e.to_string()),
            None if !fallback => {
                return Err(Status::failed_precondition(format!(
                    "node {origin} publishes {session_id}/{stream_id}, and node {} cannot reach it directly \
                     (cluster.unreachable_nodes)",
                    cluster.node_id()
                )))
            }
            None => Err("cluster.unreachable_nodes names it".to_owned()),
        };
        let (via, (answer, relay_address)) = match why {
            Ok(found) => found,
            Err(why) => self.relay_through_another(cluster, &origin, &key, request_id, why, None).await?,
        };
        let published = async {
            let stream = answer.stream.ok_or_else(|| Status::internal("the relaying node's answer has no stream"))?;
            self.ensure_relay_endpoint(session_id, &via, relay_address).await?;
            let spec = StreamSpec {
                kind: convert::kind(stream.kind)?,
                session_id: session_id.to_owned(),
                stream_id: stream_id.to_owned(),
                endpoint_id: relays::endpoint_id(&via),
                ssrc: stream.ssrc,
                payload_types: stream.payload_types,
                clock_rate_hz: stream.clock_rate_hz,
                interceptors: None,
            };
            self.apply(|reg| reg.plan_create_stream(spec)).await.map(drop)
        };
        if let Err(status) = published.await {
            cluster.send_cancel(&via, session_id, stream_id, request_id);
            return Err(status);
        }
        cluster.relayed_here(session_id, stream_id, &via, &origin, request_id);
        cluster.catch_up_metadata(self, session_id).await;
        tracing::info!(session_id, stream_id, origin, via, "cluster: stream relayed here");
        Ok(())
    }

    /// The direct path to `origin` failed or is ruled out (`direct` says why): asks the other live nodes that this
    /// node may reach (but `besides`), the least loaded first, to relay stream `key`; answers the first that did, with
    /// its answer.
    async fn relay_through_another(
        &self,
        cluster: &Cluster,
        origin: &str,
        key: &StreamKey,
        request_id: u64,
        direct: String,
        besides: Option<&str>,
    ) -> Result<(String, (v1::RelaySubscribeResponse, SocketAddr)), Status> {
        let (session_id, stream_id) = (key.session_id.as_str(), key.stream_id.as_str());
        let nodes = cluster.read(cluster.nodes()).await;
        let mut nodes = nodes.map_err(|e| Status::unavailable(format!("the cluster directory: {e}")))?;
        nodes.retain(|lease| {
            let id = lease.record.id.as_str();
            id != origin && id != cluster.node_id() && !cluster.unreachable(id) && Some(id) != besides
        });
        nodes.sort_by_key(|lease| {
            (lease.record.load.streams + lease.record.load.subscriptions, lease.record.id.clone())
        });
        let mut tried = vec![format!("{origin}: {direct}")];
        for lease in nodes {
            let relayer = lease.record.id;
            match cluster.subscribe_remote(&relayer, session_id, stream_id, request_id, relays::SUB_ATTEMPTS).await {
                Ok(answer) => return Ok((relayer, answer)),
                Err(e) => tried.push(format!("{relayer}: {e}")),
            }
        }
        Err(Status::unavailable(format!(
            "no node could relay {session_id}/{stream_id} from node {origin} here: {}",
            tried.join("; ")
        )))
    }

    /// Moves stream `key`, relayed here, to another path, make before break: Sub along the new path (to its origin
    /// directly when `direct`, else through another node than the one it comes from now, the least loaded first),
    /// then the relayed stream takes its packets from the new path's node (an `UpdateStream` of its publisher: the
    /// data plane overlaps the two sources for a moment, each sequence number forwarded once), then Cancel to the old
    /// path's node. Its subscriptions live on, with continuous numbering. Answers the node it comes from now; an error
    /// leaves it where it was (with the new path's leg cancelled).
    pub(crate) async fn move_relay(
        &self,
        cluster: &Arc<Cluster>,
        key: &StreamKey,
        direct: bool,
    ) -> Result<String, Status> {
        let (session_id, stream_id) = (key.session_id.as_str(), key.stream_id.as_str());
        let _one_at_a_time = cluster.subscribing(session_id, stream_id).await;
        let current = cluster
            .incoming(session_id, stream_id)
            .ok_or_else(|| Status::not_found(format!("{session_id}/{stream_id} is not relayed to this node")))?;
        let origin = current.origin.clone();
        let request_id = relays::new_request_id();
        let (via, (_, relay_address)) = if direct {
            let attempts = relays::DIRECT_SUB_ATTEMPTS;
            let answer = cluster.subscribe_remote(&origin, session_id, stream_id, request_id, attempts).await;
            (origin.clone(), answer.map_err(|e| e.to_status())?)
        } else {
            let why = format!("the path from node {} broke", current.from);
            let besides = Some(current.from.as_str());
            self.relay_through_another(cluster, &origin, key, request_id, why, besides).await?
        };
        let moved = async {
            self.ensure_relay_endpoint(session_id, &via, relay_address).await?;
            let update =
                crate::registry::StreamUpdate { endpoint_id: Some(relays::endpoint_id(&via)), ..Default::default() };
            self.apply(|reg| reg.plan_update_stream(session_id, stream_id, &update)).await.map(drop)
        };
        if let Err(status) = moved.await {
            cluster.send_cancel(&via, session_id, stream_id, request_id);
            return Err(status);
        }
        cluster.relayed_here(session_id, stream_id, &via, &origin, request_id);
        cluster.send_cancel(&current.from, session_id, stream_id, current.request_id);
        self.drop_unused_relay_endpoint(session_id, &current.from).await;
        tracing::info!(session_id, stream_id, origin, from = current.from, to = via, "cluster: relayed stream moved");
        let moved = crate::events::EventKind::RelayMoved {
            stream_id: stream_id.to_owned(),
            origin,
            from: current.from.clone(),
            to: via.clone(),
        };
        self.events().publish(session_id.to_owned(), moved, crate::clock::unix_ms());
        Ok(via)
    }

    /// A subscription left the stream relayed here as `session_id`/`stream_id`: when none is left, the relayed stream
    /// goes and Cancel is sent to its origin.
    pub(crate) async fn release_relayed(&self, cluster: &Arc<Cluster>, session_id: &str, stream_id: &str) {
        let _one_at_a_time = cluster.subscribing(session_id, stream_id).await;
        let remaining = self.read(|reg| reg.get_stream(session_id, stream_id).map(|s| s.subscriptions)).await;
        if remaining.is_ok_and(|count| count > 0) {
            return;
        }
        let Some(gone) = cluster.forget_incoming(session_id, stream_id, |_| true) else { return };
        self.drop_relayed_stream(session_id, stream_id, &gone.from).await;
        cluster.send_cancel(&gone.from, session_id, stream_id, gone.request_id);
    }

    /// `ListRelays`: the legs this node sends (subscriptions named `~<node>.<request id>`) and the streams relayed to
    /// it (published by a relay endpoint), with their statistics.
    pub(crate) async fn list_relays_rpc(&self) -> Result<v1::ListRelaysResponse, Status> {
        use ringfwd_dataplane::control::StatsKey;
        let mut legs = Vec::new();
        let mut relayed = Vec::new();
        {
            let reg = self.registry.lock().await;
            for session in reg.list_sessions() {
                let session_id = session.session_id;
                for stream in reg.list_streams(&session_id).map_err(status::registry)? {
                    let (key, subscriptions) =
                        reg.stats_keys(&session_id, &stream.stream_id).map_err(status::registry)?;
                    if let Some(node) = node_of_endpoint(&stream.endpoint_id) {
                        let entry =
                            (session_id.clone(), stream.stream_id.clone(), node.to_owned(), stream.subscriptions);
                        relayed.push((entry, StatsKey::Stream(key)));
                    }
                    for (leg_id, id) in subscriptions {
                        if let Some((node, _)) = parse_leg_id(&leg_id) {
                            let entry = (session_id.clone(), stream.stream_id.clone(), node.to_owned(), leg_id.clone());
                            legs.push((entry, StatsKey::Subscription(id)));
                        }
                    }
                }
            }
        }
        let now = std::time::Instant::now();
        let store = self.stats.lock().map_err(|_| Status::internal("statistics store poisoned"))?;
        let sample = |key| store.get(key).map(|entry| convert::stats_sample(&entry, now));
        Ok(v1::ListRelaysResponse {
            legs: legs
                .into_iter()
                .map(|((session_id, stream_id, node_id, leg_id), key)| v1::RelayLeg {
                    egress: sample(key),
                    session_id,
                    stream_id,
                    node_id,
                    leg_id,
                })
                .collect(),
            relayed: relayed
                .into_iter()
                .map(|((session_id, stream_id, node_id, subscriptions), key)| v1::RelayedStream {
                    ingress: sample(key),
                    session_id,
                    stream_id,
                    node_id,
                    subscriptions,
                })
                .collect(),
        })
    }

    /// Node `node` left the cluster: the streams it relayed here from another origin move to another path (the
    /// origin directly, else another relaying node) when one can be made; then every session's endpoint `~node`
    /// goes, and with it the legs to it and the streams still relayed from it (with their subscriptions here).
    pub(crate) async fn drop_relays_of(&self, cluster: &Arc<Cluster>, node: &str) {
        let relayed = cluster.all_incoming().into_iter().filter(|(_, i)| i.from == node && i.origin != node);
        for (key, incoming) in relayed.collect::<Vec<_>>() {
            let direct = !cluster.unreachable(&incoming.origin);
            // The origin directly first (unless ruled out), else another relaying node.
            let moved = match self.move_relay(cluster, &key, direct).await {
                Err(_) if direct => self.move_relay(cluster, &key, false).await,
                moved => moved,
            };
            match moved {
                Ok(to) => tracing::info!(?key, from = node, to, "cluster: a relayed stream left a node that left"),
                Err(status) => tracing::warn!(
                    ?key,
                    from = node,
                    "cluster: a relayed stream ends with its relaying node: {}",
                    status.message()
                ),
            }
        }
        cluster.forget_incoming_from(node);
        let endpoint_id = relays::endpoint_id(node);
        for (session_id, _) in self.sessions_here().await {
            let deleted = self.delete_quietly(&session_id, |reg| reg.plan_delete_endpoint(&session_id, &endpoint_id));
            if let Err(status) = deleted.await {
                tracing::warn!(session_id, node, "cluster: deleting the relays of a node that left failed: {status}");
            }
        }
    }

    /// Streams published here from a relay endpoint that the relays do not know (kept across a restart): Sub is sent
    /// again to their origin; one whose origin does not take it is deleted.
    pub(crate) async fn resume_relays(&self, cluster: &Arc<Cluster>) {
        let mut relayed = Vec::new();
        for (session_id, _) in self.sessions_here().await {
            let streams = self.read(|reg| reg.list_streams(&session_id)).await.unwrap_or_default();
            for stream in streams {
                if let Some(origin) = node_of_endpoint(&stream.endpoint_id) {
                    if cluster.incoming(&session_id, &stream.stream_id).is_none() {
                        relayed.push((session_id.clone(), stream.stream_id.clone(), origin.to_owned()));
                    }
                }
            }
        }
        for (session_id, stream_id, origin) in relayed {
            let request_id = relays::new_request_id();
            match cluster.subscribe_remote(&origin, &session_id, &stream_id, request_id, relays::SUB_ATTEMPTS).await {
                // Where it is published: the paths' check moves it to the direct path if it came through a relayer.
                Ok(_) => {
                    let key = StreamKey { session_id: session_id.clone(), stream_id: stream_id.clone() };
                    let published_on = cluster.read(cluster.locate(&key)).await.ok().flatten();
                    let published_on = published_on.unwrap_or_else(|| origin.clone());
                    cluster.relayed_here(&session_id, &stream_id, &origin, &published_on, request_id);
                }
                Err(e) => {
                    tracing::warn!(session_id, stream_id, origin, "cluster: a relay kept across a restart ends: {e}");
                    self.drop_relayed_stream(&session_id, &stream_id, &origin).await;
                }
            }
        }
    }
}
