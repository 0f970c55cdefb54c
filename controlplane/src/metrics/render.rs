//! What the Prometheus endpoint exports, read at scrape time from the atomics and rings the data plane and
//! the control plane already keep.
//!
//! Owns [`Sources`] (handles to everything exported) and the metric names. Worker counters are derived from
//! the data plane's counter list (`COUNTERS`), so a new counter is exported without a change here: a counter
//! `x` becomes `ringfwd_x_total{worker}`, a gauge `x` becomes `ringfwd_worker_x{worker}` (the prefix keeps
//! a worker's table sizes apart from the registry's `ringfwd_streams`), and every drop counter becomes one
//! series of `ringfwd_packets_dropped_total{worker, reason}`. Must never make a worker wait: it only loads
//! atomics and asks bounded queues for their length.

use std::sync::{Arc, Mutex};

use ringfwd_dataplane::control::HandoverRing;
use ringfwd_dataplane::control::{CounterKind, Counters, DropReason, COUNTERS};
use ringfwd_dataplane::control::{LatencyBuckets, RecorderCounters, WorkerHandle, LATENCY_BUCKET_BOUNDS_NS};
use ringfwd_proto::v1::ListRelaysResponse;

use super::exposition::{Exposition, Kind};
use super::grpc::ApiMetrics;
use crate::registry::Usage;
use crate::telemetry::StatsStore;

/// More metrics to export, from a part of the control plane that keeps its own counters (the webhook
/// dispatcher's, for one). Each call writes whole families.
pub trait ExportMetrics: Send + Sync {
    /// Writes this part's families.
    fn export(&self, out: &mut Exposition);
}

/// One worker's counter values in the order of `COUNTERS`, and the counters themselves.
type PerWorker = (Vec<u64>, Counters);

/// Everything the endpoint reads.
pub struct Sources {
    /// ringfwd's version, for `ringfwd_build_info`.
    pub version: &'static str,
    /// The workers' driver ("io_uring" or "mmsg").
    pub driver: &'static str,
    /// The workers: counters, command ring, statistics and event rings.
    pub workers: Vec<WorkerHandle>,
    /// Each worker's forwarding-latency histogram (index = worker).
    pub latency: Vec<Arc<LatencyBuckets>>,
    /// Each worker's incoming handover ring (index = worker).
    pub handover: Arc<[HandoverRing]>,
    /// Buffers in each worker's pool (0: the driver has no pool).
    pub pool_buffers_per_worker: u64,
    /// The control API's request counters.
    pub api: Arc<ApiMetrics>,
    /// The statistics store (its size and the entries it refused).
    pub stats: Arc<Mutex<StatsStore>>,
    /// The pcap recorder's counters, when recording is on.
    pub recorder: Option<Arc<RecorderCounters>>,
    /// Further exporters (see [`ExportMetrics`]).
    pub extra: Vec<Arc<dyn ExportMetrics>>,
}

/// The metric name of a worker counter or gauge from the data plane's list.
pub fn worker_metric_name(name: &str, kind: CounterKind) -> String {
    match kind {
        CounterKind::Counter => format!("ringfwd_{name}_total"),
        CounterKind::Gauge => format!("ringfwd_worker_{name}"),
    }
}

impl Sources {
    /// The whole exposition, with the registry's `usage` and, on a node in a cluster, its `relays` (both read by
    /// the caller, which may have to wait for the registry's lock).
    pub fn render(&self, usage: Usage, relays: Option<&ListRelaysResponse>) -> String {
        let mut out = Exposition::new();
        out.family("ringfwd_build_info", Kind::Gauge, "Always 1; the labels say what is running.");
        out.sample("ringfwd_build_info", &[("version", self.version), ("driver", self.driver)], 1u64);
        let counters: Vec<Counters> = self.workers.iter().map(|w| w.counters.snapshot()).collect();
        let counters: Vec<PerWorker> =
            counters.iter().map(|c| (c.iter().map(|(_, v)| v).collect(), c.clone())).collect();
        self.worker_counters(&mut out, &counters);
        self.occupancy(&mut out);
        self.latency(&mut out);
        registry(&mut out, usage);
        self.api.export(&mut out);
        self.control(&mut out);
        for extra in &self.extra {
            extra.export(&mut out);
        }
        if let Some(relays) = relays {
            super::cluster::export_relays(&mut out, relays);
        }
        out.finish()
    }

    fn worker_label(&self) -> impl Iterator<Item = String> + '_ {
        self.workers.iter().map(|w| w.index.to_string())
    }

    fn worker_counters(&self, out: &mut Exposition, counters: &[PerWorker]) {
        let drops: Vec<&str> = DropReason::ALL.iter().map(|r| r.counter_name()).collect();
        for (i, info) in COUNTERS.iter().enumerate() {
            if drops.contains(&info.name) {
                continue;
            }
            let name = worker_metric_name(info.name, info.kind);
            let kind = if info.kind == CounterKind::Counter { Kind::Counter } else { Kind::Gauge };
            out.family(&name, kind, info.help);
            for (worker, (values, _)) in self.worker_label().zip(counters) {
                out.sample(&name, &[("worker", &worker)], values.get(i).copied().unwrap_or(0));
            }
        }
        let name = "ringfwd_packets_dropped_total";
        out.family(name, Kind::Counter, "Packets (or copies of one) not forwarded, by reason.");
        for (worker, (_, c)) in self.worker_label().zip(counters) {
            for reason in DropReason::ALL {
                out.sample(name, &[("worker", &worker), ("reason", reason.name())], c.drops(*reason));
            }
        }
        if self.pool_buffers_per_worker > 0 {
            let name = "ringfwd_worker_pool_buffers";
            out.family(
                name,
                Kind::Gauge,
                "Packet buffers in the worker's pool (the bound of ringfwd_worker_pool_in_use).",
            );
            for worker in self.worker_label() {
                out.sample(name, &[("worker", &worker)], self.pool_buffers_per_worker);
            }
        }
    }

    /// Queued entries and capacity of every bounded ring, and the entries the worker→control rings dropped.
    fn occupancy(&self, out: &mut Exposition) {
        type Reading = (usize, usize);
        let rings = |w: &WorkerHandle, i: usize| -> [(&'static str, Reading); 4] {
            let handover = self.handover.get(i).map_or((0, 0), |r| (r.queued(), r.capacity()));
            [
                ("command", (w.mailbox.commands_queued(), w.mailbox.capacity())),
                ("handover", handover),
                ("stats", (w.stats.queued(), w.stats.capacity())),
                ("events", (w.events.queued(), w.events.capacity())),
            ]
        };
        for (name, help, pick) in [
            ("ringfwd_ring_queued", "Entries waiting in a worker's bounded ring.", 0),
            ("ringfwd_ring_capacity", "Entries a worker's bounded ring holds at most.", 1),
        ] {
            out.family(name, Kind::Gauge, help);
            for (i, (w, worker)) in self.workers.iter().zip(self.worker_label()).enumerate() {
                for (ring, (queued, capacity)) in rings(w, i) {
                    let value = if pick == 0 { queued } else { capacity };
                    out.sample(name, &[("worker", &worker), ("ring", ring)], value as u64);
                }
            }
        }
        let name = "ringfwd_ring_dropped_total";
        out.family(name, Kind::Counter, "Entries a worker dropped because its ring to the control plane was full.");
        for (w, worker) in self.workers.iter().zip(self.worker_label()) {
            out.sample(name, &[("worker", &worker), ("ring", "stats")], w.stats.dropped());
            out.sample(name, &[("worker", &worker), ("ring", "events")], w.events.dropped());
        }
    }

    fn latency(&self, out: &mut Exposition) {
        let name = "ringfwd_forwarding_latency_seconds";
        out.family(
            name,
            Kind::Histogram,
            "Per received packet that was forwarded: from the worker reading its batch to its sends being handed to the kernel.",
        );
        let bounds: Vec<f64> = LATENCY_BUCKET_BOUNDS_NS.iter().map(|&ns| ns as f64 / 1e9).collect();
        for (worker, buckets) in self.worker_label().zip(&self.latency) {
            let s = buckets.snapshot();
            out.histogram(name, &[("worker", &worker)], &bounds, &s.cumulative, s.count, s.sum_ns as f64 / 1e9);
        }
    }

    /// The control plane's own counters: the statistics store and the recorder.
    fn control(&self, out: &mut Exposition) {
        let (entries, refused) = match self.stats.lock() {
            Ok(store) => (store.len() as u64, store.refused()),
            Err(poisoned) => (poisoned.get_ref().len() as u64, poisoned.get_ref().refused()),
        };
        out.family("ringfwd_stats_store_entries", Kind::Gauge, "Streams and subscriptions whose statistics are kept.");
        out.sample("ringfwd_stats_store_entries", &[], entries);
        let name = "ringfwd_stats_store_refused_total";
        out.family(
            name,
            Kind::Counter,
            "Statistics of new streams or subscriptions refused because the store was full.",
        );
        out.sample(name, &[], refused);
        let Some(recorder) = &self.recorder else { return };
        let r = recorder.snapshot();
        for (field, help, value) in [
            ("records_written", "Packets written to pcap files.", r.records_written),
            ("bytes_written", "Bytes written to pcap files (headers included).", r.bytes_written),
            ("files_opened", "pcap files created.", r.files_opened),
            ("write_errors", "Failed creates, writes and flushes of pcap files.", r.write_errors),
            ("records_lost", "Tapped packets taken from a ring but not written.", r.records_lost),
            ("ring_dropped", "Packets the workers could not tap because their tap ring was full.", r.ring_dropped),
        ] {
            let name = format!("ringfwd_recorder_{field}_total");
            out.family(&name, Kind::Counter, help);
            out.sample(&name, &[], value);
        }
    }
}

fn registry(out: &mut Exposition, usage: Usage) {
    for (name, help, value) in [
        ("ringfwd_sessions", "Sessions in the registry.", usage.sessions),
        ("ringfwd_endpoints", "Endpoints in the registry.", usage.endpoints),
        ("ringfwd_streams", "Streams in the registry.", usage.streams),
        ("ringfwd_subscriptions", "Subscriptions in the registry.", usage.subscriptions),
    ] {
        out.family(name, Kind::Gauge, help);
        out.sample(name, &[], u64::from(value));
    }
}

/// `workers` worker handles of no running worker (all marked running), core = index, for tests.
#[cfg(test)]
pub(crate) fn test_workers(workers: usize) -> Vec<WorkerHandle> {
    use ringfwd_dataplane::control::Mailbox;
    use ringfwd_dataplane::control::Notifier;
    use ringfwd_dataplane::control::{EventRing, NumberingRing, SharedCounters, StatsRing};
    let wake = Arc::new(Notifier::new().unwrap());
    (0..workers)
        .map(|index| WorkerHandle {
            index,
            core: index,
            mailbox: Arc::new(Mailbox::new(8, Arc::clone(&wake)).unwrap()),
            counters: Arc::new(SharedCounters::default()),
            stats: Arc::new(StatsRing::new(4)),
            events: Arc::new(EventRing::new(2)),
            numbering: Arc::new(NumberingRing::new(2)),
            running: Arc::new(true.into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(workers: usize) -> Sources {
        let handles = test_workers(workers);
        Sources {
            version: "0.0.0",
            driver: "io_uring",
            workers: handles,
            latency: (0..workers).map(|_| Arc::default()).collect(),
            handover: (0..workers).map(|_| HandoverRing::new(3, 64)).collect::<Vec<_>>().into(),
            pool_buffers_per_worker: 1024,
            api: Arc::new(ApiMetrics::with_methods(vec!["GetNodeInfo".into()])),
            stats: Arc::new(Mutex::new(StatsStore::new(4, std::time::Duration::from_secs(1)))),
            recorder: None,
            extra: Vec::new(),
        }
    }

    /// `(family name, type)` of every `# TYPE` line.
    fn families(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (name, kind) = l.split_once(' ').unwrap();
                (name.to_string(), kind.to_string())
            })
            .collect()
    }

    #[test]
    fn every_worker_counter_is_exported_by_convention() {
        let s = sources(2);
        let mut counters = Counters { rx_packets: 5, pool_in_use: 3, ..Counters::default() };
        counters.count_drop(DropReason::UnknownSsrc);
        s.workers[1].counters.publish(&counters);
        let text = s.render(
            Usage { sessions: 1, endpoints: 2, streams: 3, subscriptions: 4 },
            Some(&ListRelaysResponse::default()),
        );
        let families = families(&text);
        let names: Vec<&str> = families.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), families.iter().map(|f| &f.0).collect::<std::collections::HashSet<_>>().len(), "once");
        for (name, kind) in &families {
            assert!(super::super::exposition::valid_name(name, false), "{name}");
            assert!(name.starts_with("ringfwd_"), "{name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
        }
        for info in COUNTERS.iter().filter(|i| !i.name.starts_with("drop_")) {
            assert!(names.contains(&worker_metric_name(info.name, info.kind).as_str()), "{}", info.name);
        }
        assert!(!names.iter().any(|n| n.contains("drop_")), "drops are one metric with a reason label");
        assert!(text.contains("ringfwd_rx_packets_total{worker=\"1\"} 5\n"));
        assert!(text.contains("ringfwd_worker_pool_in_use{worker=\"1\"} 3\n"));
        assert!(text.contains("ringfwd_worker_pool_buffers{worker=\"1\"} 1024\n"));
        assert!(text.contains("ringfwd_packets_dropped_total{worker=\"1\",reason=\"unknown_ssrc\"} 1\n"));
        assert!(text.contains("ringfwd_packets_dropped_total{worker=\"0\",reason=\"tx_full\"} 0\n"));
        assert!(text.contains("ringfwd_subscriptions 4\n"));
        assert!(text.contains("ringfwd_ring_capacity{worker=\"0\",ring=\"handover\"} 3\n"));
        assert!(text.contains("ringfwd_ring_capacity{worker=\"0\",ring=\"events\"} 2\n"));
    }

    #[test]
    fn latency_is_exported_as_a_histogram_in_seconds() {
        let s = sources(1);
        let mut recorder = ringfwd_dataplane::control::LatencyRecorder::new();
        recorder.record_n(std::time::Duration::from_micros(20), 3);
        recorder.export(&s.latency[0]);
        let text = s.render(Usage::default(), None);
        let name = "ringfwd_forwarding_latency_seconds";
        assert!(text.contains(&format!("{name}_bucket{{worker=\"0\",le=\"0.00001\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("{name}_bucket{{worker=\"0\",le=\"0.000025\"}} 3\n")));
        assert!(text.contains(&format!("{name}_bucket{{worker=\"0\",le=\"+Inf\"}} 3\n")));
        assert!(text.contains(&format!("{name}_sum{{worker=\"0\"}} 0.00006\n")));
        assert!(text.contains(&format!("{name}_count{{worker=\"0\"}} 3\n")));
    }

    #[test]
    fn the_grafana_dashboard_only_uses_exported_metrics() {
        let s = sources(1);
        let text = s.render(Usage::default(), None);
        let exported: Vec<String> = families(&text).into_iter().map(|(n, _)| n).collect();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tuning/deploy/grafana-ringfwd.json");
        let dashboard = std::fs::read_to_string(path).unwrap();
        let mut used = 0;
        for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(name) = word.strip_prefix("ringfwd_").map(|_| word) {
                let family = name.strip_suffix("_bucket").unwrap_or(name);
                assert!(exported.iter().any(|e| e == family), "the dashboard uses {name}, which is not exported");
                used += 1;
            }
        }
        assert!(used > 20, "{used}");
    }
}
