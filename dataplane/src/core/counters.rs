//! Worker counters and drop reasons, defined once.
//!
//! Owns the list of every counter a worker keeps (one macro invocation below): the plain [`Counters`]
//! struct its worker writes, the [`SharedCounters`] atomic mirror other threads read, the exported
//! names and kinds ([`COUNTERS`]) and the [`DropReason`] enum, each reason with its own counter.
//! Must never be written by more than one thread: a worker owns its `Counters` and publishes them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Whether a counter only grows or is a level that goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterKind {
    /// Monotonic total since the worker started.
    Counter,
    /// A current level (table sizes, buffers in use).
    Gauge,
}

/// The exported description of one counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterInfo {
    /// The field and export name, e.g. `rx_packets`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: CounterKind,
    /// One-line help text.
    pub help: &'static str,
}

macro_rules! define_counters {
    (
        counters { $( $field:ident : $kind:ident = $help:literal ),* $(,)? }
        drops { $( $reason:ident = $reason_name:literal => $drop_field:ident = $drop_help:literal ),* $(,)? }
    ) => {
        /// Every counter of one worker, written only by that worker.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $( #[doc = $help] pub $field: u64, )*
            $( #[doc = $drop_help] pub $drop_field: u64, )*
        }

        /// The atomic mirror of [`Counters`]: the worker publishes, any thread snapshots.
        #[derive(Debug, Default)]
        pub struct SharedCounters {
            $( $field: AtomicU64, )*
            $( $drop_field: AtomicU64, )*
        }

        /// The name, kind and help of every field of [`Counters`], in declaration order.
        pub const COUNTERS: &[CounterInfo] = &[
            $( CounterInfo { name: stringify!($field), kind: CounterKind::$kind, help: $help }, )*
            $( CounterInfo { name: stringify!($drop_field), kind: CounterKind::Counter, help: $drop_help }, )*
        ];

        impl Counters {
            /// `(name, value)` of every counter, in the order of [`COUNTERS`].
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                let values = [ $( self.$field, )* $( self.$drop_field, )* ];
                COUNTERS.iter().map(|info| info.name).zip(values)
            }

            /// Counts one packet (or one copy of it) dropped for `reason`.
            pub fn count_drop(&mut self, reason: DropReason) {
                match reason {
                    $( DropReason::$reason => self.$drop_field += 1, )*
                }
            }

            /// The drop counter of `reason`.
            pub fn drops(&self, reason: DropReason) -> u64 {
                match reason {
                    $( DropReason::$reason => self.$drop_field, )*
                }
            }
        }

        impl SharedCounters {
            /// Stores every value of `counters` (Relaxed: each value is independent, readers tolerate skew).
            pub fn publish(&self, counters: &Counters) {
                $( self.$field.store(counters.$field, Ordering::Relaxed); )*
                $( self.$drop_field.store(counters.$drop_field, Ordering::Relaxed); )*
            }

            /// The last published values.
            pub fn snapshot(&self) -> Counters {
                Counters {
                    $( $field: self.$field.load(Ordering::Relaxed), )*
                    $( $drop_field: self.$drop_field.load(Ordering::Relaxed), )*
                }
            }
        }

        /// Why a packet (or one copy of it) was not forwarded. Each reason has its own counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum DropReason {
            $( #[doc = $drop_help] $reason, )*
        }

        impl DropReason {
            /// Every reason, in declaration order.
            pub const ALL: &[DropReason] = &[ $( DropReason::$reason, )* ];

            /// The reason as a label value, e.g. `unknown_ssrc`.
            pub fn name(self) -> &'static str {
                match self {
                    $( DropReason::$reason => $reason_name, )*
                }
            }

            /// The name of this reason's counter, e.g. `drop_unknown_ssrc`.
            pub fn counter_name(self) -> &'static str {
                match self {
                    $( DropReason::$reason => stringify!($drop_field), )*
                }
            }
        }
    };
}

define_counters! {
    counters {
        rx_packets: Counter = "Datagrams received from the media sockets.",
        rx_bytes: Counter = "Bytes of datagrams received from the media sockets.",
        rx_rtp: Counter = "Received datagrams that parsed as RTP.",
        rx_rtcp: Counter = "Received datagrams that parsed as RTCP compounds.",
        forwarded_packets: Counter = "Copies handed to egress, one per subscription.",
        forwarded_bytes: Counter = "Bytes of copies handed to egress.",
        consumed_no_subscriber: Counter = "Packets of a known stream that has no active subscription.",
        handover_out: Counter = "Packets handed to another worker: the owner of their SSRC, or the worker holding their stream (SSRC alias) or subscription (feedback route).",
        handover_in: Counter = "Packets received from another worker by handover.",
        latched: Counter = "Streams locked to a source by latching (or to their fallback), or re-latched after the source was silent for the latch window.",
        not_sent_no_destination: Counter = "Copies not sent to a subscription with no address yet (a latching subscriber that has not sent).",
        commands_applied: Counter = "Control commands applied.",
        commands_failed: Counter = "Control commands rejected with an error.",
        streams: Gauge = "Streams in this worker's table.",
        subscriptions: Gauge = "Subscriptions in this worker's table.",
        pool_in_use: Gauge = "Packet buffers in use (driver).",
        pool_exhausted: Counter = "Receive re-arms after the buffer ring ran out (ENOBUFS).",
        sends: Counter = "Send operations submitted (driver).",
        gso_sends: Counter = "Send operations that carried more than one UDP GSO segment.",
        gso_segments: Counter = "Segments sent in GSO send operations.",
        send_errors: Counter = "Send operations that completed with an error.",
        send_retries: Counter = "Sends sent again because a pending ICMP error (another destination's) failed them.",
        kernel_rx_dropped: Counter = "Datagrams the kernel dropped on the media sockets (receive queue full; sk_drops).",
        rx_feedback: Counter = "RTCP compounds received from subscribers (reports and feedback about a subscription).",
        feedback_forwarded: Counter = "Subscriber feedback (NACK, PLI, FIR) forwarded to the publisher, translated.",
        keyframe_requests: Counter = "Keyframe requests made for a subscriber by command (video subscribe, switch, resume).",
        consumed_by_interceptor: Counter = "Packets an interceptor consumed (answered or absorbed), not forwarded.",
        interceptor_emitted: Counter = "Packets interceptors emitted (reports, NACKs, retransmissions, keyframe requests).",
        retransmissions: Counter = "Packets retransmitted to subscribers from the NACK cache (included in interceptor_emitted).",
        interceptor_emit_refused: Counter = "Packets interceptors could not emit (outbox full, or no address to send to yet).",
        plugin_failures: Counter = "Plugin calls that panicked: that plugin instance is disabled, and packets pass it untouched.",
        rewritten_by_plugin: Counter = "RTP packets and RTCP compounds (ingress) and copies (egress) a plugin rewrote before they were sent.",
        injected: Counter = "RTP packets plugins injected into their stream and fanned out (included in interceptor_emitted).",
    }
    drops {
        NotRtp = "not_rtp" => drop_not_rtp = "STUN, DTLS or unclassifiable datagrams.",
        Malformed = "malformed" => drop_malformed = "RTP or RTCP that failed validation.",
        Oversize = "oversize" => drop_oversize = "Datagrams larger than max_packet_bytes.",
        UnknownSsrc = "unknown_ssrc" => drop_unknown_ssrc = "No stream with this SSRC on this worker.",
        WrongSource = "wrong_source" => drop_wrong_source = "Known SSRC from a source address that is not the stream's.",
        LatchExpired = "latch_expired" => drop_latch_expired = "Latch window over with no lock and not from the fallback.",
        Repeated = "repeated" => drop_repeated = "RTP a stream had already taken, from the other source, in the overlap after its source moved (SetSource).",
        TxFull = "tx_full" => drop_tx_full = "Copies egress refused (no send slot or header slot).",
        HandoverFull = "handover_full" => drop_handover_full = "Handovers refused because the ring to the owner was full.",
        RateLimited = "rate_limited" => drop_rate_limited = "Packets over the per-source rate (admission.max_packets_per_second_per_source).",
        PayloadTypeFiltered = "payload_type_filtered" => drop_payload_type_filtered = "Copies dropped by a subscription's payload-type filter.",
        RebasePending = "rebase_pending" => drop_rebase_pending = "RTCP copies withheld from a subscription switched to a stream until that stream's first RTP sets its timestamp offset.",
        Plugin = "plugin" => drop_plugin = "Packets or copies a plugin (a registered interceptor) dropped.",
    }
}

impl Counters {
    /// The backend could not take transmits the core had queued (no send slot or buffer): they count as
    /// `tx_full` drops, and refused forwards are taken back out of `forwarded_packets` and `forwarded_bytes`.
    pub fn refused_at_send(&mut self, refused: super::transmit::Refused) {
        self.forwarded_packets = self.forwarded_packets.saturating_sub(refused.forwards);
        self.forwarded_bytes = self.forwarded_bytes.saturating_sub(refused.forward_bytes);
        self.drop_tx_full += refused.forwards + refused.copies;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_complete() {
        let names: std::collections::HashSet<_> = COUNTERS.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), COUNTERS.len());
        assert_eq!(Counters::default().iter().count(), COUNTERS.len());
        for reason in DropReason::ALL {
            assert!(names.contains(reason.counter_name()), "{reason:?}");
            assert_eq!(reason.counter_name(), format!("drop_{}", reason.name()));
        }
        let gauges: Vec<_> = COUNTERS.iter().filter(|c| c.kind == CounterKind::Gauge).map(|c| c.name).collect();
        assert_eq!(gauges, ["streams", "subscriptions", "pool_in_use"]);
    }

    #[test]
    fn count_drop_hits_only_its_counter() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let mut counters = Counters::default();
            for _ in 0..=i {
                counters.count_drop(*reason);
            }
            assert_eq!(counters.drops(*reason), i as u64 + 1);
            let nonzero: Vec<_> = counters.iter().filter(|(_, v)| *v != 0).collect();
            assert_eq!(nonzero, [(reason.counter_name(), i as u64 + 1)]);
        }
    }

    #[test]
    fn publish_then_snapshot_round_trips() {
        let mut counters = Counters::default();
        for (i, field) in
            [&mut counters.rx_packets, &mut counters.streams, &mut counters.drop_rebase_pending].into_iter().enumerate()
        {
            *field = 10 + i as u64;
        }
        counters.kernel_rx_dropped = u64::MAX;
        let shared = SharedCounters::default();
        assert_eq!(shared.snapshot(), Counters::default());
        shared.publish(&counters);
        assert_eq!(shared.snapshot(), counters);
        let exported: Vec<_> = shared.snapshot().iter().filter(|(_, v)| *v != 0).collect();
        assert_eq!(
            exported,
            [("rx_packets", 10), ("streams", 11), ("kernel_rx_dropped", u64::MAX), ("drop_rebase_pending", 12)]
        );
    }
}
