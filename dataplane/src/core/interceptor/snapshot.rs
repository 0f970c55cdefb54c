//! The statistics one chain reports: a plain struct every interceptor adds its part to.
//!
//! Owns [`Snapshot`]. Filled by [`super::Chain::snapshot`] when telemetry asks (once per stats
//! interval, not per packet); every field is a total since the chain was bound unless it says
//! otherwise; [`Snapshot::merge`] adds several up for aggregates. Must never hold anything but numbers
//! (no strings, no allocation).

/// Statistics of one stream (ingress chain) or one subscription (egress chain).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// RTP packets counted (received from the publisher, or sent to the subscriber).
    pub packets: u64,
    /// Bytes of those packets (whole datagrams).
    pub bytes: u64,
    /// Packets expected minus packets received, per RFC 3550 A.3 (negative with duplicates). Ingress:
    /// what the publisher's path lost; egress: what the subscriber's receiver reports say.
    pub lost: i64,
    /// Fraction lost over the last report interval, in 1/256 units (RFC 3550 A.3; egress: as reported).
    pub fraction_lost: u8,
    /// Interarrival jitter per RFC 3550 A.8, in RTP timestamp units (egress: as reported).
    pub jitter_rtp_units: u32,
    /// Interarrival jitter in microseconds (from the clock rate).
    pub jitter_us: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Packets whose sequence number was already received.
    pub duplicates: u64,
    /// Bit rate over the last measurement window, bits per second.
    pub bitrate_bps: u64,
    /// Generic NACK packets seen (ingress: from subscribers; egress: from this subscriber).
    pub nacks_received: u64,
    /// Sequence numbers those NACKs asked for.
    pub nack_items_received: u64,
    /// Generic NACK packets sent toward the publisher.
    pub nacks_sent: u64,
    /// PLI packets seen (counted by `stats` only, so a keyframe throttle after it does not count them again).
    pub plis_received: u64,
    /// FIR packets seen (counted by `stats` only).
    pub firs_received: u64,
    /// Keyframe requests (PLI or FIR) sent to the publisher.
    pub keyframe_requests_sent: u64,
    /// Round-trip time from the last receiver report (LSR/DLSR), microseconds; 0 when unknown.
    pub rtt_us: u64,
    /// Packets retransmitted from the cache.
    pub retransmitted: u64,
    /// NACKed packets that were not (or no longer) in the cache, or were over the retransmission cap.
    pub retransmit_misses: u64,
    /// Packets dropped by a rate limit.
    pub rate_limited: u64,
    /// Packets dropped by a payload-type filter.
    pub payload_type_filtered: u64,
    /// Sender reports sent (egress) or received from the publisher (ingress).
    pub sender_reports: u64,
    /// Receiver reports sent (ingress) or received from the subscriber (egress).
    pub receiver_reports: u64,
    /// Transport-wide feedback packets sent.
    pub twcc_feedback_sent: u64,
    /// Packets copied to a tap.
    pub tapped: u64,
    /// Packets a tap dropped because its ring was full.
    pub tap_dropped: u64,
}

impl Snapshot {
    /// Adds `other` (another stream's or subscription's figures) into this one, for aggregates: counts,
    /// bytes and bit rates add up; fraction lost, jitter and RTT keep the worst (largest).
    pub fn merge(&mut self, other: &Snapshot) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.lost += other.lost;
        self.fraction_lost = self.fraction_lost.max(other.fraction_lost);
        self.jitter_rtp_units = self.jitter_rtp_units.max(other.jitter_rtp_units);
        self.jitter_us = self.jitter_us.max(other.jitter_us);
        self.reordered += other.reordered;
        self.duplicates += other.duplicates;
        self.bitrate_bps += other.bitrate_bps;
        self.nacks_received += other.nacks_received;
        self.nack_items_received += other.nack_items_received;
        self.nacks_sent += other.nacks_sent;
        self.plis_received += other.plis_received;
        self.firs_received += other.firs_received;
        self.keyframe_requests_sent += other.keyframe_requests_sent;
        self.rtt_us = self.rtt_us.max(other.rtt_us);
        self.retransmitted += other.retransmitted;
        self.retransmit_misses += other.retransmit_misses;
        self.rate_limited += other.rate_limited;
        self.payload_type_filtered += other.payload_type_filtered;
        self.sender_reports += other.sender_reports;
        self.receiver_reports += other.receiver_reports;
        self.twcc_feedback_sent += other.twcc_feedback_sent;
        self.tapped += other.tapped;
        self.tap_dropped += other.tap_dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_and_keeps_the_worst_quality() {
        let mut total =
            Snapshot { packets: 3, lost: -1, jitter_us: 50, rtt_us: 9, fraction_lost: 4, ..Snapshot::default() };
        total.merge(&Snapshot {
            packets: 2,
            lost: 3,
            jitter_us: 20,
            rtt_us: 30,
            fraction_lost: 1,
            ..Snapshot::default()
        });
        assert_eq!((total.packets, total.lost, total.jitter_us, total.rtt_us, total.fraction_lost), (5, 2, 50, 30, 4));
    }
}
