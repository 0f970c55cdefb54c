//! Webhooks: every lifecycle event POSTed, signed, to each configured URL, never blocking anything.
//!
//! - [`sign`]: the signature scheme (`X-Ringfwd-Timestamp`, `X-Ringfwd-Signature: sha256=<hex HMAC-SHA256
//!   (secret, timestamp + "." + body)>`).
//! - [`backoff`]: exponential waits with jitter between attempts.
//! - [`queue`]: one bounded queue per URL (a full one drops the new event, counted) and its counters.
//! - [`deliver`]: the task per URL: JSON (protobuf mapping), sign, POST, retry, count, log.
//!
//! [`Webhooks::start`] puts one queue per URL on the bus and spawns its task; [`Webhooks::stop`] (after the bus
//! was closed, which closes the queues) waits a bounded time for the tasks to deliver what they hold, then
//! gives up and logs what was left. Must never make a publisher or a worker wait.

pub mod backoff;
pub mod deliver;
pub mod queue;
pub mod sign;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ringfwd_tuning::Config;

use crate::events::EventBus;
pub use queue::WebhookCounters;

/// Why webhooks could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A URL the HTTP client does not take.
    #[error("webhooks.urls[{index}] = {url:?}: {reason}")]
    Url {
        /// Its index in `webhooks.urls`.
        index: usize,
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// `webhooks.secret_file` could not be read, or is empty.
    #[error("webhooks.secret_file = {}: {reason}", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP client or the JSON encoder could not be set up.
    #[error("webhooks: {0}")]
    Setup(String),
}

/// The signing key of a validated `[webhooks]`: `secret`, or the content of `secret_file` without a trailing
/// newline.
pub fn read_secret(config: &ringfwd_tuning::Webhooks) -> Result<Vec<u8>, WebhookError> {
    if let Some(secret) = &config.secret {
        return Ok(secret.as_bytes().to_vec());
    }
    let Some(path) = &config.secret_file else {
        return Ok(Vec::new());
    };
    let fail = |reason: String| WebhookError::SecretFile { path: path.clone(), reason };
    let mut secret = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    if secret.ends_with(b"\n") {
        secret.pop();
        if secret.ends_with(b"\r") {
            secret.pop();
        }
    }
    if secret.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    Ok(secret)
}

/// The running webhook tasks.
#[derive(Debug)]
pub struct Webhooks {
    counters: Vec<Arc<WebhookCounters>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Webhooks {
    /// One queue on `bus` and one delivery task per URL of `config.webhooks` (none: nothing runs). Call on the
    /// control runtime.
    pub fn start(config: &Config, bus: &EventBus) -> Result<Webhooks, WebhookError> {
        let settings = &config.webhooks;
        let mut webhooks = Webhooks { counters: Vec::new(), tasks: Vec::new() };
        if settings.urls.is_empty() {
            return Ok(webhooks);
        }
        let secret: Arc<[u8]> = read_secret(settings)?.into();
        let client = deliver::client(Duration::from_millis(u64::from(settings.timeout_ms)))
            .map_err(|e| WebhookError::Setup(format!("HTTP client: {e}")))?;
        let json = deliver::EventJson::new().map_err(WebhookError::Setup)?;
        let backoff = backoff::Backoff { initial_ms: settings.backoff_initial_ms, max_ms: settings.backoff_max_ms };
        for (index, url) in settings.urls.iter().enumerate() {
            let parsed = reqwest::Url::parse(url).map_err(|e| WebhookError::Url {
                index,
                url: url.clone(),
                reason: e.to_string(),
            })?;
            let counters = Arc::new(WebhookCounters::new(url));
            let (queue, rx) = queue::WebhookQueue::new(settings.queue as usize, Arc::clone(&counters));
            let delivery = deliver::Delivery {
                url: parsed,
                secret: Arc::clone(&secret),
                max_retries: settings.max_retries,
                backoff,
            };
            let task = deliver::run(client.clone(), delivery, json.clone(), Arc::clone(&counters), rx);
            webhooks.tasks.push(tokio::spawn(task));
            webhooks.counters.push(counters);
            bus.add_sink(Box::new(queue));
        }
        Ok(webhooks)
    }

    /// The counters of each URL, in `webhooks.urls` order.
    pub fn counters(&self) -> &[Arc<WebhookCounters>] {
        &self.counters
    }

    /// Waits at most `bound` for the tasks to deliver what their queues hold (close the bus first, or they never
    /// end), then stops them and logs what each URL left undelivered.
    pub async fn stop(self, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        for (task, counters) in self.tasks.into_iter().zip(&self.counters) {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
                tracing::warn!(
                    url = %counters.url,
                    undelivered = counters.queued.load(Ordering::Relaxed) + 1,
                    "webhook deliveries given up at shutdown"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_comes_from_the_config_or_its_file_without_the_newline() {
        let mut config = ringfwd_tuning::Webhooks { secret: Some("k1".into()), ..Default::default() };
        assert_eq!(read_secret(&config).unwrap(), b"k1");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "k2\r\n").unwrap();
        config.secret = None;
        config.secret_file = Some(path.clone());
        assert_eq!(read_secret(&config).unwrap(), b"k2");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_secret(&config).unwrap_err().to_string().contains("empty"));
        config.secret_file = Some(dir.path().join("missing"));
        let message = read_secret(&config).unwrap_err().to_string();
        assert!(message.contains("webhooks.secret_file") && message.contains("missing"), "{message}");
    }
}
