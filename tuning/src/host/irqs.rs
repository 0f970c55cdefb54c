//! The interrupt items of `ringfwd tune check`: device interrupts served on worker cores, for the NICs (every
//! received packet) and for the disks (every durable write of the state store, an fsync each
//! `state.numbering_interval_ms` and per accepted API change).
//!
//! Sans-IO like [`super::check`]: rows of `/proc/interrupts` in, an item out. It must never read the host itself.

use super::check::{CheckItem, Status};
use super::facts::HostFacts;
use super::parse::{format_cpu_list, InterruptRow};

/// NIC interrupts on worker cores.
pub(super) fn nic(facts: &HostFacts, worker_cores: &[usize]) -> CheckItem {
    on_worker_cores("nic irqs on worker cores", "NIC", facts.nic_interrupts.as_deref(), facts, worker_cores)
}

/// Disk interrupts on worker cores: each one (an fsync's completion) delays the packets that core forwards.
pub(super) fn disk(facts: &HostFacts, worker_cores: &[usize]) -> CheckItem {
    let mut item =
        on_worker_cores("disk irqs on worker cores", "disk", facts.disk_interrupts.as_deref(), facts, worker_cores);
    if item.status == Status::Warn {
        item.detail.push_str("; each durable write of the state store (state.persist) interrupts them");
        if let Some(fix) = item.fix.as_mut() {
            fix.push_str(&format!(
                "; a managed irq (one per queue: NVMe, virtio-blk) refuses the write: boot with \
                 isolcpus=managed_irq,domain,{}",
                format_cpu_list(worker_cores)
            ));
        }
    }
    item
}

/// The item `name` for `rows` (of devices called `what`): warns naming each row with a count on a worker core, with the
/// commands that move them to the other online cores.
fn on_worker_cores(
    name: &'static str,
    what: &str,
    rows: Option<&[InterruptRow]>,
    facts: &HostFacts,
    worker_cores: &[usize],
) -> CheckItem {
    let Some(rows) = rows else {
        return CheckItem::unknown(name, "/proc/interrupts");
    };
    let mut hits: Vec<String> = Vec::new();
    let mut irqs: Vec<u32> = Vec::new();
    for row in rows {
        let on_workers: Vec<String> = row
            .per_cpu
            .iter()
            .filter(|(cpu, count)| *count > 0 && worker_cores.contains(cpu))
            .map(|(cpu, count)| format!("cpu{cpu}={count}"))
            .collect();
        if !on_workers.is_empty() {
            hits.push(format!("irq {} ({}): {}", row.irq, device_name(&row.description), on_workers.join(" ")));
            irqs.push(row.irq);
        }
    }
    if hits.is_empty() {
        return CheckItem::new(name, Status::Ok, format!("{} {what} irqs, none served on a worker core", rows.len()));
    }
    let detail = format!("{} (counts since boot)", hits.join("; "));
    let others: Vec<usize> = match &facts.online_cpus {
        Some(online) => online.iter().copied().filter(|c| !worker_cores.contains(c)).collect(),
        None => Vec::new(),
    };
    let fix = if others.is_empty() {
        "no non-worker core to move them to: leave a core out of placement.worker_cores".to_owned()
    } else {
        let list = format_cpu_list(&others);
        let commands: Vec<String> =
            irqs.iter().map(|irq| format!("echo {list} > /proc/irq/{irq}/smp_affinity_list")).collect();
        format!("{} (and stop irqbalance or ban the worker cores in it)", commands.join("; "))
    };
    CheckItem::new(name, Status::Warn, detail).with_fix(fix)
}

/// The last word of an interrupt description: the device or queue name.
fn device_name(description: &str) -> &str {
    description.split_whitespace().last().unwrap_or(description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::parse_interrupts;

    #[test]
    fn nic_irqs_on_worker_cores_name_the_irqs() {
        let text = "  CPU0  CPU1  CPU2\n40: 9 0 0 PCI-MSI eth0-rx-0\n41: 0 5 3 PCI-MSI eth0-tx-0\n42: 0 0 0 PCI-MSI eth0-rx-1\n";
        let facts = HostFacts {
            online_cpus: Some(vec![0, 1, 2]),
            nic_interrupts: parse_interrupts(text),
            ..HostFacts::default()
        };
        assert_eq!(nic(&facts, &[]).status, Status::Ok);
        let warn = nic(&facts, &[1, 2]);
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.detail.starts_with("irq 41 (eth0-tx-0): cpu1=5 cpu2=3"), "{warn:?}");
        assert!(!warn.detail.contains("irq 40") && !warn.detail.contains("irq 42"), "{warn:?}");
        assert!(warn.fix.unwrap().starts_with("echo 0 > /proc/irq/41/smp_affinity_list"));
        assert!(nic(&facts, &[0, 1, 2]).fix.unwrap().starts_with("no non-worker core"));
        assert!(nic(&HostFacts::default(), &[1]).detail.starts_with("could not read"));
    }

    #[test]
    fn disk_irqs_on_worker_cores_say_why_and_how_to_move_a_managed_one() {
        let text = "  CPU0  CPU1\n36: 0 1013202 PCI-MSIX-0000:00:02.0 1-edge virtio1-req.0\n";
        let facts = HostFacts {
            online_cpus: Some(vec![0, 1]),
            disk_interrupts: parse_interrupts(text),
            ..HostFacts::default()
        };
        let ok = disk(&facts, &[0]);
        assert_eq!((ok.status, ok.detail.as_str()), (Status::Ok, "1 disk irqs, none served on a worker core"));
        let warn = disk(&facts, &[1]);
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.detail.starts_with("irq 36 (virtio1-req.0): cpu1=1013202 (counts since boot); each durable"));
        let fix = warn.fix.unwrap();
        assert!(fix.starts_with("echo 0 > /proc/irq/36/smp_affinity_list"), "{fix}");
        assert!(fix.ends_with("boot with isolcpus=managed_irq,domain,1"), "{fix}");
        assert!(disk(&facts, &[0, 1]).fix.unwrap().starts_with("no non-worker core"));
        assert!(disk(&HostFacts::default(), &[1]).detail.starts_with("could not read"));
    }
}
