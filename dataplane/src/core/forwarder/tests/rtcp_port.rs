//! Peers without rtcp-mux: a publisher's RTCP accepted from its RTCP address (its RTP from there is not), a
//! subscriber's feedback recognised from its RTCP address, and every RTCP to either sent to its RTCP address.

use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

use super::*;

fn rtcp_of(publisher: SocketAddr) -> SocketAddr {
    SocketAddr::new(publisher.ip(), publisher.port() + 1)
}

fn sr(ssrc: u32) -> Vec<u8> {
    let sr = rtcp::sender_report::SenderReport { ssrc, ..Default::default() };
    sr.marshal().expect("marshal sr").to_vec()
}

/// Stream 1 from `publisher()` with RTCP at its port + 1; subscription 1 at 127.0.0.11:6000 with RTCP at :6001.
fn unmuxed(h: &mut Harness) {
    h.stream(1, SSRC, SourcePolicy::Fixed(publisher()));
    h.sub(1, 1, "127.0.0.11:6000", Rewrite::default()).expect("sub");
    let set = Command::SetRtcpSource { id: StreamId(1), source: Some(rtcp_of(publisher())) };
    h.fwd.apply(h.start, set).expect("rtcp source");
    let set = Command::SetRtcpDestination { id: SubscriptionId(1), dest: Some(addr("127.0.0.11:6001")) };
    h.fwd.apply(h.start, set).expect("rtcp destination");
}

#[test]
fn publisher_rtcp_from_its_rtcp_address_reaches_the_subscriber_at_its_rtcp_address() {
    let mut h = Harness::new();
    unmuxed(&mut h);
    let mut egress = Recorder::new();
    let outcome = h.send(1, rtcp_of(publisher()), &sr(SSRC), &mut egress);
    assert_eq!(outcome, Outcome::Forwarded { copies: 1 });
    assert_eq!(egress.sent().last().map(|s| s.dest), Some(addr("127.0.0.11:6001")), "RTCP to the RTCP address");
    // RTP still goes to the RTP address; RTP from the RTCP address is a wrong source.
    assert_eq!(h.send(2, publisher(), &rtp(SSRC, 1, 0, b"a"), &mut egress), Outcome::Forwarded { copies: 1 });
    assert_eq!(egress.sent().last().map(|s| s.dest), Some(addr("127.0.0.11:6000")));
    let spoof = h.send(3, rtcp_of(publisher()), &rtp(SSRC, 2, 0, b"a"), &mut egress);
    assert_eq!(spoof, Outcome::Dropped(DropReason::WrongSource));
    // Muxed RTCP from the RTP address is still accepted.
    assert_eq!(h.send(4, publisher(), &sr(SSRC), &mut egress), Outcome::Forwarded { copies: 1 });
}

#[test]
fn subscriber_feedback_from_its_rtcp_address_goes_to_the_publisher_rtcp_address() {
    let mut h = Harness::new();
    unmuxed(&mut h);
    let mut egress = Recorder::new();
    h.send(0, publisher(), &rtp(SSRC, 1, 0, b"a"), &mut egress);
    let pli = PictureLossIndication { sender_ssrc: 0xbeef, media_ssrc: SSRC }.marshal().expect("pli").to_vec();
    egress.set_current(&pli);
    let sent_before = egress.sent().len();
    let outcome = h.fwd.on_datagram(h.at(1), 0, addr("127.0.0.11:6001"), &pli, &mut egress);
    assert_ne!(outcome, Outcome::Dropped(DropReason::WrongSource));
    assert_ne!(outcome, Outcome::Dropped(DropReason::UnknownSsrc));
    let to_publisher: Vec<_> = egress.sent()[sent_before..].iter().map(|s| s.dest).collect();
    assert_eq!(to_publisher, [rtcp_of(publisher())], "the PLI goes on to the publisher's RTCP address");
}

#[test]
fn rtcp_keys_are_forgotten_and_follow_ssrc_changes() {
    let mut h = Harness::new();
    unmuxed(&mut h);
    assert_eq!(h.fwd.table.find_rtcp_source(rtcp_of(publisher()), SSRC), Some(0));
    assert_eq!(h.fwd.table.find_feedback(addr("127.0.0.11:6001"), SSRC), Some(0));
    h.fwd.apply(h.start, Command::ChangeStreamSsrc { id: StreamId(1), ssrc: SSRC + 2 }).expect("ssrc change");
    assert_eq!(h.fwd.table.find_rtcp_source(rtcp_of(publisher()), SSRC), None);
    assert_eq!(h.fwd.table.find_rtcp_source(rtcp_of(publisher()), SSRC + 2), Some(0));
    let unset = Command::SetRtcpDestination { id: SubscriptionId(1), dest: None };
    h.fwd.apply(h.start, unset).expect("muxed again");
    assert_eq!(h.fwd.table.find_feedback(addr("127.0.0.11:6001"), SSRC), None);
    h.fwd.apply(h.start, Command::RemoveStream { id: StreamId(1) }).expect("remove");
    assert_eq!(h.fwd.table.find_rtcp_source(rtcp_of(publisher()), SSRC + 2), None);
    let missing = Command::SetRtcpSource { id: StreamId(1), source: None };
    assert_eq!(h.fwd.apply(h.start, missing), Err(CommandError::StreamNotFound { id: StreamId(1) }));
}

#[test]
fn rtcp_to_an_rtcp_address_leaves_from_the_rtcp_socket_when_bound() {
    let mut h = Harness::new();
    unmuxed(&mut h);
    // Two media sockets, their RTCP sockets (port + 1) at 2 and 3; subscription 1 sends from socket 1.
    h.fwd.set_rtcp_socket_offset(Some(2));
    let mut egress = Recorder::new();
    h.send(0, publisher(), &rtp(SSRC, 1, 0, b"a"), &mut egress);
    assert_eq!(egress.sent().last().map(|s| (s.socket, s.dest)), Some((1, addr("127.0.0.11:6000"))), "RTP: media");
    h.send(1, rtcp_of(publisher()), &sr(SSRC), &mut egress);
    assert_eq!(egress.sent().last().map(|s| (s.socket, s.dest)), Some((3, addr("127.0.0.11:6001"))), "RTCP: + 1");
}
