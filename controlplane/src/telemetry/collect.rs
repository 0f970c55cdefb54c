//! The task that moves the workers' statistics into the [`StatsStore`].
//!
//! Owns [`run`]: every `period` it drains every worker's [`StatsRing`] into the store and frees aged-out
//! entries. It holds the store's lock only while it ingests (never across an `.await`). Must never block
//! a worker: it only pops from their rings.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringfwd_dataplane::control::StatsRing;

use super::StatsStore;

/// Drains `rings` into `store` every `period` until `stop` resolves.
pub async fn run(
    rings: Vec<Arc<StatsRing>>,
    store: Arc<Mutex<StatsStore>>,
    period: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    crate::clock::every(period, stop, || {
        drain(&rings, &store);
        std::future::ready(())
    })
    .await;
}

/// Moves everything queued in `rings` into `store` and frees aged-out entries.
pub fn drain(rings: &[Arc<StatsRing>], store: &Mutex<StatsStore>) {
    let Ok(mut store) = store.lock() else {
        return;
    };
    for ring in rings {
        while let Some(record) = ring.pop() {
            store.ingest(&record);
        }
    }
    store.prune(Instant::now());
}
