//! Sans-IO pacing of one stream: when its next packet or frame is due and what it is made of.
//!
//! Owns [`Shape`] (constant packet rate, or frames — sizes from [`crate::traffic`] — sent as bursts of
//! packets),
//! [`Burst`] (the packets of one event) and [`Pacer`] (due times on a drift-free schedule with a
//! per-stream phase). Time is always an argument in ns, so every rule is testable in virtual
//! time. Must never read a clock, sleep or touch a socket.

use crate::payload::{BENCH_HEADER_BYTES, RTP_HEADER_BYTES};
use crate::traffic::FrameSizes;

/// How one stream sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// One packet of `packet_bytes` (the whole RTP packet) every `1 / packets_per_s` seconds.
    Constant {
        /// Packets per second.
        packets_per_s: f64,
        /// Size of every RTP packet, header included.
        packet_bytes: usize,
    },
    /// A frame every `1 / frames_per_s` seconds, its payload size from `sizes`, split into
    /// packets of at most `max_payload_bytes` sent back to back.
    Frames {
        /// Frames per second.
        frames_per_s: f64,
        /// How big each frame is.
        sizes: FrameSizes,
        /// Most payload bytes in one packet (the last packet of a frame carries the rest).
        max_payload_bytes: usize,
    },
}

/// The packets of one pacing event, sent back to back: all carry `payload_bytes` of RTP payload
/// except the last, which carries `last_payload_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// Packets in the burst (at least 1).
    pub packets: usize,
    /// RTP payload bytes of every packet but the last.
    pub payload_bytes: usize,
    /// RTP payload bytes of the last packet.
    pub last_payload_bytes: usize,
}

impl Burst {
    /// A frame of `frame_bytes` split into packets of at most `max_payload_bytes`; every packet
    /// carries at least the bench header.
    pub fn split(frame_bytes: usize, max_payload_bytes: usize) -> Burst {
        let max = max_payload_bytes.max(BENCH_HEADER_BYTES);
        let packets = frame_bytes.div_ceil(max).max(1);
        let rest = frame_bytes.saturating_sub((packets - 1) * max);
        Burst { packets, payload_bytes: max, last_payload_bytes: rest.max(BENCH_HEADER_BYTES) }
    }
}

impl Shape {
    /// A fixed-size frame shape (every frame `frame_bytes`).
    pub fn fixed_frames(frames_per_s: f64, frame_bytes: usize, max_payload_bytes: usize) -> Shape {
        Shape::Frames { frames_per_s, sizes: FrameSizes::Fixed { bytes: frame_bytes }, max_payload_bytes }
    }

    /// Events (packets or frames) per second.
    pub fn events_per_s(&self) -> f64 {
        match *self {
            Shape::Constant { packets_per_s, .. } => packets_per_s,
            Shape::Frames { frames_per_s, .. } => frames_per_s,
        }
    }

    /// The same shape with its event rate multiplied by `factor`; sizes stay.
    pub fn scaled(&self, factor: f64) -> Shape {
        match *self {
            Shape::Constant { packets_per_s, packet_bytes } => {
                Shape::Constant { packets_per_s: packets_per_s * factor, packet_bytes }
            }
            Shape::Frames { frames_per_s, sizes, max_payload_bytes } => {
                Shape::Frames { frames_per_s: frames_per_s * factor, sizes, max_payload_bytes }
            }
        }
    }

    /// The packets of an event of `frame_bytes` (frames) or of the constant packet size.
    pub fn burst_of(&self, frame_bytes: usize) -> Burst {
        match *self {
            Shape::Constant { packet_bytes, .. } => {
                let payload = packet_bytes.saturating_sub(RTP_HEADER_BYTES).max(BENCH_HEADER_BYTES);
                Burst { packets: 1, payload_bytes: payload, last_payload_bytes: payload }
            }
            Shape::Frames { max_payload_bytes, .. } => Burst::split(frame_bytes, max_payload_bytes),
        }
    }

    /// The packets of one event of the mean (for fixed frames: the only) size.
    pub fn burst(&self) -> Burst {
        match *self {
            Shape::Constant { .. } => self.burst_of(0),
            Shape::Frames { sizes: FrameSizes::Fixed { bytes }, .. } => self.burst_of(bytes),
            Shape::Frames { sizes, max_payload_bytes, .. } => {
                let packets = sizes.mean_packets(max_payload_bytes).round() as usize;
                self.burst_of(packets.max(1) * max_payload_bytes)
            }
        }
    }

    /// The largest event the shape can produce.
    pub fn max_burst(&self) -> Burst {
        match *self {
            Shape::Constant { .. } => self.burst_of(0),
            Shape::Frames { sizes, .. } => self.burst_of(sizes.max_bytes()),
        }
    }

    /// Mean packets of one event.
    pub fn mean_packets(&self) -> f64 {
        match *self {
            Shape::Constant { .. } => 1.0,
            Shape::Frames { sizes, max_payload_bytes, .. } => sizes.mean_packets(max_payload_bytes),
        }
    }

    /// Average packets per second.
    pub fn packets_per_s(&self) -> f64 {
        self.events_per_s() * self.mean_packets()
    }
}

/// Due times of one stream's events: event `k` is due at `start + (k + phase) / rate`, so
/// lateness never accumulates into drift. Stops after `max_events`.
#[derive(Debug, Clone)]
pub struct Pacer {
    start_ns: u64,
    period_ns: f64,
    phase: f64,
    next_event: u64,
    max_events: u64,
}

impl Pacer {
    /// A schedule of `events_per_s` starting at `start_ns`, shifted by `phase` (0..1) of a period.
    /// A rate that is not positive and finite schedules nothing.
    pub fn new(events_per_s: f64, start_ns: u64, phase: f64, max_events: u64) -> Pacer {
        let usable = events_per_s.is_finite() && events_per_s > 0.0;
        Pacer {
            start_ns,
            period_ns: if usable { 1e9 / events_per_s } else { 0.0 },
            phase: phase.clamp(0.0, 1.0),
            next_event: 0,
            max_events: if usable { max_events } else { 0 },
        }
    }

    /// When the next event is due, or `None` once `max_events` were taken.
    pub fn next_due_ns(&self) -> Option<u64> {
        (self.next_event < self.max_events)
            .then(|| self.start_ns + ((self.next_event as f64 + self.phase) * self.period_ns) as u64)
    }

    /// Takes the next event if it is due at `now_ns`. Call again to take further overdue ones.
    pub fn poll(&mut self, now_ns: u64) -> bool {
        match self.next_due_ns() {
            Some(due) if due <= now_ns => {
                self.next_event += 1;
                true
            }
            _ => false,
        }
    }

    /// Events taken so far.
    pub fn events(&self) -> u64 {
        self.next_event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Polls every `step_ns` from 0 to `end_ns`; returns the due times taken.
    fn run(pacer: &mut Pacer, step_ns: u64, end_ns: u64) -> Vec<u64> {
        let mut taken = Vec::new();
        let mut now = 0;
        while now <= end_ns {
            while pacer.poll(now) {
                taken.push(now);
            }
            now += step_ns;
        }
        taken
    }

    #[test]
    fn constant_rate_gives_one_packet_per_period() {
        let mut pacer = Pacer::new(50.0, 0, 0.0, u64::MAX);
        let taken = run(&mut pacer, MS, 10_000 * MS - 1);
        assert_eq!(taken.len(), 500);
        for window in 0..500u64 {
            let in_window = taken.iter().filter(|&&t| t / (20 * MS) == window).count();
            assert_eq!(in_window, 1, "20 ms window {window}");
        }
    }

    #[test]
    fn late_polls_catch_up_without_drift() {
        let mut pacer = Pacer::new(1000.0, 0, 0.0, u64::MAX);
        // Polled only every 7 ms: the events still total one per ms.
        let taken = run(&mut pacer, 7 * MS, 700 * MS);
        assert_eq!(taken.len(), 701);
        assert_eq!(pacer.next_due_ns(), Some(701 * MS));
    }

    #[test]
    fn phase_shifts_the_schedule() {
        let a = Pacer::new(100.0, 5 * MS, 0.0, 10);
        let b = Pacer::new(100.0, 5 * MS, 0.5, 10);
        assert_eq!(a.next_due_ns(), Some(5 * MS));
        assert_eq!(b.next_due_ns(), Some(10 * MS));
    }

    #[test]
    fn count_bound_and_bad_rates_stop_the_schedule() {
        let mut pacer = Pacer::new(1e6, 0, 0.0, 3);
        assert_eq!(run(&mut pacer, MS, 10 * MS).len(), 3);
        assert_eq!(pacer.next_due_ns(), None);
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Pacer::new(rate, 0, 0.0, 10).next_due_ns(), None, "rate {rate}");
        }
    }

    #[test]
    fn frames_split_into_bursts_of_full_packets_and_a_rest() {
        let shape = |frame_bytes| Shape::fixed_frames(30.0, frame_bytes, 1200);
        assert_eq!(shape(6000).burst(), Burst { packets: 5, payload_bytes: 1200, last_payload_bytes: 1200 });
        assert_eq!(shape(6250).burst(), Burst { packets: 6, payload_bytes: 1200, last_payload_bytes: 250 });
        // A tiny rest still carries the bench header.
        assert_eq!(shape(6005).burst().last_payload_bytes, BENCH_HEADER_BYTES);
        assert_eq!(shape(0).burst().packets, 1);
        assert!((shape(6250).packets_per_s() - 180.0).abs() < 1e-9);
    }

    #[test]
    fn frame_bursts_arrive_at_the_frame_rate() {
        let shape = Shape::fixed_frames(30.0, 6000, 1200);
        let mut pacer = Pacer::new(shape.events_per_s(), 0, 0.0, u64::MAX);
        let frames = run(&mut pacer, MS, 1000 * MS - 1).len();
        assert_eq!(frames, 30);
        assert_eq!(frames * shape.burst().packets, 150);
    }

    #[test]
    fn constant_packets_have_the_requested_size_and_scale() {
        let shape = Shape::Constant { packets_per_s: 100.0, packet_bytes: 200 };
        assert_eq!(shape.burst(), Burst { packets: 1, payload_bytes: 188, last_payload_bytes: 188 });
        assert_eq!(shape.scaled(2.5).events_per_s(), 250.0);
        let tiny = Shape::Constant { packets_per_s: 1.0, packet_bytes: 20 };
        assert_eq!(tiny.burst().payload_bytes, BENCH_HEADER_BYTES);
    }
}
