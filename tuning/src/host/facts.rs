//! What the host checks know about the machine: [`HostFacts`], and [`read_host_facts`], which gathers them
//! from a filesystem root (`/` in production, a fake tree in tests).
//!
//! Every fact is optional: a file that is missing or unreadable is recorded as unknown (`None`), never an
//! error or a panic. This module only reads; it must never write to `/proc` or `/sys`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::parse::{parse_cpu_list, parse_cpu_mask, parse_interrupts, InterruptRow};

/// Substrings of an interrupt row that mark it as a network device's, besides the names of the host's NICs.
const NIC_IRQ_MARKERS: [&str; 5] = ["eth", "mlx", "ixgbe", "i40e", "ice"];
/// Marks a virtio device's interrupt row; used only when the NICs' own virtio device names are unknown, since
/// block, balloon and console devices are virtio too.
const VIRTIO_MARKER: &str = "virtio";

/// The facts about the host that `ringfwd tune check` judges; `None` means "could not read".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// Online CPUs (`/sys/devices/system/cpu/online`).
    pub online_cpus: Option<Vec<usize>>,
    /// CPUs isolated from the scheduler by `isolcpus=` (`/sys/devices/system/cpu/isolated`).
    pub isolated_cpus: Option<Vec<usize>>,
    /// CPUs without the periodic tick, `nohz_full=` (`/sys/devices/system/cpu/nohz_full`).
    pub nohz_full_cpus: Option<Vec<usize>>,
    /// CPU frequency governor of each online CPU whose `cpufreq/scaling_governor` could be read.
    pub governors: BTreeMap<usize, String>,
    /// `net.core.rmem_max`, in bytes.
    pub rmem_max_bytes: Option<u64>,
    /// `net.core.wmem_max`, in bytes.
    pub wmem_max_bytes: Option<u64>,
    /// `net.core.netdev_max_backlog`, in packets.
    pub netdev_max_backlog_packets: Option<u64>,
    /// `net.core.busy_poll`, in microseconds.
    pub busy_poll_us: Option<u64>,
    /// `net.core.busy_read`, in microseconds.
    pub busy_read_us: Option<u64>,
    /// Network device rows of `/proc/interrupts`.
    pub nic_interrupts: Option<Vec<InterruptRow>>,
    /// Disk rows of `/proc/interrupts`: those naming the device a block device sits on (`virtio1-req.0` for
    /// `/sys/block/vda/device` → `virtio1`, `nvme0q1` for `nvme0`).
    pub disk_interrupts: Option<Vec<InterruptRow>>,
    /// RPS masks of every receive queue of every NIC but `lo`.
    pub rps_masks: Option<Vec<RpsMask>>,
    /// DAMON's monitoring threads (`kdamond.N`) running now, found in `/proc`; `None` when `/proc` cannot be listed.
    pub damon_threads: Option<Vec<KernelThread>>,
}

/// A kernel thread and the CPUs it may run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelThread {
    /// Its process id.
    pub pid: u32,
    /// Its name, e.g. `kdamond.0`.
    pub name: String,
    /// The CPUs it may run on (`Cpus_allowed_list` in `/proc/PID/status`); `None` when that could not be read.
    pub cpus: Option<Vec<usize>>,
}

/// The RPS CPU mask of one receive queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpsMask {
    /// The network device, e.g. `eth0`.
    pub device: String,
    /// The receive queue, e.g. `rx-0`.
    pub queue: String,
    /// CPUs the queue's packets are steered to; `None` when `rps_cpus` could not be read.
    pub cpus: Option<Vec<usize>>,
}

fn read(root: &Path, path: &str) -> Option<String> {
    std::fs::read_to_string(root.join(path.trim_start_matches('/'))).ok()
}

fn read_u64(root: &Path, path: &str) -> Option<u64> {
    read(root, path)?.trim().parse().ok()
}

/// Reads a CPU list under `root` (`path` relative, or absolute as in `/sys/...`); older kernels write
/// `(null)` for an empty `nohz_full`.
pub(crate) fn read_cpus(root: &Path, path: &str) -> Option<Vec<usize>> {
    let text = read(root, path)?;
    if text.trim() == "(null)" {
        return Some(Vec::new());
    }
    parse_cpu_list(&text)
}

/// Sorted names of the entries of a directory; `None` when it cannot be listed.
fn list_dir(dir: &Path) -> Option<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Some(names)
}

/// Reads the host facts under `root` (`/` in production). Never fails: what cannot be read is `None`.
pub fn read_host_facts(root: &Path) -> HostFacts {
    let online_cpus = read_cpus(root, "sys/devices/system/cpu/online");
    let mut governors = BTreeMap::new();
    for &cpu in online_cpus.iter().flatten() {
        if let Some(governor) = read(root, &format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor")) {
            governors.insert(cpu, governor.trim().to_owned());
        }
    }
    let nics: Option<Vec<String>> =
        list_dir(&root.join("sys/class/net")).map(|names| names.into_iter().filter(|n| n != "lo").collect());
    let mut nic_names: Vec<String> = nics.clone().unwrap_or_default();
    let device_names = nic_device_names(root, &nic_names);
    let knows_virtio_device = device_names.iter().any(|d| d.starts_with(VIRTIO_MARKER));
    nic_names.extend(device_names);
    let interrupts = read(root, "proc/interrupts").and_then(|text| parse_interrupts(&text));
    let nic_interrupts = interrupts.clone().map(|rows| {
        rows.into_iter().filter(|row| is_nic_row(&row.description, &nic_names, knows_virtio_device)).collect()
    });
    let disks = disk_device_names(root);
    let disk_interrupts = interrupts.map(|rows| {
        rows.into_iter().filter(|row| disks.iter().any(|name| names_device(&row.description, name))).collect()
    });
    let rps_masks = nics.as_ref().map(|nics| {
        let mut masks = Vec::new();
        for device in nics {
            let queues_dir = root.join("sys/class/net").join(device).join("queues");
            for queue in list_dir(&queues_dir).unwrap_or_default().into_iter().filter(|q| q.starts_with("rx-")) {
                let cpus = std::fs::read_to_string(queues_dir.join(&queue).join("rps_cpus"))
                    .ok()
                    .and_then(|text| parse_cpu_mask(&text));
                masks.push(RpsMask { device: device.clone(), queue, cpus });
            }
        }
        masks
    });
    HostFacts {
        online_cpus,
        isolated_cpus: read_cpus(root, "sys/devices/system/cpu/isolated"),
        nohz_full_cpus: read_cpus(root, "sys/devices/system/cpu/nohz_full"),
        governors,
        rmem_max_bytes: read_u64(root, "proc/sys/net/core/rmem_max"),
        wmem_max_bytes: read_u64(root, "proc/sys/net/core/wmem_max"),
        netdev_max_backlog_packets: read_u64(root, "proc/sys/net/core/netdev_max_backlog"),
        busy_poll_us: read_u64(root, "proc/sys/net/core/busy_poll"),
        busy_read_us: read_u64(root, "proc/sys/net/core/busy_read"),
        nic_interrupts,
        disk_interrupts,
        rps_masks,
        damon_threads: damon_threads(root),
    }
}

/// The name prefix of DAMON's monitoring threads.
const DAMON_THREAD: &str = "kdamond";

/// Every process under `root/proc` named `kdamond*`, in pid order; `None` when `proc` cannot be listed.
fn damon_threads(root: &Path) -> Option<Vec<KernelThread>> {
    let mut pids: Vec<u32> = list_dir(&root.join("proc"))?.iter().filter_map(|name| name.parse().ok()).collect();
    pids.sort_unstable();
    let threads = pids
        .into_iter()
        .filter_map(|pid| {
            let name = read(root, &format!("proc/{pid}/comm"))?.trim().to_owned();
            name.starts_with(DAMON_THREAD).then(|| {
                let status = read(root, &format!("proc/{pid}/status"));
                let cpus = status.as_deref().and_then(|text| {
                    text.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")).and_then(parse_cpu_list)
                });
                KernelThread { pid, name, cpus }
            })
        })
        .collect();
    Some(threads)
}

/// The device each NIC sits on (`virtio3`, `0000:01:00.0`): the target of `/sys/class/net/NIC/device`.
fn nic_device_names(root: &Path, nics: &[String]) -> Vec<String> {
    nics.iter()
        .filter_map(|nic| std::fs::read_link(root.join("sys/class/net").join(nic).join("device")).ok())
        .filter_map(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// The device each block device sits on (`virtio1`, `nvme0`): the target of `/sys/block/DISK/device`; virtual
/// disks (loop, ram, dm, zram) have none.
fn disk_device_names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = list_dir(&root.join("sys/block"))
        .unwrap_or_default()
        .iter()
        .filter_map(|disk| std::fs::read_link(root.join("sys/block").join(disk).join("device")).ok())
        .filter_map(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether an interrupt row's description names one of `names` (NICs and their devices) or a common NIC driver; any
/// virtio row counts only when `knows_virtio_device` is false.
fn is_nic_row(description: &str, names: &[String], knows_virtio_device: bool) -> bool {
    let lower = description.to_ascii_lowercase();
    names.iter().any(|name| names_device(description, name))
        || NIC_IRQ_MARKERS.iter().any(|marker| lower.contains(marker))
        || (!knows_virtio_device && lower.contains(VIRTIO_MARKER))
}

/// Whether an interrupt row's description names device `name`, ignoring case: `eth1` does not match `eth10`.
fn names_device(description: &str, name: &str) -> bool {
    let (description, name) = (description.to_ascii_lowercase(), name.to_ascii_lowercase());
    description
        .match_indices(&name)
        .any(|(at, _)| !description[at + name.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fake_root::write;

    #[test]
    fn reads_a_fake_host() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "sys/devices/system/cpu/online", "0-3\n");
        write(root, "sys/devices/system/cpu/isolated", "2-3\n");
        write(root, "sys/devices/system/cpu/nohz_full", "(null)\n");
        write(root, "sys/devices/system/cpu/cpu2/cpufreq/scaling_governor", "performance\n");
        write(root, "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor", "powersave\n");
        write(root, "proc/sys/net/core/rmem_max", "4194304\n");
        write(root, "proc/sys/net/core/wmem_max", "212992\n");
        write(root, "proc/sys/net/core/netdev_max_backlog", "1000\n");
        write(root, "proc/sys/net/core/busy_poll", "0\n");
        write(
            root,
            "proc/interrupts",
            "       CPU0   CPU1   CPU2   CPU3\n\
             24:     1      0      0      0  IO-APIC 5-edge ACPI:Ged\n\
             40:     0      0     17      0  PCI-MSI 1-edge enp1s0-TxRx-0\n\
             41:     0      0      0      5  PCI-MSI 2-edge mlx5_comp0\n\
             42:     0      0      3      0  PCI-MSIX 1-edge virtio1-req.0\n\
             43:     0      0      0      4  PCI-MSIX 1-edge virtio13-input.0\n\
             44:     0      0      0      2  PCI-MSIX 1-edge virtio1-input.0\n\
             LOC:  100    100    100    100  Local timer interrupts\n",
        );
        write(root, "sys/class/net/lo/queues/rx-0/rps_cpus", "0\n");
        write(root, "sys/class/net/enp1s0/queues/rx-0/rps_cpus", "0000000c\n");
        write(root, "sys/class/net/enp1s0/queues/rx-1/rps_cpus", "zz\n");
        write(root, "sys/class/net/enp1s0/queues/tx-0/xps_cpus", "1\n");
        write(root, "sys/devices/virtio13/net/enp1s0/x", "");
        write(root, "proc/77/comm", "kdamond.0\n");
        write(root, "proc/77/status", "Name:\tkdamond.0\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n");
        write(root, "proc/78/comm", "kdamond.1\n");
        write(root, "proc/9/comm", "sshd\n");
        write(root, "proc/9/status", "Cpus_allowed_list:\t0-3\n");
        std::os::unix::fs::symlink("../../../devices/virtio13", root.join("sys/class/net/enp1s0/device")).unwrap();
        std::fs::create_dir_all(root.join("sys/block/vda")).unwrap();
        std::fs::create_dir_all(root.join("sys/block/loop0")).unwrap();
        std::os::unix::fs::symlink("../../../virtio1", root.join("sys/block/vda/device")).unwrap();

        let facts = read_host_facts(root);
        assert_eq!(facts.online_cpus, Some(vec![0, 1, 2, 3]));
        assert_eq!(facts.isolated_cpus, Some(vec![2, 3]));
        assert_eq!(facts.nohz_full_cpus, Some(vec![]), "\"(null)\" is the empty list");
        assert_eq!(facts.governors.get(&2).map(String::as_str), Some("performance"));
        assert_eq!(facts.governors.get(&3).map(String::as_str), Some("powersave"));
        assert!(!facts.governors.contains_key(&0));
        assert_eq!(facts.rmem_max_bytes, Some(4_194_304));
        assert_eq!(facts.wmem_max_bytes, Some(212_992));
        assert_eq!(facts.netdev_max_backlog_packets, Some(1000));
        assert_eq!(facts.busy_poll_us, Some(0));
        assert_eq!(facts.busy_read_us, None);
        let irqs: Vec<u32> = facts.nic_interrupts.unwrap().iter().map(|r| r.irq).collect();
        assert_eq!(irqs, [40, 41, 43], "the virtio block device and virtio1 are not the NIC's virtio13");
        let disk_irqs: Vec<u32> = facts.disk_interrupts.unwrap().iter().map(|r| r.irq).collect();
        assert_eq!(disk_irqs, [42, 44], "vda sits on virtio1 (loop0 on no device); virtio13 is not virtio1");
        let masks = facts.rps_masks.unwrap();
        assert_eq!(masks.len(), 2, "lo and tx queues are left out: {masks:?}");
        assert_eq!(masks[0].cpus, Some(vec![2, 3]));
        assert_eq!((masks[1].queue.as_str(), masks[1].cpus.as_ref()), ("rx-1", None));
        let damon = facts.damon_threads.unwrap();
        let kdamond = |pid, name: &str, cpus| KernelThread { pid, name: name.to_owned(), cpus };
        assert_eq!(damon, [kdamond(77, "kdamond.0", Some(vec![0, 1])), kdamond(78, "kdamond.1", None)]);
    }

    #[test]
    fn any_virtio_row_counts_when_the_nic_device_is_unknown() {
        assert!(is_nic_row("PCI-MSIX 1-edge virtio3-rx", &[], false));
        assert!(!is_nic_row("PCI-MSIX 1-edge virtio1-req.0", &["virtio3".into()], true));
        assert!(is_nic_row("PCI-MSIX 1-edge virtio3-rx", &["virtio3".into()], true));
        assert!(!is_nic_row("IO-APIC 4-edge ttyS0", &["em1".into()], false));
    }

    #[test]
    fn an_empty_root_is_all_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let facts = read_host_facts(dir.path());
        assert_eq!(facts, HostFacts::default());
    }
}
