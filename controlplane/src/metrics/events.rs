//! The event bus's and the webhook dispatcher's counters as Prometheus families.
//!
//! Owns [`EventMetrics`], an [`ExportMetrics`] over their atomics. Reads only; never blocks the bus or a
//! delivery task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::exposition::{Exposition, Kind};
use super::ExportMetrics;
use crate::events::BusCounters;
use crate::webhooks::WebhookCounters;

/// One webhook family: name, type, help, and the counter it reads.
type WebhookFamily = (&'static str, Kind, &'static str, fn(&WebhookCounters) -> &AtomicU64);

/// The counters of the event bus and of every webhook URL.
pub struct EventMetrics {
    /// The bus's counters.
    pub bus: Arc<BusCounters>,
    /// One per configured webhook URL.
    pub webhooks: Vec<Arc<WebhookCounters>>,
}

impl ExportMetrics for EventMetrics {
    fn export(&self, out: &mut Exposition) {
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let bus = [
            ("ringfwd_events_published_total", "Lifecycle events published.", &self.bus.published),
            (
                "ringfwd_event_watchers_cut_off_total",
                "Watchers cut off because their buffer filled.",
                &self.bus.watchers_cut_off,
            ),
            (
                "ringfwd_worker_events_unresolved_total",
                "Worker events dropped because their stream or subscription was deleted meanwhile.",
                &self.bus.worker_events_unresolved,
            ),
        ];
        for (name, help, value) in bus {
            out.family(name, Kind::Counter, help);
            out.sample(name, &[], load(value));
        }
        let webhook: [WebhookFamily; 5] = [
            ("ringfwd_webhook_events_sent_total", Kind::Counter, "Events delivered (2xx).", |c| &c.sent),
            ("ringfwd_webhook_failed_attempts_total", Kind::Counter, "Delivery attempts that failed.", |c| {
                &c.failed_attempts
            }),
            ("ringfwd_webhook_events_given_up_total", Kind::Counter, "Events given up after the retries.", |c| {
                &c.given_up
            }),
            ("ringfwd_webhook_events_dropped_total", Kind::Counter, "Events dropped: the queue was full.", |c| {
                &c.dropped
            }),
            ("ringfwd_webhook_queued_events", Kind::Gauge, "Events waiting in the queue.", |c| &c.queued),
        ];
        if self.webhooks.is_empty() {
            return;
        }
        for (name, kind, help, field) in webhook {
            out.family(name, kind, help);
            for counters in &self.webhooks {
                out.sample(name, &[("url", counters.url.as_str())], load(field(counters)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_and_webhook_counters_are_exported_with_the_url_label() {
        let bus = Arc::new(BusCounters::default());
        bus.published.store(7, Ordering::Relaxed);
        let hook = Arc::new(WebhookCounters::new("http://127.0.0.1:9/hook"));
        hook.given_up.store(2, Ordering::Relaxed);
        let metrics = EventMetrics { bus, webhooks: vec![hook] };
        let mut out = Exposition::new();
        metrics.export(&mut out);
        let text = out.finish();
        assert!(text.contains("ringfwd_events_published_total 7"), "{text}");
        assert!(text.contains("ringfwd_webhook_events_given_up_total{url=\"http://127.0.0.1:9/hook\"} 2"), "{text}");
        assert!(text.contains("# TYPE ringfwd_webhook_queued_events gauge"), "{text}");
    }
}
