//! Keeping each stream relayed to this node on a working path: the direct path from its origin while that works, a
//! relaying node while it does not, and the direct path again once it works again.
//!
//! Every [`CHECK_INTERVAL`] this node probes the nodes its relayed streams depend on (each stream's `from`, and its
//! origin when it comes through a relaying node) with a `GetNodeInfo` call of at most [`PROBE_TIMEOUT`]; a probe that
//! fails drops the channel to that node, so the next one connects afresh instead of waiting on a connection the
//! broken path left behind. A stream whose `from` failed [`BROKEN_AFTER`] probes in a row moves to another path (see
//! [`Api::move_relay`]): to its origin directly when `from` was a relaying node and the origin answers its probes,
//! else through another node that reaches its origin (so a relaying node that dies is left before its lease runs
//! out and takes the stream along). One that comes through a relaying node moves
//! back to the direct path once its origin answered [`RESTORED_AFTER`] probes in a row (and `cluster.unreachable_nodes`
//! does not name it). A move that fails is tried again after a backoff (from [`CHECK_INTERVAL`], doubling up to
//! [`MAX_RETRY`]). The move is make before break: its subscribers see each sequence number once, with no gap.
//!
//! Owns the probes' tallies and the retry times (both bounded by the streams relayed here). Must never hold the
//! registry, nor move a stream while a subscription to it is being made or released (the stream's busy mark, taken
//! by [`Api::move_relay`], orders them). Not built: the origin noticing by itself that it cannot reach a node it sends
//! a leg to (the receiver's Cancel, re-sent with backoff, or a newer Sub of it, or its lease's end removes the leg).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ringfwd_proto::v1;
use tokio::time::Instant;

use super::directory::StreamKey;
use super::node::Cluster;
use crate::api::Api;

/// How often the paths are checked.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(200);
/// The longest a probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// Failed probes in a row after which a path counts as broken.
pub const BROKEN_AFTER: u32 = 2;
/// Answered probes of a stream's origin in a row after which it moves back to the direct path.
pub const RESTORED_AFTER: u32 = 3;
/// The longest wait before a failed move is tried again.
pub const MAX_RETRY: Duration = Duration::from_secs(10);

/// The probes of one node, in a row.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    failed: u32,
    answered: u32,
}

impl Cluster {
    /// Whether node `node` answers a `GetNodeInfo` within [`PROBE_TIMEOUT`]. A failure drops this node's channel to it.
    async fn probe(&self, node: &str) -> bool {
        let Ok((mut client, record)) = self.client(node).await else { return false };
        let Ok(mut request) = self.authorized(node, v1::GetNodeInfoRequest {}) else { return false };
        request.set_timeout(PROBE_TIMEOUT);
        let answered = tokio::time::timeout(PROBE_TIMEOUT, client.get_node_info(request)).await;
        let answered = answered.is_ok_and(|answer| answer.is_ok());
        if !answered {
            self.counters().path_probes_failed.fetch_add(1, Ordering::Relaxed);
            self.drop_channel(record.api_address);
        }
        answered
    }

    /// Checks the paths of the streams relayed here every [`CHECK_INTERVAL`] and moves those whose path broke or
    /// whose direct path came back; see the module docs.
    pub(super) async fn paths_loop(self: Arc<Self>, api: Arc<Api>) {
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        let mut retry: BTreeMap<StreamKey, (Instant, Duration)> = BTreeMap::new();
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let incoming = self.all_incoming();
            let mut probed = BTreeSet::new();
            for (_, relayed) in &incoming {
                probed.insert(relayed.from.clone());
                if relayed.from != relayed.origin && !self.unreachable(&relayed.origin) {
                    probed.insert(relayed.origin.clone());
                }
            }
            tallies.retain(|node, _| probed.contains(node));
            retry.retain(|key, _| incoming.iter().any(|(relayed, _)| relayed == key));
            if incoming.is_empty() {
                continue;
            }
            let mut probes = tokio::task::JoinSet::new();
            for node in probed {
                let cluster = Arc::clone(&self);
                probes.spawn(async move {
                    let answered = cluster.probe(&node).await;
                    (node, answered)
                });
            }
            while let Some(probe) = probes.join_next().await {
                let Ok((node, answered)) = probe else { continue };
                let tally = tallies.entry(node).or_default();
                *tally = if answered {
                    Tally { failed: 0, answered: tally.answered.saturating_add(1) }
                } else {
                    Tally { failed: tally.failed.saturating_add(1), answered: 0 }
                };
            }
            let now = Instant::now();
            for (key, relayed) in incoming {
                let tally = |node: &str| tallies.get(node).copied().unwrap_or_default();
                let through_relayer = relayed.from != relayed.origin && !self.unreachable(&relayed.origin);
                let direct = if tally(&relayed.from).failed >= BROKEN_AFTER {
                    // A relaying node that broke (or left): straight to the origin when it answers.
                    through_relayer && tally(&relayed.origin).answered >= 1
                } else if through_relayer && tally(&relayed.origin).answered >= RESTORED_AFTER {
                    true
                } else {
                    continue;
                };
                if retry.get(&key).is_some_and(|(at, _)| now < *at) {
                    continue;
                }
                match api.move_relay(&self, &key, direct).await {
                    Ok(to) => {
                        retry.remove(&key);
                        let moves = &self.counters().path_moves;
                        moves[usize::from(direct)].fetch_add(1, Ordering::Relaxed);
                        tallies.remove(&to);
                    }
                    Err(status) => {
                        self.counters().path_move_failures.fetch_add(1, Ordering::Relaxed);
                        let wait = retry.get(&key).map_or(CHECK_INTERVAL, |(_, wait)| (*wait * 2).min(MAX_RETRY));
                        retry.insert(key.clone(), (now + wait, wait));
                        tracing::warn!(
                            session_id = key.session_id,
                            stream_id = key.stream_id,
                            from = relayed.from,
                            "cluster: a relayed stream could not move to another path (tried again in {wait:?}): \
                             {}",
                            status.message()
                        );
                    }
                }
            }
        }
    }
}
