//! One webhook URL's bounded queue and its counters.
//!
//! Owns [`WebhookCounters`] (read by the metrics endpoint at any time, without locks) and [`WebhookQueue`], the
//! bus's [`EventSink`] for one URL: it takes an event if the queue (`webhooks.queue`) has room, and otherwise
//! drops the new event and counts it — the queue keeps the oldest undelivered events, in order, so a receiver
//! sees a gap in `seq` after an outage, never a reordering. Must never wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::events::{Event, EventSink};

/// What happened to one URL's events since start.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// The URL.
    pub url: String,
    /// Events delivered (answered 2xx).
    pub sent: AtomicU64,
    /// Attempts that failed (connection error, timeout, or a non-2xx answer); an event retried twice and then
    /// delivered counts 2.
    pub failed_attempts: AtomicU64,
    /// Events given up: after `webhooks.max_retries` retries, or answered with a final refusal (4xx other than
    /// 408 and 429), or that could not be encoded.
    pub given_up: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events waiting in the queue now (the one being delivered not included).
    pub queued: AtomicU64,
}

impl WebhookCounters {
    /// Zeroed counters of `url`.
    pub fn new(url: &str) -> WebhookCounters {
        WebhookCounters { url: url.to_owned(), ..WebhookCounters::default() }
    }

    /// `(name, value)` of every counter, for reports and metrics.
    pub fn snapshot(&self) -> [(&'static str, u64); 5] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("sent", get(&self.sent)),
            ("failed_attempts", get(&self.failed_attempts)),
            ("given_up", get(&self.given_up)),
            ("dropped", get(&self.dropped)),
            ("queued", get(&self.queued)),
        ]
    }
}

/// The bus's end of one URL's queue.
#[derive(Debug)]
pub struct WebhookQueue {
    tx: mpsc::Sender<Arc<Event>>,
    counters: Arc<WebhookCounters>,
}

impl WebhookQueue {
    /// A queue of `capacity` events (at least 1) counting into `counters`, and its receiving end.
    pub fn new(capacity: usize, counters: Arc<WebhookCounters>) -> (WebhookQueue, mpsc::Receiver<Arc<Event>>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (WebhookQueue { tx, counters }, rx)
    }
}

impl EventSink for WebhookQueue {
    fn offer(&mut self, event: &Arc<Event>) {
        // Counted before the send so the receiver's decrement can never run first and wrap.
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Arc::clone(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn event(seq: u64) -> Arc<Event> {
        Arc::new(Event {
            id: seq.to_string(),
            seq,
            unix_ms: 0,
            session_id: "s".into(),
            kind: EventKind::SessionStarted,
        })
    }

    #[test]
    fn a_full_queue_keeps_the_oldest_and_counts_the_dropped() {
        let counters = Arc::new(WebhookCounters::new("http://h/"));
        let (mut queue, mut rx) = WebhookQueue::new(2, Arc::clone(&counters));
        for seq in 1..=5 {
            queue.offer(&event(seq));
        }
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(counters.queued.load(Ordering::Relaxed), 2);
        assert_eq!(rx.try_recv().unwrap().seq, 1);
        assert_eq!(rx.try_recv().unwrap().seq, 2);
        assert!(rx.try_recv().is_err());
        assert_eq!(counters.snapshot()[3], ("dropped", 3));
    }
}
