//! The worker's context and its dealings with the control plane and the other workers (commands and
//! acknowledgements, handovers, counter publication), used by the worker loop ([`super::run`]).
//!
//! Owns nothing of the I/O; the loop calls these between batches of packets, never while transmits that refer to
//! subscriptions are queued (commands may remove subscriptions).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::handover::HandoverRing;
use super::idle::IdleStrategy;
use super::latency::{LatencyBuckets, LatencyRecorder};
use super::mailbox::{Ack, Mailbox};
use super::telemetry::{EventRing, NumberingRing, StatsPacer, StatsRecord, StatsRing, WorkerEvent};
use crate::core::interceptor::builtin::tap::TapRing;
use crate::core::interceptor::spec::{NtpEpoch, NTP_UNIX_OFFSET_S};
use crate::core::interceptor::Plugins;
use crate::core::{Counters, DropReason, Forwarder, ForwarderLimits, SharedCounters};

/// How often counters are published to the shared atomics while packets flow (and the kernel's per-socket
/// drop counters read, one `getsockopt` per socket). 10 ms: at 1 ms, a worker between bursts at moderate rates
/// woke about once per millisecond just to publish (the conference at 50 k out-pps: 15–23 % more context switches
/// on the worker core than at 10 ms, 2–4 % more CPU per packet); no reader needs fresher counters (metrics scrapes
/// and statistics rounds are seconds apart, and a command's effect is published before the worker blocks).
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(10);

/// When a worker publishes its counters: at most every [`PUBLISH_INTERVAL`], busy or not, and before it blocks
/// when a command changed its tables since (table sizes right after a command are never stale). A worker that
/// blocks with changes not yet published wakes by [`PublishPacer::deadline`] to publish them, so an idle worker's
/// counters are at most one interval old. (Publishing before every block cost a busy worker two `getsockopt` and
/// an export per wake-up: with no batch window at 50 k packets/s, over half its time.)
#[derive(Debug)]
pub struct PublishPacer {
    last: Instant,
    dirty: bool,
    /// A command was applied since the last publish.
    urgent: bool,
}

impl PublishPacer {
    /// A pacer that last published at `now`.
    pub fn new(now: Instant) -> PublishPacer {
        PublishPacer { last: now, dirty: false, urgent: false }
    }

    /// A command changed the worker's tables: its counters go out before it blocks next.
    pub fn command_applied(&mut self) {
        (self.dirty, self.urgent) = (true, true);
    }

    /// When a blocking wait must end at the latest to publish what changed (none when nothing did).
    pub fn deadline(&self) -> Option<Instant> {
        self.dirty.then_some(self.last + PUBLISH_INTERVAL)
    }

    /// Records an iteration; true when the counters should be published now.
    pub fn after_iteration(&mut self, worked: bool, now: Instant) -> bool {
        self.dirty |= worked;
        self.due(now.saturating_duration_since(self.last) >= PUBLISH_INTERVAL, now)
    }

    /// The worker is about to block; true when it should publish first: a command changed its tables, or the
    /// interval passed with changes unpublished.
    pub fn before_block(&mut self, now: Instant) -> bool {
        let time = self.urgent || now.saturating_duration_since(self.last) >= PUBLISH_INTERVAL;
        self.due(time, now)
    }

    fn due(&mut self, time: bool, now: Instant) -> bool {
        if self.dirty && time {
            (self.dirty, self.urgent) = (false, false);
            self.last = now;
            true
        } else {
            false
        }
    }
}

/// What one worker runs with (part of [`super::DataplaneSettings`]).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Forwarding table limits and the largest accepted datagram.
    pub limits: ForwarderLimits,
    /// Ring buffers in the pool (a power of two).
    pub pool_buffers: u16,
    /// Pool buffers outside the receive ring, for packets the worker assembles (RTCP copies, a plugin's rewritten
    /// packet) and packets handed over by other workers; the mmsg driver's copy arena holds as many packets.
    pub spare_buffers: u16,
    /// Bytes per pool buffer.
    pub buffer_bytes: usize,
    /// In-flight send operations.
    pub send_slots: usize,
    /// Packets per GSO send at most (1 disables GSO).
    pub gso_max_segments: usize,
    /// Datagrams per receive batch.
    pub recv_batch: usize,
    /// When to block.
    pub idle: IdleStrategy,
    /// Spin bound for `SpinThenSleep`.
    pub spin: Duration,
    /// Batch window of a sleeping worker (io_uring driver; zero: none).
    pub batch_window: Duration,
    /// How often it publishes its streams' and subscriptions' statistics.
    pub stats_interval: Duration,
    /// How often it publishes what each subscription last sent (its numbering, kept across a restart).
    pub numbering_interval: Duration,
    /// A stream without packets for this long is reported inactive.
    pub inactive_after: Duration,
    /// With RTCP sockets (media port + 1) bound after the media sockets: the number of media sockets (socket
    /// `i + n` is socket `i`'s RTCP socket). `None`: RTCP leaves from the media sockets.
    pub rtcp_socket_offset: Option<usize>,
}

/// Everything one worker thread owns or shares.
pub struct WorkerContext {
    /// This worker's index (its socket's position in every reuseport group).
    pub index: usize,
    /// Number of workers.
    pub workers: usize,
    /// The core it is pinned to.
    pub core: usize,
    /// Its socket on each media address, in media-address order (the backend takes them).
    pub sockets: Vec<OwnedFd>,
    /// Every worker's mailbox (index = worker); its own is `mailboxes[index]`.
    pub mailboxes: Arc<[Arc<Mailbox>]>,
    /// Every worker's handover ring (index = worker).
    pub handover: Arc<[HandoverRing]>,
    /// Where it publishes its counters.
    pub counters: Arc<SharedCounters>,
    /// Its tap ring, drained by the recorder (`None`: recording is off).
    pub tap: Option<Arc<TapRing>>,
    /// The registered plugins at start-up (the same on every worker; `Command::SetPlugins` replaces them).
    pub plugins: Plugins,
    /// Its statistics ring, drained by the control plane.
    pub stats: Arc<StatsRing>,
    /// Its event ring, drained by the control plane.
    pub events: Arc<EventRing>,
    /// Its numbering ring, drained by the control plane.
    pub numbering: Arc<NumberingRing>,
    /// Where it exports its forwarding-latency histogram.
    pub latency: Arc<LatencyBuckets>,
    /// Settings.
    pub settings: WorkerSettings,
}

impl WorkerContext {
    /// This worker's mailbox.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailboxes[self.index]
    }

    /// A new forwarder for this worker, its NTP epoch read from the wall clock now, tapping into its
    /// tap ring, binding the registered plugins.
    pub fn forwarder(&self) -> Forwarder {
        let mut forwarder = Forwarder::new(self.index, self.workers, self.settings.limits);
        forwarder.set_ntp_epoch(ntp_epoch_now());
        forwarder.set_rtcp_socket_offset(self.settings.rtcp_socket_offset);
        if let Some(ring) = &self.tap {
            forwarder.set_tap_ring(ring.clone());
        }
        forwarder.set_plugins(self.plugins.clone());
        forwarder
    }

    /// Applies every queued command and acknowledges each; returns whether any was applied, and then tells `pacer`
    /// (the tables changed: the counters go out before the worker next blocks).
    pub fn apply_commands(&self, forwarder: &mut Forwarder, pacer: &mut PublishPacer, now: Instant) -> bool {
        let mailbox = self.mailbox();
        let mut applied = false;
        while let Some(envelope) = mailbox.next_command() {
            let result = forwarder.apply(now, envelope.command);
            mailbox.ack(Ack { seq: envelope.seq, result });
            applied = true;
        }
        if applied {
            mailbox.notify_control();
            pacer.command_applied();
        }
        applied
    }

    /// Hands a packet to worker `owner` (its `handovers`-th handover: 1 for a packet received from the wire); counts
    /// a drop when the owner's ring is full.
    pub fn hand_over(
        &self,
        owner: usize,
        src: std::net::SocketAddr,
        socket: usize,
        handovers: u8,
        bytes: &[u8],
        counters: &mut Counters,
    ) {
        match self.handover.get(owner).and_then(|ring| ring.offer(src, socket, handovers, bytes)) {
            Some(true) => self.mailboxes[owner].wake().notify(),
            Some(false) => {}
            None => counters.count_drop(DropReason::HandoverFull),
        }
    }

    /// A pacer for this worker's statistics rounds, the first one interval after `now`.
    pub fn stats_pacer(&self, now: Instant) -> StatsPacer {
        StatsPacer::new(self.settings.stats_interval, self.settings.numbering_interval, now)
    }

    /// Publishes a statistics round if `pacer` says one is due (and then checks for inactive and
    /// rate-limited streams) and a numbering round if one is due, and hands the forwarder's queued events to the
    /// event ring.
    pub fn publish_stats_if_due(&self, pacer: &mut StatsPacer, forwarder: &mut Forwarder, now: Instant) {
        let due = pacer.due(now);
        if due.stats {
            self.stats.publish(self.index, forwarder, now);
            forwarder.check_activity(now, self.settings.inactive_after);
        }
        if due.numbering {
            self.numbering.publish(self.index, forwarder);
        }
        let worker = self.index;
        forwarder.drain_final_snapshots(|key, snapshot| {
            self.stats.push(StatsRecord { worker, key, at: now, snapshot: *snapshot });
        });
        if forwarder.has_events() {
            forwarder.drain_events(|kind| {
                self.events.push(WorkerEvent { worker, at: now, kind });
            });
        }
    }

    /// This worker's incoming handover ring.
    pub fn incoming(&self) -> &HandoverRing {
        &self.handover[self.index]
    }

    /// Publishes counters, with the pool gauge and the kernel's drops on this worker's sockets, and the
    /// forwarding-latency histogram.
    pub fn publish(&self, counters: &mut Counters, pool_in_use: u64, kernel_drops: u64, latency: &mut LatencyRecorder) {
        counters.pool_in_use = pool_in_use;
        counters.kernel_rx_dropped = kernel_drops;
        self.counters.publish(counters);
        latency.export(&self.latency);
    }
}

/// The monotonic clock and the wall clock read together, the wall clock as a 64-bit NTP timestamp.
pub fn ntp_epoch_now() -> NtpEpoch {
    let at = Instant::now();
    let since_unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    NtpEpoch { at, ntp: ((since_unix.as_secs() + u64::from(NTP_UNIX_OFFSET_S)) << 32) | fraction }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_at_most_every_interval_and_wakes_a_sleeper_to_publish() {
        let t0 = Instant::now();
        let t1 = t0 + PUBLISH_INTERVAL;
        let soon = t1 + PUBLISH_INTERVAL / 2;
        let mut p = PublishPacer::new(t0);
        assert!(!p.after_iteration(true, t0), "within the interval");
        assert_eq!(p.deadline(), Some(t1), "a sleeper wakes to publish it");
        assert!(p.after_iteration(false, t1), "changes from the earlier iteration, once the interval passed");
        assert_eq!(p.deadline(), None, "nothing to publish");
        assert!(!p.after_iteration(false, soon), "nothing changed since");
        assert!(!p.before_block(soon), "nothing to publish before blocking");
        assert!(!p.after_iteration(true, soon), "a change within the interval waits");
        assert!(!p.before_block(soon), "also before the worker sleeps: it wakes by the deadline");
        assert_eq!(p.deadline(), Some(t1 + PUBLISH_INTERVAL));
        assert!(p.before_block(t1 + PUBLISH_INTERVAL), "once the interval passed");
        assert!(!p.after_iteration(false, t1 + PUBLISH_INTERVAL * 5), "and only once");
    }

    #[test]
    fn a_command_is_published_before_the_worker_sleeps() {
        let t0 = Instant::now();
        let mut p = PublishPacer::new(t0);
        p.command_applied();
        assert!(p.before_block(t0), "table sizes right after a command");
        assert!(!p.before_block(t0), "once");
    }

    #[test]
    fn ntp_epoch_is_this_century() {
        let seconds = ntp_epoch_now().ntp >> 32;
        // 2020-01-01 and 2100-01-01 in NTP seconds.
        assert!((3_786_825_600..6_311_433_600).contains(&seconds), "{seconds}");
    }
}
