//! Generic NACKs toward the publisher for the packets that did not arrive (RFC 4585 §6.2.1).
//!
//! Owns [`NackGenerator`] (ingress): finds gaps in the extended sequence numbers of the publisher's
//! packets, keeps at most `max_missing` missing numbers in a ring reserved at construction (the
//! oldest is given up first when it is full), asks for each one at once and then again with
//! exponential backoff until it arrives, has been asked for `max_retries` times, or is older than
//! `max_age_ms`. Every request due at the same moment goes out in one NACK packet. Must never
//! allocate after construction, never drop or consume a packet, and never ask for a number it has
//! given up or already received.
//!
//! # Retry timing without an RTT
//! The wait before asking again is `max(min_retry_interval_ms, rtt) × 2^k` after the `k+1`-th
//! request. ringfwd usually has no RTT toward a publisher that only sends (no SR from ringfwd, so no
//! LSR comes back), so the RTT is unknown unless a caller sets it with [`NackGenerator::set_rtt`]; the
//! minimum interval alone is used then.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::wire_compound::{write_feedback_compound, Cname};
use super::wire_reports::write_generic_nack;
use crate::core::interceptor::spec::{NackGeneratorParams, StreamInfo};
use crate::core::interceptor::{Context, Interceptor, RtpAttrs, Snapshot, Verdict};
use crate::core::wire::{SeqNo, Ssrc};

/// The shortest timer the generator asks for, so a request that could not go out (a full outbox) is
/// retried soon without spinning.
const MIN_TIMER: Duration = Duration::from_millis(1);

/// One missing packet.
#[derive(Clone, Copy, Debug)]
struct Missing {
    ext_seq: u64,
    /// When the gap was seen: the age `max_age_ms` is measured from here.
    first_seen: Instant,
    /// When to ask (again).
    next_at: Instant,
    /// Requests sent so far.
    requests: u8,
}

/// The `nack_generator` built-in (ingress).
#[derive(Clone, Debug)]
pub struct NackGenerator {
    publisher: Ssrc,
    local: Ssrc,
    /// ringfwd's CNAME toward the publisher (every NACK is a compound with it).
    cname: Cname,
    max_retries: u8,
    min_retry_interval: Duration,
    max_age: Duration,
    max_missing: usize,
    rtt: Duration,
    highest: Option<u64>,
    /// Ascending extended sequence numbers (gaps are found in order, always above what is tracked).
    missing: VecDeque<Missing>,
    nacks_sent: u64,
    given_up: u64,
}

impl NackGenerator {
    /// A generator for the publisher of `info`, sending from `info.local_ssrc`; reserves room for
    /// `max_missing` numbers.
    pub fn new(params: &NackGeneratorParams, info: &StreamInfo) -> NackGenerator {
        let max_missing = usize::from(params.max_missing);
        NackGenerator {
            publisher: info.ssrc,
            local: info.local_ssrc,
            cname: Cname::ringfwd(info.local_ssrc),
            max_retries: params.max_retries,
            min_retry_interval: Duration::from_millis(u64::from(params.min_retry_interval_ms)),
            max_age: Duration::from_millis(u64::from(params.max_age_ms)),
            max_missing,
            rtt: Duration::ZERO,
            highest: None,
            missing: VecDeque::with_capacity(max_missing),
            nacks_sent: 0,
            given_up: 0,
        }
    }

    /// Sets the round-trip time to the publisher used for the retry wait (see the module docs).
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    /// Missing numbers given up: too old, asked for `max_retries` times, or evicted by newer gaps.
    pub fn given_up(&self) -> u64 {
        self.given_up
    }

    /// Missing numbers tracked now.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// The wait after the `requests`-th request (1-based).
    fn backoff(&self, requests: u8) -> Duration {
        let factor = 1u32.checked_shl(u32::from(requests.saturating_sub(1))).unwrap_or(u32::MAX);
        self.min_retry_interval.max(self.rtt).saturating_mul(factor)
    }

    /// Starts tracking `ext_seq`, giving up the oldest if the ring is full.
    fn track(&mut self, ext_seq: u64, now: Instant) {
        if self.missing.len() == self.max_missing && self.missing.pop_front().is_some() {
            self.given_up += 1;
        }
        if self.missing.len() < self.max_missing {
            self.missing.push_back(Missing { ext_seq, first_seen: now, next_at: now, requests: 0 });
        }
    }

    /// Gives up what is too old, sends one NACK with every request due, and sets the timer for the next.
    fn flush(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        while self.missing.front().is_some_and(|m| now.saturating_duration_since(m.first_seen) > self.max_age) {
            self.missing.pop_front();
            self.given_up += 1;
        }
        if self.missing.iter().any(|m| m.next_at <= now) {
            let (local, publisher, missing, cname) = (self.local, self.publisher, &self.missing, &self.cname);
            let mut written = 0;
            let due = missing.iter().filter(|m| m.next_at <= now).map(|m| SeqNo(m.ext_seq as u16));
            let sent = ctx.send_rtcp_to_publisher(|slot| {
                write_feedback_compound(slot, local, cname, |out| {
                    let nack = write_generic_nack(out, local, publisher, due);
                    written = nack.seqs_written;
                    nack.len_bytes
                })
            });
            if sent {
                self.nacks_sent += 1;
                let mut marked = 0;
                for index in 0..self.missing.len() {
                    if marked == written {
                        break;
                    }
                    let entry = self.missing[index];
                    if entry.next_at <= now {
                        let requests = entry.requests.saturating_add(1);
                        self.missing[index].requests = requests;
                        self.missing[index].next_at = now + self.backoff(requests);
                        marked += 1;
                    }
                }
                let max_retries = self.max_retries;
                let before = self.missing.len();
                self.missing.retain(|m| m.requests < max_retries);
                self.given_up += (before - self.missing.len()) as u64;
            }
        }
        if let Some(next) = self.missing.iter().map(|m| m.next_at).min() {
            ctx.schedule(next.max(now + MIN_TIMER));
        }
    }
}

impl Interceptor for NackGenerator {
    fn on_rtp(&mut self, _pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        let ext_seq = attrs.ext_seq;
        match self.highest {
            None => self.highest = Some(ext_seq),
            Some(highest) if ext_seq > highest => {
                self.highest = Some(ext_seq);
                if ext_seq > highest + 1 && self.max_retries > 0 && self.max_missing > 0 {
                    let first = (highest + 1).max(ext_seq.saturating_sub(self.max_missing as u64));
                    for missing in first..ext_seq {
                        self.track(missing, ctx.now());
                    }
                    self.flush(ctx);
                }
            }
            Some(_) => {
                // Late or retransmitted: no longer missing.
                if let Ok(index) = self.missing.binary_search_by_key(&ext_seq, |m| m.ext_seq) {
                    self.missing.remove(index);
                }
            }
        }
        Verdict::Continue
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        self.flush(ctx);
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.nacks_sent += self.nacks_sent;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    use webrtc_util::marshal::Unmarshal;

    use super::super::stats::test_media::{media, stream};
    use super::super::wire_compound::test_support::after_cname;
    use super::super::wire_feedback::test_support::{at, snapshot, Harness, LOCAL, PUBLISHER};
    use super::*;
    use crate::core::interceptor::Target;

    const BASE: u64 = (1 << 16) + 65_530;

    fn params(max_retries: u8, min_retry_interval_ms: u32, max_age_ms: u32, max_missing: u16) -> NackGeneratorParams {
        NackGeneratorParams { max_retries, min_retry_interval_ms, max_age_ms, max_missing }
    }

    /// Runs packets `0..count` (minus `lost`, plus `late` ones `(n, ms)` delivered again at `ms`) at
    /// one per 10 ms through `generator`; returns each NACK as (ms, asked-for sequence numbers).
    fn run(generator: &mut NackGenerator, count: u64, lost: &[u64], late: &[(u64, u64)]) -> Vec<(u64, Vec<u16>)> {
        let t0 = Instant::now();
        let mut h = Harness::ingress();
        let mut nacks = Vec::new();
        let mut collect = |h: &mut Harness, ms: u64| {
            for (target, bytes) in h.take() {
                assert_eq!(target, Target::Publisher { stream: 0 });
                let nack = TransportLayerNack::unmarshal(&mut Bytes::copy_from_slice(after_cname(&bytes)))
                    .expect("rtcp parses it");
                assert_eq!((nack.sender_ssrc, nack.media_ssrc), (LOCAL.0, PUBLISHER.0));
                let seqs = nack.nacks.iter().flat_map(|pair| pair.packet_list()).collect();
                nacks.push((ms, seqs));
            }
        };
        for ms in 0..count * 10 + 2000 {
            let now = at(t0, ms);
            h.advance(generator, now);
            collect(&mut h, ms);
            let arriving = (ms.is_multiple_of(10) && ms / 10 < count && !lost.contains(&(ms / 10))).then_some(ms / 10);
            let late_one = late.iter().find(|(_, when)| *when == ms).map(|(n, _)| *n);
            for n in arriving.into_iter().chain(late_one) {
                let verdict = h.rtp(generator, &[0x80; 12], &media(now, PUBLISHER, BASE + n, 0));
                assert_eq!(verdict, Verdict::Continue);
                collect(&mut h, ms);
            }
        }
        nacks
    }

    fn seq(n: u64) -> u16 {
        (BASE + n) as u16
    }

    #[test]
    fn asks_at_once_then_backs_off_then_gives_up() {
        let t0 = Instant::now();
        let mut generator = NackGenerator::new(&params(3, 100, 5000, 64), &stream(t0));
        // Packets 4 and 5 lost across the 65535 -> 0 wrap: packet 6 (at 60 ms) reveals them.
        let nacks = run(&mut generator, 50, &[4, 5], &[]);
        let pair = vec![seq(4), seq(5)];
        assert_eq!(nacks, vec![(60, pair.clone()), (160, pair.clone()), (360, pair)]);
        assert_eq!(seq(5), 65_535);
        assert_eq!((generator.given_up(), generator.missing()), (2, 0));
        assert_eq!(snapshot(&generator).nacks_sent, 3);

        // With an RTT above the minimum, the RTT sets the wait.
        let mut generator = NackGenerator::new(&params(3, 100, 5000, 64), &stream(t0));
        generator.set_rtt(Duration::from_millis(150));
        let nacks = run(&mut generator, 50, &[7], &[]);
        assert_eq!(nacks.iter().map(|(ms, _)| *ms).collect::<Vec<_>>(), [80, 230, 530]);
        assert!(nacks.iter().all(|(_, seqs)| *seqs == [seq(7)]));
    }

    #[test]
    fn gives_up_what_is_too_old() {
        let t0 = Instant::now();
        let mut generator = NackGenerator::new(&params(10, 100, 250, 64), &stream(t0));
        let nacks = run(&mut generator, 80, &[3], &[]);
        // Asked at 40 and 140; the next (340) would be 300 ms after the gap was seen.
        assert_eq!(nacks, vec![(40, vec![seq(3)]), (140, vec![seq(3)])]);
        assert_eq!(generator.given_up(), 1);
    }

    #[test]
    fn a_late_or_retransmitted_packet_is_no_longer_asked_for() {
        let t0 = Instant::now();
        let mut generator = NackGenerator::new(&params(5, 100, 5000, 64), &stream(t0));
        // 10 and 12 lost; 10 arrives (retransmitted) at 215 ms, after the first request and one retry.
        let nacks = run(&mut generator, 60, &[10, 12], &[(10, 215)]);
        assert_eq!(nacks[0], (110, vec![seq(10)]));
        assert_eq!(nacks[1], (130, vec![seq(12)]));
        assert_eq!(nacks[2], (210, vec![seq(10)]));
        let rest: Vec<(u64, Vec<u16>)> = [230, 430, 830, 1630].into_iter().map(|ms| (ms, vec![seq(12)])).collect();
        assert_eq!(nacks[3..], rest, "10 is not asked for again; 12 gets its five requests");
    }

    #[test]
    fn due_requests_share_one_packet() {
        let t0 = Instant::now();
        let mut generator = NackGenerator::new(&params(2, 100, 5000, 64), &stream(t0));
        let mut h = Harness::ingress();
        h.rtp(&mut generator, &[0x80; 12], &media(t0, PUBLISHER, BASE, 0));
        // 1 lost (seen at 0 ms); 3..=39 lost (seen at 0 ms too): first request in one packet, at once.
        h.rtp(&mut generator, &[0x80; 12], &media(t0, PUBLISHER, BASE + 2, 0));
        h.rtp(&mut generator, &[0x80; 12], &media(t0, PUBLISHER, BASE + 40, 0));
        let first = h.take();
        assert_eq!(first.len(), 2, "one NACK per revealing packet");
        h.advance(&mut generator, at(t0, 100));
        let retry = h.take();
        assert_eq!(retry.len(), 1, "every due request in one packet");
        let nack =
            TransportLayerNack::unmarshal(&mut Bytes::copy_from_slice(after_cname(&retry[0].1))).expect("parses");
        let asked: Vec<u16> = nack.nacks.iter().flat_map(|pair| pair.packet_list()).collect();
        let expected: Vec<u16> = std::iter::once(1).chain(3..40).map(seq).collect();
        assert_eq!(asked, expected);
        assert!(nack.nacks.len() >= 3, "several FCI entries");
        h.advance(&mut generator, at(t0, 10_000));
        assert!(h.take().is_empty(), "two requests each, then given up");
        assert_eq!(h.wake, None);
    }

    #[test]
    fn tracks_at_most_max_missing() {
        let t0 = Instant::now();
        let mut generator = NackGenerator::new(&params(1, 100, 5000, 4), &stream(t0));
        let nacks = run(&mut generator, 30, &[3, 4, 5, 6, 7, 8, 9, 10, 11, 12], &[]);
        assert_eq!(nacks, vec![(130, vec![seq(9), seq(10), seq(11), seq(12)])]);
        assert_eq!(generator.given_up(), 4, "each asked once, then given up");

        // A huge jump cannot make it track more than the ring holds.
        let mut generator = NackGenerator::new(&params(1, 100, 5000, 4), &stream(t0));
        let mut h = Harness::ingress();
        h.rtp(&mut generator, &[0x80; 12], &media(t0, PUBLISHER, BASE, 0));
        h.rtp(&mut generator, &[0x80; 12], &media(t0, PUBLISHER, BASE + 30_000, 0));
        assert_eq!(h.take().len(), 1);
        assert!(generator.missing.capacity() >= 4 && generator.missing.is_empty());
    }

    #[test]
    fn disabled_by_zero_retries_and_quiet_at_bind() {
        let t0 = Instant::now();
        let mut generator = NackGenerator::new(&params(0, 100, 5000, 64), &stream(t0));
        assert!(run(&mut generator, 20, &[5], &[]).is_empty());
        let mut generator = NackGenerator::new(&params(3, 100, 5000, 64), &stream(t0));
        let mut h = Harness::ingress();
        h.wake = Some(t0);
        h.advance(&mut generator, t0);
        assert!(h.take().is_empty());
        assert_eq!(h.wake, None);
    }
}
