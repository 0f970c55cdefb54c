//! The cluster's counters as Prometheus families.
//!
//! Owns [`ClusterMetrics`], an [`ExportMetrics`] over this node's [`ClusterCounters`]. Reads only; never calls the
//! directory.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::exposition::{Exposition, Kind};
use super::ExportMetrics;
use crate::cluster::ClusterCounters;

/// The cluster's counters as Prometheus families.
pub struct ClusterMetrics {
    /// This node's counters.
    pub counters: Arc<ClusterCounters>,
}

impl ExportMetrics for ClusterMetrics {
    fn export(&self, out: &mut Exposition) {
        let c = &self.counters;
        let families = [
            ("ringfwd_cluster_lease_renewals_total", "Lease renewals the cluster directory took.", &c.renewals),
            ("ringfwd_cluster_directory_errors_total", "Cluster directory calls that failed.", &c.errors),
            (
                "ringfwd_cluster_id_conflicts_total",
                "Times another process was found renewing this node's id (two nodes with one cluster.node_id).",
                &c.id_conflicts,
            ),
            (
                "ringfwd_cluster_resyncs_total",
                "Times this node wrote its whole list of streams into the directory again (and synced its sessions).",
                &c.resyncs,
            ),
            (
                "ringfwd_cluster_updates_dropped_total",
                "Stream placements the full update queue did not take (a resync followed).",
                &c.updates_dropped,
            ),
        ];
        for (name, help, value) in families {
            out.family(name, Kind::Counter, help);
            out.sample(name, &[], value.load(Ordering::Relaxed));
        }
        let changes = "ringfwd_cluster_node_changes_total";
        out.family(changes, Kind::Counter, "Nodes the directory's watcher heard join (up) or leave or expire (down).");
        out.sample(changes, &[("change", "up")], c.nodes_up.load(Ordering::Relaxed));
        out.sample(changes, &[("change", "down")], c.nodes_down.load(Ordering::Relaxed));
        let copies = "ringfwd_cluster_session_copies_total";
        out.family(
            copies,
            Kind::Counter,
            "Sessions other nodes created that this node made its copy of (made), or could not hold (refused).",
        );
        out.sample(copies, &[("result", "made")], c.sessions_copied.load(Ordering::Relaxed));
        out.sample(copies, &[("result", "refused")], c.sessions_not_copied.load(Ordering::Relaxed));
        let relay = "ringfwd_cluster_relay_messages_total";
        out.family(
            relay,
            Kind::Counter,
            "Relay messages this node sent to other nodes, each attempt (sub, cancel, finish), and those dropped.",
        );
        out.sample(relay, &[("message", "sub")], c.relay_subs_sent.load(Ordering::Relaxed));
        out.sample(relay, &[("message", "cancel")], c.relay_cancels_sent.load(Ordering::Relaxed));
        out.sample(relay, &[("message", "finish")], c.relay_finishes_sent.load(Ordering::Relaxed));
        out.sample(relay, &[("message", "dropped")], c.relay_messages_dropped.load(Ordering::Relaxed));
        let moves = "ringfwd_cluster_path_moves_total";
        out.family(
            moves,
            Kind::Counter,
            "Relayed streams this node moved to another path: through a relaying node (relay), back to the direct path \
             (direct), or that failed to move (failed, tried again later).",
        );
        out.sample(moves, &[("to", "relay")], c.path_moves[0].load(Ordering::Relaxed));
        out.sample(moves, &[("to", "direct")], c.path_moves[1].load(Ordering::Relaxed));
        out.sample(moves, &[("to", "failed")], c.path_move_failures.load(Ordering::Relaxed));
        let probes = "ringfwd_cluster_path_probes_failed_total";
        out.family(probes, Kind::Counter, "Probes of the nodes this node's relayed streams come from that failed.");
        out.sample(probes, &[], c.path_probes_failed.load(Ordering::Relaxed));
    }
}
