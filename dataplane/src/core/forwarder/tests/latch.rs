//! Latching on virtual time: the lock, the re-latch after the locked source was silent for the window, the
//! spoofer refused while the source is live, and a subscription held without a destination until it gets one.

use super::*;
use crate::core::event::WorkerEventKind;

const WINDOW_MS: u64 = 1_000;

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn latching(h: &mut Harness) {
    let window = Duration::from_millis(WINDOW_MS);
    h.stream(1, SSRC, SourcePolicy::Latch { window, fallback: None });
    h.sub(1, 1, "127.0.0.20:7000", Rewrite::default()).expect("sub");
}

fn changes(h: &mut Harness) -> Vec<SocketAddr> {
    let mut sources = Vec::new();
    h.fwd.drain_events(|event| {
        if let WorkerEventKind::SourceChanged { stream, source } = event {
            assert_eq!(stream, StreamId(1));
            sources.push(source);
        }
    });
    sources
}

#[test]
fn a_live_source_keeps_its_lock_and_a_spoofer_with_its_ssrc_is_dropped() {
    let mut h = Harness::new();
    latching(&mut h);
    let mut egress = Recorder::new();
    assert_eq!(h.send(0, peer(5000), &rtp(SSRC, 1, 0, b"a"), &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(changes(&mut h), [peer(5000)], "the first RTP latches");
    for (seq, ms) in [(2u16, 500u64), (3, 1_400)] {
        assert_eq!(h.send(ms, peer(5000), &rtp(SSRC, seq, 0, b"a"), &mut egress), Outcome::Forwarded { copies: 1 });
    }
    // 100 ms and 999 ms after the peer's last packet: the peer is live, the spoofer gets nothing in.
    for ms in [1_500u64, 2_399] {
        let outcome = h.send(ms, peer(6666), &rtp(SSRC, 4, 0, b"spoof"), &mut egress);
        assert_eq!(outcome, Outcome::Dropped(DropReason::WrongSource), "at {ms} ms");
    }
    assert_eq!(h.fwd.counters().drops(DropReason::WrongSource), 2);
    assert!(changes(&mut h).is_empty(), "no re-latch while the source is live");
    assert_eq!(egress.sent().iter().filter(|s| s.bytes.ends_with(b"spoof")).count(), 0, "nothing of the spoofer");
    assert_eq!(h.send(2_400, peer(5000), &rtp(SSRC, 4, 0, b"a"), &mut egress), Outcome::Forwarded { copies: 1 });
}

#[test]
fn a_source_silent_for_the_window_re_latches_to_the_new_address_rtp_only() {
    let mut h = Harness::new();
    latching(&mut h);
    let mut egress = Recorder::new();
    h.send(0, peer(5000), &rtp(SSRC, 1, 0, b"a"), &mut egress);
    h.send(400, peer(5000), &rtp(SSRC, 2, 0, b"a"), &mut egress);
    assert_eq!(changes(&mut h), [peer(5000)]);
    // RTCP never re-latches, even after the silence.
    let sr = rtcp_sr(SSRC);
    assert_eq!(h.send(1_400, peer(5002), &sr, &mut egress), Outcome::Dropped(DropReason::WrongSource));
    // The peer's NAT rebinds: silent since 400 ms, it sends from another port exactly one window later.
    let outcome = h.send(1_400, peer(5002), &rtp(SSRC, 3, 0, b"b"), &mut egress);
    assert_eq!(outcome, Outcome::Forwarded { copies: 1 });
    assert_eq!(changes(&mut h), [peer(5002)], "the re-latch is reported");
    assert_eq!(h.fwd.counters().latched, 2);
    // The old address is now the stranger, and live: refused.
    let outcome = h.send(1_500, peer(5000), &rtp(SSRC, 4, 0, b"a"), &mut egress);
    assert_eq!(outcome, Outcome::Dropped(DropReason::WrongSource));
    assert_eq!(h.send(1_600, peer(5002), &rtp(SSRC, 5, 0, b"b"), &mut egress), Outcome::Forwarded { copies: 1 });
}

#[test]
fn a_fixed_source_or_a_zero_window_never_re_latches() {
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    let mut egress = Recorder::new();
    let outcome = h.send(60_000, peer(5002), &rtp(SSRC, 1, 0, b"b"), &mut egress);
    assert_eq!(outcome, Outcome::Dropped(DropReason::WrongSource));
    h.fwd = Forwarder::with_hash_seed(1, 2, limits(), 7); // FOREIGN_SSRC's owner
    h.stream(2, FOREIGN_SSRC, SourcePolicy::Latch { window: Duration::ZERO, fallback: Some(peer(5000)) });
    assert_eq!(h.send(0, peer(5000), &rtp(FOREIGN_SSRC, 1, 0, b"a"), &mut egress), Outcome::Consumed, "fallback");
    let outcome = h.send(60_000, peer(5002), &rtp(FOREIGN_SSRC, 2, 0, b"b"), &mut egress);
    assert_eq!(outcome, Outcome::Dropped(DropReason::WrongSource), "a zero window is no silence");
}

#[test]
fn a_subscription_without_destination_is_held_until_it_gets_one_with_its_feedback_key() {
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    h.sub(1, 1, "0.0.0.0:0", Rewrite::default()).expect("a held subscription");
    let mut egress = Recorder::new();
    assert_eq!(h.send(0, publisher(), &rtp(SSRC, 1, 0, b"x"), &mut egress), Outcome::Consumed);
    assert!(egress.sent().is_empty());
    assert_eq!(h.fwd.counters().not_sent_no_destination, 1);
    let dest = peer(7070);
    let set = Command::SetDestination { id: SubscriptionId(1), dest, socket: 1 };
    h.fwd.apply(h.at(1), set).expect("set destination");
    assert_eq!(h.send(2, publisher(), &rtp(SSRC, 2, 0, b"x"), &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!((egress.sent()[0].dest, egress.sent()[0].socket), (dest, 1));
    assert_eq!(h.fwd.table.find_feedback(dest, SSRC), Some(0), "its subscriber's RTCP is recognised there");
    let moved = Command::SetDestination { id: SubscriptionId(1), dest: peer(7072), socket: 0 };
    h.fwd.apply(h.at(3), moved).expect("move");
    assert_eq!(h.fwd.table.find_feedback(dest, SSRC), None, "and no longer at the old address");
    assert_eq!(h.fwd.table.find_feedback(peer(7072), SSRC), Some(0));
    let missing = Command::SetDestination { id: SubscriptionId(9), dest, socket: 0 };
    assert_eq!(h.fwd.apply(h.at(4), missing), Err(CommandError::SubscriptionNotFound { id: SubscriptionId(9) }));
}

/// A sender report from `ssrc` (no report blocks).
fn rtcp_sr(ssrc: u32) -> Vec<u8> {
    let sr = rtcp::sender_report::SenderReport { ssrc, ..Default::default() };
    sr.marshal().expect("marshal sr").to_vec()
}
