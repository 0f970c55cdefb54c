//! What the daemon tells its operator: the start-up banner, the machine-readable ready line, the periodic
//! counters line and the final counters.
//!
//! Owns the formats. The ready line (`ringfwd: ready workers=N media=ADDR[,ADDR...] api=ADDR
//! [metrics=ADDR]`) and the final line (`ringfwd: final counters {json}`) go to stdout and are relied on by the
//! bench suite and the end-to-end tests; keep them stable (new fields go at the end of the ready line).

use std::net::SocketAddr;

use ringfwd_dataplane::control::Counters;
use ringfwd_dataplane::control::WorkerHandle;
use ringfwd_tuning::{Config, Driver};

use crate::daemon::StatePaths;
use serde_json::{Map, Value};

/// The human-readable start-up banner.
pub fn banner(
    config: &Config,
    workers: &[WorkerHandle],
    media: &[SocketAddr],
    api: SocketAddr,
    metrics: Option<SocketAddr>,
    routes: usize,
    paths: &StatePaths,
) -> String {
    let driver = match config.media.driver {
        Driver::IoUring => "io_uring",
        Driver::Mmsg => "recvmmsg/sendmmsg",
    };
    let cores: Vec<String> = workers.iter().map(|w| format!("worker {} on core {}", w.index, w.core)).collect();
    let media: Vec<String> = media.iter().map(ToString::to_string).collect();
    let sessions = config.sessions.len();
    let metrics = match metrics {
        Some(address) => format!("http://{address}/metrics (Prometheus)"),
        None if config.metrics.enabled => {
            format!("not served (metrics.listen {} could not be bound)", config.metrics.listen)
        }
        None => "off (metrics.enabled = false)".to_string(),
    };
    let api = match &config.api.tls {
        Some(tls) if tls.client_ca_file.is_some() => {
            format!("https://{api} (ringfwd.v1.Ringfwd; TLS, client certificates required)")
        }
        Some(_) => format!("https://{api} (ringfwd.v1.Ringfwd; TLS)"),
        None => format!("grpc://{api} (ringfwd.v1.Ringfwd; plaintext)"),
    };
    format!(
        "ringfwd {version}: forwarding RTP/RTCP with the {driver} driver\n\
         \x20 workers:  {cores}\n\
         \x20 media:    {media} (send RTP/RTCP here)\n\
         \x20 api:      {api}\n\
         \x20 metrics:  {metrics}\n\
         \x20 static:   {sessions} session(s) from the config, {routes} resources created\n\
         \x20 state:    {state} (pcap recordings of tapped streams: {tap})\n\
         \x20 next:     `ringfwd ctl session create call-1`, then endpoint/stream/subscription (`ringfwd ctl --help`);\n\
         \x20           load-test with `cargo run --release -p ringfwd-bench -- compare`;\n\
         \x20           Ctrl-C stops (in-flight packets are sent first)",
        version = env!("CARGO_PKG_VERSION"),
        cores = cores.join(", "),
        media = media.join(", "),
        state = paths.state.display(),
        tap = paths.tap.display(),
    )
}

/// The line the bench suite and tests wait for; `metrics=ADDR` comes last, and only when the Prometheus
/// endpoint is served (the readers of this line skip fields they do not know).
pub fn ready_line(workers: usize, media: &[SocketAddr], api: SocketAddr, metrics: Option<SocketAddr>) -> String {
    let media: Vec<String> = media.iter().map(ToString::to_string).collect();
    let metrics = metrics.map(|address| format!(" metrics={address}")).unwrap_or_default();
    format!("ringfwd: ready workers={workers} media={} api={api}{metrics}", media.join(","))
}

/// Every counter summed over workers, `(name, total)` in declaration order.
pub fn total(per_worker: &[Counters]) -> Vec<(&'static str, u64)> {
    let mut total: Vec<(&'static str, u64)> = Counters::default().iter().collect();
    for c in per_worker {
        for (slot, (_, value)) in total.iter_mut().zip(c.iter()) {
            slot.1 += value;
        }
    }
    total
}

fn object<'a>(pairs: impl Iterator<Item = (&'a str, u64)>) -> Value {
    Value::Object(pairs.map(|(name, value)| (name.to_string(), Value::from(value))).collect::<Map<_, _>>())
}

/// The final line: per-worker counters and their total.
pub fn final_line(per_worker: &[Counters]) -> String {
    let workers: Vec<Value> = per_worker.iter().map(|c| object(c.iter())).collect();
    let json = serde_json::json!({ "total": object(total(per_worker).into_iter()), "workers": workers });
    format!("ringfwd: final counters {json}")
}

/// One periodic log line: the totals that matter most, and every drop reason that is not zero.
pub fn periodic_line(per_worker: &[Counters]) -> String {
    const SHOWN: &[&str] = &[
        "rx_packets",
        "forwarded_packets",
        "consumed_no_subscriber",
        "handover_out",
        "streams",
        "subscriptions",
        "gso_segments",
        "send_errors",
        "kernel_rx_dropped",
    ];
    total(per_worker)
        .into_iter()
        .filter(|(name, value)| SHOWN.contains(name) || (name.starts_with("drop_") && *value > 0))
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_line_sums_workers_and_parses_as_json() {
        let a = Counters { rx_packets: 3, ..Counters::default() };
        let b = Counters { rx_packets: 4, forwarded_packets: 12, ..Counters::default() };
        let line = final_line(&[a, b]);
        let json: Value = serde_json::from_str(line.strip_prefix("ringfwd: final counters ").unwrap()).unwrap();
        assert_eq!(json["total"]["rx_packets"], 7);
        assert_eq!(json["total"]["forwarded_packets"], 12);
        assert_eq!(json["workers"][1]["rx_packets"], 4);
    }

    #[test]
    fn ready_line_lists_every_media_address() {
        let media: Vec<SocketAddr> = vec!["127.0.0.1:4".parse().unwrap(), "[::1]:4".parse().unwrap()];
        let api = "127.0.0.1:5".parse().unwrap();
        assert_eq!(
            ready_line(2, &media, api, None),
            "ringfwd: ready workers=2 media=127.0.0.1:4,[::1]:4 api=127.0.0.1:5"
        );
        let metrics = Some("127.0.0.1:6".parse().unwrap());
        let line = ready_line(1, &media[..1], api, metrics);
        assert_eq!(line, "ringfwd: ready workers=1 media=127.0.0.1:4 api=127.0.0.1:5 metrics=127.0.0.1:6");
        assert!(ringfwd_tests::daemon::parse_ready(&line).is_some(), "the tests' reader skips the new field");
    }
}
