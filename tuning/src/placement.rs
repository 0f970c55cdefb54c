//! Core placement: which CPU cores run data-plane workers and which run the control plane.
//!
//! Owns [`Placement`], [`WorkerCores`] (TOML `"auto"` or an array of core numbers), their static
//! checks and [`Placement::resolve_worker_cores`], which turns the config into a concrete core
//! list against the cores the host actually has. It must never query the host itself: the
//! caller passes the available cores in, so this stays testable.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ConfigError;

/// Core pinning of the workers and the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Placement {
    /// Cores that each run one data-plane worker: `"auto"` or a list such as `[1, 2]`.
    pub worker_cores: WorkerCores,
    /// Cores the control-plane threads are pinned to; empty means not pinned.
    pub control_cores: Vec<usize>,
}

/// The worker core set as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WorkerCores {
    /// Every available core except the lowest when there are two or more, else the only one;
    /// cores listed in `control_cores` are left out.
    #[default]
    Auto,
    /// Exactly these cores, one worker each, in this order.
    List(Vec<usize>),
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

    /// Resolves the worker cores against `available` (the host's usable cores, any order).
    ///
    /// Fails, naming the key and the core, when a listed worker or control core is not
    /// available, when `"auto"` leaves no core for workers, or when [`Placement::validate`]
    /// fails.
    pub fn resolve_worker_cores(&self, available: &[usize]) -> Result<Vec<usize>, ConfigError> {
        self.validate()?;
        let available: BTreeSet<usize> = available.iter().copied().collect();
        let available_text = format!("{:?}", available.iter().collect::<Vec<_>>());
        for core in &self.control_cores {
            if !available.contains(core) {
                return Err(ConfigError::invalid(
                    "placement.control_cores",
                    core,
                    format!("core is not available on this host (available: {available_text})"),
                ));
            }
        }
        match &self.worker_cores {
            WorkerCores::List(cores) => {
                if let Some(core) = cores.iter().find(|c| !available.contains(c)) {
                    return Err(ConfigError::invalid(
                        "placement.worker_cores",
                        core,
                        format!("core is not available on this host (available: {available_text})"),
                    ));
                }
                Ok(cores.clone())
            }
            WorkerCores::Auto => {
                let skip_lowest = usize::from(available.len() >= 2);
                let cores: Vec<usize> =
                    available.iter().skip(skip_lowest).filter(|c| !self.control_cores.contains(c)).copied().collect();
                if cores.is_empty() {
                    return Err(ConfigError::invalid(
                        "placement.worker_cores",
                        "\"auto\"",
                        format!(
                            "no core left for workers (available: {available_text}, \
                             control_cores: {:?})",
                            self.control_cores
                        ),
                    ));
                }
                Ok(cores)
            }
        }
    }
}

fn check_no_duplicates(key: &str, cores: &[usize]) -> Result<(), ConfigError> {
    for (i, core) in cores.iter().enumerate() {
        if cores[..i].contains(core) {
            return Err(ConfigError::invalid(format!("{key}[{i}]"), core, "core listed twice"));
        }
    }
    Ok(())
}

const AUTO: &str = "auto";

impl Serialize for WorkerCores {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WorkerCores::Auto => serializer.serialize_str(AUTO),
            WorkerCores::List(cores) => cores.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for WorkerCores {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WorkerCoresVisitor)
    }
}

struct WorkerCoresVisitor;

impl<'de> Visitor<'de> for WorkerCoresVisitor {
    type Value = WorkerCores;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"auto\" or an array of core numbers")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<WorkerCores, E> {
        if value == AUTO {
            Ok(WorkerCores::Auto)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(value), &self))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WorkerCores, A::Error> {
        let mut cores = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(core) = seq.next_element::<usize>()? {
            cores.push(core);
        }
        Ok(WorkerCores::List(cores))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(cores: &[usize]) -> Placement {
        Placement { worker_cores: WorkerCores::List(cores.to_vec()), control_cores: Vec::new() }
    }

    fn key_of(result: Result<impl fmt::Debug, ConfigError>) -> String {
        result.unwrap_err().key().unwrap_or("<no key>").to_owned()
    }

    #[test]
    fn auto_skips_the_lowest_core_when_there_are_two_or_more() {
        let auto = Placement::default();
        assert_eq!(auto.resolve_worker_cores(&[3, 0, 2, 1]).unwrap(), [1, 2, 3]);
        assert_eq!(auto.resolve_worker_cores(&[0, 1]).unwrap(), [1]);
        assert_eq!(auto.resolve_worker_cores(&[5]).unwrap(), [5]);
    }

    #[test]
    fn auto_leaves_out_control_cores() {
        let p = Placement { worker_cores: WorkerCores::Auto, control_cores: vec![2] };
        assert_eq!(p.resolve_worker_cores(&[0, 1, 2, 3]).unwrap(), [1, 3]);
        let p = Placement { worker_cores: WorkerCores::Auto, control_cores: vec![1] };
        assert_eq!(key_of(p.resolve_worker_cores(&[0, 1])), "placement.worker_cores");
    }

    #[test]
    fn auto_with_no_cores_fails() {
        let err = Placement::default().resolve_worker_cores(&[]).unwrap_err();
        assert_eq!(err.key(), Some("placement.worker_cores"));
    }

    #[test]
    fn explicit_list_is_kept_in_order() {
        assert_eq!(list(&[2, 1]).resolve_worker_cores(&[0, 1, 2]).unwrap(), [2, 1]);
    }

    #[test]
    fn unavailable_worker_core_names_key_and_core() {
        let err = list(&[1, 7]).resolve_worker_cores(&[0, 1]).unwrap_err();
        assert_eq!(err.key(), Some("placement.worker_cores"));
        assert!(err.to_string().contains("= 7:"), "{err}");
    }

    #[test]
    fn unavailable_control_core_names_key_and_core() {
        let p = Placement { worker_cores: WorkerCores::List(vec![1]), control_cores: vec![9] };
        let err = p.resolve_worker_cores(&[0, 1]).unwrap_err();
        assert_eq!(err.key(), Some("placement.control_cores"));
        assert!(err.to_string().contains("= 9:"), "{err}");
    }

    #[test]
    fn empty_worker_list_is_invalid() {
        assert_eq!(key_of(list(&[]).validate()), "placement.worker_cores");
    }

    #[test]
    fn duplicate_worker_core_is_invalid() {
        assert_eq!(key_of(list(&[1, 2, 1]).validate()), "placement.worker_cores[2]");
    }

    #[test]
    fn duplicate_control_core_is_invalid() {
        let p = Placement { worker_cores: WorkerCores::Auto, control_cores: vec![0, 0] };
        assert_eq!(key_of(p.validate()), "placement.control_cores[1]");
    }

    #[test]
    fn control_cores_must_be_disjoint_from_worker_cores() {
        let p = Placement { worker_cores: WorkerCores::List(vec![1, 2]), control_cores: vec![0, 2] };
        let err = p.validate().unwrap_err();
        assert_eq!(err.key(), Some("placement.control_cores"));
        assert!(err.to_string().contains("= 2:"), "{err}");
    }

    #[test]
    fn worker_cores_toml_forms() {
        let auto: Placement = toml::from_str("worker_cores = \"auto\"").unwrap();
        assert_eq!(auto.worker_cores, WorkerCores::Auto);
        let listed: Placement = toml::from_str("worker_cores = [1, 3]").unwrap();
        assert_eq!(listed.worker_cores, WorkerCores::List(vec![1, 3]));
        let bad = toml::from_str::<Placement>("worker_cores = \"all\"").unwrap_err();
        assert!(bad.to_string().contains("worker_cores"), "{bad}");
        for p in [auto, listed] {
            let text = toml::to_string(&p).unwrap();
            assert_eq!(toml::from_str::<Placement>(&text).unwrap(), p);
        }
    }
}
