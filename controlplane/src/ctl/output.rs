//! How `ringfwd ctl` prints responses: a table for people, the protobuf JSON mapping for programs.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use prost_reflect::{DescriptorPool, DynamicMessage};
use ringfwd_proto::v1;

/// A response that can be printed either way.
pub trait Printable: prost::Message + Sized {
    /// Fully qualified protobuf name, e.g. `ringfwd.v1.Session`.
    const TYPE: &'static str;
    /// Column headers.
    fn header() -> Vec<&'static str>;
    /// The rows.
    fn rows(&self) -> Vec<Vec<String>>;
}

/// Prints `message` as JSON (protobuf JSON mapping) or as a table.
pub fn print<M: Printable>(message: &M, json: bool) -> Result<(), String> {
    if json {
        println!("{}", to_json(message)?);
    } else {
        let mut table = Table::new();
        table.load_style(UTF8_BORDERS_ONLY).set_header(M::header());
        for row in message.rows() {
            table.add_row(row);
        }
        println!("{table}");
    }
    Ok(())
}

/// The plugins of a node: a table, or a JSON array of `ringfwd.v1.Plugin`.
pub fn print_plugins(plugins: &[v1::Plugin], json: bool) -> Result<(), String> {
    if json {
        let messages = plugins.iter().map(|p| dynamic(p, "ringfwd.v1.Plugin")).collect::<Result<Vec<_>, _>>()?;
        println!("{}", serde_json::to_string_pretty(&messages).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_header([
        "NAME",
        "KIND",
        "CHAINS",
        "MODE",
        "ON FAILURE",
        "FUEL/CALL",
        "MEMORY",
        "CALLS",
        "NS/CALL",
        "DROPS",
        "FAULTS",
        "DISABLED",
        "PATH",
    ]);
    for p in plugins {
        let get = |name: &str| p.counters.get(name).copied().unwrap_or(0);
        let wasm = p.kind == "wasm";
        let shown = |value: String| if wasm { value } else { "-".to_owned() };
        table.add_row([
            p.name.clone(),
            p.kind.clone(),
            p.chains.join(","),
            shown(match p.mode.as_str() {
                "async" if p.async_wake_delay_us > 0 => {
                    format!("async/{} q{} +{}us", p.async_pass, p.async_queue_packets, p.async_wake_delay_us)
                }
                "async" => format!("async/{} q{}", p.async_pass, p.async_queue_packets),
                other => other.to_owned(),
            }),
            shown(p.on_failure.clone()),
            shown(p.fuel_per_call.to_string()),
            shown(p.memory_max_bytes.to_string()),
            shown(get("calls").to_string()),
            shown(if get("timed_calls") == 0 { "-".to_owned() } else { p.ns_per_call.to_string() }),
            shown(get("drops").to_string()),
            shown(
                (get("traps")
                    + get("out_of_fuel")
                    + get("bad_verdicts")
                    + get("bad_rewrites")
                    + get("instantiation_failures"))
                .to_string(),
            ),
            shown(format!("{} / {}", get("disabled"), get("instances"))),
            shown(p.path.clone()),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// The cluster's nodes: a table (with the directory's backend, and its error when it could not be read), or a JSON
/// array of `ringfwd.v1.ClusterNode`.
pub fn print_nodes(node: &v1::NodeInfo, json: bool) -> Result<(), String> {
    if json {
        let nodes =
            node.cluster_nodes.iter().map(|n| dynamic(n, "ringfwd.v1.ClusterNode")).collect::<Result<Vec<_>, _>>()?;
        println!("{}", serde_json::to_string_pretty(&nodes).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("directory: {} (this node: {})", node.directory, node.node_id);
    if !node.directory_error.is_empty() {
        return Err(format!("the directory could not be read: {}", node.directory_error));
    }
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_header([
        "NODE",
        "RELAY",
        "API",
        "LEASE LEFT",
        "WORKERS",
        "SESSIONS",
        "STREAMS",
        "SUBSCRIPTIONS",
        "PLACED",
    ]);
    for n in &node.cluster_nodes {
        let name = if n.this_node { format!("{} *", n.node_id) } else { n.node_id.clone() };
        table.add_row([
            name,
            n.relay_address.clone(),
            n.api_address.clone(),
            format!("{} ms", n.lease_remaining_ms),
            n.workers.to_string(),
            n.sessions.to_string(),
            n.streams.to_string(),
            n.subscriptions.to_string(),
            n.placed_streams.to_string(),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// One plugin: a table of one row, or the JSON object of a `ringfwd.v1.Plugin`.
pub fn print_plugin(plugin: &v1::Plugin, json: bool) -> Result<(), String> {
    if json {
        let message = dynamic(plugin, "ringfwd.v1.Plugin")?;
        println!("{}", serde_json::to_string_pretty(&message).map_err(|e| e.to_string())?);
        return Ok(());
    }
    print_plugins(std::slice::from_ref(plugin), false)
}

/// The protobuf JSON mapping of `message`.
pub fn to_json<M: Printable>(message: &M) -> Result<String, String> {
    serde_json::to_string_pretty(&dynamic(message, M::TYPE)?).map_err(|e| e.to_string())
}

/// The compact (one-line) protobuf JSON mapping of `message`, a `type_name` (e.g. `ringfwd.v1.Event`).
pub fn compact_json(message: &impl prost::Message, type_name: &str) -> Result<String, String> {
    serde_json::to_string(&dynamic(message, type_name)?).map_err(|e| e.to_string())
}

/// The API's compiled schema, decoded once (a `--json` watch prints one line per event).
fn pool() -> Result<&'static DescriptorPool, String> {
    static POOL: std::sync::OnceLock<Result<DescriptorPool, String>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(ringfwd_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

fn dynamic(message: &impl prost::Message, type_name: &str) -> Result<DynamicMessage, String> {
    let pool = pool()?;
    let descriptor = pool.get_message_by_name(type_name).ok_or_else(|| format!("no descriptor for {type_name}"))?;
    DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).map_err(|e| e.to_string())
}

fn version(v: Option<&v1::MetadataVersion>) -> String {
    let v = v.copied().unwrap_or_default();
    crate::metadata::Version { wall_us: v.wall_us, counter: v.counter, node_id: v.node_id }.to_string()
}

fn metadata_row(e: &v1::MetadataEntry) -> Vec<String> {
    vec![e.key.clone(), e.value.clone(), version(e.version.as_ref()), e.set_once.to_string()]
}

/// One line for a watch event: compact protobuf JSON, or `snapshot|change|deleted VERSION key=value...` (a
/// deleted key as `-key`).
pub fn event_line(event: &v1::MetadataEvent, json: bool) -> Result<String, String> {
    if json {
        return compact_json(event, "ringfwd.v1.MetadataEvent");
    }
    use v1::metadata_event::Kind;
    let pairs = |entries: &[v1::MetadataEntry]| {
        let pair =
            |e: &v1::MetadataEntry| if e.deleted { format!(" -{}", e.key) } else { format!(" {}={}", e.key, e.value) };
        entries.iter().map(pair).collect::<String>()
    };
    let (kind, rest) = match &event.kind {
        Some(Kind::Snapshot(s)) => ("snapshot", pairs(&s.entries)),
        Some(Kind::Change(c)) => ("change", pairs(&c.entries)),
        Some(Kind::Deleted(_)) => ("deleted", String::new()),
        None => ("unknown", String::new()),
    };
    Ok(format!("{kind} {}{rest}", version(event.version.as_ref())))
}

fn kind(k: i32) -> String {
    match v1::MediaKind::try_from(k) {
        Ok(v1::MediaKind::Audio) => "audio".into(),
        Ok(v1::MediaKind::Video) => "video".into(),
        _ => "unspecified".into(),
    }
}

fn pt_map(map: &[v1::PayloadTypeMapping]) -> String {
    map.iter().map(|m| format!("{}:{}", m.from, m.to)).collect::<Vec<_>>().join(",")
}

fn session_row(s: &v1::Session) -> Vec<String> {
    vec![s.session_id.clone(), s.endpoints.to_string(), s.streams.to_string(), s.subscriptions.to_string()]
}

fn endpoint_row(e: &v1::Endpoint) -> Vec<String> {
    vec![
        e.session_id.clone(),
        e.endpoint_id.clone(),
        e.media_address.clone(),
        e.latching.to_string(),
        if e.latched_address.is_empty() { "-".to_owned() } else { e.latched_address.clone() },
        if e.rtcp_address.is_empty() { "mux".to_owned() } else { e.rtcp_address.clone() },
        e.send_to.join(" "),
    ]
}

fn stream_row(s: &v1::Stream) -> Vec<String> {
    let pts = s.payload_types.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    vec![
        s.session_id.clone(),
        s.stream_id.clone(),
        s.endpoint_id.clone(),
        format!("{:#010x}", s.ssrc),
        kind(s.kind),
        pts,
        s.clock_rate_hz.to_string(),
        s.worker.to_string(),
    ]
}

fn subscription_row(s: &v1::Subscription) -> Vec<String> {
    vec![
        s.session_id.clone(),
        s.subscription_id.clone(),
        s.stream_id.clone(),
        s.endpoint_id.clone(),
        if s.out_ssrc == 0 { "-".into() } else { format!("{:#010x}", s.out_ssrc) },
        pt_map(&s.payload_type_map),
        match &s.rtx {
            Some(rtx) => format!("{:#010x} pt {}", rtx.ssrc, rtx.payload_type),
            None => "-".into(),
        },
        s.paused.to_string(),
    ]
}

const SESSION: [&str; 4] = ["SESSION", "ENDPOINTS", "STREAMS", "SUBSCRIPTIONS"];
const ENDPOINT: [&str; 7] =
    ["SESSION", "ENDPOINT", "MEDIA ADDRESS", "LATCHING", "LATCHED ADDRESS", "RTCP ADDRESS", "SEND TO"];
const STREAM: [&str; 8] = ["SESSION", "STREAM", "ENDPOINT", "SSRC", "KIND", "PT", "CLOCK HZ", "WORKER"];
const SUBSCRIPTION: [&str; 8] =
    ["SESSION", "SUBSCRIPTION", "STREAM", "ENDPOINT", "OUT SSRC", "PT MAP", "RTX", "PAUSED"];

macro_rules! printable {
    ($t:ty, $name:literal, $header:expr, |$m:ident| $rows:expr) => {
        impl Printable for $t {
            const TYPE: &'static str = concat!("ringfwd.v1.", $name);
            fn header() -> Vec<&'static str> {
                $header.to_vec()
            }
            fn rows(&self) -> Vec<Vec<String>> {
                let $m = self;
                $rows
            }
        }
    };
}

printable!(v1::Session, "Session", SESSION, |m| vec![session_row(m)]);
printable!(v1::ListSessionsResponse, "ListSessionsResponse", SESSION, |m| m.sessions.iter().map(session_row).collect());
printable!(v1::Endpoint, "Endpoint", ENDPOINT, |m| vec![endpoint_row(m)]);
printable!(v1::ListEndpointsResponse, "ListEndpointsResponse", ENDPOINT, |m| m
    .endpoints
    .iter()
    .map(endpoint_row)
    .collect());
printable!(v1::Stream, "Stream", STREAM, |m| vec![stream_row(m)]);
printable!(v1::ListStreamsResponse, "ListStreamsResponse", STREAM, |m| m.streams.iter().map(stream_row).collect());
printable!(v1::Subscription, "Subscription", SUBSCRIPTION, |m| vec![subscription_row(m)]);
printable!(v1::ListSubscriptionsResponse, "ListSubscriptionsResponse", SUBSCRIPTION, |m| m
    .subscriptions
    .iter()
    .map(subscription_row)
    .collect());
printable!(v1::StreamLocation, "StreamLocation", ["SESSION", "STREAM", "NODE", "API", "RELAY"], |m| vec![vec![
    m.session_id.clone(),
    m.stream_id.clone(),
    if m.this_node { format!("{} *", m.node_id) } else { m.node_id.clone() },
    m.api_address.clone(),
    m.relay_address.clone(),
]]);
printable!(
    v1::DeleteResponse,
    "DeleteResponse",
    ["DELETED SESSIONS", "ENDPOINTS", "STREAMS", "SUBSCRIPTIONS"],
    |m| vec![vec![m.sessions.to_string(), m.endpoints.to_string(), m.streams.to_string(), m.subscriptions.to_string()]]
);
printable!(v1::DrainResponse, "DrainResponse", ["DRAINING", "SESSIONS REMAINING"], |m| vec![vec![
    m.draining.to_string(),
    m.sessions_remaining.to_string()
]]);
printable!(v1::NodeInfo, "NodeInfo", ["ITEM", "VALUE"], |m| node_rows(m));
printable!(v1::GetMetadataResponse, "GetMetadataResponse", ["KEY", "VALUE", "VERSION", "SET ONCE"], |m| m
    .entries
    .iter()
    .map(metadata_row)
    .collect());
printable!(v1::MetadataWriteResponse, "MetadataWriteResponse", ["VERSION"], |m| vec![vec![version(
    m.version.as_ref()
)]]);

const STATS: [&str; 11] = [
    "WHAT",
    "PACKETS",
    "BYTES",
    "LOST",
    "JITTER US",
    "BITRATE",
    "NACKS",
    "RETRANSMITTED",
    "PLI/FIR",
    "RTT US",
    "AGE MS",
];

fn stats_row(what: String, s: Option<&v1::StatsSample>) -> Vec<String> {
    let Some(s) = s else {
        let mut row = vec![what];
        row.extend(std::iter::repeat_n("-".to_owned(), STATS.len() - 1));
        return row;
    };
    vec![
        what,
        s.packets.to_string(),
        s.bytes.to_string(),
        s.lost.to_string(),
        s.jitter_us.to_string(),
        s.bitrate_bps.to_string(),
        s.nacks_received.to_string(),
        s.retransmitted.to_string(),
        format!("{}/{}", s.plis_received, s.firs_received),
        s.rtt_us.to_string(),
        s.age_ms.to_string(),
    ]
}

printable!(
    v1::ListRelaysResponse,
    "ListRelaysResponse",
    ["DIRECTION", "SESSION", "STREAM", "LEG", "PACKETS", "LOST", "JITTER US", "RTT US", "FEEDS"],
    |m| {
        let numbers = |s: Option<&v1::StatsSample>| match s {
            Some(s) => [s.packets.to_string(), s.lost.to_string(), s.jitter_us.to_string(), s.rtt_us.to_string()],
            None => ["-".to_owned(), "-".to_owned(), "-".to_owned(), "-".to_owned()],
        };
        let legs = m.legs.iter().map(|l| {
            let mut row =
                vec![format!("to {}", l.node_id), l.session_id.clone(), l.stream_id.clone(), l.leg_id.clone()];
            row.extend(numbers(l.egress.as_ref()));
            row.push("-".to_owned());
            row
        });
        let relayed = m.relayed.iter().map(|r| {
            let mut row =
                vec![format!("from {}", r.node_id), r.session_id.clone(), r.stream_id.clone(), "-".to_owned()];
            row.extend(numbers(r.ingress.as_ref()));
            row.push(r.subscriptions.to_string());
            row
        });
        legs.chain(relayed).collect()
    }
);
printable!(v1::StreamStats, "StreamStats", STATS, |m| {
    let mut rows = vec![stats_row(format!("stream {} (ingress)", m.stream_id), m.ingress.as_ref())];
    rows.extend(
        m.subscriptions
            .iter()
            .map(|s| stats_row(format!("subscription {} (egress)", s.subscription_id), s.egress.as_ref())),
    );
    rows
});
printable!(v1::AggregateStats, "AggregateStats", STATS, |m| vec![
    stats_row(format!("published ({} streams)", m.streams), m.published.as_ref()),
    stats_row(format!("received ({} subscriptions)", m.subscriptions), m.received.as_ref()),
]);

fn node_rows(n: &v1::NodeInfo) -> Vec<Vec<String>> {
    let mut rows = vec![
        vec!["version".into(), n.version.clone()],
        vec!["boot id".into(), format!("{:016x}", n.boot_id)],
        vec!["started".into(), super::events::utc(n.started_unix_ms)],
        vec!["driver".into(), n.driver.clone()],
        vec!["draining".into(), n.draining.to_string()],
        vec!["media addresses".into(), n.media_addresses.join(" ")],
        vec!["advertised".into(), n.advertise_addresses.join(" ")],
    ];
    if !n.rtcp_addresses.is_empty() {
        rows.push(vec!["rtcp addresses".into(), n.rtcp_addresses.join(" ")]);
    }
    if let Some(u) = &n.usage {
        let limits = n.limits.unwrap_or_default();
        rows.push(vec!["sessions".into(), format!("{} / {}", u.sessions, limits.max_sessions)]);
        rows.push(vec!["endpoints".into(), format!("{} / {}", u.endpoints, limits.max_endpoints)]);
        rows.push(vec!["streams".into(), format!("{} / {}", u.streams, limits.max_streams)]);
        rows.push(vec!["subscriptions".into(), format!("{} / {}", u.subscriptions, limits.max_subscriptions)]);
    }
    for w in &n.workers {
        let get = |name: &str| w.counters.get(name).copied().unwrap_or(0);
        rows.push(vec![
            format!("worker {} (core {})", w.index, w.core),
            format!(
                "rx {} forwarded {} streams {} subscriptions {} dropped {}",
                get("rx_packets"),
                get("forwarded_packets"),
                get("streams"),
                get("subscriptions"),
                w.counters.iter().filter(|(k, _)| k.starts_with("drop_")).map(|(_, v)| v).sum::<u64>()
            ),
        ]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_the_protobuf_mapping() {
        let s = v1::Stream {
            session_id: "c".into(),
            stream_id: "a".into(),
            ssrc: 5,
            kind: 2,
            clock_rate_hz: 90000,
            ..Default::default()
        };
        let json: serde_json::Value = serde_json::from_str(&to_json(&s).unwrap()).unwrap();
        assert_eq!(json["sessionId"], "c");
        assert_eq!(json["kind"], "MEDIA_KIND_VIDEO");
        assert_eq!(json["clockRateHz"], 90000);
    }

    #[test]
    fn watch_events_print_one_line_each() {
        let entry = |key: &str, value: &str, deleted| v1::MetadataEntry {
            key: key.into(),
            value: value.into(),
            deleted,
            ..Default::default()
        };
        let version = Some(v1::MetadataVersion { wall_us: 5, counter: 1, node_id: 2 });
        let change = v1::MetadataChange { entries: vec![entry("app.a", "x", false), entry("app.b", "", true)] };
        let event =
            v1::MetadataEvent { version, kind: Some(v1::metadata_event::Kind::Change(change)), ..Default::default() };
        assert_eq!(event_line(&event, false).unwrap(), "change 5.1.2 app.a=x -app.b");
        let json: serde_json::Value = serde_json::from_str(&event_line(&event, true).unwrap()).unwrap();
        assert_eq!(json["change"]["entries"][0]["key"], "app.a");
        assert_eq!(json["version"]["wallUs"], "5", "64-bit integers are strings in the JSON mapping");
        assert!(!event_line(&event, true).unwrap().contains('\n'));
    }

    #[test]
    fn every_row_has_a_cell_per_column() {
        let s = v1::Subscription {
            out_ssrc: 0,
            payload_type_map: vec![v1::PayloadTypeMapping { from: 1, to: 2 }],
            ..Default::default()
        };
        assert_eq!(s.rows()[0].len(), v1::Subscription::header().len());
        assert_eq!(s.rows()[0][5], "1:2");
        let st = v1::Stream::default();
        assert_eq!(st.rows()[0].len(), v1::Stream::header().len());
        let e = v1::Endpoint::default();
        assert_eq!(e.rows()[0].len(), v1::Endpoint::header().len());
    }
}
