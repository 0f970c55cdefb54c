//! The verdicts of `ringfwd tune check`: [`CheckItem`], [`Status`], [`check`] and the CPU items (worker
//! cores online, isolated, frequency governor, DAMON's threads). The network items live in [`super::net`].
//!
//! Sans-IO: facts, config and worker cores in, a list of items out. It must never read the host itself.

use serde::Serialize;

use super::facts::HostFacts;
use super::net;
use super::parse::format_cpu_list;
use crate::Config;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As recommended.
    Ok,
    /// Works, but slower or less predictable than it could be; or the fact could not be read.
    Warn,
    /// ringfwd will not run as configured.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckItem {
    /// What is checked, e.g. `rmem_max`.
    pub name: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it, when there is something to do.
    pub fix: Option<String>,
}

impl CheckItem {
    /// An item with no fix.
    pub fn new(name: &'static str, status: Status, detail: impl Into<String>) -> CheckItem {
        CheckItem { name, status, detail: detail.into(), fix: None }
    }

    /// Adds the fix.
    pub fn with_fix(mut self, fix: impl Into<String>) -> CheckItem {
        self.fix = Some(fix.into());
        self
    }

    /// The item for a fact that could not be read.
    pub fn unknown(name: &'static str, what: &str) -> CheckItem {
        CheckItem::new(name, Status::Warn, format!("could not read {what}"))
    }
}

/// Judges the host facts against the config and the worker cores, one item per concern, in report order.
pub fn check(facts: &HostFacts, config: &Config, worker_cores: &[usize]) -> Vec<CheckItem> {
    let mut items = vec![worker_cores_online(facts, worker_cores), isolated(facts, worker_cores)];
    items.push(governor(facts, worker_cores));
    items.push(damon(facts, worker_cores));
    items.extend(net::check(facts, config, worker_cores));
    items.push(super::irqs::disk(facts, worker_cores));
    items
}

fn worker_cores_online(facts: &HostFacts, worker_cores: &[usize]) -> CheckItem {
    const NAME: &str = "worker cores online";
    let Some(online) = &facts.online_cpus else {
        return CheckItem::unknown(NAME, "/sys/devices/system/cpu/online");
    };
    let offline: Vec<usize> = worker_cores.iter().copied().filter(|c| !online.contains(c)).collect();
    if offline.is_empty() {
        CheckItem::new(NAME, Status::Ok, format!("workers on {:?}, all online", worker_cores))
    } else {
        CheckItem::new(NAME, Status::Fail, format!("worker cores {offline:?} are not online (online: {online:?})"))
            .with_fix(
                "bring them online (echo 1 > /sys/devices/system/cpu/cpuN/online) or change placement.worker_cores",
            )
    }
}

fn isolated(facts: &HostFacts, worker_cores: &[usize]) -> CheckItem {
    const NAME: &str = "isolated cores";
    let (Some(isolated), nohz_full) = (&facts.isolated_cpus, &facts.nohz_full_cpus) else {
        return CheckItem::unknown(NAME, "/sys/devices/system/cpu/isolated");
    };
    let not_isolated: Vec<usize> = worker_cores.iter().copied().filter(|c| !isolated.contains(c)).collect();
    let not_tickless: Vec<usize> = match nohz_full {
        Some(nohz) => worker_cores.iter().copied().filter(|c| !nohz.contains(c)).collect(),
        None => Vec::new(),
    };
    let nohz_note = if nohz_full.is_none() { "; nohz_full not available on this kernel" } else { "" };
    if not_isolated.is_empty() && not_tickless.is_empty() {
        return CheckItem::new(NAME, Status::Ok, format!("worker cores {worker_cores:?} are isolated{nohz_note}"));
    }
    let mut sorted = worker_cores.to_vec();
    sorted.sort_unstable();
    let list = format_cpu_list(&sorted);
    let mut detail = Vec::new();
    if !not_isolated.is_empty() {
        detail.push(format!("not in isolcpus: {not_isolated:?}"));
    }
    if !not_tickless.is_empty() {
        detail.push(format!("not in nohz_full: {not_tickless:?}"));
    }
    CheckItem::new(NAME, Status::Warn, format!("{}{nohz_note}; other tasks and the tick share them", detail.join("; ")))
        .with_fix(format!(
            "add to the kernel command line: isolcpus=managed_irq,domain,{list} nohz_full={list} rcu_nocbs={list}"
        ))
}

fn governor(facts: &HostFacts, worker_cores: &[usize]) -> CheckItem {
    const NAME: &str = "cpu governor";
    let unknown: Vec<usize> = worker_cores.iter().copied().filter(|c| !facts.governors.contains_key(c)).collect();
    if !unknown.is_empty() {
        return CheckItem::unknown(
            NAME,
            &format!("cpufreq/scaling_governor of cores {unknown:?} (no cpufreq driver?)"),
        );
    }
    let slow: Vec<String> = worker_cores
        .iter()
        .filter_map(|c| facts.governors.get(c).filter(|g| *g != "performance").map(|g| format!("{c}: {g}")))
        .collect();
    if slow.is_empty() {
        CheckItem::new(NAME, Status::Ok, "performance on every worker core")
    } else {
        let mut sorted = worker_cores.to_vec();
        sorted.sort_unstable();
        CheckItem::new(NAME, Status::Warn, format!("not performance: {}", slow.join(", "))).with_fix(format!(
            "cpupower -c {} frequency-set -g performance (or echo performance > \
             /sys/devices/system/cpu/cpuN/cpufreq/scaling_governor)",
            format_cpu_list(&sorted)
        ))
    }
}

/// DAMON's monitoring threads (`kdamond.N`) are unbound kernel threads that work for milliseconds at a time: on
/// the development VM `kdamond.0` ran up to 4 ms at once on the worker's core (`perf sched timehist`), and every
/// packet the worker held meanwhile waited. Warns when one may run on a worker core.
fn damon(facts: &HostFacts, worker_cores: &[usize]) -> CheckItem {
    const NAME: &str = "damon threads";
    let Some(threads) = &facts.damon_threads else {
        return CheckItem::unknown(NAME, "/proc");
    };
    if threads.is_empty() {
        return CheckItem::new(NAME, Status::Ok, "no kdamond thread running");
    }
    let on_workers: Vec<String> = threads
        .iter()
        .filter_map(|t| {
            let shared: Vec<usize> = match &t.cpus {
                Some(cpus) => worker_cores.iter().copied().filter(|c| cpus.contains(c)).collect(),
                None => worker_cores.to_vec(),
            };
            (!shared.is_empty()).then(|| format!("{} (pid {}) may run on worker cores {shared:?}", t.name, t.pid))
        })
        .collect();
    if on_workers.is_empty() {
        let names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
        return CheckItem::new(NAME, Status::Ok, format!("{} kept off the worker cores", names.join(", ")));
    }
    let others: Vec<usize> =
        facts.online_cpus.iter().flatten().copied().filter(|c| !worker_cores.contains(c)).collect();
    let pids: Vec<String> = threads.iter().map(|t| t.pid.to_string()).collect();
    let taskset = if others.is_empty() {
        "leave a core without a worker and move them there with taskset -pc".to_owned()
    } else {
        format!("for p in {}; do taskset -pc {} $p; done", pids.join(" "), format_cpu_list(&others))
    };
    CheckItem::new(
        NAME,
        Status::Warn,
        format!(
            "{}: DAMON's monitoring works for milliseconds at a time, and a worker waits meanwhile",
            on_workers.join("; ")
        ),
    )
    .with_fix(format!(
        "{taskset} (isolcpus on the worker cores keeps them off too), or stop DAMON if nothing needs it (echo off > \
         /sys/kernel/mm/damon/admin/kdamonds/N/state)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            online_cpus: Some(vec![0, 1, 2, 3]),
            isolated_cpus: Some(vec![1, 2, 3]),
            nohz_full_cpus: Some(vec![1, 2, 3]),
            governors: (0..4).map(|c| (c, "performance".to_owned())).collect(),
            ..HostFacts::default()
        }
    }

    fn item<'a>(items: &'a [CheckItem], name: &str) -> &'a CheckItem {
        items.iter().find(|i| i.name == name).unwrap_or_else(|| panic!("no {name} in {items:?}"))
    }

    fn one(facts: &HostFacts, workers: &[usize], name: &str) -> CheckItem {
        item(&check(facts, &Config::default(), workers), name).clone()
    }

    #[test]
    fn damon_threads_that_may_run_on_a_worker_core_warn() {
        use super::super::KernelThread;
        let kdamond = |cpus| KernelThread { pid: 77, name: "kdamond.0".to_owned(), cpus };
        let with = |threads| HostFacts { damon_threads: threads, ..facts() };
        assert_eq!(one(&with(Some(vec![])), &[1], "damon threads").status, Status::Ok);
        assert_eq!(one(&with(Some(vec![kdamond(Some(vec![0]))])), &[1, 2], "damon threads").status, Status::Ok);
        let shared = one(&with(Some(vec![kdamond(Some(vec![0, 1]))])), &[1, 2], "damon threads");
        assert_eq!(shared.status, Status::Warn);
        assert!(shared.detail.contains("kdamond.0 (pid 77) may run on worker cores [1]"), "{shared:?}");
        assert!(shared.fix.as_deref().unwrap().starts_with("for p in 77; do taskset -pc 0,3 $p; done"), "{shared:?}");
        let unreadable = one(&with(Some(vec![kdamond(None)])), &[2], "damon threads");
        assert!(unreadable.detail.contains("worker cores [2]"), "{unreadable:?}");
        let unknown = one(&with(None), &[1], "damon threads");
        assert!(unknown.detail.starts_with("could not read"), "{unknown:?}");
    }

    #[test]
    fn offline_worker_core_fails_and_online_is_ok() {
        assert_eq!(one(&facts(), &[1, 2], "worker cores online").status, Status::Ok);
        let bad = one(&facts(), &[1, 7], "worker cores online");
        assert_eq!(bad.status, Status::Fail);
        assert!(bad.detail.contains("[7]"), "{bad:?}");
        let unknown = one(&HostFacts::default(), &[1], "worker cores online");
        assert_eq!(unknown.status, Status::Warn);
        assert!(unknown.detail.starts_with("could not read"), "{unknown:?}");
    }

    #[test]
    fn isolation_names_the_cores_and_the_command_line() {
        assert_eq!(one(&facts(), &[1, 2, 3], "isolated cores").status, Status::Ok);
        let mut f = facts();
        f.isolated_cpus = Some(vec![3]);
        f.nohz_full_cpus = None;
        let warn = one(&f, &[2, 3], "isolated cores");
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.detail.contains("not in isolcpus: [2]") && warn.detail.contains("nohz_full not available"));
        assert_eq!(
            warn.fix.as_deref(),
            Some("add to the kernel command line: isolcpus=managed_irq,domain,2-3 nohz_full=2-3 rcu_nocbs=2-3")
        );
        let mut f = facts();
        f.nohz_full_cpus = Some(vec![]);
        assert!(one(&f, &[1], "isolated cores").detail.contains("not in nohz_full: [1]"));
        f.isolated_cpus = None;
        assert_eq!(one(&f, &[1], "isolated cores").status, Status::Warn);
    }

    #[test]
    fn governor_other_than_performance_warns_with_the_command() {
        assert_eq!(one(&facts(), &[1, 2], "cpu governor").status, Status::Ok);
        let mut f = facts();
        f.governors.insert(2, "powersave".into());
        let warn = one(&f, &[1, 2], "cpu governor");
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.detail.contains("2: powersave"), "{warn:?}");
        assert!(warn.fix.unwrap().starts_with("cpupower -c 1-2 frequency-set -g performance"));
        f.governors.remove(&1);
        let unknown = one(&f, &[1, 2], "cpu governor");
        assert!(unknown.detail.starts_with("could not read") && unknown.detail.contains("[1]"), "{unknown:?}");
    }

    #[test]
    fn report_has_every_item_once() {
        let names: Vec<&str> = check(&facts(), &Config::default(), &[1]).iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            [
                "worker cores online",
                "isolated cores",
                "cpu governor",
                "damon threads",
                "rmem_max",
                "wmem_max",
                "netdev_max_backlog",
                "busy poll",
                "nic irqs on worker cores",
                "rps masks",
                "disk irqs on worker cores"
            ]
        );
    }

    #[test]
    fn status_serializes_lowercase() {
        let json = serde_json::to_string(&CheckItem::new("x", Status::Warn, "d")).unwrap();
        assert_eq!(json, r#"{"name":"x","status":"warn","detail":"d","fix":null}"#);
    }
}
