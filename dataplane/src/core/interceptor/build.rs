//! Binds interceptor instances: turns a stream's or subscription's spec into its chain.
//!
//! Owns [`ChainFactory`]: what every instance of one worker is bound with besides its spec (the
//! largest packet, the worker's NTP epoch, the worker's tap ring) and the fixed order of the built-ins
//! (see the module docs of [`super`]). Runs when a command is applied, never per packet; this is where
//! instances allocate.

use std::sync::Arc;

use super::builtin::keyframe::KeyframeThrottle;
use super::builtin::nack_cache::NackCache;
use super::builtin::nack_generator::NackGenerator;
use super::builtin::payload_filter::PayloadTypeFilter;
use super::builtin::rate_limit::RateLimit;
use super::builtin::reports::{ReceiverReports, SenderReports};
use super::builtin::stats::StatsInterceptor;
use super::builtin::tap::{Tap, TapRing};
use super::builtin::twcc::Twcc;
use super::spec::{EgressSpec, IngressSpec, NtpEpoch, StreamInfo, SubscriptionInfo};
use super::{Chain, Interceptor};

/// Builds the chains of one worker.
#[derive(Clone, Debug)]
pub struct ChainFactory {
    /// The largest datagram (retransmission cache slots are this long).
    pub max_packet_bytes: usize,
    /// The worker's NTP epoch.
    pub epoch: NtpEpoch,
    /// The worker's tap ring, read by the recorder. `None` (no recorder running): a spec's `tap` binds
    /// nothing.
    pub tap: Option<Arc<TapRing>>,
}

impl ChainFactory {
    /// The ingress chain `spec` asks for, bound to `info`, in the documented order.
    pub fn ingress(&self, spec: &IngressSpec, info: &StreamInfo) -> Chain {
        let mut members: Vec<Box<dyn Interceptor>> = Vec::new();
        if let Some(params) = &spec.rate_limit {
            members.push(Box::new(RateLimit::new(params, info)));
        }
        if let Some(params) = &spec.stats {
            members.push(Box::new(StatsInterceptor::for_stream(params, info)));
        }
        if let Some(params) = &spec.twcc {
            members.push(Box::new(Twcc::new(params, info)));
        }
        if let Some(params) = &spec.nack_generator {
            members.push(Box::new(NackGenerator::new(params, info)));
        }
        if let Some(params) = &spec.keyframe_throttle {
            members.push(Box::new(KeyframeThrottle::new(params, info)));
        }
        if let Some(params) = &spec.nack_cache {
            // With a NACK generator on the stream, it asks the publisher for what never arrived.
            let ask_publisher = spec.nack_generator.is_none();
            members.push(Box::new(NackCache::new(params, info, self.max_packet_bytes, ask_publisher)));
        }
        if let Some(params) = &spec.receiver_reports {
            members.push(Box::new(ReceiverReports::new(params, info)));
        }
        if let (Some(params), Some(ring)) = (&spec.tap, &self.tap) {
            members.push(Box::new(Tap::new(params, info, ring.clone())));
        }
        Chain::new(members)
    }

    /// The egress chain `spec` asks for, bound to `info`, in the documented order.
    pub fn egress(&self, spec: &EgressSpec, info: &SubscriptionInfo) -> Chain {
        let mut members: Vec<Box<dyn Interceptor>> = Vec::new();
        if let Some(params) = &spec.payload_type_filter {
            members.push(Box::new(PayloadTypeFilter::new(params, info)));
        }
        if let Some(params) = &spec.stats {
            members.push(Box::new(StatsInterceptor::for_subscription(params, info)));
        }
        if let Some(params) = &spec.sender_reports {
            members.push(Box::new(SenderReports::new(params, info)));
        }
        Chain::new(members)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::core::fuzz::{fuzz_egress, fuzz_ingress};
    use crate::core::interceptor::spec::{KeyframeThrottleParams, StatsParams};
    use crate::core::interceptor::InterceptorKind;
    use crate::core::wire::Ssrc;

    #[test]
    fn every_built_in_binds_in_the_documented_order() {
        let epoch = NtpEpoch { at: Instant::now(), ntp: 1 << 32 };
        let mut factory = ChainFactory { max_packet_bytes: 1500, epoch, tap: None };
        let stream = StreamInfo { ssrc: Ssrc(1), clock_rate_hz: 90_000, local_ssrc: Ssrc(2), epoch: factory.epoch };
        let ingress = factory.ingress(&fuzz_ingress(), &stream);
        let kinds: Vec<InterceptorKind> = ingress.members().map(|m| m.kind()).collect();
        use InterceptorKind::*;
        assert_eq!(
            kinds,
            [RateLimit, Stats, Twcc, NackGenerator, KeyframeThrottle, NackCache, ReceiverReports],
            "without a tap ring (no recorder), a tap spec binds nothing"
        );
        factory.tap = Some(Arc::new(TapRing::new(4, 1500)));
        let ingress = factory.ingress(&fuzz_ingress(), &stream);
        let kinds: Vec<InterceptorKind> = ingress.members().map(|m| m.kind()).collect();
        assert_eq!(kinds, [RateLimit, Stats, Twcc, NackGenerator, KeyframeThrottle, NackCache, ReceiverReports, Tap]);
        let sub = SubscriptionInfo {
            flow: 0,
            source_ssrc: Ssrc(1),
            out_ssrc: Ssrc(3),
            clock_rate_hz: 90_000,
            epoch: factory.epoch,
        };
        let egress = factory.egress(&fuzz_egress(), &sub);
        let kinds: Vec<InterceptorKind> = egress.members().map(|m| m.kind()).collect();
        assert_eq!(kinds, [PayloadTypeFilter, Stats, SenderReports]);
        assert!(factory.ingress(&IngressSpec::default(), &stream).is_empty());
    }

    #[test]
    fn a_pli_through_stats_and_the_keyframe_throttle_is_counted_once() {
        use crate::core::interceptor::{Outbox, RtcpFrom, Scope, Snapshot, Verdict};
        use crate::core::RtcpCompound;
        use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

        let now = Instant::now();
        let factory = ChainFactory { max_packet_bytes: 1500, epoch: NtpEpoch { at: now, ntp: 1 << 32 }, tap: None };
        let stream = StreamInfo { ssrc: Ssrc(1), clock_rate_hz: 90_000, local_ssrc: Ssrc(2), epoch: factory.epoch };
        let spec = IngressSpec {
            stats: Some(StatsParams { bitrate_window_ms: 1000 }),
            keyframe_throttle: Some(KeyframeThrottleParams { min_interval_ms: 500 }),
            ..IngressSpec::default()
        };
        let mut chain = factory.ingress(&spec, &stream);
        let packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> =
            vec![Box::new(PictureLossIndication { sender_ssrc: 9, media_ssrc: 1 })];
        let pli = rtcp::packet::marshal(&packets).expect("a PLI");
        let compound = RtcpCompound::parse(&pli).expect("valid RTCP");
        let mut outbox = Outbox::new(4, 1500);
        let from = RtcpFrom::Subscriber { flow: 0 };
        assert_eq!(chain.on_rtcp(now, Scope::Stream { stream: 0 }, &compound, from, &mut outbox), Verdict::Consumed);
        let mut figures = Snapshot::default();
        chain.snapshot(&mut figures);
        assert_eq!((figures.plis_received, figures.keyframe_requests_sent), (1, 1), "{figures:?}");
    }
}
