//! The configuration error type.
//!
//! Every variant names where the problem is: a file path, toml's own message (which carries the
//! key and line), or a dotted key such as `sessions[0].streams[1].ssrc` with the offending value.
//! This module must never decide what is valid; that is [`crate::validate`]'s job.

use std::fmt::Display;
use std::path::PathBuf;

/// Why a configuration could not be loaded, validated or placed on the host's cores.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The TOML text is malformed, has an unknown key or a value of the wrong type.
    #[error("cannot parse config: {message}")]
    Parse {
        /// toml's message, which names the key and the line.
        message: String,
    },
    /// The configuration could not be written back as TOML.
    #[error("cannot serialize config: {message}")]
    Serialize {
        /// toml's message.
        message: String,
    },
    /// A value is out of range or inconsistent with another one.
    #[error("invalid config: {key} = {value}: {reason}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `pool.buffers_per_worker`.
        key: String,
        /// The offending value, as written in the config.
        value: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// An environment variable the configuration depends on has a value that cannot be used.
    #[error("invalid environment: {variable}={value:?}: {reason}")]
    Environment {
        /// The variable, e.g. `XDG_RUNTIME_DIR`.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
}

impl ConfigError {
    /// Builds [`ConfigError::Invalid`] from a key, the offending value and the reason.
    pub fn invalid(key: impl Into<String>, value: impl Display, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), value: value.to_string(), reason: reason.into() }
    }

    /// The dotted key an [`ConfigError::Invalid`] error names; `None` for the other variants.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_displays_key_value_and_reason() {
        let err = ConfigError::invalid("pool.recv_batch", 0, "must be in 1..=1024");
        assert_eq!(err.key(), Some("pool.recv_batch"));
        assert_eq!(err.to_string(), "invalid config: pool.recv_batch = 0: must be in 1..=1024");
    }

    #[test]
    fn io_error_names_the_path() {
        let err = ConfigError::Io {
            path: PathBuf::from("/nonexistent/ringfwd.toml"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(err.to_string().contains("/nonexistent/ringfwd.toml"));
        assert_eq!(err.key(), None);
    }
}
