//! Binds interceptor instances: turns a stream's or subscription's spec into its chain.
//!
//! Owns [`ChainFactory`]: what every instance of one worker is bound with besides its spec (the
//! largest packet, the worker's NTP epoch, the worker's tap ring, the registered plugins) and the fixed order
//! of the members (see the module docs of [`super`]). Runs when a command is applied, never per packet; this
//! is where instances allocate.

use std::cell::Cell;
use std::sync::Arc;

use super::attach::Attachment;
use super::builtin::keyframe::KeyframeThrottle;
use super::builtin::nack_cache::NackCache;
use super::builtin::nack_generator::NackGenerator;
use super::builtin::payload_filter::PayloadTypeFilter;
use super::builtin::rate_limit::RateLimit;
use super::builtin::reports::{ReceiverReports, SenderReports};
use super::builtin::stats::StatsInterceptor;
use super::builtin::tap::{Tap, TapRing};
use super::builtin::twcc::Twcc;
use super::plugin::{Bound, Plugins, Unbound};
use super::spec::{EgressSpec, IngressSpec, NtpEpoch, StreamInfo, SubscriptionInfo};
use super::{Chain, Interceptor, InterceptorKind, Link};

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
    /// The registered plugins a spec's plugin list names (an id it does not hold binds nothing).
    pub plugins: Plugins,
    /// Plugin constructors that panicked in this factory's binds (see [`ChainFactory::bind_failures`]).
    bind_failures: Cell<u64>,
}

/// A chain's members as they are bound, each with what it is.
#[derive(Default)]
struct Members(Vec<(Link, Box<dyn Interceptor>)>);

impl Members {
    fn builtin(&mut self, kind: InterceptorKind, member: impl Interceptor + 'static) {
        self.0.push((Link::Builtin(kind), Box::new(member)));
    }
}

impl ChainFactory {
    /// A factory binding with these (no tap ring: set [`ChainFactory::tap`] for a recorder's).
    pub fn new(max_packet_bytes: usize, epoch: NtpEpoch, plugins: Plugins) -> ChainFactory {
        ChainFactory { max_packet_bytes, epoch, tap: None, plugins, bind_failures: Cell::new(0) }
    }

    /// How many plugin constructors panicked in this factory's binds so far: each such plugin sits in its chain as
    /// failed (packets pass it). The forwarder adds them to `plugin_failures`.
    pub fn bind_failures(&self) -> u64 {
        self.bind_failures.get()
    }

    /// Adds what binding `plugin` gave to `members`.
    fn plugin(&self, members: &mut Members, plugin: &Attachment, bound: Bound) {
        let link = Link::attached(plugin);
        match bound {
            Bound::Ready(member) => members.0.push((link, member)),
            Bound::Panicked => {
                self.bind_failures.set(self.bind_failures.get() + 1);
                let failed = match link {
                    Link::Plugin { id, fail_closed, .. } => Link::Plugin { id, failed: true, fail_closed },
                    builtin => builtin,
                };
                members.0.push((failed, Box::new(Unbound)));
            }
            Bound::Unregistered => {}
        }
    }

    /// The ingress chain `spec` asks for, bound to `info`, in the documented order.
    pub fn ingress(&self, spec: &IngressSpec, info: &StreamInfo) -> Chain {
        let mut members = Members::default();
        if let Some(params) = &spec.rate_limit {
            members.builtin(InterceptorKind::RateLimit, RateLimit::new(params, info));
        }
        if let Some(params) = &spec.stats {
            members.builtin(InterceptorKind::Stats, StatsInterceptor::for_stream(params, info));
        }
        if let Some(params) = &spec.twcc {
            members.builtin(InterceptorKind::Twcc, Twcc::new(params, info));
        }
        if let Some(params) = &spec.nack_generator {
            members.builtin(InterceptorKind::NackGenerator, NackGenerator::new(params, info));
        }
        if let Some(params) = &spec.keyframe_throttle {
            members.builtin(InterceptorKind::KeyframeThrottle, KeyframeThrottle::new(params, info));
        }
        for plugin in spec.plugins.attachments() {
            self.plugin(&mut members, &plugin, self.plugins.bind_ingress(&plugin, info));
        }
        if let Some(params) = &spec.nack_cache {
            // With a NACK generator on the stream, it asks the publisher for what never arrived.
            let ask_publisher = spec.nack_generator.is_none();
            let cache = NackCache::new(params, info, self.max_packet_bytes, ask_publisher);
            members.builtin(InterceptorKind::NackCache, cache);
        }
        if let Some(params) = &spec.receiver_reports {
            members.builtin(InterceptorKind::ReceiverReports, ReceiverReports::new(params, info));
        }
        if let (Some(params), Some(ring)) = (&spec.tap, &self.tap) {
            members.builtin(InterceptorKind::Tap, Tap::new(params, info, ring.clone()));
        }
        Chain::new(members.0)
    }

    /// The egress chain `spec` asks for, bound to `info`, in the documented order.
    pub fn egress(&self, spec: &EgressSpec, info: &SubscriptionInfo) -> Chain {
        let mut members = Members::default();
        if let Some(params) = &spec.payload_type_filter {
            members.builtin(InterceptorKind::PayloadTypeFilter, PayloadTypeFilter::new(params, info));
        }
        for plugin in spec.plugins.attachments() {
            self.plugin(&mut members, &plugin, self.plugins.bind_egress(&plugin, info));
        }
        if let Some(params) = &spec.stats {
            members.builtin(InterceptorKind::Stats, StatsInterceptor::for_subscription(params, info));
        }
        if let Some(params) = &spec.sender_reports {
            members.builtin(InterceptorKind::SenderReports, SenderReports::new(params, info));
        }
        Chain::new(members.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::core::fuzz::{fuzz_egress, fuzz_ingress};
    use crate::core::interceptor::spec::{KeyframeThrottleParams, StatsParams};
    use crate::core::interceptor::{Context, PluginId, RtpAttrs, Verdict};
    use crate::core::wire::Ssrc;

    /// A plugin that lets everything through.
    #[derive(Debug)]
    struct Pass;
    impl Interceptor for Pass {
        fn on_rtp(&mut self, _pkt: &[u8], _attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
            Verdict::Continue
        }
    }

    fn builtins(chain: &Chain) -> Vec<InterceptorKind> {
        chain.links().filter_map(|link| if let Link::Builtin(kind) = link { Some(kind) } else { None }).collect()
    }

    #[test]
    fn every_built_in_binds_in_the_documented_order() {
        let epoch = NtpEpoch { at: Instant::now(), ntp: 1 << 32 };
        let mut factory = ChainFactory::new(1500, epoch, Plugins::none());
        let stream = StreamInfo { ssrc: Ssrc(1), clock_rate_hz: 90_000, local_ssrc: Ssrc(2), epoch: factory.epoch };
        let ingress = factory.ingress(&fuzz_ingress(), &stream);
        use InterceptorKind::*;
        assert_eq!(
            builtins(&ingress),
            [RateLimit, Stats, Twcc, NackGenerator, KeyframeThrottle, NackCache, ReceiverReports],
            "without a tap ring (no recorder), a tap spec binds nothing"
        );
        factory.tap = Some(Arc::new(TapRing::new(4, 1500)));
        let ingress = factory.ingress(&fuzz_ingress(), &stream);
        assert_eq!(
            builtins(&ingress),
            [RateLimit, Stats, Twcc, NackGenerator, KeyframeThrottle, NackCache, ReceiverReports, Tap]
        );
        let sub = SubscriptionInfo {
            flow: 0,
            source_ssrc: Ssrc(1),
            out_ssrc: Ssrc(3),
            clock_rate_hz: 90_000,
            epoch: factory.epoch,
        };
        let egress = factory.egress(&fuzz_egress(), &sub);
        assert_eq!(builtins(&egress), [PayloadTypeFilter, Stats, SenderReports]);
        assert!(factory.ingress(&IngressSpec::default(), &stream).is_empty());
    }

    #[test]
    fn a_pli_through_stats_and_the_keyframe_throttle_is_counted_once() {
        use crate::core::interceptor::{Outbox, RtcpFrom, Scope, Snapshot, Verdict};
        use crate::core::RtcpCompound;
        use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

        let now = Instant::now();
        let epoch = NtpEpoch { at: now, ntp: 1 << 32 };
        let factory = ChainFactory::new(1500, epoch, Plugins::none());
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

    #[test]
    fn plugins_bind_at_their_documented_position_in_the_listed_order() {
        let plugins = Plugins::none()
            .with_ingress("first", |_: &StreamInfo| Box::new(Pass))
            .and_then(|p| p.with_ingress("second", |_: &StreamInfo| Box::new(Pass)))
            .and_then(|p| p.with_egress("second", |_: &SubscriptionInfo| Box::new(Pass)))
            .expect("registered");
        let (first, second) = (PluginId(0), PluginId(1));
        let epoch = NtpEpoch { at: Instant::now(), ntp: 1 << 32 };
        let factory = ChainFactory::new(1500, epoch, plugins);
        let stream = StreamInfo { ssrc: Ssrc(1), clock_rate_hz: 90_000, local_ssrc: Ssrc(2), epoch };
        let mut spec = fuzz_ingress();
        spec.plugins.push(second).and_then(|()| spec.plugins.push(first)).expect("room");
        let links: Vec<Link> = factory.ingress(&spec, &stream).links().collect();
        use InterceptorKind::*;
        let b = Link::Builtin;
        assert_eq!(
            links,
            [
                b(RateLimit),
                b(Stats),
                b(Twcc),
                b(NackGenerator),
                b(KeyframeThrottle),
                Link::plugin(second),
                Link::plugin(first),
                b(NackCache),
                b(ReceiverReports),
            ]
        );
        let sub = SubscriptionInfo { flow: 0, source_ssrc: Ssrc(1), out_ssrc: Ssrc(3), clock_rate_hz: 90_000, epoch };
        let mut spec = fuzz_egress();
        spec.plugins.push(first).and_then(|()| spec.plugins.push(second)).expect("room");
        let links: Vec<Link> = factory.egress(&spec, &sub).links().collect();
        assert_eq!(
            links,
            [b(PayloadTypeFilter), Link::plugin(second), b(Stats), b(SenderReports)],
            "`first` is not registered for egress: it binds nothing there"
        );
    }

    #[test]
    fn a_plugin_whose_constructor_panics_sits_in_the_chain_as_failed_and_is_counted() {
        let plugins = Plugins::none()
            .with_ingress("broken", |_: &StreamInfo| -> Box<dyn Interceptor> { panic!("no state for this stream") })
            .and_then(|p| p.with_ingress("fine", |_: &StreamInfo| Box::new(Pass)))
            .expect("registered");
        let (broken, fine) = (PluginId(0), PluginId(1));
        let epoch = NtpEpoch { at: Instant::now(), ntp: 1 << 32 };
        let factory = ChainFactory::new(1500, epoch, plugins);
        let stream = StreamInfo { ssrc: Ssrc(1), clock_rate_hz: 90_000, local_ssrc: Ssrc(2), epoch };
        let mut spec = IngressSpec::default();
        spec.plugins.push(broken).and_then(|()| spec.plugins.push(fine)).expect("room");
        let mut chain = factory.ingress(&spec, &stream);
        assert_eq!(
            chain.links().collect::<Vec<_>>(),
            [Link::Plugin { id: broken, failed: true, fail_closed: false }, Link::plugin(fine)]
        );
        assert_eq!(factory.bind_failures(), 1);
        let mut outbox = crate::core::interceptor::Outbox::new(4, 1500);
        let attrs = crate::core::interceptor::chain::tests::attrs(epoch.at);
        let scope = crate::core::interceptor::Scope::Stream { stream: 0 };
        assert_eq!(chain.on_rtp(epoch.at, scope, &[0x80; 12], &attrs, &mut outbox), Verdict::Continue);
        assert_eq!(outbox.take_plugin_failures(), 0, "counted once, when bound");
    }
}
