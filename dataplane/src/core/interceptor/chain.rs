//! An ordered chain of interceptor instances bound to one stream or one subscription.
//!
//! Owns [`Chain`]: the instances in their fixed order (see the module docs of
//! [`crate::core::interceptor`]), what each one is ([`Link`]: a built-in or a plugin) and each one's timer.
//! Runs a packet through them until one does not return [`Verdict::Continue`], and runs the timers that are due.
//! A plugin's call runs under `catch_unwind`: a plugin that panics is disabled (its packets pass it untouched
//! from then on) and the failure is counted in the outbox. A plugin may rewrite the RTP packet or the RTCP compound
//! it sees ([`Context::rewrite`]): the members after it see the new packet, and the chain leaves it in the outbox for
//! the forwarder ([`Outbox::take_rewritten`]). Must never reorder, add or remove instances after it is built, and never
//! allocate while running.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::attach::{Attachment, FailurePath};
use super::context::{Rewritable, Rewritten};
use super::plugin::PluginId;
use super::{Context, Interceptor, InterceptorKind, Outbox, RtcpFrom, RtpAttrs, Scope, Snapshot, Verdict};
use crate::core::event::PluginFault;
use crate::core::packet::RtcpCompound;
use crate::core::DropReason;

/// What a chain member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// A built-in.
    Builtin(InterceptorKind),
    /// A registered plugin; `failed` once one of its calls panicked (it is skipped from then on).
    Plugin {
        /// The plugin.
        id: PluginId,
        /// True after a panic.
        failed: bool,
        /// Its attachment's failure path is `drop`: once failed, its packets are dropped (reason `plugin`) instead of
        /// passing it.
        fail_closed: bool,
    },
}

impl Link {
    /// A plugin member that has not failed, fail-open.
    pub fn plugin(id: PluginId) -> Link {
        Link::Plugin { id, failed: false, fail_closed: false }
    }

    /// The member for `plugin`, not failed, on its attachment's failure path (fail-open unless it says `drop`).
    pub fn attached(plugin: &Attachment) -> Link {
        let fail_closed = plugin.attach.on_failure == Some(FailurePath::Drop);
        Link::Plugin { id: plugin.id, failed: false, fail_closed }
    }

    /// The verdict of a failed plugin member: its failure path.
    fn failure_verdict(fail_closed: bool) -> Verdict {
        if fail_closed {
            Verdict::Drop(DropReason::Plugin)
        } else {
            Verdict::Continue
        }
    }
}

/// The interceptors of one stream (ingress) or subscription (egress), in order.
#[derive(Debug, Default)]
pub struct Chain {
    members: Vec<Box<dyn Interceptor>>,
    links: Vec<Link>,
    wakes: Vec<Option<Instant>>,
    /// The earliest of `wakes`, kept so asking for it costs nothing per packet.
    earliest: Option<Instant>,
    /// True when a plugin is bound: only then do calls go through [`call`]'s guard.
    guarded: bool,
}

/// Runs one member's call: a built-in directly, a plugin under `catch_unwind` (a panic disables it and the packet
/// takes the attachment's failure path: it passes, as if the plugin had returned `Continue`, or it is dropped); a
/// disabled plugin is skipped the same way. Answers the verdict, and the plugin that panicked, if one did.
fn call(link: &mut Link, run: impl FnOnce() -> Verdict) -> (Verdict, Option<PluginId>) {
    match link {
        Link::Builtin(_) => (run(), None),
        Link::Plugin { failed: true, fail_closed, .. } => (Link::failure_verdict(*fail_closed), None),
        Link::Plugin { failed, id, fail_closed } => match catch_unwind(AssertUnwindSafe(run)) {
            Ok(verdict) => (verdict, None),
            Err(_) => {
                *failed = true;
                (Link::failure_verdict(*fail_closed), Some(*id))
            }
        },
    }
}

/// One member's call through [`call`]: `run` gets a context at `now` for `scope` with the member's timer slot `wake`
/// (allowed to rewrite its packet as `rewrite` says, when given); the timer it
/// asks for joins `earliest`, and a panic is noted in the outbox. Its verdict, and whether it panicked.
#[allow(clippy::too_many_arguments)]
#[inline]
fn call_member(
    link: &mut Link,
    wake: &mut Option<Instant>,
    earliest: &mut Option<Instant>,
    now: Instant,
    scope: Scope,
    outbox: &mut Outbox,
    rewrite: Option<Rewritable<'_>>,
    run: impl FnOnce(&mut Context<'_>) -> Verdict,
) -> (Verdict, bool) {
    let mut scheduled = None;
    let (verdict, panicked) = call(link, || {
        let mut ctx = Context::new(now, scope, outbox, wake);
        if let Some(rewritable) = rewrite {
            ctx.allow_rewrite(rewritable);
        }
        let verdict = run(&mut ctx);
        scheduled = ctx.scheduled();
        verdict
    });
    if let Some(plugin) = panicked {
        outbox.note_plugin_failure(scope, plugin, PluginFault::Panic);
    }
    if let Some(at) = scheduled {
        *earliest = Some(earliest.map_or(at, |earliest| earliest.min(at)));
    }
    (verdict, panicked.is_some())
}

impl Chain {
    /// A chain of `members`, which must already be in the documented order (the factory builds them so).
    pub fn new(members: Vec<(Link, Box<dyn Interceptor>)>) -> Chain {
        let (links, members): (Vec<Link>, Vec<Box<dyn Interceptor>>) = members.into_iter().unzip();
        let wakes = vec![None; members.len()];
        let guarded = links.iter().any(|link| matches!(link, Link::Plugin { .. }));
        Chain { members, links, wakes, earliest: None, guarded }
    }

    /// True when no interceptor is bound (the forwarder skips the chain entirely).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// True when the built-in `kind` is bound.
    pub fn has(&self, kind: InterceptorKind) -> bool {
        self.links.contains(&Link::Builtin(kind))
    }

    /// What each bound member is, in order.
    pub fn links(&self) -> impl Iterator<Item = Link> + '_ {
        self.links.iter().copied()
    }

    /// Runs an RTP packet through the chain; the first verdict other than `Continue` ends the run. When a plugin
    /// rewrote the packet and the verdict is `Continue`, the new packet waits in the outbox
    /// ([`Outbox::take_rewritten`]).
    #[inline]
    pub fn on_rtp(&mut self, now: Instant, scope: Scope, pkt: &[u8], attrs: &RtpAttrs, outbox: &mut Outbox) -> Verdict {
        if self.guarded {
            return self.run_rtp_guarded(now, scope, pkt, attrs, outbox);
        }
        self.run(now, scope, outbox, |member, ctx| member.on_rtp(pkt, attrs, ctx))
    }

    /// [`Chain::on_rtp`] for a chain with a plugin: each call through [`call`], and each plugin may rewrite the packet
    /// (the members after it see the new one, with its attributes read again).
    #[inline(never)]
    fn run_rtp_guarded(
        &mut self,
        now: Instant,
        scope: Scope,
        pkt: &[u8],
        attrs: &RtpAttrs,
        outbox: &mut Outbox,
    ) -> Verdict {
        let ingress = matches!(scope, Scope::Stream { .. });
        // The buffer of the rewritten packet, lent by the outbox at the first rewrite (most runs never take it).
        let mut held: Option<Box<[u8]>> = None;
        let mut rewritten: Option<(usize, RtpAttrs)> = None;
        let mut verdict = Verdict::Continue;
        outbox.clear_staged();
        for ((member, wake), link) in self.members.iter_mut().zip(self.wakes.iter_mut()).zip(self.links.iter_mut()) {
            let (current, current_attrs): (&[u8], &RtpAttrs) = match (&held, &rewritten) {
                (Some(buffer), Some((len, rewritten_attrs))) => (&buffer[..*len], rewritten_attrs),
                _ => (pkt, attrs),
            };
            let rewrite =
                matches!(link, Link::Plugin { .. }).then_some(Rewritable::Rtp { attrs: current_attrs, ingress });
            let (answer, panicked) = call_member(link, wake, &mut self.earliest, now, scope, outbox, rewrite, |ctx| {
                member.on_rtp(current, current_attrs, ctx)
            });
            if panicked {
                outbox.clear_staged();
            }
            if answer != Verdict::Continue {
                verdict = answer;
                break;
            }
            if let Some(Rewritten::Rtp(len, staged_attrs)) = outbox.staged() {
                let buffer = held.get_or_insert_with(|| outbox.begin_rewrite());
                outbox.swap_staged(buffer);
                rewritten = Some((len, staged_attrs));
            }
        }
        let passed_on =
            rewritten.filter(|_| verdict == Verdict::Continue).map(|(len, attrs)| Rewritten::Rtp(len, attrs));
        match held {
            Some(buffer) => outbox.end_rewrite(buffer, passed_on),
            None => outbox.end_rewrite_unused(),
        }
        verdict
    }

    /// Runs an RTCP compound through the chain; the first verdict other than `Continue` ends the run. When a plugin
    /// rewrote the compound and the verdict is `Continue`, the new compound waits in the outbox
    /// ([`Outbox::take_rewritten`]).
    #[inline]
    pub fn on_rtcp(
        &mut self,
        now: Instant,
        scope: Scope,
        rtcp: &RtcpCompound<'_>,
        from: RtcpFrom,
        outbox: &mut Outbox,
    ) -> Verdict {
        if self.guarded {
            return self.run_rtcp_guarded(now, scope, rtcp, from, outbox);
        }
        self.run(now, scope, outbox, |member, ctx| member.on_rtcp(rtcp, from, ctx))
    }

    /// [`Chain::on_rtcp`] for a chain with a plugin: each call through [`call`], and each plugin may rewrite the
    /// compound (the members after it see the new one; it keeps the first SSRC, so `from` still holds).
    #[inline(never)]
    fn run_rtcp_guarded(
        &mut self,
        now: Instant,
        scope: Scope,
        rtcp: &RtcpCompound<'_>,
        from: RtcpFrom,
        outbox: &mut Outbox,
    ) -> Verdict {
        let rewrite = Rewritable::Rtcp { first_ssrc: rtcp.first_ssrc() };
        // As in `run_rtp_guarded`: the buffer of the rewritten compound, lent at the first rewrite.
        let mut held: Option<Box<[u8]>> = None;
        let mut rewritten: Option<usize> = None;
        let mut verdict = Verdict::Continue;
        outbox.clear_staged();
        for ((member, wake), link) in self.members.iter_mut().zip(self.wakes.iter_mut()).zip(self.links.iter_mut()) {
            // A staged compound was validated by `Context::rewrite`: parsing it again for the next member only finds
            // its packets (and only runs after a rewrite).
            let current = match (&held, rewritten) {
                (Some(buffer), Some(len)) => buffer.get(..len).and_then(|bytes| RtcpCompound::parse(bytes).ok()),
                _ => None,
            };
            let current = current.as_ref().unwrap_or(rtcp);
            let allowed = matches!(link, Link::Plugin { .. }).then_some(rewrite);
            let (answer, panicked) = call_member(link, wake, &mut self.earliest, now, scope, outbox, allowed, |ctx| {
                member.on_rtcp(current, from, ctx)
            });
            if panicked {
                outbox.clear_staged();
            }
            if answer != Verdict::Continue {
                verdict = answer;
                break;
            }
            if let Some(Rewritten::Rtcp(len)) = outbox.staged() {
                let buffer = held.get_or_insert_with(|| outbox.begin_rewrite());
                outbox.swap_staged(buffer);
                rewritten = Some(len);
            }
        }
        let passed_on = rewritten.filter(|_| verdict == Verdict::Continue).map(Rewritten::Rtcp);
        match held {
            Some(buffer) => outbox.end_rewrite(buffer, passed_on),
            None => outbox.end_rewrite_unused(),
        }
        verdict
    }

    /// Runs `on_packet` on each member in order until one answers other than `Continue`, and notes the timers
    /// they asked for: a chain of built-ins only (a chain with a plugin runs through [`Chain::run_rtp_guarded`] and
    /// [`Chain::run_rtcp_guarded`] instead, out of line, so that a chain of built-ins runs exactly as it did before
    /// plugins existed).
    #[inline(always)]
    fn run(
        &mut self,
        now: Instant,
        scope: Scope,
        outbox: &mut Outbox,
        mut on_packet: impl FnMut(&mut dyn Interceptor, &mut Context<'_>) -> Verdict,
    ) -> Verdict {
        for (member, wake) in self.members.iter_mut().zip(self.wakes.iter_mut()) {
            let mut ctx = Context::new(now, scope, outbox, wake);
            let verdict = on_packet(member.as_mut(), &mut ctx);
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
        for ((member, wake), link) in self.members.iter_mut().zip(self.wakes.iter_mut()).zip(self.links.iter_mut()) {
            if wake.is_some_and(|at| at <= now) {
                *wake = None;
                // The chain's earliest is worked out again below, from every member's timer.
                call_member(link, wake, &mut self.earliest, now, scope, outbox, None, |ctx| {
                    member.on_timer(ctx);
                    Verdict::Continue
                });
            }
        }
        self.earliest = self.wakes.iter().flatten().min().copied();
    }

    /// The earliest timer any member asked for.
    pub fn next_wake(&self) -> Option<Instant> {
        self.earliest
    }

    /// Every member's contribution to a statistics snapshot. A failed plugin adds nothing (its state may be
    /// broken); a plugin that panics here adds what it added before the panic.
    pub fn snapshot(&self, out: &mut Snapshot) {
        for (member, link) in self.members.iter().zip(&self.links) {
            match link {
                Link::Builtin(_) => member.snapshot(out),
                Link::Plugin { failed: true, .. } => {}
                Link::Plugin { failed: false, .. } => {
                    let _ = catch_unwind(AssertUnwindSafe(|| member.snapshot(out)));
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::counters::DropReason;
    use crate::core::wire::{RtpTimestamp, SeqNo, Ssrc};

    /// Counts calls, drops every `drop_every`-th packet and asks for a timer every 10 ms.
    #[derive(Debug)]
    struct Probe {
        seen: u64,
        timers: u64,
        drop_every: u64,
    }

    impl Interceptor for Probe {
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

    pub(crate) fn attrs(now: Instant) -> RtpAttrs {
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
        let first = Probe { seen: 0, timers: 0, drop_every: 2 };
        let second = Probe { seen: 0, timers: 0, drop_every: 0 };
        let mut chain = Chain::new(vec![
            (Link::Builtin(InterceptorKind::RateLimit), Box::new(first)),
            (Link::Builtin(InterceptorKind::Stats), Box::new(second)),
        ]);
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

    /// Panics on its `panic_at`-th packet; counts the packets it saw.
    #[derive(Debug)]
    struct Fragile {
        seen: u64,
        panic_at: u64,
    }

    impl Interceptor for Fragile {
        fn on_rtp(&mut self, _pkt: &[u8], _attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
            self.seen += 1;
            assert!(self.seen != self.panic_at, "the plugin's own bug");
            Verdict::Drop(DropReason::Plugin)
        }
        fn snapshot(&self, out: &mut Snapshot) {
            out.packets += 1000 * self.seen;
        }
    }

    /// Rewrites its packet into `0x80, 96, seq, ts, ssrc` + `tail` (SSRC `ssrc`), then answers `verdict`; records
    /// the length of every packet it is given.
    #[derive(Debug)]
    struct Rewriter {
        ssrc: u32,
        tail: &'static [u8],
        verdict: Verdict,
        seen: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    }

    impl Interceptor for Rewriter {
        fn on_rtp(&mut self, pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
            self.seen.lock().unwrap().push(pkt.len());
            assert_eq!(attrs.len_bytes, pkt.len(), "the attributes describe the packet given");
            let (ssrc, tail) = (self.ssrc, self.tail);
            ctx.rewrite(|slot| {
                slot[..12].copy_from_slice(&pkt[..12]);
                slot[8..12].copy_from_slice(&ssrc.to_be_bytes());
                let fits = tail.len().min(slot.len() - 12);
                slot[12..12 + fits].copy_from_slice(&tail[..fits]);
                12 + tail.len() // beyond the slot when it did not fit: refused
            });
            self.verdict
        }
    }

    #[test]
    fn a_plugins_rewrite_is_what_the_rest_of_the_chain_sees_unless_it_breaks_the_rules() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let member = |ssrc, tail, verdict| Rewriter { ssrc, tail, verdict, seen: seen.clone() };
        let t0 = Instant::now();
        let scope = Scope::Stream { stream: 0 };
        let mut pkt = [0u8; 20];
        pkt[0] = 0x80;
        pkt[8..12].copy_from_slice(&1u32.to_be_bytes());
        let mut outbox = Outbox::new(4, 64);
        let run = |links: Vec<(Link, Rewriter)>, outbox: &mut Outbox| {
            seen.lock().unwrap().clear();
            let members = links.into_iter().map(|(l, m)| (l, Box::new(m) as Box<dyn Interceptor>)).collect();
            let mut chain = Chain::new(members);
            let mut a = attrs(t0);
            a.len_bytes = pkt.len();
            chain.on_rtp(t0, scope, &pkt, &a, outbox)
        };
        // Two plugins: the second sees the first's 30-byte packet and makes it 14 bytes; a built-in after them sees
        // those 14 bytes and may not rewrite (its own rewrite is refused).
        let verdict = run(
            vec![
                (Link::plugin(PluginId(0)), member(1, &[7; 18], Verdict::Continue)),
                (Link::plugin(PluginId(1)), member(1, &[8; 2], Verdict::Continue)),
                (Link::Builtin(InterceptorKind::Stats), member(1, &[9; 40], Verdict::Continue)),
            ],
            &mut outbox,
        );
        assert_eq!(verdict, Verdict::Continue);
        assert_eq!(*seen.lock().unwrap(), [20, 30, 14]);
        let mut expected = pkt[..12].to_vec();
        expected.extend_from_slice(&[8, 8]);
        assert_eq!(outbox.take_rewritten(), Some(&expected[..]), "the last plugin's packet, not the built-in's");
        // Another SSRC, or a packet longer than the outbox's slot: refused, the packet passes as it was.
        let verdict = run(
            vec![
                (Link::plugin(PluginId(0)), member(2, &[7; 18], Verdict::Continue)),
                (Link::plugin(PluginId(1)), member(1, &[7; 60], Verdict::Continue)),
                (Link::Builtin(InterceptorKind::Stats), member(1, &[], Verdict::Continue)),
            ],
            &mut outbox,
        );
        assert_eq!((verdict, outbox.take_rewritten()), (Verdict::Continue, None));
        assert_eq!(*seen.lock().unwrap(), [20, 20, 20]);
        // A drop discards the rewrite.
        let dropped = Verdict::Drop(DropReason::Plugin);
        let verdict = run(vec![(Link::plugin(PluginId(0)), member(1, &[7; 18], dropped))], &mut outbox);
        assert_eq!((verdict, outbox.take_rewritten()), (dropped, None));
    }

    /// Replaces the RTCP compound it is given by `reply(compound)` (when that is `Some`), then answers `verdict`;
    /// records every compound it is given.
    struct RtcpRewriter {
        reply: fn(&[u8]) -> Option<Vec<u8>>,
        verdict: Verdict,
        seen: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    }

    impl std::fmt::Debug for RtcpRewriter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("RtcpRewriter")
        }
    }

    impl Interceptor for RtcpRewriter {
        fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, _from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
            self.seen.lock().unwrap().push(rtcp.bytes().to_vec());
            if let Some(bytes) = (self.reply)(rtcp.bytes()) {
                ctx.rewrite(super::super::copy_of(&bytes));
            }
            self.verdict
        }
    }

    /// An RR of `ssrc` without report blocks, then an APP packet of `app_words` 32-bit words of data.
    fn rr_and_app(ssrc: u32, app_words: usize) -> Vec<u8> {
        let mut bytes = vec![0x80, 201, 0, 1];
        bytes.extend_from_slice(&ssrc.to_be_bytes());
        if app_words > 0 {
            let words = (2 + app_words - 1) as u16;
            bytes.extend_from_slice(&[0x80, 204]);
            bytes.extend_from_slice(&words.to_be_bytes());
            bytes.extend_from_slice(&ssrc.to_be_bytes());
            bytes.extend_from_slice(b"test");
            bytes.extend(std::iter::repeat_n(7u8, 4 * app_words - 4));
        }
        bytes
    }

    #[test]
    fn a_plugins_rtcp_rewrite_is_what_the_rest_of_the_chain_sees_unless_it_breaks_the_rules() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let member = |reply, verdict| RtcpRewriter { reply, verdict, seen: seen.clone() };
        let t0 = Instant::now();
        let scope = Scope::Subscription { stream: 0, flow: 3 };
        let given = rr_and_app(5, 0);
        let compound = RtcpCompound::parse(&given).expect("an RR");
        let mut outbox = Outbox::new(4, 64);
        let run = |links: Vec<(Link, RtcpRewriter)>, outbox: &mut Outbox| {
            seen.lock().unwrap().clear();
            let members = links.into_iter().map(|(l, m)| (l, Box::new(m) as Box<dyn Interceptor>)).collect();
            let mut chain = Chain::new(members);
            chain.on_rtcp(t0, scope, &compound, RtcpFrom::Publisher, outbox)
        };
        // The first plugin adds an APP packet, the second shortens it; a built-in after them sees the second's
        // compound and may not rewrite.
        let verdict = run(
            vec![
                (Link::plugin(PluginId(0)), member(|_| Some(rr_and_app(5, 4)), Verdict::Continue)),
                (Link::plugin(PluginId(1)), member(|_| Some(rr_and_app(5, 2)), Verdict::Continue)),
                (Link::Builtin(InterceptorKind::Stats), member(|_| Some(rr_and_app(5, 1)), Verdict::Continue)),
            ],
            &mut outbox,
        );
        assert_eq!(verdict, Verdict::Continue);
        assert_eq!(*seen.lock().unwrap(), [given.clone(), rr_and_app(5, 4), rr_and_app(5, 2)]);
        assert_eq!(outbox.take_rewritten(), Some(&rr_and_app(5, 2)[..]), "the last plugin's compound");
        assert_eq!(outbox.take_rewritten(), None, "taken once");
        // Another first SSRC, bytes that are not a compound, a compound longer than the slot: each refused, the
        // compound passes as it was.
        let verdict = run(
            vec![
                (Link::plugin(PluginId(0)), member(|_| Some(rr_and_app(6, 1)), Verdict::Continue)),
                (Link::plugin(PluginId(1)), member(|bytes| Some(bytes[..6].to_vec()), Verdict::Continue)),
                (Link::plugin(PluginId(2)), member(|_| Some(rr_and_app(5, 20)), Verdict::Continue)),
                (Link::plugin(PluginId(3)), member(|_| None, Verdict::Continue)),
            ],
            &mut outbox,
        );
        assert_eq!((verdict, outbox.take_rewritten()), (Verdict::Continue, None));
        assert_eq!(*seen.lock().unwrap(), vec![given.clone(); 4]);
        // A consumed verdict discards the rewrite.
        let verdict =
            run(vec![(Link::plugin(PluginId(0)), member(|_| Some(rr_and_app(5, 1)), Verdict::Consumed))], &mut outbox);
        assert_eq!((verdict, outbox.take_rewritten()), (Verdict::Consumed, None));
        // An RTP rewrite staged in an RTCP call is impossible: the context knows which kind it was given.
        let mut wake = None;
        let mut ctx = Context::new(t0, scope, &mut outbox, &mut wake);
        ctx.allow_rewrite(Rewritable::Rtcp { first_ssrc: crate::core::wire::Ssrc(5) });
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[4..8].copy_from_slice(&5u32.to_be_bytes());
        assert!(!ctx.rewrite(super::super::copy_of(&rtp)), "RTP bytes are not an RTCP compound");
    }

    #[test]
    fn a_plugin_that_panics_is_disabled_counted_and_passes_packets_to_the_rest() {
        let fragile = Fragile { seen: 0, panic_at: 2 };
        let after = Probe { seen: 0, timers: 0, drop_every: 0 };
        let mut chain = Chain::new(vec![
            (Link::plugin(PluginId(0)), Box::new(fragile)),
            (Link::Builtin(InterceptorKind::Stats), Box::new(after)),
        ]);
        let mut outbox = Outbox::new(4, 16);
        let scope = Scope::Stream { stream: 0 };
        let t0 = Instant::now();
        let run = |chain: &mut Chain, outbox: &mut Outbox| chain.on_rtp(t0, scope, &[0; 12], &attrs(t0), outbox);
        assert_eq!(run(&mut chain, &mut outbox), Verdict::Drop(DropReason::Plugin), "its verdict stands");
        assert_eq!(run(&mut chain, &mut outbox), Verdict::Continue, "the panicking call: the packet passes");
        assert_eq!(run(&mut chain, &mut outbox), Verdict::Continue, "disabled: skipped");
        assert!(outbox.needs_drain() && outbox.take_plugin_failures() == 1, "one failure, counted once");
        assert_eq!(chain.links().next(), Some(Link::Plugin { id: PluginId(0), failed: true, fail_closed: false }));
        let mut snapshot = Snapshot::default();
        chain.snapshot(&mut snapshot);
        assert_eq!(snapshot.packets, 2, "the rest saw both packets that passed; the failed plugin adds nothing");
    }

    #[test]
    fn a_fail_closed_attachment_drops_once_its_plugin_panicked() {
        use crate::core::interceptor::attach::{Attach, Attachment};
        let fragile = Fragile { seen: 0, panic_at: 2 };
        let after = Probe { seen: 0, timers: 0, drop_every: 0 };
        let attach = Attach { on_failure: Some(FailurePath::Drop), ..Attach::default() };
        let mut chain = Chain::new(vec![
            (Link::attached(&Attachment { id: PluginId(0), attach }), Box::new(fragile)),
            (Link::Builtin(InterceptorKind::Stats), Box::new(after)),
        ]);
        let mut outbox = Outbox::new(4, 16);
        let scope = Scope::Stream { stream: 0 };
        let t0 = Instant::now();
        let run = |chain: &mut Chain, outbox: &mut Outbox| chain.on_rtp(t0, scope, &[0; 12], &attrs(t0), outbox);
        let dropped = Verdict::Drop(DropReason::Plugin);
        assert_eq!(run(&mut chain, &mut outbox), dropped, "its own verdict");
        assert_eq!(run(&mut chain, &mut outbox), dropped, "the panicking call: the packet takes the drop path");
        assert_eq!(run(&mut chain, &mut outbox), dropped, "disabled: still dropped");
        assert!(outbox.needs_drain() && outbox.take_plugin_failures() == 1, "one failure, counted once");
        assert_eq!(chain.links().next(), Some(Link::Plugin { id: PluginId(0), failed: true, fail_closed: true }));
        let mut snapshot = Snapshot::default();
        chain.snapshot(&mut snapshot);
        assert_eq!(snapshot.packets, 0, "nothing passed it");
    }
}
