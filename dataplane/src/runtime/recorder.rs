//! The pcap recorder: one side thread that drains every worker's [`TapRing`] into pcap files.
//!
//! Owns [`Recorder`] (the thread, its stop flag), [`RecorderSettings`] (from `[interceptors.tap]`) and
//! [`RecorderCounters`] (atomics the control plane reads at any time). The thread takes records from
//! each ring in turn (a bounded batch per ring, so one busy worker cannot starve another), writes them
//! through [`files::PcapFiles`] and recycles them; when every ring is empty it sleeps, 1 ms at first,
//! doubling up to [`MAX_IDLE_SLEEP`] while nothing comes. On stop it drains what the rings hold, then
//! flushes and closes every file. Workers only ever see their ring: the recorder may be slow (a slow
//! disk), a full ring drops and counts, and nothing here can block a worker. Must never panic on a
//! file-system error.

mod files;
pub mod frame;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::interceptor::builtin::tap::TapRing;
use files::PcapFiles;

/// The first idle sleep after records stopped coming.
pub const MIN_IDLE_SLEEP: Duration = Duration::from_millis(1);
/// The longest idle sleep: a ring must hold what a worker taps in this long.
pub const MAX_IDLE_SLEEP: Duration = Duration::from_millis(10);
/// Records taken from one ring before the next ring's turn.
const BATCH: usize = 256;

/// Where and how the recorder writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderSettings {
    /// Directory of the pcap files, an absolute path (created, mode 0750, when the first file is).
    pub directory: PathBuf,
    /// A file is closed and the next started before it would exceed this, in bytes.
    pub max_file_bytes: u64,
    /// Files open at once (at least 1); one more closes the least recently written.
    pub max_open_files: usize,
}

/// What the recorder did, as totals since it started; written by the recorder thread only.
#[derive(Debug, Default)]
pub struct RecorderCounters {
    /// Packets written to a pcap file.
    pub records_written: AtomicU64,
    /// Bytes written to pcap files (file and record headers included).
    pub bytes_written: AtomicU64,
    /// Files created.
    pub files_opened: AtomicU64,
    /// Failed creates, writes and flushes (disk full, permission, ...).
    pub write_errors: AtomicU64,
    /// Packets taken from a ring but not written (an error, or the pause after one).
    pub records_lost: AtomicU64,
    /// Packets the workers could not tap because their ring was full (all rings; per stream:
    /// `tap_dropped` in the stream's statistics).
    pub ring_dropped: AtomicU64,
}

/// A copy of [`RecorderCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// See [`RecorderCounters::records_written`].
    pub records_written: u64,
    /// See [`RecorderCounters::bytes_written`].
    pub bytes_written: u64,
    /// See [`RecorderCounters::files_opened`].
    pub files_opened: u64,
    /// See [`RecorderCounters::write_errors`].
    pub write_errors: u64,
    /// See [`RecorderCounters::records_lost`].
    pub records_lost: u64,
    /// See [`RecorderCounters::ring_dropped`].
    pub ring_dropped: u64,
}

impl RecorderCounters {
    /// The counters now.
    pub fn snapshot(&self) -> RecorderStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RecorderStats {
            records_written: get(&self.records_written),
            bytes_written: get(&self.bytes_written),
            files_opened: get(&self.files_opened),
            write_errors: get(&self.write_errors),
            records_lost: get(&self.records_lost),
            ring_dropped: get(&self.ring_dropped),
        }
    }
}

/// The running recorder thread.
#[derive(Debug)]
pub struct Recorder {
    stop: Arc<AtomicBool>,
    counters: Arc<RecorderCounters>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Starts the thread draining `rings` into files under `settings`; recorded datagrams go to the
    /// first of `media` of the sender's address family. Pinned to `core` when given (a control core;
    /// never a worker's), else unpinned.
    pub fn start(
        mut settings: RecorderSettings,
        rings: Vec<Arc<TapRing>>,
        media: Vec<SocketAddr>,
        core: Option<usize>,
    ) -> std::io::Result<Recorder> {
        settings.max_open_files = settings.max_open_files.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(RecorderCounters::default());
        let max_kept_bytes = rings.iter().map(|ring| ring.slot_bytes()).max().unwrap_or(0);
        if !settings.directory.is_absolute() {
            let message = format!("the pcap directory {} is not an absolute path", settings.directory.display());
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, message));
        }
        tracing::info!(directory = %settings.directory.display(), "tapped streams are recorded to pcap files");
        let thread = std::thread::Builder::new().name("ringfwd-recorder".into()).spawn({
            let stop = stop.clone();
            // Built on the thread: the open files are the thread's alone (not `Send`).
            let counters = counters.clone();
            move || {
                let files = PcapFiles::new(settings, media, max_kept_bytes, counters);
                if let Some(core) = core {
                    if !super::pin_current_thread(core) {
                        tracing::warn!(core, "could not pin the recorder thread; running unpinned");
                    }
                }
                run(&rings, files, &stop)
            }
        })?;
        Ok(Recorder { stop, counters, thread: Some(thread) })
    }

    /// The counters, readable at any time from any thread.
    pub fn counters(&self) -> &Arc<RecorderCounters> {
        &self.counters
    }

    /// Stops the thread once the rings are empty (call after the workers stopped, so nothing more
    /// comes), with every file flushed and closed. Idempotent.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The recorder thread's loop: drain, write, sleep when idle; on stop, drain to empty and close.
fn run(rings: &[Arc<TapRing>], mut files: PcapFiles, stop: &AtomicBool) {
    let mut idle_sleep = MIN_IDLE_SLEEP;
    loop {
        // Read before draining: once it is set and a full pass finds every ring empty, nothing is left.
        let stopping = stop.load(Ordering::Acquire);
        let now = Instant::now();
        let taken = drain_once(rings, &mut files, now);
        if taken == 0 && stopping {
            break;
        }
        files.flush_if_due(now);
        if taken == 0 {
            std::thread::sleep(idle_sleep);
            idle_sleep = (idle_sleep * 2).min(MAX_IDLE_SLEEP);
        } else {
            idle_sleep = MIN_IDLE_SLEEP;
        }
    }
    files.close_all(Instant::now());
}

/// Takes up to [`BATCH`] records from each ring in turn into `files`; returns how many were taken.
fn drain_once(rings: &[Arc<TapRing>], files: &mut PcapFiles, now: Instant) -> usize {
    let mut taken = 0;
    for ring in rings {
        for _ in 0..BATCH {
            let Some(record) = ring.take() else { break };
            files.write(&record, now);
            ring.recycle(record);
            taken += 1;
        }
    }
    let dropped: u64 = rings.iter().map(|ring| ring.dropped()).sum();
    files.counters().ring_dropped.store(dropped, Ordering::Relaxed);
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::interceptor::builtin::tap::TapMeta;
    use crate::core::wire::Ssrc;

    #[test]
    fn stop_drains_every_ring_into_closed_files() {
        let dir = tempfile::tempdir().unwrap();
        let rings: Vec<Arc<TapRing>> = (0..2).map(|_| Arc::new(TapRing::new(600, 300))).collect();
        for (i, ring) in rings.iter().enumerate() {
            for n in 0..600u32 {
                let meta = TapMeta {
                    ssrc: Ssrc(i as u32 + 1),
                    src: "127.0.0.2:7000".parse().unwrap(),
                    captured_unix: Duration::from_secs(1_700_000_000) + Duration::from_micros(u64::from(n)),
                };
                assert!(ring.offer(meta, &[0x80; 100], 300));
            }
        }
        let settings =
            RecorderSettings { directory: dir.path().join("pcap"), max_file_bytes: 1 << 20, max_open_files: 4 };
        let mut recorder = Recorder::start(settings, rings.clone(), vec!["127.0.0.1:5004".parse().unwrap()], None)
            .expect("recorder thread");
        let counters = recorder.counters().clone();
        recorder.stop();
        let stats = counters.snapshot();
        assert_eq!((stats.records_written, stats.files_opened, stats.write_errors), (1200, 2, 0), "{stats:?}");
        assert!(rings.iter().all(|ring| ring.is_empty()));
        let mut total = 0;
        for entry in std::fs::read_dir(dir.path().join("pcap")).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            // Header 24, then 600 records of 16 + 20 + 8 + 100: all flushed by the close.
            assert_eq!(bytes.len(), 24 + 600 * 144);
            total += 1;
        }
        assert_eq!(total, 2);
        recorder.stop();
    }
}
