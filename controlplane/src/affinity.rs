//! Where the process's threads run: the worker cores, and the control threads never on one of them.
//!
//! Owns resolving `[placement]` against this host ([`worker_cores`]: the CPUs this process may run on, grouped by
//! NUMA node as sysfs describes them — the data plane is handed the result and never reads the host), the choice of the control cores (the configured `placement.control_cores`, else every core the
//! process may run on that is not a worker's) and confining the calling thread to them before any other
//! thread exists, so every thread started afterwards (the control runtime, the recorder, webhook and
//! telemetry tasks' threads) inherits the mask; each worker then pins itself to its own core. Refuses a
//! spinning worker that would share its core with the control plane (it would starve it).
//!
//! Must never be called after threads were started (they would keep the old mask), nor pin a worker.

#![forbid(unsafe_code)]

use ringfwd_tuning::{Config, ConfigError, IdleStrategy};
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// Why the control threads could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum AffinityError {
    /// The placement does not fit this host.
    #[error(transparent)]
    Placement(#[from] ConfigError),
    /// The allowed cores could not be read or the mask not set.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Every allowed core runs a worker and the workers spin: the control plane would never run.
    #[error(
        "idle.strategy = \"spin\": every core this process may run on ({allowed:?}) has a worker, so a spinning \
         worker would starve the control plane; leave a core free (placement.worker_cores, placement.control_cores) \
         or use idle.strategy = \"spin_then_sleep\" or \"sleep\""
    )]
    SpinStarves {
        /// The cores the process may run on.
        allowed: Vec<usize>,
    },
}

/// The control cores chosen for a set of allowed and worker cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlCores {
    /// Cores the control threads may run on.
    pub cores: Vec<usize>,
    /// True when no core was left without a worker, so the control threads share the workers' cores.
    pub shared_with_workers: bool,
}

/// The control cores: `configured` when given (validation keeps them off the workers), else the allowed
/// cores that are not workers, else (every allowed core has a worker) all allowed cores, flagged as shared.
pub fn control_cores(allowed: &[usize], workers: &[usize], configured: &[usize]) -> ControlCores {
    if !configured.is_empty() {
        return ControlCores { cores: configured.to_vec(), shared_with_workers: false };
    }
    let free: Vec<usize> = allowed.iter().copied().filter(|c| !workers.contains(c)).collect();
    if free.is_empty() {
        ControlCores { cores: allowed.to_vec(), shared_with_workers: true }
    } else {
        ControlCores { cores: free, shared_with_workers: false }
    }
}

/// The cores the workers of `config` are pinned to on this host: `[placement]` resolved against the CPUs this
/// process may run on, grouped by NUMA node as sysfs describes them, with the pool checked against
/// `limits.max_pool_bytes_total` for that many workers. What the daemon does first, and what `ringfwd --check-config`
/// checks, so that a config it passes does not fail to start on placement.
pub fn worker_cores(config: &Config) -> Result<Vec<usize>, AffinityError> {
    let topology = ringfwd_tuning::read_topology(std::path::Path::new("/")).restricted_to(&allowed_cores()?);
    Ok(config.resolve_placement(&topology)?)
}

/// The cores the calling thread may run on.
fn allowed_cores() -> Result<Vec<usize>, AffinityError> {
    let mask = sched_getaffinity(None)
        .map_err(|e| AffinityError::Io { what: "reading the allowed cores", source: e.into() })?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| mask.is_set(c)).collect())
}

/// Confines the calling thread (call it first thing, before any other thread starts) to the control cores
/// for `workers`; returns them.
pub fn confine_control_threads(
    workers: &[usize],
    configured: &[usize],
    idle: IdleStrategy,
) -> Result<ControlCores, AffinityError> {
    let allowed = allowed_cores()?;
    let chosen = control_cores(&allowed, workers, configured);
    if chosen.shared_with_workers && idle == IdleStrategy::Spin {
        return Err(AffinityError::SpinStarves { allowed });
    }
    let mut set = CpuSet::new();
    for &core in chosen.cores.iter().filter(|&&c| c < CpuSet::MAX_CPU) {
        set.set(core);
    }
    sched_setaffinity(None, &set)
        .map_err(|e| AffinityError::Io { what: "confining the control threads", source: e.into() })?;
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_plane_takes_the_cores_without_workers() {
        let c = control_cores(&[0, 1, 2, 3], &[2, 3], &[]);
        assert_eq!(c, ControlCores { cores: vec![0, 1], shared_with_workers: false });
    }

    #[test]
    fn configured_control_cores_win() {
        let c = control_cores(&[0, 1, 2, 3], &[2, 3], &[1]);
        assert_eq!(c, ControlCores { cores: vec![1], shared_with_workers: false });
    }

    #[test]
    fn with_a_worker_on_every_core_the_control_plane_shares_and_says_so() {
        let c = control_cores(&[0, 1], &[0, 1], &[]);
        assert_eq!(c, ControlCores { cores: vec![0, 1], shared_with_workers: true });
    }
}
