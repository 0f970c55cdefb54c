//! Host readiness for `ringfwd tune check`: read the host's tuning facts ([`read_host_facts`]) and judge
//! them against the config and the worker cores ([`check`]).
//!
//! The reader only reads files under a root it is given; the evaluator is sans-IO (facts in, report out),
//! so every verdict is unit-tested on fake facts. Nothing here changes the host: the fixes are text for the
//! operator (see `tuning/deploy/`).

mod check;
mod facts;
mod irqs;
mod net;
mod parse;

pub use check::{check, CheckItem, Status};
pub(crate) use facts::read_cpus;
pub use facts::{read_host_facts, HostFacts, KernelThread, RpsMask};
pub use parse::{format_cpu_list, format_cpu_mask, parse_cpu_list, parse_cpu_mask, parse_interrupts, InterruptRow};
