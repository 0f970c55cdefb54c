//! Restoring kept sessions at start-up, before the API opens.
//!
//! Owns [`restore`]: first every plugin the API had loaded, through the API's own `LoadPlugin` path (its module read
//! from its path again, or taken from the store), then every kept session is recreated through the API's own path (`Api::apply`: planned by the
//! registry by the rules of a request, its commands run on the workers, committed) in the order that satisfies its
//! references: the session, its endpoints (each followed by the address it had latched to), its streams (with the SSRC
//! a learning one had learned), its subscriptions (as updated, each continuing its subscriber's numbering from what
//! was kept, see [`Kept::continuation`](super::numbering::Kept::continuation)), then its objects' metadata as it was
//! (versions included; watchers are told nothing: nothing changed). The store is attached to the API only
//! afterwards, so restoring writes nothing. Must never create what the registry refuses: a refusal (a config that no
//! longer admits it) stops the start with the object and the reason.

use std::time::Instant;

use tonic::Status;

use super::{StateError, StateStore};
use crate::api::Api;
use crate::registry::{Plan, Registry, RegistryError, Resume};

/// What a restore recreated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Sessions.
    pub sessions: usize,
    /// Endpoints, streams and subscriptions.
    pub objects: usize,
    /// Subscriptions that continue a kept numbering.
    pub continued: usize,
    /// Plugins the API had loaded.
    pub plugins: usize,
}

/// Recreates everything `store` kept through `api`. See the module docs.
pub async fn restore(api: &Api, store: &StateStore) -> Result<Restored, StateError> {
    let loaded = store.load()?;
    let mut restored = Restored::default();
    // The plugins the API loaded first: the chains of the sessions below may name them.
    for plugin in &loaded.plugins {
        let name = &plugin.settings.name;
        api.load_plugin(plugin.clone()).await.map_err(|status| StateError::Restore {
            path: store.path().to_owned(),
            object: format!("plugin {name}"),
            message: status.message().to_owned(),
        })?;
        restored.plugins += 1;
    }
    let (now_unix_ns, now) = (crate::clock::unix_ns(), Instant::now());
    for kept in &loaded.sessions {
        let session = &kept.session;
        let sid = session.session_id.as_str();
        let refused = |object: String| {
            move |status: Status| StateError::Restore {
                path: store.path().to_owned(),
                object,
                message: status.message().to_owned(),
            }
        };
        run(api, |r| r.plan_create_session(sid, session.created_unix_ms))
            .await
            .map_err(refused(format!("session {sid}")))?;
        restored.sessions += 1;
        for endpoint in &session.endpoints {
            let object = format!("endpoint {sid}/{}", endpoint.endpoint_id);
            run(api, |r| r.plan_create_endpoint(endpoint.spec(sid))).await.map_err(refused(object.clone()))?;
            if let Some(address) = endpoint.latched_address {
                run(api, |r| r.plan_restore_latch(sid, &endpoint.endpoint_id, address))
                    .await
                    .map_err(refused(object))?;
            }
            restored.objects += 1;
        }
        for stream in &session.streams {
            let object = format!("stream {sid}/{}", stream.stream_id);
            run(api, |r| r.plan_restore_stream(stream.spec(sid), stream.learns_ssrc)).await.map_err(refused(object))?;
            restored.objects += 1;
        }
        for sub in &session.subscriptions {
            let object = format!("subscription {sid}/{}", sub.subscription_id);
            let kept = loaded.numbering.get(&(sid.to_owned(), sub.subscription_id.clone()));
            let resume = kept.map_or(Resume::Fresh, |kept| kept.resume(now_unix_ns, now));
            run(api, |r| r.plan_restore_subscription(sub.spec(sid), resume)).await.map_err(refused(object))?;
            restored.objects += 1;
            restored.continued += usize::from(kept.is_some());
        }
        api.restore_metadata(sid, &kept.metadata).await;
    }
    Ok(restored)
}

async fn run(api: &Api, plan: impl FnOnce(&Registry) -> Result<Plan, RegistryError>) -> Result<(), Status> {
    api.apply(plan).await.map(|_| ())
}
