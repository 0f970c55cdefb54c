//! A WebAssembly plugin's counters.
//!
//! Owns [`Counters`] (one set per instance, written only by the thread that runs the instance, and one per worker
//! queue toward an async plugin's thread, written only by that worker: a relaxed load and store per event, no
//! read-modify-write, no shared cache line with another worker) and [`WasmPluginStats`] (their
//! sum, what telemetry reads). Must never be written from two threads.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a plugin did, summed over its instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WasmPluginStats {
    /// Instances the workers made.
    pub instances: u64,
    /// Instances disabled by a fault.
    pub disabled: u64,
    /// `on_rtp`, `on_rtcp` and `on_timer` calls.
    pub calls: u64,
    /// Calls that were timed: one in 64 of each instance's calls (the first, the 65th, ...).
    pub timed_calls: u64,
    /// Nanoseconds the timed calls took, summed: the call into WebAssembly and back (its fuel set and read, its
    /// metadata lent), not the copy of the packet into the plugin's memory nor what becomes of its verdict.
    pub timed_ns: u64,
    /// Calls that answered drop.
    pub drops: u64,
    /// Calls that answered consumed.
    pub consumed: u64,
    /// Fuel the calls used (about one unit per WebAssembly instruction).
    pub fuel: u64,
    /// Calls that trapped (unreachable, out-of-bounds, division by zero, stack overflow, ...).
    pub traps: u64,
    /// Calls that ran out of fuel.
    pub out_of_fuel: u64,
    /// Calls that answered a verdict the ABI does not define.
    pub bad_verdicts: u64,
    /// Packets a call rewrote (the rewrite was passed on).
    pub rewrites: u64,
    /// Calls whose rewrite was not an RTP packet with the SSRC it was given (or an RTCP compound with the first SSRC
    /// it was given), or was too long.
    pub bad_rewrites: u64,
    /// Instances that could not be made on a worker (they count as disabled too).
    pub instantiation_failures: u64,
    /// Packets after the instance was disabled, which took the failure path.
    pub failure_path: u64,
    /// Packets longer than the packet buffer, passed without a call.
    pub oversize: u64,
    /// Packets the plugins emitted that went to the outbox.
    pub emitted: u64,
    /// Packets the plugins emitted that were refused (bad range, too many, a target the chain may not use, a full
    /// outbox).
    pub emits_refused: u64,
    /// Packets the plugins injected into their stream that went to the outbox (included in `emitted`).
    pub injected: u64,
    /// Async mode: packet copies the workers queued for the plugin's thread.
    pub async_queued: u64,
    /// Async mode: packets whose copy found the queue toward the plugin's thread full (not handed over; with
    /// `async_pass = "consume"` the packet was dropped).
    pub async_queue_full: u64,
    /// Async mode: packets the plugin emitted that found the queue back to the worker full (dropped).
    pub async_returns_dropped: u64,
    /// Async mode: times the plugin's thread woke (for copies, a timer, or its idle tick).
    pub async_wakeups: u64,
}

impl WasmPluginStats {
    /// The mean time of a call, in nanoseconds, over the timed calls (`None` before the first).
    pub fn ns_per_call(&self) -> Option<u64> {
        self.timed_ns.checked_div(self.timed_calls)
    }

    /// Every counter by name (the names the API's `Plugin.counters` uses).
    pub fn named(&self) -> [(&'static str, u64); 23] {
        [
            ("instances", self.instances),
            ("disabled", self.disabled),
            ("calls", self.calls),
            ("timed_calls", self.timed_calls),
            ("timed_ns", self.timed_ns),
            ("drops", self.drops),
            ("consumed", self.consumed),
            ("fuel", self.fuel),
            ("traps", self.traps),
            ("out_of_fuel", self.out_of_fuel),
            ("bad_verdicts", self.bad_verdicts),
            ("rewrites", self.rewrites),
            ("bad_rewrites", self.bad_rewrites),
            ("instantiation_failures", self.instantiation_failures),
            ("failure_path", self.failure_path),
            ("oversize", self.oversize),
            ("emitted", self.emitted),
            ("emits_refused", self.emits_refused),
            ("injected", self.injected),
            ("async_queued", self.async_queued),
            ("async_queue_full", self.async_queue_full),
            ("async_returns_dropped", self.async_returns_dropped),
            ("async_wakeups", self.async_wakeups),
        ]
    }
}

/// One instance's counters (see the module docs for who writes them).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// 1 for an instance's counters, 0 for a worker's queue toward an async plugin's thread.
    pub(crate) instances: AtomicU64,
    pub(crate) disabled: AtomicU64,
    pub(crate) calls: AtomicU64,
    pub(crate) timed_calls: AtomicU64,
    pub(crate) timed_ns: AtomicU64,
    pub(crate) drops: AtomicU64,
    pub(crate) consumed: AtomicU64,
    pub(crate) fuel: AtomicU64,
    pub(crate) traps: AtomicU64,
    pub(crate) out_of_fuel: AtomicU64,
    pub(crate) bad_verdicts: AtomicU64,
    pub(crate) rewrites: AtomicU64,
    pub(crate) bad_rewrites: AtomicU64,
    pub(crate) instantiation_failures: AtomicU64,
    pub(crate) failure_path: AtomicU64,
    pub(crate) oversize: AtomicU64,
    pub(crate) emitted: AtomicU64,
    pub(crate) emits_refused: AtomicU64,
    pub(crate) injected: AtomicU64,
    pub(crate) async_queued: AtomicU64,
    pub(crate) async_queue_full: AtomicU64,
    pub(crate) async_returns_dropped: AtomicU64,
    pub(crate) async_wakeups: AtomicU64,
}

/// Adds `n` to a counter only this thread writes.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Counters {
    /// The counters of one instance.
    pub(crate) fn instance() -> Counters {
        Counters { instances: AtomicU64::new(1), ..Counters::default() }
    }

    /// Counts a call that used `fuel`, and took `timed_ns` when it was one of the timed ones.
    #[inline]
    pub(crate) fn called(&self, fuel: u64, timed_ns: Option<u64>) {
        bump(&self.calls, 1);
        bump(&self.fuel, fuel);
        if let Some(ns) = timed_ns {
            bump(&self.timed_calls, 1);
            bump(&self.timed_ns, ns);
        }
    }

    /// Adds this instance's counts to `out`.
    pub(crate) fn add_to(&self, out: &mut WasmPluginStats) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        out.instances += load(&self.instances);
        out.disabled += load(&self.disabled);
        out.calls += load(&self.calls);
        out.timed_calls += load(&self.timed_calls);
        out.timed_ns += load(&self.timed_ns);
        out.drops += load(&self.drops);
        out.consumed += load(&self.consumed);
        out.fuel += load(&self.fuel);
        out.traps += load(&self.traps);
        out.out_of_fuel += load(&self.out_of_fuel);
        out.bad_verdicts += load(&self.bad_verdicts);
        out.rewrites += load(&self.rewrites);
        out.bad_rewrites += load(&self.bad_rewrites);
        out.instantiation_failures += load(&self.instantiation_failures);
        out.failure_path += load(&self.failure_path);
        out.oversize += load(&self.oversize);
        out.emitted += load(&self.emitted);
        out.emits_refused += load(&self.emits_refused);
        out.injected += load(&self.injected);
        out.async_queued += load(&self.async_queued);
        out.async_queue_full += load(&self.async_queue_full);
        out.async_returns_dropped += load(&self.async_returns_dropped);
        out.async_wakeups += load(&self.async_wakeups);
    }
}
