//! The recorder's pcap files: one open file per stream SSRC, bounded in size and in number.
//!
//! Owns [`PcapFiles`]: turns each [`TapRecord`] into a pcap record (link type RAW, the datagram from
//! [`super::frame`]) in `ringfwd-<ssrc as 8 hex>-<unix seconds of the file's first packet>.pcap` (with
//! `-<n>` appended when that name exists: a file is never overwritten), starts the next file before one
//! would exceed `max_file_bytes`, closes the least recently written when one more than `max_open_files`
//! would be open, and flushes at most every [`FLUSH_INTERVAL`]. Creates the directory (mode 0750) with its
//! first file, so a stream that is never recorded leaves nothing behind. Errors (disk full, permission) are
//! counted, logged at most every [`LOG_INTERVAL`], and pause recording for [`ERROR_PAUSE`] (records
//! taken meanwhile are counted as lost). Runs only on the recorder thread; must never panic on a
//! file-system error, nor grow past its bounds.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

use super::frame::{local_for, write_frame, FrameError, MAX_HEADER_BYTES};
use super::{RecorderCounters, RecorderSettings};
use crate::core::interceptor::builtin::tap::TapRecord;

/// Dirty files are flushed at most this often (and when they are closed).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// After an error, records are counted as lost for this long instead of being written.
pub const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// At most one error log line per this interval (with the count of those not logged).
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Write buffer of each open file, in bytes.
const BUFFER_BYTES: usize = 64 << 10;
/// Bytes of the pcap file header and of each record header.
const FILE_HEADER_BYTES: u64 = 24;
const RECORD_HEADER_BYTES: u64 = 16;
/// Mode of the directories created for the files (before the umask): the service's user and group read the
/// recordings, nobody else.
const DIRECTORY_MODE: u32 = 0o750;
/// Names tried for one file (`-1` … `-999` after the plain name) before giving up.
const MAX_NAME_TRIES: u32 = 1000;

/// A recording failure, naming the file.
#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: PcapError },
    #[error("cannot flush {path}: {source}")]
    Flush { path: PathBuf, source: io::Error },
    #[error("stream {ssrc:08x}: {source}")]
    Frame { ssrc: u32, source: FrameError },
}

/// The buffered file, shared by the pcap writer and the table (which flushes it).
#[derive(Debug, Clone)]
struct Sink(Rc<RefCell<BufWriter<File>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

#[derive(Debug)]
struct OpenFile {
    writer: PcapWriter<Sink>,
    sink: Sink,
    path: PathBuf,
    bytes: u64,
    last_write: u64,
    dirty: bool,
}

impl OpenFile {
    fn flush(&mut self) -> Result<(), FileError> {
        self.dirty = false;
        self.sink.flush().map_err(|source| FileError::Flush { path: self.path.clone(), source })
    }
}

/// The recorder's open files and what it needs to write records.
#[derive(Debug)]
pub struct PcapFiles {
    settings: RecorderSettings,
    media: Vec<SocketAddr>,
    snaplen: u32,
    counters: Arc<RecorderCounters>,
    open: HashMap<u32, OpenFile>,
    writes: u64,
    frame: Vec<u8>,
    last_flush: Option<Instant>,
    paused_until: Option<Instant>,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl PcapFiles {
    /// Files under `settings`, datagrams addressed to the first of `media` of the sender's family,
    /// records of at most `max_kept_bytes` packet bytes; counts into `counters`.
    pub fn new(
        settings: RecorderSettings,
        media: Vec<SocketAddr>,
        max_kept_bytes: usize,
        counters: Arc<RecorderCounters>,
    ) -> PcapFiles {
        let snaplen = u32::try_from(max_kept_bytes + MAX_HEADER_BYTES).unwrap_or(u32::MAX);
        let open = HashMap::with_capacity(settings.max_open_files);
        PcapFiles {
            settings,
            media,
            snaplen,
            counters,
            open,
            writes: 0,
            frame: Vec::with_capacity(max_kept_bytes + MAX_HEADER_BYTES),
            last_flush: None,
            paused_until: None,
            last_log: None,
            unlogged: 0,
        }
    }

    /// Files open now.
    #[cfg(test)]
    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    /// Writes `record` into its stream's file at `now` (the recorder's clock: pauses and flushes only).
    pub fn write(&mut self, record: &TapRecord, now: Instant) {
        if self.paused_until.is_some_and(|until| now < until) {
            self.counters.records_lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.paused_until = None;
        if let Err(error) = self.try_write(record) {
            self.fail(error, now, 1);
        }
    }

    fn try_write(&mut self, record: &TapRecord) -> Result<(), FileError> {
        let ssrc = record.meta.ssrc.0;
        let dst = local_for(record.meta.src, &self.media);
        let wire_len = write_frame(record.meta.src, dst, record.orig_len_bytes, record.bytes(), &mut self.frame)
            .map_err(|source| FileError::Frame { ssrc, source })?;
        let record_bytes = RECORD_HEADER_BYTES + self.frame.len() as u64;
        let rotate = self.open.get(&ssrc).is_some_and(|file| {
            file.bytes > FILE_HEADER_BYTES && file.bytes + record_bytes > self.settings.max_file_bytes
        });
        if rotate {
            self.close(ssrc)?;
        }
        if !self.open.contains_key(&ssrc) {
            if self.open.len() >= self.settings.max_open_files {
                self.close_least_recent()?;
            }
            let file = self.create(ssrc, record.meta.captured_unix.as_secs())?;
            self.open.insert(ssrc, file);
        }
        self.writes += 1;
        let Some(file) = self.open.get_mut(&ssrc) else { return Ok(()) };
        let orig_len = u32::try_from(wire_len).unwrap_or(u32::MAX);
        let packet = PcapPacket::new(record.meta.captured_unix, orig_len, &self.frame);
        match file.writer.write_packet(&packet) {
            Ok(written) => {
                file.bytes += written as u64;
                file.last_write = self.writes;
                file.dirty = true;
                self.counters.records_written.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes_written.fetch_add(written as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(source) => {
                // A half-written record spoils the file: drop it; the next record starts a new one.
                let path = file.path.clone();
                self.open.remove(&ssrc);
                Err(FileError::Write { path, source })
            }
        }
    }

    fn create(&mut self, ssrc: u32, first_unix_s: u64) -> Result<OpenFile, FileError> {
        let dir = &self.settings.directory;
        let plain = dir.join(format!("ringfwd-{ssrc:08x}-{first_unix_s}.pcap"));
        DirBuilder::new()
            .recursive(true)
            .mode(DIRECTORY_MODE)
            .create(dir)
            .map_err(|source| FileError::Create { path: dir.clone(), source })?;
        let mut path = plain.clone();
        let mut tries = 0;
        let file = loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break file,
                Err(e) if e.kind() == ErrorKind::AlreadyExists && tries + 1 < MAX_NAME_TRIES => {
                    tries += 1;
                    path = dir.join(format!("ringfwd-{ssrc:08x}-{first_unix_s}-{tries}.pcap"));
                }
                Err(source) => return Err(FileError::Create { path, source }),
            }
        };
        let sink = Sink(Rc::new(RefCell::new(BufWriter::with_capacity(BUFFER_BYTES, file))));
        let header = PcapHeader {
            snaplen: self.snaplen,
            datalink: DataLink::RAW,
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(sink.clone(), header)
            .map_err(|source| FileError::Write { path: path.clone(), source })?;
        self.counters.files_opened.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_written.fetch_add(FILE_HEADER_BYTES, Ordering::Relaxed);
        Ok(OpenFile { writer, sink, path, bytes: FILE_HEADER_BYTES, last_write: self.writes, dirty: true })
    }

    fn close(&mut self, ssrc: u32) -> Result<(), FileError> {
        match self.open.remove(&ssrc) {
            Some(mut file) => file.flush(),
            None => Ok(()),
        }
    }

    fn close_least_recent(&mut self) -> Result<(), FileError> {
        let oldest = self.open.iter().min_by_key(|(_, file)| file.last_write).map(|(ssrc, _)| *ssrc);
        oldest.map_or(Ok(()), |ssrc| self.close(ssrc))
    }

    /// Flushes every file written since the last flush, if [`FLUSH_INTERVAL`] has passed since then.
    pub fn flush_if_due(&mut self, now: Instant) {
        if self.last_flush.is_some_and(|last| now.saturating_duration_since(last) < FLUSH_INTERVAL) {
            return;
        }
        self.last_flush = Some(now);
        let mut failed = Vec::new();
        for (ssrc, file) in self.open.iter_mut().filter(|(_, file)| file.dirty) {
            if let Err(error) = file.flush() {
                failed.push((*ssrc, error));
            }
        }
        for (ssrc, error) in failed {
            self.open.remove(&ssrc);
            self.fail(error, now, 0);
        }
    }

    /// Flushes and closes every file.
    pub fn close_all(&mut self, now: Instant) {
        let ssrcs: Vec<u32> = self.open.keys().copied().collect();
        for ssrc in ssrcs {
            if let Err(error) = self.close(ssrc) {
                self.fail(error, now, 0);
            }
        }
    }

    /// Counts `error` (and `lost_records` not written because of it), pauses, logs if not logged lately.
    fn fail(&mut self, error: FileError, now: Instant, lost_records: u64) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        self.counters.records_lost.fetch_add(lost_records, Ordering::Relaxed);
        self.paused_until = Some(now + ERROR_PAUSE);
        if self.last_log.is_some_and(|last| now.saturating_duration_since(last) < LOG_INTERVAL) {
            self.unlogged += 1;
            return;
        }
        self.last_log = Some(now);
        let not_logged = std::mem::take(&mut self.unlogged);
        tracing::warn!(%error, errors_not_logged = not_logged, pause_ms = ERROR_PAUSE.as_millis() as u64,
            "tap recorder: recording paused after an error");
    }

    /// The counters written to.
    pub fn counters(&self) -> &RecorderCounters {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use pcap_file::pcap::PcapReader;

    use super::*;
    use crate::core::interceptor::builtin::tap::{TapMeta, TapRing};
    use crate::core::wire::Ssrc;

    const PUBLISHER: &str = "192.0.2.10:40000";
    const MEDIA: &str = "127.0.0.1:5004";

    fn files(dir: &Path, max_file_bytes: u64, max_open_files: usize) -> (PcapFiles, Arc<RecorderCounters>) {
        let counters = Arc::new(RecorderCounters::default());
        let settings = RecorderSettings { directory: dir.to_path_buf(), max_file_bytes, max_open_files };
        (PcapFiles::new(settings, vec![MEDIA.parse().unwrap()], 1500, counters.clone()), counters)
    }

    /// A record of `len` bytes (all `fill`) of stream `ssrc`, captured at `unix_s` + `micros`.
    fn record(ring: &TapRing, ssrc: u32, unix_s: u64, micros: u64, len: usize, fill: u8) -> Box<TapRecord> {
        let meta = TapMeta {
            ssrc: Ssrc(ssrc),
            src: PUBLISHER.parse().unwrap(),
            captured_unix: Duration::from_secs(unix_s) + Duration::from_micros(micros),
        };
        assert!(ring.offer(meta, &vec![fill; len], 1500));
        ring.take().unwrap()
    }

    /// One file's name and its records' (timestamp, frame bytes).
    type Recording = (String, Vec<(Duration, Vec<u8>)>);

    /// Every `.pcap` in `dir`, sorted by name, with its records.
    fn read_dir(dir: &Path) -> Vec<Recording> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let mut reader = PcapReader::new(File::open(dir.join(&name)).unwrap()).unwrap();
                assert_eq!(reader.header().datalink, DataLink::RAW);
                let mut records = Vec::new();
                while let Some(packet) = reader.next_packet() {
                    let packet = packet.unwrap();
                    records.push((packet.timestamp, packet.data.to_vec()));
                }
                (name, records)
            })
            .collect()
    }

    #[test]
    fn rotates_before_the_size_bound_without_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let ring = TapRing::new(1, 1500);
        // Each record: 16 + 20 + 8 + 972 = 1016 bytes; the header 24: three records fit in 3100 bytes.
        let (mut files, counters) = files(dir.path(), 3100, 8);
        let now = Instant::now();
        for i in 0..7u64 {
            let r = record(&ring, 0xab, 1_700_000_000, i, 972, i as u8);
            files.write(&r, now);
            ring.recycle(r);
        }
        files.close_all(now);
        let found = read_dir(dir.path());
        let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ringfwd-000000ab-1700000000-1.pcap",
                "ringfwd-000000ab-1700000000-2.pcap",
                "ringfwd-000000ab-1700000000.pcap"
            ]
        );
        let per_file: Vec<usize> = found.iter().map(|(_, records)| records.len()).collect();
        assert_eq!(per_file, [3, 1, 3], "3 + 3 + 1 in order of creation");
        for (name, _) in &found {
            assert!(std::fs::metadata(dir.path().join(name)).unwrap().len() <= 3100);
        }
        let last = &found[1].1[0];
        assert_eq!((last.0, last.1[28]), (Duration::new(1_700_000_000, 6_000), 6), "the seventh record");
        let stats = counters.snapshot();
        assert_eq!((stats.records_written, stats.files_opened, stats.write_errors), (7, 3, 0));
        assert_eq!(stats.bytes_written, 3 * 24 + 7 * 1016);
    }

    #[test]
    fn closes_the_least_recently_written_file_beyond_the_open_bound() {
        let dir = tempfile::tempdir().unwrap();
        let ring = TapRing::new(1, 1500);
        let (mut files, counters) = files(dir.path(), 1 << 20, 2);
        let now = Instant::now();
        for (i, ssrc) in [1u32, 2, 1, 3, 1, 2].into_iter().enumerate() {
            let r = record(&ring, ssrc, 1_700_000_000 + i as u64, 0, 100, ssrc as u8);
            files.write(&r, now);
            ring.recycle(r);
            assert!(files.open_files() <= 2);
        }
        // 1 and 2 open; 3 closes 2 (1 was written since); 2 again closes 3 (1 was written since).
        files.close_all(now);
        let found = read_dir(dir.path());
        let summary: Vec<(&str, usize)> = found.iter().map(|(name, records)| (name.as_str(), records.len())).collect();
        assert_eq!(
            summary,
            [
                ("ringfwd-00000001-1700000000.pcap", 3),
                ("ringfwd-00000002-1700000001.pcap", 1),
                ("ringfwd-00000002-1700000005.pcap", 1),
                ("ringfwd-00000003-1700000003.pcap", 1),
            ]
        );
        assert_eq!(counters.snapshot().files_opened, 4);
    }

    #[test]
    fn the_directory_is_made_with_the_first_file_and_closed_to_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("state/pcap");
        let ring = TapRing::new(1, 1500);
        let (mut files, _) = files(&pcap, 1 << 20, 4);
        assert!(!pcap.exists(), "nothing is created before a stream is recorded");
        let r = record(&ring, 7, 1_700_000_000, 0, 100, 1);
        files.write(&r, Instant::now());
        files.close_all(Instant::now());
        assert_eq!(read_dir(&pcap).len(), 1);
        for created in [&pcap, &dir.path().join("state")] {
            let mode = std::fs::metadata(created).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o027, 0, "{}: mode {mode:o} lets others in", created.display());
            assert_eq!(mode & 0o700, 0o700, "{}: mode {mode:o}", created.display());
        }
    }

    #[test]
    fn flushes_periodically_so_open_files_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let ring = TapRing::new(1, 1500);
        let (mut files, _) = files(dir.path(), 1 << 20, 4);
        let t0 = Instant::now();
        files.flush_if_due(t0);
        let r = record(&ring, 9, 1_700_000_000, 0, 200, 1);
        files.write(&r, t0);
        files.flush_if_due(t0 + FLUSH_INTERVAL / 2);
        let name = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        assert_eq!(std::fs::metadata(&name).unwrap().len(), 0, "buffered until the interval passes");
        files.flush_if_due(t0 + FLUSH_INTERVAL);
        assert_eq!(read_dir(dir.path())[0].1.len(), 1);
    }

    #[test]
    fn errors_are_counted_and_pause_recording_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-directory");
        std::fs::write(&blocker, b"x").unwrap();
        let ring = TapRing::new(1, 1500);
        let (mut files, counters) = files(&blocker.join("pcap"), 1 << 20, 4);
        let t0 = Instant::now();
        for ms in [0u64, 10, 999] {
            let r = record(&ring, 5, 1_700_000_000, 0, 100, 0);
            files.write(&r, t0 + Duration::from_millis(ms));
            ring.recycle(r);
        }
        let stats = counters.snapshot();
        assert_eq!((stats.write_errors, stats.records_lost, stats.records_written), (1, 3, 0), "paused after one");
        let r = record(&ring, 5, 1_700_000_000, 0, 100, 0);
        files.write(&r, t0 + ERROR_PAUSE);
        assert_eq!(counters.snapshot().write_errors, 2, "tried again after the pause");
        files.close_all(t0 + ERROR_PAUSE);
    }
}
