//! The RTP load generator: publishers' sockets, one paced RTP stream per [`StreamConfig`].
//!
//! Owns each stream's packet template (built once with the `rtp` crate; afterwards only the
//! sequence number, timestamp and marker are patched, and the bench payload written), its pacer
//! and counters, and the batched sends: all packets due on one publisher socket go out in one
//! `sendmmsg`, and the packets of one stream due together (a video frame, or several overdue
//! packets) go as one UDP GSO message when the kernel supports it.
//!
//! Must never allocate per packet, send to anything but the destination it is given (a loopback
//! forwarder), or run unbounded: each step ends after its duration's worth of events.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;

use bytes::Bytes;
use hdrhistogram::Histogram;
use ringfwd_dataplane::driver::batch::{udp_gso_supported, BatchSizeError, MessageStatus, SendBatch};
use webrtc_util::marshal::Marshal;

use crate::account::latency_histogram;
use crate::impair::{Action, ImpairCounters, Impairer};
use crate::pace::{Burst, Pacer, Shape};
use crate::payload::{self, BenchHeader, Epoch, RTP_HEADER_BYTES};
use crate::scenario_file::Impairment;
use crate::traffic::FrameSizer;

/// Most packets one stream may put in flight per poll (and per video frame).
pub const MAX_BURST_PACKETS: usize = 64;
/// Most packets one stream may hold back for reordering at once (more are sent in order).
pub const MAX_HELD_PACKETS: usize = 32;
/// Messages per `sendmmsg`.
const SEND_BATCH_MESSAGES: usize = 256;
/// Largest GSO message, in bytes (below the 65 507-byte UDP limit).
const MAX_GSO_MESSAGE_BYTES: usize = 65_000;
/// Most segments in one GSO message (the kernel's `UDP_MAX_SEGMENTS`).
const MAX_GSO_SEGMENTS: usize = 64;

/// One stream the generator publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// SSRC of the stream.
    pub ssrc: u32,
    /// RTP payload type.
    pub payload_type: u8,
    /// RTP clock rate, in Hz.
    pub clock_rate_hz: u32,
    /// Sending shape at scale 1.
    pub shape: Shape,
    /// Index of the publisher socket it is sent from.
    pub publisher: usize,
    /// Phase of its schedule, 0..1 of a period, so streams do not all fire at once.
    pub phase: f64,
    /// Seed of its frame sizes and impairment.
    pub seed: u64,
    /// Loss, reordering and duplication applied before sending.
    pub impairment: Impairment,
}

/// Why a generator cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// A stream names a publisher socket that does not exist.
    #[error("stream {ssrc:#010x}: publisher {publisher} out of range (have {publishers} sockets)")]
    NoSuchPublisher {
        /// The stream.
        ssrc: u32,
        /// Its publisher index.
        publisher: usize,
        /// Sockets available.
        publishers: usize,
    },
    /// A frame needs more packets than one burst may hold.
    #[error("stream {ssrc:#010x}: a frame of {packets} packets exceeds {MAX_BURST_PACKETS}")]
    FrameTooLarge {
        /// The stream.
        ssrc: u32,
        /// Packets per frame.
        packets: usize,
    },
    /// The RTP template could not be built.
    #[error("stream {ssrc:#010x}: building the RTP template failed: {message}")]
    Template {
        /// The stream.
        ssrc: u32,
        /// What the rtp crate said.
        message: String,
    },
    /// The send batch could not be sized.
    #[error(transparent)]
    Batch(#[from] BatchSizeError),
}

/// Where one stream's packets of this poll lie in its scratch buffer.
#[derive(Debug, Clone, Copy)]
struct Message {
    start: usize,
    len_bytes: usize,
    packets: usize,
    segment_bytes: Option<u16>,
}

struct Stream {
    config: StreamConfig,
    /// The packets of the next event (drawn when the previous one went out).
    next_burst: Burst,
    /// Frame sizes of a frame shape.
    sizer: Option<FrameSizer>,
    impairer: Impairer,
    /// Packets held back for reordering, in scratch slots after the burst area.
    held: Vec<Held>,
    free_slots: Vec<usize>,
    /// Dropped by the impairment in this step: expected by the sink as sent.
    step_dropped: u64,
    /// The RTP packet built once: header of this stream, zeroed payload of the largest packet.
    template: Bytes,
    /// Packets of this poll, back to back at a stride of the full packet size, then held packets.
    scratch: Vec<u8>,
    messages: Vec<Message>,
    pacer: Pacer,
    step_events: u64,
    ts_step: u32,
    next_rtp_seq: u16,
    next_rtp_ts: u32,
    next_gen_seq: u32,
    step_first_gen_seq: u32,
}

/// A packet held back for reordering.
#[derive(Debug, Clone, Copy)]
struct Held {
    slot: usize,
    len_bytes: usize,
    /// Later packets still to go out before it.
    left: u32,
    deadline_ns: u64,
    overtaken: bool,
}

/// Packets of one stream in the current step.
#[derive(Debug, Clone, Copy, Default)]
struct StepCounters {
    sent: u64,
    failed: u64,
}

/// Paced RTP streams sent from publisher sockets to one forwarder.
pub struct Generator {
    sockets: Vec<UdpSocket>,
    streams_of: Vec<Vec<usize>>,
    streams: Vec<Stream>,
    counters: Vec<StepCounters>,
    batch: SendBatch,
    /// (stream, packets) of each message of the batch being filled.
    owners: Vec<(usize, usize)>,
    gso: bool,
    dest: SocketAddr,
    /// How late events went out against their schedule in this step, ns.
    pub lag_ns: Histogram<u64>,
}

impl Generator {
    /// A generator sending `streams` from `sockets` (one per publisher). GSO is used when `gso`
    /// is asked for and the kernel supports it.
    pub fn new(sockets: Vec<UdpSocket>, streams: &[StreamConfig], gso: bool) -> Result<Generator, GenError> {
        let mut streams_of = vec![Vec::new(); sockets.len()];
        let mut built = Vec::with_capacity(streams.len());
        for (i, config) in streams.iter().enumerate() {
            let Some(list) = streams_of.get_mut(config.publisher) else {
                return Err(GenError::NoSuchPublisher {
                    ssrc: config.ssrc,
                    publisher: config.publisher,
                    publishers: sockets.len(),
                });
            };
            list.push(i);
            built.push(Stream::new(config.clone())?);
        }
        let gso = gso && sockets.first().is_some_and(|s| udp_gso_supported(s.as_fd()));
        Ok(Generator {
            sockets,
            streams_of,
            counters: vec![StepCounters::default(); built.len()],
            streams: built,
            batch: SendBatch::new(SEND_BATCH_MESSAGES, 1)?,
            owners: Vec::with_capacity(SEND_BATCH_MESSAGES),
            gso,
            dest: SocketAddr::from(([127, 0, 0, 1], 9)),
            lag_ns: latency_histogram(),
        })
    }

    /// The publishers' local addresses, in publisher order.
    pub fn publisher_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.sockets.iter().map(UdpSocket::local_addr).collect()
    }

    /// Whether sends use UDP GSO.
    pub fn uses_gso(&self) -> bool {
        self.gso
    }

    /// Starts a step: every stream paced at `scale` times its base rate from `start_ns` for
    /// `duration_ns`, sent to `dest`. Step counters restart; sequences continue.
    pub fn start_step(&mut self, dest: SocketAddr, scale: f64, start_ns: u64, duration_ns: u64) {
        self.dest = dest;
        for s in &mut self.streams {
            let rate = s.config.shape.scaled(scale).events_per_s();
            let max_events = step_events(rate, duration_ns);
            s.pacer = Pacer::new(rate, start_ns, s.config.phase, max_events);
            s.step_events = max_events;
            s.ts_step = (f64::from(s.config.clock_rate_hz) / rate.max(1e-9)).round().clamp(1.0, 1e9) as u32;
            s.step_first_gen_seq = s.next_gen_seq;
            s.step_dropped = 0;
            // Packets still held from a cut-off step are given up (the sink sees them lost).
            s.held.clear();
            s.free_slots = (0..MAX_HELD_PACKETS).rev().collect();
            s.impairer.take_counters();
        }
        self.counters.fill(StepCounters::default());
        self.lag_ns.reset();
    }

    /// Packets the current step plans to send: those generated so far, plus the events still due
    /// at their mean packet count (exact for fixed sizes, and once every event went out).
    pub fn planned_packets(&self) -> u64 {
        self.streams
            .iter()
            .map(|s| {
                let generated = u64::from(s.next_gen_seq.wrapping_sub(s.step_first_gen_seq));
                let left = s.step_events.saturating_sub(s.pacer.events());
                generated + (left as f64 * s.config.shape.mean_packets()).round() as u64
            })
            .sum()
    }

    /// When the next packet of any stream is due (an event, or a held packet's deadline), or
    /// `None` when the step has sent everything.
    pub fn next_due_ns(&self) -> Option<u64> {
        self.streams.iter().filter_map(Stream::next_due_ns).min()
    }

    /// Sends every packet due at `now_ns` (at most [`MAX_BURST_PACKETS`] per stream); returns how
    /// many packets the kernel accepted.
    pub fn poll(&mut self, epoch: &Epoch, now_ns: u64) -> io::Result<usize> {
        if self.next_due_ns().is_none_or(|due| due > now_ns) {
            return Ok(0);
        }
        let send_ns = epoch.now_ns();
        for s in &mut self.streams {
            s.fill(now_ns, send_ns, self.gso, &mut self.lag_ns);
        }
        let mut accepted = 0;
        for (p, socket) in self.sockets.iter().enumerate() {
            let mut guard = self.batch.begin();
            self.owners.clear();
            for &i in &self.streams_of[p] {
                let s = &self.streams[i];
                for m in &s.messages {
                    if guard.is_full() {
                        guard.send(socket.as_fd())?;
                        accepted += settle(&self.batch, &self.owners, &mut self.counters);
                        self.owners.clear();
                        guard = self.batch.begin();
                    }
                    let bytes = &s.scratch[m.start..m.start + m.len_bytes];
                    guard.push(self.dest, &[bytes], m.segment_bytes);
                    self.owners.push((i, m.packets));
                }
            }
            if !guard.is_empty() {
                guard.send(socket.as_fd())?;
                accepted += settle(&self.batch, &self.owners, &mut self.counters);
            }
        }
        Ok(accepted)
    }

    /// Packets of stream `i` the sink should count as sent in this step: those the kernel accepted
    /// (a duplicate once) plus those the impairment dropped.
    pub fn step_sent(&self, i: usize) -> u64 {
        self.counters.get(i).map_or(0, |c| c.sent) + self.streams.get(i).map_or(0, |s| s.step_dropped)
    }

    /// What the impairment did to stream `i` in this step.
    pub fn step_impairment(&self, i: usize) -> ImpairCounters {
        self.streams.get(i).map_or_else(ImpairCounters::default, |s| s.impairer.counters)
    }

    /// Packets of all streams refused by the kernel in this step.
    pub fn step_failed(&self) -> u64 {
        self.counters.iter().map(|c| c.failed).sum()
    }

    /// Packets accepted in this step (plus those the impairment dropped), all streams.
    pub fn step_sent_total(&self) -> u64 {
        (0..self.streams.len()).map(|i| self.step_sent(i)).sum()
    }

    /// First generator sequence of each stream in this step.
    pub fn step_first_gen_seqs(&self) -> Vec<u32> {
        self.streams.iter().map(|s| s.step_first_gen_seq).collect()
    }
}

/// Events of a schedule of `events_per_s` that fit in `duration_ns`.
fn step_events(events_per_s: f64, duration_ns: u64) -> u64 {
    (events_per_s * duration_ns as f64 / 1e9).floor().max(0.0) as u64
}

/// Credits each sent message's packets to its stream; returns the packets sent.
fn settle(batch: &SendBatch, owners: &[(usize, usize)], counters: &mut [StepCounters]) -> usize {
    let mut sent = 0;
    for (i, &(stream, packets)) in owners.iter().enumerate() {
        let c = &mut counters[stream];
        if batch.status(i) == Some(MessageStatus::Sent) {
            c.sent += packets as u64;
            sent += packets;
        } else {
            c.failed += packets as u64;
        }
    }
    sent
}

impl Stream {
    fn new(config: StreamConfig) -> Result<Stream, GenError> {
        let largest = config.shape.max_burst();
        if largest.packets > MAX_BURST_PACKETS {
            return Err(GenError::FrameTooLarge { ssrc: config.ssrc, packets: largest.packets });
        }
        let header = rtp::header::Header {
            version: 2,
            payload_type: config.payload_type,
            ssrc: config.ssrc,
            ..Default::default()
        };
        let payload = Bytes::from(vec![0u8; largest.payload_bytes.max(largest.last_payload_bytes)]);
        let template = rtp::packet::Packet { header, payload }
            .marshal()
            .map_err(|e| GenError::Template { ssrc: config.ssrc, message: e.to_string() })?;
        let stride = template.len();
        let mut sizer = match config.shape {
            Shape::Frames { sizes, .. } => Some(FrameSizer::new(sizes, config.seed)),
            Shape::Constant { .. } => None,
        };
        let next_burst = draw_burst(&config.shape, sizer.as_mut());
        Ok(Stream {
            // Starts close to the 16-bit wrap so every run crosses it.
            next_rtp_seq: 65_000u16.wrapping_add((config.ssrc % 500) as u16),
            next_rtp_ts: config.ssrc.rotate_left(16),
            impairer: Impairer::new(config.impairment, config.seed ^ 0x1A3B_5C7D_9E0F_2143),
            config,
            next_burst,
            sizer,
            held: Vec::with_capacity(MAX_HELD_PACKETS),
            free_slots: (0..MAX_HELD_PACKETS).rev().collect(),
            step_dropped: 0,
            template,
            scratch: vec![0; stride * (MAX_BURST_PACKETS + MAX_HELD_PACKETS)],
            messages: Vec::with_capacity(2 * MAX_BURST_PACKETS + MAX_HELD_PACKETS),
            pacer: Pacer::new(0.0, 0, 0.0, 0),
            step_events: 0,
            ts_step: 1,
            next_gen_seq: 0,
            step_first_gen_seq: 0,
        })
    }

    /// The next event's due time, or the earliest held packet's deadline.
    fn next_due_ns(&self) -> Option<u64> {
        let held = self.held.iter().map(|h| h.deadline_ns).min();
        match (self.pacer.next_due_ns(), held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Writes every event due at `now_ns` into `scratch` and lists the messages to send.
    fn fill(&mut self, now_ns: u64, send_ns: u64, gso: bool, lag_ns: &mut Histogram<u64>) {
        self.messages.clear();
        let stride = self.template.len();
        let frames = matches!(self.config.shape, Shape::Frames { .. });
        let impaired = self.impairer.is_active();
        let mut used = 0;
        while used + self.next_burst.packets <= MAX_BURST_PACKETS {
            let Some(due_ns) = self.pacer.next_due_ns() else {
                break;
            };
            if !self.pacer.poll(now_ns) {
                break;
            }
            lag_ns.saturating_record(now_ns - due_ns);
            let burst = self.next_burst;
            let first = used;
            for k in 0..burst.packets {
                let last = k + 1 == burst.packets;
                let payload_bytes = if last { burst.last_payload_bytes } else { burst.payload_bytes };
                let packet = &mut self.scratch[used * stride..][..RTP_HEADER_BYTES + payload_bytes];
                packet[..RTP_HEADER_BYTES].copy_from_slice(&self.template[..RTP_HEADER_BYTES]);
                let marker = frames && last;
                packet[1] = (u8::from(marker) << 7) | self.config.payload_type;
                packet[2..4].copy_from_slice(&self.next_rtp_seq.to_be_bytes());
                packet[4..8].copy_from_slice(&self.next_rtp_ts.to_be_bytes());
                let bench = BenchHeader {
                    send_ns,
                    gen_seq: self.next_gen_seq,
                    rtp_timestamp: self.next_rtp_ts,
                    rtp_seq: self.next_rtp_seq,
                    marker_pt: packet[1],
                };
                payload::write(&mut packet[RTP_HEADER_BYTES..], &bench);
                self.next_rtp_seq = self.next_rtp_seq.wrapping_add(1);
                self.next_gen_seq = self.next_gen_seq.wrapping_add(1);
                used += 1;
            }
            self.next_rtp_ts = self.next_rtp_ts.wrapping_add(self.ts_step);
            self.next_burst = draw_burst(&self.config.shape, self.sizer.as_mut());
            if impaired {
                self.impair(first, used, burst, stride, now_ns, send_ns);
            } else if frames {
                // A frame's last packet may be short: it must end its GSO message.
                self.plan_messages(first, used, stride, gso, burst.last_payload_bytes);
            }
        }
        if impaired {
            self.release_held(now_ns, send_ns, stride);
        } else if !frames {
            // Equal-size packets of a constant-rate stream: one run for all that were due.
            let last = self.next_burst.last_payload_bytes;
            self.plan_messages(0, used, stride, gso, last);
        }
    }

    /// Applies the impairment to packets `first..end` of one event: one message per packet sent
    /// (two for a duplicate), none for a drop, a copy into a held slot for a hold.
    fn impair(&mut self, first: usize, end: usize, burst: Burst, stride: usize, now_ns: u64, send_ns: u64) {
        for at in first..end {
            let len_bytes =
                RTP_HEADER_BYTES + if at + 1 == end { burst.last_payload_bytes } else { burst.payload_bytes };
            let single = |packets| Message { start: at * stride, len_bytes, packets, segment_bytes: None };
            match self.impairer.decide() {
                Action::Drop => {
                    self.step_dropped += 1;
                    continue;
                }
                Action::Hold if !self.free_slots.is_empty() => {
                    let Some(slot) = self.free_slots.pop() else { continue };
                    let offset = (MAX_BURST_PACKETS + slot) * stride;
                    self.scratch.copy_within(at * stride..at * stride + len_bytes, offset);
                    let left = self.impairer.reorder_distance_packets();
                    let deadline_ns = now_ns + self.impairer.reorder_max_delay_ns();
                    self.held.push(Held { slot, len_bytes, left, deadline_ns, overtaken: false });
                    continue;
                }
                Action::Duplicate => {
                    self.messages.push(single(1));
                    // Counted once as sent: the sink expects it once.
                    self.messages.push(single(0));
                }
                Action::Send | Action::Hold => self.messages.push(single(1)),
            }
            // A later packet went out: every held one was overtaken; some are due now.
            for h in &mut self.held {
                h.overtaken = true;
                h.left = h.left.saturating_sub(1);
            }
            self.release_held(now_ns, send_ns, stride);
        }
    }

    /// Sends the held packets whose distance is reached or whose deadline passed, stamped with
    /// `send_ns`: the hold happened before the forwarder, so its delay is no forwarder latency.
    fn release_held(&mut self, now_ns: u64, send_ns: u64, stride: usize) {
        let mut i = 0;
        while i < self.held.len() {
            let h = self.held[i];
            if h.left == 0 || h.deadline_ns <= now_ns {
                self.held.swap_remove(i);
                let start = (MAX_BURST_PACKETS + h.slot) * stride;
                payload::restamp(&mut self.scratch[start + RTP_HEADER_BYTES..start + h.len_bytes], send_ns);
                self.messages.push(Message { start, len_bytes: h.len_bytes, packets: 1, segment_bytes: None });
                self.free_slots.push(h.slot);
                self.impairer.released(h.overtaken);
            } else {
                i += 1;
            }
        }
    }

    /// Splits packets `first..end` (all `stride` bytes but possibly the very last, which carries
    /// `last_payload_bytes`) into messages: GSO runs where allowed, else one message per packet.
    fn plan_messages(&mut self, first: usize, end: usize, stride: usize, gso: bool, last_payload_bytes: usize) {
        let per_message = if gso { (MAX_GSO_MESSAGE_BYTES / stride).clamp(1, MAX_GSO_SEGMENTS) } else { 1 };
        let frames = matches!(self.config.shape, Shape::Frames { .. });
        let mut at = first;
        while at < end {
            let packets = per_message.min(end - at);
            let tail_short = frames && at + packets == end;
            let len_bytes = if tail_short {
                (packets - 1) * stride + RTP_HEADER_BYTES + last_payload_bytes
            } else {
                packets * stride
            };
            let segment_bytes = (packets > 1).then(|| u16::try_from(stride).unwrap_or(u16::MAX));
            self.messages.push(Message { start: at * stride, len_bytes, packets, segment_bytes });
            at += packets;
        }
    }
}

/// The packets of the next event of `shape` (drawing a frame size from `sizer` for frames).
fn draw_burst(shape: &Shape, sizer: Option<&mut FrameSizer>) -> Burst {
    match sizer {
        Some(sizer) => shape.burst_of(sizer.next_frame_bytes()),
        None => shape.burst(),
    }
}

#[cfg(test)]
#[path = "gen_tests.rs"]
mod tests;
