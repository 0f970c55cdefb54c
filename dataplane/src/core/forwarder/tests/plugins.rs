//! Plugins that rewrite: a packet an ingress plugin rewrote reaches every subscription under that subscription's own
//! header rewrite; a copy an egress plugin rewrote reaches only its subscriber, as the plugin left it. Plugins that
//! inject: a packet an ingress plugin injected (from a packet's call or its timer) reaches every subscription through
//! its rewrite and egress chain.

use super::*;
use crate::core::interceptor::spec::{EgressSpec, IngressSpec};
use crate::core::interceptor::{copy_of, Context, Interceptor, Plugins, RtcpFrom, RtpAttrs, Verdict};
use crate::core::packet::RtcpCompound;

/// Ingress: wraps the payload in 0xee … 0xff and sets payload type 63 (keeping the marker).
#[derive(Debug)]
struct Wrap;

impl Interceptor for Wrap {
    fn on_rtp(&mut self, pkt: &[u8], _attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        let n = pkt.len();
        assert!(ctx.rewrite(|slot| {
            slot[..12].copy_from_slice(&pkt[..12]);
            slot[1] = (pkt[1] & 0x80) | 63;
            slot[12] = 0xee;
            slot[13..n + 1].copy_from_slice(&pkt[12..]);
            slot[n + 1] = 0xff;
            n + 2
        }));
        Verdict::Continue
    }
}

/// Egress: drops the payload's last byte; writes the header this subscriber receives (from the attributes).
#[derive(Debug)]
struct Trim;

impl Interceptor for Trim {
    fn on_rtp(&mut self, pkt: &[u8], attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        let n = pkt.len() - 1;
        assert!(
            !ctx.rewrite(|slot| {
                slot[..n].copy_from_slice(&pkt[..n]);
                n
            }),
            "the publisher's SSRC is not the one this subscriber receives: refused"
        );
        assert!(ctx.rewrite(|slot| {
            slot[..n].copy_from_slice(&pkt[..n]);
            slot[1] = u8::from(attrs.marker) << 7 | attrs.payload_type;
            slot[2..4].copy_from_slice(&attrs.seq.0.to_be_bytes());
            slot[4..8].copy_from_slice(&attrs.timestamp.0.to_be_bytes());
            slot[8..12].copy_from_slice(&attrs.ssrc.0.to_be_bytes());
            n
        }));
        Verdict::Continue
    }
}

#[test]
fn a_rewritten_packet_is_fanned_out_under_each_subscriptions_header() {
    let plugins = Plugins::none()
        .with_ingress("wrap", |_| Box::new(Wrap))
        .and_then(|plugins| plugins.with_egress("trim", |_| Box::new(Trim)))
        .expect("registered");
    let mut h = Harness::new();
    h.fwd.set_plugins(plugins.clone());
    let mut ingress = IngressSpec::default();
    ingress.plugins.push(plugins.find("wrap").expect("wrap")).expect("room");
    let add = Command::AddStream {
        id: StreamId(1),
        ssrc: SSRC,
        source: SourcePolicy::Fixed(publisher()),
        clock_rate_hz: 48_000,
        ingress,
    };
    h.fwd.apply(h.start, add).expect("stream");
    h.sub(1, 1, "127.0.0.11:6001", rewrite(0xa001, 100, 0, 97)).expect("plain subscription");
    let mut egress = EgressSpec::default();
    egress.plugins.push(plugins.find("trim").expect("trim")).expect("room");
    let trimmed = Command::AddSubscription {
        id: SubscriptionId(2),
        stream: StreamId(1),
        dest: addr("127.0.0.12:6002"),
        socket: 0,
        rewrite: rewrite(0xa002, 200, 0, 98),
        paused: false,
        egress,
        continues: None,
    };
    h.fwd.apply(h.start, trimmed).expect("trimmed subscription");

    let mut out = Recorder::new();
    for seq in [10u16, 11] {
        let pkt = rtp(SSRC, seq, 960 * u32::from(seq), b"opus");
        assert_eq!(h.send(u64::from(seq), publisher(), &pkt, &mut out), Outcome::Forwarded { copies: 2 });
    }
    let sent = out.sent().clone();
    assert_eq!(sent.len(), 4);
    for (index, copy) in sent.iter().enumerate() {
        let seq = 10 + (index / 2) as u16;
        let first = index % 2 == 0;
        let packet = parse(&copy.bytes);
        assert!(!copy.forwarded, "a rewritten packet goes out as an assembled copy");
        let (ssrc, offset, payload): (u32, u16, &[u8]) =
            if first { (0xa001, 100, b"\xeeopus\xff") } else { (0xa002, 200, b"\xeeopus") };
        assert_eq!(packet.header.ssrc, ssrc);
        assert_eq!(packet.header.sequence_number, seq + offset);
        assert_eq!(packet.header.timestamp, 960 * u32::from(seq));
        assert_eq!(packet.header.payload_type, 63, "the plugin's payload type; the maps name only 96");
        assert!(packet.header.marker);
        assert_eq!(&packet.payload[..], payload, "copy {index}");
    }
    let c = h.fwd.counters();
    assert_eq!((c.forwarded_packets, c.rewritten_by_plugin), (4, 4), "2 ingress rewrites, 2 egress ones");
    let (wrapped, trimmed) = (12 + 6, 12 + 5);
    assert_eq!(c.forwarded_bytes, 2 * (wrapped + trimmed), "bytes as sent");
}

/// Ingress: consumes every packet and injects it back twice, the second time with its payload's first byte flipped,
/// and once with another SSRC (refused when the outbox is drained).
#[derive(Debug)]
struct Twice;

impl Interceptor for Twice {
    fn on_rtp(&mut self, pkt: &[u8], _attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        assert!(ctx.inject(pkt));
        let mut flipped = [0u8; 64];
        flipped[..pkt.len()].copy_from_slice(pkt);
        flipped[12] ^= 0xff;
        assert!(ctx.inject(&flipped[..pkt.len()]));
        flipped[8] ^= 1;
        assert!(ctx.inject(&flipped[..pkt.len()]), "queued; refused when sent");
        Verdict::Consumed
    }
}

/// Egress: counts the packets it sees in an atomic, passes them.
#[derive(Debug)]
struct Seen(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Interceptor for Seen {
    fn on_rtp(&mut self, _pkt: &[u8], _attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Verdict::Continue
    }
}

#[test]
fn an_injected_packet_is_fanned_out_through_each_subscriptions_rewrite_and_egress_chain() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = std::sync::Arc::clone(&seen);
    let plugins = Plugins::none()
        .with_ingress("twice", |_| Box::new(Twice))
        .and_then(|plugins| plugins.with_egress("seen", move |_| Box::new(Seen(std::sync::Arc::clone(&counted)))))
        .expect("registered");
    let mut h = Harness::new();
    h.fwd.set_plugins(plugins.clone());
    let mut ingress = IngressSpec::default();
    ingress.plugins.push(plugins.find("twice").expect("twice")).expect("room");
    let add = Command::AddStream {
        id: StreamId(1),
        ssrc: SSRC,
        source: SourcePolicy::Fixed(publisher()),
        clock_rate_hz: 48_000,
        ingress,
    };
    h.fwd.apply(h.start, add).expect("stream");
    h.sub(1, 1, "127.0.0.11:6001", rewrite(0xa001, 100, 0, 97)).expect("plain subscription");
    let mut egress = EgressSpec::default();
    egress.plugins.push(plugins.find("seen").expect("seen")).expect("room");
    let counted = Command::AddSubscription {
        id: SubscriptionId(2),
        stream: StreamId(1),
        dest: addr("127.0.0.12:6002"),
        socket: 0,
        rewrite: rewrite(0xa002, 200, 0, 98),
        paused: false,
        egress,
        continues: None,
    };
    h.fwd.apply(h.start, counted).expect("counted subscription");

    let mut out = Recorder::new();
    for seq in [10u16, 11] {
        let pkt = rtp(SSRC, seq, 960 * u32::from(seq), b"opus");
        assert_eq!(h.send(u64::from(seq), publisher(), &pkt, &mut out), Outcome::Intercepted, "consumed");
    }
    let sent = out.sent().clone();
    assert_eq!(sent.len(), 8, "2 packets, injected twice each, to 2 subscriptions");
    for (index, copy) in sent.iter().enumerate() {
        let seq = 10 + (index / 4) as u16;
        let flipped = index % 4 >= 2;
        let first = index % 2 == 0;
        let packet = parse(&copy.bytes);
        assert!(!copy.forwarded, "an injected packet goes out as an assembled copy");
        let (ssrc, offset, pt) = if first { (0xa001, 100, 97) } else { (0xa002, 200, 98) };
        assert_eq!(packet.header.ssrc, ssrc, "copy {index}");
        assert_eq!(packet.header.sequence_number, seq + offset);
        assert_eq!(packet.header.timestamp, 960 * u32::from(seq));
        assert_eq!(packet.header.payload_type, pt, "the subscription's payload type map");
        let payload: &[u8] = if flipped { b"\x90pus" } else { b"opus" };
        assert_eq!(&packet.payload[..], payload, "copy {index}");
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 4, "the egress chain saw every injected copy");
    let c = h.fwd.counters();
    assert_eq!((c.injected, c.forwarded_packets, c.consumed_by_interceptor), (4, 8, 2));
    assert_eq!((c.interceptor_emitted, c.interceptor_emit_refused), (4, 2), "the other SSRC refused");
}

/// Ingress: consumes a packet, keeps it and injects it 10 ms later, from its timer.
#[derive(Debug, Default)]
struct Later(Vec<u8>);

impl Interceptor for Later {
    fn on_rtp(&mut self, pkt: &[u8], _attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        self.0 = pkt.to_vec();
        ctx.schedule(ctx.now() + Duration::from_millis(10));
        Verdict::Consumed
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        assert!(ctx.inject(&self.0));
    }
}

/// Egress: asks for a timer 5 ms after each packet it sees.
#[derive(Debug)]
struct Tick;

impl Interceptor for Tick {
    fn on_rtp(&mut self, _pkt: &[u8], _attrs: &RtpAttrs, ctx: &mut Context<'_>) -> Verdict {
        ctx.schedule(ctx.now() + Duration::from_millis(5));
        Verdict::Continue
    }
}

#[test]
fn a_packet_injected_from_a_timer_goes_out_in_the_sweep_and_its_egress_timers_are_kept() {
    let plugins = Plugins::none()
        .with_ingress("later", |_| Box::<Later>::default())
        .and_then(|plugins| plugins.with_egress("tick", |_| Box::new(Tick)))
        .expect("registered");
    let mut h = Harness::new();
    h.fwd.set_plugins(plugins.clone());
    let mut ingress = IngressSpec::default();
    ingress.plugins.push(plugins.find("later").expect("later")).expect("room");
    let add = Command::AddStream {
        id: StreamId(1),
        ssrc: SSRC,
        source: SourcePolicy::Fixed(publisher()),
        clock_rate_hz: 48_000,
        ingress,
    };
    h.fwd.apply(h.start, add).expect("stream");
    let mut egress = EgressSpec::default();
    egress.plugins.push(plugins.find("tick").expect("tick")).expect("room");
    let sub = Command::AddSubscription {
        id: SubscriptionId(1),
        stream: StreamId(1),
        dest: addr("127.0.0.11:6001"),
        socket: 0,
        rewrite: rewrite(0xa001, 100, 0, 97),
        paused: false,
        egress,
        continues: None,
    };
    h.fwd.apply(h.start, sub).expect("subscription");

    let mut out = Recorder::new();
    let pkt = rtp(SSRC, 10, 9600, b"opus");
    assert_eq!(h.send(0, publisher(), &pkt, &mut out), Outcome::Intercepted, "held");
    assert!(out.sent().is_empty());
    assert_eq!(h.fwd.next_timer(), Some(h.at(10)));
    out.set_current(&[]);
    h.fwd.on_timers(h.at(10), &mut out);
    let sent = out.sent().clone();
    assert_eq!(sent.len(), 1, "injected from the timer, sent by the sweep");
    let packet = parse(&sent[0].bytes);
    assert_eq!((packet.header.ssrc, packet.header.sequence_number), (0xa001, 110));
    assert_eq!(&packet.payload[..], b"opus");
    assert_eq!(h.fwd.next_timer(), Some(h.at(15)), "the egress timer set during the sweep's drain is kept");
}

/// An APP packet (RFC 3550 §6.7) from `ssrc`, named `name`, with 4 bytes of data.
fn app(ssrc: u32, name: &[u8; 4]) -> Vec<u8> {
    let mut bytes = vec![0x80, 204, 0, 3];
    bytes.extend_from_slice(&ssrc.to_be_bytes());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    bytes
}

/// The compound's packets split at their length fields, each with its type.
fn rtcp_packets(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut packets = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = 4 + 4 * usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        packets.push((bytes[at + 1], bytes[at..at + len].to_vec()));
        at += len;
    }
    assert_eq!(at, bytes.len(), "whole packets");
    packets
}

/// Ingress: appends an APP packet named `rfwd` (from the compound's first SSRC) to every compound.
#[derive(Debug)]
struct AppendApp;

impl Interceptor for AppendApp {
    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, _from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        let mut bytes = rtcp.bytes().to_vec();
        bytes.extend_from_slice(&app(rtcp.first_ssrc().0, b"rfwd"));
        assert!(ctx.rewrite(copy_of(&bytes)));
        Verdict::Continue
    }
}

/// Egress: removes every APP packet; refuses to touch a compound without one.
#[derive(Debug)]
struct StripApp;

impl Interceptor for StripApp {
    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, _from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        let packets = rtcp_packets(rtcp.bytes());
        if packets.iter().all(|(kind, _)| *kind != 204) {
            return Verdict::Continue;
        }
        let kept: Vec<u8> = packets.into_iter().filter(|(kind, _)| *kind != 204).flat_map(|(_, p)| p).collect();
        assert!(ctx.rewrite(copy_of(&kept)));
        Verdict::Continue
    }
}

/// Stream 1 with `AppendApp` on ingress; subscription 1 plain (out SSRC 0xa001, timestamps + 500), subscription 2 with
/// `StripApp` on egress (out SSRC 0xa002).
fn rtcp_rewriting_harness() -> Harness {
    let plugins = Plugins::none()
        .with_ingress("append_app", |_| Box::new(AppendApp))
        .and_then(|plugins| plugins.with_egress("strip_app", |_| Box::new(StripApp)))
        .expect("registered");
    let mut h = Harness::new();
    h.fwd.set_plugins(plugins.clone());
    let mut ingress = IngressSpec::default();
    ingress.plugins.push(plugins.find("append_app").expect("append_app")).expect("room");
    let add = Command::AddStream {
        id: StreamId(1),
        ssrc: SSRC,
        source: SourcePolicy::Fixed(publisher()),
        clock_rate_hz: 90_000,
        ingress,
    };
    h.fwd.apply(h.start, add).expect("stream");
    h.sub(1, 1, "127.0.0.11:6001", rewrite(0xa001, 0, 500, 96)).expect("plain subscription");
    let mut egress = EgressSpec::default();
    egress.plugins.push(plugins.find("strip_app").expect("strip_app")).expect("room");
    let stripped = Command::AddSubscription {
        id: SubscriptionId(2),
        stream: StreamId(1),
        dest: addr("127.0.0.12:6002"),
        socket: 0,
        rewrite: rewrite(0xa002, 0, 0, 96),
        paused: false,
        egress,
        continues: None,
    };
    h.fwd.apply(h.start, stripped).expect("stripping subscription");
    h
}

#[test]
fn a_rewritten_publisher_compound_reaches_every_subscription_under_its_rewrite_and_an_egress_one_only_its_own() {
    let mut h = rtcp_rewriting_harness();
    let mut out = Recorder::new();
    assert_eq!(h.send(0, publisher(), &rtp(SSRC, 1, 1000, b"p"), &mut out), Outcome::Forwarded { copies: 2 });
    let before = out.sent().len();
    let packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> = vec![Box::new(rtcp::sender_report::SenderReport {
        ssrc: SSRC,
        rtp_time: 2000,
        packet_count: 1,
        ..Default::default()
    })];
    let sr = rtcp::packet::marshal(&packets).expect("sr").to_vec();
    assert_eq!(h.send(10, publisher(), &sr, &mut out), Outcome::Forwarded { copies: 2 });
    let sent = out.sent()[before..].to_vec();
    assert_eq!(sent.len(), 2, "{sent:?}");

    // Subscription 1: the SR and the plugin's APP packet, both under its out SSRC, the SR's time shifted.
    assert_eq!(sent[0].dest, addr("127.0.0.11:6001"));
    let mut expected = sr.clone();
    expected[4..8].copy_from_slice(&0xa001u32.to_be_bytes());
    expected[16..20].copy_from_slice(&2500u32.to_be_bytes());
    expected.extend_from_slice(&app(0xa001, b"rfwd"));
    assert_eq!(sent[0].bytes, expected);
    // Subscription 2: its egress plugin took the APP packet out again.
    assert_eq!(sent[1].dest, addr("127.0.0.12:6002"));
    let mut expected = sr.clone();
    expected[4..8].copy_from_slice(&0xa002u32.to_be_bytes());
    assert_eq!(sent[1].bytes, expected);
    let c = h.fwd.counters();
    assert_eq!(c.rewritten_by_plugin, 2, "one ingress rewrite, one egress");
    assert_eq!(c.forwarded_bytes, 2 * 13 + (sr.len() + 16 + sr.len()) as u64, "bytes as sent");
}

#[test]
fn a_subscribers_compound_rewritten_in_its_egress_chain_and_the_ingress_chain_reaches_the_publisher_as_rewritten() {
    let mut h = rtcp_rewriting_harness();
    let mut out = Recorder::new();
    h.send(0, publisher(), &rtp(SSRC, 1, 1000, b"p"), &mut out);
    let before = out.sent().len();
    // Subscriber 2 asks for a keyframe of what it receives, with an APP packet of its own.
    let receiver_ssrc = 0x0bad_cafe;
    let rr = rtcp::receiver_report::ReceiverReport { ssrc: receiver_ssrc, ..Default::default() };
    let pli = rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
        sender_ssrc: receiver_ssrc,
        media_ssrc: 0xa002,
    };
    let mut compound = rr.marshal().expect("rr").to_vec();
    compound.extend_from_slice(&pli.marshal().expect("pli"));
    compound.extend_from_slice(&app(receiver_ssrc, b"subs"));
    assert_eq!(h.send(20, addr("127.0.0.12:6002"), &compound, &mut out), Outcome::Intercepted);
    let sent = out.sent()[before..].to_vec();
    assert_eq!(sent.len(), 1, "only to the publisher: {sent:?}");
    assert_eq!(sent[0].dest, publisher());
    // The egress chain removed the subscriber's APP; the PLI was translated to the publisher's SSRC; the ingress
    // chain appended its own APP, and the PLI (no keyframe throttle here) made the compound go on.
    let packets = rtcp_packets(&sent[0].bytes);
    let kinds: Vec<u8> = packets.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(kinds, [201, 206, 204]);
    let pli_out = &packets[1].1;
    assert_eq!(&pli_out[8..12], &SSRC.to_be_bytes(), "the PLI is about the publisher's SSRC");
    assert_eq!(packets[2].1, app(receiver_ssrc, b"rfwd"), "the ingress plugin's APP, the subscriber's gone");
    let c = h.fwd.counters();
    assert_eq!((c.rewritten_by_plugin, c.feedback_forwarded), (2, 1));
}

/// Egress: drops every RTP copy.
#[derive(Debug)]
struct DropCopies;

impl Interceptor for DropCopies {
    fn on_rtp(&mut self, _pkt: &[u8], _attrs: &RtpAttrs, _ctx: &mut Context<'_>) -> Verdict {
        Verdict::Drop(DropReason::Plugin)
    }
}

#[test]
fn a_copy_an_egress_plugin_drops_is_counted_once_even_when_it_was_the_only_one() {
    let plugins = Plugins::none().with_egress("drop_copies", |_| Box::new(DropCopies)).expect("registered");
    let mut h = Harness::new();
    h.fwd.set_plugins(plugins.clone());
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    let mut egress = EgressSpec::default();
    egress.plugins.push(plugins.find("drop_copies").expect("drop_copies")).expect("room");
    let dropping = Command::AddSubscription {
        id: SubscriptionId(1),
        stream: StreamId(1),
        dest: addr("127.0.0.11:6001"),
        socket: 0,
        rewrite: Rewrite::default(),
        paused: false,
        egress,
        continues: None,
    };
    h.fwd.apply(h.start, dropping).expect("subscription");
    let mut out = Recorder::new();
    for seq in 0..3u16 {
        let outcome = h.send(u64::from(seq), publisher(), &rtp(SSRC, seq, 0, b"x"), &mut out);
        assert_eq!(outcome, Outcome::CopiesDropped(DropReason::Plugin));
    }
    assert_eq!(h.fwd.counters().drop_plugin, 3, "one per copy, not again for the datagram");
    h.sub(2, 1, "127.0.0.12:6002", Rewrite::default()).expect("a plain subscription beside it");
    let outcome = h.send(3, publisher(), &rtp(SSRC, 3, 0, b"x"), &mut out);
    assert_eq!(outcome, Outcome::Forwarded { copies: 1 });
    assert_eq!(h.fwd.counters().drop_plugin, 4);
}
