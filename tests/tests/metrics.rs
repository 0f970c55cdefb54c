//! The Prometheus endpoint of the real daemon: started with `[metrics] listen = "127.0.0.1:0"` (its address
//! read from the ready line), a stream routed to a subscriber through the API, a known number of packets sent,
//! then `GET /metrics` over a plain TCP connection, parsed with a Prometheus text-format parser: every line
//! parses, the packet counters agree exactly with what was sent and what the subscriber received, drops carry
//! their reason, the latency histogram counts every forwarded packet with monotonic buckets, the API's requests
//! are counted by method and code, the registry gauges match the registry, and other paths answer 404.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use prometheus_parse::{LineInfo, Sample, Scrape, Value};
use ringfwd_tests::api::{endpoint, expect_status, subscription, v1, video_stream, wait_until, Code};
use ringfwd_tests::daemon::{binary, parse_ready};
use ringfwd_tests::{rtp_packet, Api, Peer};

const WAIT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Even: with two workers the stream belongs to worker 0.
const SSRC: u32 = 0x7000_0000;
const UNKNOWN_SSRC: u32 = 0x7000_0002;
const FORWARDED: usize = 300;
const UNKNOWN: usize = 7;

/// A daemon started with its own config; killed on drop.
struct Running {
    child: Child,
    api: SocketAddr,
    media: SocketAddr,
    metrics: SocketAddr,
    token_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Running {
    let dir = ringfwd_tests::daemon::private_tempdir();
    let token_file = dir.path().join("dev-token");
    let config = format!(
        "[placement]\nworker_cores = [0, 1]\n[media]\naddresses = [\"127.0.0.1:0\"]\n\
         [pool]\nbuffers_per_worker = 1024\nspare_buffers_per_worker = 100\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
         [auth]\ndev_token_file = {:?}\n[interceptors]\ningress = []\negress = []\n",
        token_file.display().to_string()
    );
    let config_path = dir.path().join("ringfwd.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ringfwd");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let ready = rx.recv_timeout(READY_TIMEOUT).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("ringfwd did not print its ready line in time")
    });
    let (workers, media, api) = parse_ready(ready.trim()).unwrap_or_else(|| panic!("ready line {ready:?}"));
    assert_eq!(workers, 2);
    let metrics = ready
        .split_whitespace()
        .find_map(|field| field.strip_prefix("metrics="))
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no metrics= in the ready line {ready:?}"));
    Running { child, api, media: media[0], metrics, token_file, _dir: dir }
}

/// `GET path` over a fresh connection, bounded in time; answers (status code, body).
fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&address, WAIT).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    if status == 200 && path == "/metrics" {
        assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    }
    (status, body.to_string())
}

/// Scrapes `/metrics`; asserts that every line is a help, type or sample line the parser reads.
fn scrape(address: SocketAddr) -> Scrape {
    let (status, body) = http_get(address, "/metrics");
    assert_eq!(status, 200, "{body}");
    for line in body.lines() {
        let parsed = LineInfo::parse(line);
        let ok = match parsed {
            LineInfo::Doc { .. } | LineInfo::Type { .. } => true,
            LineInfo::Sample { value, .. } => value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            _ => false,
        };
        assert!(ok, "line does not parse: {line:?}");
    }
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("the exposition parses")
}

fn samples<'a>(scrape: &'a Scrape, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
    scrape.samples.iter().filter(move |s| s.metric == name)
}

/// The sum of the counter, gauge or histogram `_count`/`_sum` `name` over the series whose labels include `labels`.
fn sum(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut found = false;
    let total = samples(scrape, name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| {
            found = true;
            match s.value {
                // A histogram's _sum and _count read as untyped.
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                ref other => panic!("{name} is not a single value: {other:?}"),
            }
        })
        .sum();
    assert!(found, "no series {name}{labels:?}");
    total
}

#[test]
fn metrics_endpoint_parses_and_agrees_with_what_was_sent_and_received() {
    let publisher = Peer::bind("127.0.0.1");
    let subscriber = Peer::bind("127.0.0.1");
    let daemon = start();
    let token = std::fs::read_to_string(&daemon.token_file).expect("dev token");
    let api = Api::connect(daemon.api, Some(token.trim()));

    api.session("call").expect("CreateSession");
    api.create_endpoint(endpoint("call", "pub", publisher.addr())).expect("CreateEndpoint pub");
    api.create_endpoint(endpoint("call", "sub", subscriber.addr())).expect("CreateEndpoint sub");
    api.create_stream(video_stream("call", "cam", "pub", SSRC)).expect("CreateStream");
    api.create_subscription(subscription("call", "s", "cam", "sub", 0)).expect("CreateSubscription");
    let missing = api.get_session(v1::GetSessionRequest { session_id: "nope".into() });
    expect_status(missing, Code::NotFound, &["nope"]);

    for seq in 0..FORWARDED {
        let payload = [0x5a; 160];
        publisher.send(&rtp_packet(SSRC, seq as u16, seq as u32 * 3000, 96, false, &payload), daemon.media);
        if seq % 50 == 49 {
            // Paced, so a debug build on a busy machine is never overrun: the test checks counting, not capacity.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for seq in 0..UNKNOWN {
        publisher.send(&rtp_packet(UNKNOWN_SSRC, seq as u16, 0, 96, false, &[0; 40]), daemon.media);
    }
    let received = subscriber.recv(FORWARDED, WAIT).len();
    assert_eq!(received, FORWARDED, "the subscriber received every packet");

    // The workers publish their counters within a millisecond or so; wait (bounded) until the scrape has them all.
    let expected_rx = (FORWARDED + UNKNOWN) as f64;
    let mut last = None;
    let settled = wait_until(WAIT, || {
        let s = scrape(daemon.metrics);
        let done = sum(&s, "ringfwd_rx_packets_total", &[]) == expected_rx
            && sum(&s, "ringfwd_packets_dropped_total", &[("reason", "unknown_ssrc")]) == UNKNOWN as f64;
        last = Some(s);
        done
    });
    let s = last.expect("scraped at least once");
    assert!(settled, "rx {} of {expected_rx}", sum(&s, "ringfwd_rx_packets_total", &[]));

    // Packets: in, out (exactly what the subscriber received), and per worker.
    assert_eq!(sum(&s, "ringfwd_rx_packets_total", &[]), expected_rx);
    assert_eq!(sum(&s, "ringfwd_forwarded_packets_total", &[]), received as f64);
    assert_eq!(sum(&s, "ringfwd_forwarded_packets_total", &[("worker", "0")]), received as f64);
    let (sends, gso_sends) = (sum(&s, "ringfwd_sends_total", &[]), sum(&s, "ringfwd_gso_sends_total", &[]));
    let segments = sum(&s, "ringfwd_gso_segments_total", &[]);
    // What ringfwd sends of its own (here the keyframe request a new video subscription makes) is sent too.
    let own = sum(&s, "ringfwd_interceptor_emitted_total", &[]);
    assert_eq!(own, 1.0, "the keyframe request of the new video subscription");
    assert_eq!(sends - gso_sends + segments, received as f64 + own, "packets in single sends plus GSO segments");
    assert_eq!(samples(&s, "ringfwd_rx_packets_total").count(), 2, "one series per worker");

    // Drops: one metric, the reason as a label, every reason present.
    let reasons: Vec<&str> = samples(&s, "ringfwd_packets_dropped_total")
        .filter(|x| x.labels.get("worker") == Some("0"))
        .filter_map(|x| x.labels.get("reason"))
        .collect();
    assert!(reasons.contains(&"unknown_ssrc") && reasons.contains(&"tx_full"), "{reasons:?}");
    assert!(samples(&s, "ringfwd_drop_unknown_ssrc_total").next().is_none(), "no metric per reason");
    assert_eq!(sum(&s, "ringfwd_packets_dropped_total", &[]), UNKNOWN as f64, "nothing else dropped");

    // Forwarding latency: one observation per received packet that was forwarded, buckets monotonic.
    let histograms: Vec<&Sample> = samples(&s, "ringfwd_forwarding_latency_seconds").collect();
    assert_eq!(histograms.len(), 2, "one histogram per worker");
    let mut observed = 0.0;
    for h in histograms {
        let Value::Histogram(buckets) = &h.value else { panic!("not a histogram: {h:?}") };
        assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count), "monotonic: {buckets:?}");
        assert!(buckets.windows(2).all(|w| w[0].less_than < w[1].less_than), "ordered bounds: {buckets:?}");
        let inf = buckets.last().expect("buckets");
        assert!(inf.less_than.is_infinite());
        observed += inf.count;
        let worker = h.labels.get("worker").expect("worker label");
        let count = sum(&s, "ringfwd_forwarding_latency_seconds_count", &[("worker", worker)]);
        assert_eq!(count, inf.count, "_count equals the +Inf bucket");
    }
    assert_eq!(observed, received as f64, "one latency per forwarded packet");

    // The API's requests by method and code, and their durations.
    for method in ["CreateSession", "CreateStream", "CreateSubscription"] {
        assert_eq!(sum(&s, "ringfwd_api_requests_total", &[("method", method), ("code", "OK")]), 1.0, "{method}");
    }
    assert_eq!(sum(&s, "ringfwd_api_requests_total", &[("method", "CreateEndpoint"), ("code", "OK")]), 2.0);
    assert_eq!(sum(&s, "ringfwd_api_requests_total", &[("method", "GetSession"), ("code", "NotFound")]), 1.0);
    let durations = samples(&s, "ringfwd_api_request_duration_seconds")
        .find(|x| x.labels.get("method") == Some("CreateEndpoint"))
        .expect("duration histogram of CreateEndpoint");
    let Value::Histogram(buckets) = &durations.value else { panic!("not a histogram") };
    assert_eq!(buckets.last().map(|b| b.count), Some(2.0));

    // The registry's usage, ring occupancy and pool gauges.
    let usage = [("ringfwd_sessions", 1.0), ("ringfwd_endpoints", 2.0), ("ringfwd_streams", 1.0)];
    for (name, value) in usage.into_iter().chain([("ringfwd_subscriptions", 1.0)]) {
        assert_eq!(sum(&s, name, &[]), value, "{name}");
    }
    assert_eq!(sum(&s, "ringfwd_worker_streams", &[]), 1.0, "the worker's table");
    for ring in ["command", "handover", "stats", "events"] {
        assert!(sum(&s, "ringfwd_ring_capacity", &[("worker", "1"), ("ring", ring)]) > 0.0, "{ring}");
        assert!(sum(&s, "ringfwd_ring_queued", &[("ring", ring)]) >= 0.0);
    }
    let pool = sum(&s, "ringfwd_worker_pool_buffers", &[("worker", "0")]);
    assert_eq!(pool, 1124.0, "pool.buffers_per_worker in the receive ring and pool.spare_buffers_per_worker beside it");
    assert!(sum(&s, "ringfwd_worker_pool_in_use", &[("worker", "0")]) <= pool);

    // Anything but /metrics is not found.
    assert_eq!(http_get(daemon.metrics, "/").0, 404);
    assert_eq!(http_get(daemon.metrics, "/metrics/x").0, 404);
}

#[test]
fn healthz_and_readyz_answer_liveness_and_readiness() {
    let daemon = start();
    assert_eq!(http_get(daemon.metrics, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(http_get(daemon.metrics, "/readyz"), (200, "ok\n".to_string()));
    // Draining: still live, no longer ready for new work; ready again when the drain is cancelled.
    let token = std::fs::read_to_string(&daemon.token_file).expect("token");
    let api = Api::connect(daemon.api, Some(token.trim()));
    api.drain(v1::DrainRequest { cancel: false }).expect("Drain");
    assert_eq!(http_get(daemon.metrics, "/healthz").0, 200);
    let (status, reason) = http_get(daemon.metrics, "/readyz");
    assert_eq!(status, 503);
    assert!(reason.contains("draining"), "{reason}");
    api.drain(v1::DrainRequest { cancel: true }).expect("cancel the drain");
    assert_eq!(http_get(daemon.metrics, "/readyz").0, 200);
    assert_eq!(http_get(daemon.metrics, "/health").0, 404);
}
