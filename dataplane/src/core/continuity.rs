//! Continuous numbering for a subscriber across a stream switch.
//!
//! Owns `LastSent` (what a subscription last put on the wire, and when) and the rebase rule: on the
//! first RTP packet of the stream a subscription was switched to, its offsets are set so that this
//! packet continues the subscriber's sequence numbers exactly (`last + 1`) and its timestamps by the
//! time that passed, in the new stream's clock. Pure arithmetic on wrapping wire values: it must never
//! compare sequence numbers or timestamps with plain `<`, read a clock or allocate.

use std::time::{Duration, Instant};

use super::rewrite::Rewrite;
use super::wire::{rtp_ticks, RtpTimestamp, SeqNo};

/// The RTP header fields a subscription last sent (after rewriting), and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LastSent {
    /// Outgoing sequence number.
    pub(crate) seq: SeqNo,
    /// Outgoing RTP timestamp.
    pub(crate) ts: RtpTimestamp,
    /// The `now` of the datagram it was sent for.
    pub(crate) at: Instant,
}

/// What a subscription last put on the wire, as the control plane keeps it across a restart: its outgoing
/// sequence number and timestamp and when it was sent. Given back in `Command::AddSubscription`, the subscription
/// continues from it: its first packet goes out as `seq + 1`, its timestamp advanced by the time since `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbering {
    /// The outgoing sequence number.
    pub seq: u16,
    /// The outgoing RTP timestamp.
    pub ts: u32,
    /// When it went out.
    pub at: Instant,
}

impl From<LastSent> for Numbering {
    fn from(last: LastSent) -> Numbering {
        Numbering { seq: last.seq.0, ts: last.ts.0, at: last.at }
    }
}

impl From<Numbering> for LastSent {
    fn from(n: Numbering) -> LastSent {
        LastSent { seq: SeqNo(n.seq), ts: RtpTimestamp(n.ts), at: n.at }
    }
}

/// Whole ticks of a `clock_rate_hz` clock in `elapsed`, at least 1 (a later packet never repeats the
/// last timestamp), modulo 2^32 (timestamps wrap; only the low bits matter).
pub(crate) fn elapsed_ticks(elapsed: Duration, clock_rate_hz: u32) -> u32 {
    let ticks = rtp_ticks(elapsed, clock_rate_hz);
    // Under a second (or a 0 Hz clock) the count is below 2^32, so the low bits are the whole count.
    let under_one_tick = (elapsed.as_secs() == 0 || clock_rate_hz == 0) && ticks == 0;
    if under_one_tick {
        1
    } else {
        ticks
    }
}

/// Sets `rewrite`'s offsets so that the packet `(in_seq, in_ts)` arriving at `now` goes out as
/// `last.seq + 1` with timestamp `last.ts + elapsed_ticks(now - last.at, clock_rate_hz)` (wrapping).
/// A `now` before `last.at` counts as no time elapsed.
pub(crate) fn rebase(
    rewrite: &mut Rewrite,
    last: LastSent,
    now: Instant,
    in_seq: SeqNo,
    in_ts: RtpTimestamp,
    clock_rate_hz: u32,
) {
    let ticks = elapsed_ticks(now.saturating_duration_since(last.at), clock_rate_hz);
    rewrite.seq_offset = last.seq.add(1).distance(in_seq);
    rewrite.ts_offset = last.ts.add(ticks).distance(in_ts);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 12-byte RTP header with `seq` and `ts`.
    fn header(seq: u16, ts: u32) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[0] = 0x80;
        h[1] = 96;
        h[2..4].copy_from_slice(&seq.to_be_bytes());
        h[4..8].copy_from_slice(&ts.to_be_bytes());
        h
    }

    fn seq_ts(h: &[u8; 12]) -> (u16, u32) {
        (u16::from_be_bytes([h[2], h[3]]), u32::from_be_bytes([h[4], h[5], h[6], h[7]]))
    }

    #[test]
    fn ticks_follow_the_clock_rate() {
        let ms = Duration::from_millis;
        assert_eq!(elapsed_ticks(ms(20), 90_000), 1_800);
        assert_eq!(elapsed_ticks(ms(20), 48_000), 960);
        assert_eq!(elapsed_ticks(ms(1), 8_000), 8);
        // Floor, but never zero.
        assert_eq!(elapsed_ticks(Duration::from_micros(100), 8_000), 1);
        assert_eq!(elapsed_ticks(Duration::ZERO, 90_000), 1);
        // Wraps at 2^32 ticks: 2^32 / 1e6 Hz = 4294.967296 s.
        let wrap = Duration::from_nanos(4_294_967_296_000);
        assert_eq!(elapsed_ticks(wrap + ms(1), 1_000_000), 1_000);
        assert_eq!(elapsed_ticks(Duration::MAX, 1), (u64::MAX % (1 << 32)) as u32);
    }

    #[test]
    fn rebase_continues_across_wrap() {
        let start = Instant::now();
        let last = LastSent { seq: SeqNo(65_535), ts: RtpTimestamp(u32::MAX - 100), at: start };
        let mut rewrite = Rewrite { seq_offset: 5, ts_offset: 5, ..Rewrite::default() };
        let now = start + Duration::from_millis(40);
        rebase(&mut rewrite, last, now, SeqNo(1_000), RtpTimestamp(7), 90_000);
        assert_eq!(seq_ts(&rewrite.rtp_header(&header(1_000, 7))), (0, 3_499));
        // The next packet of the new stream follows on with the same offsets.
        assert_eq!(seq_ts(&rewrite.rtp_header(&header(1_001, 3_007))), (1, 6_499));
        // A clock going backwards counts as no time: one tick.
        rebase(&mut rewrite, last, start - Duration::from_millis(1), SeqNo(9), RtpTimestamp(9), 90_000);
        assert_eq!(seq_ts(&rewrite.rtp_header(&header(9, 9))), (0, u32::MAX - 99));
    }

    proptest! {
        #[test]
        fn rebased_packet_is_next(
            last_seq: u16, last_ts: u32, in_seq: u16, in_ts: u32,
            old_seq_offset: u16, old_ts_offset: u32,
            elapsed_us in 0u64..10_000_000, clock_rate_hz in 1u32..=1_000_000,
        ) {
            let start = Instant::now();
            let last = LastSent { seq: SeqNo(last_seq), ts: RtpTimestamp(last_ts), at: start };
            let mut rewrite = Rewrite { seq_offset: old_seq_offset, ts_offset: old_ts_offset, ..Rewrite::default() };
            let elapsed = Duration::from_micros(elapsed_us);
            rebase(&mut rewrite, last, start + elapsed, SeqNo(in_seq), RtpTimestamp(in_ts), clock_rate_hz);
            let (seq, ts) = seq_ts(&rewrite.rtp_header(&header(in_seq, in_ts)));
            prop_assert_eq!(seq, last_seq.wrapping_add(1));
            let ticks = (u128::from(elapsed_us) * u128::from(clock_rate_hz) / 1_000_000).max(1) as u32;
            prop_assert_eq!(ts, last_ts.wrapping_add(ticks));
            prop_assert!(RtpTimestamp(ts).is_newer_than(RtpTimestamp(last_ts)));
        }
    }
}
