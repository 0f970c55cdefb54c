//! Peers that publish and subscribe at one address (SIP user agents, sendrecv WebRTC peers): their RTCP
//! starts with their own media SSRC, so it reaches them as a publisher's, and its report blocks and feedback
//! about what ringfwd sends them must still reach the subscription they are about.

use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtcp::reception_report::ReceptionReport;
use rtcp::sender_report::SenderReport;

use super::*;

/// The other party of the call: publishes `OTHER_SSRC` from here, receives the peer's stream here.
fn other() -> SocketAddr {
    addr("127.0.0.11:6000")
}

/// Owned by worker 0 of 2, as `SSRC`.
const OTHER_SSRC: u32 = 0x0000_2000;
/// Owned by worker 1 of 2.
const OTHER_FOREIGN_SSRC: u32 = 0x0000_2001;

/// The peer's SR as a user agent sends it: its own SSRC first, a report block about `about` and a PLI for it.
fn sr_with_feedback(about: u32) -> Vec<u8> {
    let report = ReceptionReport { ssrc: about, last_sequence_number: 7, ..Default::default() };
    let sr = SenderReport { ssrc: SSRC, reports: vec![report], ..Default::default() };
    let pli = PictureLossIndication { sender_ssrc: SSRC, media_ssrc: about };
    let mut bytes = sr.marshal().expect("sr").to_vec();
    bytes.extend_from_slice(&pli.marshal().expect("pli"));
    bytes
}

fn plis_about(sent: &[Sent], ssrc: u32) -> usize {
    sent.iter()
        .filter_map(|s| rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(&s.bytes)).ok())
        .flatten()
        .filter(|p| p.as_any().downcast_ref::<PictureLossIndication>().is_some_and(|pli| pli.media_ssrc == ssrc))
        .count()
}

#[test]
fn a_sendrecv_peers_feedback_inside_its_sr_reaches_the_stream_it_receives() {
    let mut h = Harness::new();
    // The peer publishes stream 1 and receives stream 2 (the other party's) as subscription 2, at one address.
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    h.stream(2, OTHER_SSRC, SourcePolicy::Fixed(other()));
    h.sub(1, 1, "127.0.0.11:6000", Rewrite::default()).expect("the other party hears the peer");
    h.sub(2, 2, "127.0.0.1:5000", Rewrite::default()).expect("the peer hears the other party");
    let mut egress = Recorder::new();
    h.send(0, other(), &rtp(OTHER_SSRC, 1, 0, b"o"), &mut egress);
    h.send(1, publisher(), &rtp(SSRC, 1, 0, b"p"), &mut egress);
    let before = egress.sent().len();

    let outcome = h.send(2, publisher(), &sr_with_feedback(OTHER_SSRC), &mut egress);
    assert_eq!(outcome, Outcome::Forwarded { copies: 1 }, "the SR still reaches the peer's subscriber");
    assert_eq!(h.fwd.counters().rx_feedback, 1, "and its feedback part is the peer's as a subscriber");
    let sent = &egress.sent()[before..];
    assert!(sent.iter().all(|s| s.dest == other()), "{sent:?}");
    // The PLI reaches the other party as a request for a keyframe of its own stream (translated and forwarded,
    // no keyframe throttle here), besides the copy of the whole compound.
    assert_eq!(plis_about(sent, OTHER_SSRC), 2, "{sent:?}");
    assert_eq!(h.fwd.counters().feedback_forwarded, 1);
}

#[test]
fn a_compound_about_ringfwds_own_report_ssrc_is_only_the_publishers() {
    let mut h = Harness::new();
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    h.sub(1, 1, "127.0.0.11:6000", Rewrite::default()).expect("sub");
    let mut egress = Recorder::new();
    h.send(0, publisher(), &rtp(SSRC, 1, 0, b"p"), &mut egress);
    let own = local_ssrc(StreamId(1), SSRC);
    let outcome = h.send(1, publisher(), &sr_with_feedback(own), &mut egress);
    assert_eq!(outcome, Outcome::Forwarded { copies: 1 });
    assert_eq!(h.fwd.counters().rx_feedback, 0);
    assert_eq!(h.fwd.counters().handover_out, 0);
}

#[test]
fn a_sendrecv_peers_feedback_for_a_subscription_of_another_worker_is_handed_over_after_the_publishers_part() {
    let start = Instant::now();
    let mut workers: Vec<Forwarder> = (0..2).map(|w| Forwarder::with_hash_seed(w, 2, limits(), 7)).collect();
    let add_stream = |id: u64, ssrc: u32, from: SocketAddr| Command::AddStream {
        id: StreamId(id),
        ssrc,
        source: SourcePolicy::Fixed(from),
        clock_rate_hz: 90_000,
        ingress: Default::default(),
    };
    let add_sub = |id: u64, stream: u64, dest: SocketAddr| Command::AddSubscription {
        id: SubscriptionId(id),
        stream: StreamId(stream),
        dest,
        socket: 0,
        rewrite: Rewrite::default(),
        paused: false,
        egress: Default::default(),
        continues: None,
    };
    workers[0].apply(start, add_stream(1, SSRC, publisher())).expect("peer's stream on 0");
    workers[0].apply(start, add_sub(1, 1, other())).expect("the other party hears the peer");
    workers[1].apply(start, add_stream(2, OTHER_FOREIGN_SSRC, other())).expect("other party's stream on 1");
    workers[1].apply(start, add_sub(2, 2, publisher())).expect("the peer hears the other party");
    let mut egress = Recorder::new();
    egress.set_current(&rtp(SSRC, 1, 0, b"p"));
    workers[0].on_datagram(start, 0, publisher(), &egress.current.clone(), &mut egress);
    egress.set_current(&rtp(OTHER_FOREIGN_SSRC, 1, 0, b"o"));
    workers[1].on_datagram(start, 0, other(), &egress.current.clone(), &mut egress);

    let compound = sr_with_feedback(OTHER_FOREIGN_SSRC);
    egress.set_current(&compound);
    let before = egress.sent().len();
    let outcome = workers[0].on_datagram(start, 0, publisher(), &compound, &mut egress);
    assert_eq!(outcome, Outcome::Handover { owner: 1 }, "the feedback part belongs to worker 1");
    assert_eq!(egress.sent().len(), before + 1, "the publisher's part was forwarded first");
    assert_eq!(workers[0].counters().handover_out, 1);
    // On worker 1 the compound is the peer's as a subscriber: its PLI goes on to the other party.
    let at_owner = workers[1].on_handover(start, 0, publisher(), &compound, 1, &mut egress);
    assert!(!matches!(at_owner, Outcome::Dropped(_) | Outcome::Handover { .. }), "{at_owner:?}");
    assert_eq!(workers[1].counters().rx_feedback, 1);
    assert_eq!(plis_about(&egress.sent()[before + 1..], OTHER_FOREIGN_SSRC), 1);
}
