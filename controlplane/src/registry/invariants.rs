//! The registry's consistency rules, checked from scratch.
//!
//! Owns [`Registry::check_invariants`]: it recounts everything the registry keeps incrementally and checks
//! every cross-reference and limit. For tests and debugging; it must never be on a request path that
//! matters for latency (it walks the whole registry).

use std::collections::{BTreeMap, BTreeSet};

use super::create::FeedbackRoute;
use super::model::{count, Usage, WorkerLoad};
use super::validate;
use super::Registry;

impl Registry {
    /// Checks that the counts match the contents, that every subscription's stream and endpoint exist in
    /// its session (and are not the same endpoint), that destinations and workers are what they must be (a stream
    /// off its SSRC's owner has its alias there),
    /// that every limit holds, and that SSRCs and data-plane ids are unique. The first violation found,
    /// described.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut usage = Usage { sessions: count(self.sessions.len()), ..Usage::default() };
        let mut loads = vec![WorkerLoad::default(); self.loads.len()];
        let mut ssrcs = BTreeMap::new();
        let mut stream_ids = BTreeSet::new();
        let mut subscription_ids = BTreeSet::new();
        for (session_id, session) in &self.sessions {
            usage.endpoints += count(session.endpoints.len());
            usage.streams += count(session.streams.len());
            usage.subscriptions += count(session.subscriptions.len());
            let mut per_stream: BTreeMap<&str, u32> = BTreeMap::new();
            for (id, sub) in &session.subscriptions {
                let at = format!("subscription {session_id}/{id}");
                let stream =
                    session.streams.get(&sub.stream_id).ok_or(format!("{at}: stream {} missing", sub.stream_id))?;
                let endpoint = session
                    .endpoints
                    .get(&sub.endpoint_id)
                    .ok_or(format!("{at}: endpoint {} missing", sub.endpoint_id))?;
                if stream.endpoint_id == sub.endpoint_id {
                    return Err(format!("{at}: receives its own stream"));
                }
                if endpoint.latched_address.or(endpoint.media_address) != sub.destination {
                    return Err(format!("{at}: destination is not its endpoint's (latched, else media) address"));
                }
                let socket = sub.destination.map_or(Some(0), |d| validate::socket_for(d, &self.media));
                if socket != Some(sub.socket) {
                    return Err(format!("{at}: wrong sending socket {}", sub.socket));
                }
                if sub.worker != stream.worker {
                    return Err(format!("{at}: on worker {}, its stream on {}", sub.worker, stream.worker));
                }
                let load = loads.get_mut(sub.worker).ok_or(format!("{at}: no worker {}", sub.worker))?;
                load.subscriptions += 1;
                if let Some(route) = FeedbackRoute::of(sub, loads.len()) {
                    loads[route.worker].feedback_routes += 1;
                }
                *per_stream.entry(&sub.stream_id).or_default() += 1;
                if !subscription_ids.insert(sub.data_plane_id) {
                    return Err(format!("{at}: data-plane id {} reused", sub.data_plane_id));
                }
            }
            for (id, stream) in &session.streams {
                let at = format!("stream {session_id}/{id}");
                if !session.endpoints.contains_key(&stream.endpoint_id) {
                    return Err(format!("{at}: publisher {} missing", stream.endpoint_id));
                }
                // Off its SSRC's owner (with an alias there) only once it learned its SSRC and took another in place.
                let alias = stream.alias(self.workers);
                if let Some(owner) = alias.filter(|_| !stream.ssrc_known) {
                    let worker = stream.worker;
                    return Err(format!(
                        "{at}: on worker {worker}, its SSRC's owner {owner}, before it learned an SSRC"
                    ));
                }
                let load = loads.get_mut(stream.worker).ok_or(format!("{at}: no worker {}", stream.worker))?;
                load.streams += 1;
                if let Some(owner) = alias {
                    loads[owner].aliases += 1;
                }
                let subscribers = per_stream.get(id.as_str()).copied().unwrap_or(0);
                if stream.subscriptions != subscribers {
                    return Err(format!("{at}: counts {} subscriptions, has {subscribers}", stream.subscriptions));
                }
                if subscribers > self.limits.max_subscriptions_per_stream {
                    return Err(format!("{at}: {subscribers} subscriptions, over the limit"));
                }
                if let Some(other) = ssrcs.insert(stream.ssrc, (session_id.clone(), id.clone())) {
                    return Err(format!("{at}: ssrc {} also used by {}/{}", stream.ssrc, other.0, other.1));
                }
                if !stream_ids.insert(stream.data_plane_id) {
                    return Err(format!("{at}: data-plane id {} reused", stream.data_plane_id));
                }
            }
        }
        if usage != self.usage {
            return Err(format!("usage {:?} but the registry holds {usage:?}", self.usage));
        }
        if loads != self.loads {
            return Err(format!("worker loads {:?} but the registry holds {loads:?}", self.loads));
        }
        if ssrcs != self.ssrcs {
            return Err("the SSRC index does not match the streams".to_owned());
        }
        let limits = &self.limits;
        let totals = [
            (usage.sessions, limits.max_sessions, "sessions"),
            (usage.endpoints, limits.max_endpoints, "endpoints"),
            (usage.streams, limits.max_streams, "streams"),
            (usage.subscriptions, limits.max_subscriptions, "subscriptions"),
        ];
        if let Some((used, max, what)) = totals.iter().find(|(used, max, _)| used > max) {
            return Err(format!("{used} {what}, over the limit {max}"));
        }
        for (worker, load) in loads.iter().enumerate() {
            if load.streams > limits.max_streams_per_worker
                || load.aliases > limits.max_streams_per_worker
                || load.subscriptions > limits.max_subscriptions_per_worker
                || load.feedback_routes > limits.max_subscriptions_per_worker
            {
                return Err(format!("worker {worker} holds {load:?}, over its limits"));
            }
        }
        let next_stream = self.next_stream_id.load(std::sync::atomic::Ordering::Relaxed);
        let next_subscription = self.next_subscription_id.load(std::sync::atomic::Ordering::Relaxed);
        if stream_ids.last().is_some_and(|id| id.0 >= next_stream)
            || subscription_ids.last().is_some_and(|id| id.0 >= next_subscription)
        {
            return Err("a data-plane id at or past the next one to allocate".to_owned());
        }
        Ok(())
    }
}
