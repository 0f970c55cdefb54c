//! The bench's client of ringfwd's control API (`ringfwd.v1.Ringfwd` over gRPC, tonic).
//!
//! Owns connecting with the development bearer token the daemon wrote, creating a scenario's session
//! through the API exactly as a signaling controller would (session, endpoints, streams, then
//! subscriptions, in the order of the [`SessionSpec`]), checking that the registry then holds exactly
//! those resources, turning what the API answered into the sink's expectations ([`flow_specs`]: the
//! sequence and timestamp offsets are the ones ringfwd chose and returned, never assumed), and the
//! calls the churn measurement repeats. Calls are async; the caller owns the tokio runtime.
//!
//! Must never talk to anything but a loopback address, and never print or log the token.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringfwd_proto::v1::{self, ringfwd_client::RingfwdClient};
use ringfwd_tuning::{MediaKind, SessionSpec};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::account::FlowSpec;
use crate::scenario::Scenario;

/// Longest a connection attempt or one RPC may take.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// The control API could not be reached, refused a call, or answered something unexpected.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The development token file could not be read.
    #[error("reading the development token {path}: {source}")]
    Token {
        /// `auth.dev_token_file`.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The API address is not a loopback address.
    #[error("the control API must listen on loopback for the bench, not on {0}")]
    NotLoopback(SocketAddr),
    /// The connection failed.
    #[error("connecting to the control API at {address}: {source}")]
    Connect {
        /// `api=` of the ready line.
        address: SocketAddr,
        /// Why.
        source: tonic::transport::Error,
    },
    /// A call failed.
    #[error("{call}: {code:?}: {message}")]
    Rpc {
        /// The RPC and the id it was about.
        call: String,
        /// The status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// The API answered, but not what was asked for.
    #[error("{what}: expected {expected}, the API answered {got}")]
    Mismatch {
        /// What was compared.
        what: String,
        /// What the request asked for.
        expected: String,
        /// What came back.
        got: String,
    },
    /// A local socket of the client could not be set up.
    #[error("{what}: {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The tokio runtime could not be built.
    #[error("tokio runtime for the control client: {0}")]
    Runtime(io::Error),
}

fn rpc(call: impl Into<String>) -> impl FnOnce(Status) -> ControlError {
    let call = call.into();
    move |s| ControlError::Rpc { call, code: s.code(), message: s.message().to_string() }
}

fn mismatch(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> ControlError {
    ControlError::Mismatch { what: what.into(), expected: expected.to_string(), got: got.to_string() }
}

/// Reads the admin token the daemon wrote to `auth.dev_token_file`.
pub fn read_token(path: &Path) -> Result<String, ControlError> {
    let err = |source| ControlError::Token { path: path.to_path_buf(), source };
    let text = std::fs::read_to_string(path).map_err(err)?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(err(io::Error::new(io::ErrorKind::InvalidData, "not one token")));
    }
    Ok(token.to_owned())
}

/// A current-thread tokio runtime for the bench's synchronous callers.
pub fn runtime() -> Result<tokio::runtime::Runtime, ControlError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ControlError::Runtime)
}

/// A connected, authenticated client; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Control {
    client: RingfwdClient<Channel>,
    bearer: MetadataValue<Ascii>,
}

impl Control {
    /// Connects to the API at `api` (loopback only) with bearer `token`.
    pub async fn connect(api: SocketAddr, token: &str) -> Result<Control, ControlError> {
        if !api.ip().is_loopback() {
            return Err(ControlError::NotLoopback(api));
        }
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| mismatch("the token", "header-safe characters", "other characters"))?;
        let connect = |source| ControlError::Connect { address: api, source };
        let channel = Endpoint::from_shared(format!("http://{api}"))
            .map_err(connect)?
            .connect_timeout(RPC_TIMEOUT)
            .timeout(RPC_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(connect)?;
        Ok(Control { client: RingfwdClient::new(channel), bearer })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", self.bearer.clone());
        request
    }

    /// Creates every resource of `session` and returns the subscriptions as the API answered, in
    /// order. Subscription `i` gets the id [`Scenario::subscription_id`]`(i)`; the spec's sequence
    /// and timestamp offsets are not sent (the API chooses them).
    pub async fn install(&mut self, session: &SessionSpec) -> Result<Vec<v1::Subscription>, ControlError> {
        let sid = &session.id;
        let request = self.request(v1::CreateSessionRequest { session_id: sid.clone(), ..Default::default() });
        self.client.create_session(request).await.map_err(rpc(format!("CreateSession {sid}")))?;
        for e in &session.endpoints {
            let request = self.request(v1::CreateEndpointRequest {
                session_id: sid.clone(),
                endpoint_id: e.id.clone(),
                media_address: e.address.map(|a| a.to_string()).unwrap_or_default(),
                latching: e.latching,
                ..Default::default()
            });
            self.client.create_endpoint(request).await.map_err(rpc(format!("CreateEndpoint {}", e.id)))?;
        }
        for s in &session.streams {
            let kind = match s.kind {
                MediaKind::Audio => v1::MediaKind::Audio,
                MediaKind::Video => v1::MediaKind::Video,
            };
            let request = self.request(v1::CreateStreamRequest {
                session_id: sid.clone(),
                stream_id: s.id.clone(),
                endpoint_id: s.endpoint.clone(),
                ssrc: s.ssrc,
                kind: kind.into(),
                payload_types: Vec::new(),
                clock_rate_hz: s.clock_rate_hz(),
                ..Default::default()
            });
            let created =
                self.client.create_stream(request).await.map_err(rpc(format!("CreateStream {}", s.id)))?.into_inner();
            if (created.ssrc, created.clock_rate_hz, created.kind) != (s.ssrc, s.clock_rate_hz(), i32::from(kind)) {
                return Err(mismatch(format!("stream {}", s.id), format!("{s:?}"), format!("{created:?}")));
            }
        }
        let mut subscriptions = Vec::with_capacity(session.subscriptions.len());
        for (i, sub) in session.subscriptions.iter().enumerate() {
            let id = Scenario::subscription_id(i);
            let payload_type_map: Vec<v1::PayloadTypeMapping> = sub
                .payload_type_map
                .iter()
                .map(|&[from, to]| v1::PayloadTypeMapping { from: u32::from(from), to: u32::from(to) })
                .collect();
            let request = self.request(v1::CreateSubscriptionRequest {
                session_id: sid.clone(),
                subscription_id: id.clone(),
                stream_id: sub.stream.clone(),
                endpoint_id: sub.endpoint.clone(),
                out_ssrc: sub.out_ssrc.unwrap_or(0),
                payload_type_map: payload_type_map.clone(),
                paused: false,
                // The chains the forwarder's config names.
                interceptors: None,
                rtx: None,
            });
            let created =
                self.client.create_subscription(request).await.map_err(rpc(format!("CreateSubscription {id}")))?;
            let created = created.into_inner();
            if created.out_ssrc != sub.out_ssrc.unwrap_or(0) || created.payload_type_map != payload_type_map {
                return Err(mismatch(format!("subscription {id}"), format!("{sub:?}"), format!("{created:?}")));
            }
            subscriptions.push(created);
        }
        Ok(subscriptions)
    }

    /// Checks that the registry holds exactly `session`'s resources: the counts of the session, and
    /// the subscriptions by id, stream and endpoint.
    pub async fn verify(&mut self, session: &SessionSpec) -> Result<(), ControlError> {
        let got = self.session(&session.id).await?;
        let want = (session.endpoints.len(), session.streams.len(), session.subscriptions.len());
        let have = (got.endpoints as usize, got.streams as usize, got.subscriptions as usize);
        if have != want {
            let what = format!("session {} (endpoints, streams, subscriptions)", session.id);
            return Err(mismatch(what, format!("{want:?}"), format!("{have:?}")));
        }
        let listed = self.subscriptions(&session.id).await?;
        let mut listed: Vec<(String, String, String)> =
            listed.into_iter().map(|s| (s.subscription_id, s.stream_id, s.endpoint_id)).collect();
        listed.sort();
        let mut wanted: Vec<(String, String, String)> = session
            .subscriptions
            .iter()
            .enumerate()
            .map(|(i, s)| (Scenario::subscription_id(i), s.stream.clone(), s.endpoint.clone()))
            .collect();
        wanted.sort();
        if listed != wanted {
            let first_difference = listed.iter().zip(&wanted).find(|(a, b)| a != b);
            return Err(mismatch("the session's subscriptions", format!("{first_difference:?}"), listed.len()));
        }
        Ok(())
    }

    /// Deletes session `id` with everything in it; `Ok(false)` when there was none.
    pub async fn delete_session(&mut self, id: &str) -> Result<bool, ControlError> {
        let request = self.request(v1::DeleteSessionRequest { session_id: id.to_string() });
        match self.client.delete_session(request).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(rpc(format!("DeleteSession {id}"))(s)),
        }
    }

    /// The session `id` as the registry has it.
    pub async fn session(&mut self, id: &str) -> Result<v1::Session, ControlError> {
        let request = self.request(v1::GetSessionRequest { session_id: id.to_string() });
        Ok(self.client.get_session(request).await.map_err(rpc(format!("GetSession {id}")))?.into_inner())
    }

    /// What the whole node holds (sessions, endpoints, streams, subscriptions).
    pub async fn usage(&mut self) -> Result<v1::Usage, ControlError> {
        let info = self.client.get_node_info(self.request(v1::GetNodeInfoRequest {})).await;
        Ok(info.map_err(rpc("GetNodeInfo"))?.into_inner().usage.unwrap_or_default())
    }

    /// Every subscription of session `id`.
    pub async fn subscriptions(&mut self, id: &str) -> Result<Vec<v1::Subscription>, ControlError> {
        let request = self.request(v1::ListSubscriptionsRequest { session_id: id.to_string() });
        let listed = self.client.list_subscriptions(request).await.map_err(rpc(format!("ListSubscriptions {id}")))?;
        Ok(listed.into_inner().subscriptions)
    }

    /// Creates endpoint `endpoint_id` in `session_id` receiving at `address`.
    pub async fn create_endpoint(
        &mut self,
        session_id: &str,
        endpoint_id: &str,
        address: SocketAddr,
    ) -> Result<v1::Endpoint, ControlError> {
        let request = self.request(v1::CreateEndpointRequest {
            session_id: session_id.to_string(),
            endpoint_id: endpoint_id.to_string(),
            media_address: address.to_string(),
            latching: false,
            ..Default::default()
        });
        let created = self.client.create_endpoint(request).await;
        Ok(created.map_err(rpc(format!("CreateEndpoint {endpoint_id}")))?.into_inner())
    }

    /// Deletes endpoint `endpoint_id` with everything that goes with it.
    pub async fn delete_endpoint(
        &mut self,
        session_id: &str,
        endpoint_id: &str,
    ) -> Result<v1::DeleteResponse, ControlError> {
        let request = self.request(v1::DeleteEndpointRequest {
            session_id: session_id.to_string(),
            endpoint_id: endpoint_id.to_string(),
        });
        let deleted = self.client.delete_endpoint(request).await;
        Ok(deleted.map_err(rpc(format!("DeleteEndpoint {endpoint_id}")))?.into_inner())
    }

    /// Creates an empty session `session_id`; the raw status on failure (the churn counts them by code).
    pub async fn create_session(&mut self, session_id: &str) -> Result<v1::Session, Status> {
        let request =
            self.request(v1::CreateSessionRequest { session_id: session_id.to_string(), ..Default::default() });
        Ok(self.client.create_session(request).await?.into_inner())
    }

    /// Creates audio stream `stream_id` (SSRC `ssrc`, 48 kHz) published by `endpoint_id`; the raw status on
    /// failure.
    pub async fn create_audio_stream(
        &mut self,
        session_id: &str,
        stream_id: &str,
        endpoint_id: &str,
        ssrc: u32,
    ) -> Result<v1::Stream, Status> {
        let request = self.request(v1::CreateStreamRequest {
            session_id: session_id.to_string(),
            stream_id: stream_id.to_string(),
            endpoint_id: endpoint_id.to_string(),
            ssrc,
            kind: v1::MediaKind::Audio.into(),
            clock_rate_hz: 48_000,
            ..Default::default()
        });
        Ok(self.client.create_stream(request).await?.into_inner())
    }

    /// Deletes stream `stream_id` with its subscriptions; the raw status on failure.
    pub async fn delete_stream(&mut self, session_id: &str, stream_id: &str) -> Result<v1::DeleteResponse, Status> {
        let request = self
            .request(v1::DeleteStreamRequest { session_id: session_id.to_string(), stream_id: stream_id.to_string() });
        Ok(self.client.delete_stream(request).await?.into_inner())
    }

    /// Subscribes `endpoint_id` to `stream_id` as `subscription_id` with outgoing SSRC `out_ssrc`;
    /// the raw status on failure (the churn counts them by code).
    pub async fn subscribe(
        &mut self,
        session_id: &str,
        subscription_id: &str,
        stream_id: &str,
        endpoint_id: &str,
        out_ssrc: u32,
    ) -> Result<v1::Subscription, Status> {
        let request = self.request(v1::CreateSubscriptionRequest {
            session_id: session_id.to_string(),
            subscription_id: subscription_id.to_string(),
            stream_id: stream_id.to_string(),
            endpoint_id: endpoint_id.to_string(),
            out_ssrc,
            payload_type_map: Vec::new(),
            paused: false,
            interceptors: None,
            rtx: None,
        });
        Ok(self.client.create_subscription(request).await?.into_inner())
    }

    /// Deletes subscription `subscription_id`; the raw status on failure.
    pub async fn unsubscribe(&mut self, session_id: &str, subscription_id: &str) -> Result<v1::DeleteResponse, Status> {
        let request = self.request(v1::DeleteSubscriptionRequest {
            session_id: session_id.to_string(),
            subscription_id: subscription_id.to_string(),
        });
        Ok(self.client.delete_subscription(request).await?.into_inner())
    }
}

/// The sink's expectations for `scenario` as routed through the API: the planned outgoing SSRC and
/// payload-type map of every flow, with the sequence and timestamp offsets of `created` (the
/// subscriptions [`Control::install`] returned, in flow order).
pub fn flow_specs(scenario: &Scenario, created: &[v1::Subscription]) -> Result<Vec<FlowSpec>, ControlError> {
    if created.len() != scenario.flows.len() {
        return Err(mismatch("subscriptions created", scenario.flows.len(), created.len()));
    }
    scenario
        .flows
        .iter()
        .zip(created)
        .map(|(flow, sub)| {
            let seq_offset = u16::try_from(sub.seq_offset)
                .map_err(|_| mismatch(format!("seq_offset of {}", sub.subscription_id), "0..=65535", sub.seq_offset))?;
            Ok(FlowSpec { seq_offset, ts_offset: sub.ts_offset, ..flow.spec.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(id: usize, seq_offset: u32, ts_offset: u32) -> v1::Subscription {
        v1::Subscription { subscription_id: Scenario::subscription_id(id), seq_offset, ts_offset, ..Default::default() }
    }

    #[test]
    fn expectations_take_the_offsets_the_api_returned() {
        let scenario = Scenario::builtin("flat").unwrap();
        let created: Vec<v1::Subscription> = (0..64).map(|i| answered(i, 0, 0)).collect();
        let specs = flow_specs(&scenario, &created).unwrap();
        assert_eq!(specs.len(), 64);
        for (spec, flow) in specs.iter().zip(&scenario.flows) {
            assert_eq!((spec.seq_offset, spec.ts_offset), (0, 0));
            assert_eq!((spec.out_ssrc, &spec.payload_type_map), (flow.spec.out_ssrc, &flow.spec.payload_type_map));
        }
        // The static plan has offsets: the API's answer replaced them, it did not keep them.
        assert!(scenario.flows.iter().any(|f| f.spec.seq_offset != 0));
        let mut created = created;
        created[3] = answered(3, 500, 7);
        let spec = &flow_specs(&scenario, &created).unwrap()[3];
        assert_eq!((spec.seq_offset, spec.ts_offset), (500, 7));
        created[3] = answered(3, 70_000, 7);
        assert!(flow_specs(&scenario, &created).unwrap_err().to_string().contains("seq_offset of f-3"));
        assert!(flow_specs(&scenario, &created[..10]).is_err());
    }

    #[test]
    fn tokens_are_read_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("ringfwd-bench-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "abc.def.ghi\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "abc.def.ghi");
        std::fs::write(&path, "two tokens\n").unwrap();
        assert!(read_token(&path).is_err());
        let missing = read_token(&dir.join("missing")).unwrap_err().to_string();
        assert!(missing.contains("missing"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_loopback_apis_are_contacted() {
        let rt = runtime().unwrap();
        let err = rt.block_on(Control::connect("192.0.2.1:50051".parse().unwrap(), "t")).err().unwrap();
        assert!(matches!(err, ControlError::NotLoopback(_)), "{err}");
    }
}
