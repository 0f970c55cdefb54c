//! Core placement: which CPU cores run data-plane workers and which run the control plane.
//!
//! Owns [`Placement`] (`[placement]`), its static checks ([`Placement::validate`]), the packet
//! memory bound ([`check_pool_fits`]) and the resolution of the config into a concrete worker
//! core list against the host's [`Topology`] ([`Placement::resolve`],
//! [`Config::resolve_placement`]). The topology is read by [`topology`] under a root the caller
//! gives; the rules here must never query the host themselves, so they stay testable.

mod topology;
mod worker_cores;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use topology::{read_topology, Topology};
pub use worker_cores::WorkerCores;

use crate::error::ConfigError;
use crate::schema::{Config, Limits};

/// Core pinning of the workers and the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Placement {
    /// Cores that each run one data-plane worker: `"auto"` or a list such as `[1, 2]`.
    pub worker_cores: WorkerCores,
    /// Cores the control-plane threads are pinned to; empty means not pinned.
    pub control_cores: Vec<usize>,
    /// NUMA node every worker core must be on (and `"auto"` picks from); `None`: any node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
}

impl Placement {
    /// Checks what can be checked without knowing the host: an explicit worker list is
    /// non-empty and has no duplicates, `control_cores` has no duplicates and shares no core
    /// with the worker list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let WorkerCores::List(cores) = &self.worker_cores {
            if cores.is_empty() {
                return Err(ConfigError::invalid(
                    "placement.worker_cores",
                    "[]",
                    "needs at least one core, or \"auto\"",
                ));
            }
            check_no_duplicates("placement.worker_cores", cores)?;
        }
        check_no_duplicates("placement.control_cores", &self.control_cores)?;
        if let WorkerCores::List(cores) = &self.worker_cores {
            if let Some(core) = self.control_cores.iter().find(|c| cores.contains(c)) {
                return Err(ConfigError::invalid(
                    "placement.control_cores",
                    core,
                    "is also in placement.worker_cores; a worker core must not be shared",
                ));
            }
        }
        Ok(())
    }

    /// Resolves the worker cores on a host with `topology`, and checks that their packet pools
    /// fit `limits.max_pool_bytes_total` ([`check_pool_fits`]).
    ///
    /// `"auto"` with `numa_node = N`: every online core of node N, less the node's lowest core
    /// when `control_cores` is empty and the node has two or more (it is left for the control
    /// plane), less `control_cores`. `"auto"` without `numa_node`: every online core less the
    /// lowest when there are two or more, less `control_cores`. An explicit list is kept in order.
    ///
    /// Fails, naming the key and the value, when [`Placement::validate`] fails, `numa_node` is
    /// not a node of the host (listing the nodes), a listed worker or control core is not online,
    /// a listed worker core is on another node than `numa_node` (naming the core's node),
    /// `"auto"` leaves no core for workers, or the pools do not fit.
    pub fn resolve(&self, topology: &Topology, config: &Config) -> Result<Vec<usize>, ConfigError> {
        let cores = self.resolve_cores(topology)?;
        check_pool_fits(&cores, config, &config.limits)?;
        Ok(cores)
    }

    /// Resolves the worker cores against `available` (the host's usable cores, any order),
    /// taken as one NUMA node; the pool bound is not checked. Kept for callers that do not read
    /// the topology: with `numa_node` set it fails naming `placement.numa_node`, since `available`
    /// cannot say which node a core is on. Prefer [`Config::resolve_placement`].
    pub fn resolve_worker_cores(&self, available: &[usize]) -> Result<Vec<usize>, ConfigError> {
        if let Some(node) = self.numa_node {
            return Err(ConfigError::invalid(
                "placement.numa_node",
                node,
                "needs the host's NUMA topology; this caller only knows the available cores \
                 (resolve with Config::resolve_placement)",
            ));
        }
        self.resolve_cores(&Topology::single_node(available))
    }

    fn resolve_cores(&self, topology: &Topology) -> Result<Vec<usize>, ConfigError> {
        self.validate()?;
        let online = topology.online_cpus();
        let online_text = format!("{online:?}");
        let node_cpus = match self.numa_node {
            Some(node) => Some(topology.node_cpus(node).ok_or_else(|| {
                ConfigError::invalid(
                    "placement.numa_node",
                    node,
                    format!("no such NUMA node on this host (nodes: {:?})", topology.nodes()),
                )
            })?),
            None => None,
        };
        for core in &self.control_cores {
            if topology.node_of(*core).is_none() {
                return Err(ConfigError::invalid(
                    "placement.control_cores",
                    core,
                    format!("core is not available on this host (available: {online_text})"),
                ));
            }
        }
        match &self.worker_cores {
            WorkerCores::List(cores) => {
                for core in cores {
                    let Some(core_node) = topology.node_of(*core) else {
                        return Err(ConfigError::invalid(
                            "placement.worker_cores",
                            core,
                            format!("core is not available on this host (available: {online_text})"),
                        ));
                    };
                    if let (Some(node), Some(node_cpus)) = (self.numa_node, node_cpus) {
                        if core_node != node {
                            return Err(ConfigError::invalid(
                                "placement.worker_cores",
                                core,
                                format!(
                                    "core is on NUMA node {core_node}, not on placement.numa_node = {node} \
                                     (node {node} cores: {node_cpus:?}); workers must not span nodes"
                                ),
                            ));
                        }
                    }
                }
                Ok(cores.clone())
            }
            WorkerCores::Auto => {
                let (candidates, skip_lowest) = match node_cpus {
                    Some(cpus) => (cpus.to_vec(), self.control_cores.is_empty() && cpus.len() >= 2),
                    None => (online.clone(), online.len() >= 2),
                };
                let cores: Vec<usize> = candidates
                    .iter()
                    .skip(usize::from(skip_lowest))
                    .filter(|c| !self.control_cores.contains(c))
                    .copied()
                    .collect();
                if cores.is_empty() {
                    let from = match self.numa_node {
                        Some(node) => format!("NUMA node {node} cores: {candidates:?}"),
                        None => format!("available: {online_text}"),
                    };
                    return Err(ConfigError::invalid(
                        "placement.worker_cores",
                        "\"auto\"",
                        format!("no core left for workers ({from}, control_cores: {:?})", self.control_cores),
                    ));
                }
                Ok(cores)
            }
        }
    }
}

impl Config {
    /// Resolves `[placement]` on a host with `topology` against this config's pool and limits:
    /// [`Placement::resolve`]. `topology` comes from [`read_topology`], restricted with
    /// [`Topology::restricted_to`] to the process's usable cores where that matters.
    pub fn resolve_placement(&self, topology: &Topology) -> Result<Vec<usize>, ConfigError> {
        self.placement.resolve(topology, self)
    }
}

/// Checks that the packet memory of `worker_cores.len()` workers,
/// `workers × pool.buffers_per_worker × pool.buffer_bytes`, fits `limits.max_pool_bytes_total`;
/// the error names `placement.worker_cores` with the worker count, the bytes needed and the limit.
pub fn check_pool_fits(worker_cores: &[usize], config: &Config, limits: &Limits) -> Result<(), ConfigError> {
    let pool = &config.pool;
    let buffers_per_worker = config.sizes(worker_cores.len()).buffers_per_worker;
    let workers = worker_cores.len() as u128;
    let needed_bytes = workers * u128::from(buffers_per_worker) * u128::from(pool.buffer_bytes);
    if needed_bytes <= u128::from(limits.max_pool_bytes_total) {
        return Ok(());
    }
    Err(ConfigError::invalid(
        "placement.worker_cores",
        format!("{worker_cores:?}"),
        format!(
            "{workers} workers × pool.buffers_per_worker {} × pool.buffer_bytes {} = {needed_bytes} bytes of \
             packet memory, more than limits.max_pool_bytes_total = {}: use fewer workers or smaller pools, \
             or raise the limit",
            buffers_per_worker, pool.buffer_bytes, limits.max_pool_bytes_total
        ),
    ))
}

fn check_no_duplicates(key: &str, cores: &[usize]) -> Result<(), ConfigError> {
    let mut seen = BTreeSet::new();
    for (i, core) in cores.iter().enumerate() {
        if !seen.insert(core) {
            return Err(ConfigError::invalid(format!("{key}[{i}]"), core, "core listed twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
