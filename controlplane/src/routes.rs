//! The config's static sessions, judged and created by the registry exactly as a controller's creates are.
//!
//! Owns the translation of `[[sessions]]` into registry creates (the session, then its endpoints, streams and
//! subscriptions, in config order, each with its config path), the ids static subscriptions get, and the two ways
//! they run: [`check`], a dry run on a registry of its own that no worker follows (`ringfwd --check-config`, and
//! the daemon before it binds anything), and [`install`], through the API at start-up. Both refuse what the
//! registry refuses, with the registry's reason (the gRPC status message the API would answer) after the config
//! path, and a declaration the registry finds already created (the config declares it twice). This module must
//! never judge a session itself: every rule is the registry's, so the config and the API cannot drift apart.
//! Static sessions are ordinary sessions afterwards: listed, counted against the admission limits, deletable
//! through the API.

use std::collections::HashSet;

use ringfwd_tuning::Config;
use tonic::Status;

use crate::api::{status, Api};
use crate::registry::{
    Chains, EndpointSpec, Outcome, PayloadTypeMapping, Plan, Registry, RegistryError, StreamSpec, SubscriptionSpec,
    MAX_ID_BYTES,
};

/// A static session the registry or a worker refused.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct RouteError {
    /// Config path, e.g. `sessions[0].subscriptions[1]`.
    pub origin: String,
    /// The status class (the one the API answers the same request with).
    pub code: tonic::Code,
    /// Why: the status message the API answers the same request with.
    pub message: String,
}

fn at(origin: &str) -> impl FnOnce(Status) -> RouteError + '_ {
    move |s| RouteError { origin: origin.to_owned(), code: s.code(), message: s.message().to_string() }
}

/// One create a config entry asks the registry for.
#[derive(Debug, Clone)]
enum Create {
    Session(String),
    Endpoint(EndpointSpec),
    Stream(StreamSpec),
    Subscription(SubscriptionSpec),
}

impl Create {
    fn plan(&self, registry: &Registry, now_unix_ms: u64) -> Result<Plan, RegistryError> {
        match self {
            Create::Session(id) => registry.plan_create_session(id, now_unix_ms),
            Create::Endpoint(spec) => registry.plan_create_endpoint(spec.clone()),
            Create::Stream(spec) => registry.plan_create_stream(spec.clone()),
            Create::Subscription(spec) => registry.plan_create_subscription(spec.clone()),
        }
    }

    /// What it creates: kind and id.
    fn names(&self) -> (&'static str, &str) {
        match self {
            Create::Session(id) => ("session", id),
            Create::Endpoint(spec) => ("endpoint", &spec.endpoint_id),
            Create::Stream(spec) => ("stream", &spec.stream_id),
            Create::Subscription(spec) => ("subscription", &spec.subscription_id),
        }
    }

    /// `Ok` when the registry created it. Every declaration of the config creates something new: one that the
    /// registry found already created with the same spec (the idempotent create a controller's retry gets) is
    /// declared twice.
    fn created(&self, origin: &str, outcome: &Outcome) -> Result<(), RouteError> {
        if !matches!(outcome, Outcome::Existing(_)) {
            return Ok(());
        }
        let (kind, id) = self.names();
        Err(RouteError {
            origin: origin.to_owned(),
            code: tonic::Code::AlreadyExists,
            message: format!("{kind} {id} already exists: the config declares it twice"),
        })
    }
}

/// Every create `config`'s static sessions ask for, with its config path, in the order they run.
fn creates(config: &Config) -> Vec<(String, Create)> {
    let mut all = Vec::new();
    for (si, session) in config.sessions.iter().enumerate() {
        let sid = session.id.clone();
        all.push((format!("sessions[{si}]"), Create::Session(sid.clone())));
        for (i, e) in session.endpoints.iter().enumerate() {
            let spec = EndpointSpec {
                session_id: sid.clone(),
                endpoint_id: e.id.clone(),
                media_address: e.address,
                latching: e.latching,
                rtcp: Default::default(),
            };
            all.push((format!("sessions[{si}].endpoints[{i}]"), Create::Endpoint(spec)));
        }
        for (i, s) in session.streams.iter().enumerate() {
            let spec = StreamSpec {
                session_id: sid.clone(),
                stream_id: s.id.clone(),
                endpoint_id: s.endpoint.clone(),
                ssrc: s.ssrc,
                kind: Some(s.kind),
                payload_types: Vec::new(),
                clock_rate_hz: s.clock_rate_hz(),
                interceptors: None,
            };
            all.push((format!("sessions[{si}].streams[{i}]"), Create::Stream(spec)));
        }
        let mut taken = HashSet::new();
        for (i, sub) in session.subscriptions.iter().enumerate() {
            let subscription_id = static_subscription_id(si, i, &sub.stream, &sub.endpoint, &taken);
            taken.insert(subscription_id.clone());
            let spec = SubscriptionSpec {
                session_id: sid.clone(),
                subscription_id,
                stream_id: sub.stream.clone(),
                endpoint_id: sub.endpoint.clone(),
                out_ssrc: sub.out_ssrc.unwrap_or(0),
                payload_type_map: sub
                    .payload_type_map
                    .iter()
                    .map(|&[from, to]| PayloadTypeMapping { from: u32::from(from), to: u32::from(to) })
                    .collect(),
                paused: false,
                seq_offset: sub.seq_offset,
                ts_offset: sub.ts_offset,
                interceptors: None,
                rtx: None,
            };
            all.push((format!("sessions[{si}].subscriptions[{i}]"), Create::Subscription(spec)));
        }
    }
    all
}

/// Runs `config`'s static sessions through a registry of their own with `workers` workers and the config's media
/// addresses, no worker following it (a dry run: [`Registry::dry_run`]); returns how many resources they create.
/// Refuses exactly what [`install`] refuses, with the same error, so `ringfwd --check-config` and the daemon's
/// start agree.
pub fn check(config: &Config, workers: usize, chains: &Chains) -> Result<usize, RouteError> {
    let mut registry = Registry::from_config(config, config.media.addresses.clone(), workers, chains.clone());
    let creates = creates(config);
    for (origin, create) in &creates {
        let outcome = registry.dry_run(|r| create.plan(r, 0)).map_err(|e| at(origin)(status::registry(e)))?;
        create.created(origin, &outcome)?;
    }
    Ok(creates.len())
}

/// Creates every static session through `api`, as a controller's requests would; returns how many resources
/// were created.
pub async fn install(api: &Api, config: &Config, now_unix_ms: u64) -> Result<usize, RouteError> {
    let creates = creates(config);
    for (origin, create) in &creates {
        let outcome = api.apply(|r| create.plan(r, now_unix_ms)).await.map_err(at(origin))?;
        create.created(origin, &outcome)?;
    }
    Ok(creates.len())
}

/// The id a static subscription gets: `<stream>.<endpoint>`, or `static.<session>.<index>` when that would be
/// longer than an id may be or is `taken` by an earlier subscription of the session (two entries of one stream
/// and endpoint, or `a.b` + `c` and `a` + `b.c`): each entry is its own create, for the registry to judge, never
/// a repeat of another's. `static.<session>.<index>.<n>` in the unlikely case that is taken too.
fn static_subscription_id(
    session: usize,
    index: usize,
    stream: &str,
    endpoint: &str,
    taken: &HashSet<String>,
) -> String {
    let natural = format!("{stream}.{endpoint}");
    if natural.len() <= MAX_ID_BYTES && !taken.contains(&natural) {
        return natural;
    }
    let fallback = format!("static.{session}.{index}");
    let mut id = fallback.clone();
    let mut n = 0;
    while taken.contains(&id) {
        n += 1;
        id = format!("{fallback}.{n}");
    }
    id
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
