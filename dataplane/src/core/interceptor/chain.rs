//! An ordered chain of interceptor instances bound to one stream or one subscription.
//!
//! Owns [`Chain`]: the instances in their fixed order (see the module docs of
//! [`crate::core::interceptor`]) and each one's timer. Runs a packet through them until one does not
//! return [`Verdict::Continue`], and runs the timers that are due. Must never reorder, add or remove
//! instances after it is built, and never allocate while running.

use std::time::Instant;

use super::{Context, Interceptor, InterceptorKind, Outbox, RtcpFrom, RtpAttrs, Scope, Snapshot, Verdict};
use crate::core::packet::RtcpCompound;

/// The interceptors of one stream (ingress) or subscription (egress), in order.
#[derive(Debug, Default)]
pub struct Chain {
    members: Vec<Box<dyn Interceptor>>,
    wakes: Vec<Option<Instant>>,
    /// The earliest of `wakes`, kept so asking for it costs nothing per packet.
    earliest: Option<Instant>,
}

impl Chain {
    /// A chain of `members`, which must already be in the documented order (the spec builds them so).
    pub fn new(members: Vec<Box<dyn Interceptor>>) -> Chain {
        debug_assert!(members.windows(2).all(|pair| pair[0].kind() < pair[1].kind()), "chain out of order");
        let wakes = vec![None; members.len()];
        Chain { members, wakes, earliest: None }
    }

    /// True when no interceptor is bound (the forwarder skips the chain entirely).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// True when an interceptor of this kind is bound.
    pub fn has(&self, kind: InterceptorKind) -> bool {
        self.members.iter().any(|member| member.kind() == kind)
    }

    /// The bound interceptors, in order.
    pub fn members(&self) -> impl Iterator<Item = &dyn Interceptor> {
        self.members.iter().map(|member| member.as_ref())
    }

    /// Runs an RTP packet through the chain; the first verdict other than `Continue` ends the run.
    pub fn on_rtp(&mut self, now: Instant, scope: Scope, pkt: &[u8], attrs: &RtpAttrs, outbox: &mut Outbox) -> Verdict {
        for (member, wake) in self.members.iter_mut().zip(self.wakes.iter_mut()) {
            let mut ctx = Context::new(now, scope, outbox, wake);
            let verdict = member.on_rtp(pkt, attrs, &mut ctx);
            if let Some(at) = ctx.scheduled() {
                self.earliest = Some(self.earliest.map_or(at, |earliest| earliest.min(at)));
            }
            if verdict != Verdict::Continue {
                return verdict;
            }
        }
        Verdict::Continue
    }

    /// Runs an RTCP compound through the chain; the first verdict other than `Continue` ends the run.
    pub fn on_rtcp(
        &mut self,
        now: Instant,
        scope: Scope,
        rtcp: &RtcpCompound<'_>,
        from: RtcpFrom,
        outbox: &mut Outbox,
    ) -> Verdict {
        for (member, wake) in self.members.iter_mut().zip(self.wakes.iter_mut()) {
            let mut ctx = Context::new(now, scope, outbox, wake);
            let verdict = member.on_rtcp(rtcp, from, &mut ctx);
            if let Some(at) = ctx.scheduled() {
                self.earliest = Some(self.earliest.map_or(at, |earliest| earliest.min(at)));
            }
            if verdict != Verdict::Continue {
                return verdict;
            }
        }
        Verdict::Continue
    }

    /// Runs every timer due at `now` (each interceptor's timer is cleared before its call, so it
    /// reschedules itself if it wants to run again).
    pub fn on_timer(&mut self, now: Instant, scope: Scope, outbox: &mut Outbox) {
        for (member, wake) in self.members.iter_mut().zip(self.wakes.iter_mut()) {
            if wake.is_some_and(|at| at <= now) {
                *wake = None;
                let mut ctx = Context::new(now, scope, outbox, wake);
                member.on_timer(&mut ctx);
            }
        }
        self.earliest = self.wakes.iter().flatten().min().copied();
    }

    /// The earliest timer any member asked for.
    pub fn next_wake(&self) -> Option<Instant> {
        self.earliest
    }

    /// Every member's contribution to a statistics snapshot.
    pub fn snapshot(&self, out: &mut Snapshot) {
        for member in &self.members {
            member.snapshot(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::counters::DropReason;
    use crate::core::wire::{RtpTimestamp, SeqNo, Ssrc};

    /// Counts calls, drops every `drop_every`-th packet and asks for a timer every 10 ms.
    #[derive(Debug)]
    struct Probe {
        kind: InterceptorKind,
        seen: u64,
        timers: u64,
        drop_every: u64,
    }

    impl Interceptor for Probe {
        fn kind(&self) -> InterceptorKind {
            self.kind
        }
        fn on_rtp(&mut self, _pkt: &[u8], _attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
            self.seen += 1;
            ctx.schedule(ctx.now() + Duration::from_millis(10));
            if self.drop_every != 0 && self.seen.is_multiple_of(self.drop_every) {
                return Verdict::Drop(DropReason::RateLimited);
            }
            Verdict::Continue
        }
        fn on_timer(&mut self, ctx: &mut Context<'_>) {
            self.timers += 1;
            ctx.send_rtcp_to_publisher(|slot| {
                slot[0] = 0x80;
                1
            });
        }
        fn snapshot(&self, out: &mut Snapshot) {
            out.packets += self.seen;
        }
    }

    fn attrs(now: Instant) -> RtpAttrs {
        RtpAttrs {
            arrival: now,
            src: std::net::SocketAddr::from(([127, 0, 0, 1], 5000)),
            ssrc: Ssrc(1),
            seq: SeqNo(1),
            ext_seq: 1 << 16 | 1,
            timestamp: RtpTimestamp(0),
            payload_type: 96,
            source_payload_type: 96,
            marker: false,
            len_bytes: 12,
            payload_bytes: 0,
            extension_offset: None,
        }
    }

    #[test]
    fn verdicts_stop_the_chain_and_timers_fire_when_due() {
        let first = Probe { kind: InterceptorKind::RateLimit, seen: 0, timers: 0, drop_every: 2 };
        let second = Probe { kind: InterceptorKind::Stats, seen: 0, timers: 0, drop_every: 0 };
        let mut chain = Chain::new(vec![Box::new(first), Box::new(second)]);
        let mut outbox = Outbox::new(4, 16);
        let scope = Scope::Stream { stream: 0 };
        let t0 = Instant::now();
        assert_eq!(chain.on_rtp(t0, scope, &[0; 12], &attrs(t0), &mut outbox), Verdict::Continue);
        assert_eq!(chain.on_rtp(t0, scope, &[0; 12], &attrs(t0), &mut outbox), Verdict::Drop(DropReason::RateLimited));
        let mut snapshot = Snapshot::default();
        chain.snapshot(&mut snapshot);
        assert_eq!(snapshot.packets, 3, "the second saw only the packet the first let through");
        assert_eq!(chain.next_wake(), Some(t0 + Duration::from_millis(10)));
        chain.on_timer(t0 + Duration::from_millis(9), scope, &mut outbox);
        assert!(outbox.is_empty(), "not due yet");
        chain.on_timer(t0 + Duration::from_millis(10), scope, &mut outbox);
        assert_eq!(outbox.len(), 2, "both timers fired");
        assert_eq!(chain.next_wake(), None, "a fired timer is cleared");
    }
}
