//! What `/proc` tells about a forwarder: CPU time of its process and drops of its UDP sockets.
//!
//! Owns reading and parsing `/proc/PID/stat` (`utime + stime`, all threads),
//! `/proc/PID/task/TID/stat` (the same per thread, split into data-plane workers and the rest) and
//! `/proc/net/udp{,6}` (the per-socket `drops` column). Parsers are separate from the reads so
//! they are testable on fixed text. Must never write anything or signal a process.

use std::fs;
use std::io;

/// CPU time (user + system, all threads) of process `pid`, in ns, at clock-tick resolution.
pub fn process_cpu_ns(pid: u32) -> io::Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_cpu_ticks(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat: no utime/stime")))?;
    let per_s = rustix::param::clock_ticks_per_second().max(1);
    Ok(ticks.saturating_mul(1_000_000_000) / per_s)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    // After the command: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Name prefix of ringfwd's data-plane worker threads (`ringfwd-w0`, `ringfwd-w1`, ...).
pub const WORKER_THREAD_PREFIX: &str = "ringfwd-w";

/// CPU time of a process split by thread, in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ThreadSplit {
    /// Data-plane workers (threads named [`WORKER_THREAD_PREFIX`]...).
    pub worker_ns: u64,
    /// Every other thread: control runtime, acknowledgements, main.
    pub other_ns: u64,
}

impl ThreadSplit {
    /// What was spent between `before` and `self` (threads that ended in between are not counted).
    pub fn since(self, before: ThreadSplit) -> ThreadSplit {
        ThreadSplit {
            worker_ns: self.worker_ns.saturating_sub(before.worker_ns),
            other_ns: self.other_ns.saturating_sub(before.other_ns),
        }
    }
}

/// CPU time (user + system) of each live thread of `pid`, split into workers and the rest.
pub fn thread_split_ns(pid: u32) -> io::Result<ThreadSplit> {
    let per_s = rustix::param::clock_ticks_per_second().max(1);
    let mut split = ThreadSplit::default();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = entry?.path().join("stat");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            // The thread ended after the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let (Some(comm), Some(ticks)) = (parse_stat_comm(&text), parse_stat_cpu_ticks(&text)) else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: unreadable", path.display())));
        };
        let ns = ticks.saturating_mul(1_000_000_000) / per_s;
        if comm.starts_with(WORKER_THREAD_PREFIX) {
            split.worker_ns += ns;
        } else {
            split.other_ns += ns;
        }
    }
    Ok(split)
}

/// The command (thread) name of a `/proc/.../stat` line: between the first `(` and the last `)`.
pub fn parse_stat_comm(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

/// Ids of the processes whose command name (`/proc/PID/comm`) is `name`.
pub fn find_processes(name: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name))
        .collect()
}

/// Datagrams the kernel dropped on every UDP socket (IPv4 and IPv6) bound to local `port`.
pub fn udp_drops(port: u16) -> io::Result<u64> {
    let mut total = 0;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        match fs::read_to_string(table) {
            Ok(text) => total += parse_udp_drops(&text, port),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Sum of the `drops` column (the last) over the rows of a `/proc/net/udp{,6}` table whose
/// local address has `port` (hexadecimal after the colon).
pub fn parse_udp_drops(table: &str, port: u16) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let mut cols = row.split_whitespace();
            let local = cols.nth(1)?;
            let row_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (row_port == port).then(|| cols.last()?.parse::<u64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_an_odd_command_name() {
        let stat = "4242 (ringfwd (w) 1) S 1 4242 4242 0 -1 4194560 310 0 0 0 1234 56 0 0 20 0 3 0 99 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(1290));
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis"), None);
        assert_eq!(parse_stat_comm(stat), Some("ringfwd (w) 1"));
        assert_eq!(parse_stat_comm("4242 ringfwd-w0) S"), None);
    }

    #[test]
    fn own_threads_are_split_by_name() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};
        let pid = std::process::id();
        let before = thread_split_ns(pid).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let worker = std::thread::Builder::new()
            .name(format!("{WORKER_THREAD_PREFIX}7"))
            .spawn(move || {
                let mut x = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                x
            })
            .unwrap();
        // The spinning worker's time shows up as worker time (however loaded the machine is).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut spent = ThreadSplit::default();
        while spent.worker_ns < 50_000_000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            spent = thread_split_ns(pid).unwrap().since(before);
        }
        stop.store(true, Ordering::Relaxed);
        let _ = worker.join();
        assert!(spent.worker_ns >= 50_000_000, "{spent:?}");
    }

    #[test]
    fn own_process_cpu_is_readable_and_grows() {
        let pid = std::process::id();
        let before = process_cpu_ns(pid).unwrap();
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(process_cpu_ns(pid).unwrap() > before, "{x}");
    }

    #[test]
    fn udp_drops_are_summed_for_the_port_only() {
        let table = "\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 17
  101: 00000000:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2 2 0000000000000000 3
  102: 0100007F:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0000000000000000 99
";
        assert_eq!(parse_udp_drops(table, 0x9C40), 20);
        assert_eq!(parse_udp_drops(table, 0x9C41), 99);
        assert_eq!(parse_udp_drops(table, 1), 0);
    }

    #[test]
    fn a_bound_socket_shows_up_with_zero_drops() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let text = fs::read_to_string("/proc/net/udp").unwrap();
        let listed = text.lines().any(|l| l.contains(&format!(":{port:04X} ")));
        assert!(listed, "port {port} not in /proc/net/udp");
        assert_eq!(udp_drops(port).unwrap(), 0);
    }
}
