//! Reading one value from a daemon's Prometheus endpoint, as a scraper would: `GET /metrics` over a fresh TCP
//! connection, then the sample whose name and labels match.
//!
//! Owns [`sample`]. The exposition format's own checks are tests/tests/metrics.rs's; this only reads values.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The value of the sample `name` whose labels are exactly `labels` (in any order), or `None` when the endpoint does
/// not export it.
pub fn sample(metrics: SocketAddr, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut stream = TcpStream::connect_timeout(&metrics, TIMEOUT).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a read timeout");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the response");
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    body.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (found, rest) = series.split_once('{').unwrap_or((series, "}"));
        if found != name {
            return None;
        }
        let mut found_labels: Vec<(&str, &str)> = rest
            .strip_suffix('}')?
            .split(',')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, quoted) = pair.split_once('=')?;
                Some((key, quoted.strip_prefix('"')?.strip_suffix('"')?))
            })
            .collect();
        let mut wanted = labels.to_vec();
        found_labels.sort_unstable();
        wanted.sort_unstable();
        (found_labels == wanted).then(|| value.parse().ok()).flatten()
    })
}
