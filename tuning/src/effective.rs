//! The effective config: what the daemon runs with on a host, written back as a config
//! (`ringfwd --print-config`).
//!
//! Owns [`Config::to_effective_toml`]: the config with `placement.worker_cores = "auto"` replaced by
//! the resolved core list and every size left to [`Config::sizes`] written out, each such value
//! followed by a comment that says it was resolved or derived and from what. The text parses back
//! ([`Config::from_toml_str`]) to a config that runs the same on the same host — except that every
//! secret (`auth.keys[].secret_base64`, `webhooks.secret`) is replaced by [`REDACTED`] and marked, so
//! the output can be pasted into a ticket. It must never resolve the placement itself (the caller
//! passes the cores it resolved against the host), print a secret, nor change any other value the
//! config set.

use toml_edit::DocumentMut;

use crate::error::ConfigError;
use crate::placement::WorkerCores;
use crate::sizes::MIN_DERIVED_SOCKET_BUFFER_BYTES;
use crate::validate::{BUFFERS_PER_WORKER_RANGE, SEND_SLOTS_RANGE, SOCKET_BUFFER_BYTES_RANGE};
use crate::{defaults, Config};

/// The first lines of the effective config: what the marks mean.
const HEADER: &str = "\
# ringfwd effective config. Values marked `resolved` or `derived` were not set in the config:
# they are what this host and [load] give now. Delete such a line to have it resolved or derived
# again (e.g. on another host or for another load).
";

/// What a secret is printed as.
pub const REDACTED: &str = "<redacted>";

/// One marked value: its section, its key and the comment that follows it.
struct Mark {
    section: &'static str,
    key: &'static str,
    comment: String,
}

impl Config {
    /// This config as it runs with `worker_cores` (its placement resolved on the host): TOML that
    /// [`Config::from_toml_str`] accepts, with the resolved worker cores and the derived sizes
    /// written out, each marked by a trailing comment. Values the config set are written as they
    /// are, unmarked.
    pub fn to_effective_toml(&self, worker_cores: &[usize]) -> Result<String, ConfigError> {
        let workers = worker_cores.len().max(1);
        let sizes = self.sizes(workers);
        let mut effective = self.clone();
        let mut marks = Vec::new();
        if self.placement.worker_cores == WorkerCores::Auto {
            effective.placement.worker_cores = WorkerCores::List(worker_cores.to_vec());
            let comment = "resolved from \"auto\" on this host".to_owned();
            marks.push(Mark { section: "placement", key: "worker_cores", comment });
        }
        let burst_packets = self.load.burst_packets_per_worker(workers).max(1);
        let burst = format!(
            "derived from [load]: {burst_packets} packets per worker in {} ms ({} pps, {workers} worker(s))",
            self.load.burst_ms, self.load.expected_packets_per_second
        );
        let power_of_two = |range: &std::ops::RangeInclusive<u32>| {
            format!("{burst}, up to a power of two in {}..={}", range.start(), range.end())
        };
        if self.pool.buffers_per_worker.is_none() {
            effective.pool.buffers_per_worker = Some(sizes.buffers_per_worker);
            let comment = power_of_two(&BUFFERS_PER_WORKER_RANGE);
            marks.push(Mark { section: "pool", key: "buffers_per_worker", comment });
        }
        if self.pool.send_slots_per_worker.is_none() {
            effective.pool.send_slots_per_worker = Some(sizes.send_slots_per_worker);
            let comment = power_of_two(&SEND_SLOTS_RANGE);
            marks.push(Mark { section: "pool", key: "send_slots_per_worker", comment });
        }
        let socket = format!(
            "derived from [load]: {} packets x {} bytes ({burst_packets} packets per worker in {} ms, up to a power \
             of two), in {MIN_DERIVED_SOCKET_BUFFER_BYTES}..={}",
            burst_packets.next_power_of_two(),
            defaults::SOCKET_BYTES_PER_PACKET,
            self.load.burst_ms,
            SOCKET_BUFFER_BYTES_RANGE.end()
        );
        if self.media.recv_buffer_bytes.is_none() {
            effective.media.recv_buffer_bytes = Some(sizes.recv_buffer_bytes);
            marks.push(Mark { section: "media", key: "recv_buffer_bytes", comment: socket.clone() });
        }
        if self.media.send_buffer_bytes.is_none() {
            effective.media.send_buffer_bytes = Some(sizes.send_buffer_bytes);
            marks.push(Mark { section: "media", key: "send_buffer_bytes", comment: socket });
        }
        for key in &mut effective.auth.keys {
            key.secret_base64 = REDACTED.to_owned();
        }
        if let Some(secret) = effective.webhooks.secret.as_mut() {
            *secret = REDACTED.to_owned();
            let comment = "redacted: the config's own value is not printed".to_owned();
            marks.push(Mark { section: "webhooks", key: "secret", comment });
        }
        let redacted = crate::validate::redact_password(&effective.cluster.redis_url);
        if redacted != effective.cluster.redis_url {
            effective.cluster.redis_url = redacted;
            let comment = "password redacted: the config's own value is not printed".to_owned();
            marks.push(Mark { section: "cluster", key: "redis_url", comment });
        }
        let text = effective.to_toml_string()?;
        let mut document: DocumentMut =
            text.parse().map_err(|e: toml_edit::TomlError| ConfigError::Serialize { message: e.to_string() })?;
        for mark in &marks {
            let value = document
                .get_mut(mark.section)
                .and_then(|section| section.get_mut(mark.key))
                .and_then(|item| item.as_value_mut())
                .ok_or_else(|| ConfigError::Serialize {
                    message: format!("{}.{} is missing from the serialized config", mark.section, mark.key),
                })?;
            value.decor_mut().set_suffix(format!("  # {}", mark.comment));
        }
        let keys = document.get_mut("auth").and_then(|auth| auth.get_mut("keys"));
        for key in keys.and_then(|k| k.as_array_of_tables_mut()).into_iter().flat_map(|a| a.iter_mut()) {
            if let Some(value) = key.get_mut("secret_base64").and_then(|item| item.as_value_mut()) {
                value.decor_mut().set_suffix("  # redacted: the config's own value is not printed");
            }
        }
        Ok(format!("{HEADER}{document}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line of `key` in `[section]` of `text`.
    fn line<'a>(text: &'a str, section: &str, key: &str) -> &'a str {
        let header = format!("[{section}]");
        let mut lines = text.lines().skip_while(|l| l.trim() != header).skip(1);
        lines
            .find(|l| l.starts_with(&format!("{key} =")) || l.starts_with('['))
            .filter(|l| !l.starts_with('['))
            .unwrap_or_else(|| panic!("no {key} in [{section}]:\n{text}"))
    }

    #[test]
    fn auto_cores_and_derived_sizes_are_written_out_and_marked() {
        let config = Config::default();
        let text = config.to_effective_toml(&[1, 2]).unwrap();
        assert!(text.starts_with("# ringfwd effective config"), "{text}");
        assert_eq!(
            line(&text, "placement", "worker_cores"),
            "worker_cores = [1, 2]  # resolved from \"auto\" on this host"
        );
        let sizes = config.sizes(2);
        let buffers = line(&text, "pool", "buffers_per_worker");
        assert!(
            buffers.starts_with(&format!("buffers_per_worker = {}  # derived from [load]", sizes.buffers_per_worker))
        );
        assert!(buffers.contains("2000 packets per worker in 20 ms (200000 pps, 2 worker(s))"), "{buffers}");
        let slots = line(&text, "pool", "send_slots_per_worker");
        assert!(slots.starts_with(&format!("send_slots_per_worker = {}  # derived", sizes.send_slots_per_worker)));
        let recv = line(&text, "media", "recv_buffer_bytes");
        assert!(recv.starts_with(&format!("recv_buffer_bytes = {}  # derived", sizes.recv_buffer_bytes)), "{recv}");
        let send = line(&text, "media", "send_buffer_bytes");
        assert!(send.starts_with(&format!("send_buffer_bytes = {}  # derived", sizes.send_buffer_bytes)), "{send}");

        let back = Config::from_toml_str(&text).unwrap();
        assert_eq!(back.placement.worker_cores, WorkerCores::List(vec![1, 2]));
        assert_eq!(back.sizes(2), sizes, "the printed config runs with the same sizes");
        assert_eq!(back.load, config.load);
    }

    #[test]
    fn values_the_config_set_are_written_as_they_are_unmarked() {
        let mut config = Config::default();
        config.placement.worker_cores = WorkerCores::List(vec![3]);
        config.pool.buffers_per_worker = Some(512);
        config.media.send_buffer_bytes = Some(1 << 20);
        let text = config.to_effective_toml(&[3]).unwrap();
        assert_eq!(line(&text, "placement", "worker_cores"), "worker_cores = [3]");
        assert_eq!(line(&text, "pool", "buffers_per_worker"), "buffers_per_worker = 512");
        assert_eq!(line(&text, "media", "send_buffer_bytes"), "send_buffer_bytes = 1048576");
        assert!(line(&text, "media", "recv_buffer_bytes").contains("# derived"), "{text}");
        let back = Config::from_toml_str(&text).unwrap();
        assert_eq!(back.pool.buffers_per_worker, Some(512));
        assert_eq!(back.sizes(1), config.sizes(1));
    }

    #[test]
    fn secrets_are_never_printed() {
        let text =
            "[[auth.keys]]\nid = \"ops\"\nsecret_base64 = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0=\"\n\
                    [webhooks]\nurls = [\"http://127.0.0.1:9/hook\"]\nsecret = \"hunter2-hunter2-hunter2\"\n";
        let config = Config::from_toml_str(text).unwrap();
        let printed = config.to_effective_toml(&[1]).unwrap();
        assert!(!printed.contains("c2VjcmV0") && !printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("secret_base64 = \"<redacted>\"  # redacted"), "{printed}");
        assert!(line(&printed, "webhooks", "secret").starts_with("secret = \"<redacted>\"  # redacted"), "{printed}");
    }

    #[test]
    fn static_sessions_survive_the_marking() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/static-conference.toml");
        let config = Config::from_file(&path).unwrap();
        let text = config.to_effective_toml(&[1]).unwrap();
        let back = Config::from_toml_str(&text).unwrap();
        assert_eq!(back.sessions, config.sessions);
    }
}
