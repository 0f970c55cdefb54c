//! SSRC aliases: a stream that took an SSRC another worker owns stays on its worker (its subscriptions' numbering
//! lives there), and the SSRC's owner hands the stream's datagrams over (see `aliases`).

use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtcp::receiver_report::ReceiverReport;
use rtcp::reception_report::ReceptionReport;

use super::*;
use crate::core::event::WorkerEventKind;

/// Worker `index` of `workers`, with the harness's limits and seed.
fn worker(index: usize, workers: usize) -> Forwarder {
    Forwarder::with_hash_seed(index, workers, limits(), 7)
}

fn apply(fwd: &mut Forwarder, at: Instant, cmd: Command) {
    fwd.apply(at, cmd).expect("command");
}

/// Stream `id` with `ssrc` from `publisher()` on `fwd`, with subscription `id * 10 + 1` keeping the publisher's SSRC
/// (to 127.0.0.11:6001) and, with `rewritten`, subscription `id * 10 + 2` sent as `rewritten` (to 127.0.0.12:6002).
fn stream_with_subs(fwd: &mut Forwarder, at: Instant, id: u64, ssrc: u32, rewritten: Option<u32>) {
    let source = SourcePolicy::Fixed(publisher());
    let add = Command::AddStream { id: StreamId(id), ssrc, source, clock_rate_hz: 90_000, ingress: Default::default() };
    apply(fwd, at, add);
    let subs = [(1, Rewrite::default())].into_iter().chain(rewritten.map(|out| (2, rewrite(out, 0, 0, 96))));
    for (n, rewrite) in subs {
        let sub = Command::AddSubscription {
            id: SubscriptionId(id * 10 + n),
            stream: StreamId(id),
            dest: addr(&format!("127.0.0.1{n}:600{n}")),
            socket: 0,
            rewrite,
            paused: false,
            egress: Default::default(),
            continues: None,
        };
        apply(fwd, at, sub);
    }
}

fn receive(fwd: &mut Forwarder, at: Instant, src: SocketAddr, pkt: &[u8], egress: &mut Recorder) -> Outcome {
    egress.set_current(pkt);
    fwd.on_datagram(at, 0, src, pkt, egress)
}

fn handed(fwd: &mut Forwarder, at: Instant, src: SocketAddr, pkt: &[u8], n: u8, egress: &mut Recorder) -> Outcome {
    egress.set_current(pkt);
    fwd.on_handover(at, 0, src, pkt, n, egress)
}

/// (SSRC, sequence number) of each RTP copy sent, in order; the record is emptied.
fn drain_rtp(egress: &mut Recorder) -> Vec<(u32, u16)> {
    egress.sent().drain(..).map(|s| parse(&s.bytes)).map(|p| (p.header.ssrc, p.header.sequence_number)).collect()
}

fn sender_report(ssrc: u32) -> Vec<u8> {
    rtcp::sender_report::SenderReport { ssrc, ..Default::default() }.marshal().expect("sr").to_vec()
}

#[test]
fn an_aliased_ssrcs_rtp_and_rtcp_reach_the_stream_on_its_worker_with_continuous_numbering() {
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    let (mut a, mut b) = (worker(0, 2), worker(1, 2));
    stream_with_subs(&mut a, start, 1, SSRC, Some(0xa002));
    let mut egress = Recorder::new();
    for k in 0..3u16 {
        let pkt = rtp(SSRC, 100 + k, 9_000 + 1_800 * u32::from(k), b"a");
        assert_eq!(
            receive(&mut a, at(20 * u64::from(k)), publisher(), &pkt, &mut egress),
            Outcome::Forwarded { copies: 2 }
        );
    }
    assert_eq!(drain_rtp(&mut egress)[4..], [(SSRC, 102), (0xa002, 102)]);

    // The publisher restarts with an SSRC worker 1 owns: the stream takes it in place, worker 1 gets the alias.
    let pkt = rtp(FOREIGN_SSRC, 7_000, 500_000, b"b");
    assert_eq!(receive(&mut b, at(60), publisher(), &pkt, &mut egress), Outcome::Dropped(DropReason::UnknownSsrc));
    apply(&mut a, at(70), Command::ChangeStreamSsrc { id: StreamId(1), ssrc: FOREIGN_SSRC });
    apply(&mut b, at(70), Command::AliasSsrc { ssrc: FOREIGN_SSRC, owner: 0 });
    assert_eq!(b.ssrc_alias(FOREIGN_SSRC), Some(0));
    for k in 0..3u16 {
        let pkt = rtp(FOREIGN_SSRC, 7_000 + k, 500_000 + 1_800 * u32::from(k), b"b");
        let now = at(100 + 20 * u64::from(k));
        assert_eq!(receive(&mut b, now, publisher(), &pkt, &mut egress), Outcome::Handover { owner: 0 });
        assert_eq!(handed(&mut a, now, publisher(), &pkt, 1, &mut egress), Outcome::Forwarded { copies: 2 });
    }
    let after = drain_rtp(&mut egress);
    assert_eq!(after[..2], [(SSRC, 103), (0xa002, 103)], "continuous, with the SSRC each subscriber saw");
    assert_eq!(after[4..], [(SSRC, 105), (0xa002, 105)]);

    // The publisher's RTCP about its new SSRC lands on worker 1 too, and goes out rewritten by worker 0.
    let sr = sender_report(FOREIGN_SSRC);
    assert_eq!(receive(&mut b, at(200), publisher(), &sr, &mut egress), Outcome::Handover { owner: 0 });
    assert_eq!(handed(&mut a, at(200), publisher(), &sr, 1, &mut egress), Outcome::Forwarded { copies: 2 });
    let senders: Vec<[u8; 4]> = egress.sent().iter().map(|s| s.bytes[4..8].try_into().unwrap()).collect();
    assert_eq!(senders, [SSRC.to_be_bytes(), 0xa002u32.to_be_bytes()]);

    // Counted as handed over (not as unknown) on worker 1, handed in (not received) on worker 0.
    let (ca, cb) = (a.counters(), b.counters());
    assert_eq!((cb.handover_out, cb.drop_unknown_ssrc, cb.rx_packets), (4, 1, 5));
    assert_eq!((ca.handover_in, ca.rx_packets, ca.forwarded_packets), (4, 3, 14));
}

#[test]
fn feedback_about_an_aliased_ssrc_reaches_its_subscription_and_no_datagram_loops() {
    // Three workers: the stream on 0 took 0x3001 (owned by 1); a subscriber whose own SSRC 0x3002 steers its RTCP
    // to worker 2 receives it unrewritten.
    let (home, aliased, subscriber_ssrc) = (0x3000u32, 0x3001u32, 0x3002u32);
    let start = Instant::now();
    let mut workers: Vec<Forwarder> = (0..3).map(|w| worker(w, 3)).collect();
    let mut egress = Recorder::new();
    stream_with_subs(&mut workers[0], start, 1, home, None);
    apply(&mut workers[0], start, Command::ChangeStreamSsrc { id: StreamId(1), ssrc: aliased });
    apply(&mut workers[1], start, Command::AliasSsrc { ssrc: aliased, owner: 0 });
    let subscriber = addr("127.0.0.40:4000");
    let sub = Command::AddSubscription {
        id: SubscriptionId(5),
        stream: StreamId(1),
        dest: subscriber,
        socket: 0,
        rewrite: Rewrite::default(),
        paused: false,
        egress: Default::default(),
        continues: None,
    };
    apply(&mut workers[0], start, sub);

    // The PLI: to the owner of the SSRC it is about, along the alias to the subscription, on to the publisher.
    let pli = PictureLossIndication { sender_ssrc: subscriber_ssrc, media_ssrc: aliased }.marshal().unwrap();
    let to_owner = receive(&mut workers[2], start, subscriber, &pli, &mut egress);
    assert_eq!(to_owner, Outcome::Handover { owner: 1 });
    assert_eq!(handed(&mut workers[1], start, subscriber, &pli, 1, &mut egress), Outcome::Handover { owner: 0 });
    let at_subscription = handed(&mut workers[0], start, subscriber, &pli, 2, &mut egress);
    assert!(!matches!(at_subscription, Outcome::Dropped(_) | Outcome::Handover { .. }), "{at_subscription:?}");
    assert_eq!(workers[0].counters().rx_feedback, 1);
    assert_eq!(egress.sent().iter().map(|s| s.dest).collect::<Vec<_>>(), [publisher()], "the PLI to the publisher");
    egress.sent().clear();

    // The publisher's RTP where the kernel's hash put it (not steered): to the SSRC's owner, then along the alias.
    let pkt = rtp(aliased, 1, 0, b"x");
    assert_eq!(receive(&mut workers[2], start, publisher(), &pkt, &mut egress), Outcome::Handover { owner: 1 });
    assert_eq!(handed(&mut workers[1], start, publisher(), &pkt, 1, &mut egress), Outcome::Handover { owner: 0 });
    assert_eq!(handed(&mut workers[0], start, publisher(), &pkt, 2, &mut egress), Outcome::Forwarded { copies: 2 });

    // A compound whose first SSRC is aliased one way and whose report is about an SSRC aliased the other way is
    // handed over twice, then dropped: never in a loop.
    stream_with_subs(&mut workers[1], start, 2, 0x3004, None);
    apply(&mut workers[1], start, Command::ChangeStreamSsrc { id: StreamId(2), ssrc: 0x3003 });
    apply(&mut workers[0], start, Command::AliasSsrc { ssrc: 0x3003, owner: 1 });
    let report = ReceptionReport { ssrc: 0x3003, ..Default::default() };
    let crafted = ReceiverReport { ssrc: aliased, reports: vec![report], ..Default::default() }.marshal().unwrap();
    let stranger = addr("127.0.0.66:6666");
    assert_eq!(receive(&mut workers[1], start, stranger, &crafted, &mut egress), Outcome::Handover { owner: 0 });
    assert_eq!(handed(&mut workers[0], start, stranger, &crafted, 1, &mut egress), Outcome::Handover { owner: 1 });
    let last = handed(&mut workers[1], start, stranger, &crafted, MAX_HANDOVERS, &mut egress);
    assert_eq!(last, Outcome::Dropped(DropReason::UnknownSsrc));
}

#[test]
fn without_its_alias_the_ssrc_is_unknown_again() {
    let start = Instant::now();
    let (mut a, mut b) = (worker(0, 2), worker(1, 2));
    stream_with_subs(&mut a, start, 1, SSRC, None);
    apply(&mut a, start, Command::ChangeStreamSsrc { id: StreamId(1), ssrc: FOREIGN_SSRC });
    apply(&mut b, start, Command::AliasSsrc { ssrc: FOREIGN_SSRC, owner: 0 });
    let mut egress = Recorder::new();
    let pkt = rtp(FOREIGN_SSRC, 1, 0, b"x");
    assert_eq!(receive(&mut b, start, publisher(), &pkt, &mut egress), Outcome::Handover { owner: 0 });
    b.drain_events(|e| panic!("an aliased SSRC is not unknown: {e:?}"));

    // The stream was deleted (or changed its SSRC again): the alias goes, and the SSRC is reported unknown.
    apply(&mut b, start, Command::RemoveSsrcAlias { ssrc: FOREIGN_SSRC });
    apply(&mut b, start, Command::RemoveSsrcAlias { ssrc: FOREIGN_SSRC });
    assert_eq!((b.ssrc_alias(FOREIGN_SSRC), b.alias_count()), (None, 0));
    assert_eq!(receive(&mut b, start, publisher(), &pkt, &mut egress), Outcome::Dropped(DropReason::UnknownSsrc));
    let mut events = Vec::new();
    b.drain_events(|e| events.push(e));
    let unknown = WorkerEventKind::UnknownSsrc { source: publisher(), ssrc: FOREIGN_SSRC, payload_type: 96 };
    assert_eq!(events, [unknown]);
    assert_eq!((b.counters().handover_out, b.counters().drop_unknown_ssrc), (1, 1));
    assert!(egress.sent().is_empty());
}

#[test]
fn an_alias_lives_only_on_its_ssrcs_owner_and_is_bounded() {
    let start = Instant::now();
    let mut b = worker(1, 2);
    let misplaced = |ssrc, owner| Err(CommandError::MisplacedAlias { ssrc, worker: 1, owner });
    assert_eq!(b.apply(start, Command::AliasSsrc { ssrc: SSRC, owner: 0 }), misplaced(SSRC, 0), "owned by 0");
    assert_eq!(b.apply(start, Command::AliasSsrc { ssrc: FOREIGN_SSRC, owner: 1 }), misplaced(FOREIGN_SSRC, 1));
    assert_eq!(b.apply(start, Command::AliasSsrc { ssrc: FOREIGN_SSRC, owner: 2 }), misplaced(FOREIGN_SSRC, 2));
    assert_eq!((b.alias_count(), b.counters().commands_failed), (0, 3));
    // As many as streams (`limits().max_streams` = 4).
    for ssrc in [1, 3, 5, 7] {
        apply(&mut b, start, Command::AliasSsrc { ssrc, owner: 0 });
    }
    let full = b.apply(start, Command::AliasSsrc { ssrc: 9, owner: 0 });
    assert_eq!(full, Err(CommandError::LimitReached { limit: "max_streams (ssrc aliases)", value: 4 }));
    apply(&mut b, start, Command::RemoveSsrcAlias { ssrc: 3 });
    apply(&mut b, start, Command::AliasSsrc { ssrc: 9, owner: 0 });
    assert_eq!(b.alias_count(), 4);
}
