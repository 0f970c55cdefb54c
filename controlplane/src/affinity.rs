//! Where the process's own threads may run: never on a worker core.
//!
//! Owns the choice of the control cores (the configured `placement.control_cores`, else every core the
//! process may run on that is not a worker's) and confining the calling thread to them before any other
//! thread exists, so every thread started afterwards (the control runtime, the recorder, webhook and
//! telemetry tasks' threads) inherits the mask; each worker then pins itself to its own core. Refuses a
//! spinning worker that would share its core with the control plane (it would starve it).
//!
//! Must never be called after threads were started (they would keep the old mask), nor pin a worker.

#![forbid(unsafe_code)]

use ringfwd_tuning::IdleStrategy;
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// Why the control threads could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum AffinityError {
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

/// Confines the calling thread (call it first thing, before any other thread starts) to the control cores
/// for `workers`; returns them.
pub fn confine_control_threads(
    workers: &[usize],
    configured: &[usize],
    idle: IdleStrategy,
) -> Result<ControlCores, AffinityError> {
    let mask = sched_getaffinity(None)
        .map_err(|e| AffinityError::Io { what: "reading the allowed cores", source: e.into() })?;
    let allowed: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| mask.is_set(c)).collect();
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
