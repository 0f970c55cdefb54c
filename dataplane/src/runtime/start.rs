//! Start-up and shutdown of the data plane.
//!
//! Owns the order of start-up: resolve the worker cores, open the media sockets in worker order (so the
//! steering program's socket index is the worker index), create the rings, start the pcap recorder (when
//! `interceptors.tap.ring_packets` is not 0) on the last control core, or unpinned when none is configured,
//! spawn one pinned thread per worker running the configured driver, and wait until every worker reports ready
//! (or failed, with the reason). Shutdown stops the workers first, then the recorder (which drains the rings).

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ringfwd_tuning::{Config, ConfigError, Driver};

use super::handover::HandoverRing;
use super::latency::LatencyBuckets;
use super::mailbox::Mailbox;
use super::notify::Notifier;
use super::recorder::{Recorder, RecorderCounters, RecorderSettings};
use super::run::Worker;
use super::telemetry::{EventRing, NumberingRing, StatsRing};
use super::worker::{WorkerContext, WorkerSettings};
use crate::core::interceptor::builtin::tap::TapRing;
use crate::core::{owner_of, Counters, ForwarderLimits, SharedCounters};
use crate::driver::mmsg::{MmsgBackend, MmsgSettings};
use crate::driver::socket::{self, SocketError, SocketOptions};
use crate::driver::uring::{UringBackend, UringSettings};

/// Spare pool buffers per worker, outside the receive ring, for packets the worker assembles (RTCP copies) and
/// packets handed over by other workers.
pub const SPARE_BUFFERS: u16 = 512;
/// How long start-up waits for a worker to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The placement does not fit this host.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A media socket could not be set up.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// A resource could not be created.
    #[error("{what}: {source}")]
    Io {
        /// What was being created.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The sockets handed over do not fit this config.
    #[error("takeover: {0}")]
    Takeover(String),
    /// A worker failed during its own set-up.
    #[error("worker {index} on core {core}: {message}")]
    Worker {
        /// Worker index.
        index: usize,
        /// Its core.
        core: usize,
        /// What failed.
        message: String,
    },
}

/// The control plane's view of one worker.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    /// Worker index.
    pub index: usize,
    /// The core it is pinned to.
    pub core: usize,
    /// Its command and acknowledgement rings.
    pub mailbox: Arc<Mailbox>,
    /// Its counters, readable at any time without locks.
    pub counters: Arc<SharedCounters>,
    /// Its statistics ring (per stream and subscription, every `telemetry.stats_interval_ms`).
    pub stats: Arc<StatsRing>,
    /// Its event ring (stream started/inactive, source changed, subscriber unreachable, rate limited).
    pub events: Arc<EventRing>,
    /// Its numbering ring (what each subscription last sent, every `state.numbering_interval_ms`).
    pub numbering: Arc<NumberingRing>,
    /// True while its thread runs: cleared when the thread ends, however it ends (a panic included).
    pub running: Arc<AtomicBool>,
}

impl WorkerHandle {
    /// Whether its thread still runs.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

/// Clears a worker's `running` flag when its thread ends, unwinding included.
struct RunningFlag(Arc<AtomicBool>);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The running data plane.
pub struct Dataplane {
    handles: Vec<WorkerHandle>,
    threads: Vec<JoinHandle<()>>,
    media: Vec<SocketAddr>,
    /// The RTCP addresses (media port + 1), in media order; empty unless `media.rtcp_port_plus_one`.
    rtcp: Vec<SocketAddr>,
    control_wake: Arc<Notifier>,
    driver: Driver,
    recorder: Option<Recorder>,
    handover: Arc<[HandoverRing]>,
    latency: Vec<Arc<LatencyBuckets>>,
    pool_buffers: u64,
    /// Duplicates of every worker's media sockets, `[worker][address]`, for a process taking over.
    handover_fds: Vec<Vec<OwnedFd>>,
}

/// How a data plane starts when it takes over from another process.
#[derive(Debug, Default)]
pub struct Takeover {
    /// The other process's media sockets, `[worker][address]` (media addresses, then RTCP addresses, as
    /// [`Dataplane::socket_fds`] lists them); `None`: bind new ones.
    pub sockets: Option<Vec<Vec<OwnedFd>>>,
    /// Start with every worker's receives held.
    pub held: bool,
}

impl Dataplane {
    /// The cores the workers of `config` would be pinned to on this host: `[placement]` resolved against the CPUs
    /// this process may run on, grouped by NUMA node as sysfs describes them, with the pool checked against
    /// `limits.max_pool_bytes_total` for that many workers. What [`Dataplane::start`] does first, and what
    /// `ringfwd --check-config` checks, so that a config it passes does not fail to start on placement.
    pub fn worker_cores(config: &Config) -> Result<Vec<usize>, StartError> {
        let available: Vec<usize> =
            core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
        let topology = ringfwd_tuning::read_topology(std::path::Path::new("/")).restricted_to(&available);
        Ok(config.resolve_placement(&topology)?)
    }

    /// Starts one worker per configured core; returns once all are forwarding. The pcap recorder (when
    /// `interceptors.tap.ring_packets` is not 0) writes into `tap_directory`, an absolute path the control plane
    /// resolved (`Config::tap_directory`).
    pub fn start(config: &Config, tap_directory: &Path) -> Result<Dataplane, StartError> {
        Dataplane::start_on(config, Dataplane::worker_cores(config)?, tap_directory)
    }

    /// [`Dataplane::start`] on `cores`, as [`Dataplane::worker_cores`] resolved them (before the caller narrowed
    /// its own affinity to the control cores).
    pub fn start_on(config: &Config, cores: Vec<usize>, tap_directory: &Path) -> Result<Dataplane, StartError> {
        Dataplane::start_with(config, cores, tap_directory, Takeover::default())
    }

    /// [`Dataplane::start_on`], taking over `takeover.sockets` instead of binding (see [`socket::adopt`]), and with
    /// every worker's receives held when `takeover.held` (until [`Dataplane::release_receives`]).
    pub fn start_with(
        config: &Config,
        cores: Vec<usize>,
        tap_directory: &Path,
        takeover: Takeover,
    ) -> Result<Dataplane, StartError> {
        let workers = cores.len();
        let sizes = config.sizes(workers);
        let opts = SocketOptions {
            recv_buffer_bytes: sizes.recv_buffer_bytes,
            send_buffer_bytes: sizes.send_buffer_bytes,
            // Only the io_uring driver reads the error queue and retries the sends a pending error fails.
            recv_errors: config.media.driver == Driver::IoUring,
        };
        // With `rtcp_port_plus_one`, each media address's port + 1 follows the media addresses (validated: no port 0).
        let media_count = config.media.addresses.len();
        let rtcp = config.media.addresses.iter().filter(|_| config.media.rtcp_port_plus_one);
        let rtcp = rtcp.filter_map(|a| Some(SocketAddr::new(a.ip(), a.port().checked_add(1)?)));
        let addresses: Vec<SocketAddr> = config.media.addresses.iter().copied().chain(rtcp).collect();
        let sockets = match takeover.sockets {
            Some(per_worker) if per_worker.len() != workers => {
                return Err(StartError::Takeover(format!(
                    "{} workers handed their sockets over, this config places {workers}: the number of workers must \
                     not change across a takeover",
                    per_worker.len()
                )))
            }
            Some(per_worker) => socket::adopt(&addresses, per_worker)?,
            None => socket::open(&addresses, workers, opts)?,
        };
        // Kept to hand over to a process taking over (the workers own the originals).
        let handover_fds = sockets
            .per_worker
            .iter()
            .map(|fds| fds.iter().map(OwnedFd::try_clone).collect::<std::io::Result<Vec<_>>>())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|source| StartError::Io { what: "duplicate a media socket", source })?;
        let io = |what| move |source| StartError::Io { what, source };
        let control_wake = Arc::new(Notifier::new().map_err(io("control eventfd"))?);
        let capacity = config.limits.command_ring_capacity as usize;
        let mailboxes: Arc<[Arc<Mailbox>]> = (0..workers)
            .map(|_| Mailbox::new(capacity, control_wake.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io("worker eventfd"))?
            .into();
        let handover: Arc<[HandoverRing]> = (0..workers)
            .map(|_| HandoverRing::new(config.limits.handover_ring_capacity as usize, config.media.max_packet_bytes))
            .collect::<Vec<_>>()
            .into();
        let mut settings = settings(config, workers);
        settings.rtcp_socket_offset = (sockets.bound.len() > media_count).then_some(media_count);
        let (taps, recorder) =
            start_recorder(config, tap_directory, workers, &sockets.bound).map_err(io("recorder thread"))?;
        let (ready_tx, ready_rx) = mpsc::sync_channel::<(usize, Result<(), String>)>(workers);
        let mut handles = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let latency: Vec<Arc<LatencyBuckets>> = (0..workers).map(|_| Arc::default()).collect();
        for (index, (core, sockets)) in cores.iter().copied().zip(sockets.per_worker).enumerate() {
            let counters = Arc::new(SharedCounters::default());
            // One full round of the worker's streams and subscriptions fits.
            let stats_capacity =
                config.limits.max_streams_per_worker as usize + config.limits.max_subscriptions_per_worker as usize;
            let stats = Arc::new(StatsRing::new(stats_capacity));
            let events = Arc::new(EventRing::new(config.limits.event_ring_capacity as usize));
            // Two full rounds of its subscriptions fit: a periodic one not yet drained and the last one, at stop.
            let numbering = Arc::new(NumberingRing::new(2 * config.limits.max_subscriptions_per_worker as usize));
            let mailbox = mailboxes[index].clone();
            mailbox.hold_receives(takeover.held);
            let running = Arc::new(AtomicBool::new(true));
            handles.push(WorkerHandle {
                index,
                core,
                mailbox,
                counters: counters.clone(),
                stats: stats.clone(),
                events: events.clone(),
                numbering: numbering.clone(),
                running: running.clone(),
            });
            let ctx = WorkerContext {
                index,
                workers,
                core,
                sockets,
                mailboxes: mailboxes.clone(),
                handover: handover.clone(),
                counters,
                tap: taps.get(index).cloned(),
                stats,
                events,
                numbering,
                latency: latency[index].clone(),
                settings: settings.clone(),
            };
            let ready = ready_tx.clone();
            let driver = config.media.driver;
            let thread = std::thread::Builder::new()
                .name(format!("ringfwd-w{index}"))
                .spawn(move || {
                    let _running = RunningFlag(running);
                    run_worker(ctx, driver, ready)
                })
                .map_err(io("worker thread"))?;
            threads.push(thread);
        }
        drop(ready_tx);
        let pool_buffers = match config.media.driver {
            Driver::IoUring => u64::from(settings.pool_buffers) + u64::from(SPARE_BUFFERS),
            Driver::Mmsg => 0,
        };
        let mut dataplane = Dataplane {
            handles,
            threads,
            rtcp: sockets.bound[media_count..].to_vec(),
            media: sockets.bound[..media_count].to_vec(),
            control_wake,
            driver: config.media.driver,
            recorder,
            handover,
            latency,
            pool_buffers,
            handover_fds,
        };
        for _ in 0..workers {
            let failure = match ready_rx.recv_timeout(READY_TIMEOUT) {
                Ok((_, Ok(()))) => continue,
                Ok((index, Err(message))) => StartError::Worker { index, core: cores[index], message },
                Err(_) => StartError::Worker { index: 0, core: cores[0], message: "did not start in time".into() },
            };
            dataplane.stop_threads();
            return Err(failure);
        }
        Ok(dataplane)
    }

    /// The workers, in index order.
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.handles
    }

    /// The bound RTCP addresses (each media address's port + 1), in config order; empty unless
    /// `media.rtcp_port_plus_one`.
    pub fn rtcp_addresses(&self) -> &[SocketAddr] {
        &self.rtcp
    }

    /// The bound media addresses (port 0 in the config resolved), in config order.
    pub fn media_addresses(&self) -> &[SocketAddr] {
        &self.media
    }

    /// The driver the workers run.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// Signalled by workers when acknowledgements are ready.
    pub fn control_wake(&self) -> &Arc<Notifier> {
        &self.control_wake
    }

    /// The worker that owns streams with this SSRC (the one the kernel steers them to).
    pub fn owner_of(&self, ssrc: u32) -> usize {
        owner_of(ssrc, self.handles.len())
    }

    /// The media socket (index into [`Dataplane::media_addresses`]) to send to `dest` from: the first of the same
    /// address family.
    pub fn socket_for(&self, dest: SocketAddr) -> Option<usize> {
        self.media.iter().position(|m| m.is_ipv4() == dest.is_ipv4())
    }

    /// The pcap recorder's counters (`None` when recording is off: `interceptors.tap.ring_packets = 0`).
    pub fn recorder_counters(&self) -> Option<Arc<RecorderCounters>> {
        self.recorder.as_ref().map(|recorder| recorder.counters().clone())
    }

    /// Each worker's forwarding-latency histogram (index = worker), as last exported.
    pub fn latency(&self) -> &[Arc<LatencyBuckets>] {
        &self.latency
    }

    /// Each worker's incoming handover ring (index = worker), for its occupancy.
    pub fn handover_rings(&self) -> Arc<[HandoverRing]> {
        Arc::clone(&self.handover)
    }

    /// Packet buffers in each worker's pool (receive ring and spares), the bound of the `pool_in_use` gauge;
    /// 0 with the mmsg driver, which receives into a fixed batch instead of a pool.
    pub fn pool_buffers_per_worker(&self) -> u64 {
        self.pool_buffers
    }

    /// Every worker's media sockets, `[worker][address]` (the media addresses, then the RTCP addresses): what a
    /// process taking over gets.
    pub fn socket_fds(&self) -> Vec<Vec<BorrowedFd<'_>>> {
        self.handover_fds.iter().map(|fds| fds.iter().map(OwnedFd::as_fd).collect()).collect()
    }

    /// Lets every worker read its sockets (after a start with receives held).
    pub fn release_receives(&self) {
        for h in &self.handles {
            h.mailbox.hold_receives(false);
        }
    }

    /// Counters of every worker, now.
    pub fn counters(&self) -> Vec<Counters> {
        self.handles.iter().map(|h| h.counters.snapshot()).collect()
    }

    /// Stops receiving, lets in-flight sends complete, joins the workers; returns their final counters.
    pub fn stop(mut self) -> Vec<Counters> {
        self.stop_threads();
        self.counters()
    }

    fn stop_threads(&mut self) {
        for h in &self.handles {
            h.mailbox.request_stop();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // After the workers: nothing more is tapped, so the recorder drains the rings and closes its files.
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.stop();
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// One tap ring per worker and the recorder draining them, pinned to the last control core (unpinned when there
/// is none); nothing when `interceptors.tap.ring_packets` is 0.
fn start_recorder(
    config: &Config,
    directory: &Path,
    workers: usize,
    media: &[SocketAddr],
) -> std::io::Result<(Vec<Arc<TapRing>>, Option<Recorder>)> {
    let tap = &config.interceptors.tap;
    if tap.ring_packets == 0 {
        return Ok((Vec::new(), None));
    }
    let slot_bytes = usize::from(tap.snap_bytes);
    let rings: Vec<Arc<TapRing>> =
        (0..workers).map(|_| Arc::new(TapRing::new(tap.ring_packets as usize, slot_bytes))).collect();
    let core = config.placement.control_cores.last().copied();
    let recorder =
        Recorder::start(RecorderSettings::new(tap, directory.to_path_buf()), rings.clone(), media.to_vec(), core)?;
    Ok((rings, Some(recorder)))
}

/// What each of `workers` workers runs with.
fn settings(config: &Config, workers: usize) -> WorkerSettings {
    let sizes = config.sizes(workers);
    WorkerSettings {
        limits: ForwarderLimits {
            max_streams: config.limits.max_streams_per_worker,
            max_subscriptions: config.limits.max_subscriptions_per_worker,
            max_subscriptions_per_stream: config.limits.max_subscriptions_per_stream,
            max_packet_bytes: config.media.max_packet_bytes,
            max_packets_per_second_per_source: config.admission.max_packets_per_second_per_source,
        },
        pool_buffers: sizes.buffers_per_worker as u16,
        buffer_bytes: config.pool.buffer_bytes as usize,
        send_slots: sizes.send_slots_per_worker as usize,
        gso_max_segments: usize::from(config.pool.gso_max_segments),
        recv_batch: config.pool.recv_batch as usize,
        idle: config.idle.strategy,
        spin: Duration::from_micros(config.idle.spin_us),
        batch_window: Duration::from_micros(u64::from(config.idle.batch_window_us)),
        stats_interval: Duration::from_millis(u64::from(config.telemetry.stats_interval_ms)),
        numbering_interval: Duration::from_millis(u64::from(config.state.numbering_interval_ms)),
        inactive_after: Duration::from_millis(u64::from(config.telemetry.inactive_after_ms)),
        rtcp_socket_offset: None,
    }
}

type Ready = mpsc::SyncSender<(usize, Result<(), String>)>;

fn run_worker(mut ctx: WorkerContext, driver: Driver, ready: Ready) {
    let (index, core) = (ctx.index, ctx.core);
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        tracing::warn!(worker = index, core, "could not pin worker thread to its core; running unpinned");
    }
    let once = std::cell::Cell::new(Some(ready));
    let report = |result: Result<(), String>| {
        if let Some(tx) = once.take() {
            let _ = tx.send((index, result));
        }
    };
    let outcome = (|| {
        let sockets = std::mem::take(&mut ctx.sockets);
        let wake = ctx.mailbox().wake().as_fd().try_clone_to_owned()?;
        let s = &ctx.settings;
        let clean = match driver {
            Driver::IoUring => {
                let settings = UringSettings {
                    pool_buffers: s.pool_buffers,
                    spare_buffers: SPARE_BUFFERS,
                    buffer_bytes: s.buffer_bytes,
                    max_packet_bytes: s.limits.max_packet_bytes,
                    send_slots: s.send_slots,
                    gso_max_segments: s.gso_max_segments,
                };
                let backend = UringBackend::new(index, sockets, wake, settings)?;
                report(Ok(()));
                Worker::new(ctx, backend).run()?
            }
            Driver::Mmsg => {
                let settings = MmsgSettings {
                    recv_batch: s.recv_batch,
                    max_packet_bytes: s.limits.max_packet_bytes,
                    send_slots: s.send_slots,
                    copy_arena_bytes: usize::from(SPARE_BUFFERS) * s.limits.max_packet_bytes,
                };
                let backend = MmsgBackend::new(sockets, wake, settings)?;
                report(Ok(()));
                Worker::new(ctx, backend).run()?
            }
        };
        Ok::<bool, std::io::Error>(clean)
    })();
    match outcome {
        Ok(true) => {}
        Ok(false) => tracing::warn!(worker = index, "sends still in flight after the drain timeout"),
        Err(e) => {
            report(Err(e.to_string()));
            tracing::error!(worker = index, core, error = %e, "worker stopped with an error");
        }
    }
}
