//! Driving a running daemon's gRPC control API from a test: a blocking client over tonic, request builders for
//! the common resources, reading worker counters from `GetNodeInfo`, and the `ringfwd ctl` / `ringfwd token`
//! processes.
//!
//! Owns nothing of the daemon and never reaches into it: everything goes over loopback TCP or through the real
//! binary, as a signaling controller or an operator would. Every RPC and every process run is bounded in time.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringfwd_proto::v1::ringfwd_client::RingfwdClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Request;

pub use ringfwd_proto::v1;
pub use tonic::{Code, Status};

use crate::daemon::{binary, Daemon};

/// The longest any one RPC (and connecting) may take.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Puts `authorization: Bearer <token>` on every request, or nothing when it has no token.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The generated async client with the bearer interceptor.
pub type Client = RingfwdClient<InterceptedService<Channel, Bearer>>;

/// A blocking control-API client: its own single-threaded runtime and one connection.
pub struct Api {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Api {
    /// Connects to `addr`, sending `token` (as `Bearer <token>`) with every call, or no token at all.
    pub fn connect(addr: SocketAddr, token: Option<&str>) -> Api {
        let header = token.map(|t| MetadataValue::try_from(format!("Bearer {t}")).expect("token fits a header"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime");
        let channel = runtime
            .block_on(
                Channel::from_shared(format!("http://{addr}"))
                    .expect("endpoint uri")
                    .timeout(RPC_TIMEOUT)
                    .connect_timeout(RPC_TIMEOUT)
                    .connect(),
            )
            .unwrap_or_else(|e| panic!("cannot connect to the control API at {addr}: {e}"));
        Api { runtime, client: RingfwdClient::with_interceptor(channel, Bearer(header)) }
    }

    /// Connects to the control API at `addr` over TLS, its certificate verified against `ca` (for the name of `addr`'s
    /// IP), presenting `client` when given (mutual TLS), with `token`.
    pub fn connect_tls(addr: SocketAddr, token: &str, ca: &Path, client: Option<&crate::tls::CertFiles>) -> Api {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let header = MetadataValue::try_from(format!("Bearer {token}")).expect("token fits a header");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime");
        let read = |path: &Path| std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut tls =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca))).domain_name(addr.ip().to_string());
        if let Some(client) = client {
            tls = tls.identity(Identity::from_pem(read(&client.cert), read(&client.key)));
        }
        let channel = runtime
            .block_on(
                Channel::from_shared(format!("https://{addr}"))
                    .expect("endpoint uri")
                    .tls_config(tls)
                    .expect("TLS settings")
                    .timeout(RPC_TIMEOUT)
                    .connect_timeout(RPC_TIMEOUT)
                    .connect(),
            )
            .unwrap_or_else(|e| panic!("cannot connect to the control API at {addr} over TLS: {e}"));
        Api { runtime, client: RingfwdClient::with_interceptor(channel, Bearer(Some(header))) }
    }

    /// Connects to `daemon`'s API with the development admin token it wrote.
    pub fn dev(daemon: &Daemon) -> Api {
        Api::connect(daemon.api, Some(&dev_token(daemon)))
    }

    /// A clone of the async client (cheap: it shares the connection), for calls without a typed wrapper.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs `future` on this client's runtime (with [`Api::client`] for calls without a typed wrapper).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// Blocking wrappers, one per RPC, answering the response message or the status.
macro_rules! rpcs {
    ($($(#[$doc:meta])* $name:ident($request:ident) -> $response:ident;)*) => {
        impl Api {
            $(
                $(#[$doc])*
                pub fn $name(&self, request: v1::$request) -> Result<v1::$response, Status> {
                    let mut client = self.client.clone();
                    self.runtime.block_on(async move { client.$name(request).await }).map(tonic::Response::into_inner)
                }
            )*
        }
    };
}

rpcs! {
    /// `CreateSession`.
    create_session(CreateSessionRequest) -> Session;
    /// `GetSession`.
    get_session(GetSessionRequest) -> Session;
    /// `ListSessions`.
    list_sessions(ListSessionsRequest) -> ListSessionsResponse;
    /// `DeleteSession`.
    delete_session(DeleteSessionRequest) -> DeleteResponse;
    /// `CreateEndpoint`.
    create_endpoint(CreateEndpointRequest) -> Endpoint;
    /// `UpdateEndpoint`.
    update_endpoint(UpdateEndpointRequest) -> Endpoint;
    /// `GetEndpoint`.
    get_endpoint(GetEndpointRequest) -> Endpoint;
    /// `ListEndpoints`.
    list_endpoints(ListEndpointsRequest) -> ListEndpointsResponse;
    /// `DeleteEndpoint`.
    delete_endpoint(DeleteEndpointRequest) -> DeleteResponse;
    /// `CreateStream`.
    create_stream(CreateStreamRequest) -> Stream;
    /// `UpdateStream`.
    update_stream(UpdateStreamRequest) -> Stream;
    /// `GetStream`.
    get_stream(GetStreamRequest) -> Stream;
    /// `ListStreams`.
    list_streams(ListStreamsRequest) -> ListStreamsResponse;
    /// `DeleteStream`.
    delete_stream(DeleteStreamRequest) -> DeleteResponse;
    /// `LocateStream`.
    locate_stream(LocateStreamRequest) -> StreamLocation;
    /// `GetStreamStats`.
    get_stream_stats(GetStreamStatsRequest) -> StreamStats;
    /// `GetSessionStats`.
    get_session_stats(GetSessionStatsRequest) -> AggregateStats;
    /// `GetEndpointStats`.
    get_endpoint_stats(GetEndpointStatsRequest) -> AggregateStats;
    /// `CreateSubscription`.
    create_subscription(CreateSubscriptionRequest) -> Subscription;
    /// `GetSubscription`.
    get_subscription(GetSubscriptionRequest) -> Subscription;
    /// `ListSubscriptions`.
    list_subscriptions(ListSubscriptionsRequest) -> ListSubscriptionsResponse;
    /// `UpdateSubscription`.
    update_subscription(UpdateSubscriptionRequest) -> Subscription;
    /// `DeleteSubscription`.
    delete_subscription(DeleteSubscriptionRequest) -> DeleteResponse;
    /// `GetNodeInfo`.
    get_node_info(GetNodeInfoRequest) -> NodeInfo;
    /// `Drain`.
    drain(DrainRequest) -> DrainResponse;
    /// `LoadPlugin`.
    load_plugin(LoadPluginRequest) -> Plugin;
    /// `UnloadPlugin`.
    unload_plugin(UnloadPluginRequest) -> UnloadPluginResponse;
}

/// Shorthands for the calls that name only ids.
impl Api {
    /// `CreateSession` of `id`.
    pub fn session(&self, id: &str) -> Result<v1::Session, Status> {
        self.create_session(v1::CreateSessionRequest { session_id: id.into(), metadata: Vec::new() })
    }

    /// `GetNodeInfo`, which must succeed.
    pub fn node(&self) -> v1::NodeInfo {
        self.get_node_info(v1::GetNodeInfoRequest {}).expect("GetNodeInfo")
    }

    /// The ids of every session, in the order listed.
    pub fn session_ids(&self) -> Vec<String> {
        let list = self.list_sessions(v1::ListSessionsRequest {}).expect("ListSessions");
        list.sessions.into_iter().map(|s| s.session_id).collect()
    }

    /// `UpdateSubscription` setting only `paused`.
    pub fn set_paused(&self, session: &str, subscription: &str, paused: bool) -> Result<v1::Subscription, Status> {
        self.update_subscription(v1::UpdateSubscriptionRequest {
            session_id: session.into(),
            subscription_id: subscription.into(),
            paused: Some(paused),
            ..Default::default()
        })
    }

    /// The first event of `session` (replayed from its start, then as they happen) that `pick` picks, waiting at
    /// most `timeout`; `None` if none came.
    pub fn wait_event<T>(
        &self,
        session: &str,
        timeout: Duration,
        mut pick: impl FnMut(&v1::event::Kind) -> Option<T>,
    ) -> Option<T> {
        self.wait_whole_event(session, timeout, |event| event.kind.as_ref().and_then(&mut pick))
    }

    /// [`Api::wait_event`], picking from the whole event (its id, sequence number and time too).
    pub fn wait_whole_event<T>(
        &self,
        session: &str,
        timeout: Duration,
        mut pick: impl FnMut(&v1::Event) -> Option<T>,
    ) -> Option<T> {
        let mut client = self.client();
        let request = v1::WatchEventsRequest { from_seq: Some(0), session_id: session.into() };
        self.block_on(async move {
            let mut events = client.watch_events(request).await.ok()?.into_inner();
            let deadline = tokio::time::Instant::now() + timeout;
            while let Ok(Ok(Some(event))) = tokio::time::timeout_at(deadline, events.message()).await {
                if let Some(found) = pick(&event) {
                    return Some(found);
                }
            }
            None
        })
    }

    /// `UpdateSubscription` switching to `stream`.
    pub fn switch(&self, session: &str, subscription: &str, stream: &str) -> Result<v1::Subscription, Status> {
        self.update_subscription(v1::UpdateSubscriptionRequest {
            session_id: session.into(),
            subscription_id: subscription.into(),
            stream_id: Some(stream.into()),
            ..Default::default()
        })
    }
}

/// An endpoint at `addr`, not latching.
pub fn endpoint(session: &str, id: &str, addr: SocketAddr) -> v1::CreateEndpointRequest {
    v1::CreateEndpointRequest {
        session_id: session.into(),
        endpoint_id: id.into(),
        media_address: addr.to_string(),
        latching: false,
        metadata: Vec::new(),
        ..Default::default()
    }
}

/// A video stream of `ssrc` published by `endpoint`: payload type 96, 90 kHz.
pub fn video_stream(session: &str, id: &str, endpoint: &str, ssrc: u32) -> v1::CreateStreamRequest {
    v1::CreateStreamRequest {
        session_id: session.into(),
        stream_id: id.into(),
        endpoint_id: endpoint.into(),
        ssrc,
        kind: v1::MediaKind::Video.into(),
        payload_types: vec![96],
        clock_rate_hz: 90_000,
        metadata: Vec::new(),
        interceptors: None,
    }
}

/// A subscription of `endpoint` to `stream`, sent with `out_ssrc` (0: the publisher's), not paused.
pub fn subscription(
    session: &str,
    id: &str,
    stream: &str,
    endpoint: &str,
    out_ssrc: u32,
) -> v1::CreateSubscriptionRequest {
    v1::CreateSubscriptionRequest {
        session_id: session.into(),
        subscription_id: id.into(),
        stream_id: stream.into(),
        endpoint_id: endpoint.into(),
        out_ssrc,
        payload_type_map: Vec::new(),
        paused: false,
        interceptors: None,
        rtx: None,
    }
}

/// The sum over every worker of the counter `name` (a missing counter fails the test).
pub fn worker_total(info: &v1::NodeInfo, name: &str) -> u64 {
    assert!(!info.workers.is_empty(), "NodeInfo lists no workers");
    info.workers
        .iter()
        .map(|w| *w.counters.get(name).unwrap_or_else(|| panic!("worker {} has no counter {name}", w.index)))
        .sum()
}

/// Asserts that `result` failed with `code` and a message containing every one of `words` (the field, id or limit
/// the error must name).
#[track_caller]
pub fn expect_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, words: &[&str]) {
    let status = result.expect_err("the call must fail");
    assert_eq!(status.code(), code, "{status:?}");
    for word in words {
        assert!(status.message().contains(word), "{code:?} message {:?} does not name {word:?}", status.message());
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passed; answers whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The development admin token `daemon` wrote (when its config has no keys).
pub fn dev_token(daemon: &Daemon) -> String {
    let text = std::fs::read_to_string(&daemon.dev_token_file)
        .unwrap_or_else(|e| panic!("dev token file {}: {e}", daemon.dev_token_file.display()));
    text.trim().to_string()
}

/// How long a `ringfwd ctl` or `ringfwd token` process may run.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);

/// What a finished `ringfwd` process left.
#[derive(Debug)]
pub struct Output {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// `ringfwd ctl --api <daemon's API> --token <token> <args>`, run to completion.
pub fn ctl(daemon: &crate::daemon::Daemon, token: &str, args: &[&str]) -> Output {
    let api = daemon.api.to_string();
    let mut all = vec!["ctl", "--api", &api, "--token", token];
    all.extend_from_slice(args);
    run_ringfwd(&all, &[])
}

/// [`ctl`], which must succeed; answers its standard output.
#[track_caller]
pub fn ctl_ok(daemon: &crate::daemon::Daemon, token: &str, args: &[&str]) -> String {
    let out = ctl(daemon, token, args);
    assert!(out.success, "ringfwd ctl {args:?} failed: {out:?}");
    out.stdout
}

/// `text` as JSON; fails the test when it is not.
#[track_caller]
pub fn parse_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Runs `ringfwd <args>` to completion with `RINGFWD_TOKEN` and `RINGFWD_API` removed from its environment and
/// `RUNTIME_DIRECTORY` and `STATE_DIRECTORY` an empty private directory (so it never finds the token of a daemon the
/// developer runs, nor its state),
/// then `env` added; kills it (and fails the test) after [`PROCESS_TIMEOUT`].
pub fn run_ringfwd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let empty = crate::daemon::private_tempdir();
    let mut cmd = Command::new(binary());
    cmd.args(args).env_remove("RINGFWD_TOKEN").env_remove("RINGFWD_API").env("RUST_LOG", "warn");
    cmd.env("RUNTIME_DIRECTORY", empty.path());
    // A daemon it starts keeps its state there too, never in the user's state directory.
    cmd.env("STATE_DIRECTORY", empty.path());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn ringfwd");
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringfwd {args:?} did not exit within {PROCESS_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("ringfwd output");
    Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// A config with one `[[auth.keys]]` key (so the daemon generates no development key), written to a file of its
/// own so that `ringfwd token` can mint tokens with it.
pub struct KeyedConfig {
    /// The whole config text, for [`Daemon::start`].
    pub text: String,
    /// Where it is written.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl KeyedConfig {
    /// `extra` (whole TOML tables, e.g. `[admission]` or `[[sessions]]`), then `[api] listen` on a free loopback
    /// port, `[auth] dev_token_file` in a temp dir and the key `key_id` with the base64 secret `secret_base64`.
    pub fn new(extra: &str, key_id: &str, secret_base64: &str) -> KeyedConfig {
        let dir = tempfile::tempdir().expect("temp dir");
        let dev_token_file = dir.path().join("dev-token").display().to_string();
        let text = format!(
            "{extra}\n[api]\nlisten = \"127.0.0.1:0\"\n[auth]\ndev_token_file = {dev_token_file:?}\n\
             [[auth.keys]]\nid = {key_id:?}\nsecret_base64 = {secret_base64:?}\n"
        );
        let path = dir.path().join("ringfwd.toml");
        std::fs::write(&path, &text).expect("write keyed config");
        KeyedConfig { text, path, _dir: dir }
    }

    /// A token minted by `ringfwd token --config <this> --grant <grant> --ttl <ttl>`.
    pub fn mint(&self, grant: &str, ttl: &str) -> String {
        mint_token(&self.path, grant, ttl)
    }
}

/// Runs `ringfwd token --config <config> --grant <grant> --ttl <ttl>` and answers the token it printed.
pub fn mint_token(config: &Path, grant: &str, ttl: &str) -> String {
    let config = config.to_str().expect("utf-8 config path");
    let out = run_ringfwd(&["token", "--config", config, "--grant", grant, "--ttl", ttl], &[]);
    assert!(out.success, "ringfwd token failed: {out:?}");
    let token = out.stdout.trim().to_string();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace), "unexpected token output {:?}", out.stdout);
    token
}

rpcs! {
    /// `SetMetadata`.
    set_metadata(SetMetadataRequest) -> MetadataWriteResponse;
    /// `DeleteMetadata`.
    delete_metadata(DeleteMetadataRequest) -> MetadataWriteResponse;
    /// `GetMetadata`.
    get_metadata(GetMetadataRequest) -> GetMetadataResponse;
}

/// An open `WatchMetadata` stream; read it with [`Api::next_event`] on the client that opened it.
#[derive(Debug)]
pub struct MetadataWatch(tonic::Streaming<v1::MetadataEvent>);

impl Api {
    /// Opens `WatchMetadata` on `target`, resuming after `resume_from` when given.
    pub fn watch_metadata(
        &self,
        target: v1::MetadataTarget,
        resume_from: Option<v1::MetadataVersion>,
    ) -> Result<MetadataWatch, Status> {
        let mut client = self.client.clone();
        let request = v1::WatchMetadataRequest { target: Some(target), resume_from };
        let response = self.runtime.block_on(async move { client.watch_metadata(request).await })?;
        Ok(MetadataWatch(response.into_inner()))
    }

    /// The watch's next event, `Ok(None)` when the server ended it, or its error status; fails the test when
    /// nothing arrives within [`RPC_TIMEOUT`].
    pub fn next_event(&self, watch: &mut MetadataWatch) -> Result<Option<v1::MetadataEvent>, Status> {
        self.runtime
            .block_on(async { tokio::time::timeout(RPC_TIMEOUT, watch.0.message()).await })
            .unwrap_or_else(|_| panic!("no metadata event within {RPC_TIMEOUT:?}"))
    }

    /// `SetMetadata` of plain `pairs` on `target`, which must succeed; answers the version.
    pub fn set_pairs(&self, target: &v1::MetadataTarget, pairs: &[(&str, &str)]) -> v1::MetadataVersion {
        let writes = pairs.iter().map(|(k, v)| metadata_write(k, v)).collect();
        let request = v1::SetMetadataRequest { target: Some(target.clone()), writes };
        self.set_metadata(request).expect("SetMetadata").version.expect("a version")
    }

    /// The live metadata of `target` as (key, value) pairs, sorted by key.
    pub fn metadata_pairs(&self, target: &v1::MetadataTarget) -> Vec<(String, String)> {
        let request = v1::GetMetadataRequest { target: Some(target.clone()), keys: Vec::new() };
        let got = self.get_metadata(request).expect("GetMetadata");
        got.entries.into_iter().map(|e| (e.key, e.value)).collect()
    }
}

/// The metadata target naming a session, or one of its endpoints (`endpoint`) or streams (`stream`).
pub fn metadata_target(session: &str, endpoint: &str, stream: &str) -> v1::MetadataTarget {
    v1::MetadataTarget { session_id: session.into(), endpoint_id: endpoint.into(), stream_id: stream.into() }
}

/// A plain (not set-once, unconditional) metadata write.
pub fn metadata_write(key: &str, value: &str) -> v1::MetadataWrite {
    v1::MetadataWrite { key: key.into(), value: value.into(), set_once: false, expected_version: None }
}
