//! Packets a plugin emits later, from its own thread: the way back from an async plugin to a worker.
//!
//! Owns [`LateLane`] (one bounded queue from one async plugin's thread to one worker: a ready list and a free list
//! of preallocated [`LatePacket`] boxes circulating between them, like the handover ring), [`LateTarget`], and this
//! thread's registry of lanes and its wake-up: the runtime installs the worker's wake-up ([`install_waker`]) when
//! the worker thread starts and takes what the lanes hold each iteration ([`take`], [`has_ready`]); an async
//! plugin registers a lane ([`register`]) when a chain on the worker binds it, and unregisters it when the plugin is
//! unloaded. The forwarder emits each packet as the chain of its [`Scope`] would have
//! (`Forwarder::on_late`). The other way, a worker wakes a plugin's thread once per loop iteration, not once per
//! copy it queued ([`wake_later`], [`wake_deferred`]): a thread that sleeps costs a system call to wake, and the
//! copies of one receive batch reach it together. Must never block or allocate per packet: a full lane refuses (the
//! sender counts it), and the worker is woken only when a lane goes from empty to non-empty.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use crossbeam::queue::ArrayQueue;

use super::context::Scope;

/// Wakes a worker (signals its eventfd): called by a plugin's thread, once per lane going non-empty.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Where a late packet goes: what the plugin's call asked for, resolved by the worker in the call's [`Scope`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LateTarget {
    /// RTCP to the stream's publisher.
    Publisher,
    /// As it is, to subscription `flow` (an egress chain: only its own).
    Subscriber(u32),
    /// Through subscription `flow`'s header rewrite (an ingress chain only).
    Retransmit(u32),
    /// Into the stream, fanned out to every subscription as if the publisher had sent it (an ingress chain only).
    Stream,
}

/// One packet on its way back to a worker.
#[derive(Debug)]
pub struct LatePacket {
    /// The chain whose call (or timer) emitted it.
    pub scope: Scope,
    /// The SSRC of the scope's stream when the packet was handed to the plugin: the worker refuses the packet when
    /// the stream's slot now holds another stream.
    pub ssrc: u32,
    /// Where it goes.
    pub target: LateTarget,
    len: usize,
    data: Box<[u8]>,
}

impl LatePacket {
    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

/// The queue from one plugin thread to one worker.
pub struct LateLane {
    ready: ArrayQueue<Box<LatePacket>>,
    free: ArrayQueue<Box<LatePacket>>,
    waker: OnceLock<Waker>,
}

impl std::fmt::Debug for LateLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateLane").field("ready", &self.ready.len()).field("capacity", &self.ready.capacity()).finish()
    }
}

impl LateLane {
    /// `capacity` (at least 1) boxes of `packet_bytes` each, all free.
    pub fn new(capacity: usize, packet_bytes: usize) -> LateLane {
        let capacity = capacity.max(1);
        let free = ArrayQueue::new(capacity);
        for _ in 0..capacity {
            let packet = LatePacket {
                scope: Scope::Stream { stream: 0 },
                ssrc: 0,
                target: LateTarget::Stream,
                len: 0,
                data: vec![0; packet_bytes].into_boxed_slice(),
            };
            let _ = free.push(Box::new(packet));
        }
        LateLane { ready: ArrayQueue::new(capacity), free, waker: OnceLock::new() }
    }

    /// Sender: queues a copy of `bytes` for the worker, waking it when the lane was empty; false (nothing queued)
    /// when the lane is full or `bytes` longer than a box.
    pub fn offer(&self, scope: Scope, ssrc: u32, target: LateTarget, bytes: &[u8]) -> bool {
        let Some(mut packet) = self.free.pop() else {
            return false;
        };
        let Some(copy) = packet.data.get_mut(..bytes.len()) else {
            let _ = self.free.push(packet);
            return false;
        };
        copy.copy_from_slice(bytes);
        (packet.scope, packet.ssrc, packet.target, packet.len) = (scope, ssrc, target, bytes.len());
        let was_empty = self.ready.is_empty();
        // Cannot fail: boxes number exactly the capacity and this one came off the free list.
        let _ = self.ready.push(packet);
        if was_empty {
            if let Some(wake) = self.waker.get() {
                wake();
            }
        }
        true
    }

    /// Packets waiting for the worker.
    pub fn queued(&self) -> usize {
        self.ready.len()
    }
}

/// A thread a worker wakes after queuing work for it (an async plugin's).
pub trait Wake: Send + Sync {
    /// Wakes the thread if it sleeps.
    fn wake(&self);
}

struct Registry {
    lanes: Vec<Arc<LateLane>>,
    waker: Option<Waker>,
    /// Threads to wake at the end of this worker's iteration, each once (room for one per lane: no allocation).
    deferred: Vec<Arc<dyn Wake>>,
}

thread_local! {
    static REGISTRY: RefCell<Registry> =
        const { RefCell::new(Registry { lanes: Vec::new(), waker: None, deferred: Vec::new() }) };
}

/// Per copy queued for `thread`: on a worker (a waker installed), wakes it at the end of this iteration
/// ([`wake_deferred`]), once however many copies it got; elsewhere (a test, a bench), at once.
#[inline]
pub fn wake_later<T: Wake + 'static>(thread: &Arc<T>) {
    let now = REGISTRY.with_borrow_mut(|registry| {
        if registry.waker.is_none() {
            return true;
        }
        let address = Arc::as_ptr(thread).cast::<()>();
        if !registry.deferred.iter().any(|held| std::ptr::eq(Arc::as_ptr(held).cast::<()>(), address)) {
            registry.deferred.push(Arc::clone(thread) as Arc<dyn Wake>);
        }
        false
    });
    if now {
        thread.wake();
    }
}

/// Worker thread, once per loop iteration (after the chains ran, before it may sleep): wakes each thread
/// [`wake_later`] named since the last call.
#[inline]
pub fn wake_deferred() {
    REGISTRY.with_borrow_mut(|registry| {
        for thread in registry.deferred.drain(..) {
            thread.wake();
        }
    });
}

/// Worker thread, at start: how plugin threads wake it (also given to lanes registered before).
pub fn install_waker(waker: Waker) {
    REGISTRY.with_borrow_mut(|registry| {
        for lane in &registry.lanes {
            let _ = lane.waker.set(Arc::clone(&waker));
        }
        registry.waker = Some(waker);
    });
}

/// Worker thread, off the hot path (a chain binds an async plugin): this worker takes what `lane` holds from now on.
pub fn register(lane: &Arc<LateLane>) {
    REGISTRY.with_borrow_mut(|registry| {
        if let Some(waker) = &registry.waker {
            let _ = lane.waker.set(Arc::clone(waker));
        }
        if !registry.lanes.iter().any(|held| Arc::ptr_eq(held, lane)) {
            registry.lanes.push(Arc::clone(lane));
            // One thread per lane at most: [`wake_later`] never grows the list past this.
            let room = registry.lanes.len();
            registry.deferred.reserve(room.saturating_sub(registry.deferred.len()));
        }
    });
}

/// Worker thread, off the hot path (the plugin was unloaded): this worker no longer takes from `lane` (what it
/// still holds is dropped).
pub fn unregister(lane: &Arc<LateLane>) {
    REGISTRY.with_borrow_mut(|registry| registry.lanes.retain(|held| !Arc::ptr_eq(held, lane)));
}

/// True when a lane of this thread holds a packet.
#[inline]
pub fn has_ready() -> bool {
    REGISTRY.with_borrow(|registry| registry.lanes.iter().any(|lane| !lane.ready.is_empty()))
}

/// Hands `emit` at most `max` packets from this thread's lanes, each lane in turn; how many it handed. `emit` may
/// not register or unregister lanes.
pub fn take(max: usize, mut emit: impl FnMut(&LatePacket)) -> usize {
    let mut taken = 0;
    let mut index = 0;
    while taken < max {
        let Some(lane) = REGISTRY.with_borrow(|registry| registry.lanes.get(index).map(Arc::clone)) else {
            break;
        };
        while taken < max {
            let Some(packet) = lane.ready.pop() else { break };
            emit(&packet);
            let _ = lane.free.push(packet);
            taken += 1;
        }
        index += 1;
    }
    taken
}

/// Whether the lane has a waker (for tests).
#[cfg(test)]
fn wakes(lane: &LateLane) -> bool {
    lane.waker.get().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Sleeper(AtomicUsize);

    impl Wake for Sleeper {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_worker_wakes_a_thread_once_per_iteration_elsewhere_at_once() {
        let (one, two) = (Arc::new(Sleeper(AtomicUsize::new(0))), Arc::new(Sleeper(AtomicUsize::new(0))));
        wake_later(&one);
        assert_eq!(one.0.load(Ordering::Relaxed), 1, "no worker on this thread: woken at once");
        install_waker(Arc::new(|| {}));
        register(&Arc::new(LateLane::new(2, 16)));
        register(&Arc::new(LateLane::new(2, 16)));
        for _ in 0..100 {
            wake_later(&one);
            wake_later(&two);
        }
        assert_eq!((one.0.load(Ordering::Relaxed), two.0.load(Ordering::Relaxed)), (1, 0), "not yet");
        wake_deferred();
        assert_eq!((one.0.load(Ordering::Relaxed), two.0.load(Ordering::Relaxed)), (2, 1), "once each");
        wake_deferred();
        assert_eq!((one.0.load(Ordering::Relaxed), two.0.load(Ordering::Relaxed)), (2, 1), "nothing new");
    }

    #[test]
    fn a_lane_is_bounded_wakes_on_empty_to_non_empty_and_recycles() {
        let woken = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&woken);
        install_waker(Arc::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        }));
        let lane = Arc::new(LateLane::new(2, 16));
        register(&lane);
        assert!(wakes(&lane));
        let scope = Scope::Stream { stream: 3 };
        assert!(lane.offer(scope, 7, LateTarget::Stream, b"one"));
        assert!(lane.offer(scope, 7, LateTarget::Publisher, b"two"));
        assert!(!lane.offer(scope, 7, LateTarget::Stream, b"three"), "full");
        assert!(!lane.offer(scope, 7, LateTarget::Stream, &[0; 17]), "too long");
        assert_eq!(woken.load(Ordering::Relaxed), 1, "woken once, when it went non-empty");
        assert!(has_ready());
        let mut seen = Vec::new();
        assert_eq!(take(1, |p| seen.push((p.bytes().to_vec(), p.target))), 1);
        assert_eq!(take(10, |p| seen.push((p.bytes().to_vec(), p.target))), 1);
        assert_eq!(seen, [(b"one".to_vec(), LateTarget::Stream), (b"two".to_vec(), LateTarget::Publisher)]);
        assert!(!has_ready());
        assert!(lane.offer(scope, 7, LateTarget::Stream, b"four"), "the boxes came back");
        assert_eq!(woken.load(Ordering::Relaxed), 2);
        unregister(&lane);
        assert!(!has_ready(), "an unregistered lane is not taken from");
        assert_eq!(take(10, |_| panic!("nothing registered")), 0);
    }
}
