//! The HTTP/1.1 server of the Prometheus endpoint: `GET /metrics` (and `HEAD`), and the HTTP probes beside it:
//! `/healthz` (live: every worker thread runs) and `/readyz` (ready for new work: live, the API serving, not
//! draining, not shutting down), each 200 or 503 with the reason; 404 for any other path, 405 for any other
//! method.
//!
//! Owns the serving of its connections: at most `metrics.max_connections` at once (accepted by `crate::incoming`,
//! more wait in the kernel's accept queue), request heads of at most [`MAX_HEAD_BYTES`] read within
//! [`HEAD_TIMEOUT`], request bodies never read, a connection closed after [`CONNECTION_LIFETIME`].
//! Runs on the control runtime; must never make a worker wait (a scrape only loads atomics, plus the
//! registry's and statistics store's locks for a moment).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use super::exposition::CONTENT_TYPE;
use super::render::Sources;
use crate::api::Api;

/// Largest request head (request line and headers) read, in bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest a client may take to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection is kept (a keep-alive scraper reconnects).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// What a scrape needs: the exported sources and the API, for the registry's usage and the cluster's relays.
struct Endpoint {
    sources: Sources,
    api: Arc<Api>,
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes, at most `max_connections` at once.
pub async fn serve(
    listener: TcpListener,
    sources: Sources,
    api: Arc<Api>,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let endpoint = Arc::new(Endpoint { sources, api });
    // A request line's first byte within the head timeout; hyper then reads the rest of the head within it too.
    let limits = crate::incoming::ConnectionLimits {
        name: "metrics endpoint",
        max_connections,
        handshake_bytes: 1,
        handshake_timeout: HEAD_TIMEOUT,
    };
    let mut connections = crate::incoming::connections(listener, limits, None);
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            _ = &mut shutdown => return,
            next = connections.next() => match next {
                Some(Ok(connection)) => connection,
                Some(Err(_)) => continue,
                None => return,
            },
        };
        let endpoint = Arc::clone(&endpoint);
        // The connection holds its place until this task ends.
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let endpoint = Arc::clone(&endpoint);
                async move { Ok::<_, Infallible>(answer(&endpoint, &request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(connection), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
        });
    }
}

async fn answer(endpoint: &Endpoint, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return plain(StatusCode::NOT_FOUND, "not found: /metrics, /healthz and /readyz are served\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path != "/metrics" {
        let not_ready = match not_live(&endpoint.sources.workers) {
            Some(reason) => Some(reason),
            None if path == "/readyz" => endpoint.api.not_ready().await.map(str::to_owned),
            None => None,
        };
        return match not_ready {
            None => plain(StatusCode::OK, "ok\n"),
            Some(reason) => {
                let mut response = Response::new(Full::new(Bytes::from(format!("{reason}\n"))));
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response
            }
        };
    }
    let usage = endpoint.api.usage().await;
    // The relays only on a node in a cluster (elsewhere there are none, and the registry is not walked for them).
    let relays = if endpoint.api.in_cluster() { endpoint.api.list_relays_rpc().await.ok() } else { None };
    let text = endpoint.sources.render(usage, relays.as_ref());
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// Why the node is not live (`/healthz`): the first worker whose thread stopped; `None` when every one runs.
fn not_live(workers: &[ringfwd_dataplane::control::WorkerHandle]) -> Option<String> {
    let stopped = workers.iter().find(|w| !w.is_running())?;
    Some(format!("worker {} (core {}) stopped", stopped.index, stopped.core))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn a_stopped_worker_makes_the_node_not_live() {
        let workers = crate::metrics::render::test_workers(2);
        assert_eq!(not_live(&workers), None);
        workers[1].running.store(false, Ordering::Release);
        assert_eq!(not_live(&workers).as_deref(), Some("worker 1 (core 1) stopped"));
    }
}
