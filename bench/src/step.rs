//! One measurement step: offer a scenario's load at one rate to a running forwarder for a fixed
//! time, then count what came out.
//!
//! Owns the [`Rig`] (generator, sink and the shared epoch, on the calling thread, which the
//! caller pins to the bench core) and [`run_step`]: generator and sink run in one busy loop
//! (no thread hand-off), then the sink drains until no copy came for [`QUIET`] (the forwarder's RTCP
//! reports, which never stop, do not count).
//! It reads the forwarder's CPU time and the kernel drop counters of both sockets before and
//! after, and reports how late the generator sent and how long copies waited in the sink socket
//! (both near zero unless the bench core itself is saturated).
//!
//! Must never run past `duration` + [`DRAIN_MAX`] + [`OVERRUN_MAX`], nor send anywhere but the
//! forwarder's loopback media address.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cpu::{process_cpu_ns, udp_drops};
use crate::gen::Generator;
use crate::payload::Epoch;
use crate::sink::Sink;

/// Drain ends after this long without a datagram.
pub const QUIET: Duration = Duration::from_millis(50);
/// Drain ends after this long in any case.
pub const DRAIN_MAX: Duration = Duration::from_secs(1);
/// How long the generator may run late past the step's end before it is cut off.
pub const OVERRUN_MAX: Duration = Duration::from_secs(1);
/// A step whose generator sent less than this share of its plan did not offer the rate.
pub const GENERATOR_SHORTFALL: f64 = 0.97;
/// Batches the sink reads per loop turn.
const SINK_BATCHES_PER_TURN: usize = 4;

/// Generator, sink and the epoch their timestamps share.
pub struct Rig {
    /// The load generator.
    pub gen: Generator,
    /// The sink.
    pub sink: Sink,
    /// Time origin of send timestamps.
    pub epoch: Epoch,
}

/// The forwarder a step measures.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its process id (for CPU time), when known.
    pub pid: Option<u32>,
    /// Its media address.
    pub media: SocketAddr,
}

/// What one step measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StepOutcome {
    /// Rate multiplier of the scenario.
    pub scale: f64,
    /// Output rate asked for, packets/s.
    pub target_out_pps: f64,
    /// Step length, s.
    pub duration_s: f64,
    /// Packets the generator planned to send.
    pub planned_in: u64,
    /// Packets the generator sent.
    pub sent_in: u64,
    /// Copies the subscribers should have received.
    pub expected_out: u64,
    /// Distinct copies received.
    pub received_out: u64,
    /// Received copies per second of the step.
    pub delivered_out_pps: f64,
    /// `expected_out - received_out`.
    pub lost: u64,
    /// Received, but more than 50 ms after sending (`account::LATE_AFTER_NS`).
    pub late: u64,
    /// `(lost - injected_lost + late) / expected_out` (never below 0): the forwarder's share of
    /// copies lost or late — a late copy is as good as lost for real-time media; loss injected on
    /// the way in is not the forwarder's.
    pub loss_ratio: f64,
    /// Copies lost because the impairment dropped their packet on the way in (packets × fanout).
    pub injected_lost: u64,
    /// Copies the impairment duplicated on the way in (packets × fanout).
    pub injected_duplicates: u64,
    /// Copies the impairment reordered on the way in (packets × fanout).
    pub injected_reordered: u64,
    /// Copies the sink NACKed (distinct), and NACK requests including retries.
    pub nacked: u64,
    /// NACK requests, retries included.
    pub nack_requests: u64,
    /// RTCP NACK packets the sink sent (and failed to send).
    pub nack_packets_sent: u64,
    /// Copies that arrived after being NACKed.
    pub repaired: u64,
    /// First copies the sink discarded as last-mile loss (repairable from the forwarder's cache).
    pub last_mile_dropped: u64,
    /// Duplicates received.
    pub duplicates: u64,
    /// Out-of-order copies.
    pub reordered: u64,
    /// Damaged payloads.
    pub integrity_failures: u64,
    /// Wrongly rewritten headers.
    pub rewrite_errors: u64,
    /// Datagrams with an unknown SSRC or not RTP.
    pub unexpected: u64,
    /// Forwarder CPU time over the step, ns.
    pub forwarder_cpu_ns: u64,
    /// Forwarder CPU per received copy, ns.
    pub cpu_ns_per_packet: f64,
    /// One-way latency percentiles, ns.
    pub latency_p50_ns: u64,
    /// 99th percentile.
    pub latency_p99_ns: u64,
    /// 99.9th percentile.
    pub latency_p999_ns: u64,
    /// The latency distribution as `[quantile, µs]` points (for CDF charts).
    pub latency_cdf_us: Vec<[f64; 2]>,
    /// Datagrams the kernel dropped at the forwarder's socket during the step.
    pub forwarder_socket_drops: u64,
    /// Datagrams the kernel dropped at the sink's socket during the step (bench-side loss).
    pub sink_socket_drops: u64,
    /// The generator fell short of its plan: the rate was not really offered.
    pub generator_short: bool,
    /// 99th percentile of how late the generator sent against its schedule, ns.
    pub generator_lag_p99_ns: u64,
    /// 99th percentile of how long copies waited in the sink socket before the bench read them, ns.
    pub sink_lag_p99_ns: u64,
}

impl StepOutcome {
    /// Forwarder CPU per packet the generator sent, ns (0 when nothing was sent): the cost of
    /// one input packet with all its copies.
    pub fn cpu_ns_per_input(&self) -> f64 {
        if self.sent_in == 0 {
            0.0
        } else {
            self.forwarder_cpu_ns as f64 / self.sent_in as f64
        }
    }
}

/// How far a running step is, for a progress line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Seconds since the step started.
    pub elapsed_s: f64,
    /// The step's length, s.
    pub duration_s: f64,
    /// Packets the generator sent so far.
    pub sent_in: u64,
    /// Copies the sink accounted so far.
    pub received_out: u64,
    /// Copies the sink should have had by now (what was sent, times the fanout).
    pub expected_out: u64,
}

/// How often a step reports progress.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs one step at `scale` for `duration` against `target`; `base_out_pps` is the scenario's
/// output rate at scale 1.
pub fn run_step(
    rig: &mut Rig,
    target: Target,
    base_out_pps: f64,
    scale: f64,
    duration: Duration,
) -> io::Result<StepOutcome> {
    run_step_with_progress(rig, target, base_out_pps, scale, duration, None)
}

/// [`run_step`], calling `progress` (when given) every [`PROGRESS_EVERY`] while the generator runs.
pub fn run_step_with_progress(
    rig: &mut Rig,
    target: Target,
    base_out_pps: f64,
    scale: f64,
    duration: Duration,
    mut progress: Option<&mut dyn FnMut(&Progress)>,
) -> io::Result<StepOutcome> {
    let epoch = rig.epoch;
    let duration_ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let sink_port = rig.sink.local_addr()?.port();
    let fwd_drops_before = udp_drops(target.media.port())?;
    let sink_drops_before = udp_drops(sink_port)?;
    let cpu_now = || target.pid.map_or(Ok(0), process_cpu_ns);
    let cpu_before = cpu_now()?;
    let nack_packets_before = rig.sink.nack_packets.sent;

    let start_ns = epoch.now_ns() + 1_000_000;
    rig.gen.start_step(target.media, scale, start_ns, duration_ns);
    let first_gen_seqs = rig.gen.step_first_gen_seqs();
    rig.sink.begin_step(&epoch, &first_gen_seqs);
    let hard_end_ns = start_ns + duration_ns + nanos(OVERRUN_MAX);
    let mut next_progress_ns = start_ns + nanos(PROGRESS_EVERY);
    loop {
        let now_ns = epoch.now_ns();
        if rig.gen.next_due_ns().is_none() || now_ns >= hard_end_ns {
            break;
        }
        if let Some(report) = progress.as_mut().filter(|_| now_ns >= next_progress_ns) {
            next_progress_ns = now_ns + nanos(PROGRESS_EVERY);
            report(&progress_of(rig, now_ns.saturating_sub(start_ns), duration));
        }
        rig.gen.poll(&epoch, now_ns)?;
        rig.sink.drain(&epoch, SINK_BATCHES_PER_TURN)?;
    }
    let drain_start_ns = epoch.now_ns();
    let mut last_rx_ns = drain_start_ns;
    loop {
        let now_ns = epoch.now_ns();
        if now_ns - last_rx_ns >= nanos(QUIET) || now_ns - drain_start_ns >= nanos(DRAIN_MAX) {
            break;
        }
        // The forwarder's RTCP reports keep coming after the last copy: only copies are activity.
        let drained = rig.sink.drain(&epoch, SINK_BATCHES_PER_TURN)?;
        if drained.datagrams > drained.rtcp {
            last_rx_ns = epoch.now_ns();
        }
    }

    let cpu_ns = cpu_now()?.saturating_sub(cpu_before);
    let streams = rig.sink.accounting.specs().iter().map(|s| s.stream + 1).max().unwrap_or(0);
    let sent: Vec<u64> = (0..streams).map(|i| rig.gen.step_sent(i)).collect();
    let t = rig.sink.accounting.totals(&sent);
    let planned_in = rig.gen.planned_packets();
    let mut fanout = vec![0u64; streams];
    for spec in rig.sink.accounting.specs() {
        fanout[spec.stream] += 1;
    }
    let (mut injected_lost, mut injected_duplicates, mut injected_reordered) = (0, 0, 0);
    for (i, &n) in fanout.iter().enumerate() {
        let c = rig.gen.step_impairment(i);
        injected_lost += c.lost * n;
        injected_duplicates += c.duplicated * n;
        injected_reordered += c.reordered * n;
    }
    let nack_packets_sent = rig.sink.nack_packets.sent.saturating_sub(nack_packets_before);
    let own_loss = t.lost.saturating_sub(injected_lost) + t.counts.late;
    let sent_in = rig.gen.step_sent_total();
    let duration_s = duration.as_secs_f64();
    Ok(StepOutcome {
        scale,
        target_out_pps: base_out_pps * scale,
        duration_s,
        planned_in,
        sent_in,
        expected_out: t.expected,
        received_out: t.counts.unique,
        delivered_out_pps: t.counts.unique as f64 / duration_s,
        lost: t.lost,
        late: t.counts.late,
        loss_ratio: if t.expected == 0 { 0.0 } else { own_loss as f64 / t.expected as f64 },
        injected_lost,
        injected_duplicates,
        injected_reordered,
        nacked: t.nack.nacked_packets,
        nack_requests: t.nack.nack_requests,
        nack_packets_sent,
        repaired: t.nack.repaired,
        last_mile_dropped: t.nack.last_mile_dropped,
        duplicates: t.counts.duplicates,
        reordered: t.counts.reordered,
        integrity_failures: t.counts.integrity_failures,
        rewrite_errors: t.counts.rewrite_errors,
        unexpected: t.unknown_ssrc + t.not_rtp,
        forwarder_cpu_ns: cpu_ns,
        cpu_ns_per_packet: if t.counts.unique == 0 { 0.0 } else { cpu_ns as f64 / t.counts.unique as f64 },
        latency_p50_ns: t.latency_ns.value_at_quantile(0.5),
        latency_p99_ns: t.latency_ns.value_at_quantile(0.99),
        latency_p999_ns: t.latency_ns.value_at_quantile(0.999),
        latency_cdf_us: cdf_points(&t.latency_ns),
        forwarder_socket_drops: udp_drops(target.media.port())?.saturating_sub(fwd_drops_before),
        sink_socket_drops: udp_drops(sink_port)?.saturating_sub(sink_drops_before),
        generator_short: (sent_in as f64) < planned_in as f64 * GENERATOR_SHORTFALL,
        generator_lag_p99_ns: rig.gen.lag_ns.value_at_quantile(0.99),
        sink_lag_p99_ns: rig.sink.lag_ns.value_at_quantile(0.99),
    })
}

fn progress_of(rig: &Rig, elapsed_ns: u64, duration: Duration) -> Progress {
    let acc = &rig.sink.accounting;
    let expected_out = acc.specs().iter().map(|s| rig.gen.step_sent(s.stream)).sum();
    let received_out = (0..acc.specs().len()).filter_map(|i| acc.flow(i)).map(|f| f.counts.unique).sum();
    Progress {
        elapsed_s: elapsed_ns as f64 / 1e9,
        duration_s: duration.as_secs_f64(),
        sent_in: rig.gen.step_sent_total(),
        received_out,
        expected_out,
    }
}

/// Quantiles a latency CDF is drawn from.
const CDF_QUANTILES: [f64; 19] =
    [0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999, 1.0];

/// `[quantile, µs]` points of `h` (none when it is empty).
pub fn cdf_points(h: &hdrhistogram::Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    CDF_QUANTILES.iter().map(|&q| [q, h.value_at_quantile(q) as f64 / 1e3]).collect()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
