//! WebAssembly plugins, host side: users' own packet logic, compiled to WebAssembly, run inline in the workers'
//! chains under fuel and memory limits.
//!
//! - [`abi`]: what a module exports and what each call means (version 1): the plugin author's contract.
//! - [`load`]: compiling and checking a module against the ABI, once, in the control plane ([`Engine::load`]).
//! - [`instance`]: one instance: its store, its entry points, a call with the fuel budget.
//! - [`link`]: the chain member, the per-worker instance table, and [`register`] (a loaded plugin joins the
//!   native registry, so chains name it in the config and the API like any plugin).
//! - [`offload`]: async mode: the plugin's one instance on its own thread, the workers' bounded lanes to it and
//!   back, and the chain member that hands it copies.
//! - [`stats`]: per-instance counters and their sum.
//!
//! A loaded plugin (either mode) takes the plugins' position in each chain (see [`crate::core::interceptor::plugin`]). Runs
//! with the engine's safe API only. Must never read the config (the control plane resolves it into
//! [`WasmPluginSpec`]) and never give a module an import: ABI v1 modules reach nothing but their own memory.
#![forbid(unsafe_code)]

pub mod abi;
pub mod instance;
pub mod link;
pub mod load;
pub mod offload;
pub mod stats;

pub use link::register;
pub use load::{
    check_async, check_limits, AsyncPass, AsyncSettings, Engine, FailurePath, LimitError, LoadError, PluginMode,
    WasmPlugin, WasmPluginSpec, DEFAULT_ASYNC_QUEUE_PACKETS, DEFAULT_FUEL_PER_CALL, DEFAULT_MEMORY_BYTES,
    MAX_ASYNC_QUEUE_PACKETS, MAX_ASYNC_WAKE_DELAY_US, MAX_FUEL_PER_CALL, MAX_MEMORY_BYTES, MIN_MEMORY_BYTES,
};
pub use stats::WasmPluginStats;

#[cfg(test)]
mod tests;
