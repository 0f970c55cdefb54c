//! Delivering one URL's queue: encode, sign, POST, retry.
//!
//! Owns the per-URL task ([`run`]): it takes the queue's events in order, encodes each once as the protobuf
//! JSON mapping of `ringfwd.v1.Event`, and POSTs it, signed anew per attempt ([`super::sign`]), until it is
//! answered 2xx, refused for good, or `webhooks.max_retries` retries failed, waiting [`Backoff`] between
//! attempts. One event at a time per URL, so a receiver gets them in order. Failures are counted
//! ([`WebhookCounters`]) and logged (a failed attempt at debug, a given-up event at warn). Must never block
//! the bus: it only ever receives from its queue.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prost_reflect::{DynamicMessage, MessageDescriptor};
use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::queue::WebhookCounters;
use super::sign::{signature, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::events::Event;

/// How one URL is delivered to.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The URL.
    pub url: reqwest::Url,
    /// The signing key.
    pub secret: Arc<[u8]>,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The waits between attempts.
    pub backoff: Backoff,
}

/// What one attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Answered 2xx.
    Delivered,
    /// A connection error, a timeout, or 408, 429 or 5xx: try again.
    Retry(String),
    /// Any other answer: the receiver refused this event; retrying would not change that.
    Refused(String),
}

/// What an answer with `status` means.
pub fn judge(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        408 | 429 | 500..=599 => Attempt::Retry(format!("answered {status}")),
        _ => Attempt::Refused(format!("answered {status}")),
    }
}

/// The protobuf JSON mapping of events.
#[derive(Clone, Debug)]
pub struct EventJson(MessageDescriptor);

impl EventJson {
    /// The encoder, from the API's compiled schema.
    pub fn new() -> Result<EventJson, String> {
        let pool =
            prost_reflect::DescriptorPool::decode(ringfwd_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())?;
        let descriptor = pool.get_message_by_name("ringfwd.v1.Event").ok_or("the schema has no ringfwd.v1.Event")?;
        Ok(EventJson(descriptor))
    }

    /// `event` as the JSON body of a delivery.
    pub fn encode(&self, event: &Event) -> Result<Vec<u8>, String> {
        let wire = prost::Message::encode_to_vec(&crate::api::event_to_wire(event));
        let message = DynamicMessage::decode(self.0.clone(), wire.as_slice()).map_err(|e| e.to_string())?;
        serde_json::to_vec(&message).map_err(|e| e.to_string())
    }
}

/// One POST of `body`.
async fn attempt(client: &reqwest::Client, delivery: &Delivery, body: &[u8]) -> Attempt {
    let timestamp_s = crate::clock::unix_s();
    let request = client
        .post(delivery.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, timestamp_s.to_string())
        .header(SIGNATURE_HEADER, signature(&delivery.secret, timestamp_s, body))
        .body(body.to_vec());
    match request.send().await {
        Ok(response) => judge(response.status().as_u16()),
        Err(e) if e.is_timeout() => Attempt::Retry("timed out".into()),
        Err(e) => Attempt::Retry(format!("{e}")),
    }
}

/// Delivers one event: true when it was.
async fn deliver(
    client: &reqwest::Client,
    delivery: &Delivery,
    counters: &WebhookCounters,
    event: &Event,
    body: &[u8],
) -> bool {
    for retry in 0..=delivery.max_retries {
        if retry > 0 {
            tokio::time::sleep(delivery.backoff.delay(retry, rand::random::<f64>())).await;
        }
        let why = match attempt(client, delivery, body).await {
            Attempt::Delivered => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Attempt::Retry(why) => why,
            Attempt::Refused(why) => {
                counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                counters.given_up.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %delivery.url, seq = event.seq, %why, "webhook refused an event; not retried");
                return false;
            }
        };
        counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(url = %delivery.url, seq = event.seq, attempt = retry + 1, %why, "webhook attempt failed");
    }
    counters.given_up.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        url = %delivery.url,
        seq = event.seq,
        attempts = delivery.max_retries + 1,
        "webhook event given up after webhooks.max_retries retries"
    );
    false
}

/// Delivers everything `queue` yields, in order, until the queue is closed and empty.
pub async fn run(
    client: reqwest::Client,
    delivery: Delivery,
    json: EventJson,
    counters: Arc<WebhookCounters>,
    mut queue: mpsc::Receiver<Arc<Event>>,
) {
    while let Some(event) = queue.recv().await {
        counters.queued.fetch_sub(1, Ordering::Relaxed);
        match json.encode(&event) {
            Ok(body) => {
                deliver(&client, &delivery, &counters, &event, &body).await;
            }
            Err(e) => {
                counters.given_up.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %delivery.url, seq = event.seq, error = %e, "could not encode an event");
            }
        }
    }
}

/// The HTTP client of every URL: `timeout` per attempt, connecting included.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, StreamRef};

    #[test]
    fn answers_are_judged_by_status() {
        assert_eq!(judge(200), Attempt::Delivered);
        assert_eq!(judge(204), Attempt::Delivered);
        assert!(matches!(judge(500), Attempt::Retry(_)));
        assert!(matches!(judge(503), Attempt::Retry(_)));
        assert!(matches!(judge(429), Attempt::Retry(_)));
        assert!(matches!(judge(408), Attempt::Retry(_)));
        assert!(matches!(judge(400), Attempt::Refused(_)));
        assert!(matches!(judge(404), Attempt::Refused(_)));
        assert!(matches!(judge(301), Attempt::Refused(_)));
    }

    #[test]
    fn bodies_are_the_protobuf_json_mapping() {
        let event = Event {
            id: "00000000000000ab-12".into(),
            seq: 12,
            unix_ms: 1_700_000_000_123,
            session_id: "room".into(),
            kind: EventKind::StreamStarted(StreamRef { stream_id: "v".into(), endpoint_id: "a".into() }),
        };
        let body = EventJson::new().unwrap().encode(&event).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["id"], "00000000000000ab-12");
        assert_eq!(json["seq"], "12", "64-bit integers are strings in the JSON mapping");
        assert_eq!(json["unixMs"], "1700000000123");
        assert_eq!(json["sessionId"], "room");
        assert_eq!(json["streamStarted"]["streamId"], "v");
        assert_eq!(json["streamStarted"]["endpointId"], "a");
    }
}
