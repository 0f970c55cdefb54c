//! What `/proc` tells about a process's footprint: resident memory, threads and open descriptors.
//!
//! Owns reading and parsing `/proc/PID/status` (`VmRSS`, `RssAnon`, `RssFile`, `VmHWM`, `Threads`) and
//! counting the entries of `/proc/PID/fd`. Parsers are separate from the reads so they are testable on
//! fixed text. Must never write anything, signal a process or follow a descriptor's link.

use std::fs;
use std::io;

/// A process's footprint at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Footprint {
    /// Resident set (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Resident anonymous memory (`RssAnon`: heap, stacks, anonymous mappings), KiB.
    pub anon_kib: u64,
    /// Resident file-backed memory (`RssFile`), KiB.
    pub file_kib: u64,
    /// Peak resident set so far (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: u64,
}

/// Reads the footprint of process `pid` (which must be this user's, for `/proc/PID/fd`).
pub fn footprint(pid: u32) -> io::Result<Footprint> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mut f = parse_status(&status).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/status: no VmRSS or Threads line"))
    })?;
    f.fds = fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok(f)
}

/// The memory and thread lines of a `/proc/PID/status` text (`fds` left 0); `None` without `VmRSS`
/// or `Threads` (a kernel thread, or not a status file). Lines the kernel lacks (`RssAnon` before
/// 4.5) stay 0.
pub fn parse_status(status: &str) -> Option<Footprint> {
    let mut f = Footprint::default();
    let (mut rss, mut threads) = (false, false);
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        // "VmRSS:	   12345 kB" (memory, in KiB) or "Threads:	7".
        let Some(Ok(n)) = value.split_whitespace().next().map(str::parse::<u64>) else { continue };
        match key {
            "VmRSS" => (f.rss_kib, rss) = (n, true),
            "RssAnon" => f.anon_kib = n,
            "RssFile" => f.file_kib = n,
            "VmHWM" => f.peak_rss_kib = n,
            "Threads" => (f.threads, threads) = (n, true),
            _ => {}
        }
    }
    (rss && threads).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_in_kib() {
        let status = "Name:\tringfwd\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t  900000 kB\n\
                      VmHWM:\t   60000 kB\nVmRSS:\t   52000 kB\nRssAnon:\t   40000 kB\nRssFile:\t   11000 kB\n\
                      RssShmem:\t    1000 kB\nThreads:\t7\nSigQ:\t0/31189\n";
        let f = parse_status(status).unwrap();
        assert_eq!(
            f,
            Footprint { rss_kib: 52_000, anon_kib: 40_000, file_kib: 11_000, peak_rss_kib: 60_000, threads: 7, fds: 0 }
        );
        assert_eq!(parse_status("Name:\tkthreadd\nThreads:\t1\n"), None);
        assert_eq!(parse_status("VmRSS:\tlots kB\nThreads:\t1\n"), None);
    }

    #[test]
    fn own_footprint_is_real() {
        let held: Vec<std::fs::File> = (0..3).map(|_| std::fs::File::open("/proc/self/status").unwrap()).collect();
        let f = footprint(std::process::id()).unwrap();
        assert!(f.rss_kib > 0 && f.rss_kib <= f.peak_rss_kib, "{f:?}");
        assert!(f.anon_kib > 0 && f.threads >= 1, "{f:?}");
        assert!(f.fds >= 3 + held.len() as u64, "{f:?}");
        assert!(footprint(u32::MAX).is_err());
    }
}
