//! Async mode: a plugin's one instance on its own thread, off the worker cores, fed copies of packets by the
//! workers, emitting later.
//!
//! Owns [`Runner`] (the plugin's thread: its instance, the lanes of the workers whose chains run the plugin, and its
//! timers), [`Lane`] (one worker's bounded queue of packet copies toward the thread, with the
//! [`LateLane`] that carries what the plugin emits back to that worker) and [`AsyncLink`] (the chain member on a
//! worker: copies the packet into a free box of its lane and answers the attachment's `async_pass` verdict at once).
//!
//! The thread inherits the CPU set of the thread that loaded the plugin (the control plane's, which never includes
//! a worker core unless every core has a worker). It takes the lanes' copies in turn, calls `on_rtp` / `on_rtcp`
//! with each copy's arrival time, and queues what the call emitted on the lane back to the worker that sent the
//! copy, tagged with the chain's scope (the worker emits it as that chain would: [`crate::core::Forwarder::on_late`]).
//! Timers are kept per (worker, chain) and call `on_timer` on this thread. A fault (a trap, running out of fuel, a
//! bad verdict) drops the instance: from then on every worker's member takes its attachment's failure path, and the
//! first to notice reports the event. A copy of a plugin that imports `metadata` carries its stream's metadata
//! snapshot as the worker held it when it queued the copy (a reference count, no copy of the text), so `on_rtp` and
//! `on_rtcp` read what an inline call would have read; a timer reads the snapshot of the call that last asked for
//! it. The thread empties a box's snapshot before it hands the box back, so the last reference to a replaced
//! snapshot is dropped here, never on a worker's forwarding path (a lane dropped at unload drops what it holds).
//!
//! Must never make a worker wait, lock or allocate per packet: a full queue drops and counts, boxes circulate
//! between a ready and a free list, and the thread is unparked only when it sleeps, once per worker iteration. Must never let the thread
//! keep the plugin alive: it holds the plugin's shared state only while instantiating, and stops when the plugin
//! is dropped.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;

use super::abi::{self, PACKET_BUFFER_BYTES};
use super::instance::{CallMetadata, EmitTarget, Fault, Instance};
use super::link::{failure_verdict, patch_header};
use super::load::{AsyncPass, FailurePath, Shared};
use super::stats::{bump, Counters};
use crate::core::event::PluginFault;
use crate::core::interceptor::late::{self, LateLane, LateTarget};
use crate::core::interceptor::{Context, Interceptor, Metadata, PluginId, RtcpFrom, RtpAttrs, Scope, Verdict};
use crate::core::packet::RtcpCompound;
use crate::core::DropReason;

/// The most timers one async plugin keeps at once (one per worker and chain that asked); a call asking for more
/// is counted as an emit refused.
pub const MAX_ASYNC_TIMERS: usize = 4096;
/// The most copies the thread takes from one lane before turning to the next.
const BATCH: usize = 64;
/// The most workers one async plugin takes copies from (each worker's lane has a tag below this).
pub const MAX_ASYNC_LANES: u32 = 255;
/// Where a lane's tag sits in the `stream` and `flow` an async plugin is passed.
const TAG_SHIFT: u32 = 24;
/// The stream index or flow key below the tag.
const INDEX_MASK: u32 = (1 << TAG_SHIFT) - 1;

/// What a copy was.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Rtp { ext_seq: u64 },
    Rtcp { from: RtcpFrom },
}

/// A copy's metadata, owned until the thread's call: what [`CallMetadata`] lends (reference counts only).
#[derive(Clone, Default)]
struct Snapshots {
    stream: Metadata,
    subscriber: Option<Metadata>,
}

impl Snapshots {
    #[inline]
    fn of(metadata: CallMetadata<'_>) -> Snapshots {
        Snapshots { stream: metadata.stream.clone(), subscriber: metadata.subscriber.cloned() }
    }

    #[inline]
    fn lend(&self) -> CallMetadata<'_> {
        CallMetadata { stream: &self.stream, subscriber: self.subscriber.as_ref() }
    }
}

/// One packet copy on its way to the plugin's thread.
struct Job {
    scope: Scope,
    /// The scope's stream's SSRC (the publisher's).
    ssrc: u32,
    kind: Kind,
    at: Instant,
    /// The stream's metadata (and in an egress chain its subscription's) when the copy was queued (none unless the
    /// plugin reads metadata).
    metadata: Snapshots,
    len: usize,
    data: Box<[u8]>,
}

/// One worker's queues with the plugin's thread: copies toward it, what it emits back.
pub(crate) struct Lane {
    /// Set in the top bits of the `stream` and `flow` the plugin is passed, so they tell workers apart.
    tag: u32,
    ready: ArrayQueue<Box<Job>>,
    free: ArrayQueue<Box<Job>>,
    pub(crate) back: Arc<LateLane>,
    /// Written by the worker only.
    counters: Arc<Counters>,
}

impl Lane {
    /// `capacity` copies each way, all preallocated.
    pub(crate) fn new(tag: u32, capacity: usize, counters: Arc<Counters>) -> Lane {
        let capacity = capacity.max(1);
        let free = ArrayQueue::new(capacity);
        let at = Instant::now();
        for _ in 0..capacity {
            let data = vec![0; PACKET_BUFFER_BYTES].into_boxed_slice();
            let scope = Scope::Stream { stream: 0 };
            let metadata = Snapshots::default();
            let job = Job { scope, ssrc: 0, kind: Kind::Rtp { ext_seq: 0 }, at, metadata, len: 0, data };
            let _ = free.push(Box::new(job));
        }
        let back = Arc::new(LateLane::new(capacity, PACKET_BUFFER_BYTES));
        Lane { tag, ready: ArrayQueue::new(capacity), free, back, counters }
    }

    /// Worker: queues a copy of `bytes` (patched by `patch`) with `metadata` (a box off the free list holds none,
    /// so nothing is freed here); false when no box is free.
    #[inline]
    fn offer(
        &self,
        (scope, ssrc, kind, at): (Scope, u32, Kind, Instant),
        metadata: Option<CallMetadata<'_>>,
        bytes: &[u8],
        patch: impl FnOnce(&mut [u8]),
    ) -> bool {
        let Some(mut job) = self.free.pop() else {
            return false;
        };
        let copy = &mut job.data[..bytes.len()];
        copy.copy_from_slice(bytes);
        patch(copy);
        (job.scope, job.ssrc, job.kind, job.at, job.len) = (scope, ssrc, kind, at, bytes.len());
        if let Some(metadata) = metadata {
            job.metadata = Snapshots::of(metadata);
        }
        // Cannot fail: boxes number exactly the capacity and this one came off the free list.
        let _ = self.ready.push(job);
        true
    }
}

/// Fault codes in [`Runner::fault`]: 0 while running.
fn fault_code(fault: PluginFault) -> u8 {
    match fault {
        PluginFault::Panic => 1,
        PluginFault::Trap => 2,
        PluginFault::OutOfFuel => 3,
        PluginFault::BadVerdict => 4,
        PluginFault::BadRewrite => 5,
    }
}

fn fault_of(code: u8) -> Option<PluginFault> {
    Some(match code {
        0 => return None,
        1 => PluginFault::Panic,
        3 => PluginFault::OutOfFuel,
        4 => PluginFault::BadVerdict,
        5 => PluginFault::BadRewrite,
        _ => PluginFault::Trap,
    })
}

/// An async plugin's thread, as the workers and the plugin see it.
pub(crate) struct Runner {
    /// The workers' lanes (changed off the hot path: a chain binds the plugin on a new worker, or it is unloaded).
    lanes: Mutex<Vec<Arc<Lane>>>,
    /// Set when `lanes` changed: the thread takes a new copy.
    changed: AtomicBool,
    /// Set while the thread sleeps (or is about to): a worker that queued a copy unparks it.
    sleeping: AtomicBool,
    stop: AtomicBool,
    /// 0 while the instance runs, else the fault that disabled it.
    fault: AtomicU8,
    /// Set by the first member that reported the fault as an event.
    reported: AtomicBool,
    /// The tag the next lane gets.
    next_tag: AtomicU32,
    thread: OnceLock<Thread>,
    /// How long the thread waits, once woken for copies, before it takes them (the plugin's `wake_delay_us`).
    wake_delay: Duration,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("fault", &self.fault()).finish()
    }
}

impl Runner {
    /// A runner whose thread is not started yet.
    pub(crate) fn new(wake_delay_us: u32) -> Runner {
        Runner {
            lanes: Mutex::new(Vec::new()),
            changed: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            fault: AtomicU8::new(0),
            reported: AtomicBool::new(false),
            next_tag: AtomicU32::new(0),
            thread: OnceLock::new(),
            wake_delay: Duration::from_micros(u64::from(wake_delay_us)),
        }
    }

    /// Starts the thread of `plugin` (loaded, shared), named after it.
    pub(crate) fn start(self: &Arc<Runner>, plugin: &Arc<Shared>) -> std::io::Result<()> {
        let runner = Arc::clone(self);
        let weak = Arc::downgrade(plugin);
        let handle =
            std::thread::Builder::new().name(format!("plugin-{}", plugin.name)).spawn(move || run(&runner, &weak))?;
        let _ = self.thread.set(handle.thread().clone());
        Ok(())
    }

    /// Asks the thread to stop (the plugin was dropped).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.unpark();
    }

    /// The fault that disabled the instance, if one did.
    #[inline]
    pub(crate) fn fault(&self) -> Option<PluginFault> {
        fault_of(self.fault.load(Ordering::Relaxed))
    }

    /// Worker, off the hot path: the tag of a new lane, `None` once [`MAX_ASYNC_LANES`] were handed out.
    pub(crate) fn next_tag(&self) -> Option<u32> {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        (tag < MAX_ASYNC_LANES).then_some(tag)
    }

    /// Worker, off the hot path: the thread takes `lane`'s copies from now on.
    pub(crate) fn add_lane(&self, lane: &Arc<Lane>) {
        self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Arc::clone(lane));
        self.changed.store(true, Ordering::SeqCst);
        self.unpark();
    }

    /// Worker, off the hot path: the thread no longer takes `lane`'s copies.
    pub(crate) fn remove_lane(&self, lane: &Arc<Lane>) {
        self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|held| !Arc::ptr_eq(held, lane));
        self.changed.store(true, Ordering::SeqCst);
        self.unpark();
    }

    /// Worker, once per iteration that queued copies ([`late::wake_later`]): wakes the thread if it sleeps (an
    /// atomic load otherwise).
    #[inline]
    fn wake(&self) {
        if self.sleeping.load(Ordering::SeqCst) {
            self.unpark();
        }
    }

    fn unpark(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

impl late::Wake for Runner {
    fn wake(&self) {
        Runner::wake(self);
    }
}

/// A timer the plugin asked for from a call of one worker's chain.
struct Timer {
    lane: Arc<Lane>,
    scope: Scope,
    ssrc: u32,
    at: Instant,
    /// The metadata the call that last asked for it read.
    metadata: Snapshots,
}

/// What the thread holds while it runs.
struct Running {
    instance: Option<Box<Instance>>,
    counters: Arc<Counters>,
    name: String,
    fuel_per_call: u64,
    epoch: Instant,
    timers: Vec<Timer>,
}

/// The thread: instantiates the plugin, then takes copies and fires timers until asked to stop.
fn run(runner: &Runner, plugin: &Weak<Shared>) {
    // Parked until a worker's chain runs the plugin async (its first lane): a plugin every chain runs inline costs
    // this parked thread and no instance.
    while runner.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_empty() {
        if runner.stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::park_timeout(Duration::from_secs(1));
    }
    let Some(mut state) = instantiate(runner, plugin) else { return };
    let mut lanes: Vec<Arc<Lane>> = Vec::new();
    loop {
        if runner.stop.load(Ordering::SeqCst) {
            return;
        }
        if runner.changed.swap(false, Ordering::SeqCst) {
            lanes = runner.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
            state.timers.retain(|timer| lanes.iter().any(|lane| Arc::ptr_eq(lane, &timer.lane)));
        }
        let mut worked = false;
        for lane in &lanes {
            for _ in 0..BATCH {
                let Some(mut job) = lane.ready.pop() else { break };
                worked = true;
                state.call(runner, lane, &job);
                job.metadata = Snapshots::default();
                let _ = lane.free.push(job);
            }
        }
        let now = Instant::now();
        state.fire_timers(runner, now);
        if worked {
            continue;
        }
        runner.sleeping.store(true, Ordering::SeqCst);
        let pending = runner.stop.load(Ordering::SeqCst)
            || runner.changed.load(Ordering::SeqCst)
            || lanes.iter().any(|lane| !lane.ready.is_empty());
        let next_timer = state.timers.iter().map(|timer| timer.at).min();
        if !pending {
            match next_timer {
                Some(at) => std::thread::park_timeout(at.saturating_duration_since(now)),
                None => std::thread::park_timeout(Duration::from_secs(1)),
            }
            bump(&state.counters.async_wakeups, 1);
        }
        runner.sleeping.store(false, Ordering::SeqCst);
        // Woken for copies: with a wake delay, let the copies of that time gather, so one wake-up serves them all
        // (a timer due sooner ends the wait; workers do not wake a thread that is not sleeping).
        if !runner.wake_delay.is_zero() && lanes.iter().any(|lane| !lane.ready.is_empty()) {
            let now = Instant::now();
            let until = next_timer.map_or(now + runner.wake_delay, |at| at.min(now + runner.wake_delay));
            std::thread::sleep(until.saturating_duration_since(now));
        }
    }
}

/// The thread's state with its instance (or none, disabled, when it cannot be made); `None` when the plugin is gone.
fn instantiate(runner: &Runner, plugin: &Weak<Shared>) -> Option<Running> {
    let plugin = plugin.upgrade()?;
    let counters = Arc::new(Counters::instance());
    plugin.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Arc::clone(&counters));
    let instance = match Instance::new(&plugin) {
        Ok(instance) => Some(Box::new(instance)),
        Err(error) => {
            tracing::warn!(plugin = %plugin.name, %error, "async WebAssembly plugin not instantiated on its thread; its packets take its failure path");
            bump(&counters.instantiation_failures, 1);
            bump(&counters.disabled, 1);
            runner.fault.store(fault_code(PluginFault::Trap), Ordering::SeqCst);
            None
        }
    };
    Some(Running {
        instance,
        counters,
        name: plugin.name.clone(),
        fuel_per_call: plugin.fuel_per_call,
        epoch: Instant::now(),
        timers: Vec::with_capacity(MAX_ASYNC_TIMERS),
    })
}

impl Running {
    fn micros(&self, at: Instant) -> i64 {
        i64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(i64::MAX)
    }

    /// Calls the instance on one copy and queues what it emitted back to the lane's worker.
    fn call(&mut self, runner: &Runner, lane: &Arc<Lane>, job: &Job) {
        let now_us = self.micros(job.at);
        let Some(instance) = self.instance.as_mut() else { return };
        if instance.write(&job.data[..job.len]).is_none() {
            return;
        }
        let (stream, flow) = tagged(lane.tag, job.scope);
        let len = job.len as i32;
        let (result, fuel) = match job.kind {
            Kind::Rtp { ext_seq } => {
                instance.on_rtp((len, stream, flow, ext_seq as i64, now_us), false, Some(job.metadata.lend()))
            }
            Kind::Rtcp { from } => {
                let from = match from {
                    RtcpFrom::Publisher => abi::NONE,
                    RtcpFrom::Subscriber { flow } => flow as i32,
                };
                match instance.on_rtcp((len, stream, flow, from, now_us), false, Some(job.metadata.lend())) {
                    Some(answer) => answer,
                    None => return,
                }
            }
        };
        let counters = &*self.counters;
        counters.called(fuel, instance.last_timed_ns());
        match result {
            Ok(abi::VERDICT_CONTINUE) => {}
            Ok(abi::VERDICT_DROP) => bump(&counters.drops, 1),
            Ok(abi::VERDICT_CONSUMED) => bump(&counters.consumed, 1),
            Ok(other) => {
                bump(&counters.bad_verdicts, 1);
                let what = format!("returned verdict {other}, which ABI v{} does not define", abi::ABI_VERSION);
                return self.disable(runner, what, PluginFault::BadVerdict);
            }
            Err(fault) => return self.fault(runner, fault),
        }
        self.deliver(lane, job.scope, job.ssrc, &job.metadata);
    }

    /// Calls `on_timer` for every timer due at `now`.
    fn fire_timers(&mut self, runner: &Runner, now: Instant) {
        while let Some(index) = self.timers.iter().position(|timer| timer.at <= now) {
            let timer = self.timers.swap_remove(index);
            let now_us = self.micros(now);
            let Some(instance) = self.instance.as_mut() else { return };
            let (stream, flow) = tagged(timer.lane.tag, timer.scope);
            let Some((result, fuel)) = instance.on_timer((stream, flow, now_us), Some(timer.metadata.lend())) else {
                continue;
            };
            self.counters.called(fuel, instance.last_timed_ns());
            match result {
                Ok(()) => self.deliver(&timer.lane, timer.scope, timer.ssrc, &timer.metadata),
                Err(fault) => return self.fault(runner, fault),
            }
        }
    }

    /// Queues what the last call staged on `lane`'s way back, and keeps the timer it asked for (with the `metadata`
    /// the call read).
    fn deliver(&mut self, lane: &Arc<Lane>, scope: Scope, ssrc: u32, metadata: &Snapshots) {
        let Some(instance) = self.instance.as_ref() else { return };
        let staged = instance.staged();
        let counters = &*self.counters;
        let (mut emitted, mut injected, mut dropped, mut refused) = (0, 0, 0, staged.refused);
        for (target, bytes) in staged.emits() {
            // A flow is named as the plugin was passed it: with the tag of the lane it goes back on.
            let untag = |flow: u32| (flow >> TAG_SHIFT == lane.tag).then_some(flow & INDEX_MASK);
            let target = match target {
                EmitTarget::Publisher => Some(LateTarget::Publisher),
                EmitTarget::Subscriber(flow) => untag(flow).map(LateTarget::Subscriber),
                EmitTarget::Retransmit(flow) => untag(flow).map(LateTarget::Retransmit),
                EmitTarget::Stream => Some(LateTarget::Stream),
            };
            let Some(target) = target else {
                refused += 1;
                continue;
            };
            if lane.back.offer(scope, ssrc, target, bytes) {
                emitted += 1;
                injected += u64::from(target == LateTarget::Stream);
            } else {
                dropped += 1;
            }
        }
        if let Some(at_us) = staged.timer {
            let at = self.epoch + Duration::from_micros(u64::try_from(at_us).unwrap_or(0));
            let held = self.timers.iter().position(|timer| timer.scope == scope && Arc::ptr_eq(&timer.lane, lane));
            match held {
                Some(index) => {
                    let timer = &mut self.timers[index];
                    timer.at = timer.at.min(at);
                    timer.metadata = metadata.clone();
                }
                None if self.timers.len() < MAX_ASYNC_TIMERS => {
                    let metadata = metadata.clone();
                    self.timers.push(Timer { lane: Arc::clone(lane), scope, ssrc, at, metadata });
                }
                None => refused += 1,
            }
        }
        for (counter, n) in [
            (&counters.emitted, emitted),
            (&counters.injected, injected),
            (&counters.async_returns_dropped, dropped),
            (&counters.emits_refused, refused),
        ] {
            if n != 0 {
                bump(counter, n);
            }
        }
    }

    fn fault(&mut self, runner: &Runner, fault: Fault) {
        let (what, kind) = match fault {
            Fault::OutOfFuel => {
                bump(&self.counters.out_of_fuel, 1);
                (format!("ran out of fuel ({} per call)", self.fuel_per_call), PluginFault::OutOfFuel)
            }
            Fault::Trap(trap) => {
                bump(&self.counters.traps, 1);
                (format!("trapped: {trap}"), PluginFault::Trap)
            }
        };
        self.disable(runner, what, kind);
    }

    /// Drops the instance: every worker's member takes the failure path from now on.
    fn disable(&mut self, runner: &Runner, what: String, fault: PluginFault) {
        tracing::warn!(plugin = %self.name, fault = %what, "async WebAssembly plugin disabled");
        self.instance = None;
        self.timers.clear();
        bump(&self.counters.disabled, 1);
        runner.fault.store(fault_code(fault), Ordering::SeqCst);
    }
}

/// `scope` as the ABI passes it to an async plugin: `stream` and `flow` with the lane's tag in their top bits.
fn tagged(tag: u32, scope: Scope) -> (i32, i32) {
    let tag = |index: u32| ((tag << TAG_SHIFT) | (index & INDEX_MASK)) as i32;
    match scope {
        Scope::Stream { stream } => (tag(stream), abi::NONE),
        Scope::Subscription { stream, flow } => (tag(stream), tag(flow)),
    }
}

/// A chain's member for an async plugin on one worker.
#[derive(Debug)]
pub(crate) struct AsyncLink {
    plugin: Arc<Shared>,
    id: PluginId,
    runner: Arc<Runner>,
    lane: Arc<Lane>,
    pass: AsyncPass,
    /// The attachment's failure path.
    on_failure: FailurePath,
    /// The chain's stream's SSRC (the publisher's).
    ssrc: u32,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("ready", &self.ready.len()).finish()
    }
}

impl AsyncLink {
    pub(crate) fn new(
        plugin: &Arc<Shared>,
        id: PluginId,
        runner: &Arc<Runner>,
        lane: &Arc<Lane>,
        (pass, on_failure): (AsyncPass, FailurePath),
        ssrc: u32,
    ) -> AsyncLink {
        let (runner, lane) = (Arc::clone(runner), Arc::clone(lane));
        AsyncLink { plugin: Arc::clone(plugin), id, runner, lane, pass, on_failure, ssrc }
    }

    /// The instance is disabled: the failure path (the first member to see it reports the event).
    fn failed(&self, fault: PluginFault, ctx: &mut Context<'_>) -> Verdict {
        if !self.runner.reported.swap(true, Ordering::Relaxed) {
            ctx.note_plugin_failure(self.id, fault);
        }
        bump(&self.lane.counters.failure_path, 1);
        failure_verdict(self.on_failure)
    }

    /// Queues a copy; the verdict the chain goes on with.
    #[inline]
    fn hand_over(&self, kind: Kind, bytes: &[u8], patch: impl FnOnce(&mut [u8]), ctx: &mut Context<'_>) -> bool {
        let counters = &*self.lane.counters;
        if bytes.len() > PACKET_BUFFER_BYTES {
            bump(&counters.oversize, 1);
            return false;
        }
        let metadata = self.plugin.reads_metadata.then(|| CallMetadata::of(ctx));
        if !self.lane.offer((ctx.scope(), self.ssrc, kind, ctx.now()), metadata, bytes, patch) {
            bump(&counters.async_queue_full, 1);
            return false;
        }
        bump(&counters.async_queued, 1);
        late::wake_later(&self.runner);
        true
    }
}

impl Interceptor for AsyncLink {
    fn on_rtp(&mut self, pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        if let Some(fault) = self.runner.fault() {
            return self.failed(fault, ctx);
        }
        let queued = self.hand_over(Kind::Rtp { ext_seq: attrs.ext_seq }, pkt, |copy| patch_header(copy, attrs), ctx);
        match (self.pass, queued) {
            (AsyncPass::Forward, _) => Verdict::Continue,
            (AsyncPass::Consume, true) => Verdict::Consumed,
            // Too long for the plugin's buffer: it passes, as it would a sync plugin.
            (AsyncPass::Consume, false) if pkt.len() > PACKET_BUFFER_BYTES => Verdict::Continue,
            (AsyncPass::Consume, false) => Verdict::Drop(DropReason::Plugin),
        }
    }

    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        if !self.plugin.wants_rtcp {
            return Verdict::Continue;
        }
        if let Some(fault) = self.runner.fault() {
            return self.failed(fault, ctx);
        }
        // RTCP always goes on: the plugin sees a copy.
        self.hand_over(Kind::Rtcp { from }, rtcp.bytes(), |_| {}, ctx);
        Verdict::Continue
    }
}
