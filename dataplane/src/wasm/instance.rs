//! One instance of a WebAssembly plugin: its store (memory, globals, fuel, limits) and its typed entry points.
//!
//! Owns [`Instance`]: making one from a loaded plugin (checking the ABI's exports, the version, the buffer, and
//! running `ringfwd_init`), writing a packet into its buffer, and calling `on_rtp` / `on_rtcp` with the fuel budget,
//! turning a trap or running out of fuel into a [`Fault`]. Must never be shared between threads while it runs and
//! never decide what a verdict means for the packet (that is [`super::link`]'s).

use wasmtime::{Memory, Store, StoreLimits, StoreLimitsBuilder, TypedFunc, WasmParams, WasmResults};

use super::abi::{self, OnRtcpArgs, OnRtpArgs};
use super::load::{LoadError, Shared, MAX_FUEL_PER_CALL};

/// Why a call did not return a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// It trapped; the trap's description.
    Trap(String),
    /// It ran out of fuel.
    OutOfFuel,
}

/// A plugin instance with its entry points.
pub(crate) struct Instance {
    store: Store<StoreLimits>,
    memory: Memory,
    /// The packet buffer's offset in `memory` (checked to hold [`abi::PACKET_BUFFER_BYTES`]).
    buffer: usize,
    on_rtp: TypedFunc<OnRtpArgs, i32>,
    on_rtcp: Option<TypedFunc<OnRtcpArgs, i32>>,
    fuel_per_call: u64,
}

impl Instance {
    /// Instantiates `plugin` on this thread, checks its exports and runs `ringfwd_init` with its parameters.
    pub(crate) fn new(plugin: &Shared) -> Result<Instance, LoadError> {
        let memory_bytes = usize::try_from(plugin.memory_max_bytes).unwrap_or(usize::MAX);
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .instances(1)
            .memories(1)
            .tables(4)
            .table_elements(100_000)
            .build();
        let mut store = Store::new(&plugin.engine, limits);
        store.limiter(|limits| limits);
        // Instantiation (a start function, data segments) and ringfwd_init run off the hot path, on the largest budget.
        set_fuel(&mut store, MAX_FUEL_PER_CALL)?;
        let instance = wasmtime::Instance::new(&mut store, &plugin.module, &[])
            .map_err(|e| LoadError::Instantiate(format!("instantiating it failed: {e:#}")))?;
        let memory = match instance.get_export(&mut store, abi::EXPORT_MEMORY) {
            None => return Err(LoadError::MissingExport(abi::EXPORT_MEMORY)),
            Some(export) => export
                .into_memory()
                .ok_or(LoadError::ExportType { name: abi::EXPORT_MEMORY, detail: "not a memory".into() })?,
        };
        let version = required::<(), i32>(&instance, &mut store, abi::EXPORT_VERSION)?;
        let buffer = required::<(), i32>(&instance, &mut store, abi::EXPORT_BUFFER)?;
        let on_rtp = required::<OnRtpArgs, i32>(&instance, &mut store, abi::EXPORT_ON_RTP)?;
        let on_rtcp = optional::<OnRtcpArgs, i32>(&instance, &mut store, abi::EXPORT_ON_RTCP)?;
        let init = optional::<i32, i32>(&instance, &mut store, abi::EXPORT_INIT)?;

        let found = version.call(&mut store, ()).map_err(|e| trapped(abi::EXPORT_VERSION, &e))?;
        if found != abi::ABI_VERSION {
            return Err(LoadError::Version(found));
        }
        let address = buffer.call(&mut store, ()).map_err(|e| trapped(abi::EXPORT_BUFFER, &e))?;
        let memory_bytes = memory.data_size(&store);
        let fits = usize::try_from(address)
            .ok()
            .and_then(|start| start.checked_add(abi::PACKET_BUFFER_BYTES))
            .is_some_and(|end| end <= memory_bytes);
        if !fits {
            return Err(LoadError::Buffer { address, memory_bytes });
        }
        let buffer = usize::try_from(address).unwrap_or_default();
        let mut instance = Instance { store, memory, buffer, on_rtp, on_rtcp, fuel_per_call: plugin.fuel_per_call };
        if let Some(init) = init {
            let len = instance.write(plugin.params.as_bytes()).map(|_| plugin.params.len()).unwrap_or_default();
            let len = i32::try_from(len).unwrap_or_default();
            set_fuel(&mut instance.store, MAX_FUEL_PER_CALL)?;
            match init.call(&mut instance.store, len) {
                Ok(0) => {}
                Ok(code) => return Err(LoadError::InitRefused(code)),
                Err(e) => return Err(trapped(abi::EXPORT_INIT, &e)),
            }
        }
        Ok(instance)
    }

    /// Copies `bytes` into the packet buffer and answers the copy (to patch), or `None` when they do not fit.
    #[inline]
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Option<&mut [u8]> {
        let end = self.buffer + bytes.len();
        if bytes.len() > abi::PACKET_BUFFER_BYTES {
            return None;
        }
        let copy = self.memory.data_mut(&mut self.store).get_mut(self.buffer..end)?;
        copy.copy_from_slice(bytes);
        Some(copy)
    }

    /// Calls `on_rtp` on the packet written last; its raw verdict and the fuel it used.
    #[inline]
    pub(crate) fn on_rtp(&mut self, args: OnRtpArgs) -> (Result<i32, Fault>, u64) {
        let on_rtp = self.on_rtp.clone();
        self.call(&on_rtp, args)
    }

    /// Calls `on_rtcp` on the compound written last, when the plugin exports it (else `None`).
    #[inline]
    pub(crate) fn on_rtcp(&mut self, args: OnRtcpArgs) -> Option<(Result<i32, Fault>, u64)> {
        let on_rtcp = self.on_rtcp.clone()?;
        Some(self.call(&on_rtcp, args))
    }

    /// True when the plugin exports `on_rtcp`.
    pub(crate) fn wants_rtcp(&self) -> bool {
        self.on_rtcp.is_some()
    }

    #[inline]
    fn call<P: WasmParams>(&mut self, func: &TypedFunc<P, i32>, args: P) -> (Result<i32, Fault>, u64) {
        if self.store.set_fuel(self.fuel_per_call).is_err() {
            return (Err(Fault::Trap("fuel metering is off".into())), 0);
        }
        let result = func.call(&mut self.store, args);
        let used = self.fuel_per_call - self.store.get_fuel().unwrap_or(0).min(self.fuel_per_call);
        let result = result.map_err(|e| match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel) => Fault::OutOfFuel,
            _ => Fault::Trap(format!("{e:#}")),
        });
        (result, used)
    }
}

fn set_fuel(store: &mut Store<StoreLimits>, fuel: u64) -> Result<(), LoadError> {
    store.set_fuel(fuel).map_err(|e| LoadError::Instantiate(format!("setting its fuel failed: {e:#}")))
}

fn trapped(export: &str, e: &wasmtime::Error) -> LoadError {
    LoadError::Instantiate(format!("{export} failed: {e:#}"))
}

/// The export `name` as a function of type `P -> R`: an error when it is missing or of another type.
fn required<P: WasmParams, R: WasmResults>(
    instance: &wasmtime::Instance,
    store: &mut Store<StoreLimits>,
    name: &'static str,
) -> Result<TypedFunc<P, R>, LoadError> {
    optional(instance, store, name)?.ok_or(LoadError::MissingExport(name))
}

/// The export `name` as a function of type `P -> R`, `None` when it is missing, an error when it has another type.
fn optional<P: WasmParams, R: WasmResults>(
    instance: &wasmtime::Instance,
    store: &mut Store<StoreLimits>,
    name: &'static str,
) -> Result<Option<TypedFunc<P, R>>, LoadError> {
    let Some(export) = instance.get_export(&mut *store, name) else {
        return Ok(None);
    };
    let func = export.into_func().ok_or(LoadError::ExportType { name, detail: "not a function".into() })?;
    func.typed::<P, R>(&*store).map(Some).map_err(|e| LoadError::ExportType { name, detail: format!("{e:#}") })
}
