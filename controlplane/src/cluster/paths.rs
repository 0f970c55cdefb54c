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
//! The nodes this node sends legs to are probed too: one that has not answered for twice `cluster.lease_ms` (alive
//! for the directory, but cut off from here) has its legs removed, as a Cancel of it would (the node moved its
//! streams to another path meanwhile; its Cancel cannot arrive while the path is cut).
//!
//! Owns the probes' tallies, the retry times and when each node with legs from here stopped answering (bounded by
//! the streams relayed here and the legs sent from here). Must never hold the registry, nor move a stream while a
//! subscription to it is being made or released (the stream's busy mark, taken by [`Api::move_relay`], orders
//! them).

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
/// The nodes this node sends legs to are listed and probed every this many checks (a second).
const LEG_REFRESH_TICKS: u64 = 5;

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
        let (mut legs_to, mut cut_off_since) = (BTreeSet::new(), BTreeMap::<String, Instant>::new());
        let give_up = Duration::from_millis(2 * u64::from(self.lease_ms()));
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for tick in 0u64.. {
            ticks.tick().await;
            // The nodes legs go to: listed and probed once a second (they are given up after seconds, not moved).
            let check_legs = tick % LEG_REFRESH_TICKS == 0;
            if check_legs {
                legs_to = api.leg_nodes().await;
                cut_off_since.retain(|node, _| legs_to.contains(node));
            }
            let incoming = self.all_incoming();
            let mut probed = if check_legs { legs_to.clone() } else { BTreeSet::new() };
            for (_, relayed) in &incoming {
                probed.insert(relayed.from.clone());
                if relayed.from != relayed.origin && !self.unreachable(&relayed.origin) {
                    probed.insert(relayed.origin.clone());
                }
            }
            tallies.retain(|node, _| probed.contains(node) || legs_to.contains(node));
            retry.retain(|key, _| incoming.iter().any(|(relayed, _)| relayed == key));
            if probed.is_empty() {
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
            for node in legs_to.iter().filter(|_| check_legs) {
                if tallies.get(node).is_none_or(|tally| tally.failed == 0) {
                    cut_off_since.remove(node);
                    continue;
                }
                let since = *cut_off_since.entry(node.clone()).or_insert(now);
                if now.duration_since(since) >= give_up {
                    tracing::warn!(node, "cluster: a node this node relays to cannot be reached; its legs are removed");
                    api.drop_legs_to(node).await;
                    self.counters().legs_given_up.fetch_add(1, Ordering::Relaxed);
                    cut_off_since.remove(node);
                }
            }
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
