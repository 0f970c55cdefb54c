//! The sans-IO forwarding core: everything a worker decides about a packet, and nothing it does.
//!
//! Owns the wire identifiers ([`wire`]), demultiplexing and borrowed RTP/RTCP views ([`packet`]),
//! per-subscription header rewriting ([`rewrite`]), continuous numbering across a stream switch
//! ([`continuity`]), the counters ([`counters`]), the commands ([`command`]), the queue of what to send
//! ([`transmit`]), the bounded
//! stream/subscription tables ([`table`]), the feedback routes to other workers (`routes`), the SSRC
//! aliases of streams that took an SSRC another worker owns (`aliases`), the SSRC placement rule
//! ([`steering`]) and the per-packet decision ([`forwarder`]); plus the shared fuzzing entry point
//! ([`fuzz`]).
//!
//! It must never open a socket, read a clock (time is an `Instant` argument), use `unsafe`, allocate,
//! log or lock per packet, or grow a table past its configured limit. Allocation is allowed only
//! when applying a command. Outside input never makes it panic: malformed packets are counted drops.
#![forbid(unsafe_code)]

mod aliases;
pub mod command;
pub mod continuity;
pub mod counters;
pub mod event;
pub mod feedback;
pub mod forwarder;
pub mod fuzz;
pub mod interceptor;
pub mod packet;
pub mod rate;
pub mod rewrite;
mod routes;
pub mod steering;
pub mod table;
pub mod transmit;
pub mod wire;

pub use command::{Command, CommandError, SourcePolicy, StreamId, SubscriptionId, MAX_CLOCK_RATE_HZ, NO_DESTINATION};
pub use continuity::Numbering;
pub use counters::{CounterInfo, CounterKind, Counters, DropReason, SharedCounters, COUNTERS};
pub use forwarder::{Forwarder, Outcome, StatsKey, MAX_HANDOVERS, UNKNOWN_SSRCS_PER_ROUND};
pub use fuzz::fuzz_entry;
pub use packet::{classify, PacketError, PacketKind, RtcpCompound, RtcpPacketRef, RtcpType, RtpView};
pub use rewrite::{Rewrite, IDENTITY_PAYLOAD_TYPE_MAP};
pub use steering::owner_of;
pub use table::ForwarderLimits;
pub use transmit::{Refused, Transmit, Transmits};
pub use wire::{RtpTimestamp, SeqNo, SeqUnwrapper, Ssrc};
