//! The cluster's counters as Prometheus families.
//!
//! Owns [`ClusterMetrics`], an [`ExportMetrics`] over this node's [`ClusterCounters`], and [`export_relays`], the
//! series of each relay leg this node sends and of each stream relayed to it (from `ListRelays`'s answer, read at
//! scrape time). Reads only; never calls the directory nor another node.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ringfwd_proto::v1;

use super::exposition::{Exposition, Kind, Value};
use super::ExportMetrics;
use crate::cluster::ClusterCounters;

/// One family of a relay's statistics: name, type, help, and its value from the statistics (`None`: no sample).
type RelayFamily = (&'static str, Kind, &'static str, fn(&v1::StatsSample) -> Option<Value>);

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
        let metadata = "ringfwd_cluster_metadata_total";
        out.family(
            metadata,
            Kind::Counter,
            "Metadata writes this node shared with the other nodes (shared) or could not (dropped), and writes of \
             other nodes merged here that changed an object (merged).",
        );
        out.sample(metadata, &[("result", "shared")], c.metadata_shared.load(Ordering::Relaxed));
        out.sample(metadata, &[("result", "dropped")], c.metadata_not_shared.load(Ordering::Relaxed));
        out.sample(metadata, &[("result", "merged")], c.metadata_merged.load(Ordering::Relaxed));
        let probes = "ringfwd_cluster_path_probes_failed_total";
        out.family(probes, Kind::Counter, "Probes of the nodes this node's relayed streams come from that failed.");
        out.sample(probes, &[], c.path_probes_failed.load(Ordering::Relaxed));
        let given_up = "ringfwd_cluster_legs_given_up_total";
        out.family(
            given_up,
            Kind::Counter,
            "Times this node removed its legs to a node it could not reach for twice cluster.lease_ms.",
        );
        out.sample(given_up, &[], c.legs_given_up.load(Ordering::Relaxed));
    }
}

/// The relays in `relays` (`ListRelays`'s answer), one series per leg and per relayed stream, labelled `session`,
/// `stream` and `node` (the node a leg sends to; the node a relayed stream comes from). Their number is bounded by the
/// registry's (`admission.max_subscriptions`, `admission.max_streams`), as the statistics store's is. A relay whose
/// worker has not published its statistics yet has no series; of two with the same labels (a leg replaced a moment
/// ago), the first listed is exported.
pub fn export_relays(out: &mut Exposition, relays: &v1::ListRelaysResponse) {
    let legs: [RelayFamily; 4] = [
        (
            "ringfwd_cluster_relay_leg_packets_total",
            Kind::Counter,
            "RTP packets this node sent on a relay leg to another node (node: the node it sends to).",
            |s| Some(s.packets.into()),
        ),
        (
            "ringfwd_cluster_relay_leg_bytes_total",
            Kind::Counter,
            "Bytes of the packets this node sent on a relay leg (whole datagrams).",
            |s| Some(s.bytes.into()),
        ),
        (
            "ringfwd_cluster_relay_leg_lost_packets",
            Kind::Gauge,
            "Packets of a relay leg lost on the way, as the receiving node's receiver reports say (cumulative, \
             RFC 3550; negative with duplicates); absent until its first receiver report.",
            |s| (s.receiver_reports > 0).then_some(Value::Float(s.lost as f64)),
        ),
        (
            "ringfwd_cluster_relay_leg_rtt_seconds",
            Kind::Gauge,
            "Round-trip time to the node a relay leg sends to, from its last receiver report; absent while unknown.",
            |s| (s.rtt_us > 0).then_some(Value::Float(s.rtt_us as f64 / 1e6)),
        ),
    ];
    let relayed: [RelayFamily; 1] = [(
        "ringfwd_cluster_relayed_stream_packets_total",
        Kind::Counter,
        "RTP packets this node received of a stream relayed to it (node: the node it comes from).",
        |s| Some(s.packets.into()),
    )];
    let leg_rows = unique(relays.legs.iter().map(|l| ([&l.session_id, &l.stream_id, &l.node_id], l.egress.as_ref())));
    let relayed_rows =
        unique(relays.relayed.iter().map(|r| ([&r.session_id, &r.stream_id, &r.node_id], r.ingress.as_ref())));
    for (families, rows) in [(&legs[..], leg_rows), (&relayed[..], relayed_rows)] {
        for (name, kind, help, value) in families {
            out.family(name, *kind, help);
            for ([session, stream, node], stats) in &rows {
                if let Some(value) = value(stats) {
                    out.sample(name, &[("session", session), ("stream", stream), ("node", node)], value);
                }
            }
        }
    }
}

/// The labels and statistics of the relays that have statistics, the first of each label set.
fn unique<'a>(
    relays: impl Iterator<Item = ([&'a String; 3], Option<&'a v1::StatsSample>)>,
) -> Vec<([&'a str; 3], &'a v1::StatsSample)> {
    let mut seen = HashSet::new();
    relays
        .filter_map(|(labels, stats)| Some((labels.map(String::as_str), stats?)))
        .filter(|(labels, _)| seen.insert(*labels))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(stream: &str, node: &str, egress: Option<v1::StatsSample>) -> v1::RelayLeg {
        let leg_id = format!("~{node}.00000000000000{}", stream.len());
        v1::RelayLeg { session_id: "s".into(), stream_id: stream.into(), node_id: node.into(), leg_id, egress }
    }

    #[test]
    fn each_relay_is_one_series_labelled_session_stream_and_node() {
        let reported = v1::StatsSample {
            packets: 50,
            bytes: 8600,
            lost: 2,
            receiver_reports: 3,
            rtt_us: 1500,
            ..Default::default()
        };
        let fresh = v1::StatsSample { packets: 7, bytes: 700, ..Default::default() };
        let relays = v1::ListRelaysResponse {
            legs: vec![
                leg("v", "b", Some(reported)),
                leg("v", "b", Some(v1::StatsSample { packets: 1, ..Default::default() })),
                leg("a2", "c", Some(fresh)),
                leg("a3", "c", None),
            ],
            relayed: vec![v1::RelayedStream {
                session_id: "s".into(),
                stream_id: "x".into(),
                node_id: "a".into(),
                subscriptions: 1,
                ingress: Some(v1::StatsSample { packets: 9, ..Default::default() }),
            }],
        };
        let mut out = Exposition::new();
        export_relays(&mut out, &relays);
        let text = out.finish();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "ringfwd_cluster_relay_leg_packets_total{session=\"s\",stream=\"v\",node=\"b\"} 50",
                "ringfwd_cluster_relay_leg_packets_total{session=\"s\",stream=\"a2\",node=\"c\"} 7",
                "ringfwd_cluster_relay_leg_bytes_total{session=\"s\",stream=\"v\",node=\"b\"} 8600",
                "ringfwd_cluster_relay_leg_bytes_total{session=\"s\",stream=\"a2\",node=\"c\"} 700",
                "ringfwd_cluster_relay_leg_lost_packets{session=\"s\",stream=\"v\",node=\"b\"} 2",
                "ringfwd_cluster_relay_leg_rtt_seconds{session=\"s\",stream=\"v\",node=\"b\"} 0.0015",
                "ringfwd_cluster_relayed_stream_packets_total{session=\"s\",stream=\"x\",node=\"a\"} 9",
            ],
            "{text}"
        );
        assert!(text.contains("# TYPE ringfwd_cluster_relay_leg_rtt_seconds gauge\n"), "{text}");
        assert!(text.contains("# TYPE ringfwd_cluster_relayed_stream_packets_total counter\n"), "{text}");
    }

    #[test]
    fn no_relays_is_the_families_without_samples() {
        let mut out = Exposition::new();
        export_relays(&mut out, &v1::ListRelaysResponse::default());
        let text = out.finish();
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE ")).count(), 5, "{text}");
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
    }
}
