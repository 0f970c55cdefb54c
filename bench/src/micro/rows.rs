//! The loops the microbenchmark times, one per kind of row.
//!
//! Owns binding a chain of one built-in (or none) the way the forwarder binds it, the RTP, NACK and
//! PLI loops through that chain with its due timers and a drained outbox, the whole-forwarder loop
//! with a counting no-op drain of the transmit queue, and each row's sanity counts. Must never read the clock except
//! around a whole batch, allocate inside a timed loop, or open a socket.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringfwd_dataplane::control::Plugins;
use ringfwd_dataplane::core::forwarder::OUTBOX_PACKETS;
use ringfwd_dataplane::core::interceptor::build::ChainFactory;
use ringfwd_dataplane::core::interceptor::spec::{EgressSpec, IngressSpec, NtpEpoch, StreamInfo, SubscriptionInfo};
use ringfwd_dataplane::core::interceptor::{Chain, InterceptorKind, Outbox, RtcpFrom, Scope, Snapshot, Verdict};
use ringfwd_dataplane::core::{
    Command, Forwarder, ForwarderLimits, Rewrite, RtcpCompound, SourcePolicy, Ssrc, StreamId, SubscriptionId, Transmit,
    Transmits,
};
use ringfwd_tuning::{ChainName, InterceptorName, Interceptors};

use super::workload::{self, VideoStream, CLOCK_RATE_HZ, OUT_SSRC, PACKETS_PER_SECOND, PUBLISHER, PUBLISHER_SSRC};
use super::{MicroError, Sanity, FAN_OUT};

/// The largest datagram (retransmission-cache slots and outbox slots): the config's default.
const MAX_PACKET_BYTES: usize = ringfwd_tuning::defaults::MAX_PACKET_BYTES;
/// The forwarder's timers are swept at most this often (virtual time).
pub(super) const TIMER_SWEEP: Duration = Duration::from_millis(10);
/// Time between two PLIs of the PLI row.
pub(super) const PLI_SPACING_MS: u64 = 10;
/// The SSRC ringfwd's own RTCP to the publisher comes from.
const LOCAL_SSRC: u32 = 0x5eed_3000;

/// Which chain a row binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// A stream's ingress chain.
    Ingress,
    /// A subscription's egress chain.
    Egress,
}

impl Side {
    fn scope(self) -> Scope {
        match self {
            Side::Ingress => Scope::Stream { stream: 0 },
            Side::Egress => Scope::Subscription { stream: 0, flow: 0 },
        }
    }
}

fn epoch(t0: Instant) -> NtpEpoch {
    NtpEpoch { at: t0, ntp: 3_970_000_000u64 << 32 }
}

/// What a row's chain holds besides nothing.
#[derive(Clone, Copy, Debug)]
pub(super) enum Member<'a> {
    /// Nothing: the baseline.
    Empty,
    /// One built-in.
    Builtin(InterceptorName),
    /// One plugin of `plugins`; `drops`: it is expected to drop some packets.
    Plugin {
        /// The registry holding it.
        plugins: &'a Plugins,
        /// Its name.
        name: &'static str,
        /// True when the row's workload makes it drop packets.
        drops: bool,
    },
}

impl Member<'_> {
    fn built_in(self) -> Option<InterceptorName> {
        match self {
            Member::Builtin(kind) => Some(kind),
            Member::Empty | Member::Plugin { .. } => None,
        }
    }
}

impl From<Option<InterceptorName>> for Member<'_> {
    fn from(built_in: Option<InterceptorName>) -> Self {
        built_in.map_or(Member::Empty, Member::Builtin)
    }
}

/// The chain of `side` holding `member` alone, bound as the forwarder binds it.
fn bind(
    row: &'static str,
    side: Side,
    member: Member<'_>,
    config: &Interceptors,
    t0: Instant,
) -> Result<Chain, MicroError> {
    let (names, plugins): (Vec<ChainName>, Plugins) = match member {
        Member::Empty => (Vec::new(), Plugins::none()),
        Member::Builtin(kind) => (vec![ChainName::Builtin(kind)], Plugins::none()),
        Member::Plugin { plugins, name, .. } => (vec![ChainName::Plugin(name.into())], plugins.clone()),
    };
    let factory = ChainFactory::new(MAX_PACKET_BYTES, epoch(t0), plugins.clone());
    let chain = match side {
        Side::Ingress => {
            let info = StreamInfo {
                ssrc: Ssrc(PUBLISHER_SSRC),
                clock_rate_hz: CLOCK_RATE_HZ,
                local_ssrc: Ssrc(LOCAL_SSRC),
                epoch: factory.epoch,
            };
            factory.ingress(&ringfwd_tuning::specs::ingress(&names, config, &plugins), &info)
        }
        Side::Egress => {
            let info = SubscriptionInfo {
                flow: 0,
                source_ssrc: Ssrc(PUBLISHER_SSRC),
                out_ssrc: Ssrc(OUT_SSRC),
                clock_rate_hz: CLOCK_RATE_HZ,
                epoch: factory.epoch,
            };
            factory.egress(
                &ringfwd_tuning::specs::egress(&names, config, 1u128 << workload::PAYLOAD_TYPE, &plugins),
                &info,
            )
        }
    };
    match chain.links().count() {
        bound if bound == names.len() => Ok(chain),
        bound => Err(MicroError::NotBound { row, bound, expected: names.len() }),
    }
}

/// Runs the timers due at `now` and empties the outbox, counting what was emitted.
#[inline(always)]
fn settle(chain: &mut Chain, now: Instant, scope: Scope, outbox: &mut Outbox, emitted: &mut u64) {
    if chain.next_wake().is_some_and(|at| at <= now) {
        chain.on_timer(now, scope, outbox);
    }
    if !outbox.is_empty() {
        *emitted += outbox.len() as u64;
        outbox.clear();
    }
}

fn sanity(what: &str, count: u64, required: bool) -> Sanity {
    Sanity { what: what.to_string(), count, required }
}

/// What shows the built-in worked on RTP, from its snapshot.
fn rtp_work(built_in: InterceptorName, s: &Snapshot) -> Vec<Sanity> {
    let required = |what, count| vec![sanity(what, count, true)];
    match built_in {
        InterceptorName::RateLimit => required("rate_limited", s.rate_limited),
        InterceptorName::Stats => required("packets counted", s.packets),
        InterceptorName::Twcc => required("twcc feedback sent", s.twcc_feedback_sent),
        InterceptorName::NackGenerator => required("nacks sent", s.nacks_sent),
        InterceptorName::NackCache => required("retransmitted (a NACK after the run)", s.retransmitted),
        InterceptorName::ReceiverReports => required("receiver reports sent", s.receiver_reports),
        InterceptorName::PayloadTypeFilter => required("filtered", s.payload_type_filtered),
        InterceptorName::SenderReports => required("sender reports sent", s.sender_reports),
        // No RTP work to show (it acts on PLI/FIR): the PLI row shows it working.
        InterceptorName::KeyframeThrottle | InterceptorName::Tap => Vec::new(),
    }
}

/// `n` RTP packets through a chain holding `member` alone.
pub(super) fn rtp_once(
    row: &'static str,
    side: Side,
    member: Member<'_>,
    foreign: bool,
    config: &Interceptors,
    n: u64,
    t0: Instant,
) -> Result<(Duration, Vec<Sanity>), MicroError> {
    let mut chain = bind(row, side, member, config, t0)?;
    let mut stream = VideoStream::new(t0, config.twcc.extension_id, true, foreign)?;
    if side == Side::Egress {
        stream = stream.as_egress();
    }
    let scope = side.scope();
    let mut outbox = Outbox::new(OUTBOX_PACKETS, MAX_PACKET_BYTES);
    let (mut passed, mut emitted, mut rewritten) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for i in 0..n {
        let attrs = stream.packet(i);
        let now = attrs.arrival;
        if chain.on_rtp(now, scope, black_box(stream.bytes()), &attrs, &mut outbox) == Verdict::Continue {
            passed += 1;
            if let Some(packet) = outbox.take_rewritten() {
                black_box(packet);
                rewritten += 1;
            }
        }
        settle(&mut chain, now, scope, &mut outbox, &mut emitted);
    }
    let elapsed = started.elapsed();
    if chain.has(InterceptorKind::NackCache) {
        // Proves the cache holds what it was fed: a NACK for the newest packet is answered.
        let newest = stream.position(n.saturating_sub(1));
        let mut nack = workload::nack()?;
        workload::set_nack_pid(&mut nack, VideoStream::seq_at(newest));
        if let Ok(compound) = RtcpCompound::parse(&nack) {
            let now = stream.arrival_at(newest);
            chain.on_rtcp(now, scope, &compound, RtcpFrom::Subscriber { flow: 0 }, &mut outbox);
            settle(&mut chain, now, scope, &mut outbox, &mut 0);
        }
    }
    let mut snapshot = Snapshot::default();
    chain.snapshot(&mut snapshot);
    let mut counts = vec![sanity("passed", passed, true)];
    counts.extend(member.built_in().map(|b| rtp_work(b, &snapshot)).unwrap_or_default());
    if let Member::Plugin { drops, .. } = member {
        counts.push(sanity("dropped by the plugin", n - passed, drops));
    }
    if rewritten != 0 {
        counts.push(sanity("rewritten", rewritten, true));
    }
    counts.push(sanity("emitted", emitted, false));
    Ok((elapsed, counts))
}

/// `n` subscriber NACKs, each asking for one cached packet, through a chain holding the NACK cache
/// (`with_cache`) or nothing. The cache is refilled (untimed) before every ring's worth of NACKs (at
/// most the packets younger than its max age), so each packet is asked for once and every NACK is
/// answerable.
pub(super) fn nack_once(
    row: &'static str,
    with_cache: bool,
    config: &Interceptors,
    n: u64,
    t0: Instant,
) -> Result<(Duration, Vec<Sanity>), MicroError> {
    let built_in = with_cache.then_some(InterceptorName::NackCache);
    let mut chain = bind(row, Side::Ingress, built_in.into(), config, t0)?;
    let mut stream = VideoStream::new(t0, config.twcc.extension_id, false, false)?;
    let scope = Side::Ingress.scope();
    let mut outbox = Outbox::new(OUTBOX_PACKETS, MAX_PACKET_BYTES);
    let mut nack = workload::nack()?;
    let ring = u64::from(config.nack_cache.max_packets).max(1);
    // Packets younger than the cache's max age (older ones are, rightly, not retransmitted).
    let young = (u64::from(config.nack_cache.max_age_ms) * PACKETS_PER_SECOND / 1000).saturating_sub(1);
    let per_fill = ring.min(young).max(1);
    let (mut fed, mut done, mut parsed, mut consumed, mut emitted) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut elapsed = Duration::ZERO;
    while done < n {
        for _ in 0..ring {
            let attrs = stream.packet(fed);
            chain.on_rtp(attrs.arrival, scope, stream.bytes(), &attrs, &mut outbox);
            settle(&mut chain, attrs.arrival, scope, &mut outbox, &mut 0);
            fed += 1;
        }
        let now = stream.arrival_at(fed - 1);
        let chunk = per_fill.min(n - done);
        let started = Instant::now();
        for k in 0..chunk {
            workload::set_nack_pid(&mut nack, VideoStream::seq_at(fed - 1 - k));
            let Ok(compound) = RtcpCompound::parse(black_box(&nack)) else {
                continue;
            };
            parsed += 1;
            let from = RtcpFrom::Subscriber { flow: 0 };
            if chain.on_rtcp(now, scope, &compound, from, &mut outbox) == Verdict::Consumed {
                consumed += 1;
            }
            settle(&mut chain, now, scope, &mut outbox, &mut emitted);
        }
        elapsed += started.elapsed();
        done += chunk;
    }
    let mut snapshot = Snapshot::default();
    chain.snapshot(&mut snapshot);
    let mut counts = vec![sanity("parsed", parsed, true)];
    if with_cache {
        counts.push(sanity("consumed", consumed, true));
        counts.push(sanity("retransmitted", snapshot.retransmitted, true));
        counts.push(sanity("misses", snapshot.retransmit_misses, false));
    }
    counts.push(sanity("emitted", emitted, false));
    Ok((elapsed, counts))
}

/// `n` subscriber PLIs, one per [`PLI_SPACING_MS`], through a chain holding the keyframe throttle
/// (`with_throttle`) or nothing.
pub(super) fn pli_once(
    row: &'static str,
    with_throttle: bool,
    config: &Interceptors,
    n: u64,
    t0: Instant,
) -> Result<(Duration, Vec<Sanity>), MicroError> {
    let built_in = with_throttle.then_some(InterceptorName::KeyframeThrottle);
    let mut chain = bind(row, Side::Ingress, built_in.into(), config, t0)?;
    let scope = Side::Ingress.scope();
    let mut outbox = Outbox::new(OUTBOX_PACKETS, MAX_PACKET_BYTES);
    let pli = workload::pli()?;
    let (mut parsed, mut consumed, mut emitted) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for k in 0..n {
        let now = t0 + Duration::from_millis(k * PLI_SPACING_MS);
        let Ok(compound) = RtcpCompound::parse(black_box(&pli)) else {
            continue;
        };
        parsed += 1;
        if chain.on_rtcp(now, scope, &compound, RtcpFrom::Subscriber { flow: 0 }, &mut outbox) == Verdict::Consumed {
            consumed += 1;
        }
        settle(&mut chain, now, scope, &mut outbox, &mut emitted);
    }
    let elapsed = started.elapsed();
    let mut snapshot = Snapshot::default();
    chain.snapshot(&mut snapshot);
    let mut counts = vec![sanity("parsed", parsed, true)];
    if with_throttle {
        counts.push(sanity("consumed", consumed, true));
        counts.push(sanity("keyframe requests sent", snapshot.keyframe_requests_sent, true));
    }
    counts.push(sanity("emitted", emitted, false));
    Ok((elapsed, counts))
}

/// `n` copies of the publisher's compound (SR + SDES, [`workload::sender_compound`]) through an ingress chain holding
/// `member` (or nothing), one every [`PLI_SPACING_MS`]; a compound a plugin rewrote is taken from the outbox as the
/// forwarder takes it. `rewrites`: the member is expected to rewrite every compound.
pub(super) fn rtcp_once(
    row: &'static str,
    member: Member<'_>,
    rewrites: bool,
    config: &Interceptors,
    n: u64,
    t0: Instant,
) -> Result<(Duration, Vec<Sanity>), MicroError> {
    let mut chain = bind(row, Side::Ingress, member, config, t0)?;
    let scope = Side::Ingress.scope();
    let mut outbox = Outbox::new(OUTBOX_PACKETS, MAX_PACKET_BYTES);
    let compound = workload::sender_compound()?;
    let (mut parsed, mut passed, mut rewritten, mut emitted) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    for k in 0..n {
        let now = t0 + Duration::from_millis(k * PLI_SPACING_MS);
        let Ok(parsed_compound) = RtcpCompound::parse(black_box(&compound)) else {
            continue;
        };
        parsed += 1;
        if chain.on_rtcp(now, scope, &parsed_compound, RtcpFrom::Publisher, &mut outbox) == Verdict::Continue {
            passed += 1;
        }
        if let Some(bytes) = outbox.take_rewritten() {
            rewritten += 1;
            black_box(bytes);
        }
        settle(&mut chain, now, scope, &mut outbox, &mut emitted);
    }
    let elapsed = started.elapsed();
    Ok((
        elapsed,
        vec![
            sanity("parsed", parsed, true),
            sanity("passed on", passed, true),
            sanity("rewritten", rewritten, rewrites),
            sanity("emitted", emitted, false),
        ],
    ))
}

/// Counts what the forwarder queued, sends nothing.
#[derive(Debug, Default)]
struct CountingEgress {
    rtp: u64,
    copies: u64,
    /// Copies that are RTP (a packet a plugin rewrote, sent from a buffer of its own).
    rtp_copies: u64,
}

impl CountingEgress {
    /// Drains `queue`, counting (as a worker loop drains it to its backend).
    fn drain(&mut self, queue: &mut Transmits) {
        queue.drain(|transmit| {
            match transmit {
                Transmit::Forward { header, .. } => {
                    black_box(header);
                    self.rtp += 1;
                }
                Transmit::Copy { bytes, .. } => {
                    black_box(bytes);
                    self.copies += 1;
                    if !bytes.get(1).is_some_and(|pt| (192..=223).contains(pt)) {
                        self.rtp_copies += 1;
                    }
                }
            }
            true
        });
    }
}

/// `n` RTP packets through [`Forwarder::on_datagram`] for one stream of [`FAN_OUT`] subscriptions,
/// with the default chains (`default`) or none, and `plugin` of `plugins` on the ingress chain after the defaults'
/// (when given, with whether it rewrites every packet); the timers are swept every [`TIMER_SWEEP`].
pub(super) fn forwarder_once(
    default: bool,
    plugin: Option<(&Plugins, &str, bool)>,
    config: &Interceptors,
    n: u64,
    t0: Instant,
) -> Result<(Duration, Vec<Sanity>), MicroError> {
    let limits = ForwarderLimits {
        max_streams: 1,
        max_subscriptions: FAN_OUT,
        max_subscriptions_per_stream: FAN_OUT,
        max_packet_bytes: MAX_PACKET_BYTES,
        max_packets_per_second_per_source: 0,
    };
    let mut fwd = Forwarder::with_hash_seed(0, 1, limits, 0x5eed);
    fwd.set_ntp_epoch(epoch(t0));
    let mut names = config.ingress.clone();
    let registry = match plugin {
        Some((plugins, name, _)) => {
            names.push(ChainName::Plugin(name.into()));
            fwd.set_plugins(plugins.clone());
            plugins.clone()
        }
        None => Plugins::none(),
    };
    let ingress =
        if default { ringfwd_tuning::specs::ingress(&names, config, &registry) } else { IngressSpec::default() };
    let source = SourcePolicy::Fixed(PUBLISHER);
    let stream_id = StreamId(1);
    fwd.apply(
        t0,
        Command::AddStream { id: stream_id, ssrc: PUBLISHER_SSRC, source, clock_rate_hz: CLOCK_RATE_HZ, ingress },
    )?;
    for s in 0..FAN_OUT {
        let egress = if default {
            ringfwd_tuning::specs::egress(&config.egress, config, u128::MAX, &Plugins::none())
        } else {
            EgressSpec::default()
        };
        let rewrite = Rewrite {
            out_ssrc: Some(OUT_SSRC + s),
            seq_offset: 1000 + s as u16,
            ts_offset: 90_000 * s,
            ..Rewrite::default()
        };
        let dest = SocketAddr::from(([127, 0, 0, 2], 6000 + s as u16));
        let id = SubscriptionId(u64::from(s));
        let cmd = Command::AddSubscription {
            id,
            stream: stream_id,
            dest,
            socket: 0,
            rewrite,
            paused: false,
            egress,
            continues: None,
        };
        fwd.apply(t0, cmd)?;
    }
    let mut stream = VideoStream::new(t0, config.twcc.extension_id, true, false)?;
    let mut egress = CountingEgress::default();
    let mut queue = Transmits::for_limits(fwd.limits());
    let mut next_sweep = t0;
    let started = Instant::now();
    for i in 0..n {
        let now = stream.packet(i).arrival;
        fwd.on_datagram(now, 0, PUBLISHER, black_box(stream.bytes()), &mut queue);
        egress.drain(&mut queue);
        if now >= next_sweep {
            fwd.on_timers(now, &mut queue);
            egress.drain(&mut queue);
            while next_sweep <= now {
                next_sweep += TIMER_SWEEP;
            }
        }
    }
    let elapsed = started.elapsed();
    let counters = fwd.counters();
    Ok((
        elapsed,
        vec![
            sanity("copies forwarded", egress.rtp + egress.rtp_copies, true),
            sanity(
                "rewritten by a plugin",
                counters.rewritten_by_plugin,
                plugin.is_some_and(|(_, _, rewrites)| rewrites),
            ),
            sanity("interceptor packets emitted", counters.interceptor_emitted, default),
            sanity("interceptor emissions refused", counters.interceptor_emit_refused, false),
            sanity("drops", counters.iter().filter(|(name, _)| name.starts_with("drop_")).map(|(_, v)| v).sum(), false),
        ],
    ))
}
