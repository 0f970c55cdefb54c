//! The bench payload: what the generator writes after the RTP fixed header and the sink checks.
//!
//! Layout (all big-endian), right after the 12-byte RTP header:
//! `[0..8]` send time in ns since the bench's [`Epoch`], `[8..12]` generator sequence of the
//! stream (from 0, no wrap within a run), `[12..16]` the RTP timestamp as sent, `[16..18]` the
//! RTP sequence number as sent, `[18]` the header's second byte as sent (marker and payload
//! type), `[19]` [`MAGIC`], then a byte pattern that depends on the generator sequence, so a
//! payload sent under another packet's header is caught.
//!
//! Owns the layout, its encoding and its verification. Must never allocate or read a clock
//! (times are arguments).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Size of the RTP fixed header the bench sends (no CSRC, no extension).
pub const RTP_HEADER_BYTES: usize = 12;
/// Bytes of the bench header at the start of the RTP payload.
pub const BENCH_HEADER_BYTES: usize = 20;
/// Marks a bench payload.
pub const MAGIC: u8 = 0xB5;

/// The shared time origin of one bench process: send times are ns since it.
#[derive(Debug, Clone, Copy)]
pub struct Epoch(Instant);

impl Epoch {
    /// An epoch starting now.
    pub fn new() -> Epoch {
        Epoch(Instant::now())
    }

    /// Nanoseconds from the epoch to `t` (0 if `t` is earlier).
    pub fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.0).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds from the epoch to now.
    pub fn now_ns(&self) -> u64 {
        self.ns(Instant::now())
    }

    /// How far the wall clock (`CLOCK_REALTIME`, which kernel receive timestamps use) is ahead
    /// of this epoch, in ns: add it to an epoch time to get a wall-clock time. Read both clocks
    /// again now and then, since the wall clock may be slewed.
    pub fn realtime_offset_ns(&self) -> u64 {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        u64::try_from(wall).unwrap_or(u64::MAX).saturating_sub(self.now_ns())
    }
}

impl Default for Epoch {
    fn default() -> Self {
        Epoch::new()
    }
}

/// The pattern byte at offset `k` of the pattern region of packet `gen_seq`.
pub fn pattern_byte(gen_seq: u32, k: usize) -> u8 {
    (gen_seq as u8) ^ (k as u8).wrapping_mul(31).wrapping_add((gen_seq >> 8) as u8)
}

/// What the generator put in one packet, as the sink reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchHeader {
    /// Send time, ns since the epoch.
    pub send_ns: u64,
    /// Generator sequence of the stream.
    pub gen_seq: u32,
    /// RTP timestamp as the publisher sent it.
    pub rtp_timestamp: u32,
    /// RTP sequence number as the publisher sent it.
    pub rtp_seq: u16,
    /// Second header byte (marker and payload type) as the publisher sent it.
    pub marker_pt: u8,
}

/// Why a payload is not an intact bench payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Shorter than the bench header.
    #[error("payload of {len_bytes} bytes is shorter than the {BENCH_HEADER_BYTES}-byte bench header")]
    Short {
        /// Payload length.
        len_bytes: usize,
    },
    /// The magic byte is wrong.
    #[error("bench magic byte is {found:#04x}, expected {MAGIC:#04x}")]
    Magic {
        /// The byte found.
        found: u8,
    },
    /// A pattern byte differs from what the generator wrote.
    #[error("pattern byte {offset} differs")]
    Pattern {
        /// Offset within the pattern region.
        offset: usize,
    },
}

/// Writes the bench header and pattern into `payload` (the RTP payload, at least
/// [`BENCH_HEADER_BYTES`] long; a shorter one is left untouched).
pub fn write(payload: &mut [u8], header: &BenchHeader) {
    let Some((head, pattern)) = payload.split_at_mut_checked(BENCH_HEADER_BYTES) else {
        return;
    };
    head[0..8].copy_from_slice(&header.send_ns.to_be_bytes());
    head[8..12].copy_from_slice(&header.gen_seq.to_be_bytes());
    head[12..16].copy_from_slice(&header.rtp_timestamp.to_be_bytes());
    head[16..18].copy_from_slice(&header.rtp_seq.to_be_bytes());
    head[18] = header.marker_pt;
    head[19] = MAGIC;
    for (k, b) in pattern.iter_mut().enumerate() {
        *b = pattern_byte(header.gen_seq, k);
    }
}

/// Rewrites the send time of a payload [`write`] filled (a shorter one is left untouched).
pub fn restamp(payload: &mut [u8], send_ns: u64) {
    if let Some(slot) = payload.get_mut(0..8) {
        slot.copy_from_slice(&send_ns.to_be_bytes());
    }
}

/// Reads and checks a bench payload: header, magic and every pattern byte.
pub fn read(payload: &[u8]) -> Result<BenchHeader, PayloadError> {
    let Some((head, pattern)) = payload.split_at_checked(BENCH_HEADER_BYTES) else {
        return Err(PayloadError::Short { len_bytes: payload.len() });
    };
    if head[19] != MAGIC {
        return Err(PayloadError::Magic { found: head[19] });
    }
    let be32 = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let header = BenchHeader {
        send_ns: u64::from(be32(0)) << 32 | u64::from(be32(4)),
        gen_seq: be32(8),
        rtp_timestamp: be32(12),
        rtp_seq: u16::from_be_bytes([head[16], head[17]]),
        marker_pt: head[18],
    };
    match pattern.iter().enumerate().position(|(k, &b)| b != pattern_byte(header.gen_seq, k)) {
        Some(offset) => Err(PayloadError::Pattern { offset }),
        None => Ok(header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BenchHeader {
        BenchHeader {
            send_ns: 0x0102_0304_0506_0708,
            gen_seq: 70_000,
            rtp_timestamp: 9,
            rtp_seq: 65_535,
            marker_pt: 0xE0,
        }
    }

    #[test]
    fn round_trips() {
        let mut payload = [0u8; 188];
        write(&mut payload, &sample());
        assert_eq!(read(&payload), Ok(sample()));
        assert_eq!(read(&payload[..BENCH_HEADER_BYTES]), Ok(sample()));
    }

    #[test]
    fn damage_is_caught() {
        let mut payload = [0u8; 64];
        write(&mut payload, &sample());
        assert_eq!(read(&payload[..10]), Err(PayloadError::Short { len_bytes: 10 }));
        let mut bad = payload;
        bad[19] = 0;
        assert_eq!(read(&bad), Err(PayloadError::Magic { found: 0 }));
        let mut bad = payload;
        bad[BENCH_HEADER_BYTES + 7] ^= 1;
        assert_eq!(read(&bad), Err(PayloadError::Pattern { offset: 7 }));
    }

    #[test]
    fn another_packets_payload_fails_the_pattern() {
        let mut a = [0u8; 100];
        write(&mut a, &sample());
        let mut b = [0u8; 100];
        write(&mut b, &BenchHeader { gen_seq: sample().gen_seq + 1, ..sample() });
        // b's header with a's pattern region: what a forwarder mixing buffers would produce.
        b[BENCH_HEADER_BYTES..].copy_from_slice(&a[BENCH_HEADER_BYTES..]);
        assert!(matches!(read(&b), Err(PayloadError::Pattern { .. })));
    }

    #[test]
    fn wall_clock_offset_maps_epoch_times_to_now() {
        let epoch = Epoch::new();
        let offset = epoch.realtime_offset_ns();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(wall.abs_diff(epoch.now_ns() + offset) < 5_000_000);
    }

    #[test]
    fn restamping_changes_only_the_send_time() {
        let mut payload = [0u8; 64];
        write(&mut payload, &sample());
        restamp(&mut payload, 42);
        assert_eq!(read(&payload), Ok(BenchHeader { send_ns: 42, ..sample() }));
    }

    #[test]
    fn short_buffers_are_left_alone() {
        let mut short = [7u8; 5];
        write(&mut short, &sample());
        assert_eq!(short, [7u8; 5]);
    }
}
