//! What machine and software a result was measured on, for the JSON results file.
//!
//! Owns [`Machine`]: CPU model and count (`/proc/cpuinfo`, the affinity mask), memory
//! (`/proc/meminfo`), kernel (`uname` through rustix), steal time since boot (`/proc/stat`),
//! the bench's and ringfwd's versions (`ringfwd --version`) and the git commit of the work tree
//! when there is one; and the load average now ([`load_average_1m`], for a soak's rows: how busy the
//! machine was besides the run). Parsers are separate from the reads so they are testable on fixed text.
//! Must never fail a run: what cannot be read is left empty.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The machine and software of a run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// `model name` of the first CPU.
    pub cpu_model: String,
    /// Logical CPUs of the machine (`processor` entries of `/proc/cpuinfo`).
    pub cores: usize,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// Kernel release and version (`uname -r -v`).
    pub kernel: String,
    /// Machine architecture (`uname -m`).
    pub arch: String,
    /// Host name.
    pub hostname: String,
    /// Share of CPU time stolen by the hypervisor since boot, percent.
    pub steal_percent: f64,
    /// This bench's version.
    pub bench_version: String,
    /// What `ringfwd --version` printed, when it ran.
    pub ringfwd_version: String,
    /// `git rev-parse HEAD` of the work tree the bench runs from, when it is one.
    pub git_commit: String,
    /// When the run started, seconds since the Unix epoch.
    pub timestamp_unix_s: u64,
}

impl Machine {
    /// Describes this machine; `ringfwd` is the daemon's binary, when there is one.
    pub fn describe(ringfwd: Option<&Path>) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let uname = rustix::system::uname();
        let text = |s: &std::ffi::CStr| s.to_string_lossy().into_owned();
        Machine {
            cpu_model: parse_cpu_model(&read("/proc/cpuinfo")),
            cores: parse_processors(&read("/proc/cpuinfo")),
            memory_bytes: parse_mem_total_bytes(&read("/proc/meminfo")),
            kernel: format!("{} {}", text(uname.release()), text(uname.version())),
            arch: text(uname.machine()),
            hostname: text(uname.nodename()),
            steal_percent: parse_steal_percent(&read("/proc/stat")),
            bench_version: env!("CARGO_PKG_VERSION").to_string(),
            ringfwd_version: ringfwd.map(version_of).unwrap_or_default(),
            git_commit: git_commit(),
            timestamp_unix_s: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        }
    }

    /// One line for a report header.
    pub fn one_line(&self) -> String {
        format!(
            "{} ({} cores, {:.1} GiB, {} {}, steal {:.2}% since boot); ringfwd {}{}",
            self.cpu_model,
            self.cores,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            self.arch,
            self.kernel.split_whitespace().next().unwrap_or(""),
            self.steal_percent,
            if self.ringfwd_version.is_empty() { "?" } else { &self.ringfwd_version },
            if self.git_commit.is_empty() { String::new() } else { format!(" at {}", &self.git_commit) },
        )
    }
}

fn version_of(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn git_commit() -> String {
    let dir = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf));
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The `model name` of the first processor in `/proc/cpuinfo`.
pub fn parse_cpu_model(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_default()
}

/// Count of `processor` entries in `/proc/cpuinfo`.
pub fn parse_processors(cpuinfo: &str) -> usize {
    cpuinfo.lines().filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor")).count()
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_mem_total_bytes(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Steal time as a percentage of all CPU time on the `cpu` line of `/proc/stat`.
pub fn parse_steal_percent(stat: &str) -> f64 {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guests are inside user.
    let total: u64 = fields.iter().take(8).sum();
    match fields.get(7) {
        Some(&steal) if total > 0 => steal as f64 * 100.0 / total as f64,
        _ => 0.0,
    }
}

/// The 1-minute load average (`/proc/loadavg`), 0 when it cannot be read.
pub fn load_average_1m() -> f64 {
    parse_load_average_1m(&std::fs::read_to_string("/proc/loadavg").unwrap_or_default())
}

/// The first field of a `/proc/loadavg` text, 0 when there is none.
pub fn parse_load_average_1m(loadavg: &str) -> f64 {
    loadavg.split_whitespace().next().and_then(|f| f.parse().ok()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_parsed() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n";
        assert_eq!(parse_cpu_model(cpuinfo), "AMD EPYC 7B13 64-Core Processor");
        assert_eq!(parse_cpu_model(""), "");
        assert_eq!(parse_processors("processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\n"), 2);
        assert_eq!(parse_mem_total_bytes("MemTotal:        8000000 kB\nMemFree: 1 kB\n"), 8_192_000_000);
        let stat = "cpu  100 0 100 700 0 0 0 100 0 0\ncpu0 1 2 3\n";
        assert!((parse_steal_percent(stat) - 10.0).abs() < 1e-9);
        assert_eq!(parse_steal_percent("intr 1 2"), 0.0);
        assert_eq!(parse_load_average_1m("3.45 6.54 5.37 3/412 31018\n"), 3.45);
        assert_eq!(parse_load_average_1m(""), 0.0);
    }

    #[test]
    fn this_machine_is_described() {
        let m = Machine::describe(None);
        assert!(m.cores >= 1 && m.memory_bytes > 0, "{m:?}");
        assert!(!m.kernel.is_empty() && !m.arch.is_empty(), "{m:?}");
        assert!(m.timestamp_unix_s > 1_600_000_000);
        assert!(m.one_line().contains("cores"));
    }
}
