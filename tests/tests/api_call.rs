//! A whole call driven through the gRPC control API of the real daemon, with real RTP over loopback: create a
//! session, a publisher and three subscribers, forward to each with its own SSRC, pause and resume one, switch one
//! to another stream (consecutive sequence numbers, timestamps continued by the time that passed), unsubscribe one
//! (the very next packet is not forwarded to it) and delete the session (the workers' tables are empty again and
//! the publisher's packets are dropped as unknown).

use std::time::{Duration, Instant};

use ringfwd_tests::api::{endpoint, expect_status, subscription, v1, video_stream, wait_until, worker_total, Code};
use ringfwd_tests::{rtp_fields, rtp_packet, Api, Daemon, Peer};

const WAIT: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(300);
/// Both even, so with two workers both streams belong to worker 0 (a switch stays on one worker).
const SSRC_CAM: u32 = 0x5000_0000;
const SSRC_SCREEN: u32 = 0x6000_0000;
const OUT_SSRC: [u32; 3] = [0xa0, 0xa1, 0xa2];
const SESSION: &str = "call";

/// A publisher's RTP stream: its next sequence number and timestamp, and what it sent.
struct Source<'a> {
    peer: &'a Peer,
    to: std::net::SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    sent: u32,
}

impl Source<'_> {
    /// Sends `n` packets 20 ms apart in RTP time (90 kHz); answers them. Payloads are unique per source.
    fn send(&mut self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                let mut payload = self.ssrc.to_be_bytes().to_vec();
                payload.extend_from_slice(&self.sent.to_be_bytes());
                payload.resize(160, 0x5a);
                let packet = rtp_packet(self.ssrc, self.seq, self.ts, 96, false, &payload);
                self.peer.send(&packet, self.to);
                self.seq = self.seq.wrapping_add(1);
                self.ts = self.ts.wrapping_add(1800);
                self.sent += 1;
                packet
            })
            .collect()
    }
}

/// What a subscriber must see: its SSRC and the offsets added to the publisher's numbers.
#[derive(Clone, Copy, Debug)]
struct Egress {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
}

impl Egress {
    fn of(s: &v1::Subscription) -> Egress {
        Egress { ssrc: s.out_ssrc, seq_offset: s.seq_offset as u16, ts_offset: s.ts_offset }
    }
}

/// Receives exactly `sent.len()` packets on `peer`, each the matching sent packet rewritten by `egress`; answers
/// the last one's (seq, timestamp).
fn expect_forwarded(peer: &Peer, sent: &[Vec<u8>], egress: Egress, who: &str) -> (u16, u32) {
    let got = peer.recv(sent.len(), WAIT);
    assert_eq!(got.len(), sent.len(), "{who}: received {} of {} packets", got.len(), sent.len());
    for (g, s) in got.iter().zip(sent) {
        let (g, s) = (rtp_fields(g), rtp_fields(s));
        assert_eq!(g.ssrc, egress.ssrc, "{who}: SSRC");
        assert_eq!(g.seq, s.seq.wrapping_add(egress.seq_offset), "{who}: sequence number");
        assert_eq!(g.timestamp, s.timestamp.wrapping_add(egress.ts_offset), "{who}: timestamp");
        assert_eq!(g.payload, s.payload, "{who}: payload");
    }
    let last = rtp_fields(got.last().expect("at least one packet"));
    (last.seq, last.timestamp)
}

fn expect_nothing(peer: &Peer, who: &str) {
    let got = peer.drain(QUIET);
    assert!(got.is_empty(), "{who} must receive nothing, got {} packets", got.len());
}

/// Waits until the workers' `streams` and `subscriptions` gauges (summed) are the given numbers.
fn expect_worker_tables(api: &Api, streams: u64, subscriptions: u64) {
    let mut seen = (0, 0);
    let reached = wait_until(WAIT, || {
        let node = api.node();
        seen = (worker_total(&node, "streams"), worker_total(&node, "subscriptions"));
        seen == (streams, subscriptions)
    });
    assert!(reached, "workers hold (streams, subscriptions) = {seen:?}, expected {:?}", (streams, subscriptions));
}

#[test]
fn a_call_through_the_api_forwards_pauses_switches_unsubscribes_and_frees_everything() {
    let publisher = Peer::bind("127.0.0.1");
    let subs = [Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1")];
    let daemon = Daemon::start("[placement]\nworker_cores = [0, 1]\n[media]\naddresses = [\"127.0.0.1:0\"]\n");
    assert_eq!(daemon.workers, 2);
    let media = daemon.media[0];
    let api = Api::dev(&daemon);

    // Set up: session, endpoints (send_to is the daemon's media address), stream, three subscriptions.
    let session = api.session(SESSION).expect("CreateSession");
    assert_eq!((session.session_id.as_str(), session.endpoints), (SESSION, 0));
    let pub_ep = api.create_endpoint(endpoint(SESSION, "pub", publisher.addr())).expect("CreateEndpoint pub");
    assert_eq!(pub_ep.send_to, vec![media.to_string()], "send_to lists the bound media address");
    assert_eq!(pub_ep.media_address, publisher.addr().to_string());
    for (i, s) in subs.iter().enumerate() {
        api.create_endpoint(endpoint(SESSION, &format!("sub{i}"), s.addr())).expect("CreateEndpoint sub");
    }
    let cam = api.create_stream(video_stream(SESSION, "cam", "pub", SSRC_CAM)).expect("CreateStream cam");
    assert_eq!((cam.ssrc, cam.worker), (SSRC_CAM, 0), "SSRC mod 2 workers");
    let mut egress = Vec::new();
    for (i, out_ssrc) in OUT_SSRC.iter().enumerate() {
        let req = subscription(SESSION, &format!("s{i}"), "cam", &format!("sub{i}"), *out_ssrc);
        let s = api.create_subscription(req).expect("CreateSubscription");
        assert_eq!((s.out_ssrc, s.paused, s.stream_id.as_str()), (*out_ssrc, false, "cam"));
        egress.push(Egress::of(&s));
    }
    let got = api.get_session(v1::GetSessionRequest { session_id: SESSION.into() }).expect("GetSession");
    assert_eq!((got.endpoints, got.streams, got.subscriptions), (4, 1, 3));
    expect_worker_tables(&api, 1, 3);

    let mut cam_src = Source { peer: &publisher, to: media, ssrc: SSRC_CAM, seq: 65_530, ts: 1_000, sent: 0 };

    // Every subscriber receives every packet, with its own SSRC (sequence numbers wrap on the way).
    let sent = cam_src.send(20);
    for (i, s) in subs.iter().enumerate() {
        expect_forwarded(s, &sent, egress[i], &format!("sub{i}"));
    }

    // Paused: sub1 receives nothing, the others keep receiving.
    let paused = api.set_paused(SESSION, "s1", true).expect("pause");
    assert!(paused.paused);
    let sent = cam_src.send(10);
    expect_forwarded(&subs[0], &sent, egress[0], "sub0 while sub1 is paused");
    expect_forwarded(&subs[2], &sent, egress[2], "sub2 while sub1 is paused");
    expect_nothing(&subs[1], "paused sub1");

    // Resumed: sub1 receives again with the same offsets (publisher's numbers + offset, no reset).
    let resumed = api.set_paused(SESSION, "s1", false).expect("resume");
    assert!(!resumed.paused);
    assert_eq!(resumed.seq_offset as u16, egress[1].seq_offset, "resume keeps the sequence offset");
    let before_last_cam = Instant::now();
    let sent = cam_src.send(10);
    for (i, s) in subs.iter().enumerate().take(2) {
        expect_forwarded(s, &sent, egress[i], &format!("sub{i} after resume"));
    }
    let (last_seq, last_ts) = expect_forwarded(&subs[2], &sent, egress[2], "sub2 before its switch");
    let sub2_last_received = Instant::now();

    // Switch sub2 to a second stream of the publisher: same SSRC, exactly consecutive sequence numbers, and the
    // timestamp advanced by the time that passed, in the stream's 90 kHz clock.
    let screen = api.create_stream(video_stream(SESSION, "screen", "pub", SSRC_SCREEN)).expect("CreateStream screen");
    assert_eq!(screen.worker, cam.worker, "both streams on one worker");
    let switched = api.switch(SESSION, "s2", "screen").expect("switch");
    assert_eq!((switched.stream_id.as_str(), switched.out_ssrc), ("screen", OUT_SSRC[2]));
    std::thread::sleep(Duration::from_millis(100));
    let mut screen_src =
        Source { peer: &publisher, to: media, ssrc: SSRC_SCREEN, seq: 40_000, ts: 3_000_000_000, sent: 0 };
    let first_screen_sent = Instant::now();
    let sent = screen_src.send(10);
    let got = subs[2].recv(10, WAIT);
    let first_screen_received = Instant::now();
    assert_eq!(got.len(), 10, "sub2 receives the stream it switched to");
    let (got_first, sent_first) = (rtp_fields(&got[0]), rtp_fields(&sent[0]));
    for (k, (g, s)) in got.iter().zip(&sent).enumerate() {
        let (g, s) = (rtp_fields(g), rtp_fields(s));
        assert_eq!(g.ssrc, OUT_SSRC[2], "the subscriber's SSRC survives the switch");
        assert_eq!(g.seq, last_seq.wrapping_add(1 + k as u16), "sequence numbers are consecutive across the switch");
        assert_eq!(g.payload, s.payload);
        assert_eq!(
            g.timestamp.wrapping_sub(got_first.timestamp),
            s.timestamp.wrapping_sub(sent_first.timestamp),
            "timestamps after the switch keep the new stream's spacing"
        );
    }
    // The worker's elapsed time lies between these bounds (20 ms of slack for its loop's clock reading).
    let ticks = got_first.timestamp.wrapping_sub(last_ts);
    let ticks_of = |d: Duration| (d.as_secs_f64() * 90_000.0) as u32;
    let low = ticks_of(first_screen_sent.duration_since(sub2_last_received).saturating_sub(Duration::from_millis(20)));
    let high = ticks_of(first_screen_received.duration_since(before_last_cam) + Duration::from_millis(20));
    assert!(
        (low.max(1)..=high).contains(&ticks),
        "timestamp across the switch advanced {ticks} ticks, expected {low}..={high}"
    );
    expect_nothing(&subs[0], "sub0 (not subscribed to screen)");
    expect_nothing(&subs[1], "sub1 (not subscribed to screen)");
    let sent = cam_src.send(5);
    expect_forwarded(&subs[0], &sent, egress[0], "sub0 after sub2's switch");
    expect_forwarded(&subs[1], &sent, egress[1], "sub1 after sub2's switch");
    expect_nothing(&subs[2], "sub2 no longer gets cam");
    expect_worker_tables(&api, 2, 3);

    // Unsubscribe sub0: the very next packet sent after the RPC returned reaches sub1 but not sub0.
    let removed = api
        .delete_subscription(v1::DeleteSubscriptionRequest { session_id: SESSION.into(), subscription_id: "s0".into() })
        .expect("DeleteSubscription");
    assert_eq!((removed.subscriptions, removed.streams, removed.endpoints), (1, 0, 0));
    let sent = cam_src.send(1);
    expect_forwarded(&subs[1], &sent, egress[1], "sub1 after sub0 left");
    expect_nothing(&subs[0], "unsubscribed sub0");
    expect_worker_tables(&api, 2, 2);

    // Delete the session: everything goes, on the workers too, and the publisher becomes unknown.
    let removed = api.delete_session(v1::DeleteSessionRequest { session_id: SESSION.into() }).expect("DeleteSession");
    assert_eq!((removed.sessions, removed.endpoints, removed.streams, removed.subscriptions), (1, 4, 2, 2));
    expect_worker_tables(&api, 0, 0);
    let node = api.node();
    let usage = node.usage.expect("usage");
    assert_eq!((usage.sessions, usage.endpoints, usage.streams, usage.subscriptions), (0, 0, 0, 0));
    expect_status(api.get_session(v1::GetSessionRequest { session_id: SESSION.into() }), Code::NotFound, &[SESSION]);
    let unknown_before = worker_total(&node, "drop_unknown_ssrc");
    cam_src.send(5);
    screen_src.send(5);
    let mut unknown = unknown_before;
    let counted = wait_until(WAIT, || {
        unknown = worker_total(&api.node(), "drop_unknown_ssrc");
        unknown == unknown_before + 10
    });
    assert!(counted, "drop_unknown_ssrc went from {unknown_before} to {unknown}, expected +10");
    for (i, s) in subs.iter().enumerate() {
        expect_nothing(s, &format!("sub{i} after the session was deleted"));
    }
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    assert_eq!(exit.total("send_errors"), 0);
}

/// The payload types of everything `peer` receives within `WAIT`, `count` packets at most.
fn payload_types(peer: &Peer, count: usize) -> Vec<u8> {
    peer.recv(count, WAIT).iter().map(|p| rtp_fields(p).payload_type).collect()
}

#[test]
fn a_renegotiation_replaces_the_payload_type_map_and_interceptors_at_once() {
    let publisher = Peer::bind("127.0.0.1");
    let viewer = Peer::bind("127.0.0.1");
    let daemon = Daemon::start("[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n");
    let api = Api::dev(&daemon);
    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "pub", publisher.addr())).expect("CreateEndpoint pub");
    api.create_endpoint(endpoint(SESSION, "viewer", viewer.addr())).expect("CreateEndpoint viewer");
    api.create_stream(video_stream(SESSION, "cam", "pub", SSRC_CAM)).expect("CreateStream");
    let mut request = subscription(SESSION, "s", "cam", "viewer", 0);
    request.payload_type_map = vec![v1::PayloadTypeMapping { from: 96, to: 100 }];
    api.create_subscription(request).expect("CreateSubscription");
    let mut cam = Source { peer: &publisher, to: daemon.media[0], ssrc: SSRC_CAM, seq: 1, ts: 1_000, sent: 0 };
    cam.send(5);
    assert_eq!(payload_types(&viewer, 5), [100; 5]);

    // A re-INVITE maps 96 to 102 and turns the egress statistics on: the very next packet carries 102.
    let renegotiate = |map: Vec<(u32, u32)>, names: Option<&[&str]>| v1::UpdateSubscriptionRequest {
        session_id: SESSION.into(),
        subscription_id: "s".into(),
        payload_type_map: Some(v1::PayloadTypeMap {
            mappings: map.into_iter().map(|(from, to)| v1::PayloadTypeMapping { from, to }).collect(),
        }),
        interceptors: names.map(|names| v1::InterceptorChain { names: names.iter().map(|n| n.to_string()).collect() }),
        ..Default::default()
    };
    let updated = api.update_subscription(renegotiate(vec![(96, 102)], Some(&["stats"]))).expect("UpdateSubscription");
    assert_eq!(updated.payload_type_map, [v1::PayloadTypeMapping { from: 96, to: 102 }]);
    assert_eq!(updated.interceptors, ["stats"]);
    cam.send(5);
    assert_eq!(payload_types(&viewer, 5), [102; 5]);
    let got = api
        .get_subscription(v1::GetSubscriptionRequest { session_id: SESSION.into(), subscription_id: "s".into() })
        .expect("GetSubscription");
    assert_eq!((got.payload_type_map.len(), got.interceptors.len()), (1, 1), "the registry keeps what was applied");

    // Refused as a create refuses it, naming the field; nothing changes.
    expect_status(
        api.update_subscription(renegotiate(vec![(96, 200)], None)),
        Code::InvalidArgument,
        &["payload_type_map[0].to"],
    );
    expect_status(
        api.update_subscription(renegotiate(vec![(96, 102)], Some(&["nack_cache"]))),
        Code::InvalidArgument,
        &["interceptors.names[0]"],
    );
    cam.send(3);
    assert_eq!(payload_types(&viewer, 3), [102; 3]);

    // An empty map: payload types pass unchanged.
    api.update_subscription(renegotiate(Vec::new(), None)).expect("identity map");
    cam.send(3);
    assert_eq!(payload_types(&viewer, 3), [96; 3]);
    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}

#[test]
fn a_restarted_publisher_with_a_new_ssrc_continues_for_its_subscriber() {
    restarted_publisher("[0]", SSRC_SCREEN);
}

#[test]
fn a_new_ssrc_the_kernel_steers_to_another_worker_continues_for_the_subscriber() {
    // SSRC_CAM is worker 0's, the new SSRC worker 1's: the stream stays on 0, and 1 hands the packets over.
    restarted_publisher("[0, 1]", SSRC_SCREEN + 1);
}

/// A publisher restarts with `new_ssrc` on a daemon with `worker_cores`; `UpdateStream` follows it and its subscriber
/// sees one stream.
fn restarted_publisher(worker_cores: &str, new_ssrc: u32) {
    let publisher = Peer::bind("127.0.0.1");
    let viewer = Peer::bind("127.0.0.1");
    let daemon =
        Daemon::start(&format!("[placement]\nworker_cores = {worker_cores}\n[media]\naddresses = [\"127.0.0.1:0\"]\n"));
    let api = Api::dev(&daemon);
    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "pub", publisher.addr())).expect("CreateEndpoint pub");
    api.create_endpoint(endpoint(SESSION, "viewer", viewer.addr())).expect("CreateEndpoint viewer");
    api.create_stream(video_stream(SESSION, "cam", "pub", SSRC_CAM)).expect("CreateStream");
    api.create_subscription(subscription(SESSION, "s", "cam", "viewer", 0)).expect("CreateSubscription");
    let mut before = Source { peer: &publisher, to: daemon.media[0], ssrc: SSRC_CAM, seq: 100, ts: 1_000, sent: 0 };
    before.send(5);
    let got = viewer.recv(5, WAIT);
    let last = rtp_fields(got.last().expect("forwarded"));

    // The user agent restarts with another SSRC and numbering: dropped, and reported to the controller, which says
    // what it is (as it would after a re-INVITE).
    let mut restarted =
        Source { peer: &publisher, to: daemon.media[0], ssrc: new_ssrc, seq: 39_990, ts: 6_000_000, sent: 0 };
    restarted.send(2);
    let reported = api.wait_event(SESSION, WAIT, |kind| match kind {
        v1::event::Kind::UnknownSsrc(u) => Some(u.clone()),
        _ => None,
    });
    let reported = reported.expect("an unknown_ssrc event");
    assert_eq!((reported.endpoint_id.as_str(), reported.ssrc, reported.payload_type), ("pub", new_ssrc, 96));
    assert_eq!(reported.source_address, publisher.addr().to_string());
    expect_nothing(&viewer, "viewer (an SSRC no stream has)");
    let update = v1::UpdateStreamRequest {
        session_id: SESSION.into(),
        stream_id: "cam".into(),
        ssrc: Some(new_ssrc),
        payload_types: Some(v1::PayloadTypes { values: vec![96, 97] }),
        interceptors: None,
    };
    let stream = api.update_stream(update).expect("UpdateStream");
    assert_eq!((stream.ssrc, stream.payload_types.as_slice()), (new_ssrc, &[96, 97][..]));
    let mut after =
        Source { peer: &publisher, to: daemon.media[0], ssrc: new_ssrc, seq: 40_000, ts: 7_000_000, sent: 0 };
    after.send(5);
    let got = viewer.recv(5, WAIT);
    assert_eq!(got.len(), 5, "the new SSRC is forwarded");
    for (k, packet) in got.iter().enumerate() {
        let fields = rtp_fields(packet);
        assert_eq!(fields.ssrc, SSRC_CAM, "the subscriber keeps seeing the SSRC it saw");
        assert_eq!(fields.seq, last.seq.wrapping_add(1 + k as u16), "consecutive sequence numbers");
    }
    let sub = api
        .get_subscription(v1::GetSubscriptionRequest { session_id: SESSION.into(), subscription_id: "s".into() })
        .expect("GetSubscription");
    assert_eq!(sub.out_ssrc, SSRC_CAM, "pinned in the registry too");
    // The old SSRC is no longer accepted.
    before.send(1);
    expect_nothing(&viewer, "viewer (old SSRC)");
    // The kernel steers an SSRC to worker `ssrc % workers`.
    assert_eq!(daemon.workers, worker_cores.split(',').count());
    let workers = daemon.workers as u32;
    let (home, steered) = ((SSRC_CAM % workers) as usize, (new_ssrc % workers) as usize);
    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
    if home != steered {
        assert!(exit.worker(steered, "handover_out") >= 5, "the new SSRC's worker handed the packets over");
        assert!(exit.worker(home, "handover_in") >= 5, "the stream's worker took them");
    }
}

#[test]
fn a_reinvite_moves_an_endpoint_and_its_streams_and_subscriptions_follow() {
    let (old_pub, new_pub) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let (old_view, new_view) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let daemon = Daemon::start("[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n");
    let api = Api::dev(&daemon);
    let media = daemon.media[0];
    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "pub", old_pub.addr())).expect("CreateEndpoint pub");
    api.create_endpoint(endpoint(SESSION, "viewer", old_view.addr())).expect("CreateEndpoint viewer");
    api.create_stream(video_stream(SESSION, "cam", "pub", SSRC_CAM)).expect("CreateStream");
    api.create_subscription(subscription(SESSION, "s", "cam", "viewer", 0)).expect("CreateSubscription");
    let mut from_old = Source { peer: &old_pub, to: media, ssrc: SSRC_CAM, seq: 10, ts: 0, sent: 0 };
    from_old.send(3);
    assert_eq!(old_view.recv(3, WAIT).len(), 3);

    let move_to = |id: &str, addr: std::net::SocketAddr| {
        let request = v1::UpdateEndpointRequest {
            session_id: SESSION.into(),
            endpoint_id: id.into(),
            media_address: addr.to_string(),
            ..Default::default()
        };
        api.update_endpoint(request).expect("UpdateEndpoint")
    };
    // The viewer's re-INVITE: the next packet goes to its new port, none to the old one.
    assert_eq!(move_to("viewer", new_view.addr()).media_address, new_view.addr().to_string());
    from_old.send(3);
    assert_eq!(new_view.recv(3, WAIT).len(), 3, "at the new address");
    expect_nothing(&old_view, "the viewer's old address");
    // The publisher's re-INVITE: its packets are accepted from the new port only, numbering continues.
    move_to("pub", new_pub.addr());
    from_old.send(2);
    expect_nothing(&new_view, "packets from the publisher's old address");
    let mut from_new =
        Source { peer: &new_pub, to: media, ssrc: SSRC_CAM, seq: from_old.seq, ts: from_old.ts, sent: 0 };
    let sent = from_new.send(3);
    let got = new_view.recv(3, WAIT);
    assert_eq!(got.len(), 3, "from the new address");
    assert_eq!(rtp_fields(&got[0]).seq, rtp_fields(&sent[0]).seq, "the same stream, the same numbering");
    let node = api.node();
    assert_eq!(worker_total(&node, "drop_wrong_source"), 2, "the old address is refused");
    let sub = api
        .get_subscription(v1::GetSubscriptionRequest { session_id: SESSION.into(), subscription_id: "s".into() })
        .expect("the subscription lived on");
    assert!(!sub.paused);
    expect_status(
        api.update_endpoint(v1::UpdateEndpointRequest {
            session_id: SESSION.into(),
            endpoint_id: "viewer".into(),
            media_address: "127.0.0.1:0".into(),
            ..Default::default()
        }),
        Code::InvalidArgument,
        &["media_address"],
    );
    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}

#[test]
fn a_stream_declared_after_its_first_packets_learns_their_ssrc_at_once() {
    // The callee of a SIP call sends the moment it answers, before the controller has declared its stream: its
    // packets are reported as unknown once per statistics round (a minute here), and the stream declared a moment
    // later takes their SSRC when it is created, not a round later.
    let publisher = Peer::bind("127.0.0.1");
    let viewer = Peer::bind("127.0.0.1");
    let daemon = Daemon::start(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n\
         [telemetry]\nstats_interval_ms = 60000\nstats_grace_ms = 60000\n",
    );
    let api = Api::dev(&daemon);
    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "callee", publisher.addr())).expect("CreateEndpoint callee");
    api.create_endpoint(endpoint(SESSION, "caller", viewer.addr())).expect("CreateEndpoint caller");
    let mut early = Source { peer: &publisher, to: daemon.media[0], ssrc: SSRC_CAM, seq: 10, ts: 1_000, sent: 0 };
    early.send(3);
    let reported = api.wait_event(SESSION, WAIT, |kind| match kind {
        v1::event::Kind::UnknownSsrc(u) => Some(u.clone()),
        _ => None,
    });
    assert_eq!(reported.expect("an unknown_ssrc event").ssrc, SSRC_CAM);

    let created = Instant::now();
    api.create_stream(video_stream(SESSION, "cam", "callee", 0)).expect("CreateStream without SSRC");
    let adopted = api.wait_event(SESSION, WAIT, |kind| match kind {
        v1::event::Kind::StreamSsrcChanged(c) => Some(c.clone()),
        _ => None,
    });
    let adopted = adopted.expect("the stream took the reported SSRC without waiting for the next round");
    assert_eq!((adopted.ssrc, adopted.previous_ssrc), (SSRC_CAM, 0));
    assert!(created.elapsed() < WAIT);
    let got = api.get_stream(v1::GetStreamRequest { session_id: SESSION.into(), stream_id: "cam".into() });
    assert_eq!(got.expect("GetStream").ssrc, SSRC_CAM);
    api.create_subscription(subscription(SESSION, "s", "cam", "caller", 0)).expect("CreateSubscription");
    let mut more = Source { peer: &publisher, to: daemon.media[0], ssrc: SSRC_CAM, seq: 13, ts: 4_000, sent: 0 };
    more.send(5);
    assert_eq!(viewer.recv(5, WAIT).len(), 5, "forwarded from the first packet after the subscription");
    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}
