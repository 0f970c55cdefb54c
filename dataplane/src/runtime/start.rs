//! Start-up and shutdown of the data plane.
//!
//! Owns the order of start-up from resolved [`DataplaneSettings`]: open the media sockets in worker order (so the
//! steering program's socket index is the worker index), create the rings, start the pcap recorder (when the tap
//! is on) on its core, spawn one pinned thread per worker running the worker loop over the chosen backend, and
//! wait until every worker reports ready (or failed, with the reason). Shutdown stops the workers first, then the
//! recorder (which drains the rings). Reads no config and nothing of the host: the caller resolved both.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::handover::HandoverRing;
use super::latency::LatencyBuckets;
use super::mailbox::Mailbox;
use super::notify::Notifier;
use super::recorder::{Recorder, RecorderCounters};
use super::run::Worker;
use super::settings::{BackendKind, DataplaneSettings, TapSettings};
use super::telemetry::{EventRing, NumberingRing, StatsRing};
use super::worker::WorkerContext;
use crate::core::interceptor::builtin::tap::TapRing;
use crate::core::{owner_of, Counters, SharedCounters};
use crate::driver::mmsg::{MmsgBackend, MmsgSettings};
use crate::driver::socket::{self, SocketError, SocketOptions};
use crate::driver::uring::{UringBackend, UringSettings};

/// How long start-up waits for a worker to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings do not describe a data plane that can run.
    #[error("{0}")]
    Settings(String),
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
    /// The sockets handed over do not fit these settings.
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
    backend: BackendKind,
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
    /// Starts one worker per core of `settings.cores`; returns once all are forwarding.
    pub fn start(settings: DataplaneSettings) -> Result<Dataplane, StartError> {
        Dataplane::start_with(settings, Takeover::default())
    }

    /// [`Dataplane::start`], taking over `takeover.sockets` instead of binding (see [`socket::adopt`]), and with
    /// every worker's receives held when `takeover.held` (until [`Dataplane::release_receives`]).
    pub fn start_with(settings: DataplaneSettings, takeover: Takeover) -> Result<Dataplane, StartError> {
        let cores = &settings.cores;
        let workers = cores.len();
        check(&settings)?;
        let opts = SocketOptions {
            recv_buffer_bytes: settings.recv_buffer_bytes,
            send_buffer_bytes: settings.send_buffer_bytes,
            // Only the io_uring backend reads the error queue and retries the sends a pending error fails.
            recv_errors: settings.backend == BackendKind::IoUring,
            release_grace: socket::RELEASE_GRACE,
        };
        // With `rtcp_port_plus_one`, each media address's port + 1 follows the media addresses (checked: no port 0).
        let media_count = settings.media_addresses.len();
        let rtcp = settings.media_addresses.iter().filter(|_| settings.rtcp_port_plus_one);
        let rtcp = rtcp.filter_map(|a| Some(SocketAddr::new(a.ip(), a.port().checked_add(1)?)));
        let addresses: Vec<SocketAddr> = settings.media_addresses.iter().copied().chain(rtcp).collect();
        let sockets = match takeover.sockets {
            Some(per_worker) if per_worker.len() != workers => {
                return Err(StartError::Takeover(format!(
                    "{} workers handed their sockets over, these settings place {workers}: the number of workers \
                     must not change across a takeover",
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
        let capacity = settings.command_ring_capacity;
        let mailboxes: Arc<[Arc<Mailbox>]> = (0..workers)
            .map(|_| Mailbox::new(capacity, control_wake.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io("worker eventfd"))?
            .into();
        let handover: Arc<[HandoverRing]> = (0..workers)
            .map(|_| HandoverRing::new(settings.handover_ring_capacity, settings.worker.limits.max_packet_bytes))
            .collect::<Vec<_>>()
            .into();
        let mut worker_settings = settings.worker.clone();
        worker_settings.rtcp_socket_offset = (sockets.bound.len() > media_count).then_some(media_count);
        let (taps, recorder) =
            start_recorder(settings.tap.as_ref(), workers, &sockets.bound).map_err(io("recorder thread"))?;
        let (ready_tx, ready_rx) = mpsc::sync_channel::<(usize, Result<(), String>)>(workers);
        let mut handles = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let latency: Vec<Arc<LatencyBuckets>> = (0..workers).map(|_| Arc::default()).collect();
        for (index, (core, sockets)) in cores.iter().copied().zip(sockets.per_worker).enumerate() {
            let counters = Arc::new(SharedCounters::default());
            // One full round of the worker's streams and subscriptions fits.
            let limits = &worker_settings.limits;
            let stats_capacity = limits.max_streams as usize + limits.max_subscriptions as usize;
            let stats = Arc::new(StatsRing::new(stats_capacity));
            let events = Arc::new(EventRing::new(settings.event_ring_capacity));
            // Two full rounds of its subscriptions fit: a periodic one not yet drained and the last one, at stop.
            let numbering = Arc::new(NumberingRing::new(2 * limits.max_subscriptions as usize));
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
                plugins: settings.plugins.clone(),
                stats,
                events,
                numbering,
                latency: latency[index].clone(),
                settings: worker_settings.clone(),
            };
            let ready = ready_tx.clone();
            let backend = settings.backend;
            let thread = std::thread::Builder::new()
                .name(format!("ringfwd-w{index}"))
                .spawn(move || {
                    let _running = RunningFlag(running);
                    run_worker(ctx, backend, ready)
                })
                .map_err(io("worker thread"))?;
            threads.push(thread);
        }
        drop(ready_tx);
        let pool_buffers = match settings.backend {
            BackendKind::IoUring => u64::from(worker_settings.pool_buffers) + u64::from(worker_settings.spare_buffers),
            BackendKind::Mmsg => 0,
        };
        let mut dataplane = Dataplane {
            handles,
            threads,
            rtcp: sockets.bound[media_count..].to_vec(),
            media: sockets.bound[..media_count].to_vec(),
            control_wake,
            backend: settings.backend,
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

    /// The bound RTCP addresses (each media address's port + 1), in the order of the media addresses; empty unless
    /// `media.rtcp_port_plus_one`.
    pub fn rtcp_addresses(&self) -> &[SocketAddr] {
        &self.rtcp
    }

    /// The bound media addresses (port 0 resolved), in settings order.
    pub fn media_addresses(&self) -> &[SocketAddr] {
        &self.media
    }

    /// The backend the workers run.
    pub fn backend(&self) -> BackendKind {
        self.backend
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

/// One tap ring per worker and the recorder draining them, pinned to the tap's core; nothing when the tap is off.
fn start_recorder(
    tap: Option<&TapSettings>,
    workers: usize,
    media: &[SocketAddr],
) -> std::io::Result<(Vec<Arc<TapRing>>, Option<Recorder>)> {
    let Some(tap) = tap else {
        return Ok((Vec::new(), None));
    };
    let slot_bytes = usize::from(tap.snap_bytes);
    let rings: Vec<Arc<TapRing>> =
        (0..workers).map(|_| Arc::new(TapRing::new(tap.ring_packets.max(1), slot_bytes))).collect();
    let recorder = Recorder::start(tap.recorder.clone(), rings.clone(), media.to_vec(), tap.core)?;
    Ok((rings, Some(recorder)))
}

/// Refuses settings no data plane can run with, naming the field (the config crate validates what a config
/// declares; this guards every other caller).
fn check(settings: &DataplaneSettings) -> Result<(), StartError> {
    let fail = |message: String| Err(StartError::Settings(message));
    let w = &settings.worker;
    if settings.cores.is_empty() {
        return fail("cores: no worker core".into());
    }
    if settings.media_addresses.is_empty() {
        return fail("media_addresses: no media address".into());
    }
    if settings.rtcp_port_plus_one {
        if let Some(a) = settings.media_addresses.iter().find(|a| a.port() == 0 || a.port() == u16::MAX) {
            return fail(format!("media_addresses: {a} has no port + 1 for RTCP (rtcp_port_plus_one)"));
        }
    }
    if settings.command_ring_capacity == 0 || settings.handover_ring_capacity == 0 || settings.event_ring_capacity == 0
    {
        return fail("command_ring_capacity, handover_ring_capacity, event_ring_capacity: must not be 0".into());
    }
    if settings.backend == BackendKind::IoUring && !w.pool_buffers.is_power_of_two() {
        return fail(format!("worker.pool_buffers: {} is not a power of two", w.pool_buffers));
    }
    if w.buffer_bytes < w.limits.max_packet_bytes || w.limits.max_packet_bytes == 0 {
        return fail(format!(
            "worker.buffer_bytes: {} must hold worker.limits.max_packet_bytes ({}, not 0)",
            w.buffer_bytes, w.limits.max_packet_bytes
        ));
    }
    if w.send_slots == 0 || w.recv_batch == 0 || w.gso_max_segments == 0 || w.spare_buffers == 0 {
        let keys = "worker.send_slots, worker.recv_batch, worker.gso_max_segments, worker.spare_buffers";
        return fail(format!("{keys}: must not be 0"));
    }
    Ok(())
}

type Ready = mpsc::SyncSender<(usize, Result<(), String>)>;

fn run_worker(mut ctx: WorkerContext, backend: BackendKind, ready: Ready) {
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
        let clean = match backend {
            BackendKind::IoUring => {
                let settings = UringSettings {
                    pool_buffers: s.pool_buffers,
                    spare_buffers: s.spare_buffers,
                    buffer_bytes: s.buffer_bytes,
                    max_packet_bytes: s.limits.max_packet_bytes,
                    send_slots: s.send_slots,
                    gso_max_segments: s.gso_max_segments,
                };
                let backend = UringBackend::new(index, sockets, wake, settings)?;
                report(Ok(()));
                Worker::new(ctx, backend).run()?
            }
            BackendKind::Mmsg => {
                let settings = MmsgSettings {
                    recv_batch: s.recv_batch,
                    max_packet_bytes: s.limits.max_packet_bytes,
                    send_slots: s.send_slots,
                    copy_arena_bytes: usize::from(s.spare_buffers) * s.limits.max_packet_bytes,
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
