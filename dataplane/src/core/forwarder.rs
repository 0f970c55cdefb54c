//! The per-worker forwarding decision: one received datagram in, zero or more copies out.
//!
//! Owns [`Forwarder`] (tables, counters, the RTCP scratch buffer), the [`Egress`] trait the driver
//! implements and the [`Outcome`] of a datagram. Every datagram is counted as received and ends
//! forwarded, consumed, handed over or dropped under a [`DropReason`]. Must never allocate, log, read
//! a clock or touch a socket per packet: time comes in as `now`, packets leave through [`Egress`].

use std::net::SocketAddr;
use std::time::Instant;

use super::command::{Command, CommandError, SubscriptionId};
use super::continuity::{rebase, LastSent};
use super::counters::{Counters, DropReason};
use super::packet::{classify, PacketKind, RtcpCompound, RtpView};
use super::steering::owner_of;
use super::table::{ForwarderLimits, Latch, Table};
use super::wire::{RtpTimestamp, SeqNo};

/// Where forwarded packets go. Implemented by the I/O driver (and by recorders in tests).
pub trait Egress {
    /// Sends `header` followed by bytes `12..` of the packet currently being processed (the one passed
    /// to [`Forwarder::on_datagram`]; the payload is not copied) to `dest` from socket `socket`.
    /// `flow` is the subscription's stable index: equal-size packets of one flow in one batch may be
    /// coalesced into one GSO send. Returns false if the copy could not be queued (counted as
    /// [`DropReason::TxFull`]).
    fn forward_rtp(&mut self, flow: u32, socket: usize, dest: SocketAddr, header: &[u8; 12]) -> bool;

    /// Sends a copy of `bytes` (valid only during the call) to `dest` from socket `socket`. Returns
    /// false if it could not be queued (counted as [`DropReason::TxFull`]).
    fn send_copy(&mut self, socket: usize, dest: SocketAddr, bytes: &[u8]) -> bool;
}

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
    /// Not forwarded, for this reason (already counted). `TxFull` or `RebasePending` here means every
    /// copy was refused or withheld (each copy counted under its own reason; this is the last one).
    Dropped(DropReason),
    /// The SSRC belongs to worker `owner`: the driver must hand the datagram to it (already counted as
    /// `handover_out`), and the owner passes it to [`Forwarder::on_handover`].
    Handover {
        /// The owning worker.
        owner: usize,
    },
}

/// The forwarding state of one worker.
pub struct Forwarder {
    worker: usize,
    workers: usize,
    table: Table,
    counters: Counters,
    /// Rewritten RTCP is built here; `max_packet_bytes` long.
    rtcp_scratch: Box<[u8]>,
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
        }
    }

    /// Applies a command at time `now` (latch windows start then). On error nothing changed.
    /// Updates `commands_applied`/`commands_failed` and the `streams`/`subscriptions` gauges.
    pub fn apply(&mut self, now: Instant, cmd: Command) -> Result<(), CommandError> {
        let result = match cmd {
            Command::AddStream { id, ssrc, source, clock_rate_hz } => {
                self.table.add_stream(now, id, ssrc, source, clock_rate_hz)
            }
            Command::RemoveStream { id } => self.table.remove_stream(id),
            Command::AddSubscription { id, stream, dest, socket, rewrite, paused } => {
                self.table.add_subscription(id, stream, dest, socket, rewrite, paused)
            }
            Command::RemoveSubscription { id } => self.table.remove_subscription(id),
            Command::SwitchSubscription { id, stream } => self.table.switch_subscription(id, stream),
            Command::SetPaused { id, paused } => self.table.set_paused(id, paused),
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
    pub fn on_datagram<E: Egress>(
        &mut self,
        now: Instant,
        socket: usize,
        src: SocketAddr,
        pkt: &[u8],
        egress: &mut E,
    ) -> Outcome {
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += pkt.len() as u64;
        let _ = socket; // Routing does not depend on the receiving socket (all of a worker's are equal).
        self.process(now, src, pkt, egress, true)
    }

    /// Processes a datagram another worker handed over (see [`Outcome::Handover`]). Counts it as
    /// `handover_in`, not as received (the first worker did), and never hands it over again.
    pub fn on_handover<E: Egress>(
        &mut self,
        now: Instant,
        socket: usize,
        src: SocketAddr,
        pkt: &[u8],
        egress: &mut E,
    ) -> Outcome {
        self.counters.handover_in += 1;
        let _ = socket;
        self.process(now, src, pkt, egress, false)
    }

    fn process<E: Egress>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        pkt: &[u8],
        egress: &mut E,
        may_hand_over: bool,
    ) -> Outcome {
        let outcome = self.route(now, src, pkt, egress, may_hand_over);
        match outcome {
            // Refused or withheld copies were counted one by one during the fan-out.
            Outcome::Dropped(DropReason::TxFull | DropReason::RebasePending) => {}
            Outcome::Dropped(reason) => self.counters.count_drop(reason),
            Outcome::Consumed => self.counters.consumed_no_subscriber += 1,
            Outcome::Handover { .. } => self.counters.handover_out += 1,
            Outcome::Forwarded { .. } => {}
        }
        outcome
    }

    fn route<E: Egress>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        pkt: &[u8],
        egress: &mut E,
        may_hand_over: bool,
    ) -> Outcome {
        if pkt.len() > self.table.limits.max_packet_bytes {
            return Outcome::Dropped(DropReason::Oversize);
        }
        let is_rtp = match classify(pkt) {
            PacketKind::Rtp => true,
            PacketKind::Rtcp => false,
            PacketKind::Stun | PacketKind::Dtls | PacketKind::Unknown => return Outcome::Dropped(DropReason::NotRtp),
        };
        // For RTP, also its sequence number and timestamp (a switched subscription rebases on them).
        let (ssrc, rtp_numbers) = if is_rtp {
            match RtpView::parse(pkt) {
                Ok(view) => (view.ssrc().0, Some((view.seq(), view.timestamp()))),
                Err(_) => return Outcome::Dropped(DropReason::Malformed),
            }
        } else {
            match RtcpCompound::parse(pkt) {
                Ok(compound) => (compound.first_ssrc().0, None),
                Err(_) => return Outcome::Dropped(DropReason::Malformed),
            }
        };
        if is_rtp {
            self.counters.rx_rtp += 1;
        } else {
            self.counters.rx_rtcp += 1;
        }
        let stream = match self.table.find_locked(src, ssrc) {
            Some(stream) => stream,
            None => {
                let owner = owner_of(ssrc, self.workers);
                if may_hand_over && owner != self.worker {
                    return Outcome::Handover { owner };
                }
                match self.table.try_latch(now, src, ssrc, is_rtp) {
                    Latch::Locked(stream) => {
                        self.counters.latched += 1;
                        stream
                    }
                    Latch::Expired => return Outcome::Dropped(DropReason::LatchExpired),
                    Latch::WrongSource => return Outcome::Dropped(DropReason::WrongSource),
                    Latch::Unknown => return Outcome::Dropped(DropReason::UnknownSsrc),
                }
            }
        };
        if !self.table.streams[stream as usize].rate.take(now) {
            return Outcome::Dropped(DropReason::RateLimited);
        }
        match rtp_numbers {
            Some((seq, ts)) => self.fan_out_rtp(now, stream, seq, ts, pkt, egress),
            None => self.fan_out_rtcp(stream, ssrc, pkt, egress),
        }
    }

    /// Sends one rewritten copy of RTP packet `pkt` (numbered `seq`, `ts`) to each active subscription
    /// of `stream`, first rebasing a subscription switched to it (see `Command::SwitchSubscription`).
    fn fan_out_rtp<E: Egress>(
        &mut self,
        now: Instant,
        stream: u32,
        seq: SeqNo,
        ts: RtpTimestamp,
        pkt: &[u8],
        egress: &mut E,
    ) -> Outcome {
        let Table { streams, subscriptions, .. } = &mut self.table;
        let stream = &streams[stream as usize];
        let (mut active, mut copies) = (0u32, 0u32);
        for &flow in &stream.subscriptions {
            let sub = &mut subscriptions[flow as usize];
            if sub.paused {
                continue;
            }
            active += 1;
            if sub.rebase_pending {
                sub.rebase_pending = false;
                if let Some(last) = sub.last_sent {
                    rebase(&mut sub.rewrite, last, now, seq, ts, stream.clock_rate_hz);
                }
            }
            let header = sub.rewrite.rtp_header(pkt);
            sub.last_sent = Some(LastSent {
                seq: SeqNo(u16::from_be_bytes([header[2], header[3]])),
                ts: RtpTimestamp(u32::from_be_bytes([header[4], header[5], header[6], header[7]])),
                at: now,
            });
            if egress.forward_rtp(flow, sub.socket, sub.dest, &header) {
                copies += 1;
            } else {
                self.counters.count_drop(DropReason::TxFull);
            }
        }
        self.finish_fan_out(active, copies, DropReason::TxFull, pkt.len())
    }

    fn fan_out_rtcp<E: Egress>(&mut self, stream: u32, ssrc: u32, pkt: &[u8], egress: &mut E) -> Outcome {
        let Table { streams, subscriptions, .. } = &self.table;
        let (mut active, mut copies) = (0u32, 0u32);
        let mut last_refusal = DropReason::TxFull;
        for &flow in &streams[stream as usize].subscriptions {
            let sub = &subscriptions[flow as usize];
            if sub.paused {
                continue;
            }
            active += 1;
            let refusal = if sub.rebase_pending {
                // Its timestamp offset is set by this stream's first RTP: an SR now would carry an RTP
                // time on the old stream's timeline.
                DropReason::RebasePending
            } else {
                // `pkt` was validated and fits the scratch buffer (oversize checked), so this is `Some`.
                let Some(len) = sub.rewrite.rtcp_into(ssrc, pkt, &mut self.rtcp_scratch) else {
                    self.counters.count_drop(DropReason::Malformed);
                    continue;
                };
                if egress.send_copy(sub.socket, sub.dest, &self.rtcp_scratch[..len]) {
                    copies += 1;
                    continue;
                }
                DropReason::TxFull
            };
            self.counters.count_drop(refusal);
            last_refusal = refusal;
        }
        self.finish_fan_out(active, copies, last_refusal, pkt.len())
    }

    /// Counts the copies and picks the outcome. Refused or withheld copies were counted one by one
    /// already; `last_refusal` is the reason of the last one, the outcome when no copy went out.
    fn finish_fan_out(&mut self, active: u32, copies: u32, last_refusal: DropReason, len_bytes: usize) -> Outcome {
        self.counters.forwarded_packets += u64::from(copies);
        self.counters.forwarded_bytes += u64::from(copies) * len_bytes as u64;
        match (active, copies) {
            (0, _) => Outcome::Consumed,
            (_, 0) => Outcome::Dropped(last_refusal),
            (_, copies) => Outcome::Forwarded { copies },
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

    /// The limits this forwarder was built with.
    pub fn limits(&self) -> &ForwarderLimits {
        &self.table.limits
    }

    /// The subscription's flow key (its slab index, the `flow` passed to [`Egress::forward_rtp`]).
    pub fn flow_of(&self, id: SubscriptionId) -> Option<u32> {
        self.table.subscription_index(id)
    }

    /// Sequence number and timestamp of the last RTP header sent to subscription `id` (`None` if it
    /// does not exist or has received nothing yet). A stream switch continues from here.
    pub fn last_out(&self, id: SubscriptionId) -> Option<(SeqNo, RtpTimestamp)> {
        let idx = self.table.subscription_index(id)?;
        let last = self.table.subscriptions[idx as usize].last_sent?;
        Some((last.seq, last.ts))
    }
}

#[cfg(test)]
mod tests;
