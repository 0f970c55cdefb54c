//! Loading a WebAssembly plugin: compile, check it against the ABI, and hand out the shared handle workers
//! instantiate from.
//!
//! Owns [`WasmPluginSpec`] (what the control plane resolved from the config: name, module bytes, limits, failure
//! path, parameters), [`Engine`] (the one compiler and runtime of the process), [`WasmPlugin`] (a loaded plugin:
//! its compiled module, its limits and its counters) and [`LoadError`]. A module is refused here, before any
//! worker sees it, when it does not validate, imports anything, lacks an export or has one of the wrong type, is
//! written for another ABI version, exports a buffer outside its memory, or refuses its parameters: loading
//! instantiates it once, exactly as a worker will. Must never run on a worker.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::abi::{self, ParamsError};
use super::instance::{self, Instance};
use super::offload::Runner;
use super::stats::{Counters, WasmPluginStats};
pub use crate::core::interceptor::attach::{AsyncPass, FailurePath};

/// The smallest per-instance memory limit: one WebAssembly page.
pub const MIN_MEMORY_BYTES: u64 = 64 * 1024;
/// The largest per-instance memory limit.
pub const MAX_MEMORY_BYTES: u64 = 1 << 30;
/// The default per-instance memory limit.
pub const DEFAULT_MEMORY_BYTES: u64 = 16 << 20;
/// The largest fuel budget per call (about ten milliseconds of work).
pub const MAX_FUEL_PER_CALL: u64 = 10_000_000;
/// The default fuel budget per call.
pub const DEFAULT_FUEL_PER_CALL: u64 = 100_000;

/// The default number of packets an async plugin's queue holds, in each direction, per worker.
pub const DEFAULT_ASYNC_QUEUE_PACKETS: u32 = 1024;
/// The most packets an async plugin's queue may hold, in each direction, per worker.
pub const MAX_ASYNC_QUEUE_PACKETS: u32 = 65_536;
/// The longest an async plugin's thread may wait, once woken, before it takes the copies (microseconds).
pub const MAX_ASYNC_WAKE_DELAY_US: u32 = 100_000;

/// How a plugin runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PluginMode {
    /// Inline on the worker, in the chain: its verdict decides the packet's fate, it may rewrite the packet.
    #[default]
    Sync,
    /// On its own thread, off the worker cores: the chain hands it a copy of each packet through a bounded queue
    /// and goes on (see [`AsyncSettings`]); what it emits comes back to the worker later.
    Async(AsyncSettings),
}

/// An async plugin's queues and what the chain does with the packet it handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncSettings {
    /// Packets each of its queues holds per worker (copies toward the plugin, packets back):
    /// 1..=[`MAX_ASYNC_QUEUE_PACKETS`]. A full queue drops and counts; the worker never waits.
    pub queue_packets: u32,
    /// What the chain does with the packet once a copy is queued.
    pub pass: AsyncPass,
    /// Microseconds the thread waits, once a worker woke it, before it takes the copies
    /// (0..=[`MAX_ASYNC_WAKE_DELAY_US`]; 0: at once): one wake-up then serves every copy of that time, at the cost of
    /// that much delay. A plugin timer due sooner ends the wait.
    pub wake_delay_us: u32,
}

impl Default for AsyncSettings {
    fn default() -> AsyncSettings {
        AsyncSettings { queue_packets: DEFAULT_ASYNC_QUEUE_PACKETS, pass: AsyncPass::Forward, wake_delay_us: 0 }
    }
}

/// A plugin to load, as the control plane resolved it.
#[derive(Clone, PartialEq, Eq)]
pub struct WasmPluginSpec {
    /// Its name in chains (the registry's rules).
    pub name: String,
    /// The module: WebAssembly binary or WAT text.
    pub module: Vec<u8>,
    /// Where the module came from, for messages (a path).
    pub origin: String,
    /// It may run in streams' ingress chains.
    pub ingress: bool,
    /// It may run in subscriptions' egress chains.
    pub egress: bool,
    /// What packets do once its instance is disabled.
    pub on_failure: FailurePath,
    /// Fuel per call, 1..=[`MAX_FUEL_PER_CALL`].
    pub fuel_per_call: u64,
    /// The instance's memory limit, [`MIN_MEMORY_BYTES`]..=[`MAX_MEMORY_BYTES`].
    pub memory_max_bytes: u64,
    /// Its parameters (see [`abi::params_text`]).
    pub params: BTreeMap<String, String>,
    /// Inline on the workers, or on its own thread.
    pub mode: PluginMode,
}

impl fmt::Debug for WasmPluginSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmPluginSpec")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("module_bytes", &self.module.len())
            .field("ingress", &self.ingress)
            .field("egress", &self.egress)
            .field("on_failure", &self.on_failure)
            .field("fuel_per_call", &self.fuel_per_call)
            .field("memory_max_bytes", &self.memory_max_bytes)
            .field("params", &self.params)
            .field("mode", &self.mode)
            .finish()
    }
}

/// A limit of a spec outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `fuel_per_call` out of range.
    #[error("fuel_per_call {0} is not in 1..={MAX_FUEL_PER_CALL}")]
    Fuel(u64),
    /// `memory_max_bytes` out of range.
    #[error("memory_max_bytes {0} is not in {MIN_MEMORY_BYTES}..={MAX_MEMORY_BYTES}")]
    Memory(u64),
    /// `async_queue_packets` out of range.
    #[error("async_queue_packets {0} is not in 1..={MAX_ASYNC_QUEUE_PACKETS}")]
    AsyncQueue(u32),
    /// `async_wake_delay_us` out of range.
    #[error("async_wake_delay_us {0} is more than {MAX_ASYNC_WAKE_DELAY_US}")]
    AsyncWakeDelay(u32),
}

/// Checks a spec's limits (the config's `[[plugins]]` keys are checked by this too).
pub fn check_limits(fuel_per_call: u64, memory_max_bytes: u64) -> Result<(), LimitError> {
    if !(1..=MAX_FUEL_PER_CALL).contains(&fuel_per_call) {
        return Err(LimitError::Fuel(fuel_per_call));
    }
    if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&memory_max_bytes) {
        return Err(LimitError::Memory(memory_max_bytes));
    }
    Ok(())
}

/// Checks an async plugin's queue size (the config's `async_queue_packets` is checked by this too).
pub fn check_async(settings: &AsyncSettings) -> Result<(), LimitError> {
    if !(1..=MAX_ASYNC_QUEUE_PACKETS).contains(&settings.queue_packets) {
        return Err(LimitError::AsyncQueue(settings.queue_packets));
    }
    if settings.wake_delay_us > MAX_ASYNC_WAKE_DELAY_US {
        return Err(LimitError::AsyncWakeDelay(settings.wake_delay_us));
    }
    Ok(())
}

/// Why a plugin was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A limit is out of range.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The parameters are refused.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// It runs on neither chain.
    #[error("it runs on no chain: name ingress, egress or both")]
    NoChain,
    /// Not a valid WebAssembly module (or WAT text).
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    /// It imports something ABI v1 does not provide.
    #[error(
        "it imports {module}.{name}, which ABI v{version} does not provide (only {}.{{{}}})",
        abi::IMPORT_MODULE,
        abi::IMPORTS.join(", "),
        version = abi::ABI_VERSION
    )]
    Import {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
    },
    /// A required export is missing.
    #[error("it does not export {0} (ABI v{version})", version = abi::ABI_VERSION)]
    MissingExport(&'static str),
    /// An export has the wrong type.
    #[error("its export {name} has the wrong type: {detail}")]
    ExportType {
        /// The export.
        name: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// It was written for another ABI version.
    #[error("ringfwd_abi_version() returned {0}; this ringfwd runs ABI v{version}", version = abi::ABI_VERSION)]
    Version(i32),
    /// The packet buffer does not lie within its memory.
    #[error(
        "ringfwd_packet_buffer() returned {address}: {} bytes from there do not fit its memory of {memory_bytes} bytes",
        abi::PACKET_BUFFER_BYTES
    )]
    Buffer {
        /// The returned address.
        address: i32,
        /// The memory's size.
        memory_bytes: usize,
    },
    /// `ringfwd_init` refused the parameters.
    #[error("ringfwd_init refused its parameters (returned {0})")]
    InitRefused(i32),
    /// Instantiating it, or one of its calls during loading, failed (a trap, fuel, the memory limit).
    #[error("{0}")]
    Instantiate(String),
}

/// The process's WebAssembly compiler and runtime: fuel metering on, no signal handlers (bounds checks are
/// explicit, so the process's own signal handling is untouched).
#[derive(Clone)]
pub struct Engine {
    engine: wasmtime::Engine,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Engine")
    }
}

impl Engine {
    /// The engine, or why it cannot run on this host.
    pub fn new() -> Result<Engine, String> {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true).signals_based_traps(false).cranelift_opt_level(wasmtime::OptLevel::Speed);
        wasmtime::Engine::new(&config).map(|engine| Engine { engine }).map_err(|e| format!("{e:#}"))
    }

    /// Compiles and checks `spec`'s module and instantiates it once as a worker would; the plugin, or why not.
    pub fn load(&self, spec: WasmPluginSpec) -> Result<WasmPlugin, LoadError> {
        check_limits(spec.fuel_per_call, spec.memory_max_bytes)?;
        if let PluginMode::Async(settings) = &spec.mode {
            check_async(settings)?;
        }
        if !spec.ingress && !spec.egress {
            return Err(LoadError::NoChain);
        }
        let params = abi::params_text(&spec.params)?;
        let module =
            wasmtime::Module::new(&self.engine, &spec.module).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let provided = |import: &wasmtime::ImportType<'_>| {
            import.module() == abi::IMPORT_MODULE && abi::IMPORTS.contains(&import.name())
        };
        if let Some(import) = module.imports().find(|import| !provided(import)) {
            return Err(LoadError::Import { module: import.module().to_owned(), name: import.name().to_owned() });
        }
        let wants_rtcp = module.exports().any(|export| export.name() == abi::EXPORT_ON_RTCP);
        let reads_metadata = module.imports().any(|import| {
            import.module() == abi::IMPORT_MODULE
                && [abi::IMPORT_METADATA, abi::IMPORT_METADATA_OF].contains(&import.name())
        });
        let runner = Arc::new(Runner::new(async_settings(spec.mode).wake_delay_us));
        let shared = Shared {
            name: spec.name,
            origin: spec.origin,
            module,
            engine: self.engine.clone(),
            linker: instance::linker(&self.engine)?,
            ingress: spec.ingress,
            egress: spec.egress,
            on_failure: spec.on_failure,
            fuel_per_call: spec.fuel_per_call,
            memory_max_bytes: spec.memory_max_bytes,
            params,
            mode: spec.mode,
            wants_rtcp,
            reads_metadata,
            runner,
            counters: Mutex::new(Vec::new()),
            serial: next_serial(),
        };
        // The probe: exactly what a worker does when it binds the plugin, so what fails there fails here first.
        Instance::new(&shared)?;
        let shared = Arc::new(shared);
        let runner = &shared.runner;
        runner.start(&shared).map_err(|e| LoadError::Instantiate(format!("starting its thread failed: {e}")))?;
        Ok(WasmPlugin { shared })
    }
}

/// A loaded plugin: cheap to clone, shared by the workers (each instantiates it on its own thread).
#[derive(Clone)]
pub struct WasmPlugin {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for WasmPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmPlugin").field("name", &self.shared.name).finish()
    }
}

impl WasmPlugin {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its failure path.
    pub fn on_failure(&self) -> FailurePath {
        self.shared.on_failure
    }

    /// Where its module came from (the spec's `origin`).
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// Whether streams' ingress chains, and subscriptions' egress chains, may run it.
    pub fn chains(&self) -> (bool, bool) {
        (self.shared.ingress, self.shared.egress)
    }

    /// Inline on the workers, or on its own thread.
    pub fn mode(&self) -> PluginMode {
        self.shared.mode
    }

    /// Its fuel per call and its memory limit per instance.
    pub fn limits(&self) -> (u64, u64) {
        (self.shared.fuel_per_call, self.shared.memory_max_bytes)
    }

    /// Its counters, summed over the workers' instances.
    pub fn stats(&self) -> WasmPluginStats {
        let instances = self.shared.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut stats = WasmPluginStats::default();
        for counters in instances.iter() {
            counters.add_to(&mut stats);
        }
        stats
    }
}

/// What every instance of a plugin is made from.
pub(crate) struct Shared {
    pub(crate) name: String,
    /// Where its module came from.
    pub(crate) origin: String,
    pub(crate) module: wasmtime::Module,
    pub(crate) engine: wasmtime::Engine,
    /// The ABI's host functions.
    pub(crate) linker: wasmtime::Linker<instance::Host>,
    pub(crate) ingress: bool,
    pub(crate) egress: bool,
    pub(crate) on_failure: FailurePath,
    pub(crate) fuel_per_call: u64,
    pub(crate) memory_max_bytes: u64,
    /// The parameters as `ringfwd_init` reads them.
    pub(crate) params: String,
    /// Its attachments' mode unless one says otherwise: inline, or on its own thread.
    pub(crate) mode: PluginMode,
    /// It exports `on_rtcp`.
    pub(crate) wants_rtcp: bool,
    /// It imports `metadata` or `metadata_of`: only then is a call's metadata lent to its instances, and a copy toward
    /// its thread carries the stream's metadata.
    pub(crate) reads_metadata: bool,
    /// Its thread for async attachments (stopped when the plugin is dropped): started at load, parked, and
    /// instantiating the plugin only once a chain runs it async.
    pub(crate) runner: Arc<Runner>,
    /// One entry per instance a worker made (its counters outlive it); appended off the hot path only.
    pub(crate) counters: Mutex<Vec<Arc<Counters>>>,
    /// Tells this plugin's instances apart in a worker's table.
    pub(crate) serial: usize,
}

impl Shared {
    /// Its async attachments' queues, default pass and wake delay (the defaults for a plugin loaded `sync`).
    pub(crate) fn async_settings(&self) -> AsyncSettings {
        async_settings(self.mode)
    }
}

/// The async settings of a plugin loaded in `mode`: its own in async mode, else the defaults.
fn async_settings(mode: PluginMode) -> AsyncSettings {
    match mode {
        PluginMode::Async(settings) => settings,
        PluginMode::Sync => AsyncSettings::default(),
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("name", &self.name).field("serial", &self.serial).finish()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.runner.stop();
    }
}

/// A serial number per loaded plugin, for the workers' instance tables.
fn next_serial() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
