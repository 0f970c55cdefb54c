//! The event bus: publishing lifecycle events to the history, the watchers and the sinks without waiting.
//!
//! Owns [`EventBus`]: under one short lock (never held across an `.await`) it numbers an event
//! ([`History`]), hands it to every watcher's bounded buffer (`events.watch_buffer`) with `try_send`, and offers
//! it to every [`EventSink`] (the webhook queues), which must not wait either. A watcher whose buffer is full
//! is cut off there and then: its [`Watch`] yields what it still holds, then [`CutOff`] naming the last
//! sequence number it yielded. So a slow watcher costs memory bounded by its buffer and never slows a
//! publisher. Must never block, await, or grow anything beyond the configured bounds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::event::{Event, EventKind};
use super::history::{History, ResumeError};

/// The bus's bounds (`[events]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventLimits {
    /// Events kept for resuming watchers (`events.history`).
    pub history: usize,
    /// Events one watcher may have waiting (`events.watch_buffer`).
    pub watch_buffer: usize,
    /// Watchers at once (`events.max_watchers`).
    pub max_watchers: usize,
}

impl EventLimits {
    /// The bounds a validated `config` sets.
    pub fn from_config(config: &ringfwd_tuning::Config) -> EventLimits {
        EventLimits {
            history: config.events.history as usize,
            watch_buffer: config.events.watch_buffer as usize,
            max_watchers: config.events.max_watchers as usize,
        }
    }
}

/// Something that takes every published event, in order, without waiting (a webhook queue).
pub trait EventSink: Send {
    /// Takes `event`; when it has no room it drops it (and counts that), never waits.
    fn offer(&mut self, event: &Arc<Event>);
}

/// The bus's counters, readable at any time without the bus's lock.
#[derive(Debug, Default)]
pub struct BusCounters {
    /// Events published since start (the newest sequence number).
    pub published: AtomicU64,
    /// Watchers cut off because their buffer was full.
    pub watchers_cut_off: AtomicU64,
    /// Worker events not published because the stream or subscription they name was deleted meanwhile.
    pub worker_events_unresolved: AtomicU64,
}

/// Why a watch could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// `from_seq` cannot be resumed from.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// `events.max_watchers` watchers are open.
    #[error("{max} event watchers are open (limit events.max_watchers = {max})")]
    TooManyWatchers {
        /// `events.max_watchers`.
        max: usize,
    },
    /// The node is shutting down.
    #[error("the event bus is closed: the node is shutting down")]
    Closed,
}

/// The end of a watcher that fell behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "event watcher fell more than {watch_buffer} events behind (limit events.watch_buffer = {watch_buffer}); the last \
     event sent was seq {last_sent}: watch again with from_seq {last_sent}"
)]
pub struct CutOff {
    /// The sequence number of the last event the watch yielded (or that it started after).
    pub last_sent: u64,
    /// `events.watch_buffer`.
    pub watch_buffer: usize,
}

/// A watcher's place on the bus.
struct Slot {
    session: Option<String>,
    tx: mpsc::Sender<Arc<Event>>,
    cut: Arc<AtomicBool>,
}

struct Inner {
    history: History,
    watchers: Vec<Slot>,
    sinks: Vec<Box<dyn EventSink>>,
    closed: bool,
}

/// The bus. See the module docs.
pub struct EventBus {
    inner: Mutex<Inner>,
    limits: EventLimits,
    counters: Arc<BusCounters>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("limits", &self.limits).field("counters", &self.counters).finish()
    }
}

impl EventBus {
    /// An empty bus within `limits`; `boot_id` (random per run of the node) makes event ids unique across runs.
    pub fn new(limits: EventLimits, boot_id: u64) -> EventBus {
        let inner = Inner {
            history: History::new(boot_id, limits.history),
            watchers: Vec::new(),
            sinks: Vec::new(),
            closed: false,
        };
        EventBus { inner: Mutex::new(inner), limits, counters: Arc::new(BusCounters::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Its counters.
    pub fn counters(&self) -> &Arc<BusCounters> {
        &self.counters
    }

    /// From now on, every event is also offered to `sink`.
    pub fn add_sink(&self, sink: Box<dyn EventSink>) {
        self.lock().sinks.push(sink);
    }

    /// Numbers the event that happened in `session_id` at `unix_ms` and hands it to every watcher and sink,
    /// without waiting; answers its sequence number (`None` once the bus is closed).
    pub fn publish(&self, session_id: String, kind: EventKind, unix_ms: u64) -> Option<u64> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let event = inner.history.record(session_id, kind, unix_ms);
        let cut_off = &self.counters.watchers_cut_off;
        inner.watchers.retain(|slot| {
            if slot.session.as_ref().is_some_and(|s| *s != event.session_id) {
                return !slot.tx.is_closed();
            }
            match slot.tx.try_send(Arc::clone(&event)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    // Set before the sender is dropped (by `retain`), which is what the watch observes.
                    slot.cut.store(true, Ordering::Release);
                    cut_off.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
        for sink in &mut inner.sinks {
            sink.offer(&event);
        }
        self.counters.published.store(event.seq, Ordering::Relaxed);
        Some(event.seq)
    }

    /// A watcher of the events of `session` (`None`: all), from now on or, with `from_seq`, starting with every
    /// kept event after it: no gap and no repeat between those and the live ones.
    pub fn watch(&self, from_seq: Option<u64>, session: Option<String>) -> Result<Watch, WatchError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(WatchError::Closed);
        }
        inner.watchers.retain(|slot| !slot.tx.is_closed());
        if inner.watchers.len() >= self.limits.max_watchers {
            return Err(WatchError::TooManyWatchers { max: self.limits.max_watchers });
        }
        let wanted = |e: &&Arc<Event>| session.as_ref().is_none_or(|s| *s == e.session_id);
        let (replay, last_sent) = match from_seq {
            Some(from) => (inner.history.after(from)?.filter(wanted).cloned().collect(), from),
            None => (VecDeque::new(), inner.history.newest_seq()),
        };
        let (tx, live) = mpsc::channel(self.limits.watch_buffer.max(1));
        let cut = Arc::new(AtomicBool::new(false));
        inner.watchers.push(Slot { session, tx, cut: Arc::clone(&cut) });
        Ok(Watch { replay, live, cut, last_sent, watch_buffer: self.limits.watch_buffer, ended: false })
    }

    /// Watchers open (some may have gone since the last event).
    pub fn watchers(&self) -> usize {
        self.lock().watchers.len()
    }

    /// Shuts the bus: every watch ends (after what it holds) without an error, every sink is dropped (a webhook
    /// queue then delivers what it holds and ends), and later events are not published.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.watchers.clear();
        inner.sinks.clear();
    }
}

/// One watcher's events: first the kept ones it asked to resume with, then the live ones.
#[derive(Debug)]
pub struct Watch {
    replay: VecDeque<Arc<Event>>,
    live: mpsc::Receiver<Arc<Event>>,
    cut: Arc<AtomicBool>,
    last_sent: u64,
    watch_buffer: usize,
    ended: bool,
}

impl Watch {
    /// The next event; `Err(CutOff)` once, after the last buffered event, when the watcher fell behind; `None`
    /// when the watch ended (the bus closed, or after the `CutOff`).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Arc<Event>, CutOff>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let next = match self.replay.pop_front() {
            Some(event) => Some(event),
            None => match self.live.poll_recv(cx) {
                Poll::Ready(next) => next,
                Poll::Pending => return Poll::Pending,
            },
        };
        match next {
            Some(event) => {
                self.last_sent = event.seq;
                Poll::Ready(Some(Ok(event)))
            }
            None => {
                self.ended = true;
                if self.cut.load(Ordering::Acquire) {
                    Poll::Ready(Some(Err(CutOff { last_sent: self.last_sent, watch_buffer: self.watch_buffer })))
                } else {
                    Poll::Ready(None)
                }
            }
        }
    }

    /// [`Watch::poll_next`] as a future.
    pub async fn next(&mut self) -> Option<Result<Arc<Event>, CutOff>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The sequence number of the last event it yielded (or that it started after).
    pub fn last_sent(&self) -> u64 {
        self.last_sent
    }
}

#[cfg(test)]
#[path = "bus_tests.rs"]
mod tests;
