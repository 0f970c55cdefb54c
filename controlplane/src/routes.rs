//! The config's static sessions, created through the registry exactly as a controller would create them.
//!
//! Owns the translation of `[[sessions]]` in the config into registry plans (session, then endpoints, streams
//! and subscriptions, in config order) and their application at start-up. Static sessions are ordinary
//! sessions afterwards: listed, counted against the admission limits, deletable through the API.

use ringfwd_tuning::Config;
use tonic::Status;

use crate::api::Api;
use crate::registry::{EndpointSpec, PayloadTypeMapping, StreamSpec, SubscriptionSpec};

/// A static session the registry or a worker refused.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {code:?}: {message}")]
pub struct RouteError {
    /// Config path, e.g. `sessions[0].subscriptions[1]`.
    pub origin: String,
    /// The status class.
    pub code: tonic::Code,
    /// Why.
    pub message: String,
}

fn at(origin: String) -> impl FnOnce(Status) -> RouteError {
    move |s| RouteError { origin, code: s.code(), message: s.message().to_string() }
}

/// Creates every static session; returns how many resources were created.
pub async fn install(api: &Api, config: &Config, now_unix_ms: u64) -> Result<usize, RouteError> {
    let mut created = 0;
    for (si, session) in config.sessions.iter().enumerate() {
        let sid = session.id.clone();
        api.apply(|r| r.plan_create_session(&sid, now_unix_ms)).await.map_err(at(format!("sessions[{si}]")))?;
        created += 1;
        for (i, e) in session.endpoints.iter().enumerate() {
            let spec = EndpointSpec {
                session_id: sid.clone(),
                endpoint_id: e.id.clone(),
                media_address: e.address,
                latching: e.latching,
                rtcp: Default::default(),
            };
            api.apply(|r| r.plan_create_endpoint(spec)).await.map_err(at(format!("sessions[{si}].endpoints[{i}]")))?;
            created += 1;
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
            api.apply(|r| r.plan_create_stream(spec)).await.map_err(at(format!("sessions[{si}].streams[{i}]")))?;
            created += 1;
        }
        for (i, sub) in session.subscriptions.iter().enumerate() {
            let spec = SubscriptionSpec {
                session_id: sid.clone(),
                subscription_id: static_subscription_id(si, i, &sub.stream, &sub.endpoint),
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
            let origin = format!("sessions[{si}].subscriptions[{i}]");
            api.apply(|r| r.plan_create_subscription(spec)).await.map_err(at(origin))?;
            created += 1;
        }
    }
    Ok(created)
}

/// The id a static subscription gets: `<stream>.<endpoint>`, or `static.<session>.<index>` when that would be
/// longer than an id may be.
fn static_subscription_id(session: usize, index: usize, stream: &str, endpoint: &str) -> String {
    let id = format!("{stream}.{endpoint}");
    if id.len() <= ringfwd_tuning::MAX_ID_BYTES {
        id
    } else {
        format!("static.{session}.{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_subscription_ids_are_valid_ids() {
        assert_eq!(static_subscription_id(0, 1, "cam", "bob"), "cam.bob");
        let long = "x".repeat(40);
        assert_eq!(static_subscription_id(2, 3, &long, &long), "static.2.3");
    }
}
