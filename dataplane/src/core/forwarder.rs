//! The per-worker forwarding decision: one received datagram in, zero or more copies out.
//!
//! Owns [`Forwarder`] (tables, counters, the RTCP scratch buffer) and the [`Outcome`] of a datagram. What it
//! decides to send it queues in the caller's [`Transmits`] (pull-style: it never calls out to the I/O; the
//! worker loop drains the queue to its backend). Every datagram is counted as received and ends forwarded,
//! consumed, handed over or dropped under a [`DropReason`]. Must never allocate, log, read a clock or touch a
//! socket per packet: time comes in as `now`, packets leave as queued transmits.

use std::net::SocketAddr;
use std::time::Instant;

use super::command::{Command, CommandError, StreamId, SubscriptionId};
use super::continuity::{rebase, LastSent};
use super::counters::{Counters, DropReason};
use super::event::{EventQueue, WorkerEventKind};
use super::feedback::media_ssrc;
use super::interceptor::build::ChainFactory;
use super::interceptor::builtin::tap::TapRing;
use super::interceptor::spec::{NtpEpoch, StreamInfo, SubscriptionInfo};
use super::interceptor::Plugins;
use super::interceptor::{Metadata, Outbox, RtcpFrom, RtpAttrs, Scope, Snapshot, Verdict};
use super::packet::{classify, PacketKind, RtcpCompound, RtpView};
use super::steering::owner_of;
use super::table::{has_destination, ForwarderLimits, Latch, NewSubscription, Overlap, Table};
use super::transmit::Transmits;
use super::wire::{RtpTimestamp, SeqNo, Ssrc};

mod intercept;
mod rebind;
mod stats;

pub use stats::{StatsKey, UNKNOWN_SSRCS_PER_ROUND};

/// Packets the interceptors of one chain run may emit before the forwarder sends them.
pub const OUTBOX_PACKETS: usize = 64;

/// Events the forwarder queues between two drains by the runtime (it drains after every batch).
pub const EVENT_QUEUE_CAPACITY: usize = 1024;

/// What became of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `copies` copies were queued (at least one); copies egress refused are counted as `TxFull`.
    Forwarded {
        /// Copies queued.
        copies: u32,
    },
    /// A known stream with no active subscription: nothing to send.
    Consumed,
    /// Not forwarded, for this reason (counted once, for the datagram).
    Dropped(DropReason),
    /// Every copy was refused (`TxFull`), withheld (`RebasePending`), filtered (`PayloadTypeFiltered`) or dropped by
    /// its subscription's egress chain (a plugin's verdict, `Plugin`): each copy was counted under its own reason, the
    /// datagram is not counted again; this is the last reason.
    CopiesDropped(DropReason),
    /// An interceptor consumed it (answered, absorbed, or it was a subscriber's RTCP, which ends here or
    /// goes on to the publisher translated): counted as `consumed_by_interceptor` or `rx_feedback`.
    Intercepted,
    /// Worker `owner` takes it (it owns the SSRC, or holds the stream or subscription it is about): the driver must
    /// hand the datagram to it (already counted as `handover_out`), with its number of handovers so far plus one,
    /// and that worker passes it to [`Forwarder::on_handover`].
    Handover {
        /// The worker to hand it to.
        owner: usize,
    },
}

/// How the fan-out of an RTP packet queues each subscription's copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Copies {
    /// As a [`Transmit::Forward`](crate::core::transmit::Transmit::Forward) of the datagram being processed (or of its
    /// rewrite): its header, the payload never copied.
    Forward,
    /// As a [`Transmit::Copy`](crate::core::transmit::Transmit::Copy) assembled here, header and payload: for a
    /// packet that is not the datagram being processed (one a plugin injected).
    Assembled,
}

/// How many times a datagram may be handed over between workers. Steering by SSRC (the owner of its SSRC, or of the
/// SSRC a subscriber's RTCP is about) hands over a datagram only as received from the wire; an SSRC alias or a
/// feedback route is followed as its first or second handover. So a datagram is handed over at most twice, and
/// never in a loop, whatever aliases and routes the workers hold and whatever SSRCs it carries.
pub const MAX_HANDOVERS: u8 = 2;

/// The forwarding state of one worker.
pub struct Forwarder {
    worker: usize,
    workers: usize,
    table: Table,
    counters: Counters,
    /// Rewritten RTCP is built here; `max_packet_bytes` long.
    rtcp_scratch: Box<[u8]>,
    /// What interceptors emit, sent after each chain run.
    outbox: Outbox,
    /// Holds the packet an ingress plugin rewrote while it is fanned out (`max_packet_bytes` long; swapped with the
    /// outbox's, never allocated again).
    rewritten: Box<[u8]>,
    /// Holds a packet a plugin injected into a stream while it is fanned out (`max_packet_bytes` long; taken and put
    /// back, never allocated again).
    injecting: Box<[u8]>,
    /// The worker's NTP epoch (set by the runtime; else taken, with NTP time 0, at the first command).
    epoch: Option<NtpEpoch>,
    /// The worker's tap ring (set by the runtime when the recorder runs); streams whose ingress spec
    /// names the tap bind it only when set.
    tap: Option<std::sync::Arc<TapRing>>,
    /// The registered plugins (set by the runtime; the same registry on every worker).
    plugins: Plugins,
    /// The earliest timer any chain asked for (a conservative bound: it may be earlier than needed).
    next_timer: Option<Instant>,
    /// Events not yet handed to the runtime.
    events: EventQueue,
    /// Destinations reported unreachable in this statistics round.
    unreachable: Vec<SocketAddr>,
    /// Unknown (source, SSRC) pairs reported in this statistics round.
    unknown_ssrcs: Vec<(SocketAddr, u32)>,
    /// The last statistics of streams and subscriptions removed since the runtime last took them.
    final_snapshots: Vec<(StatsKey, Snapshot)>,
    /// The number of media sockets when each has an RTCP socket (its port + 1) at index `socket + n`; `None`:
    /// RTCP leaves from the media sockets.
    rtcp_socket_offset: Option<usize>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("worker", &self.worker)
            .field("workers", &self.workers)
            .field("limits", &self.table.limits)
            .field("streams", &self.stream_count())
            .field("subscriptions", &self.subscription_count())
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// The forwarder of worker `worker` out of `workers` (at least 1), with its tables reserved.
    pub fn new(worker: usize, workers: usize, limits: ForwarderLimits) -> Forwarder {
        Forwarder::with_table(worker, workers, Table::new(limits))
    }

    /// Like [`Forwarder::new`], with a fixed seed for the tables' hashing, so a run reproduces exactly
    /// (tests, fuzzing). Production uses `new`: a random seed resists hash-collision attacks.
    pub fn with_hash_seed(worker: usize, workers: usize, limits: ForwarderLimits, seed: u64) -> Forwarder {
        Forwarder::with_table(worker, workers, Table::with_hash_seed(limits, seed))
    }

    fn with_table(worker: usize, workers: usize, table: Table) -> Forwarder {
        let limits = table.limits;
        Forwarder {
            worker,
            workers: workers.max(1),
            table,
            counters: Counters::default(),
            rtcp_scratch: vec![0u8; limits.max_packet_bytes].into_boxed_slice(),
            outbox: Outbox::new(OUTBOX_PACKETS, limits.max_packet_bytes),
            rewritten: vec![0u8; limits.max_packet_bytes].into_boxed_slice(),
            injecting: vec![0u8; limits.max_packet_bytes].into_boxed_slice(),
            epoch: None,
            tap: None,
            plugins: Plugins::none(),
            next_timer: None,
            events: EventQueue::new(EVENT_QUEUE_CAPACITY),
            unreachable: Vec::with_capacity(stats::UNREACHABLE_PER_ROUND),
            unknown_ssrcs: Vec::with_capacity(stats::UNKNOWN_SSRCS_PER_ROUND),
            final_snapshots: Vec::new(),
            rtcp_socket_offset: None,
        }
    }

    /// Makes RTCP to peers with an RTCP address leave from the RTCP socket (media port + 1) of the socket their
    /// media uses: with `Some(n)`, socket `i % n + n` is the RTCP socket of media socket `i` (the driver binds
    /// the `n` RTCP sockets after the `n` media sockets). RTCP received on an RTCP socket is taken like RTCP
    /// received on a media socket.
    pub fn set_rtcp_socket_offset(&mut self, media_sockets: Option<usize>) {
        self.rtcp_socket_offset = media_sockets.filter(|&n| n > 0);
    }

    /// Sets the worker's NTP epoch (wall clock read together with a monotonic instant), which the
    /// interceptors bound from now on write their NTP timestamps from.
    pub fn set_ntp_epoch(&mut self, epoch: NtpEpoch) {
        self.epoch = Some(epoch);
    }

    /// Sets the worker's tap ring: streams added from now on whose ingress spec names the tap copy their
    /// packets into it (for the recorder).
    pub fn set_tap_ring(&mut self, ring: std::sync::Arc<TapRing>) {
        self.tap = Some(ring);
    }

    /// Sets the registered plugins that streams and subscriptions added from now on may name.
    pub fn set_plugins(&mut self, plugins: Plugins) {
        self.plugins = plugins;
    }

    fn factory(&mut self, now: Instant) -> ChainFactory {
        let epoch = *self.epoch.get_or_insert(NtpEpoch { at: now, ntp: 0 });
        let mut factory = ChainFactory::new(self.table.limits.max_packet_bytes, epoch, self.plugins.clone());
        factory.tap = self.tap.clone();
        factory
    }

    /// Applies a command at time `now` (latch windows start then). On error nothing changed.
    /// Updates `commands_applied`/`commands_failed` and the `streams`/`subscriptions` gauges.
    pub fn apply(&mut self, now: Instant, cmd: Command) -> Result<(), CommandError> {
        let result = match cmd {
            Command::AddStream { id, ssrc, source, clock_rate_hz, ingress } => {
                let factory = self.factory(now);
                let info = stream_info(id, ssrc, clock_rate_hz, factory.epoch);
                let added =
                    self.table.add_stream(now, id, ssrc, source, clock_rate_hz, || factory.ingress(&ingress, &info));
                self.counters.plugin_failures += factory.bind_failures();
                if let (Ok(()), Some(idx)) = (&added, self.table.stream_index(id)) {
                    self.table.streams[idx as usize].ingress_spec = ingress;
                    self.outbox.set_metadata(idx, Metadata::none());
                }
                added
            }
            Command::RemoveStream { id } => {
                self.keep_final_snapshots(StatsKey::Stream(id));
                let idx = self.table.stream_index(id);
                let removed = self.table.remove_stream(id);
                if let (Ok(()), Some(idx)) = (&removed, idx) {
                    self.outbox.set_metadata(idx, Metadata::none());
                }
                removed
            }
            Command::SetStreamMetadata { id, metadata } => match self.table.stream_index(id) {
                Some(idx) => {
                    self.outbox.set_metadata(idx, metadata);
                    Ok(())
                }
                None => Err(CommandError::StreamNotFound { id }),
            },
            Command::AddSubscription { id, stream, dest, socket, rewrite, paused, egress, continues } => {
                let factory = self.factory(now);
                let (source_ssrc, clock_rate_hz) = self
                    .table
                    .stream_index(stream)
                    .map(|idx| (self.table.streams[idx as usize].ssrc, self.table.streams[idx as usize].clock_rate_hz))
                    .unwrap_or_default();
                let out_ssrc = Ssrc(rewrite.out_ssrc.unwrap_or(source_ssrc));
                let new = NewSubscription { dest, socket, rewrite, paused, egress_spec: egress, continues };
                let added = self.table.add_subscription(id, stream, new, |flow| {
                    let info = SubscriptionInfo {
                        flow,
                        source_ssrc: Ssrc(source_ssrc),
                        out_ssrc,
                        clock_rate_hz,
                        epoch: factory.epoch,
                    };
                    factory.egress(&egress, &info)
                });
                self.counters.plugin_failures += factory.bind_failures();
                if let (Ok(()), Some(flow)) = (&added, self.table.subscription_index(id)) {
                    self.outbox.set_subscriber_metadata(flow, Metadata::none());
                }
                added
            }
            Command::RemoveSubscription { id } => {
                self.keep_final_snapshots(StatsKey::Subscription(id));
                let flow = self.table.subscription_index(id);
                let removed = self.table.remove_subscription(id);
                if let (Ok(()), Some(flow)) = (&removed, flow) {
                    self.outbox.set_subscriber_metadata(flow, Metadata::none());
                }
                removed
            }
            Command::SetSubscriptionMetadata { id, metadata } => match self.table.subscription_index(id) {
                Some(flow) => {
                    self.outbox.set_subscriber_metadata(flow, metadata);
                    Ok(())
                }
                None => Err(CommandError::SubscriptionNotFound { id }),
            },
            Command::SwitchSubscription { id, stream } => self.table.switch_subscription(id, stream),
            Command::SetPaused { id, paused } => self.table.set_paused(id, paused),
            Command::ReconfigureSubscription { id, payload_type_map, egress } => {
                self.reconfigure_subscription(now, id, payload_type_map, egress)
            }
            Command::ReconfigureStream { id, ingress } => self.reconfigure_stream(now, id, ingress),
            Command::ChangeStreamSsrc { id, ssrc } => self.change_stream_ssrc(now, id, ssrc),
            Command::SetDestination { id, dest, socket } => self.table.set_destination(id, dest, socket),
            Command::SetSource { id, source, overlap } => self.table.set_source(now, id, source, overlap),
            Command::SetRtcpSource { id, source } => self.table.set_rtcp_source(id, source),
            Command::SetRtcpDestination { id, dest } => self.table.set_rtcp_destination(id, dest),
            Command::RequestKeyframe { id } => self.request_keyframe(now, id),
            Command::AddFeedbackRoute { id, dest, out_ssrc, owner } => {
                if owner == self.worker || owner >= self.workers {
                    Err(CommandError::MisplacedRoute { id, out_ssrc, owner, workers: self.workers })
                } else {
                    self.table.routes.add(id, dest, out_ssrc, owner)
                }
            }
            Command::RemoveFeedbackRoute { id, dest, out_ssrc } => {
                self.table.routes.remove(id, dest, out_ssrc);
                Ok(())
            }
            Command::AliasSsrc { ssrc, owner } => {
                if owner_of(ssrc, self.workers) != self.worker || owner == self.worker || owner >= self.workers {
                    Err(CommandError::MisplacedAlias { ssrc, worker: self.worker, owner })
                } else {
                    self.table.aliases.add(ssrc, owner)
                }
            }
            Command::RemoveSsrcAlias { ssrc } => {
                self.table.aliases.remove(ssrc);
                Ok(())
            }
            Command::SetPlugins { plugins } => {
                self.plugins.retire_missing(&plugins);
                self.plugins = plugins;
                Ok(())
            }
        };
        match result {
            Ok(()) => self.counters.commands_applied += 1,
            Err(_) => self.counters.commands_failed += 1,
        }
        self.counters.streams = self.stream_count() as u64;
        self.counters.subscriptions = self.subscription_count() as u64;
        result
    }

    /// Processes one datagram received on `socket` from `src`. Counts it as received.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        socket: usize,
        src: SocketAddr,
        pkt: &[u8],
        out: &mut Transmits,
    ) -> Outcome {
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += pkt.len() as u64;
        self.process(now, socket, src, pkt, out, 0)
    }

    /// Processes a datagram another worker handed over (see [`Outcome::Handover`]) for the `handovers`-th time (1
    /// or more). Counts it as `handover_in`, not as received (the first worker did). It is handed over again only
    /// along an SSRC alias (its SSRC's stream, or the publisher SSRC a subscriber's RTCP is about, lives on another
    /// worker; see `aliases`) or a feedback route (a subscriber's RTCP about an out SSRC this worker owns, for a
    /// subscription of another worker; see `routes`), and only below [`MAX_HANDOVERS`]: the driver must then hand it
    /// on with `handovers + 1`.
    pub fn on_handover(
        &mut self,
        now: Instant,
        socket: usize,
        src: SocketAddr,
        pkt: &[u8],
        handovers: u8,
        out: &mut Transmits,
    ) -> Outcome {
        self.counters.handover_in += 1;
        self.process(now, socket, src, pkt, out, handovers.max(1))
    }

    fn process(
        &mut self,
        now: Instant,
        socket: usize,
        src: SocketAddr,
        pkt: &[u8],
        out: &mut Transmits,
        handovers: u8,
    ) -> Outcome {
        out.begin(pkt.len());
        let outcome = self.route(now, socket, src, pkt, out, handovers);
        if self.outbox.needs_drain() {
            self.drain_outbox(now, out);
        }
        self.count(outcome);
        outcome
    }

    /// Counts what became of a packet (what the fan-out did not count copy by copy).
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            // Refused, withheld, filtered or dropped copies were counted one by one during the fan-out.
            Outcome::CopiesDropped(_) | Outcome::Intercepted => {}
            Outcome::Dropped(reason) => self.counters.count_drop(reason),
            Outcome::Consumed => self.counters.consumed_no_subscriber += 1,
            Outcome::Handover { .. } => self.counters.handover_out += 1,
            Outcome::Forwarded { .. } => {}
        }
    }

    /// The subscriber's part of RTCP that `src` sent as the publisher of `stream` (first SSRC `ssrc`): when the
    /// compound's report blocks or feedback are about another SSRC than the publisher's own and the one
    /// ringfwd's reports to it come from, a subscription of this worker receiving at `src` gets it now (as a
    /// subscriber's RTCP); otherwise the worker to hand the compound to once the publisher's part is done is
    /// answered: the one a feedback route names, else the one owning that SSRC (which holds the subscription or
    /// the route to it, as for any subscriber's RTCP; an alias of it here names the stream's worker). Only for a
    /// packet as received (`steered`): a compound that was handed over (along an alias, to its stream's worker)
    /// has its subscriber's part taken only by a subscription of that worker.
    fn subscriber_part(
        &mut self,
        now: Instant,
        src: SocketAddr,
        (stream, ssrc): (u32, u32),
        compound: &RtcpCompound<'_>,
        steered: bool,
    ) -> Option<usize> {
        let entry = &self.table.streams[stream as usize];
        let own = local_ssrc(entry.id, entry.ssrc);
        let media = media_ssrc(compound).filter(|&media| media != ssrc && media != own)?;
        if let Some(flow) = self.table.find_feedback(src, media) {
            let _ = self.on_subscriber_rtcp(now, flow, compound);
            return None;
        }
        let owner = self.table.routes.find(src, media).or_else(|| self.table.aliases.find(media));
        Some(owner.unwrap_or_else(|| owner_of(media, self.workers))).filter(|&owner| steered && owner != self.worker)
    }

    fn route(
        &mut self,
        now: Instant,
        socket: usize,
        src: SocketAddr,
        pkt: &[u8],
        out: &mut Transmits,
        handovers: u8,
    ) -> Outcome {
        // Steered by SSRC only as received; along an alias or a route up to the limit (see `MAX_HANDOVERS`).
        let (steered, may_follow) = (handovers == 0, handovers < MAX_HANDOVERS);
        if pkt.len() > self.table.limits.max_packet_bytes {
            return Outcome::Dropped(DropReason::Oversize);
        }
        let is_rtp = match classify(pkt) {
            PacketKind::Rtp => true,
            PacketKind::Rtcp => false,
            PacketKind::Stun | PacketKind::Dtls | PacketKind::Unknown => return Outcome::Dropped(DropReason::NotRtp),
        };
        // Parsed once: RTP's attributes (a switched subscription rebases on its numbers), RTCP's compound.
        let (ssrc, parsed) = if is_rtp {
            match RtpView::parse(pkt) {
                Ok(view) => (view.ssrc().0, Parsed::Rtp(intercept::rtp_attrs(&view, now, src))),
                Err(_) => return Outcome::Dropped(DropReason::Malformed),
            }
        } else {
            match RtcpCompound::parse(pkt) {
                Ok(compound) => (compound.first_ssrc().0, Parsed::Rtcp(compound)),
                Err(_) => return Outcome::Dropped(DropReason::Malformed),
            }
        };
        if is_rtp {
            self.counters.rx_rtp += 1;
        } else {
            self.counters.rx_rtcp += 1;
        }
        let rtcp_source = if is_rtp { None } else { self.table.find_rtcp_source(src, ssrc) };
        // A peer that publishes and subscribes (a SIP user agent, a sendrecv WebRTC peer) sends its RTCP with
        // its own media SSRC first: the compound is its publisher's (SR, SDES, BYE) and may also be a
        // subscriber's (report blocks, NACK, PLI about the SSRC ringfwd sends it). The second part is handled
        // too, here or, when that subscription lives on another worker, by handing the compound over once the
        // publisher's part is done.
        let mut feedback_elsewhere = None;
        let mut found = self.table.find_locked(src, ssrc).or(rtcp_source);
        // RTCP to the publisher leaves from the socket its packets arrive on; during a move's overlap, from the one
        // its new source uses.
        let mut publisher_socket = socket;
        // A stream moved by `SetSource` takes packets from both sources for a while (see `table`, "Moving a fixed
        // source"): the one check a packet of a stream that is not moving pays.
        if let Some(stream) = found.filter(|&stream| self.table.is_moving(stream)) {
            let seq = match &parsed {
                Parsed::Rtp(attrs) => Some(attrs.seq),
                Parsed::Rtcp(_) => None,
            };
            match self.table.take_while_moving(now, stream, src, seq) {
                Overlap::Take => {}
                Overlap::TakeFromPrevious => publisher_socket = self.table.streams[stream as usize].socket,
                Overlap::Repeated => return Outcome::Dropped(DropReason::Repeated),
                Overlap::Ended => found = rtcp_source,
            }
        }
        let stream = match found {
            Some(stream) => {
                if let Parsed::Rtcp(compound) = &parsed {
                    feedback_elsewhere = self.subscriber_part(now, src, (stream, ssrc), compound, steered);
                }
                stream
            }
            None => {
                // Its stream took this SSRC in place on another worker: there it is found as here it would be.
                if let Some(owner) = self.table.aliases.find(ssrc).filter(|_| may_follow) {
                    return Outcome::Handover { owner };
                }
                // A subscriber's RTCP is about the SSRC it receives (see `feedback::media_ssrc`).
                let media = match &parsed {
                    Parsed::Rtcp(compound) => media_ssrc(compound),
                    Parsed::Rtp(_) => None,
                };
                if let (Some(media), Parsed::Rtcp(compound)) = (media, &parsed) {
                    if let Some(flow) = self.table.find_feedback(src, media) {
                        return self.on_subscriber_rtcp(now, flow, compound);
                    }
                    // Its subscription lives on another worker.
                    let routed = self.table.routes.find(src, media).filter(|&owner| owner != self.worker);
                    if let Some(owner) = routed.filter(|_| may_follow) {
                        return Outcome::Handover { owner };
                    }
                }
                let owner = owner_of(ssrc, self.workers);
                if steered && owner != self.worker {
                    return Outcome::Handover { owner };
                }
                // Without SSRC rewriting the SSRC a subscriber's RTCP is about is the publisher's, so its
                // owner is the stream's, or the stream took it in place on another worker (an alias).
                let feedback_owner = media.map(|media| owner_of(media, self.workers));
                if let Some(owner) = feedback_owner.filter(|&owner| steered && owner != self.worker) {
                    return Outcome::Handover { owner };
                }
                if let Some(owner) = media.and_then(|media| self.table.aliases.find(media)).filter(|_| may_follow) {
                    return Outcome::Handover { owner };
                }
                match self.table.try_latch(now, src, ssrc, is_rtp) {
                    Latch::Locked(stream) => {
                        self.counters.latched += 1;
                        let id = self.table.streams[stream as usize].id;
                        self.events.push(WorkerEventKind::SourceChanged { stream: id, source: src });
                        stream
                    }
                    Latch::Expired => return Outcome::Dropped(DropReason::LatchExpired),
                    Latch::WrongSource => return Outcome::Dropped(DropReason::WrongSource),
                    Latch::Unknown => {
                        if let Parsed::Rtp(attrs) = &parsed {
                            self.note_unknown_ssrc(src, ssrc, attrs.payload_type);
                        }
                        return Outcome::Dropped(DropReason::UnknownSsrc);
                    }
                }
            }
        };
        let entry = &mut self.table.streams[stream as usize];
        if entry.last_packet.is_none() {
            self.events.push(WorkerEventKind::StreamStarted { stream: entry.id });
        }
        entry.last_packet = Some(now);
        entry.heard_at = now;
        if !entry.rate.take(now) {
            entry.rate_limited_pending += 1;
            return Outcome::Dropped(DropReason::RateLimited);
        }
        entry.socket = publisher_socket;
        let verdict = match parsed {
            Parsed::Rtp(mut attrs) => {
                attrs.ext_seq = entry.seq.unwrap(attrs.seq);
                match self.ingress_rtp(now, stream, pkt, &attrs) {
                    Verdict::Continue => return self.forward_rtp(now, stream, &attrs, pkt, out),
                    verdict => verdict,
                }
            }
            Parsed::Rtcp(compound) => {
                if compound.says_bye(Ssrc(entry.ssrc)) {
                    self.events.push(WorkerEventKind::StreamBye { stream: entry.id });
                }
                let outcome = match self.ingress_rtcp(now, stream, &compound) {
                    Verdict::Continue => self.forward_rtcp(now, stream, ssrc, &compound, out),
                    verdict => self.verdict_outcome(stream, verdict),
                };
                return match feedback_elsewhere {
                    Some(owner) => {
                        self.count(outcome);
                        Outcome::Handover { owner }
                    }
                    None => outcome,
                };
            }
        };
        self.verdict_outcome(stream, verdict)
    }

    /// The outcome of a packet of `stream` that an ingress interceptor did not let through.
    fn verdict_outcome(&mut self, stream: u32, verdict: Verdict) -> Outcome {
        match verdict {
            Verdict::Drop(reason) => {
                if reason == DropReason::RateLimited {
                    self.table.streams[stream as usize].rate_limited_pending += 1;
                }
                Outcome::Dropped(reason)
            }
            _ => {
                self.counters.consumed_by_interceptor += 1;
                Outcome::Intercepted
            }
        }
    }

    /// Fans out RTP packet `pkt` that the ingress chain let through, or the packet a plugin there rewrote it into.
    fn forward_rtp(&mut self, now: Instant, stream: u32, attrs: &RtpAttrs, pkt: &[u8], out: &mut Transmits) -> Outcome {
        let mut body = std::mem::take(&mut self.rewritten);
        let outcome = match self.outbox.take_rewritten_rtp_into(&mut body) {
            None => self.fan_out_rtp(now, stream, attrs, pkt, out, Copies::Forward),
            Some((len, rewritten_attrs)) => {
                let packet = &body[..len];
                // The chain accepted it as an RTP packet no longer than the longest one, so this holds.
                if out.rewrite(packet) {
                    self.counters.rewritten_by_plugin += 1;
                    self.fan_out_rtp(now, stream, &rewritten_attrs, packet, out, Copies::Forward)
                } else {
                    Outcome::Dropped(DropReason::Malformed)
                }
            }
        };
        self.rewritten = body;
        outcome
    }

    /// Fans out the publisher's RTCP `compound` (first SSRC `ssrc`) that the ingress chain let through, or the compound
    /// a plugin there rewrote it into (it keeps the first SSRC).
    fn forward_rtcp(
        &mut self,
        now: Instant,
        stream: u32,
        ssrc: u32,
        compound: &RtcpCompound<'_>,
        out: &mut Transmits,
    ) -> Outcome {
        let mut body = std::mem::take(&mut self.rewritten);
        let outcome = match self.outbox.take_rewritten_rtcp_into(&mut body) {
            None => self.fan_out_rtcp(now, stream, ssrc, compound, out),
            // The chain accepted it as a valid compound no longer than the longest packet: it parses again.
            Some(len) => match body.get(..len).and_then(|bytes| RtcpCompound::parse(bytes).ok()) {
                Some(rewritten) => {
                    self.counters.rewritten_by_plugin += 1;
                    self.fan_out_rtcp(now, stream, ssrc, &rewritten, out)
                }
                None => Outcome::Dropped(DropReason::Malformed),
            },
        };
        self.rewritten = body;
        outcome
    }

    /// Sends one rewritten copy of RTP packet `pkt` to each active subscription of `stream` whose egress
    /// chain lets it pass, first rebasing a subscription switched to it (see `Command::SwitchSubscription`). A copy
    /// an egress plugin rewrote goes out as the plugin left it; the others as `copies` says.
    fn fan_out_rtp(
        &mut self,
        now: Instant,
        stream: u32,
        attrs: &RtpAttrs,
        pkt: &[u8],
        out: &mut Transmits,
        copies_as: Copies,
    ) -> Outcome {
        let Table { streams, subscriptions, .. } = &mut self.table;
        let entry = &streams[stream as usize];
        let (mut active, mut copies, mut bytes) = (0u32, 0u32, 0u64);
        let mut last_refusal = None;
        for &flow in &entry.subscriptions {
            let sub = &mut subscriptions[flow as usize];
            if sub.paused {
                continue;
            }
            if !has_destination(sub.dest) {
                self.counters.not_sent_no_destination += 1;
                continue;
            }
            active += 1;
            if sub.rebase_pending {
                sub.rebase_pending = false;
                if let Some(last) = sub.last_sent {
                    rebase(&mut sub.rewrite, last, now, attrs.seq, attrs.timestamp, entry.clock_rate_hz);
                }
            }
            let header = sub.rewrite.rtp_header(pkt);
            let out_seq = SeqNo(u16::from_be_bytes([header[2], header[3]]));
            let out_ts = RtpTimestamp(u32::from_be_bytes([header[4], header[5], header[6], header[7]]));
            sub.last_sent = Some(LastSent { seq: out_seq, ts: out_ts, at: now });
            if !sub.egress.is_empty() {
                let out_attrs = RtpAttrs {
                    ssrc: Ssrc(u32::from_be_bytes([header[8], header[9], header[10], header[11]])),
                    seq: out_seq,
                    ext_seq: sub.out_seq.unwrap(out_seq),
                    timestamp: out_ts,
                    payload_type: header[1] & 0x7f,
                    ..*attrs
                };
                let scope = Scope::Subscription { stream, flow };
                let verdict = sub.egress.on_rtp(now, scope, pkt, &out_attrs, &mut self.outbox);
                intercept::note_wake(&mut self.next_timer, &sub.egress);
                match verdict {
                    Verdict::Continue => {}
                    Verdict::Drop(reason) => {
                        self.counters.count_drop(reason);
                        last_refusal = Some(reason);
                        continue;
                    }
                    Verdict::Consumed => {
                        self.counters.consumed_by_interceptor += 1;
                        continue;
                    }
                }
                if let Some(rewritten) = self.outbox.take_rewritten() {
                    self.counters.rewritten_by_plugin += 1;
                    if out.copy(sub.socket, sub.dest, rewritten) {
                        copies += 1;
                        bytes += rewritten.len() as u64;
                    } else {
                        self.counters.count_drop(DropReason::TxFull);
                        last_refusal = Some(DropReason::TxFull);
                    }
                    continue;
                }
            }
            let queued = match copies_as {
                Copies::Forward => out.forward(sub.socket, sub.dest, &header),
                Copies::Assembled => out.copy_under(sub.socket, sub.dest, &header, pkt),
            };
            if queued {
                copies += 1;
                bytes += pkt.len() as u64;
            } else {
                self.counters.count_drop(DropReason::TxFull);
                last_refusal = Some(DropReason::TxFull);
            }
        }
        self.finish_fan_out(active, copies, last_refusal, bytes)
    }

    fn fan_out_rtcp(
        &mut self,
        now: Instant,
        stream: u32,
        ssrc: u32,
        compound: &RtcpCompound<'_>,
        out: &mut Transmits,
    ) -> Outcome {
        let rtcp_offset = self.rtcp_socket_offset;
        let Table { streams, subscriptions, .. } = &mut self.table;
        let (mut active, mut copies, mut bytes) = (0u32, 0u32, 0u64);
        let mut last_refusal = None;
        for &flow in &streams[stream as usize].subscriptions {
            let sub = &mut subscriptions[flow as usize];
            if sub.paused {
                continue;
            }
            if !has_destination(sub.dest) {
                self.counters.not_sent_no_destination += 1;
                continue;
            }
            active += 1;
            let refusal = if sub.rebase_pending {
                // Its timestamp offset is set by this stream's first RTP: an SR now would carry an RTP
                // time on the old stream's timeline.
                DropReason::RebasePending
            } else {
                // `pkt` was validated and fits the scratch buffer (oversize checked), so this is `Some`.
                let Some(len) = sub.rewrite.compound_into(ssrc, compound, &mut self.rtcp_scratch) else {
                    self.counters.count_drop(DropReason::Malformed);
                    continue;
                };
                let mut rewritten = &self.rtcp_scratch[..len];
                if !sub.egress.is_empty() {
                    if let Some(compound) = compound.patched(rewritten) {
                        let scope = Scope::Subscription { stream, flow };
                        let verdict = sub.egress.on_rtcp(now, scope, &compound, RtcpFrom::Publisher, &mut self.outbox);
                        intercept::note_wake(&mut self.next_timer, &sub.egress);
                        if verdict != Verdict::Continue {
                            self.counters.consumed_by_interceptor += 1;
                            continue;
                        }
                        // A plugin rewrote what this subscriber is sent.
                        if let Some(replaced) = self.outbox.take_rewritten() {
                            self.counters.rewritten_by_plugin += 1;
                            rewritten = replaced;
                        }
                    }
                }
                let (socket, dest) = match sub.rtcp_dest {
                    Some(rtcp) => (rtcp_socket(rtcp_offset, sub.socket), rtcp),
                    None => (sub.socket, sub.dest),
                };
                if out.copy(socket, dest, rewritten) {
                    copies += 1;
                    bytes += rewritten.len() as u64;
                    continue;
                }
                DropReason::TxFull
            };
            self.counters.count_drop(refusal);
            last_refusal = Some(refusal);
        }
        self.finish_fan_out(active, copies, last_refusal, bytes)
    }

    /// Counts the copies and picks the outcome. Refused, withheld or filtered copies were counted one
    /// by one already; `last_refusal` is the reason of the last one, the outcome when no copy went out
    /// (none: every copy was consumed by an egress interceptor).
    fn finish_fan_out(&mut self, active: u32, copies: u32, last_refusal: Option<DropReason>, bytes: u64) -> Outcome {
        self.counters.forwarded_packets += u64::from(copies);
        self.counters.forwarded_bytes += bytes;
        match (active, copies, last_refusal) {
            (0, _, _) => Outcome::Consumed,
            (_, 0, Some(reason)) => Outcome::CopiesDropped(reason),
            (_, 0, None) => Outcome::Intercepted,
            (_, copies, _) => Outcome::Forwarded { copies },
        }
    }

    /// The counters of this worker.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The counters, for the driver to add its own (sends, pool, kernel drops).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Streams in the table.
    pub fn stream_count(&self) -> usize {
        self.table.streams.len()
    }

    /// Subscriptions in the table.
    pub fn subscription_count(&self) -> usize {
        self.table.subscriptions.len()
    }

    /// SSRC aliases this worker holds (see `Command::AliasSsrc`).
    pub fn alias_count(&self) -> usize {
        self.table.aliases.len()
    }

    /// The worker that datagrams about `ssrc` are handed to by this worker's alias, if it holds one.
    pub fn ssrc_alias(&self, ssrc: u32) -> Option<usize> {
        self.table.aliases.find(ssrc)
    }

    /// The limits this forwarder was built with.
    pub fn limits(&self) -> &ForwarderLimits {
        &self.table.limits
    }

    /// Sequence number and timestamp of the last RTP header sent to subscription `id` (`None` if it
    /// does not exist or has received nothing yet). A stream switch continues from here.
    pub fn last_out(&self, id: SubscriptionId) -> Option<(SeqNo, RtpTimestamp)> {
        let idx = self.table.subscription_index(id)?;
        let last = self.table.subscriptions[idx as usize].last_sent?;
        Some((last.seq, last.ts))
    }
}

/// A datagram as `route` parsed it.
enum Parsed<'a> {
    /// RTP, with its attributes.
    Rtp(RtpAttrs),
    /// A validated RTCP compound.
    Rtcp(RtcpCompound<'a>),
}

/// The SSRC ringfwd sends its own RTCP about stream `id` from: derived from the stream id, never the
/// publisher's own SSRC.
/// The socket RTCP to a peer with an RTCP address leaves from, given the socket its media uses (see
/// [`Forwarder::set_rtcp_socket_offset`]).
pub(crate) fn rtcp_socket(offset: Option<usize>, socket: usize) -> usize {
    match offset {
        Some(n) => socket % n + n,
        None => socket,
    }
}

/// What stream `id`'s ingress chain is bound to, with publisher SSRC `ssrc` (a new stream, a new SSRC, a new chain).
fn stream_info(id: StreamId, ssrc: u32, clock_rate_hz: u32, epoch: NtpEpoch) -> StreamInfo {
    StreamInfo { ssrc: Ssrc(ssrc), clock_rate_hz, local_ssrc: Ssrc(local_ssrc(id, ssrc)), epoch }
}

fn local_ssrc(id: StreamId, publisher_ssrc: u32) -> u32 {
    let candidate = (id.0 as u32 ^ (id.0 >> 32) as u32).wrapping_mul(0x9e37_79b9) ^ 0x7266_7764;
    if candidate == publisher_ssrc {
        candidate ^ 1
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests;
