//! Lifecycle events: what happened to sessions, endpoints, streams and subscriptions, numbered and fanned out.
//!
//! - [`event`]: [`Event`] and [`EventKind`], plain data with the registry's names as strings.
//! - [`history`]: the pure core: sequence numbers from 1 without gaps, unique ids, the newest `events.history`
//!   events for watchers that resume, and why a resume is refused.
//! - [`bus`]: [`EventBus`]: publishing without waiting to the history, to every watcher's bounded buffer
//!   (`events.watch_buffer`; a full one cuts its watcher off) and to the sinks (the webhook queues).
//! - [`changes`]: which events a registry commit or a metadata change reports, in which order.
//! - [`worker`]: turning what the workers pushed on their bounded event rings into events, by the registry's
//!   names.
//!
//! Who publishes: the API, right after each registry commit and under the registry lock (so events are in
//! commit order), metadata writes, and the worker-event drain (`api::events`). Nothing here may block, await
//! while holding the bus's lock, or grow beyond a configured bound.

pub mod bus;
pub mod changes;
pub mod event;
pub mod history;
pub mod worker;

pub use bus::{BusCounters, CutOff, EventBus, EventLimits, EventSink, Watch, WatchError};
pub use event::{Event, EventKind, StreamRef, SubscriptionRef};
pub use history::ResumeError;
