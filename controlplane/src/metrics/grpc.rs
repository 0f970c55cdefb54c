//! Counting the control API's requests: a tower layer on the tonic server that counts every call by gRPC
//! method and status code and times it.
//!
//! Owns [`ApiMetrics`] (fixed tables of atomics, one row per method of `ringfwd.v1.Ringfwd`, labelled by its
//! bare name, one per method of the health and reflection services beside it, labelled `<service>/<method>`
//! so that probe traffic is seen apart from the API's, plus `unknown`, so no request can grow them) and [`ApiMetricsLayer`]. The code is the `grpc-status` of the response
//! headers: tonic puts an error there (a "trailers-only" response), and a response whose headers carry none
//! succeeded as far as its headers go (a stream that fails later still counts `OK`); the duration runs from
//! the request to the response headers. Must never lock, nor take a label value from the request other than
//! a known method name.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::exposition::{Exposition, Kind};

/// gRPC status code names as Prometheus gRPC exporters spell them, indexed by code.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const UNKNOWN_CODE: usize = 2;
/// Upper bounds of the request-duration buckets, in seconds.
pub const DURATION_BOUNDS_S: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One method's counters.
#[derive(Debug, Default)]
struct Row {
    by_code: [AtomicU64; CODE_NAMES.len()],
    /// Requests per duration bucket (not cumulative); the last slot is over the last bound.
    buckets: [AtomicU64; DURATION_BOUNDS_S.len() + 1],
    sum_ns: AtomicU64,
}

/// Requests and durations of the control API, by method.
#[derive(Debug)]
pub struct ApiMetrics {
    /// Method names of the service; the row after the last one is `unknown`.
    methods: Vec<String>,
    rows: Box<[Row]>,
}

impl ApiMetrics {
    /// Tables for the methods of `ringfwd.v1.Ringfwd` (read from the API's descriptor), those of the health
    /// and reflection services ([`crate::api::PROBE_METHODS`]) and `unknown`.
    pub fn new() -> ApiMetrics {
        let service = ringfwd_proto::v1::ringfwd_server::SERVICE_NAME;
        let mut methods: Vec<String> = prost_reflect::DescriptorPool::decode(ringfwd_proto::FILE_DESCRIPTOR_SET)
            .ok()
            .and_then(|pool| pool.get_service_by_name(service))
            .map(|s| s.methods().map(|m| m.name().to_string()).collect())
            .unwrap_or_default();
        methods.extend(crate::api::PROBE_METHODS.iter().map(|m| m.to_string()));
        ApiMetrics::with_methods(methods)
    }

    /// Tables for `methods` (bare names of `ringfwd.v1.Ringfwd`'s methods, or `<service>/<method>` of
    /// another service) and `unknown`.
    pub fn with_methods(methods: Vec<String>) -> ApiMetrics {
        let rows = (0..=methods.len()).map(|_| Row::default()).collect();
        ApiMetrics { methods, rows }
    }

    /// The row of the request path `/ringfwd.v1.Ringfwd/<Method>` (a bare name) or `/<service>/<method>` of
    /// another service (a qualified name); `unknown` for anything else.
    fn row_of(&self, path: &str) -> usize {
        let service = ringfwd_proto::v1::ringfwd_server::SERVICE_NAME;
        let unknown = self.methods.len();
        let Some(path) = path.strip_prefix('/') else { return unknown };
        let name = match path.strip_prefix(service).and_then(|p| p.strip_prefix('/')) {
            Some(method) if !method.contains('/') => method,
            Some(_) => return unknown,
            // Only a qualified name can match: a bare name belongs to the API's service.
            None if path.contains('/') => path,
            None => return unknown,
        };
        self.methods.iter().position(|known| known == name).unwrap_or(unknown)
    }

    /// Counts one request of row `row` that ended with `code` after `elapsed`.
    fn observe(&self, row: usize, code: usize, elapsed: Duration) {
        let Some(row) = self.rows.get(row) else { return };
        row.by_code[code.min(CODE_NAMES.len() - 1)].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BOUNDS_S.partition_point(|&bound| bound < seconds);
        row.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        row.sum_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn method_name(&self, row: usize) -> &str {
        self.methods.get(row).map_or("unknown", String::as_str)
    }

    /// Writes `ringfwd_api_requests_total{method, code}` and `ringfwd_api_request_duration_seconds{method}`
    /// for every method and code seen at least once.
    pub fn export(&self, out: &mut Exposition) {
        let name = "ringfwd_api_requests_total";
        out.family(name, Kind::Counter, "Control API requests, by gRPC method and status code.");
        for (r, row) in self.rows.iter().enumerate() {
            for (code, count) in CODE_NAMES.iter().zip(&row.by_code) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    out.sample(name, &[("method", self.method_name(r)), ("code", code)], count);
                }
            }
        }
        let name = "ringfwd_api_request_duration_seconds";
        out.family(name, Kind::Histogram, "Control API request durations, from the request to the response headers.");
        for (r, row) in self.rows.iter().enumerate() {
            let mut cumulative = [0u64; DURATION_BOUNDS_S.len()];
            let mut running = 0;
            for (slot, bucket) in cumulative.iter_mut().zip(&row.buckets) {
                running += bucket.load(Ordering::Relaxed);
                *slot = running;
            }
            let count = running + row.buckets[DURATION_BOUNDS_S.len()].load(Ordering::Relaxed);
            if count > 0 {
                let sum = row.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
                out.histogram(name, &[("method", self.method_name(r))], &DURATION_BOUNDS_S, &cumulative, count, sum);
            }
        }
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics::new()
    }
}

/// The status code of a response, from its headers (see the module documentation).
fn code_of<B>(response: &http::Response<B>) -> usize {
    match response.headers().get("grpc-status").map(|v| v.to_str().ok().and_then(|s| s.parse::<usize>().ok())) {
        Some(Some(code)) if code < CODE_NAMES.len() => code,
        Some(_) => UNKNOWN_CODE,
        None if response.status() == http::StatusCode::OK => 0,
        None => UNKNOWN_CODE,
    }
}

/// The tower layer that counts requests into an [`ApiMetrics`].
#[derive(Debug, Clone)]
pub struct ApiMetricsLayer {
    metrics: Arc<ApiMetrics>,
}

impl ApiMetricsLayer {
    /// Counts into `metrics`.
    pub fn new(metrics: Arc<ApiMetrics>) -> ApiMetricsLayer {
        ApiMetricsLayer { metrics }
    }
}

impl<S> tower_layer::Layer<S> for ApiMetricsLayer {
    type Service = ApiMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiMetricsService { inner, metrics: Arc::clone(&self.metrics) }
    }
}

/// The service [`ApiMetricsLayer`] wraps around the API.
#[derive(Debug, Clone)]
pub struct ApiMetricsService<S> {
    inner: S,
    metrics: Arc<ApiMetrics>,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for ApiMetricsService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let row = self.metrics.row_of(request.uri().path());
        let metrics = Arc::clone(&self.metrics);
        let start = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let code = result.as_ref().map_or(UNKNOWN_CODE, code_of);
            metrics.observe(row, code, start.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> ApiMetrics {
        ApiMetrics::with_methods(vec![
            "CreateSession".into(),
            "GetNodeInfo".into(),
            "grpc.health.v1.Health/Check".into(),
        ])
    }

    #[test]
    fn the_service_methods_are_known() {
        let m = ApiMetrics::new();
        assert!(m.methods.iter().any(|name| name == "CreateSession"), "{:?}", m.methods);
        assert!(m.methods.iter().any(|name| name == "grpc.health.v1.Health/Watch"), "{:?}", m.methods);
        assert_eq!(m.rows.len(), m.methods.len() + 1);
    }

    #[test]
    fn paths_map_to_known_methods_or_unknown() {
        let m = metrics();
        assert_eq!(m.row_of("/ringfwd.v1.Ringfwd/GetNodeInfo"), 1);
        assert_eq!(m.row_of("/grpc.health.v1.Health/Check"), 2);
        for unknown in [
            "/ringfwd.v1.Ringfwd/Nope",
            "/other.Svc/GetNodeInfo",
            "/ringfwd.v1.RingfwdX/GetNodeInfo",
            "/GetNodeInfo",
            "GetNodeInfo",
            "/ringfwd.v1.Ringfwd/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
        ] {
            assert_eq!(m.row_of(unknown), 3, "{unknown}");
        }
        assert_eq!(m.method_name(2), "grpc.health.v1.Health/Check");
        assert_eq!(m.method_name(3), "unknown");
    }

    #[test]
    fn codes_come_from_the_headers() {
        let ok = http::Response::new(());
        assert_eq!(code_of(&ok), 0);
        let not_found = http::Response::builder().header("grpc-status", "5").body(()).unwrap();
        assert_eq!(CODE_NAMES[code_of(&not_found)], "NotFound");
        let junk = http::Response::builder().header("grpc-status", "99").body(()).unwrap();
        assert_eq!(CODE_NAMES[code_of(&junk)], "Unknown");
        let http_error = http::Response::builder().status(503).body(()).unwrap();
        assert_eq!(CODE_NAMES[code_of(&http_error)], "Unknown");
    }

    #[test]
    fn export_counts_by_method_and_code_with_cumulative_durations() {
        let m = metrics();
        m.observe(0, 0, Duration::from_micros(200));
        m.observe(0, 0, Duration::from_millis(3));
        m.observe(0, 5, Duration::from_secs(20));
        let mut out = Exposition::new();
        m.export(&mut out);
        let text = out.finish();
        assert!(text.contains("ringfwd_api_requests_total{method=\"CreateSession\",code=\"OK\"} 2\n"), "{text}");
        assert!(text.contains("ringfwd_api_requests_total{method=\"CreateSession\",code=\"NotFound\"} 1\n"));
        assert!(!text.contains("GetNodeInfo"), "methods never called are not exported");
        let b = "ringfwd_api_request_duration_seconds_bucket{method=\"CreateSession\"";
        assert!(text.contains(&format!("{b},le=\"0.0005\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("{b},le=\"0.005\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("{b},le=\"10\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("{b},le=\"+Inf\"}} 3\n")), "{text}");
        assert!(text.contains("ringfwd_api_request_duration_seconds_count{method=\"CreateSession\"} 3\n"));
    }
}
