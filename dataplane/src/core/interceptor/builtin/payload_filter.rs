//! Payload-type filter: a subscriber receives only the payload types it negotiated.
//!
//! Owns [`PayloadTypeFilter`] (egress, kind `PayloadTypeFilter`, first in the egress chain): an RTP copy
//! whose publisher payload type (`attrs.source_payload_type`, before mapping) has no bit set in
//! `allowed` is `Drop(PayloadTypeFiltered)` and counted. RTCP passes. Must never allocate or look at
//! the rewritten payload type (the map may send two source types to one).

use crate::core::counters::DropReason;
use crate::core::interceptor::spec::{PayloadTypeFilterParams, SubscriptionInfo};
use crate::core::interceptor::{Context, Interceptor, RtpAttrs, Snapshot, Verdict};

/// The payload-type filter of one subscription.
#[derive(Debug)]
pub struct PayloadTypeFilter {
    allowed: u128,
    filtered: u64,
}

impl PayloadTypeFilter {
    /// A filter passing the publisher payload types whose bit is set in `params.allowed`.
    pub fn new(params: &PayloadTypeFilterParams, _info: &SubscriptionInfo) -> PayloadTypeFilter {
        PayloadTypeFilter { allowed: params.allowed, filtered: 0 }
    }

    /// Whether payload type `pt` passes (anything above 127 never does).
    pub fn allows(&self, pt: u8) -> bool {
        1u128.checked_shl(u32::from(pt)).is_some_and(|bit| self.allowed & bit != 0)
    }
}

impl Interceptor for PayloadTypeFilter {
    fn on_rtp(&mut self, _pkt: &[u8], attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
        if self.allows(attrs.source_payload_type) {
            Verdict::Continue
        } else {
            self.filtered += 1;
            Verdict::Drop(DropReason::PayloadTypeFiltered)
        }
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.payload_type_filtered += self.filtered;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rtcp::receiver_report::ReceiverReport;

    use super::super::wire_feedback::test_support::*;
    use super::*;
    use crate::core::interceptor::RtcpFrom;

    #[test]
    fn passes_allowed_source_types_only() {
        let t0 = Instant::now();
        let allowed = 1u128 << 96 | 1u128 << 0 | 1u128 << 127;
        let mut filter = PayloadTypeFilter::new(&PayloadTypeFilterParams { allowed }, &subscription_info(t0));
        let mut h = Harness::egress();
        let mut verdicts = Vec::new();
        for pt in [96u8, 97, 0, 127, 111, 96] {
            let pkt = rtp(1, pt, 10, None);
            let mut a = attrs(&pkt, 1 << 16, t0);
            a.payload_type = 100; // the rewritten type must not matter
            verdicts.push(h.rtp(&mut filter, &pkt, &a));
        }
        let drop = Verdict::Drop(DropReason::PayloadTypeFiltered);
        let pass = Verdict::Continue;
        assert_eq!(verdicts, [pass, drop, pass, pass, drop, pass]);
        assert_eq!(snapshot(&filter).payload_type_filtered, 2);
        assert!(!filter.allows(128) && !filter.allows(255), "not a payload type");
        let rr = compound(vec![Box::new(ReceiverReport { ssrc: SUBSCRIBER.0, ..Default::default() })]);
        assert_eq!(h.rtcp(&mut filter, &rr, RtcpFrom::Subscriber { flow: 7 }, t0), Verdict::Continue);
        assert!(h.take().is_empty());
    }

    #[test]
    fn nothing_allowed_drops_everything() {
        let t0 = Instant::now();
        let mut filter = PayloadTypeFilter::new(&PayloadTypeFilterParams { allowed: 0 }, &subscription_info(t0));
        let mut h = Harness::egress();
        let dropped = (0..128u8)
            .filter(|pt| {
                let pkt = rtp(1, *pt, 10, None);
                h.rtp(&mut filter, &pkt, &attrs(&pkt, 1 << 16, t0)) != Verdict::Continue
            })
            .count();
        assert_eq!(dropped, 128);
    }
}
