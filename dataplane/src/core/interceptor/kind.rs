//! Which built-in an interceptor is: the data plane's own names for its built-ins, in chain order.
//!
//! Owns the list of built-ins and their stable names (the names the config and the API use: the config crate reads
//! and writes chains with this type). Must never read or know the config: the chain order is this enum's order because the
//! data plane documents it ([`super`]), not because a config schema declares it so.

/// A built-in interceptor. Declared in chain order: ingress and egress each run a subsequence of it. Serialized
/// by its stable name (the config crate reads and writes chains with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterceptorKind {
    /// Per-source packet and bit rate limit (ingress).
    RateLimit,
    /// Drops payload types the subscriber did not negotiate (egress).
    PayloadTypeFilter,
    /// RFC 3550 statistics (ingress and egress).
    Stats,
    /// Transport-wide congestion control feedback to the publisher (ingress).
    Twcc,
    /// NACKs to the publisher for missing packets (ingress).
    NackGenerator,
    /// At most one keyframe request per interval to the publisher (ingress).
    KeyframeThrottle,
    /// Retransmission cache answering subscribers' NACKs (ingress).
    NackCache,
    /// Receiver reports to the publisher (ingress).
    ReceiverReports,
    /// Copies packets to the pcap recorder (ingress).
    Tap,
    /// Sender reports to the subscriber (egress).
    SenderReports,
}

impl InterceptorKind {
    /// Every built-in, in chain order.
    pub const ALL: [InterceptorKind; 10] = [
        InterceptorKind::RateLimit,
        InterceptorKind::PayloadTypeFilter,
        InterceptorKind::Stats,
        InterceptorKind::Twcc,
        InterceptorKind::NackGenerator,
        InterceptorKind::KeyframeThrottle,
        InterceptorKind::NackCache,
        InterceptorKind::ReceiverReports,
        InterceptorKind::Tap,
        InterceptorKind::SenderReports,
    ];

    /// Its stable name, e.g. `nack_cache`.
    pub fn as_str(self) -> &'static str {
        match self {
            InterceptorKind::RateLimit => "rate_limit",
            InterceptorKind::PayloadTypeFilter => "payload_type_filter",
            InterceptorKind::Stats => "stats",
            InterceptorKind::Twcc => "twcc",
            InterceptorKind::NackGenerator => "nack_generator",
            InterceptorKind::KeyframeThrottle => "keyframe_throttle",
            InterceptorKind::NackCache => "nack_cache",
            InterceptorKind::ReceiverReports => "receiver_reports",
            InterceptorKind::Tap => "tap",
            InterceptorKind::SenderReports => "sender_reports",
        }
    }

    /// The built-in named `name`, if any.
    pub fn parse(name: &str) -> Option<InterceptorKind> {
        InterceptorKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// True if it runs on a stream's ingress chain.
    pub fn is_ingress(self) -> bool {
        !matches!(self, InterceptorKind::PayloadTypeFilter | InterceptorKind::SenderReports)
    }

    /// True if it runs on a subscription's egress chain.
    pub fn is_egress(self) -> bool {
        matches!(self, InterceptorKind::Stats | InterceptorKind::PayloadTypeFilter | InterceptorKind::SenderReports)
    }
}

#[cfg(test)]
mod tests {
    use super::InterceptorKind;

    #[test]
    fn all_is_in_declaration_order_and_every_kind_runs_somewhere() {
        assert!(InterceptorKind::ALL.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(InterceptorKind::ALL.iter().all(|k| k.is_ingress() || k.is_egress()));
        let names: std::collections::HashSet<_> = InterceptorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), InterceptorKind::ALL.len(), "names are unique");
    }
}
