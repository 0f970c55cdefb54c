//! A WebAssembly plugin as a chain member: the [`Interceptor`] each stream or subscription that runs the plugin
//! holds, and the worker's table of instances they share.
//!
//! Owns [`WasmLink`], [`register`] (adds a loaded plugin to the native registry, so chains name it like any
//! plugin, with an unload hook that drops the thread's instance when the plugin is unloaded at run time) and the
//! per-thread instance table: one instance per plugin per worker thread, made when the first
//! stream or subscription on that worker binds the plugin (when it is added, not when a packet arrives), reached
//! without a lock (the table is the thread's own). Turns an instance's answer into a [`Verdict`] and hands what the
//! call emitted and the timer it asked for to the context; a fault disables the instance on this worker (counted
//! once, logged once; what the faulting call emitted is discarded) and from then on each chain's packets take its
//! attachment's failure path (the chain's `on_failure`, else the plugin's). A chain that runs the plugin async (its
//! attachment's `mode`, else the plugin's) gets [`super::offload::AsyncLink`] instead, and the table holds the
//! worker's lane to the plugin's thread besides (made on the first such bind, dropped with the plugin). Must never
//! hold an instance across threads, and never allocate per packet.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use super::abi;
use super::instance::{CallMetadata, EmitTarget, Fault, Instance};
use super::load::{AsyncPass, FailurePath, PluginMode, Shared, WasmPlugin};
use super::offload::{AsyncLink, Lane, Runner, MAX_ASYNC_LANES};
use super::stats::{bump, Counters};
use crate::core::event::PluginFault;
use crate::core::interceptor::late;
use crate::core::interceptor::spec::{StreamInfo, SubscriptionInfo};
use crate::core::interceptor::{
    copy_of, Attach, AttachMode, Context, Interceptor, PluginError, PluginId, Plugins, RtcpFrom, RtpAttrs, Scope,
    Verdict,
};
use crate::core::packet::RtcpCompound;
use crate::core::DropReason;

/// Registers `plugin` in `plugins` under its name, on the chains its spec allows.
pub fn register(mut plugins: Plugins, plugin: &WasmPlugin) -> Result<Plugins, PluginError> {
    let shared = &plugin.shared;
    // Its id: the one the registry hands out for this name (a new name goes last).
    let id = plugins.find(&shared.name).unwrap_or(plugins.next_id());
    if shared.ingress {
        let bound = Arc::clone(shared);
        let bind = move |info: &StreamInfo, attach: &Attach| bind(&bound, id, attach, info.epoch.at, info.ssrc.0);
        plugins = plugins.with_ingress_attached(&shared.name, bind)?;
    }
    if shared.egress {
        let bound = Arc::clone(shared);
        let bind =
            move |info: &SubscriptionInfo, attach: &Attach| bind(&bound, id, attach, info.epoch.at, info.source_ssrc.0);
        plugins = plugins.with_egress_attached(&shared.name, bind)?;
    }
    debug_assert_eq!(plugins.find(&shared.name), Some(id));
    let serial = shared.serial;
    plugins.with_unload_hook(&shared.name, move || drop_instance(serial))
}

/// Drops this thread's instance of the plugin with `serial` (it was unloaded), freeing its memory, or its lane to
/// the plugin's thread (async mode); its counters go with the plugin.
fn drop_instance(serial: usize) {
    INSTANCES.with_borrow_mut(|table| {
        for (_, slot, _) in table.iter().filter(|(held, _, _)| *held == serial) {
            if let Slot::Lane(lane, runner) = slot {
                late::unregister(&lane.back);
                runner.remove_lane(lane);
            }
        }
        table.retain(|(held, _, _)| *held != serial);
    });
}

/// The member for one chain on this thread's worker (of the stream whose publisher's SSRC is `ssrc`, on the
/// worker's clock origin `epoch`), as the chain's options `attach` say, each unset option taking the plugin's own
/// setting: inline ([`WasmLink`]) or on the plugin's thread ([`AsyncLink`]), on its failure path.
fn bind(plugin: &Arc<Shared>, id: PluginId, attach: &Attach, epoch: Instant, ssrc: u32) -> Box<dyn Interceptor> {
    let on_failure = attach.on_failure.unwrap_or(plugin.on_failure);
    let mode = attach.mode.unwrap_or(match plugin.mode {
        PluginMode::Sync => AttachMode::Sync,
        PluginMode::Async(_) => AttachMode::Async,
    });
    match mode {
        AttachMode::Sync => WasmLink::bind(plugin, id, epoch, on_failure),
        AttachMode::Async => {
            let pass = attach.async_pass.unwrap_or(plugin.async_settings().pass);
            bind_async(plugin, id, (pass, on_failure), ssrc)
        }
    }
}

/// The member of an async attachment for a chain on this thread's worker (of the stream whose publisher's SSRC is
/// `ssrc`): made the worker's lane to the plugin's thread first if needed.
fn bind_async(plugin: &Arc<Shared>, id: PluginId, paths: (AsyncPass, FailurePath), ssrc: u32) -> Box<dyn Interceptor> {
    let runner = &plugin.runner;
    let settings = plugin.async_settings();
    let lane = INSTANCES.with_borrow_mut(|table| {
        let held = |(serial, slot, _): &&(usize, Slot, Arc<Counters>)| {
            *serial == plugin.serial && matches!(slot, Slot::Lane(..))
        };
        if let Some((_, Slot::Lane(lane, _), _)) = table.iter().find(held) {
            return Some(Arc::clone(lane));
        }
        let Some(tag) = runner.next_tag() else {
            tracing::warn!(plugin = %plugin.name, "an async plugin takes copies from at most {MAX_ASYNC_LANES} workers: it does not run on this one");
            return None;
        };
        let counters = Arc::new(Counters::default());
        let lane = Arc::new(Lane::new(tag, settings.queue_packets as usize, Arc::clone(&counters)));
        late::register(&lane.back);
        runner.add_lane(&lane);
        plugin.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Arc::clone(&counters));
        table.push((plugin.serial, Slot::Lane(Arc::clone(&lane), Arc::clone(runner)), counters));
        Some(lane)
    });
    match lane {
        Some(lane) => Box::new(AsyncLink::new(plugin, id, runner, &lane, paths, ssrc)),
        None => Box::new(crate::core::interceptor::plugin::Unbound),
    }
}

/// Whether this thread holds an instance of `plugin`.
#[cfg(test)]
pub(crate) fn has_instance(plugin: &WasmPlugin) -> bool {
    INSTANCES.with_borrow(|table| table.iter().any(|(serial, _, _)| *serial == plugin.shared.serial))
}

/// One instance slot of this thread's table.
enum Slot {
    /// Running.
    Ready(Box<Instance>),
    /// Disabled by a fault, or could not be made.
    Disabled,
    /// An async plugin: this worker's lane to the plugin's thread (the instance runs there).
    Lane(Arc<Lane>, Arc<Runner>),
}

/// This thread's instances: `(plugin serial, slot, the slot's counters)`, at most two per loaded plugin: its inline
/// instance (or its disabled slot) for sync attachments, its lane for async ones.
type Table = Vec<(usize, Slot, Arc<Counters>)>;

thread_local! {
    static INSTANCES: RefCell<Table> = const { RefCell::new(Vec::new()) };
}

/// The index of `plugin`'s slot in `table`, made first when missing (instantiating it: off the hot path, when a
/// stream or subscription binds it, or after a stream moved here from another worker).
fn slot_of(table: &mut Table, plugin: &Shared) -> usize {
    let inline =
        |(serial, slot, _): &(usize, Slot, Arc<Counters>)| *serial == plugin.serial && !matches!(slot, Slot::Lane(..));
    if let Some(index) = table.iter().position(inline) {
        return index;
    }
    let counters = Arc::new(Counters::instance());
    let slot = match Instance::new(plugin) {
        Ok(instance) => Slot::Ready(Box::new(instance)),
        Err(error) => {
            // It loaded in the control plane, so this is the memory limit or the host: the plugin is off here.
            tracing::warn!(plugin = %plugin.name, %error, "WebAssembly plugin not instantiated on this worker; its packets take its failure path");
            bump(&counters.instantiation_failures, 1);
            bump(&counters.disabled, 1);
            Slot::Disabled
        }
    };
    plugin.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Arc::clone(&counters));
    table.push((plugin.serial, slot, counters));
    table.len() - 1
}

/// What the caller passes an instance.
enum Call<'a> {
    Rtp { pkt: &'a [u8], attrs: &'a RtpAttrs },
    Rtcp { bytes: &'a [u8], from: RtcpFrom },
}

/// A chain's member for a WebAssembly plugin run inline: which plugin, the worker's clock origin (for `now_us`) and
/// the attachment's failure path.
#[derive(Debug)]
pub(crate) struct WasmLink {
    plugin: Arc<Shared>,
    /// Its id in the registry (for the event that reports a fault).
    id: PluginId,
    epoch: Instant,
    on_failure: FailurePath,
}

impl WasmLink {
    /// The member for a stream or subscription on this thread's worker: makes the worker's instance if needed.
    fn bind(plugin: &Arc<Shared>, id: PluginId, epoch: Instant, on_failure: FailurePath) -> Box<dyn Interceptor> {
        INSTANCES.with_borrow_mut(|table| slot_of(table, plugin));
        Box::new(WasmLink { plugin: Arc::clone(plugin), id, epoch, on_failure })
    }

    /// Runs `f` on this worker's slot of the plugin (made if missing), its counters, the call's `stream`, `flow` and
    /// `now_us` as the ABI passes them, and the context.
    fn with_slot<'c, R>(
        &self,
        ctx: &mut Context<'c>,
        f: impl FnOnce(&mut Slot, &Counters, (i32, i32, i64), &mut Context<'c>) -> R,
    ) -> R {
        let now_us = i64::try_from(ctx.now().saturating_duration_since(self.epoch).as_micros()).unwrap_or(i64::MAX);
        let (stream, flow) = scope_args(ctx.scope());
        INSTANCES.with_borrow_mut(|table| {
            let index = slot_of(table, &self.plugin);
            let (_, slot, counters) = &mut table[index];
            f(slot, counters, (stream, flow, now_us), ctx)
        })
    }

    fn run(&mut self, call: Call<'_>, ctx: &mut Context<'_>) -> Verdict {
        let plugin = &*self.plugin;
        self.with_slot(ctx, |slot, counters, (stream, flow, now_us), ctx| {
            let Slot::Ready(instance) = slot else {
                bump(&counters.failure_path, 1);
                return failure_verdict(self.on_failure);
            };
            let answer = match call {
                Call::Rtp { pkt, attrs } => {
                    let Some(copy) = instance.write(pkt) else {
                        bump(&counters.oversize, 1);
                        return Verdict::Continue;
                    };
                    patch_header(copy, attrs);
                    instance.on_rtp(
                        (pkt.len() as i32, stream, flow, attrs.ext_seq as i64, now_us),
                        true,
                        Some(CallMetadata::of(ctx)),
                    )
                }
                Call::Rtcp { bytes, from } => {
                    if !instance.wants_rtcp() {
                        return Verdict::Continue;
                    }
                    if instance.write(bytes).is_none() {
                        bump(&counters.oversize, 1);
                        return Verdict::Continue;
                    }
                    let from = match from {
                        RtcpFrom::Publisher => abi::NONE,
                        RtcpFrom::Subscriber { flow } => flow as i32,
                    };
                    let args = (bytes.len() as i32, stream, flow, from, now_us);
                    match instance.on_rtcp(args, true, Some(CallMetadata::of(ctx))) {
                        Some(answer) => answer,
                        None => return Verdict::Continue,
                    }
                }
            };
            let (result, fuel) = answer;
            counters.called(fuel, instance.last_timed_ns());
            let fault = match result {
                Ok(abi::VERDICT_CONTINUE) if instance.rewritten().is_some() => match pass_on(instance, counters, ctx) {
                    Ok(()) => {
                        deliver(instance, counters, self.epoch, ctx);
                        return Verdict::Continue;
                    }
                    Err(fault) => fault,
                },
                Ok(code @ (abi::VERDICT_CONTINUE | abi::VERDICT_DROP | abi::VERDICT_CONSUMED)) => {
                    deliver(instance, counters, self.epoch, ctx);
                    return match code {
                        abi::VERDICT_DROP => {
                            bump(&counters.drops, 1);
                            Verdict::Drop(DropReason::Plugin)
                        }
                        abi::VERDICT_CONSUMED => {
                            bump(&counters.consumed, 1);
                            Verdict::Consumed
                        }
                        _ => Verdict::Continue,
                    };
                }
                Ok(other) => {
                    bump(&counters.bad_verdicts, 1);
                    let what = format!("returned verdict {other}, which ABI v{} does not define", abi::ABI_VERSION);
                    (what, PluginFault::BadVerdict)
                }
                Err(fault) => describe(fault, plugin, counters),
            };
            disable(slot, plugin, self.id, counters, fault, ctx);
            failure_verdict(self.on_failure)
        })
    }

    /// The timer this member asked for has come: `on_timer`, when the plugin exports it.
    fn timer(&mut self, ctx: &mut Context<'_>) {
        let plugin = &*self.plugin;
        self.with_slot(ctx, |slot, counters, (stream, flow, now_us), ctx| {
            let Slot::Ready(instance) = slot else { return };
            let Some((result, fuel)) = instance.on_timer((stream, flow, now_us), Some(CallMetadata::of(ctx))) else {
                return;
            };
            counters.called(fuel, instance.last_timed_ns());
            match result {
                Ok(()) => deliver(instance, counters, self.epoch, ctx),
                Err(fault) => {
                    let fault = describe(fault, plugin, counters);
                    disable(slot, plugin, self.id, counters, fault, ctx);
                }
            }
        });
    }
}

/// `stream` and `flow` as the ABI passes them.
pub(super) fn scope_args(scope: Scope) -> (i32, i32) {
    match scope {
        Scope::Stream { stream } => (stream as i32, abi::NONE),
        Scope::Subscription { stream, flow } => (stream as i32, flow as i32),
    }
}

/// Hands the packet the call rewrote to the context, which passes it on; a fault when the context refuses it (not
/// an RTP packet with the SSRC the call was given, not an RTCP compound with the first SSRC the call was given, or
/// longer than the worker's longest packet).
fn pass_on(instance: &Instance, counters: &Counters, ctx: &mut Context<'_>) -> Result<(), (String, PluginFault)> {
    let Some(packet) = instance.rewritten() else {
        return Ok(());
    };
    let accepted = ctx.rewrite(copy_of(packet));
    if accepted {
        bump(&counters.rewrites, 1);
        return Ok(());
    }
    bump(&counters.bad_rewrites, 1);
    let what = format!(
        "rewrote its packet into {} bytes that are not an RTP packet with the SSRC it was given (in on_rtp), not a valid \
         RTCP compound with the first SSRC it was given (in on_rtcp), or longer than {} bytes",
        packet.len(),
        ctx.max_packet_bytes()
    );
    Err((what, PluginFault::BadRewrite))
}

/// Hands what the call staged to the context: its packets, then its timer.
fn deliver(instance: &Instance, counters: &Counters, epoch: Instant, ctx: &mut Context<'_>) {
    let staged = instance.staged();
    let mut refused = staged.refused;
    let (mut emitted, mut injected) = (0, 0);
    for (target, bytes) in staged.emits() {
        let sent = match target {
            EmitTarget::Publisher => ctx.send_rtcp_to_publisher(copy_of(bytes)),
            EmitTarget::Subscriber(flow) => ctx.send_to_subscriber(flow, copy_of(bytes)),
            EmitTarget::Retransmit(flow) => ctx.retransmit(flow, bytes),
            EmitTarget::Stream => ctx.inject(bytes),
        };
        if sent {
            emitted += 1;
            injected += u64::from(target == EmitTarget::Stream);
        } else {
            refused += 1;
        }
    }
    if emitted != 0 {
        bump(&counters.emitted, emitted);
    }
    if injected != 0 {
        bump(&counters.injected, injected);
    }
    if refused != 0 {
        bump(&counters.emits_refused, refused);
    }
    if let Some(at_us) = staged.timer {
        let at = epoch + std::time::Duration::from_micros(u64::try_from(at_us).unwrap_or(0));
        ctx.schedule(at.max(ctx.now()));
    }
}

/// Counts a fault by kind and says what happened.
fn describe(fault: Fault, plugin: &Shared, counters: &Counters) -> (String, PluginFault) {
    match fault {
        Fault::OutOfFuel => {
            bump(&counters.out_of_fuel, 1);
            (format!("ran out of fuel ({} per call)", plugin.fuel_per_call), PluginFault::OutOfFuel)
        }
        Fault::Trap(trap) => {
            bump(&counters.traps, 1);
            (format!("trapped: {trap}"), PluginFault::Trap)
        }
    }
}

/// Disables the instance on this worker: once per instance, it is dropped here and the slot stays disabled; the
/// fault is logged, counted and reported as an event for the chain whose call faulted.
fn disable(
    slot: &mut Slot,
    plugin: &Shared,
    id: PluginId,
    counters: &Counters,
    (what, fault): (String, PluginFault),
    ctx: &mut Context<'_>,
) {
    tracing::warn!(plugin = %plugin.name, fault = %what, "WebAssembly plugin disabled on this worker: each chain's packets take its attachment's failure path");
    *slot = Slot::Disabled;
    bump(&counters.disabled, 1);
    ctx.note_plugin_failure(id, fault);
}

pub(super) fn failure_verdict(path: FailurePath) -> Verdict {
    match path {
        FailurePath::Forward => Verdict::Continue,
        FailurePath::Drop => Verdict::Drop(DropReason::Plugin),
    }
}

/// Writes the header fields the chain sees (in an egress chain: what this subscriber receives) over the copy.
#[inline]
pub(super) fn patch_header(copy: &mut [u8], attrs: &RtpAttrs) {
    if let Some(header) = copy.get_mut(..12) {
        header[1] = u8::from(attrs.marker) << 7 | (attrs.payload_type & 0x7f);
        header[2..4].copy_from_slice(&attrs.seq.0.to_be_bytes());
        header[4..8].copy_from_slice(&attrs.timestamp.0.to_be_bytes());
        header[8..12].copy_from_slice(&attrs.ssrc.0.to_be_bytes());
    }
}

impl Interceptor for WasmLink {
    fn on_rtp(&mut self, pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        self.run(Call::Rtp { pkt, attrs }, ctx)
    }

    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        self.run(Call::Rtcp { bytes: rtcp.bytes(), from }, ctx)
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        self.timer(ctx);
    }
}
