//! The `[webhooks]` section: where lifecycle events are POSTed and how deliveries are retried.
//!
//! Owns [`Webhooks`]. Values come from [`crate::defaults`]; ranges and URLs are checked in
//! [`crate::validate`]. Must never hold a literal default nor check a range, and never read the secret file
//! (the daemon does, at start-up).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::defaults;

/// `[webhooks]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhooks {
    /// `http://` or `https://` URLs each event is POSTed to (none: webhooks off).
    pub urls: Vec<String>,
    /// The HMAC-SHA256 key the signature header is computed with. Exactly one of `secret` and `secret_file`
    /// is required when `urls` is not empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A file whose content (without a trailing newline) is the key, instead of `secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// How long one delivery attempt may take, connecting included, in milliseconds.
    pub timeout_ms: u32,
    /// Events waiting for delivery per URL; a new event that does not fit is dropped and counted.
    pub queue: u32,
    /// Attempts after the first before an event is given up (counted).
    pub max_retries: u32,
    /// Wait before the first retry, in milliseconds; doubled after every failed attempt, with jitter.
    pub backoff_initial_ms: u32,
    /// Longest wait between two attempts, in milliseconds.
    pub backoff_max_ms: u32,
}

impl Default for Webhooks {
    fn default() -> Webhooks {
        Webhooks {
            urls: Vec::new(),
            secret: None,
            secret_file: None,
            timeout_ms: defaults::WEBHOOK_TIMEOUT_MS,
            queue: defaults::WEBHOOK_QUEUE,
            max_retries: defaults::WEBHOOK_MAX_RETRIES,
            backoff_initial_ms: defaults::WEBHOOK_BACKOFF_INITIAL_MS,
            backoff_max_ms: defaults::WEBHOOK_BACKOFF_MAX_MS,
        }
    }
}
