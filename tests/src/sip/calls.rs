//! What the test controller asks of ringfwd for one call, through the gRPC API: per call leg an endpoint at the user
//! agent's media address (RTCP at its port + 1 unless it muxes) and an audio stream that learns its SSRC, the two
//! subscriptions that let each leg hear the other, a re-INVITE's new address and payload types, and at the end the
//! call's final statistics before its session is deleted.
//!
//! Owns the naming of a call's resources ([`Leg`]); never reads SIP or SDP (it gets an [`AudioOffer`]).

use std::time::{Duration, Instant};

use crate::api::{endpoint, subscription, v1, Api, Status};
use crate::sip::sdp::AudioOffer;

/// How long the final statistics may take to cover the end of the call.
const FINAL_STATS_TIMEOUT: Duration = Duration::from_secs(10);
/// The final statistics must have been taken this long after both user agents stopped sending, so that their
/// last packets (in flight on loopback) are counted.
const SETTLE: Duration = Duration::from_millis(20);

/// One side of a call through the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// The user agent that sent the INVITE.
    Caller,
    /// The user agent the controller called on its behalf.
    Callee,
}

impl Leg {
    /// The other side.
    pub fn other(self) -> Leg {
        match self {
            Leg::Caller => Leg::Callee,
            Leg::Callee => Leg::Caller,
        }
    }

    /// Its endpoint's id in the call's session.
    pub fn endpoint(self) -> &'static str {
        match self {
            Leg::Caller => "caller",
            Leg::Callee => "callee",
        }
    }

    /// The id of the audio stream it publishes.
    pub fn stream(self) -> &'static str {
        match self {
            Leg::Caller => "caller-audio",
            Leg::Callee => "callee-audio",
        }
    }

    /// The id of the subscription through which it hears the other side.
    pub fn hears(self) -> &'static str {
        match self {
            Leg::Caller => "caller-hears-callee",
            Leg::Callee => "callee-hears-caller",
        }
    }
}

/// What ringfwd knew of a call when it ended, read just before its session was deleted.
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// The leg that hung up.
    pub hung_up_by: Leg,
    /// Each leg's stream (with the SSRC it learned), caller first.
    pub streams: Vec<v1::Stream>,
    /// Each leg's stream statistics with its subscription's, caller first, taken after both sides stopped
    /// sending.
    pub stats: Vec<v1::StreamStats>,
}

/// Creates `leg`'s endpoint at `offer`'s address and its stream, which learns its SSRC.
pub fn add_leg(api: &Api, session: &str, leg: Leg, offer: &AudioOffer) -> Result<(), Status> {
    let rtcp_port_plus_one = !offer.rtcp_mux;
    api.create_endpoint(v1::CreateEndpointRequest {
        rtcp_port_plus_one,
        ..endpoint(session, leg.endpoint(), offer.address)
    })?;
    api.create_stream(v1::CreateStreamRequest {
        session_id: session.into(),
        stream_id: leg.stream().into(),
        endpoint_id: leg.endpoint().into(),
        ssrc: 0,
        kind: v1::MediaKind::Audio.into(),
        payload_types: offer.payload_types.clone(),
        clock_rate_hz: offer.clock_rate_hz,
        metadata: Vec::new(),
        interceptors: None,
    })?;
    Ok(())
}

/// Subscribes each leg to the other's stream (both legs exist).
pub fn connect_legs(api: &Api, session: &str) -> Result<(), Status> {
    for leg in [Leg::Caller, Leg::Callee] {
        api.create_subscription(subscription(session, leg.hears(), leg.other().stream(), leg.endpoint(), 0))?;
    }
    Ok(())
}

/// Applies a re-INVITE of `leg`: its endpoint moves to `offer`'s address (in place: streams and subscriptions
/// follow), and its stream takes `offer`'s payload types if they changed from `previous`'s.
pub fn update_leg(api: &Api, session: &str, leg: Leg, offer: &AudioOffer, previous: &AudioOffer) -> Result<(), Status> {
    api.update_endpoint(v1::UpdateEndpointRequest {
        session_id: session.into(),
        endpoint_id: leg.endpoint().into(),
        media_address: offer.address.to_string(),
        rtcp_address: String::new(),
        rtcp_port_plus_one: !offer.rtcp_mux,
    })?;
    if offer.payload_types != previous.payload_types {
        api.update_stream(v1::UpdateStreamRequest {
            session_id: session.into(),
            stream_id: leg.stream().into(),
            ssrc: None,
            payload_types: Some(v1::PayloadTypes { values: offer.payload_types.clone() }),
            interceptors: None,
        })?;
    }
    Ok(())
}

/// Reads the call's streams and their statistics once the workers published figures taken at least [`SETTLE`]
/// after `stopped` (when both user agents had stopped sending), then deletes the session.
pub fn end_call(api: &Api, session: &str, hung_up_by: Leg, stopped: Instant) -> Result<CallRecord, String> {
    let legs = [Leg::Caller, Leg::Callee];
    let deadline = Instant::now() + FINAL_STATS_TIMEOUT;
    let stats = loop {
        let asked = Instant::now();
        let stats = legs
            .iter()
            .map(|leg| {
                let request = v1::GetStreamStatsRequest { session_id: session.into(), stream_id: leg.stream().into() };
                api.get_stream_stats(request).map_err(|s| format!("GetStreamStats {}: {s}", leg.stream()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let after_the_end = |sample: &Option<v1::StatsSample>| {
            let taken = sample.as_ref().and_then(|s| asked.checked_sub(Duration::from_millis(s.age_ms)));
            taken.is_some_and(|taken| taken >= stopped + SETTLE)
        };
        let settled = stats.iter().all(|s| {
            after_the_end(&s.ingress)
                && !s.subscriptions.is_empty()
                && s.subscriptions.iter().all(|sub| after_the_end(&sub.egress))
        });
        if settled {
            break stats;
        }
        if Instant::now() > deadline {
            return Err(format!("no statistics taken after the call ended within {FINAL_STATS_TIMEOUT:?}: {stats:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let streams = legs
        .iter()
        .map(|leg| {
            let request = v1::GetStreamRequest { session_id: session.into(), stream_id: leg.stream().into() };
            api.get_stream(request).map_err(|s| format!("GetStream {}: {s}", leg.stream()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    api.delete_session(v1::DeleteSessionRequest { session_id: session.into() })
        .map_err(|s| format!("DeleteSession {session}: {s}"))?;
    Ok(CallRecord { hung_up_by, streams, stats })
}
