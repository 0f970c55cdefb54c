//! The host's CPU topology as placement needs it: which online CPUs belong to which NUMA node.
//!
//! Owns [`Topology`] and [`read_topology`], which reads `/sys/devices/system/cpu/online` and
//! `/sys/devices/system/node/node*/cpulist` under a root it is given (`/` in production, a fake
//! tree in tests). A host without `/sys/devices/system/node` is one node (0) holding every
//! online CPU. This module only reads; it must never write to `/sys`, nor decide placement.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::host::read_cpus;

/// Online CPUs grouped by NUMA node; every CPU list is sorted and holds online CPUs only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    nodes: BTreeMap<u32, Vec<usize>>,
}

impl Topology {
    /// One node (0) holding `cpus` (any order, duplicates ignored): a host without NUMA, or a
    /// caller that only knows the usable CPUs.
    pub fn single_node(cpus: &[usize]) -> Topology {
        Topology::from_nodes([(0, cpus.to_vec())])
    }

    /// A topology from `(node, cpus)` pairs; a node given twice holds the union of its lists.
    pub fn from_nodes(nodes: impl IntoIterator<Item = (u32, Vec<usize>)>) -> Topology {
        let mut sets: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
        for (node, cpus) in nodes {
            sets.entry(node).or_default().extend(cpus);
        }
        Topology { nodes: sets.into_iter().map(|(node, cpus)| (node, cpus.into_iter().collect())).collect() }
    }

    /// The NUMA node numbers, ascending.
    pub fn nodes(&self) -> Vec<u32> {
        self.nodes.keys().copied().collect()
    }

    /// The online CPUs of `node`, ascending; `None` when the host has no such node.
    pub fn node_cpus(&self, node: u32) -> Option<&[usize]> {
        self.nodes.get(&node).map(Vec::as_slice)
    }

    /// The node `cpu` belongs to; `None` when the CPU is not online.
    pub fn node_of(&self, cpu: usize) -> Option<u32> {
        self.nodes.iter().find(|(_, cpus)| cpus.binary_search(&cpu).is_ok()).map(|(node, _)| *node)
    }

    /// Every online CPU, ascending.
    pub fn online_cpus(&self) -> Vec<usize> {
        let all: BTreeSet<usize> = self.nodes.values().flatten().copied().collect();
        all.into_iter().collect()
    }

    /// The same nodes holding only the CPUs also in `cpus` (e.g. the process's affinity mask);
    /// a node left without CPUs stays, empty.
    pub fn restricted_to(&self, cpus: &[usize]) -> Topology {
        let keep: BTreeSet<usize> = cpus.iter().copied().collect();
        let nodes = self
            .nodes
            .iter()
            .map(|(node, list)| (*node, list.iter().copied().filter(|c| keep.contains(c)).collect()))
            .collect();
        Topology { nodes }
    }
}

/// Reads the topology under `root` (`/` in production). Never fails: node CPU lists are cut to
/// the online CPUs; when `cpu/online` cannot be read the nodes' CPUs count as online; when no
/// node can be read the host is one node (0) of the online CPUs; when nothing can be read the
/// topology is empty (and placement then fails naming the key, with no core available).
pub fn read_topology(root: &Path) -> Topology {
    let online = read_cpus(root, "sys/devices/system/cpu/online");
    let node_dir = root.join("sys/devices/system/node");
    let mut nodes = Vec::new();
    for entry in std::fs::read_dir(&node_dir).into_iter().flatten().filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(node) = name.strip_prefix("node").and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(cpus) = read_cpus(root, &format!("sys/devices/system/node/{name}/cpulist")) {
            nodes.push((node, cpus));
        }
    }
    if nodes.is_empty() {
        return Topology::single_node(&online.unwrap_or_default());
    }
    let topology = Topology::from_nodes(nodes);
    match online {
        Some(online) => topology.restricted_to(&online),
        None => topology,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fake_root::write;

    #[test]
    fn reads_two_nodes_and_drops_offline_cpus() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "sys/devices/system/cpu/online", "0-2,4-7\n");
        write(root, "sys/devices/system/node/node0/cpulist", "0-3\n");
        write(root, "sys/devices/system/node/node1/cpulist", "4-7\n");
        write(root, "sys/devices/system/node/possible", "0-1\n");
        write(root, "sys/devices/system/node/nodeX/cpulist", "9\n");
        let topology = read_topology(root);
        assert_eq!(topology.nodes(), [0, 1]);
        assert_eq!(topology.node_cpus(0), Some(&[0, 1, 2][..]), "CPU 3 is offline");
        assert_eq!(topology.node_cpus(1), Some(&[4, 5, 6, 7][..]));
        assert_eq!(topology.node_of(5), Some(1));
        assert_eq!(topology.node_of(3), None);
        assert_eq!(topology.online_cpus(), [0, 1, 2, 4, 5, 6, 7]);
    }

    #[test]
    fn a_host_without_node_dir_is_one_node_of_the_online_cpus() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "sys/devices/system/cpu/online", "0-3\n");
        let topology = read_topology(dir.path());
        assert_eq!(topology, Topology::single_node(&[3, 2, 1, 0, 1]));
        assert_eq!(topology.node_cpus(0), Some(&[0, 1, 2, 3][..]));
    }

    #[test]
    fn unreadable_online_trusts_the_nodes_and_empty_root_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "sys/devices/system/node/node1/cpulist", "2-3\n");
        assert_eq!(read_topology(dir.path()).online_cpus(), [2, 3]);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(read_topology(empty.path()).online_cpus(), Vec::<usize>::new());
    }

    #[test]
    fn memory_only_node_stays_empty_and_restriction_keeps_nodes() {
        let topology = Topology::from_nodes([(0, vec![0, 1]), (1, vec![]), (0, vec![2])]);
        assert_eq!(topology.node_cpus(0), Some(&[0, 1, 2][..]));
        assert_eq!(topology.node_cpus(1), Some(&[][..]));
        let cut = topology.restricted_to(&[1, 9]);
        assert_eq!(cut.nodes(), [0, 1]);
        assert_eq!(cut.online_cpus(), [1]);
    }
}
