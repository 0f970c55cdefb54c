//! Validation of `[events]` and `[webhooks]`: bounds of the event history, the watchers and the webhook
//! queues, the webhook URLs and the signing secret.
//!
//! Owns the accepted ranges of both sections and [`validate_events`], [`validate_webhooks`]. Must never
//! change a value, never read the secret file nor resolve a host: it names the first key that is wrong.

use std::ops::RangeInclusive;

use super::in_range;
use crate::error::ConfigError;
use crate::events::Events;
use crate::webhooks::Webhooks;

/// Accepted `events.history`.
pub const EVENTS_HISTORY_RANGE: RangeInclusive<u32> = 16..=1 << 20;
/// Accepted `events.watch_buffer`.
pub const EVENTS_WATCH_BUFFER_RANGE: RangeInclusive<u32> = 1..=65_536;
/// Accepted `events.max_watchers`.
pub const EVENTS_MAX_WATCHERS_RANGE: RangeInclusive<u32> = 1..=4096;
/// Accepted `events.worker_poll_ms`.
pub const EVENTS_WORKER_POLL_MS_RANGE: RangeInclusive<u32> = 10..=10_000;
/// Most `webhooks.urls`.
pub const MAX_WEBHOOK_URLS: usize = 16;
/// Accepted `webhooks.timeout_ms`.
pub const WEBHOOK_TIMEOUT_MS_RANGE: RangeInclusive<u32> = 100..=60_000;
/// Accepted `webhooks.queue`.
pub const WEBHOOK_QUEUE_RANGE: RangeInclusive<u32> = 1..=65_536;
/// Accepted `webhooks.max_retries`.
pub const WEBHOOK_MAX_RETRIES_RANGE: RangeInclusive<u32> = 0..=100;
/// Accepted `webhooks.backoff_initial_ms` and `webhooks.backoff_max_ms`.
pub const WEBHOOK_BACKOFF_MS_RANGE: RangeInclusive<u32> = 1..=3_600_000;

/// Checks `[events]`.
pub fn validate_events(events: &Events) -> Result<(), ConfigError> {
    in_range("events.history", events.history, EVENTS_HISTORY_RANGE)?;
    in_range("events.watch_buffer", events.watch_buffer, EVENTS_WATCH_BUFFER_RANGE)?;
    in_range("events.max_watchers", events.max_watchers, EVENTS_MAX_WATCHERS_RANGE)?;
    in_range("events.worker_poll_ms", events.worker_poll_ms, EVENTS_WORKER_POLL_MS_RANGE)
}

/// Checks `[webhooks]`: every URL, one secret when there are URLs, and the delivery bounds.
pub fn validate_webhooks(webhooks: &Webhooks) -> Result<(), ConfigError> {
    if webhooks.urls.len() > MAX_WEBHOOK_URLS {
        let reason = format!("at most {MAX_WEBHOOK_URLS} URLs");
        return Err(ConfigError::invalid("webhooks.urls", webhooks.urls.len(), reason));
    }
    for (i, url) in webhooks.urls.iter().enumerate() {
        if let Err(reason) = check_url(url) {
            return Err(ConfigError::invalid(format!("webhooks.urls[{i}]"), format!("{url:?}"), reason));
        }
        if let Some(first) = webhooks.urls[..i].iter().position(|u| u == url) {
            let reason = format!("duplicate of webhooks.urls[{first}]");
            return Err(ConfigError::invalid(format!("webhooks.urls[{i}]"), format!("{url:?}"), reason));
        }
    }
    match (&webhooks.secret, &webhooks.secret_file) {
        (Some(_), Some(file)) => {
            let reason = "set either webhooks.secret or webhooks.secret_file, not both";
            return Err(ConfigError::invalid("webhooks.secret_file", file.display(), reason));
        }
        (Some(secret), None) if secret.is_empty() => {
            return Err(ConfigError::invalid("webhooks.secret", "\"\"", "must not be empty"));
        }
        (None, None) if !webhooks.urls.is_empty() => {
            let reason = "webhooks are signed: set webhooks.secret or webhooks.secret_file";
            return Err(ConfigError::invalid("webhooks.secret", "(unset)", reason));
        }
        _ => {}
    }
    in_range("webhooks.timeout_ms", webhooks.timeout_ms, WEBHOOK_TIMEOUT_MS_RANGE)?;
    in_range("webhooks.queue", webhooks.queue, WEBHOOK_QUEUE_RANGE)?;
    in_range("webhooks.max_retries", webhooks.max_retries, WEBHOOK_MAX_RETRIES_RANGE)?;
    in_range("webhooks.backoff_initial_ms", webhooks.backoff_initial_ms, WEBHOOK_BACKOFF_MS_RANGE)?;
    in_range("webhooks.backoff_max_ms", webhooks.backoff_max_ms, WEBHOOK_BACKOFF_MS_RANGE)?;
    if webhooks.backoff_max_ms < webhooks.backoff_initial_ms {
        let reason = "must be at least webhooks.backoff_initial_ms";
        return Err(ConfigError::invalid("webhooks.backoff_max_ms", webhooks.backoff_max_ms, reason));
    }
    Ok(())
}

/// `Ok` for an `http://` or `https://` URL with a host (and, if given, a port 1..=65535) and no whitespace.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("an IPv6 host needs its closing ]")?;
            (host, after.strip_prefix(':'))
        }
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err("needs a host");
    }
    match port.map(str::parse::<u16>) {
        Some(Ok(0) | Err(_)) => Err("the port must be a number in 1..=65535"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::key_after;
    use super::*;

    #[test]
    fn events_bounds_are_checked_by_key() {
        assert_eq!(key_after(|c| c.events.history = 15), "events.history");
        assert_eq!(key_after(|c| c.events.watch_buffer = 0), "events.watch_buffer");
        assert_eq!(key_after(|c| c.events.max_watchers = 4097), "events.max_watchers");
        assert_eq!(key_after(|c| c.events.worker_poll_ms = 9), "events.worker_poll_ms");
        assert_eq!(key_after(|c| c.events.history = 16), "<valid>");
    }

    #[test]
    fn webhook_urls_are_http_with_a_host() {
        let with_url = |url: &str| {
            let url = url.to_owned();
            key_after(move |c| {
                c.webhooks.urls = vec![url];
                c.webhooks.secret = Some("k".into());
            })
        };
        assert_eq!(with_url("http://127.0.0.1:8080/hook"), "<valid>");
        assert_eq!(with_url("https://hooks.example.com/a?b=c"), "<valid>");
        assert_eq!(with_url("http://[::1]:9/x"), "<valid>");
        for bad in ["ftp://x/", "http://", "http://:80/", "http://h:0/", "http://h:x/", "http://a b/", "http://[::1/"] {
            assert_eq!(with_url(bad), "webhooks.urls[0]", "{bad}");
        }
        let err = Webhooks { urls: vec!["ftp://x".into()], secret: Some("k".into()), ..Webhooks::default() };
        let message = validate_webhooks(&err).unwrap_err().to_string();
        assert!(message.contains("ftp://x") && message.contains("http://"), "{message}");
        let twice = |c: &mut crate::Config| {
            c.webhooks.urls = vec!["http://h/".into(), "http://h/".into()];
            c.webhooks.secret = Some("k".into());
        };
        assert_eq!(key_after(twice), "webhooks.urls[1]");
    }

    #[test]
    fn webhooks_need_exactly_one_secret() {
        let url = |c: &mut crate::Config| c.webhooks.urls = vec!["http://h/".into()];
        assert_eq!(key_after(url), "webhooks.secret");
        assert_eq!(key_after(|c| c.webhooks.secret = Some(String::new())), "webhooks.secret");
        let both = |c: &mut crate::Config| {
            c.webhooks.secret = Some("k".into());
            c.webhooks.secret_file = Some("/k".into());
        };
        assert_eq!(key_after(both), "webhooks.secret_file");
        let file = |c: &mut crate::Config| {
            url(c);
            c.webhooks.secret_file = Some("/etc/ringfwd/webhook.key".into());
        };
        assert_eq!(key_after(file), "<valid>");
    }

    #[test]
    fn webhook_delivery_bounds_are_checked_by_key() {
        assert_eq!(key_after(|c| c.webhooks.timeout_ms = 99), "webhooks.timeout_ms");
        assert_eq!(key_after(|c| c.webhooks.queue = 0), "webhooks.queue");
        assert_eq!(key_after(|c| c.webhooks.max_retries = 101), "webhooks.max_retries");
        assert_eq!(key_after(|c| c.webhooks.backoff_initial_ms = 0), "webhooks.backoff_initial_ms");
        let inverted = |c: &mut crate::Config| {
            c.webhooks.backoff_initial_ms = 1000;
            c.webhooks.backoff_max_ms = 999;
        };
        assert_eq!(key_after(inverted), "webhooks.backoff_max_ms");
        assert_eq!(key_after(|c| c.webhooks.urls = vec!["http://h/".into(); 17]), "webhooks.urls");
    }
}
