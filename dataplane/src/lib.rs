//! The ringfwd data plane.
//!
//! Owns everything a packet touches between the media socket and the wire:
//! - [`core`]: the sans-IO forwarding core (stream and subscription tables, RTP/RTCP views, header rewriting,
//!   counters). No sockets, no clock, no `unsafe`.
//! - [`driver`]: the I/O drivers that feed the core: io_uring (multishot receive over a provided-buffer ring,
//!   zero-copy fanout with UDP GSO) and a `recvmmsg`/`sendmmsg` fallback; the sockets, the SSRC steering
//!   program and the packet pool. The only place with `unsafe`.
//! - [`runtime`]: worker threads pinned to cores, the bounded command/event rings to the control plane and
//!   the cross-worker handover rings.
//!
//! - [`control`]: the one module a control plane imports from: settings, commands, ids, rings, counters,
//!   snapshots and events, re-exported from where they live.
//! - [`plugin`]: the one module a native plugin's author imports: the interceptor trait and what it sees.
//! - [`wasm`]: WebAssembly plugins, host side: the ABI, loading and checking modules, the chain member.
//!
//! The data plane never blocks on the control plane and never allocates per packet.

pub mod control;
pub mod core;
pub mod driver;
pub mod plugin;
pub mod runtime;
pub mod wasm;
