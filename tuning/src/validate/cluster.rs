//! Validation of `[cluster]`: the node id's and the namespace's characters, the Redis URL's form, the heartbeat and
//! the lease, the addresses other nodes are told, the nodes this node cannot reach.
//!
//! Owns [`validate_cluster`] and [`check_node_id`] (the one rule for a node id, also applied by the daemon to a
//! node id taken from the host's name), and the accepted ranges. Must never connect to the Redis server (the
//! daemon does, and names `cluster.redis_url` when it cannot).

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use super::in_range;
use crate::cluster::{Cluster, DirectoryBackend};
use crate::error::ConfigError;

/// Longest node id.
pub const MAX_NODE_ID_BYTES: usize = 64;
/// Longest `cluster.namespace`.
pub const MAX_NAMESPACE_BYTES: usize = 32;
/// Accepted `cluster.heartbeat_ms`.
pub const HEARTBEAT_MS_RANGE: RangeInclusive<u32> = 50..=60_000;
/// Accepted `cluster.lease_ms` (and at least twice `cluster.heartbeat_ms`).
pub const LEASE_MS_RANGE: RangeInclusive<u32> = 100..=600_000;
/// Most entries of `cluster.unreachable_nodes`.
pub const MAX_UNREACHABLE_NODES: usize = 1024;
/// Accepted `cluster.update_queue`.
pub const UPDATE_QUEUE_RANGE: RangeInclusive<u32> = 16..=1 << 20;

/// `Ok` when `id` is a node id: 1 to [`MAX_NODE_ID_BYTES`] bytes of A-Z, a-z, 0-9, `.`, `_` and `-`; else why not.
pub fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_NODE_ID_BYTES {
        return Err(format!("must be 1 to {MAX_NODE_ID_BYTES} bytes"));
    }
    match id.bytes().find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))) {
        Some(b) => Err(format!("{:?} is not allowed: only A-Z, a-z, 0-9, '.', '_' and '-'", b as char)),
        None => Ok(()),
    }
}

/// Checks `[cluster]`.
pub fn validate_cluster(cluster: &Cluster) -> Result<(), ConfigError> {
    if let Some(id) = &cluster.node_id {
        check_node_id(id).map_err(|reason| ConfigError::invalid("cluster.node_id", format!("{id:?}"), reason))?;
    }
    let namespace = &cluster.namespace;
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-');
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE_BYTES || !namespace.bytes().all(allowed) {
        let reason = format!("must be 1 to {MAX_NAMESPACE_BYTES} bytes of a-z, 0-9, '_' and '-'");
        return Err(ConfigError::invalid("cluster.namespace", format!("{namespace:?}"), reason));
    }
    if cluster.directory == DirectoryBackend::Redis {
        check_redis_url(&cluster.redis_url).map_err(|reason| {
            ConfigError::invalid("cluster.redis_url", format!("{:?}", redact_password(&cluster.redis_url)), reason)
        })?;
    }
    in_range("cluster.heartbeat_ms", cluster.heartbeat_ms, HEARTBEAT_MS_RANGE)?;
    in_range("cluster.lease_ms", cluster.lease_ms, LEASE_MS_RANGE)?;
    if u64::from(cluster.lease_ms) < 2 * u64::from(cluster.heartbeat_ms) {
        let reason = format!("must be at least twice cluster.heartbeat_ms ({})", cluster.heartbeat_ms);
        return Err(ConfigError::invalid("cluster.lease_ms", cluster.lease_ms, reason));
    }
    in_range("cluster.update_queue", cluster.update_queue, UPDATE_QUEUE_RANGE)?;
    if cluster.unreachable_nodes.len() > MAX_UNREACHABLE_NODES {
        let reason = format!("at most {MAX_UNREACHABLE_NODES} nodes");
        return Err(ConfigError::invalid("cluster.unreachable_nodes", cluster.unreachable_nodes.len(), reason));
    }
    for (i, node) in cluster.unreachable_nodes.iter().enumerate() {
        let key = format!("cluster.unreachable_nodes[{i}]");
        check_node_id(node).map_err(|reason| ConfigError::invalid(&key, format!("{node:?}"), reason))?;
        if cluster.node_id.as_deref() == Some(node.as_str()) {
            return Err(ConfigError::invalid(&key, format!("{node:?}"), "is this node's own cluster.node_id"));
        }
    }
    if let Some(path) = &cluster.tls_ca_file {
        super::api_tls::check_path("cluster.tls_ca_file", path)?;
    }
    for (key, address) in
        [("cluster.relay_address", cluster.relay_address), ("cluster.api_address", cluster.api_address)]
    {
        if let Some(address) = address {
            check_advertised(address).map_err(|reason| ConfigError::invalid(key, address, reason))?;
        }
    }
    Ok(())
}

/// An address other nodes are told: a port, and an address they can send to.
fn check_advertised(address: SocketAddr) -> Result<(), &'static str> {
    if address.port() == 0 {
        return Err("needs a port (other nodes are told this address)");
    }
    if address.ip().is_unspecified() || address.ip().is_multicast() {
        return Err("must be an address other nodes can reach, not a wildcard or multicast address");
    }
    Ok(())
}

/// `Ok` for `redis://host[:port][/db]` (with optional `user:password@`), `rediss://...` or `unix:///path`.
fn check_redis_url(url: &str) -> Result<(), String> {
    if url.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace".into());
    }
    if let Some(path) = url.strip_prefix("unix://") {
        return if path.starts_with('/') { Ok(()) } else { Err("a unix:// URL needs an absolute path".into()) };
    }
    let Some(rest) = url.strip_prefix("redis://").or_else(|| url.strip_prefix("rediss://")) else {
        return Err("must start with redis://, rediss:// or unix://".into());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (host, Some(port)),
        _ => (host_port, None),
    };
    if host.is_empty() {
        return Err("needs a host".into());
    }
    if let Some(port) = port {
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(format!("port {port:?} is not 1..=65535"));
        }
    }
    if let Some(db) = rest.split_once('/').map(|(_, db)| db).filter(|db| !db.is_empty()) {
        if db.parse::<u32>().is_err() {
            return Err(format!("database {db:?} is not a number"));
        }
    }
    Ok(())
}

/// `url` with the password of its `user:password@` part, if any, replaced by `<redacted>` (for messages and the
/// effective config).
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:<redacted>@{host}{path}")
            } else {
                format!("{scheme}://{user}@{host}{path}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut Cluster)) -> Result<(), String> {
        let mut cluster = Cluster { directory: DirectoryBackend::Redis, ..Cluster::default() };
        edit(&mut cluster);
        validate_cluster(&cluster).map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_and_a_redis_cluster_pass() {
        validate_cluster(&Cluster::default()).expect("default");
        with(|c| c.node_id = Some("media-1.eu_west".into())).expect("a node id");
        for url in ["redis://10.0.0.5:6380/2", "rediss://user:pw@redis.example:6379", "unix:///run/redis.sock"] {
            with(|c| c.redis_url = url.into()).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        type Case = (fn(&mut Cluster), &'static str);
        let cases: [Case; 11] = [
            (|c| c.node_id = Some(String::new()), "cluster.node_id = \"\""),
            (|c| c.node_id = Some("a b".into()), "cluster.node_id = \"a b\": ' ' is not allowed"),
            (|c| c.namespace = "Ring:fwd".into(), "cluster.namespace"),
            (|c| c.redis_url = "http://x".into(), "cluster.redis_url = \"http://x\": must start with redis://"),
            (|c| c.redis_url = "redis://:secret@h:0".into(), "cluster.redis_url = \"redis://:<redacted>@h:0\": port"),
            (|c| c.heartbeat_ms = 10, "cluster.heartbeat_ms = 10"),
            (|c| c.lease_ms = 1500, "cluster.lease_ms = 1500: must be at least twice cluster.heartbeat_ms (1000)"),
            (|c| c.relay_address = Some("0.0.0.0:5000".parse().unwrap()), "cluster.relay_address = 0.0.0.0:5000"),
            (|c| c.api_address = Some("10.0.0.1:0".parse().unwrap()), "cluster.api_address = 10.0.0.1:0: needs a port"),
            (|c| c.unreachable_nodes = vec!["b".into(), "c d".into()], "cluster.unreachable_nodes[1] = \"c d\""),
            (
                |c| {
                    c.node_id = Some("a".into());
                    c.unreachable_nodes = vec!["a".into()];
                },
                "cluster.unreachable_nodes[0] = \"a\": is this node's own cluster.node_id",
            ),
        ];
        for (edit, expected) in cases {
            let error = with(edit).expect_err(expected);
            assert!(error.contains(expected), "{error:?} does not contain {expected:?}");
        }
    }

    #[test]
    fn the_password_of_a_url_is_redacted() {
        assert_eq!(redact_password("redis://u:pw@h:1/0"), "redis://u:<redacted>@h:1/0");
        assert_eq!(redact_password("redis://:pw@h"), "redis://:<redacted>@h");
        assert_eq!(redact_password("redis://u@h"), "redis://u@h");
        assert_eq!(redact_password("redis://h:1/0"), "redis://h:1/0");
    }
}
