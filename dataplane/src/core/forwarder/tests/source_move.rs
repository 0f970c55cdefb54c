//! A fixed stream moved by `SetSource` on virtual time: both paths taken during the overlap, each RTP packet once and
//! in order, the previous source a stranger after it, no key left behind, and feedback to the new source.

use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

use super::*;
use crate::core::table::SOURCE_MOVE_OVERLAP;

const OVERLAP_MS: u64 = SOURCE_MOVE_OVERLAP.as_millis() as u64;

/// The stream's source before the move (path A).
fn old_path() -> SocketAddr {
    publisher()
}

/// The stream's source after the move (path B): the same packets, relayed another way.
fn new_path() -> SocketAddr {
    addr("127.0.0.2:5000")
}

fn subscriber() -> SocketAddr {
    addr("127.0.0.11:6000")
}

/// Stream 1 fixed at the old path, subscription 1 (numbers unchanged) at `subscriber()`.
fn fixed_stream(h: &mut Harness) {
    h.stream(1, SSRC, SourcePolicy::Fixed(old_path()));
    h.sub(1, 1, "127.0.0.11:6000", Rewrite::default()).expect("sub");
}

fn move_to(h: &mut Harness, ms: u64, source: SocketAddr) -> Result<(), CommandError> {
    h.fwd.apply(h.at(ms), Command::SetSource { id: StreamId(1), source, overlap: true })
}

/// The sequence numbers of the RTP the subscriber received, in order.
fn received(egress: &mut Recorder) -> Vec<u16> {
    let rtp_to_subscriber = |s: &&Sent| s.dest == subscriber() && classify(&s.bytes) == PacketKind::Rtp;
    egress.sent().iter().filter(rtp_to_subscriber).map(|s| parse(&s.bytes).header.sequence_number).collect()
}

fn sr(ssrc: u32) -> Vec<u8> {
    let sr = rtcp::sender_report::SenderReport { ssrc, ..Default::default() };
    sr.marshal().expect("marshal sr").to_vec()
}

#[test]
fn both_paths_interleaved_reach_the_subscriber_once_each_in_order() {
    let mut h = Harness::new();
    fixed_stream(&mut h);
    let mut egress = Recorder::new();
    move_to(&mut h, 0, new_path()).expect("move");
    let forwarded = Outcome::Forwarded { copies: 1 };
    let repeated = Outcome::Dropped(DropReason::Repeated);
    let arrivals = [
        (old_path(), 10, forwarded),
        (old_path(), 11, forwarded),
        (new_path(), 11, repeated),
        (new_path(), 12, forwarded),
        (old_path(), 12, repeated),
        (old_path(), 13, forwarded),
        (new_path(), 13, repeated),
        (new_path(), 14, forwarded),
    ];
    for (ms, (src, seq, outcome)) in (1u64..).zip(arrivals) {
        assert_eq!(h.send(ms, src, &rtp(SSRC, seq, 0, b"m"), &mut egress), outcome, "seq {seq} from {src}");
    }
    assert_eq!(received(&mut egress), [10, 11, 12, 13, 14]);
    assert_eq!(h.fwd.counters().drops(DropReason::Repeated), 3);
    assert_eq!(h.fwd.counters().drops(DropReason::WrongSource), 0);
}

#[test]
fn what_was_taken_before_the_move_is_not_taken_again() {
    let mut h = Harness::new();
    fixed_stream(&mut h);
    let mut egress = Recorder::new();
    for seq in [5u16, 6] {
        assert_eq!(h.send(0, old_path(), &rtp(SSRC, seq, 0, b"m"), &mut egress), Outcome::Forwarded { copies: 1 });
    }
    // Before the move the new path is a stranger.
    let early = h.send(1, new_path(), &rtp(SSRC, 6, 0, b"m"), &mut egress);
    assert_eq!(early, Outcome::Dropped(DropReason::WrongSource));
    move_to(&mut h, 2, new_path()).expect("move");
    for (ms, src, seq) in [(3u64, new_path(), 5u16), (4, new_path(), 6), (5, new_path(), 7), (6, old_path(), 7)] {
        h.send(ms, src, &rtp(SSRC, seq, 0, b"m"), &mut egress);
    }
    assert_eq!(received(&mut egress), [5, 6, 7]);
    assert_eq!(h.fwd.counters().drops(DropReason::Repeated), 3);
}

#[test]
fn after_the_overlap_the_old_path_is_a_wrong_source_and_its_key_is_gone() {
    let mut h = Harness::new();
    fixed_stream(&mut h);
    let mut egress = Recorder::new();
    move_to(&mut h, 0, new_path()).expect("move");
    assert_eq!(h.send(10, new_path(), &rtp(SSRC, 1, 0, b"m"), &mut egress), Outcome::Forwarded { copies: 1 });
    // The old path's RTCP and new RTP are the stream's until the overlap ends.
    assert_eq!(h.send(20, old_path(), &sr(SSRC), &mut egress), Outcome::Forwarded { copies: 1 });
    let last_moment = OVERLAP_MS - 1;
    assert_eq!(h.send(last_moment, old_path(), &rtp(SSRC, 2, 0, b"m"), &mut egress), Outcome::Forwarded { copies: 1 });
    for (ms, pkt) in [(OVERLAP_MS + 10, rtp(SSRC, 3, 0, b"m")), (OVERLAP_MS + 11, sr(SSRC))] {
        assert_eq!(h.send(ms, old_path(), &pkt, &mut egress), Outcome::Dropped(DropReason::WrongSource), "at {ms} ms");
    }
    assert_eq!(h.fwd.table.find_locked(old_path(), SSRC), None, "the old key is gone");
    assert!(!h.fwd.table.is_moving(0));
    assert_eq!(
        h.send(OVERLAP_MS + 12, new_path(), &rtp(SSRC, 3, 0, b"m"), &mut egress),
        Outcome::Forwarded { copies: 1 }
    );
    // Moving back works, with an overlap of its own.
    move_to(&mut h, 1_000, old_path()).expect("move back");
    assert_eq!(h.send(1_001, old_path(), &rtp(SSRC, 4, 0, b"m"), &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(h.send(1_002, new_path(), &rtp(SSRC, 5, 0, b"m"), &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(received(&mut egress), [1, 2, 3, 4, 5]);
}

#[test]
fn the_overlap_ends_on_a_packet_from_the_new_path_too() {
    let mut h = Harness::new();
    fixed_stream(&mut h);
    let mut egress = Recorder::new();
    move_to(&mut h, 0, new_path()).expect("move");
    assert_eq!(h.send(OVERLAP_MS, new_path(), &rtp(SSRC, 1, 0, b"m"), &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(h.fwd.table.find_locked(old_path(), SSRC), None);
    // Numbers are no longer checked once it ended: a reordered packet goes on as before any move.
    assert_eq!(h.send(OVERLAP_MS, new_path(), &rtp(SSRC, 0, 0, b"m"), &mut egress), Outcome::Forwarded { copies: 1 });
}

#[test]
fn removing_a_moving_stream_leaves_no_key_and_its_addresses_can_be_used_again() {
    let mut h = Harness::new();
    fixed_stream(&mut h);
    move_to(&mut h, 0, new_path()).expect("move");
    h.fwd.apply(h.at(1), Command::RemoveStream { id: StreamId(1) }).expect("remove");
    assert_eq!(h.fwd.table.find_locked(old_path(), SSRC), None);
    assert_eq!(h.fwd.table.find_locked(new_path(), SSRC), None);
    let mut egress = Recorder::new();
    assert_eq!(h.send(2, old_path(), &rtp(SSRC, 1, 0, b"m"), &mut egress), Outcome::Dropped(DropReason::UnknownSsrc));
    h.stream(2, SSRC, SourcePolicy::Fixed(old_path()));
    h.stream(3, SSRC, SourcePolicy::Fixed(new_path()));
    assert_eq!(h.fwd.stream_count(), 2);
}

#[test]
fn feedback_goes_to_the_new_source_from_the_socket_it_uses() {
    let mut h = Harness::new();
    fixed_stream(&mut h);
    let mut egress = Recorder::new();
    move_to(&mut h, 0, new_path()).expect("move");
    let pkt = rtp(SSRC, 1, 0, b"m");
    egress.set_current(&pkt);
    assert_eq!(h.fwd.on_datagram(h.at(1), 1, new_path(), &pkt, &mut egress), Outcome::Forwarded { copies: 1 });
    // The old path's packets arrive on socket 0: they do not move where RTCP to the publisher leaves from.
    assert_eq!(h.send(2, old_path(), &rtp(SSRC, 2, 0, b"m"), &mut egress), Outcome::Forwarded { copies: 1 });
    let pli = PictureLossIndication { sender_ssrc: 0xbeef, media_ssrc: SSRC }.marshal().expect("pli").to_vec();
    egress.set_current(&pli);
    let sent_before = egress.sent().len();
    h.fwd.on_datagram(h.at(3), 0, subscriber(), &pli, &mut egress);
    let to_publisher: Vec<_> = egress.sent()[sent_before..].iter().map(|s| (s.dest, s.socket)).collect();
    assert_eq!(to_publisher, [(new_path(), 1)], "the PLI goes to the new source, from its socket");
}
