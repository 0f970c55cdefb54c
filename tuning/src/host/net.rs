//! The network items of `ringfwd tune check`: socket buffer limits against the config, `netdev_max_backlog`,
//! busy polling, NIC interrupts on worker cores ([`super::irqs`]) and RPS masks that include worker cores.
//!
//! Sans-IO like [`super::check`]: it must never read the host itself.

use super::check::{CheckItem, Status};
use super::facts::HostFacts;
use super::parse::format_cpu_mask;
use crate::Config;

/// Below this `netdev_max_backlog` a receive burst on one core overflows the kernel's backlog.
pub const MIN_NETDEV_MAX_BACKLOG_PACKETS: u64 = 10_000;
/// The `netdev_max_backlog` that `tuning/deploy/99-ringfwd.conf` sets.
const RECOMMENDED_NETDEV_MAX_BACKLOG_PACKETS: u64 = 30_000;

/// The network items, in report order.
pub(super) fn check(facts: &HostFacts, config: &Config, worker_cores: &[usize]) -> Vec<CheckItem> {
    let sizes = config.sizes(worker_cores.len());
    vec![
        buffer_limit("rmem_max", facts.rmem_max_bytes, sizes.recv_buffer_bytes, "media.recv_buffer_bytes"),
        buffer_limit("wmem_max", facts.wmem_max_bytes, sizes.send_buffer_bytes, "media.send_buffer_bytes"),
        backlog(facts),
        busy_poll(facts),
        super::irqs::nic(facts, worker_cores),
        rps(facts, worker_cores),
    ]
}

fn buffer_limit(name: &'static str, limit_bytes: Option<u64>, wanted_bytes: usize, key: &str) -> CheckItem {
    let Some(limit_bytes) = limit_bytes else {
        return CheckItem::unknown(name, &format!("/proc/sys/net/core/{name}"));
    };
    if limit_bytes >= wanted_bytes as u64 {
        return CheckItem::new(name, Status::Ok, format!("{limit_bytes} bytes >= {key} = {wanted_bytes}"));
    }
    let force = if name == "rmem_max" { "SO_RCVBUFFORCE" } else { "SO_SNDBUFFORCE" };
    CheckItem::new(
        name,
        Status::Warn,
        format!("{limit_bytes} bytes < {key} = {wanted_bytes}: ringfwd needs root or CAP_NET_ADMIN ({force})"),
    )
    .with_fix(format!("sysctl -w net.core.{name}={wanted_bytes} (persist: tuning/deploy/99-ringfwd.conf)"))
}

fn backlog(facts: &HostFacts) -> CheckItem {
    const NAME: &str = "netdev_max_backlog";
    match facts.netdev_max_backlog_packets {
        None => CheckItem::unknown(NAME, "/proc/sys/net/core/netdev_max_backlog"),
        Some(packets) if packets >= MIN_NETDEV_MAX_BACKLOG_PACKETS => {
            CheckItem::new(NAME, Status::Ok, format!("{packets} packets"))
        }
        Some(packets) => CheckItem::new(
            NAME,
            Status::Warn,
            format!("{packets} packets < {MIN_NETDEV_MAX_BACKLOG_PACKETS}: bursts are dropped before the socket"),
        )
        .with_fix(format!("sysctl -w net.core.netdev_max_backlog={RECOMMENDED_NETDEV_MAX_BACKLOG_PACKETS}")),
    }
}

fn busy_poll(facts: &HostFacts) -> CheckItem {
    const NAME: &str = "busy poll";
    let (Some(poll_us), Some(read_us)) = (facts.busy_poll_us, facts.busy_read_us) else {
        return CheckItem::unknown(NAME, "/proc/sys/net/core/busy_poll and busy_read");
    };
    if poll_us == 0 && read_us == 0 {
        return CheckItem::new(NAME, Status::Ok, "busy_poll=0 busy_read=0: off; ringfwd's workers poll their own ring");
    }
    CheckItem::new(
        NAME,
        Status::Warn,
        format!(
            "busy_poll={poll_us}us busy_read={read_us}us: other programs spin in poll/read on every core; \
             ringfwd does not use it"
        ),
    )
    .with_fix("sysctl -w net.core.busy_poll=0 net.core.busy_read=0")
}

fn rps(facts: &HostFacts, worker_cores: &[usize]) -> CheckItem {
    const NAME: &str = "rps masks";
    let Some(masks) = &facts.rps_masks else {
        return CheckItem::unknown(NAME, "/sys/class/net");
    };
    let mut hits = Vec::new();
    let mut fixes = Vec::new();
    let mut unreadable = Vec::new();
    for mask in masks {
        let Some(cpus) = &mask.cpus else {
            unreadable.push(format!("{}/{}", mask.device, mask.queue));
            continue;
        };
        let on_workers: Vec<usize> = cpus.iter().copied().filter(|c| worker_cores.contains(c)).collect();
        if !on_workers.is_empty() {
            hits.push(format!("{}/{} -> {:?}", mask.device, mask.queue, on_workers));
            let kept: Vec<usize> = cpus.iter().copied().filter(|c| !worker_cores.contains(c)).collect();
            fixes.push(format!(
                "echo {} > /sys/class/net/{}/queues/{}/rps_cpus",
                format_cpu_mask(&kept),
                mask.device,
                mask.queue
            ));
        }
    }
    if !hits.is_empty() {
        return CheckItem::new(NAME, Status::Warn, format!("RPS steers to worker cores: {}", hits.join("; ")))
            .with_fix(fixes.join("; "));
    }
    if !unreadable.is_empty() {
        return CheckItem::unknown(NAME, &format!("rps_cpus of {}", unreadable.join(", ")));
    }
    CheckItem::new(NAME, Status::Ok, format!("{} rx queues, none steered to a worker core", masks.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::RpsMask;

    fn item(facts: &HostFacts, config: &Config, workers: &[usize], name: &str) -> CheckItem {
        check(facts, config, workers).into_iter().find(|i| i.name == name).unwrap()
    }

    #[test]
    fn socket_buffer_limits_against_the_config() {
        let mut config = Config::default();
        config.media.recv_buffer_bytes = Some(8 << 20);
        config.media.send_buffer_bytes = Some(1 << 20);
        let facts = HostFacts { rmem_max_bytes: Some(4 << 20), wmem_max_bytes: Some(1 << 20), ..HostFacts::default() };
        let rmem = item(&facts, &config, &[1], "rmem_max");
        assert_eq!(rmem.status, Status::Warn);
        assert!(rmem.detail.contains("SO_RCVBUFFORCE") && rmem.detail.contains("media.recv_buffer_bytes"));
        assert_eq!(
            rmem.fix.as_deref(),
            Some("sysctl -w net.core.rmem_max=8388608 (persist: tuning/deploy/99-ringfwd.conf)")
        );
        assert_eq!(item(&facts, &config, &[1], "wmem_max").status, Status::Ok);
        let unknown = item(&HostFacts::default(), &config, &[1], "wmem_max");
        assert_eq!((unknown.status, unknown.detail.starts_with("could not read")), (Status::Warn, true));
    }

    #[test]
    fn backlog_below_ten_thousand_warns() {
        let config = Config::default();
        let at = |packets| {
            item(
                &HostFacts { netdev_max_backlog_packets: packets, ..HostFacts::default() },
                &config,
                &[1],
                "netdev_max_backlog",
            )
        };
        assert_eq!(at(Some(10_000)).status, Status::Ok);
        let low = at(Some(1000));
        assert_eq!(low.status, Status::Warn);
        assert_eq!(low.fix.as_deref(), Some("sysctl -w net.core.netdev_max_backlog=30000"));
        assert!(at(None).detail.starts_with("could not read"));
    }

    #[test]
    fn busy_poll_is_informational() {
        let config = Config::default();
        let at = |poll, read| {
            item(
                &HostFacts { busy_poll_us: poll, busy_read_us: read, ..HostFacts::default() },
                &config,
                &[1],
                "busy poll",
            )
        };
        assert_eq!(at(Some(0), Some(0)).status, Status::Ok);
        let on = at(Some(50), Some(0));
        assert_eq!(on.status, Status::Warn);
        assert!(on.detail.contains("busy_poll=50us"), "{on:?}");
        assert!(at(Some(0), None).detail.starts_with("could not read"));
    }

    #[test]
    fn rps_masks_including_worker_cores_warn() {
        let mask = |queue: &str, cpus: Option<Vec<usize>>| RpsMask { device: "eth0".into(), queue: queue.into(), cpus };
        let config = Config::default();
        let facts = HostFacts {
            rps_masks: Some(vec![mask("rx-0", Some(vec![])), mask("rx-1", Some(vec![0, 2]))]),
            ..HostFacts::default()
        };
        assert_eq!(item(&facts, &config, &[1], "rps masks").status, Status::Ok);
        let warn = item(&facts, &config, &[2], "rps masks");
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.detail.contains("eth0/rx-1 -> [2]"), "{warn:?}");
        assert_eq!(warn.fix.as_deref(), Some("echo 1 > /sys/class/net/eth0/queues/rx-1/rps_cpus"));
        let unreadable = HostFacts { rps_masks: Some(vec![mask("rx-0", None)]), ..HostFacts::default() };
        assert!(item(&unreadable, &config, &[1], "rps masks").detail.contains("rps_cpus of eth0/rx-0"));
        assert!(item(&HostFacts::default(), &config, &[1], "rps masks").detail.starts_with("could not read"));
    }
}
