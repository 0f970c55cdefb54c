//! The stream and subscription tables of one worker, bounded by [`ForwarderLimits`].
//!
//! Owns the slabs of streams and subscriptions (indices are `u32`, stable while the entry lives; a
//! subscription's index is its GSO flow key), the id maps, the `(source, ssrc)` map of locked streams, the
//! `(rtcp source, ssrc)` map of publishers without rtcp-mux (RTCP only),
//! the `ssrc` map of latching streams (waiting or latched), and the latching rule; it holds the worker's feedback
//! routes (`routes`) and SSRC aliases (`aliases`), which own their rules. Capacity is reserved at
//! construction, so lookups and latching never allocate; only commands (adding a subscription to a
//! stream's list, or moving it to another stream's list) may. Must never grow past its limits:
//! exceeding one is a `LimitReached` error.
//!
//! # Latching and re-latching
//! A latching stream (`SourcePolicy::Latch { window, fallback }`) locks to the first address that sends RTP
//! with its SSRC within `window` of its creation; after the window with no lock, to its fallback (any packet
//! from it). Once locked it *re-latches* (a NAT rebinding: the peer's public port changed) only when both
//! hold: the packet is RTP with the stream's SSRC, and the locked address has been silent (no packet of the
//! stream from it, RTP or RTCP) for at least `window`. While the locked address is live, packets from any
//! other address are `wrong_source` drops: a spoofer who knows the SSRC cannot take over a stream whose peer
//! is talking. (One that sends while the peer has been silent for the window does take it, as the peer's own
//! new address would: the same rule then brings it back to the peer once the spoofer is silent for the window.)
//! RTCP never latches nor re-latches, and a zero window never re-latches (the stream can only lock to its
//! fallback, and stays there). Each lock and re-lock is a `SourceChanged` event.
//!
//! # Moving a fixed source
//! `Command::SetSource` moves a fixed stream to another address: at once (a publisher's re-INVITE to a new port), or
//! with `overlap` when the new address carries the same stream as the old one (a relayed stream's other path between
//! cluster nodes, tens of µs faster or slower, with the same sequence numbers). So that no packet is lost
//! (it came on the new path before the move and on the old one after) nor sent twice (on the old path before, the
//! new one after), the stream keeps its previous source's key for an overlap of [`SOURCE_MOVE_OVERLAP`] from the
//! command: packets from either address are its, and RTP no newer than the highest it has taken (before the move,
//! then from either source) is dropped as `repeated`. The first packet of the stream at or after the end of the
//! overlap ends it: the previous key goes, and that address is a stranger again (`wrong_source`). A second move ends
//! the first one's overlap; a move back to the previous source switches at once; removing the stream or changing its
//! SSRC ends it; a stream that locks to the previous address (added, moved or re-keyed to it) takes it at once. If
//! `locked` had no room for the second key, the move switches at once (it has: two keys per stream are reserved).
//! RTCP to the publisher goes to the new source throughout. See `source_move`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;
use slab::Slab;

use super::aliases::SsrcAliases;
use super::command::{CommandError, SourcePolicy, StreamId, SubscriptionId, MAX_CLOCK_RATE_HZ};
use super::continuity::LastSent;
use super::interceptor::spec::{EgressSpec, IngressSpec, RtxParams};
use super::interceptor::Chain;
use super::rate::TokenBucket;
use super::rewrite::Rewrite;
use super::routes::FeedbackRoutes;
use super::wire::SeqUnwrapper;

mod source_move;

pub use source_move::SOURCE_MOVE_OVERLAP;
pub(crate) use source_move::{MovedFrom, Overlap};

/// The bounds of one worker's tables and packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwarderLimits {
    /// Streams in the table at once.
    pub max_streams: u32,
    /// Subscriptions in the table at once, all streams together.
    pub max_subscriptions: u32,
    /// Subscriptions of one stream.
    pub max_subscriptions_per_stream: u32,
    /// Larger datagrams are dropped as oversize; also the size of the RTCP scratch buffer.
    pub max_packet_bytes: usize,
    /// Packets per second one stream's source may send; the excess is dropped (`rate_limited`). 0: unlimited.
    pub max_packets_per_second_per_source: u32,
}

/// Where a stream takes its packets from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SourceState {
    /// Locked to this address (fixed, latched or fallback).
    Locked(SocketAddr),
    /// Waiting for its first RTP; `deadline` is the end of the latch window (`None`: never ends).
    Waiting { deadline: Option<Instant>, fallback: Option<SocketAddr> },
}

/// One published stream.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) id: StreamId,
    pub(crate) ssrc: u32,
    pub(crate) source: SourceState,
    /// A latching stream's window (`None`: a fixed source): how long its locked source must be silent before
    /// another address may re-latch it.
    pub(crate) latch_window: Option<Duration>,
    /// When a packet of it last came from its locked source (or it locked): the re-latch rule's silence.
    pub(crate) heard_at: Instant,
    /// RTP timestamp ticks per second.
    pub(crate) clock_rate_hz: u32,
    /// Slab indices of its subscriptions, in the order they were added.
    pub(crate) subscriptions: Vec<u32>,
    /// Its source's packet-rate limit.
    pub(crate) rate: TokenBucket,
    /// Its ingress interceptors.
    pub(crate) ingress: Chain,
    /// The spec its ingress chain was bound from (set by the forwarder; bound anew on an SSRC change).
    pub(crate) ingress_spec: IngressSpec,
    /// Extends its sequence numbers (for the interceptors' attributes).
    pub(crate) seq: SeqUnwrapper,
    /// The worker socket its last packet arrived on (RTCP to the publisher leaves from it).
    pub(crate) socket: usize,
    /// When its last packet arrived (`None`: none yet, or reported inactive since).
    pub(crate) last_packet: Option<Instant>,
    /// Packets dropped by a rate limit since the last `RateLimited` event.
    pub(crate) rate_limited_pending: u64,
    /// Its publisher's RTCP address when not muxed (RTP port + 1): its RTCP is accepted from there and RTCP to
    /// the publisher goes there.
    pub(crate) rtcp_source: Option<SocketAddr>,
    /// A fixed stream moved by `Command::SetSource` during the overlap with its previous source (see the module
    /// docs, "Moving a fixed source").
    pub(crate) moved_from: Option<MovedFrom>,
}

/// One subscriber's copy of a stream.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) id: SubscriptionId,
    pub(crate) stream: u32,
    /// Where its copies go; port 0: none yet (see [`has_destination`]).
    pub(crate) dest: SocketAddr,
    pub(crate) socket: usize,
    pub(crate) rewrite: Rewrite,
    pub(crate) paused: bool,
    /// The last RTP header sent to this subscriber (sequence number, timestamp, when).
    pub(crate) last_sent: Option<LastSent>,
    /// Switched to another stream after sending: the offsets are set on that stream's first RTP.
    pub(crate) rebase_pending: bool,
    /// Its egress interceptors.
    pub(crate) egress: Chain,
    /// Extends its outgoing sequence numbers (for the interceptors' attributes).
    pub(crate) out_seq: SeqUnwrapper,
    /// RTX for its retransmissions, when negotiated, and the RTX stream's next sequence number.
    pub(crate) rtx: Option<(RtxParams, u16)>,
    /// The key of its entry in the feedback index (its destination and out SSRC).
    pub(crate) feedback_key: (SocketAddr, u32),
    /// The spec its egress chain was bound from (a reconfiguration with the same spec keeps the chain).
    pub(crate) egress_spec: EgressSpec,
    /// Its subscriber's RTCP address when not muxed: RTCP to the subscriber goes there, and its feedback is
    /// recognised there as well (a second feedback key, its RTCP address and out SSRC).
    pub(crate) rtcp_dest: Option<SocketAddr>,
}

/// What a new subscription is made of (besides its id, stream and chain).
#[derive(Clone, Debug)]
pub(crate) struct NewSubscription {
    pub(crate) dest: SocketAddr,
    pub(crate) socket: usize,
    pub(crate) rewrite: Rewrite,
    pub(crate) paused: bool,
    pub(crate) egress_spec: EgressSpec,
    /// See `Command::AddSubscription::continues`.
    pub(crate) continues: Option<super::continuity::Numbering>,
}

/// Whether `dest` is an address to send to: port 0 means the subscriber has none yet (a latching endpoint that
/// has not sent), and nothing goes to it until a `SetDestination`.
pub(crate) fn has_destination(dest: SocketAddr) -> bool {
    dest.port() != 0
}

/// The result of looking up a packet's stream when `(source, ssrc)` is not locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Latch {
    /// The stream just locked (or re-latched) to the packet's source.
    Locked(u32),
    /// The SSRC waits to latch, but the window is over and the source is not the fallback.
    Expired,
    /// The SSRC is known here with another source (or waits to latch and this is RTCP, or is latched to a
    /// source that is still live).
    WrongSource,
    /// No stream here has this SSRC.
    Unknown,
}

/// The tables of one worker.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) limits: ForwarderLimits,
    pub(crate) streams: Slab<Stream>,
    pub(crate) subscriptions: Slab<Subscription>,
    /// One past the highest stream index ever used: a sweep over the streams stops here, not at the
    /// reserved capacity (the slab reuses freed indices, so this stays at the peak count).
    stream_slots: usize,
    /// One past the highest subscription index ever used.
    subscription_slots: usize,
    stream_ids: Map<StreamId, u32>,
    subscription_ids: Map<SubscriptionId, u32>,
    /// Streams by (source, SSRC): locked streams, and moving ones by their previous source too (two keys per stream
    /// reserved).
    locked: Map<(SocketAddr, u32), u32>,
    /// Streams by (RTCP source, SSRC), for publishers whose RTCP is not muxed: RTCP only.
    rtcp_sources: Map<(SocketAddr, u32), u32>,
    /// Latching streams by SSRC, waiting or latched (at most one per SSRC).
    latching: Map<u32, u32>,
    /// How many streams (locked or waiting) have each SSRC: tells WrongSource from UnknownSsrc.
    ssrc_streams: Map<u32, u32>,
    /// Subscriptions by (destination or RTCP destination, out SSRC): where a subscriber's RTCP belongs. When two
    /// share a key, the first keeps it. Up to two keys per subscription.
    feedback: Map<(SocketAddr, u32), u32>,
    /// Feedback about out SSRCs this worker owns for subscriptions other workers hold.
    pub(crate) routes: FeedbackRoutes,
    /// SSRCs this worker owns whose streams other workers hold.
    pub(crate) aliases: SsrcAliases,
}

/// The maps of the table: std's, with foldhash (fast, seeded).
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, SeedableRandomState>;

/// A map that holds up to `max_items` without ever resizing, whatever its history of removals.
///
/// Removals leave tombstones; when they use up the spare room, the next insert rehashes. hashbrown
/// rehashes in place (no allocation) only while the items fit in half the table, so the map is
/// reserved at twice the bound.
pub(crate) fn reserved_map<K, V>(max_items: usize, hasher: &SeedableRandomState) -> Map<K, V> {
    Map::with_capacity_and_hasher(max_items.saturating_mul(2), hasher.clone())
}

impl Table {
    /// Empty tables with room for `limits` reserved, hashing with a random seed.
    pub(crate) fn new(limits: ForwarderLimits) -> Table {
        Table::with_hasher(limits, SeedableRandomState::random())
    }

    /// Like [`Table::new`] with a fixed hash seed: the same commands and packets give the same
    /// internal layout on every run (tests, fuzzing).
    pub(crate) fn with_hash_seed(limits: ForwarderLimits, seed: u64) -> Table {
        Table::with_hasher(limits, SeedableRandomState::with_seed(seed, SharedSeed::global_fixed()))
    }

    fn with_hasher(limits: ForwarderLimits, hasher: SeedableRandomState) -> Table {
        let streams = limits.max_streams as usize;
        let subscriptions = limits.max_subscriptions as usize;
        Table {
            limits,
            streams: Slab::with_capacity(streams),
            subscriptions: Slab::with_capacity(subscriptions),
            stream_slots: 0,
            subscription_slots: 0,
            stream_ids: reserved_map(streams, &hasher),
            subscription_ids: reserved_map(subscriptions, &hasher),
            locked: reserved_map(streams.saturating_mul(2), &hasher),
            rtcp_sources: reserved_map(streams, &hasher),
            latching: reserved_map(streams, &hasher),
            ssrc_streams: reserved_map(streams, &hasher),
            feedback: reserved_map(subscriptions.saturating_mul(2), &hasher),
            routes: FeedbackRoutes::new(limits.max_subscriptions, &hasher),
            aliases: SsrcAliases::new(limits.max_streams, &hasher),
        }
    }

    /// One past the highest stream index in use or used before (at most the reserved count): every stream's
    /// index is below it.
    pub(crate) fn stream_slots(&self) -> usize {
        self.stream_slots
    }

    /// One past the highest subscription index in use or used before.
    pub(crate) fn subscription_slots(&self) -> usize {
        self.subscription_slots
    }

    pub(crate) fn add_stream(
        &mut self,
        now: Instant,
        id: StreamId,
        ssrc: u32,
        policy: SourcePolicy,
        clock_rate_hz: u32,
        ingress: impl FnOnce() -> Chain,
    ) -> Result<(), CommandError> {
        if self.stream_ids.contains_key(&id) {
            return Err(CommandError::StreamExists { id });
        }
        if !(1..=MAX_CLOCK_RATE_HZ).contains(&clock_rate_hz) {
            return Err(CommandError::ClockRateOutOfRange { id, clock_rate_hz });
        }
        if self.streams.len() >= self.limits.max_streams as usize {
            return Err(CommandError::LimitReached { limit: "max_streams", value: self.limits.max_streams });
        }
        let (source, latch_window) = match policy {
            SourcePolicy::Fixed(addr) => {
                if self.key_holder((addr, ssrc)).is_some() {
                    return Err(CommandError::SsrcInUse { ssrc, source_addr: Some(addr) });
                }
                self.yield_key((addr, ssrc));
                (SourceState::Locked(addr), None)
            }
            SourcePolicy::Latch { window, fallback } => {
                if self.latching.contains_key(&ssrc) {
                    return Err(CommandError::SsrcInUse { ssrc, source_addr: None });
                }
                (SourceState::Waiting { deadline: now.checked_add(window), fallback }, Some(window))
            }
        };
        let idx = self.streams.insert(Stream {
            id,
            ssrc,
            source,
            latch_window,
            heard_at: now,
            clock_rate_hz,
            subscriptions: Vec::new(),
            rate: TokenBucket::new(self.limits.max_packets_per_second_per_source),
            ingress: ingress(),
            ingress_spec: IngressSpec::default(),
            seq: SeqUnwrapper::new(),
            socket: 0,
            last_packet: None,
            rate_limited_pending: 0,
            rtcp_source: None,
            moved_from: None,
        }) as u32;
        self.stream_slots = self.stream_slots.max(idx as usize + 1);
        match source {
            SourceState::Locked(addr) => self.locked.insert((addr, ssrc), idx),
            SourceState::Waiting { .. } => self.latching.insert(ssrc, idx),
        };
        self.stream_ids.insert(id, idx);
        *self.ssrc_streams.entry(ssrc).or_insert(0) += 1;
        Ok(())
    }

    /// Re-keys stream `id` to `ssrc` (see `Command::ChangeStreamSsrc`): its source keys, the SSRC counts, its
    /// sequence extender (a move's overlap ends: its numbers start again); pins each subscription's unset out SSRC
    /// to the old SSRC and marks a rebase pending where something was sent. Answers the slab index. Never allocates
    /// (capacity reserved).
    pub(crate) fn change_stream_ssrc(&mut self, id: StreamId, ssrc: u32) -> Result<u32, CommandError> {
        let idx = *self.stream_ids.get(&id).ok_or(CommandError::StreamNotFound { id })?;
        let stream = &self.streams[idx as usize];
        let old = stream.ssrc;
        if old == ssrc {
            return Ok(idx);
        }
        let (latching, source, rtcp_source) = (stream.latch_window.is_some(), stream.source, stream.rtcp_source);
        if latching && self.latching.contains_key(&ssrc) {
            return Err(CommandError::SsrcInUse { ssrc, source_addr: None });
        }
        if let SourceState::Locked(addr) = source {
            if self.key_holder((addr, ssrc)).is_some() {
                return Err(CommandError::SsrcInUse { ssrc, source_addr: Some(addr) });
            }
            self.end_move(idx);
            self.yield_key((addr, ssrc));
            self.locked.remove(&(addr, old));
            self.locked.insert((addr, ssrc), idx);
        }
        if latching {
            self.latching.remove(&old);
            self.latching.insert(ssrc, idx);
        }
        if let Some(rtcp) = rtcp_source {
            if self.rtcp_sources.get(&(rtcp, old)) == Some(&idx) {
                self.rtcp_sources.remove(&(rtcp, old));
            }
            self.rtcp_sources.entry((rtcp, ssrc)).or_insert(idx);
        }
        if let Some(count) = self.ssrc_streams.get_mut(&old) {
            *count -= 1;
            if *count == 0 {
                self.ssrc_streams.remove(&old);
            }
        }
        *self.ssrc_streams.entry(ssrc).or_insert(0) += 1;
        let stream = &mut self.streams[idx as usize];
        stream.ssrc = ssrc;
        stream.seq = SeqUnwrapper::new();
        for &flow in &stream.subscriptions {
            let sub = &mut self.subscriptions[flow as usize];
            sub.rewrite.out_ssrc.get_or_insert(old);
            sub.rebase_pending = sub.last_sent.is_some();
        }
        Ok(idx)
    }

    /// Removes a stream and its subscriptions.
    pub(crate) fn remove_stream(&mut self, id: StreamId) -> Result<(), CommandError> {
        let idx = self.stream_ids.remove(&id).ok_or(CommandError::StreamNotFound { id })?;
        let stream = self.streams.remove(idx as usize);
        for &flow in &stream.subscriptions {
            let sub = self.subscriptions.remove(flow as usize);
            self.subscription_ids.remove(&sub.id);
            self.forget_feedback_key(sub.feedback_key, flow);
            if let Some(rtcp) = sub.rtcp_dest {
                self.forget_feedback_key((rtcp, sub.feedback_key.1), flow);
            }
        }
        if let Some(rtcp) = stream.rtcp_source {
            if self.rtcp_sources.get(&(rtcp, stream.ssrc)) == Some(&idx) {
                self.rtcp_sources.remove(&(rtcp, stream.ssrc));
            }
        }
        if let SourceState::Locked(addr) = stream.source {
            self.locked.remove(&(addr, stream.ssrc));
        }
        if let Some(moved) = stream.moved_from {
            if self.locked.get(&(moved.previous, stream.ssrc)) == Some(&idx) {
                self.locked.remove(&(moved.previous, stream.ssrc));
            }
        }
        if stream.latch_window.is_some() {
            self.latching.remove(&stream.ssrc);
        }
        if let Some(count) = self.ssrc_streams.get_mut(&stream.ssrc) {
            *count -= 1;
            if *count == 0 {
                self.ssrc_streams.remove(&stream.ssrc);
            }
        }
        Ok(())
    }

    /// Adds a subscription; `egress` builds its chain, given the subscription's flow key.
    pub(crate) fn add_subscription(
        &mut self,
        id: SubscriptionId,
        stream: StreamId,
        new: NewSubscription,
        egress: impl FnOnce(u32) -> Chain,
    ) -> Result<(), CommandError> {
        let NewSubscription { dest, socket, rewrite, paused, egress_spec, continues } = new;
        if self.subscription_ids.contains_key(&id) {
            return Err(CommandError::SubscriptionExists { id });
        }
        let stream_idx = *self.stream_ids.get(&stream).ok_or(CommandError::StreamNotFound { id: stream })?;
        if let Some((from, to)) = rewrite.invalid_payload_type() {
            return Err(CommandError::PayloadTypeOutOfRange { from, to });
        }
        egress_spec.check_rtx()?;
        if self.subscriptions.len() >= self.limits.max_subscriptions as usize {
            let value = self.limits.max_subscriptions;
            return Err(CommandError::LimitReached { limit: "max_subscriptions", value });
        }
        self.check_stream_room(stream_idx)?;
        let flow = self.subscriptions.vacant_key() as u32;
        let feedback_key = (dest, rewrite.out_ssrc.unwrap_or(self.streams[stream_idx as usize].ssrc));
        let sub = Subscription {
            id,
            stream: stream_idx,
            dest,
            socket,
            rewrite,
            paused,
            // Continuing a subscriber's numbering is a rebase on the first packet, as after a switch.
            last_sent: continues.map(LastSent::from),
            rebase_pending: continues.is_some(),
            egress: egress(flow),
            out_seq: SeqUnwrapper::new(),
            rtx: egress_spec.rtx.map(|params| (params, 0)),
            feedback_key,
            egress_spec,
            rtcp_dest: None,
        };
        let idx = self.subscriptions.insert(sub) as u32;
        self.subscription_slots = self.subscription_slots.max(idx as usize + 1);
        self.streams[stream_idx as usize].subscriptions.push(idx);
        self.subscription_ids.insert(id, idx);
        self.feedback.entry(feedback_key).or_insert(idx);
        Ok(())
    }

    /// Removes `key` from the feedback index if it points at `flow`.
    fn forget_feedback_key(&mut self, key: (SocketAddr, u32), flow: u32) {
        if self.feedback.get(&key) == Some(&flow) {
            self.feedback.remove(&key);
        }
    }

    /// The subscription whose subscriber at `src` receives `out_ssrc` (see [`Subscription::feedback_key`]).
    pub(crate) fn find_feedback(&self, src: SocketAddr, out_ssrc: u32) -> Option<u32> {
        self.feedback.get(&(src, out_ssrc)).copied()
    }

    pub(crate) fn remove_subscription(&mut self, id: SubscriptionId) -> Result<(), CommandError> {
        let idx = self.subscription_ids.remove(&id).ok_or(CommandError::SubscriptionNotFound { id })?;
        let sub = self.subscriptions.remove(idx as usize);
        self.unlink(sub.stream, idx);
        self.forget_feedback_key(sub.feedback_key, idx);
        if let Some(rtcp) = sub.rtcp_dest {
            self.forget_feedback_key((rtcp, sub.feedback_key.1), idx);
        }
        Ok(())
    }

    /// Moves subscription `id` to `stream`'s list (see `Command::SwitchSubscription`). Pins `out_ssrc`
    /// to the old stream's SSRC if unset; a rebase is pending if anything was sent.
    pub(crate) fn switch_subscription(&mut self, id: SubscriptionId, stream: StreamId) -> Result<(), CommandError> {
        let idx = self.subscription_slot(id)?;
        let new = *self.stream_ids.get(&stream).ok_or(CommandError::StreamNotFound { id: stream })?;
        let old = self.subscriptions[idx as usize].stream;
        if old == new {
            return Ok(());
        }
        self.check_stream_room(new)?;
        self.unlink(old, idx);
        let old_ssrc = self.streams[old as usize].ssrc;
        self.streams[new as usize].subscriptions.push(idx);
        let sub = &mut self.subscriptions[idx as usize];
        sub.stream = new;
        sub.rewrite.out_ssrc.get_or_insert(old_ssrc);
        sub.rebase_pending = sub.last_sent.is_some();
        Ok(())
    }

    /// Replaces subscription `id`'s payload-type map (checked by the caller), RTX and spec, and its egress chain
    /// when `egress` is `Some` (see `Command::ReconfigureSubscription`). The RTX sequence number continues while
    /// its SSRC stays.
    pub(crate) fn reconfigure_subscription(
        &mut self,
        id: SubscriptionId,
        payload_type_map: [u8; 128],
        spec: EgressSpec,
        egress: Option<Chain>,
    ) -> Result<(), CommandError> {
        let idx = self.subscription_slot(id)?;
        let sub = &mut self.subscriptions[idx as usize];
        sub.rewrite.payload_type_map = payload_type_map;
        sub.rtx = match (spec.rtx, sub.rtx) {
            (Some(new), Some((old, seq))) if new.ssrc == old.ssrc => Some((new, seq)),
            (new, _) => new.map(|params| (params, 0)),
        };
        if let Some(chain) = egress {
            sub.egress = chain;
        }
        sub.egress_spec = spec;
        Ok(())
    }

    /// The spec subscription `id`'s egress chain was bound from, with what its chain needs to be bound again:
    /// `(flow, publisher SSRC, out SSRC, clock rate)`.
    pub(crate) fn egress_binding(&self, id: SubscriptionId) -> Option<(&EgressSpec, u32, u32, u32, u32)> {
        let flow = self.subscription_index(id)?;
        let sub = &self.subscriptions[flow as usize];
        let stream = &self.streams[sub.stream as usize];
        Some((&sub.egress_spec, flow, stream.ssrc, sub.rewrite.out_ssrc.unwrap_or(stream.ssrc), stream.clock_rate_hz))
    }

    pub(crate) fn set_paused(&mut self, id: SubscriptionId, paused: bool) -> Result<(), CommandError> {
        let idx = self.subscription_slot(id)?;
        self.subscriptions[idx as usize].paused = paused;
        Ok(())
    }

    /// Sends subscription `id`'s copies to `dest` from socket `socket` from now on (see
    /// `Command::SetDestination`), moving its feedback key: its subscriber's RTCP is recognised at `dest`.
    pub(crate) fn set_destination(
        &mut self,
        id: SubscriptionId,
        dest: SocketAddr,
        socket: usize,
    ) -> Result<(), CommandError> {
        let idx = self.subscription_slot(id)?;
        let old_key = self.subscriptions[idx as usize].feedback_key;
        self.forget_feedback_key(old_key, idx);
        let key = (dest, old_key.1);
        let sub = &mut self.subscriptions[idx as usize];
        sub.dest = dest;
        sub.socket = socket;
        sub.feedback_key = key;
        self.feedback.entry(key).or_insert(idx);
        Ok(())
    }

    /// Runs `Command::SetRtcpSource`: re-keys stream `id`'s RTCP source. Never allocates (capacity reserved).
    pub(crate) fn set_rtcp_source(&mut self, id: StreamId, source: Option<SocketAddr>) -> Result<(), CommandError> {
        let idx = *self.stream_ids.get(&id).ok_or(CommandError::StreamNotFound { id })?;
        let stream = &mut self.streams[idx as usize];
        let ssrc = stream.ssrc;
        if let Some(new) = source.filter(|&new| stream.rtcp_source != Some(new)) {
            if self.rtcp_sources.contains_key(&(new, ssrc)) {
                return Err(CommandError::SsrcInUse { ssrc, source_addr: Some(new) });
            }
        }
        if let Some(old) = stream.rtcp_source.take() {
            if self.rtcp_sources.get(&(old, ssrc)) == Some(&idx) {
                self.rtcp_sources.remove(&(old, ssrc));
            }
        }
        stream.rtcp_source = source;
        if let Some(new) = source {
            self.rtcp_sources.insert((new, ssrc), idx);
        }
        Ok(())
    }

    /// The stream whose publisher sends its RTCP about `ssrc` from `src` (not muxed).
    pub(crate) fn find_rtcp_source(&self, src: SocketAddr, ssrc: u32) -> Option<u32> {
        self.rtcp_sources.get(&(src, ssrc)).copied()
    }

    /// Runs `Command::SetRtcpDestination`: moves subscription `id`'s second feedback key. Never allocates
    /// (capacity reserved for two keys per subscription).
    pub(crate) fn set_rtcp_destination(
        &mut self,
        id: SubscriptionId,
        dest: Option<SocketAddr>,
    ) -> Result<(), CommandError> {
        let idx = self.subscription_slot(id)?;
        let sub = &mut self.subscriptions[idx as usize];
        let out_ssrc = sub.feedback_key.1;
        let old = std::mem::replace(&mut sub.rtcp_dest, dest);
        if let Some(old) = old {
            self.forget_feedback_key((old, out_ssrc), idx);
        }
        if let Some(new) = dest {
            self.feedback.entry((new, out_ssrc)).or_insert(idx);
        }
        Ok(())
    }

    /// The slab index of subscription `id`, or `SubscriptionNotFound`.
    fn subscription_slot(&self, id: SubscriptionId) -> Result<u32, CommandError> {
        self.subscription_index(id).ok_or(CommandError::SubscriptionNotFound { id })
    }

    /// `LimitReached` if stream `stream_idx` has `max_subscriptions_per_stream` subscriptions already.
    fn check_stream_room(&self, stream_idx: u32) -> Result<(), CommandError> {
        let per_stream = self.limits.max_subscriptions_per_stream;
        if self.streams[stream_idx as usize].subscriptions.len() >= per_stream as usize {
            return Err(CommandError::LimitReached { limit: "max_subscriptions_per_stream", value: per_stream });
        }
        Ok(())
    }

    /// Takes subscription `idx` out of stream `stream_idx`'s list, keeping the others in order.
    fn unlink(&mut self, stream_idx: u32, idx: u32) {
        let list = &mut self.streams[stream_idx as usize].subscriptions;
        if let Some(pos) = list.iter().position(|&s| s == idx) {
            list.remove(pos);
        }
    }

    /// The stream's slab index.
    pub(crate) fn stream_index(&self, id: StreamId) -> Option<u32> {
        self.stream_ids.get(&id).copied()
    }

    /// The subscription's slab index.
    pub(crate) fn subscription_index(&self, id: SubscriptionId) -> Option<u32> {
        self.subscription_ids.get(&id).copied()
    }

    /// The stream locked to `(src, ssrc)`, or moving from `src` (see [`Table::take_while_moving`]).
    pub(crate) fn find_locked(&self, src: SocketAddr, ssrc: u32) -> Option<u32> {
        self.locked.get(&(src, ssrc)).copied()
    }

    /// Looks up a packet whose `(src, ssrc)` is not locked ([`Table::find_locked`] missed) and latches
    /// when the rule allows (see the module docs): RTP within the window locks to `src`; after the window, any
    /// packet from the fallback locks to it; RTP re-latches a latched stream whose source has been silent for
    /// the window. RTCP never latches within the window. Never allocates (capacity reserved).
    pub(crate) fn try_latch(&mut self, now: Instant, src: SocketAddr, ssrc: u32, is_rtp: bool) -> Latch {
        let Some(&idx) = self.latching.get(&ssrc) else {
            return if self.ssrc_streams.contains_key(&ssrc) { Latch::WrongSource } else { Latch::Unknown };
        };
        let stream = &mut self.streams[idx as usize];
        match stream.source {
            SourceState::Waiting { deadline, fallback } => {
                let in_window = deadline.is_none_or(|deadline| now < deadline);
                let lock = if in_window { is_rtp } else { fallback == Some(src) };
                if !lock {
                    return if in_window { Latch::WrongSource } else { Latch::Expired };
                }
            }
            SourceState::Locked(old) => {
                // A zero window never re-latches: any packet would otherwise take the stream over.
                let window = stream.latch_window.filter(|window| !window.is_zero());
                let silent = window.is_some_and(|window| now.saturating_duration_since(stream.heard_at) >= window);
                if !(is_rtp && silent) {
                    return Latch::WrongSource;
                }
                self.locked.remove(&(old, ssrc));
            }
        }
        stream.source = SourceState::Locked(src);
        stream.heard_at = now;
        self.locked.insert((src, ssrc), idx);
        Latch::Locked(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    pub(super) fn limits() -> ForwarderLimits {
        ForwarderLimits {
            max_streams: 8,
            max_subscriptions: 16,
            max_subscriptions_per_stream: 4,
            max_packet_bytes: 1500,
            max_packets_per_second_per_source: 0,
        }
    }

    pub(super) fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn add_sub(table: &mut Table, id: SubscriptionId, stream: StreamId, dest: SocketAddr) -> Result<(), CommandError> {
        let new = NewSubscription {
            dest,
            socket: 0,
            rewrite: Rewrite::default(),
            paused: false,
            egress_spec: EgressSpec::default(),
            continues: None,
        };
        table.add_subscription(id, stream, new, |_| Chain::default())
    }

    #[test]
    fn removal_forgets_every_key() {
        let now = Instant::now();
        let mut table = Table::with_hash_seed(limits(), 1);
        let latch = SourcePolicy::Latch { window: Duration::from_secs(1), fallback: None };
        table.add_stream(now, StreamId(1), 42, SourcePolicy::Fixed(addr(1)), 90_000, Chain::default).unwrap();
        table.add_stream(now, StreamId(2), 42, latch, 48_000, Chain::default).unwrap();
        add_sub(&mut table, SubscriptionId(1), StreamId(1), addr(9)).unwrap();
        assert_eq!(table.try_latch(now, addr(1), 42, false), Latch::WrongSource);
        table.remove_stream(StreamId(1)).unwrap();
        table.remove_stream(StreamId(2)).unwrap();
        assert_eq!(table.try_latch(now, addr(1), 42, true), Latch::Unknown);
        assert_eq!(table.find_locked(addr(1), 42), None);
        assert_eq!(table.subscription_index(SubscriptionId(1)), None);
        // The same keys can be used again.
        table.add_stream(now, StreamId(1), 42, SourcePolicy::Fixed(addr(1)), 90_000, Chain::default).unwrap();
        table.add_stream(now, StreamId(2), 42, latch, 48_000, Chain::default).unwrap();
        add_sub(&mut table, SubscriptionId(1), StreamId(1), addr(9)).unwrap();
        let latching = table.stream_ids[&StreamId(2)];
        assert_eq!(table.try_latch(now, addr(2), 42, true), Latch::Locked(latching));
        assert_eq!(table.find_locked(addr(2), 42), Some(latching));
        assert_eq!(table.find_locked(addr(1), 42), Some(table.stream_ids[&StreamId(1)]));
    }

    #[test]
    fn window_ends_exactly_at_the_deadline() {
        let now = Instant::now();
        let mut table = Table::with_hash_seed(limits(), 1);
        let window = Duration::from_millis(500);
        let fallback = Some(addr(7));
        table
            .add_stream(now, StreamId(1), 5, SourcePolicy::Latch { window, fallback }, 90_000, Chain::default)
            .unwrap();
        let just_before = now + window - Duration::from_nanos(1);
        // RTCP inside the window does not latch, even from the fallback.
        assert_eq!(table.try_latch(just_before, addr(7), 5, false), Latch::WrongSource);
        assert_eq!(table.try_latch(now + window, addr(3), 5, true), Latch::Expired);
        assert_eq!(table.try_latch(now + window, addr(7), 5, false), Latch::Locked(0));
    }

    #[test]
    fn churn_at_the_limits_never_grows_capacity() {
        for seed in 0..8 {
            churn_with_seed(seed);
        }
    }

    /// Keeps the table full while replacing a third of its streams (and their subscriptions) per
    /// round, half of them latching on the way and some fixed ones moving (`set_source`, two keys each during the
    /// overlap): removals leave tombstones in the maps, and the maps must absorb them without resizing.
    fn churn_with_seed(seed: u64) {
        let limits = ForwarderLimits {
            max_streams: 512,
            max_subscriptions: 1024,
            max_subscriptions_per_stream: 2,
            max_packet_bytes: 1500,
            max_packets_per_second_per_source: 0,
        };
        let now = Instant::now();
        let mut table = Table::with_hash_seed(limits, seed);
        let capacities = |t: &Table| {
            [
                t.locked.capacity(),
                t.latching.capacity(),
                t.stream_ids.capacity(),
                t.subscription_ids.capacity(),
                t.ssrc_streams.capacity(),
                t.feedback.capacity(),
            ]
        };
        let slabs = (table.streams.capacity(), table.subscriptions.capacity());
        let before = capacities(&table);
        let mut live: Vec<u64> = Vec::new();
        let mut next_id = 0u64;
        for round in 0..40u64 {
            while live.len() < 512 {
                let id = next_id;
                next_id += 1;
                let ssrc = (id as u32).wrapping_mul(2_654_435_761);
                let source = if id.is_multiple_of(2) {
                    SourcePolicy::Fixed(addr(1000 + (id % 7) as u16))
                } else {
                    SourcePolicy::Latch { window: Duration::from_secs(1), fallback: None }
                };
                table.add_stream(now, StreamId(id), ssrc, source, 8_000, Chain::default).unwrap();
                for s in 0..2 {
                    let sub = SubscriptionId(id * 2 + s);
                    add_sub(&mut table, sub, StreamId(id), addr(2000)).unwrap();
                }
                if id % 4 == 1 {
                    assert!(matches!(table.try_latch(now, addr(3000), ssrc, true), Latch::Locked(_)));
                }
                live.push(id);
            }
            // One stream in eight is moved each round: a fixed one with an overlap (moved again, it ends the first), a
            // latching one not (latched: it follows its rule; waiting: `source` is its fallback).
            for &id in live.iter().filter(|&&id| (id + round) % 8 == 0) {
                table.set_source(now, StreamId(id), addr(4000 + (round % 3) as u16), round % 2 == 0).unwrap();
            }
            // Every key in `locked` is a stream's source or the previous source of its move: none is left behind.
            let keys: usize = table
                .streams
                .iter()
                .map(|(_, s)| {
                    usize::from(matches!(s.source, SourceState::Locked(_))) + usize::from(s.moved_from.is_some())
                })
                .sum();
            assert_eq!(table.locked.len(), keys, "seed {seed} round {round}");
            let full =
                table.add_stream(now, StreamId(u64::MAX), 1, SourcePolicy::Fixed(addr(1)), 90_000, Chain::default);
            assert!(matches!(full, Err(CommandError::LimitReached { limit: "max_streams", .. })));
            let (gone, kept): (Vec<u64>, Vec<u64>) =
                live.iter().partition(|&&id| (id.wrapping_mul(31) + round) % 3 == 0);
            for id in gone {
                table.remove_stream(StreamId(id)).unwrap();
            }
            live = kept;
            assert_eq!((table.streams.capacity(), table.subscriptions.capacity()), slabs);
            // A sweep up to the slots sees every entry, and the slots stay within the reserved counts.
            assert!(table.streams.iter().all(|(index, _)| index < table.stream_slots()));
            assert!(table.subscriptions.iter().all(|(index, _)| index < table.subscription_slots()));
            assert!(table.stream_slots() <= 512 && table.subscription_slots() <= 1024);
            // Tombstones may lower a map's reported capacity for a while; only a resize raises it.
            let now_capacities = capacities(&table);
            for (map, (now_cap, before_cap)) in now_capacities.iter().zip(before).enumerate() {
                assert!(*now_cap <= before_cap, "map {map} grew, seed {seed} round {round}");
            }
        }
    }
}
