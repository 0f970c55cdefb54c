//! The `ringfwd.v1.Ringfwd` service: one method per RPC, each translate → registry → translate. Calls reach it
//! only through the token check of [`super::auth`], which wraps the whole service.
//! The metadata RPCs delegate to [`super::metadata`], WatchEvents to [`super::events`].

use ringfwd_dataplane::control::StatsKey;
use ringfwd_proto::v1::{self, ringfwd_server::Ringfwd};
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::metadata::{Member, ObjectRef};
use crate::registry::{Outcome, View};

type Reply<T> = Result<Response<T>, Status>;

/// The resource an outcome describes.
fn view(outcome: Outcome) -> Result<View, Status> {
    match outcome {
        Outcome::Created(v) | Outcome::Existing(v) | Outcome::Updated(v) => Ok(v),
        Outcome::Deleted(_) => Err(Status::internal("a create or update answered with a deletion")),
    }
}

fn deleted(outcome: Outcome) -> Reply<v1::DeleteResponse> {
    match outcome {
        Outcome::Deleted(counts) => Ok(Response::new(convert::deleted(counts))),
        _ => Err(Status::internal("a delete answered with something else")),
    }
}

fn mismatch() -> Status {
    Status::internal("the registry answered with another kind of resource")
}

impl Api {
    fn send_to(&self) -> &[std::net::SocketAddr] {
        &self.node.advertise
    }

    fn endpoint_reply(&self, v: View) -> Reply<v1::Endpoint> {
        match v {
            View::Endpoint(e) => Ok(Response::new(convert::endpoint(e, self.send_to(), &self.node.advertise_rtcp))),
            _ => Err(mismatch()),
        }
    }
}

fn session_reply(v: View) -> Reply<v1::Session> {
    match v {
        View::Session(s) => Ok(Response::new(convert::session(s))),
        _ => Err(mismatch()),
    }
}

fn stream_reply(v: View) -> Reply<v1::Stream> {
    match v {
        View::Stream(s) => Ok(Response::new(convert::stream(s))),
        _ => Err(mismatch()),
    }
}

fn subscription_reply(v: View) -> Reply<v1::Subscription> {
    match v {
        View::Subscription(s) => Ok(Response::new(convert::subscription(s))),
        _ => Err(mismatch()),
    }
}

#[tonic::async_trait]
impl Ringfwd for Api {
    async fn create_session(&self, request: Request<v1::CreateSessionRequest>) -> Reply<v1::Session> {
        session_reply(view(self.create_session_rpc(request.into_inner()).await?)?)
    }

    async fn get_session(&self, request: Request<v1::GetSessionRequest>) -> Reply<v1::Session> {
        let r = request.into_inner();
        Ok(Response::new(convert::session(self.read(|reg| reg.get_session(&r.session_id)).await?)))
    }

    async fn list_sessions(&self, _request: Request<v1::ListSessionsRequest>) -> Reply<v1::ListSessionsResponse> {
        let sessions = self.read(|reg| Ok(reg.list_sessions())).await?;
        Ok(Response::new(v1::ListSessionsResponse { sessions: sessions.into_iter().map(convert::session).collect() }))
    }

    async fn delete_session(&self, request: Request<v1::DeleteSessionRequest>) -> Reply<v1::DeleteResponse> {
        let r = request.into_inner();
        match self.delete_session_rpc(&r.session_id).await? {
            Some(outcome) => deleted(outcome),
            // Deleted from the directory; this node's copy had gone already.
            None => Ok(Response::new(v1::DeleteResponse::default())),
        }
    }

    async fn create_endpoint(&self, request: Request<v1::CreateEndpointRequest>) -> Reply<v1::Endpoint> {
        let mut r = request.into_inner();
        let metadata = std::mem::take(&mut r.metadata);
        let spec = convert::endpoint_spec(r)?;
        super::relay::refuse_relay_ids(&[("endpoint_id", &spec.endpoint_id)])?;
        self.fetch_session(&spec.session_id).await;
        let object =
            ObjectRef { session_id: spec.session_id.clone(), member: Member::Endpoint(spec.endpoint_id.clone()) };
        self.endpoint_reply(view(self.apply_create(object, metadata, |reg| reg.plan_create_endpoint(spec)).await?)?)
    }

    async fn get_endpoint(&self, request: Request<v1::GetEndpointRequest>) -> Reply<v1::Endpoint> {
        let r = request.into_inner();
        let v = self.read(|reg| reg.get_endpoint(&r.session_id, &r.endpoint_id)).await?;
        Ok(Response::new(convert::endpoint(v, self.send_to(), &self.node.advertise_rtcp)))
    }

    async fn list_endpoints(&self, request: Request<v1::ListEndpointsRequest>) -> Reply<v1::ListEndpointsResponse> {
        let r = request.into_inner();
        let list = self.read(|reg| reg.list_endpoints(&r.session_id)).await?;
        let endpoints =
            list.into_iter().map(|e| convert::endpoint(e, self.send_to(), &self.node.advertise_rtcp)).collect();
        Ok(Response::new(v1::ListEndpointsResponse { endpoints }))
    }

    async fn delete_endpoint(&self, request: Request<v1::DeleteEndpointRequest>) -> Reply<v1::DeleteResponse> {
        let r = request.into_inner();
        deleted(self.apply_delete(&r.session_id, |reg| reg.plan_delete_endpoint(&r.session_id, &r.endpoint_id)).await?)
    }

    async fn create_stream(&self, request: Request<v1::CreateStreamRequest>) -> Reply<v1::Stream> {
        let mut r = request.into_inner();
        let metadata = std::mem::take(&mut r.metadata);
        let spec = convert::stream_spec(r)?;
        super::relay::refuse_relay_ids(&[("stream_id", &spec.stream_id), ("endpoint_id", &spec.endpoint_id)])?;
        let object = ObjectRef { session_id: spec.session_id.clone(), member: Member::Stream(spec.stream_id.clone()) };
        stream_reply(view(self.apply_create(object, metadata, |reg| reg.plan_create_stream(spec)).await?)?)
    }

    async fn get_stream(&self, request: Request<v1::GetStreamRequest>) -> Reply<v1::Stream> {
        let r = request.into_inner();
        Ok(Response::new(convert::stream(self.read(|reg| reg.get_stream(&r.session_id, &r.stream_id)).await?)))
    }

    async fn get_stream_stats(&self, request: Request<v1::GetStreamStatsRequest>) -> Reply<v1::StreamStats> {
        let r = request.into_inner();
        let (stream, subscriptions) = self.read(|reg| reg.stats_keys(&r.session_id, &r.stream_id)).await?;
        let now = std::time::Instant::now();
        let store = self.stats.lock().map_err(|_| Status::internal("statistics store poisoned"))?;
        let sample = |key| store.get(key).map(|entry| convert::stats_sample(&entry, now));
        let reply = v1::StreamStats {
            ingress: sample(StatsKey::Stream(stream)),
            subscriptions: subscriptions
                .into_iter()
                .map(|(subscription_id, id)| v1::SubscriptionStats {
                    egress: sample(StatsKey::Subscription(id)),
                    subscription_id,
                })
                .collect(),
            session_id: r.session_id,
            stream_id: r.stream_id,
        };
        Ok(Response::new(reply))
    }

    async fn get_session_stats(&self, request: Request<v1::GetSessionStatsRequest>) -> Reply<v1::AggregateStats> {
        let r = request.into_inner();
        let keys = self.read(|reg| reg.aggregate_keys(&r.session_id, None)).await?;
        Ok(Response::new(self.aggregate_stats(keys)?))
    }

    async fn get_endpoint_stats(&self, request: Request<v1::GetEndpointStatsRequest>) -> Reply<v1::AggregateStats> {
        let r = request.into_inner();
        let keys = self.read(|reg| reg.aggregate_keys(&r.session_id, Some(&r.endpoint_id))).await?;
        Ok(Response::new(self.aggregate_stats(keys)?))
    }

    async fn list_streams(&self, request: Request<v1::ListStreamsRequest>) -> Reply<v1::ListStreamsResponse> {
        let r = request.into_inner();
        let list = self.read(|reg| reg.list_streams(&r.session_id)).await?;
        Ok(Response::new(v1::ListStreamsResponse { streams: list.into_iter().map(convert::stream).collect() }))
    }

    async fn delete_stream(&self, request: Request<v1::DeleteStreamRequest>) -> Reply<v1::DeleteResponse> {
        let r = request.into_inner();
        deleted(self.apply_delete(&r.session_id, |reg| reg.plan_delete_stream(&r.session_id, &r.stream_id)).await?)
    }

    async fn create_subscription(&self, request: Request<v1::CreateSubscriptionRequest>) -> Reply<v1::Subscription> {
        let spec = convert::subscription_spec(request.into_inner());
        let ids = [("subscription_id", spec.subscription_id.as_str()), ("endpoint_id", spec.endpoint_id.as_str())];
        super::relay::refuse_relay_ids(&ids)?;
        self.relay_in(&spec.session_id, &spec.stream_id).await?;
        subscription_reply(view(self.apply(|reg| reg.plan_create_subscription(spec)).await?)?)
    }

    async fn get_subscription(&self, request: Request<v1::GetSubscriptionRequest>) -> Reply<v1::Subscription> {
        let r = request.into_inner();
        let v = self.read(|reg| reg.get_subscription(&r.session_id, &r.subscription_id)).await?;
        Ok(Response::new(convert::subscription(v)))
    }

    async fn list_subscriptions(
        &self,
        request: Request<v1::ListSubscriptionsRequest>,
    ) -> Reply<v1::ListSubscriptionsResponse> {
        let r = request.into_inner();
        let list = self.read(|reg| reg.list_subscriptions(&r.session_id)).await?;
        let subscriptions = list.into_iter().map(convert::subscription).collect();
        Ok(Response::new(v1::ListSubscriptionsResponse { subscriptions }))
    }

    async fn update_endpoint(&self, request: Request<v1::UpdateEndpointRequest>) -> Reply<v1::Endpoint> {
        let r = request.into_inner();
        let address = convert::media_address(&r.media_address)?;
        let rtcp = convert::rtcp(&r.rtcp_address, r.rtcp_port_plus_one)?;
        let outcome = self.apply(|reg| reg.plan_update_endpoint(&r.session_id, &r.endpoint_id, address, rtcp)).await?;
        self.endpoint_reply(view(outcome)?)
    }

    async fn update_stream(&self, request: Request<v1::UpdateStreamRequest>) -> Reply<v1::Stream> {
        let r = request.into_inner();
        let update = convert::stream_update(&r);
        let outcome = self.apply(|reg| reg.plan_update_stream(&r.session_id, &r.stream_id, &update)).await?;
        stream_reply(view(outcome)?)
    }

    async fn update_subscription(&self, request: Request<v1::UpdateSubscriptionRequest>) -> Reply<v1::Subscription> {
        let r = request.into_inner();
        if let Some(stream_id) = &r.stream_id {
            self.relay_in(&r.session_id, stream_id).await?;
        }
        let update = convert::subscription_update(&r);
        let outcome = self.apply(|reg| reg.plan_update(&r.session_id, &r.subscription_id, &update)).await?;
        subscription_reply(view(outcome)?)
    }

    async fn delete_subscription(&self, request: Request<v1::DeleteSubscriptionRequest>) -> Reply<v1::DeleteResponse> {
        let r = request.into_inner();
        deleted(self.apply(|reg| reg.plan_delete_subscription(&r.session_id, &r.subscription_id)).await?)
    }

    async fn relay_subscribe(&self, request: Request<v1::RelaySubscribeRequest>) -> Reply<v1::RelaySubscribeResponse> {
        Ok(Response::new(self.relay_subscribe_rpc(request.into_inner()).await?))
    }

    async fn list_relays(&self, _request: Request<v1::ListRelaysRequest>) -> Reply<v1::ListRelaysResponse> {
        Ok(Response::new(self.list_relays_rpc().await?))
    }

    async fn relay_cancel(&self, request: Request<v1::RelayCancelRequest>) -> Reply<v1::RelayCancelResponse> {
        Ok(Response::new(self.relay_cancel_rpc(request.into_inner()).await?))
    }

    async fn relay_finish(&self, request: Request<v1::RelayFinishRequest>) -> Reply<v1::RelayFinishResponse> {
        Ok(Response::new(self.relay_finish_rpc(request.into_inner()).await?))
    }

    async fn get_node_info(&self, _request: Request<v1::GetNodeInfoRequest>) -> Reply<v1::NodeInfo> {
        let (limits, usage, draining) = {
            let reg = self.registry.lock().await;
            (*reg.limits(), reg.usage(), reg.draining())
        };
        let workers = self
            .node
            .workers
            .iter()
            .map(|w| v1::Worker {
                index: w.index as u32,
                core: w.core as u32,
                counters: w.counters.snapshot().iter().map(|(k, v)| (k.to_string(), v)).collect(),
            })
            .collect();
        Ok(Response::new(v1::NodeInfo {
            version: self.node.version.to_string(),
            driver: self.node.driver.to_string(),
            workers,
            limits: Some(v1::Limits {
                max_sessions: limits.max_sessions,
                max_endpoints: limits.max_endpoints,
                max_streams: limits.max_streams,
                max_subscriptions_per_stream: limits.max_subscriptions_per_stream,
                max_subscriptions: limits.max_subscriptions,
                max_packets_per_second_per_source: self.node.max_packets_per_second_per_source,
            }),
            usage: Some(v1::Usage {
                sessions: usage.sessions,
                endpoints: usage.endpoints,
                streams: usage.streams,
                subscriptions: usage.subscriptions,
            }),
            draining,
            media_addresses: self.node.media.iter().map(ToString::to_string).collect(),
            advertise_addresses: self.node.advertise.iter().map(ToString::to_string).collect(),
            rtcp_addresses: self.node.rtcp.iter().map(ToString::to_string).collect(),
            boot_id: self.node.boot_id,
            started_unix_ms: self.node.started_unix_ms,
            plugins: crate::plugins::current(&self.node.plugins).describe(),
            ..self.cluster_info().await
        }))
    }

    async fn locate_stream(&self, request: Request<v1::LocateStreamRequest>) -> Reply<v1::StreamLocation> {
        self.locate_stream_rpc(request.into_inner()).await.map(Response::new)
    }

    async fn set_metadata(&self, request: Request<v1::SetMetadataRequest>) -> Reply<v1::MetadataWriteResponse> {
        self.set_metadata_rpc(request).await
    }

    async fn delete_metadata(&self, request: Request<v1::DeleteMetadataRequest>) -> Reply<v1::MetadataWriteResponse> {
        self.delete_metadata_rpc(request).await
    }

    async fn get_metadata(&self, request: Request<v1::GetMetadataRequest>) -> Reply<v1::GetMetadataResponse> {
        self.get_metadata_rpc(request).await
    }

    type WatchMetadataStream = super::metadata::WatchStream;

    async fn watch_metadata(&self, request: Request<v1::WatchMetadataRequest>) -> Reply<Self::WatchMetadataStream> {
        self.watch_metadata_rpc(request).await
    }

    type WatchEventsStream = super::events::EventStream;

    async fn watch_events(&self, request: Request<v1::WatchEventsRequest>) -> Reply<Self::WatchEventsStream> {
        self.watch_events_rpc(request).await
    }

    async fn load_plugin(&self, request: Request<v1::LoadPluginRequest>) -> Reply<v1::Plugin> {
        Ok(Response::new(self.load_plugin_rpc(request.into_inner()).await?))
    }

    async fn unload_plugin(&self, request: Request<v1::UnloadPluginRequest>) -> Reply<v1::UnloadPluginResponse> {
        Ok(Response::new(self.unload_plugin_rpc(&request.into_inner().name).await?))
    }

    async fn drain(&self, request: Request<v1::DrainRequest>) -> Reply<v1::DrainResponse> {
        let cancel = request.into_inner().cancel;
        let mut reg = self.registry.lock().await;
        reg.set_draining(!cancel);
        // Under the registry lock, so that the health status follows the order of the Drain calls.
        self.health.publish(reg.draining()).await;
        Ok(Response::new(v1::DrainResponse { draining: reg.draining(), sessions_remaining: reg.usage().sessions }))
    }
}

impl Api {
    /// The aggregate of the latest statistics of `streams` and `subscriptions`.
    fn aggregate_stats(
        &self,
        (streams, subscriptions): (
            Vec<ringfwd_dataplane::control::StreamId>,
            Vec<ringfwd_dataplane::control::SubscriptionId>,
        ),
    ) -> Result<v1::AggregateStats, Status> {
        let now = std::time::Instant::now();
        let store = self.stats.lock().map_err(|_| Status::internal("statistics store poisoned"))?;
        // The figures added up (the age is the oldest part's), and how many parts had any.
        let aggregate = |keys: Vec<StatsKey>| {
            let entries: Vec<_> = keys.into_iter().filter_map(|key| store.get(key)).collect();
            let merged = entries.iter().copied().reduce(|mut total, entry| {
                total.snapshot.merge(&entry.snapshot);
                total.at = total.at.min(entry.at);
                total
            });
            (merged.map(|entry| convert::stats_sample(&entry, now)), entries.len() as u32)
        };
        let (published, streams) = aggregate(streams.into_iter().map(StatsKey::Stream).collect());
        let (received, subscriptions) = aggregate(subscriptions.into_iter().map(StatsKey::Subscription).collect());
        Ok(v1::AggregateStats { published, received, streams, subscriptions })
    }
}
