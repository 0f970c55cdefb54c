//! One instance of a WebAssembly plugin: its store (memory, globals, fuel, limits) and its typed entry points.
//!
//! Owns [`Instance`]: making one from a loaded plugin (checking the ABI's exports, the version, the buffer, and
//! running `ringfwd_init`), writing a packet into its buffer, and calling `on_rtp` / `on_rtcp` / `on_timer` with the
//! fuel budget, turning a trap or running out of fuel into a [`Fault`]; and the host side of the ABI's imports
//! ([`linker`]): what a call emits and the timer it asks for are staged in the instance's own preallocated
//! [`Staged`] area, for the chain member to hand to its context after the call; the stream metadata a call may read
//! is lent to the store for the call (a reference count) and taken back after it. Must never be shared between
//! threads while it runs, never allocate per call, and never decide what a verdict means for the packet (that is
//! [`super::link`]'s).
//!
//! One call in [`TIMED_EVERY`] is timed (two clock reads around it), so that the plugin list can say what a call
//! costs without putting a clock read on every call.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Caller, Linker, Memory, Store, StoreLimits, StoreLimitsBuilder, TypedFunc, WasmParams, WasmResults};

use super::abi::{self, OnRtcpArgs, OnRtpArgs, OnTimerArgs, MAX_EMITS_PER_CALL, PACKET_BUFFER_BYTES};
use super::load::{LoadError, Shared, MAX_FUEL_PER_CALL};
use crate::core::interceptor::{Context, Metadata, MetadataOf, Texts};
use crate::core::packet::RtpView;

/// Where a staged packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EmitTarget {
    /// RTCP to the stream's publisher.
    Publisher,
    /// As it is, to subscription `flow`.
    Subscriber(u32),
    /// Through subscription `flow`'s rewrite.
    Retransmit(u32),
    /// Into the stream, fanned out to every subscription.
    Stream,
}

/// What one call emitted and asked for, in the instance's store: bounded, preallocated, cleared before each call.
pub(crate) struct Staged {
    arena: Box<[u8]>,
    emits: [(EmitTarget, usize); MAX_EMITS_PER_CALL],
    count: usize,
    /// Emits refused during the call (out of memory bounds, too long, too many).
    pub(crate) refused: u64,
    /// The `set_timer` time of the call, the earliest if several.
    pub(crate) timer: Option<i64>,
    /// The length `rewrite` accepted last in the call: the buffer's first bytes replace the packet.
    pub(crate) rewrite: Option<usize>,
    /// Whether the call may rewrite its packet, and the shortest packet it may rewrite into.
    rewritable: Rewritable,
}

/// Whether a call may rewrite the packet in its buffer (a sync plugin's `on_rtp` and `on_rtcp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rewritable {
    /// No: `rewrite` answers −1 (an async call, a timer).
    No,
    /// An RTP packet: at least its fixed header.
    Rtp,
    /// An RTCP compound: at least one packet with its SSRC.
    Rtcp,
}

impl Rewritable {
    /// The lengths `rewrite(len)` accepts (the host checks the bytes after the call).
    fn accepts(self, len: usize) -> bool {
        let shortest = match self {
            Rewritable::No => return false,
            Rewritable::Rtp => abi::MIN_RTP_REWRITE_BYTES,
            Rewritable::Rtcp => abi::MIN_RTCP_REWRITE_BYTES,
        };
        (shortest..=PACKET_BUFFER_BYTES).contains(&len)
    }
}

impl Staged {
    fn new() -> Staged {
        Staged {
            arena: vec![0; MAX_EMITS_PER_CALL * PACKET_BUFFER_BYTES].into_boxed_slice(),
            emits: [(EmitTarget::Publisher, 0); MAX_EMITS_PER_CALL],
            count: 0,
            refused: 0,
            timer: None,
            rewrite: None,
            rewritable: Rewritable::No,
        }
    }

    fn clear(&mut self, rewritable: Rewritable) {
        self.count = 0;
        self.refused = 0;
        self.timer = None;
        self.rewrite = None;
        self.rewritable = rewritable;
    }

    /// The staged packets, in the order emitted.
    pub(crate) fn emits(&self) -> impl Iterator<Item = (EmitTarget, &[u8])> + '_ {
        self.emits[..self.count].iter().enumerate().map(|(index, (target, len))| {
            let start = index * PACKET_BUFFER_BYTES;
            (*target, &self.arena[start..start + len])
        })
    }
}

/// A store's data: its limits, its memory (set once instantiated), what the current call staged, and the metadata
/// the current call may read.
pub(crate) struct Host {
    limits: StoreLimits,
    memory: Option<Memory>,
    staged: Staged,
    /// During a call that has a stream (any but `ringfwd_init`), the metadata it may read; `None` otherwise (the
    /// `metadata` import answers [`abi::METADATA_UNAVAILABLE`]). Lent only to an instance that imports `metadata`.
    metadata: Option<Lent>,
}

/// The snapshots lent to a call: its stream's (`None`: none), and in an egress chain its subscription's (`Some(None)`:
/// its subscriber has none; `None`: an ingress chain, no subscriber to read).
struct Lent {
    stream: Option<Arc<Texts>>,
    subscriber: Option<Option<Arc<Texts>>>,
}

/// The metadata a call reads: its stream's snapshot, and in a subscription's egress chain its subscription's
/// ([`crate::core::interceptor::Context::subscriber_metadata`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallMetadata<'a> {
    /// The stream's snapshot.
    pub(crate) stream: &'a Metadata,
    /// The subscription's, in an egress chain.
    pub(crate) subscriber: Option<&'a Metadata>,
}

impl<'a> CallMetadata<'a> {
    /// What a call in `ctx`'s chain reads.
    #[inline]
    pub(crate) fn of(ctx: &'a Context<'_>) -> CallMetadata<'a> {
        CallMetadata { stream: ctx.metadata(), subscriber: ctx.subscriber_metadata() }
    }
}

/// The `metadata` and `metadata_of` imports: copies the metadata of `of` (the stream, its publisher, its session or
/// the subscriber; `None`: an object the ABI does not know) to `ptr..ptr + cap` of the caller's memory when it fits
/// (see [`abi`] for the answers).
fn copy_metadata(caller: &mut Caller<'_, Host>, of: Option<MetadataOf>, ptr: i32, cap: i32) -> i32 {
    let Some(memory) = caller.data().memory else {
        return abi::METADATA_UNAVAILABLE;
    };
    let (data, host) = memory.data_and_store_mut(caller);
    let Some(lent) = &host.metadata else {
        return abi::METADATA_UNAVAILABLE;
    };
    let range = usize::try_from(ptr).ok().zip(usize::try_from(cap).ok()).and_then(|(start, cap)| {
        let end = start.checked_add(cap)?;
        Some(start..end)
    });
    let Some(dst) = range.and_then(|range| data.get_mut(range)) else {
        return abi::METADATA_BAD_RANGE;
    };
    let Some(of) = of else {
        return abi::METADATA_BAD_OBJECT;
    };
    let texts = match (of, &lent.subscriber) {
        (MetadataOf::Subscriber, Some(subscriber)) => subscriber,
        (MetadataOf::Subscriber, None) => return abi::METADATA_UNAVAILABLE,
        _ => &lent.stream,
    };
    let text = texts.as_deref().map_or("", |texts| texts.of(of)).as_bytes();
    if let Some(dst) = dst.get_mut(..text.len()) {
        dst.copy_from_slice(text);
    }
    i32::try_from(text.len()).unwrap_or(i32::MAX)
}

/// Copies `len` bytes at `ptr` of the caller's memory into the next staging slot; [`abi::EMIT_OK`] or
/// [`abi::EMIT_REFUSED`].
fn stage(caller: &mut Caller<'_, Host>, target: EmitTarget, ptr: i32, len: i32) -> i32 {
    stage_checked(caller, target, ptr, len, |_| true)
}

/// Like [`stage`], refusing bytes `accept` does not take.
fn stage_checked(
    caller: &mut Caller<'_, Host>,
    target: EmitTarget,
    ptr: i32,
    len: i32,
    accept: fn(&[u8]) -> bool,
) -> i32 {
    let Some(memory) = caller.data().memory else {
        return abi::EMIT_REFUSED;
    };
    let (data, host) = memory.data_and_store_mut(caller);
    let staged = &mut host.staged;
    let range = usize::try_from(ptr).ok().zip(usize::try_from(len).ok()).and_then(|(start, len)| {
        (len <= PACKET_BUFFER_BYTES && staged.count < MAX_EMITS_PER_CALL).then_some(start..start.checked_add(len)?)
    });
    let Some(bytes) = range.and_then(|range| data.get(range)).filter(|bytes| accept(bytes)) else {
        staged.refused += 1;
        return abi::EMIT_REFUSED;
    };
    let start = staged.count * PACKET_BUFFER_BYTES;
    staged.arena[start..start + bytes.len()].copy_from_slice(bytes);
    staged.emits[staged.count] = (target, bytes.len());
    staged.count += 1;
    abi::EMIT_OK
}

/// The host functions a module may import (see [`abi`]), for every instance of the engine.
pub(crate) fn linker(engine: &wasmtime::Engine) -> Result<Linker<Host>, LoadError> {
    let mut linker = Linker::new(engine);
    let module = abi::IMPORT_MODULE;
    let failed = |e: wasmtime::Error| LoadError::Instantiate(format!("defining the host functions failed: {e:#}"));
    linker
        .func_wrap(module, abi::IMPORT_EMIT_RTCP_TO_PUBLISHER, |mut caller: Caller<'_, Host>, ptr: i32, len: i32| {
            stage(&mut caller, EmitTarget::Publisher, ptr, len)
        })
        .map_err(failed)?;
    linker
        .func_wrap(
            module,
            abi::IMPORT_EMIT_TO_SUBSCRIBER,
            |mut caller: Caller<'_, Host>, flow: i32, ptr: i32, len: i32| match u32::try_from(flow) {
                Ok(flow) => stage(&mut caller, EmitTarget::Subscriber(flow), ptr, len),
                Err(_) => abi::EMIT_REFUSED,
            },
        )
        .map_err(failed)?;
    linker
        .func_wrap(module, abi::IMPORT_RETRANSMIT, |mut caller: Caller<'_, Host>, flow: i32, ptr: i32, len: i32| {
            match u32::try_from(flow) {
                Ok(flow) => stage(&mut caller, EmitTarget::Retransmit(flow), ptr, len),
                Err(_) => abi::EMIT_REFUSED,
            }
        })
        .map_err(failed)?;
    linker
        .func_wrap(module, abi::IMPORT_INJECT, |mut caller: Caller<'_, Host>, ptr: i32, len: i32| {
            stage_checked(&mut caller, EmitTarget::Stream, ptr, len, |bytes| RtpView::parse(bytes).is_ok())
        })
        .map_err(failed)?;
    linker
        .func_wrap(module, abi::IMPORT_REWRITE, |mut caller: Caller<'_, Host>, len: i32| {
            let staged = &mut caller.data_mut().staged;
            match usize::try_from(len) {
                Ok(len) if staged.rewritable.accepts(len) => {
                    staged.rewrite = Some(len);
                    abi::EMIT_OK
                }
                _ => abi::EMIT_REFUSED,
            }
        })
        .map_err(failed)?;
    linker
        .func_wrap(module, abi::IMPORT_METADATA, |mut caller: Caller<'_, Host>, ptr: i32, cap: i32| {
            copy_metadata(&mut caller, Some(MetadataOf::Stream), ptr, cap)
        })
        .map_err(failed)?;
    linker
        .func_wrap(module, abi::IMPORT_METADATA_OF, |mut caller: Caller<'_, Host>, object: i32, ptr: i32, cap: i32| {
            let of = match object {
                abi::METADATA_OF_STREAM => Some(MetadataOf::Stream),
                abi::METADATA_OF_PUBLISHER => Some(MetadataOf::Publisher),
                abi::METADATA_OF_SESSION => Some(MetadataOf::Session),
                abi::METADATA_OF_SUBSCRIBER => Some(MetadataOf::Subscriber),
                _ => None,
            };
            copy_metadata(&mut caller, of, ptr, cap)
        })
        .map_err(failed)?;
    linker
        .func_wrap(module, abi::IMPORT_SET_TIMER, |mut caller: Caller<'_, Host>, at_us: i64| {
            let timer = &mut caller.data_mut().staged.timer;
            *timer = Some(timer.map_or(at_us, |earlier| earlier.min(at_us)));
        })
        .map_err(failed)?;
    Ok(linker)
}

/// Why a call did not return a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// It trapped; the trap's description.
    Trap(String),
    /// It ran out of fuel.
    OutOfFuel,
}

/// One call in this many is timed: the first, the 65th, ... of each instance. The clock costs ~30 ns per read here
/// (`clock_gettime` through the vDSO), the no-op call ~75-85 ns: timing every call would add two thirds again to it,
/// one in 64 adds about 1 ns on average.
pub(crate) const TIMED_EVERY: u64 = 64;

/// A plugin instance with its entry points.
pub(crate) struct Instance {
    store: Store<Host>,
    memory: Memory,
    /// The packet buffer's offset in `memory` (checked to hold [`abi::PACKET_BUFFER_BYTES`]).
    buffer: usize,
    on_rtp: TypedFunc<OnRtpArgs, i32>,
    on_rtcp: Option<TypedFunc<OnRtcpArgs, i32>>,
    on_timer: Option<TypedFunc<OnTimerArgs, ()>>,
    fuel_per_call: u64,
    /// True when the module imports `metadata`: only then is a call's metadata lent to the store.
    reads_metadata: bool,
    /// Calls made (it picks the calls that are timed).
    calls: u64,
    /// How long the last call took, when it was one of the timed ones.
    last_timed_ns: Option<u64>,
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
        let mut store =
            Store::new(&plugin.engine, Host { limits, memory: None, staged: Staged::new(), metadata: None });
        store.limiter(|host| &mut host.limits);
        // Instantiation (a start function, data segments) and ringfwd_init run off the hot path, on the largest budget.
        set_fuel(&mut store, MAX_FUEL_PER_CALL)?;
        let instance = plugin
            .linker
            .instantiate(&mut store, &plugin.module)
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
        let on_timer = optional::<OnTimerArgs, ()>(&instance, &mut store, abi::EXPORT_ON_TIMER)?;
        store.data_mut().memory = Some(memory);

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
        let fuel_per_call = plugin.fuel_per_call;
        let reads_metadata = plugin.reads_metadata;
        let mut instance = Instance {
            store,
            memory,
            buffer,
            on_rtp,
            on_rtcp,
            on_timer,
            fuel_per_call,
            reads_metadata,
            calls: 0,
            last_timed_ns: None,
        };
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

    /// Calls `on_rtp` on the packet written last (which it may rewrite when `may_rewrite`: a sync plugin's), able to
    /// read `metadata` (`None`: none to read, the import answers [`abi::METADATA_UNAVAILABLE`]); its raw verdict and
    /// the fuel it used.
    #[inline]
    pub(crate) fn on_rtp(
        &mut self,
        args: OnRtpArgs,
        may_rewrite: bool,
        metadata: Option<CallMetadata<'_>>,
    ) -> (Result<i32, Fault>, u64) {
        let started = self.start_call();
        self.lend_metadata(metadata);
        let rewritable = if may_rewrite { Rewritable::Rtp } else { Rewritable::No };
        let answer = call(&mut self.store, &self.on_rtp, self.fuel_per_call, rewritable, args);
        self.lend_metadata(None);
        self.end_call(started);
        answer
    }

    /// Counts a call about to start: the time it starts, when it is one of the timed ones.
    #[inline]
    fn start_call(&mut self) -> Option<Instant> {
        let timed = self.calls.is_multiple_of(TIMED_EVERY);
        self.calls = self.calls.wrapping_add(1);
        timed.then(Instant::now)
    }

    /// Keeps how long a timed call took (`None` for a call that was not timed).
    #[inline]
    fn end_call(&mut self, started: Option<Instant>) {
        self.last_timed_ns = started.map(|started| u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }

    /// How long the last call took, in nanoseconds, when it was one of the timed ones (one in [`TIMED_EVERY`]): the
    /// call into WebAssembly and back, with its fuel set and read and its metadata lent, not the copy of the packet
    /// into its memory nor what becomes of its verdict.
    #[inline]
    pub(crate) fn last_timed_ns(&self) -> Option<u64> {
        self.last_timed_ns
    }

    /// Lends the store `metadata` for the next call, or takes it back (`None`), when the module reads metadata: a
    /// reference count per snapshot, never an allocation (the worker holds the snapshots throughout the call, so
    /// taking them back never frees them on this path).
    #[inline]
    fn lend_metadata(&mut self, metadata: Option<CallMetadata<'_>>) {
        if self.reads_metadata {
            self.store.data_mut().metadata = metadata.map(|metadata| Lent {
                stream: metadata.stream.shared().cloned(),
                subscriber: metadata.subscriber.map(|subscriber| subscriber.shared().cloned()),
            });
        }
    }

    /// The packet the last call rewrote, `len` bytes of its buffer (when `rewrite(len)` accepted that length).
    #[inline]
    pub(crate) fn rewritten(&self) -> Option<&[u8]> {
        let len = self.store.data().staged.rewrite?;
        self.memory.data(&self.store).get(self.buffer..self.buffer + len)
    }

    /// Calls `on_rtcp` on the compound written last (which it may rewrite when `may_rewrite`, as
    /// [`Instance::on_rtp`]), when the plugin exports it (else `None`).
    #[inline]
    pub(crate) fn on_rtcp(
        &mut self,
        args: OnRtcpArgs,
        may_rewrite: bool,
        metadata: Option<CallMetadata<'_>>,
    ) -> Option<(Result<i32, Fault>, u64)> {
        self.on_rtcp.as_ref()?;
        let started = self.start_call();
        self.lend_metadata(metadata);
        let rewritable = if may_rewrite { Rewritable::Rtcp } else { Rewritable::No };
        let answer =
            self.on_rtcp.as_ref().map(|on_rtcp| call(&mut self.store, on_rtcp, self.fuel_per_call, rewritable, args));
        self.lend_metadata(None);
        self.end_call(started);
        answer
    }

    /// Calls `on_timer`, when the plugin exports it (else `None`), able to read `metadata` as [`Instance::on_rtp`].
    pub(crate) fn on_timer(
        &mut self,
        args: OnTimerArgs,
        metadata: Option<CallMetadata<'_>>,
    ) -> Option<(Result<(), Fault>, u64)> {
        self.on_timer.as_ref()?;
        let started = self.start_call();
        self.lend_metadata(metadata);
        let answer = self
            .on_timer
            .as_ref()
            .map(|on_timer| call(&mut self.store, on_timer, self.fuel_per_call, Rewritable::No, args));
        self.lend_metadata(None);
        self.end_call(started);
        answer
    }

    /// True when the plugin exports `on_rtcp`.
    pub(crate) fn wants_rtcp(&self) -> bool {
        self.on_rtcp.is_some()
    }

    /// What the last call emitted and asked for.
    pub(crate) fn staged(&self) -> &Staged {
        &self.store.data().staged
    }
}

/// One call of `func` with `fuel` (its staging area cleared first; it may rewrite as `rewritable` says): its result, a
/// trap or running out of fuel as a [`Fault`], and the fuel it used. Borrows the function, never clones it: a clone of
/// a `TypedFunc` clones its type, a reference count, which the per-packet path must not touch.
#[inline]
fn call<P: WasmParams, R: WasmResults>(
    store: &mut Store<Host>,
    func: &TypedFunc<P, R>,
    fuel: u64,
    rewritable: Rewritable,
    args: P,
) -> (Result<R, Fault>, u64) {
    store.data_mut().staged.clear(rewritable);
    if store.set_fuel(fuel).is_err() {
        return (Err(Fault::Trap("fuel metering is off".into())), 0);
    }
    let result = func.call(&mut *store, args);
    let used = fuel - store.get_fuel().unwrap_or(0).min(fuel);
    let result = result.map_err(|e| match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => Fault::OutOfFuel,
        _ => Fault::Trap(format!("{e:#}")),
    });
    (result, used)
}

fn set_fuel(store: &mut Store<Host>, fuel: u64) -> Result<(), LoadError> {
    store.set_fuel(fuel).map_err(|e| LoadError::Instantiate(format!("setting its fuel failed: {e:#}")))
}

fn trapped(export: &str, e: &wasmtime::Error) -> LoadError {
    LoadError::Instantiate(format!("{export} failed: {e:#}"))
}

/// The export `name` as a function of type `P -> R`: an error when it is missing or of another type.
fn required<P: WasmParams, R: WasmResults>(
    instance: &wasmtime::Instance,
    store: &mut Store<Host>,
    name: &'static str,
) -> Result<TypedFunc<P, R>, LoadError> {
    optional(instance, store, name)?.ok_or(LoadError::MissingExport(name))
}

/// The export `name` as a function of type `P -> R`, `None` when it is missing, an error when it has another type.
fn optional<P: WasmParams, R: WasmResults>(
    instance: &wasmtime::Instance,
    store: &mut Store<Host>,
    name: &'static str,
) -> Result<Option<TypedFunc<P, R>>, LoadError> {
    let Some(export) = instance.get_export(&mut *store, name) else {
        return Ok(None);
    };
    let func = export.into_func().ok_or(LoadError::ExportType { name, detail: "not a function".into() })?;
    func.typed::<P, R>(&*store).map(Some).map_err(|e| LoadError::ExportType { name, detail: format!("{e:#}") })
}
