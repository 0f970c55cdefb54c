//! [`WorkerCores`]: the worker core set as written in the config, and its TOML form (`"auto"`
//! or an array of core numbers).
//!
//! This module owns only the value and its serde form; it must never resolve cores against a
//! host (that is [`super::Placement::resolve`]).

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The worker core set as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WorkerCores {
    /// One worker per core of the chosen NUMA node (or of the host) except one core left for
    /// the control plane; see [`super::Placement::resolve`] for the exact rule.
    #[default]
    Auto,
    /// Exactly these cores, one worker each, in this order.
    List(Vec<usize>),
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
