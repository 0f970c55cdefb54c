//! Connecting to the API and running one `ringfwd ctl` command.

use std::time::Duration;

use ringfwd_proto::v1::ringfwd_client::RingfwdClient;
use ringfwd_proto::v1::{self, PayloadTypeMapping};
use ringfwd_tuning::Config;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

use super::args::{
    AttachOptions, ChainTarget, CtlArgs, CtlCommand, EndpointCmd, Kind, NodeCmd, PluginCmd, SessionCmd, StreamCmd,
    SubscriptionCmd,
};
use super::metadata::initial;
use super::output::print;

/// The generated client with the bearer interceptor.
pub(super) type Client = RingfwdClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>;

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Auth(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Runs the command; the error is the message to print (the server's status code and message on RPC errors).
pub fn run(args: CtlArgs) -> Result<(), String> {
    let from_file = match &args.config {
        Some(path) => Some(Config::from_file(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let target = super::connect::target(args.api.clone(), &args.tls, from_file.as_ref())?;
    let config = from_file.unwrap_or_default();
    let token = super::token::bearer_token(args.token.as_deref(), &config)?;
    let header = MetadataValue::try_from(format!("Bearer {}", token.trim()))
        .map_err(|_| "the token contains characters not allowed in a header".to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let broke_off = target.broke_off();
    let outcome = runtime.block_on(async move {
        let uri = target.uri;
        let mut endpoint = Channel::from_shared(uri.clone()).map_err(|e| e.to_string())?;
        if let Some(tls) = target.tls {
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                // Bad PEM in --tls-ca/--tls-cert/--tls-key, or no system trust store for an https:// address alone.
                format!(
                    "TLS settings: {} (pass --tls-ca FILE with the server's CA certificate in PEM, and --tls-cert/\
                     --tls-key as PEM files)",
                    error_chain(&e)
                )
            })?;
        }
        let channel = endpoint.timeout(timeout).connect_timeout(timeout).connect().await.map_err(|e| {
            let advice = super::connect::advice(&e, false)
                .unwrap_or_else(|| "is ringfwd running, and is this its api.listen? pass --api or --config".to_owned());
            format!("cannot reach the control API at {uri}: {} ({advice})", error_chain(&e))
        })?;
        let mut client = RingfwdClient::with_interceptor(channel, Auth(header));
        dispatch(&mut client, args.command, args.json).await
    });
    // Only this function knows how it connected: it says what a connection that broke off most likely means.
    outcome.map_err(|message| message.replace(super::connect::BROKE_OFF, &broke_off))
}

/// `error` and each of its sources, outermost first ("transport error: tcp connect error: Connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The server's status as the message to print; a failure of the connection itself (a status with a source) with
/// its causes and, when TLS explains it, what to do.
pub(super) fn status(s: tonic::Status) -> String {
    let mut text = format!("{:?}: {}", s.code(), s.message());
    if let Some(source) = std::error::Error::source(&s) {
        let causes = error_chain(source);
        if !text.ends_with(&causes) {
            text = format!("{text}: {causes}");
        }
        if let Some(advice) = super::connect::advice(source, true) {
            text = format!("{text} ({advice})");
        }
    }
    text
}

/// Prints `line` of every message of a watch `stream` until the server ends it or `count` were printed; the
/// server's error ends it with that error.
pub(super) async fn print_watch<M>(
    stream: &mut tonic::Streaming<M>,
    count: Option<u64>,
    line: impl Fn(&M) -> Result<String, String>,
) -> Result<(), String> {
    let mut printed = 0;
    while count.is_none_or(|n| printed < n) {
        let Some(message) = stream.message().await.map_err(status)? else {
            break;
        };
        println!("{}", line(&message)?);
        printed += 1;
    }
    Ok(())
}

async fn dispatch(client: &mut Client, command: CtlCommand, json: bool) -> Result<(), String> {
    match command {
        CtlCommand::Session(cmd) => session(client, cmd, json).await,
        CtlCommand::Endpoint(cmd) => endpoint(client, cmd, json).await,
        CtlCommand::Stream(cmd) => stream(client, cmd, json).await,
        CtlCommand::Subscription(cmd) => subscription(client, cmd, json).await,
        CtlCommand::Metadata(cmd) => super::metadata::run(client, cmd, json).await,
        CtlCommand::Events(cmd) => super::events::run(client, cmd, json).await,
        CtlCommand::Stats { session, stream: Some(stream), .. } => {
            let request = v1::GetStreamStatsRequest { session_id: session, stream_id: stream };
            print(&client.get_stream_stats(request).await.map_err(status)?.into_inner(), json)
        }
        CtlCommand::Stats { session, endpoint: Some(endpoint), .. } => {
            let request = v1::GetEndpointStatsRequest { session_id: session, endpoint_id: endpoint };
            print(&client.get_endpoint_stats(request).await.map_err(status)?.into_inner(), json)
        }
        CtlCommand::Stats { session, .. } => {
            let request = v1::GetSessionStatsRequest { session_id: session };
            print(&client.get_session_stats(request).await.map_err(status)?.into_inner(), json)
        }
        CtlCommand::Node { cmd: Some(NodeCmd::List) } => {
            let node = client.get_node_info(v1::GetNodeInfoRequest {}).await.map_err(status)?.into_inner();
            super::output::print_nodes(&node, json)
        }
        CtlCommand::Node { cmd: Some(NodeCmd::Relays) } => {
            print(&client.list_relays(v1::ListRelaysRequest {}).await.map_err(status)?.into_inner(), json)
        }
        CtlCommand::Node { cmd: None } => {
            print(&client.get_node_info(v1::GetNodeInfoRequest {}).await.map_err(status)?.into_inner(), json)
        }
        CtlCommand::Plugin(PluginCmd::List) => {
            let node = client.get_node_info(v1::GetNodeInfoRequest {}).await.map_err(status)?.into_inner();
            super::output::print_plugins(&node.plugins, json)
        }
        CtlCommand::Plugin(PluginCmd::Load {
            name,
            path,
            module_file,
            chains,
            on_failure,
            fuel_per_call,
            memory_max_bytes,
            mode,
            async_queue_packets,
            async_pass,
            async_wake_delay_us,
            params,
        }) => {
            use v1::load_plugin_request::Module;
            let module = match (path, module_file) {
                (Some(path), _) => Module::Path(path),
                (None, Some(file)) => Module::ModuleBytes(
                    std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?,
                ),
                (None, None) => return Err("give --path or --module-file".into()),
            };
            let request = v1::LoadPluginRequest {
                name,
                module: Some(module),
                chains,
                on_failure: on_failure.unwrap_or_default(),
                fuel_per_call: fuel_per_call.unwrap_or_default(),
                memory_max_bytes: memory_max_bytes.unwrap_or_default(),
                params: params.into_iter().collect(),
                mode: mode.unwrap_or_default(),
                async_queue_packets: async_queue_packets.unwrap_or_default(),
                async_pass: async_pass.unwrap_or_default(),
                async_wake_delay_us: async_wake_delay_us.unwrap_or_default(),
            };
            let plugin = client.load_plugin(request).await.map_err(status)?.into_inner();
            super::output::print_plugin(&plugin, json)
        }
        CtlCommand::Plugin(PluginCmd::Attach { target, options }) => {
            chain_edit(client, target, Some(options), json).await
        }
        CtlCommand::Plugin(PluginCmd::Detach(target)) => chain_edit(client, target, None, json).await,
        CtlCommand::Plugin(PluginCmd::Unload { name }) => {
            let unloaded = client.unload_plugin(v1::UnloadPluginRequest { name }).await.map_err(status)?.into_inner();
            match unloaded.plugin {
                Some(plugin) => super::output::print_plugin(&plugin, json),
                None => Ok(()),
            }
        }
        CtlCommand::Drain { cancel } => {
            print(&client.drain(v1::DrainRequest { cancel }).await.map_err(status)?.into_inner(), json)
        }
    }
}

/// `plugin attach` (`attach` given: its options) or `plugin detach`: reads the stream's or subscription's chain,
/// adds the plugin with its options (or changes the options it has there, in place) or removes it, and replaces the
/// chain with an update (the server checks it as any update).
async fn chain_edit(
    client: &mut Client,
    target: ChainTarget,
    attach: Option<AttachOptions>,
    json: bool,
) -> Result<(), String> {
    let ChainTarget { name, session, stream, subscription } = target;
    let edit = |mut names: Vec<String>| -> Result<v1::InterceptorChain, String> {
        // A chain names a plugin bare or with its options after it.
        let named = |n: &String| ringfwd_tuning::ChainName::parse(n).plugin_name() == Some(name.as_str());
        let position = names.iter().position(named);
        match (&attach, position) {
            (Some(options), Some(at)) => {
                let spelled = options.spell(&name);
                if names[at] == spelled {
                    return Err(format!("the chain already names {spelled}: {}", names.join(",")));
                }
                names[at] = spelled;
            }
            (Some(options), None) => names.push(options.spell(&name)),
            (None, None) => return Err(format!("the chain does not name {name}: {}", names.join(","))),
            (None, Some(at)) => {
                names.remove(at);
            }
        }
        Ok(v1::InterceptorChain { names })
    };
    match (stream, subscription) {
        (Some(stream), _) => {
            let get = v1::GetStreamRequest { session_id: session.clone(), stream_id: stream.clone() };
            let current = client.get_stream(get).await.map_err(status)?.into_inner();
            let request = v1::UpdateStreamRequest {
                session_id: session,
                stream_id: stream,
                interceptors: Some(edit(current.interceptors)?),
                ..Default::default()
            };
            print(&client.update_stream(request).await.map_err(status)?.into_inner(), json)
        }
        (None, Some(subscription)) => {
            let get = v1::GetSubscriptionRequest { session_id: session.clone(), subscription_id: subscription.clone() };
            let current = client.get_subscription(get).await.map_err(status)?.into_inner();
            let request = v1::UpdateSubscriptionRequest {
                session_id: session,
                subscription_id: subscription,
                interceptors: Some(edit(current.interceptors)?),
                ..Default::default()
            };
            print(&client.update_subscription(request).await.map_err(status)?.into_inner(), json)
        }
        (None, None) => Err("give --stream or --subscription".into()),
    }
}

async fn session(client: &mut Client, cmd: SessionCmd, json: bool) -> Result<(), String> {
    match cmd {
        SessionCmd::Create { session, meta } => {
            let request = v1::CreateSessionRequest { session_id: session, metadata: initial(meta) };
            let r = client.create_session(request).await;
            print(&r.map_err(status)?.into_inner(), json)
        }
        SessionCmd::Get { session } => print(
            &client.get_session(v1::GetSessionRequest { session_id: session }).await.map_err(status)?.into_inner(),
            json,
        ),
        SessionCmd::List => {
            print(&client.list_sessions(v1::ListSessionsRequest {}).await.map_err(status)?.into_inner(), json)
        }
        SessionCmd::Delete { session } => {
            let r = client.delete_session(v1::DeleteSessionRequest { session_id: session }).await;
            print(&r.map_err(status)?.into_inner(), json)
        }
    }
}

async fn endpoint(client: &mut Client, cmd: EndpointCmd, json: bool) -> Result<(), String> {
    match cmd {
        EndpointCmd::Create { session, endpoint, address, latching, rtcp_address, rtcp_port_plus_one, meta } => {
            let request = v1::CreateEndpointRequest {
                session_id: session,
                endpoint_id: endpoint,
                media_address: address.map(|a| a.to_string()).unwrap_or_default(),
                latching,
                metadata: initial(meta),
                rtcp_address: rtcp_address.map(|a| a.to_string()).unwrap_or_default(),
                rtcp_port_plus_one,
            };
            print(&client.create_endpoint(request).await.map_err(status)?.into_inner(), json)
        }
        EndpointCmd::Get { session, endpoint } => {
            let request = v1::GetEndpointRequest { session_id: session, endpoint_id: endpoint };
            print(&client.get_endpoint(request).await.map_err(status)?.into_inner(), json)
        }
        EndpointCmd::List { session } => {
            let request = v1::ListEndpointsRequest { session_id: session };
            print(&client.list_endpoints(request).await.map_err(status)?.into_inner(), json)
        }
        EndpointCmd::Update { session, endpoint, address, rtcp_address, rtcp_port_plus_one } => {
            let request = v1::UpdateEndpointRequest {
                session_id: session,
                endpoint_id: endpoint,
                media_address: address.map(|a| a.to_string()).unwrap_or_default(),
                rtcp_address: rtcp_address.map(|a| a.to_string()).unwrap_or_default(),
                rtcp_port_plus_one,
            };
            print(&client.update_endpoint(request).await.map_err(status)?.into_inner(), json)
        }
        EndpointCmd::Delete { session, endpoint } => {
            let request = v1::DeleteEndpointRequest { session_id: session, endpoint_id: endpoint };
            print(&client.delete_endpoint(request).await.map_err(status)?.into_inner(), json)
        }
    }
}

async fn stream(client: &mut Client, cmd: StreamCmd, json: bool) -> Result<(), String> {
    match cmd {
        StreamCmd::Create { session, stream, endpoint, ssrc, kind, payload_types, clock_rate, meta, interceptors } => {
            let (kind, default_rate) = match kind {
                Kind::Audio => (v1::MediaKind::Audio, 48_000),
                Kind::Video => (v1::MediaKind::Video, 90_000),
            };
            let request = v1::CreateStreamRequest {
                session_id: session,
                stream_id: stream,
                endpoint_id: endpoint,
                ssrc,
                kind: kind.into(),
                payload_types,
                clock_rate_hz: clock_rate.unwrap_or(default_rate),
                metadata: initial(meta),
                interceptors: interceptors.map(|names| v1::InterceptorChain { names }),
            };
            print(&client.create_stream(request).await.map_err(status)?.into_inner(), json)
        }
        StreamCmd::Get { session, stream } => {
            let request = v1::GetStreamRequest { session_id: session, stream_id: stream };
            print(&client.get_stream(request).await.map_err(status)?.into_inner(), json)
        }
        StreamCmd::Locate { session, stream } => {
            let request = v1::LocateStreamRequest { session_id: session, stream_id: stream };
            print(&client.locate_stream(request).await.map_err(status)?.into_inner(), json)
        }
        StreamCmd::List { session } => {
            let request = v1::ListStreamsRequest { session_id: session };
            print(&client.list_streams(request).await.map_err(status)?.into_inner(), json)
        }
        StreamCmd::Update { session, stream, ssrc, payload_types, interceptors } => {
            let request = v1::UpdateStreamRequest {
                session_id: session,
                stream_id: stream,
                ssrc,
                payload_types: payload_types.map(|values| v1::PayloadTypes { values }),
                interceptors: interceptors.map(|names| v1::InterceptorChain { names }),
            };
            print(&client.update_stream(request).await.map_err(status)?.into_inner(), json)
        }
        StreamCmd::Delete { session, stream } => {
            let request = v1::DeleteStreamRequest { session_id: session, stream_id: stream };
            print(&client.delete_stream(request).await.map_err(status)?.into_inner(), json)
        }
    }
}

async fn subscription(client: &mut Client, cmd: SubscriptionCmd, json: bool) -> Result<(), String> {
    let update = |session_id: String, subscription_id: String, paused, stream_id| v1::UpdateSubscriptionRequest {
        session_id,
        subscription_id,
        paused,
        stream_id,
        ..Default::default()
    };
    match cmd {
        SubscriptionCmd::Create {
            session,
            subscription,
            stream,
            endpoint,
            out_ssrc,
            pt_map,
            paused,
            interceptors,
            rtx,
        } => {
            let request = v1::CreateSubscriptionRequest {
                session_id: session,
                subscription_id: subscription,
                stream_id: stream,
                endpoint_id: endpoint,
                out_ssrc: out_ssrc.unwrap_or(0),
                payload_type_map: pt_map.into_iter().map(|(from, to)| PayloadTypeMapping { from, to }).collect(),
                paused,
                interceptors: interceptors.map(|names| v1::InterceptorChain { names }),
                rtx: rtx.map(|(ssrc, payload_type)| v1::Rtx { ssrc, payload_type }),
            };
            print(&client.create_subscription(request).await.map_err(status)?.into_inner(), json)
        }
        SubscriptionCmd::Get { session, subscription } => {
            let request = v1::GetSubscriptionRequest { session_id: session, subscription_id: subscription };
            print(&client.get_subscription(request).await.map_err(status)?.into_inner(), json)
        }
        SubscriptionCmd::List { session } => {
            let request = v1::ListSubscriptionsRequest { session_id: session };
            print(&client.list_subscriptions(request).await.map_err(status)?.into_inner(), json)
        }
        SubscriptionCmd::Pause { session, subscription } => {
            let r = client.update_subscription(update(session, subscription, Some(true), None)).await;
            print(&r.map_err(status)?.into_inner(), json)
        }
        SubscriptionCmd::Resume { session, subscription } => {
            let r = client.update_subscription(update(session, subscription, Some(false), None)).await;
            print(&r.map_err(status)?.into_inner(), json)
        }
        SubscriptionCmd::Switch { session, subscription, stream } => {
            let r = client.update_subscription(update(session, subscription, None, Some(stream))).await;
            print(&r.map_err(status)?.into_inner(), json)
        }
        SubscriptionCmd::Update { session, subscription, pt_map, interceptors, rtx, no_rtx } => {
            let request = v1::UpdateSubscriptionRequest {
                session_id: session,
                subscription_id: subscription,
                payload_type_map: pt_map.map(|pairs| v1::PayloadTypeMap {
                    mappings: pairs.into_iter().map(|(from, to)| PayloadTypeMapping { from, to }).collect(),
                }),
                interceptors: interceptors.map(|names| v1::InterceptorChain { names }),
                rtx: match (rtx, no_rtx) {
                    (Some((ssrc, payload_type)), _) => Some(v1::Rtx { ssrc, payload_type }),
                    (None, true) => Some(v1::Rtx::default()),
                    (None, false) => None,
                },
                ..Default::default()
            };
            print(&client.update_subscription(request).await.map_err(status)?.into_inner(), json)
        }
        SubscriptionCmd::Delete { session, subscription } => {
            let request = v1::DeleteSubscriptionRequest { session_id: session, subscription_id: subscription };
            print(&client.delete_subscription(request).await.map_err(status)?.into_inner(), json)
        }
    }
}
