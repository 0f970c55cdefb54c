//! Relaying across the nodes of a cluster: a stream published on node A, subscribed on node B (the direct path:
//! Sub, Data, Cancel, Finish).
//!
//! Two daemons on a real Redis server (Debian's `redis-server`, started by the test), sharing one `[[auth.keys]]`
//! key; the publisher and the subscriber are UDP sockets of the test. What is checked: a subscription on B to A's
//! stream makes one leg on A (`~b.<request>`, to endpoint `~b`) and the stream relayed on B (from endpoint `~a`), and
//! leaves the directory placing the stream on A; the subscriber on B receives every packet the publisher sent to A,
//! byte for byte; a PLI from the subscriber on B reaches the publisher on A; a second subscriber on B shares the one
//! leg; the last subscription deleted on B removes the relayed stream on B and the leg on A (Cancel); the stream
//! deleted on A removes the relayed stream and its subscription on B (Finish); A killed, its lease runs out and B
//! removes what it relayed from A; and no controller call may create an id of the cluster's relays.
//!
//! NACKs with the default chains: one for a packet B holds is answered by B's cache; one for a packet neither node
//! received is passed from B's cache to A's (A's leg counts it) and from A's to the camera.
//!
//! Three nodes, C configured unable to reach A: C's subscription goes through B, which relays A's stream in and on
//! (byte for byte over two hops, a PLI from C reaching A); Cancel travels up from C to A, Finish down from A to C.
//!
//! Then with GStreamer: an `rtpbin` camera on A whose VP8 encoder makes a keyframe only when asked, already running,
//! and an `rtpbin` viewer on B that subscribes: it decodes from the keyframe B's new subscription asked A's camera
//! for (A counts the PLI from the leg and its keyframe request to the camera), its `rtpsession` counts no packet lost,
//! and A's statistics of the leg show its packets, no loss and a round-trip time from B's receiver reports (in
//! `GetStreamStats` and in `ringfwd ctl node relays`, which on B shows the stream relayed from A).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringfwd_proto::v1;
use ringfwd_tests::api::{
    ctl_ok, endpoint, expect_status, parse_json, subscription, video_stream, wait_until, Api, KeyedConfig,
};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::gst::{ensure_gstreamer, free_port, newest_source, number, vp8_publisher, vp8_subscriber, Pipeline};
use ringfwd_tests::peer::{rtcp_generic_nack, rtcp_generic_nack_seqs, rtp_packet, Peer};
use ringfwd_tests::redis::{ensure_redis, Redis};
use ringfwd_tests::scrape::sample;
use tonic::Code;

const ONE_WORKER: &str = "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n";
const WAIT: Duration = Duration::from_secs(5);
const SSRC: u32 = 0x7e1a_0001;
const PACKETS: u16 = 50;
const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);

/// Session `s` on `api`'s node, the camera's endpoint `cam` and its stream `v`.
fn publish(api: &Api, camera: SocketAddr) {
    api.session("s").expect("session");
    api.create_endpoint(endpoint("s", "cam", camera)).expect("camera");
    api.create_stream(video_stream("s", "v", "cam", SSRC)).expect("stream");
}

fn subscriptions(api: &Api) -> Vec<v1::Subscription> {
    let list = api.list_subscriptions(v1::ListSubscriptionsRequest { session_id: "s".into() });
    list.map(|l| l.subscriptions).unwrap_or_default()
}

fn endpoint_ids(api: &Api) -> Vec<String> {
    let list = api.list_endpoints(v1::ListEndpointsRequest { session_id: "s".into() });
    list.map(|l| l.endpoints.into_iter().map(|e| e.endpoint_id).collect()).unwrap_or_default()
}

fn stream(api: &Api, id: &str) -> Result<v1::Stream, tonic::Status> {
    api.get_stream(v1::GetStreamRequest { session_id: "s".into(), stream_id: id.into() })
}

fn gone(api: &Api, id: &str) -> bool {
    stream(api, id).is_err_and(|status| status.code() == Code::NotFound)
}

/// A PLI (RFC 4585) from `sender` about `media`.
fn pli(sender: u32, media: u32) -> Vec<u8> {
    let mut packet = vec![0x81, 206, 0, 2];
    packet.extend_from_slice(&sender.to_be_bytes());
    packet.extend_from_slice(&media.to_be_bytes());
    packet
}

/// Whether `packet` is a compound RTCP packet holding a PLI about `media`.
fn holds_pli(packet: &[u8], media: u32) -> bool {
    let mut at = 0;
    while at + 12 <= packet.len() {
        let words = usize::from(u16::from_be_bytes([packet[at + 2], packet[at + 3]]));
        if packet[at + 1] == 206 && packet[at] & 0x1f == 1 && packet[at + 8..at + 12] == media.to_be_bytes() {
            return true;
        }
        at += (words + 1) * 4;
    }
    false
}

/// Sends `PACKETS` RTP packets from `camera` to `to` and answers them.
fn send_media(camera: &Peer, to: SocketAddr, first_seq: u16) -> Vec<Vec<u8>> {
    let sent: Vec<Vec<u8>> = (0..PACKETS)
        .map(|i| {
            let payload: Vec<u8> = (0..160u32).map(|b| (b as u8) ^ (i as u8)).collect();
            rtp_packet(SSRC, first_seq.wrapping_add(i), 3000 * u32::from(i), 96, i % 10 == 9, &payload)
        })
        .collect();
    for packet in &sent {
        camera.send(packet, to);
    }
    sent
}

#[test]
fn a_stream_published_on_one_node_is_relayed_to_subscribers_on_another() {
    if !ensure_redis() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    let (_, a, api_a) = redis.keyed_node(ONE_WORKER, "a", "");
    // B keeps the statistics of the streams relayed to it (its per-relay series), and sends no RTCP of its own.
    let b_base = format!("{ONE_WORKER}[interceptors]\ningress = [\"stats\"]\negress = []\n");
    let (_, b, api_b) = redis.keyed_node(&b_base, "b", "");

    // A publishes; B learns where from the directory.
    let (camera, viewer, second) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    publish(&api_a, camera.addr());
    let locate = || api_b.locate_stream(v1::LocateStreamRequest { session_id: "s".into(), stream_id: "v".into() });
    assert!(wait_until(WAIT, || locate().is_ok()), "b locates v: {:?}", locate());

    // Controllers may not make the cluster's relay objects.
    expect_status(api_b.create_endpoint(endpoint("s", "~a", viewer.addr())), Code::InvalidArgument, &["endpoint_id"]);

    // A subscription on B: one leg on A, the stream relayed on B; the directory still places v on A.
    api_b.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer");
    api_b.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on b to a's stream");
    let legs = subscriptions(&api_a);
    assert_eq!(legs.len(), 1, "{legs:?}");
    assert!(legs[0].subscription_id.starts_with("~b.") && legs[0].endpoint_id == "~b", "{legs:?}");
    let relayed = stream(&api_b, "v").expect("v relayed on b");
    assert_eq!((relayed.endpoint_id.as_str(), relayed.ssrc), ("~a", SSRC), "{relayed:?}");
    assert_eq!(locate().expect("located").node_id, "a", "the relayed copy is not placed on b");

    // Data: every packet sent to A reaches the subscriber on B, byte for byte.
    let sent = send_media(&camera, a.media[0], 1000);
    let received = viewer.recv_rtp(sent.len(), WAIT);
    assert_eq!(received.len(), sent.len(), "the viewer on b received {} of {}", received.len(), sent.len());
    assert_eq!(received, sent, "relayed byte for byte");
    // Per-leg series: A's leg to B and B's stream relayed from A each count the packets (stats sampled periodically).
    let (metrics_a, metrics_b) = (a.metrics.expect("a serves metrics"), b.metrics.expect("b serves metrics"));
    let labels = |node| [("session", "s"), ("stream", "v"), ("node", node)];
    let leg = || sample(metrics_a, "ringfwd_cluster_relay_leg_packets_total", &labels("b"));
    assert!(wait_until(WAIT, || leg().is_some_and(|n| n >= f64::from(PACKETS))), "a's leg to b: {:?}", leg());
    let relayed = || sample(metrics_b, "ringfwd_cluster_relayed_stream_packets_total", &labels("a"));
    let counted = wait_until(WAIT, || relayed().is_some_and(|n| n >= f64::from(PACKETS)));
    assert!(counted, "b's stream relayed from a: {:?}", relayed());

    // Feedback: a PLI from the viewer on B reaches the camera on A.
    viewer.send(&pli(0x0bad_cafe, SSRC), b.media[0]);
    let reached = wait_until(WAIT, || camera.drain(Duration::from_millis(50)).iter().any(|p| holds_pli(p, SSRC)));
    assert!(reached, "the camera on a got the PLI sent on b");

    // A second subscriber on B shares the leg.
    api_b.create_endpoint(endpoint("s", "second", second.addr())).expect("second viewer");
    api_b.create_subscription(subscription("s", "w2", "v", "second", 0)).expect("second subscription");
    assert_eq!(subscriptions(&api_a).len(), 1, "still one leg");
    let sent = send_media(&camera, a.media[0], 1000 + PACKETS);
    assert_eq!(viewer.recv_rtp(sent.len(), WAIT), sent);
    assert_eq!(second.recv_rtp(sent.len(), WAIT), sent);

    // Cancel: the last subscription on B deleted, the relayed stream leaves B and the leg leaves A.
    for id in ["w", "w2"] {
        let request = v1::DeleteSubscriptionRequest { session_id: "s".into(), subscription_id: id.into() };
        api_b.delete_subscription(request).expect("delete subscription on b");
    }
    assert!(wait_until(WAIT, || gone(&api_b, "v")), "the relayed stream left b");
    assert!(wait_until(WAIT, || subscriptions(&api_a).is_empty()), "the leg left a: {:?}", subscriptions(&api_a));
    assert!(wait_until(WAIT, || !endpoint_ids(&api_a).contains(&"~b".to_owned())), "{:?}", endpoint_ids(&api_a));
    assert!(!endpoint_ids(&api_b).contains(&"~a".to_owned()), "{:?}", endpoint_ids(&api_b));

    // Finish: subscribed again, then the stream deleted on A: the relayed stream and its subscription leave B.
    api_b.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscribe again");
    assert_eq!(subscriptions(&api_a).len(), 1);
    api_a.delete_stream(v1::DeleteStreamRequest { session_id: "s".into(), stream_id: "v".into() }).expect("delete v");
    assert!(wait_until(WAIT, || gone(&api_b, "v")), "the relayed stream left b after finish");
    assert!(wait_until(WAIT, || subscriptions(&api_b).is_empty()), "{:?}", subscriptions(&api_b));
    assert!(wait_until(WAIT, || !endpoint_ids(&api_a).contains(&"~b".to_owned())), "{:?}", endpoint_ids(&api_a));
    assert!(!endpoint_ids(&api_b).contains(&"~a".to_owned()), "{:?}", endpoint_ids(&api_b));
    let metrics = b.metrics.expect("b serves metrics");
    let messages = |kind: &str| sample(metrics, "ringfwd_cluster_relay_messages_total", &[("message", kind)]);
    assert!(messages("sub").is_some_and(|n| n >= 2.0) && messages("cancel").is_some_and(|n| n >= 1.0));

    // A node lost: A is killed with a stream relayed to B; its lease runs out and B removes the relay.
    api_a.create_stream(video_stream("s", "v", "cam", SSRC)).expect("stream on a again");
    assert!(wait_until(WAIT, || locate().is_ok()));
    api_b.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscribe again");
    assert!(stream(&api_b, "v").is_ok());
    let _kept = a.crash();
    assert!(wait_until(WAIT, || gone(&api_b, "v")), "b removed what it relayed from a");
    assert!(wait_until(WAIT, || !endpoint_ids(&api_b).contains(&"~a".to_owned())), "{:?}", endpoint_ids(&api_b));
    assert!(subscriptions(&api_b).is_empty());
    let exit = b.stop();
    assert!(exit.success, "{}", exit.stderr);
}

/// Frames `fakesink name=frames silent=false` printed.
fn decoded(output: &str) -> usize {
    ringfwd_tests::gst::frames_printed(output)
}

#[test]
fn a_gstreamer_viewer_on_one_node_decodes_a_camera_on_another_from_the_keyframe_it_asked_for() {
    if !ensure_redis() || !ensure_gstreamer() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    // The default interceptor chains (keyframe_throttle, nack_cache, reports): an `[interceptors]` table without keys.
    let base = format!("{ONE_WORKER}[interceptors]\n");
    let (config_a, a, api_a) = redis.keyed_node(&base, "a", "");
    let (config_b, b, api_b) = redis.keyed_node(&base, "b", "");
    let (port_camera, port_viewer) = (free_port(), free_port());
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));

    // A camera on A whose encoder makes a keyframe only when asked (and its first frame), running before anyone
    // subscribes.
    api_a.session("s").expect("session");
    api_a.create_endpoint(endpoint("s", "cam", at(port_camera))).expect("camera");
    api_a.create_stream(video_stream("s", "v", "cam", SSRC)).expect("stream on a");
    let encode = "videotestsrc num-buffers=900 is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
                  ! vp8enc deadline=1 target-bitrate=300000 keyframe-max-dist=10000";
    let mut camera =
        Pipeline::start("camera", dir.path(), &vp8_publisher(a.media[0], port_camera, SSRC, 1200, encode, ""));
    camera.wait_playing();
    let ingress = || {
        let request = v1::GetStreamStatsRequest { session_id: "s".into(), stream_id: "v".into() };
        api_a.get_stream_stats(request).ok().and_then(|s| s.ingress).map_or(0, |i| i.packets)
    };
    assert!(wait_until(MEDIA_TIMEOUT, || ingress() >= 60), "a receives the camera: {}", camera.output());

    // A viewer on B joins: B relays the stream from A and asks for a keyframe, which must come from the camera's
    // encoder through A (nothing else makes one for 10 000 frames).
    let decode = "rtpvp8depay ! vp8dec ! fakesink name=frames silent=false sync=false";
    let mut viewer =
        Pipeline::start("viewer", dir.path(), &vp8_subscriber(b.media[0], port_viewer, "latency=100", decode));
    viewer.wait_playing();
    assert!(wait_until(WAIT, || locate_on(&api_b).is_some()), "b locates v");
    api_b.create_endpoint(endpoint("s", "viewer", at(port_viewer))).expect("viewer");
    let subscribed = Instant::now();
    api_b.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on b");
    let first = wait_until(MEDIA_TIMEOUT, || decoded(&viewer.output()) >= 1);
    let first_after = subscribed.elapsed();
    assert!(first, "the viewer on b decoded nothing:\n{}", viewer.output());
    assert!(wait_until(MEDIA_TIMEOUT, || decoded(&viewer.output()) >= 90), "{}", viewer.output());
    let lost = || {
        let output = viewer.output();
        newest_source(&output, Some(SSRC), "is-validated", "true").map(|s| number(&s, "packets-lost"))
    };
    assert!(wait_until(MEDIA_TIMEOUT, || lost().is_some()), "the viewer's rtpsession reports on the stream");
    println!(
        "viewer on b: first frame decoded {first_after:?} after the subscription, {} frames, packets-lost={:?}",
        decoded(&viewer.output()),
        lost()
    );
    assert!(lost().is_some_and(|lost| lost <= 0), "the viewer counts lost packets: {:?}", lost());
    assert!(first_after < Duration::from_secs(3), "the keyframe took {first_after:?}");
    // On A: the keyframe request came in from the leg and went to the camera; the leg's own statistics show its
    // packets, and its loss and round-trip time from B's receiver reports.
    let stats = || {
        let request = v1::GetStreamStatsRequest { session_id: "s".into(), stream_id: "v".into() };
        api_a.get_stream_stats(request).expect("stats on a")
    };
    let ingress = stats().ingress.expect("ingress stats");
    assert!(ingress.plis_received >= 1 && ingress.keyframe_requests_sent >= 1, "{ingress:?}");
    let leg =
        || stats().subscriptions.into_iter().find(|s| s.subscription_id.starts_with("~b.")).and_then(|s| s.egress);
    assert!(wait_until(MEDIA_TIMEOUT, || leg().is_some_and(|l| l.rtt_us > 0)), "the leg's rtt: {:?}", leg());
    let leg = leg().expect("the leg's stats");
    println!("leg a -> b: packets={} lost={} rtt_us={}", leg.packets, leg.lost, leg.rtt_us);
    assert!(leg.packets > 0 && leg.lost <= 0, "{leg:?}");
    // The same through `ringfwd ctl node relays`: A's leg to B, B's stream from A feeding one subscription.
    let relays = |daemon: &Daemon, config: &KeyedConfig| {
        parse_json(&ctl_ok(daemon, &config.mint("read", "10m"), &["--json", "node", "relays"]))
    };
    let on_a = relays(&a, &config_a);
    let out = &on_a["legs"][0];
    assert_eq!((out["nodeId"].as_str(), out["streamId"].as_str()), (Some("b"), Some("v")), "{on_a}");
    assert!(out["egress"]["packets"].as_str().is_some_and(|p| p != "0"), "{on_a}");
    assert!(on_a["relayed"].as_array().is_none_or(Vec::is_empty), "{on_a}");
    let on_b = relays(&b, &config_b);
    let incoming = &on_b["relayed"][0];
    assert_eq!((incoming["nodeId"].as_str(), incoming["subscriptions"].as_u64()), (Some("a"), Some(1)), "{on_b}");
    let table = ctl_ok(&a, &config_a.mint("read", "10m"), &["node", "relays"]);
    assert!(table.contains("to b") && table.contains("~b."), "{table}");

    for pipeline in [&mut camera, &mut viewer] {
        pipeline.stop();
    }
    for daemon in [a, b] {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}

fn locate_on(api: &Api) -> Option<v1::StreamLocation> {
    api.locate_stream(v1::LocateStreamRequest { session_id: "s".into(), stream_id: "v".into() }).ok()
}

#[test]
fn a_node_that_cannot_reach_the_origin_gets_the_stream_through_another_node() {
    if !ensure_redis() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    let (_, a, api_a) = redis.keyed_node(ONE_WORKER, "a", "");
    let (_, b, api_b) = redis.keyed_node(ONE_WORKER, "b", "");
    // C may not reach A (a firewall between them, as its config says): A's streams reach it through B.
    let (_, c, api_c) = redis.keyed_node(ONE_WORKER, "c", "unreachable_nodes = [\"a\"]\n");

    let (camera, viewer) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    publish(&api_a, camera.addr());
    assert!(wait_until(WAIT, || locate_on(&api_c).is_some()), "c locates v");

    // C's subscription: B relays A's stream (one leg a -> b), C relays B's copy (one leg b -> c).
    api_c.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer on c");
    api_c.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on c through b");
    assert_eq!(stream(&api_c, "v").expect("v relayed on c").endpoint_id, "~b", "c gets v from b");
    assert_eq!(stream(&api_b, "v").expect("v relayed on b").endpoint_id, "~a", "b gets v from a");
    let legs = |api: &Api| subscriptions(api).into_iter().map(|s| s.endpoint_id).collect::<Vec<_>>();
    assert_eq!((legs(&api_a), legs(&api_b)), (vec!["~b".to_owned()], vec!["~c".to_owned()]));

    // Data over two hops, byte for byte; a PLI from C's viewer reaches the camera on A through B.
    let sent = send_media(&camera, a.media[0], 7000);
    assert_eq!(viewer.recv_rtp(sent.len(), WAIT), sent, "relayed a -> b -> c byte for byte");
    viewer.send(&pli(0x0bad_cafe, SSRC), c.media[0]);
    let reached = wait_until(WAIT, || camera.drain(Duration::from_millis(50)).iter().any(|p| holds_pli(p, SSRC)));
    assert!(reached, "the camera on a got the PLI sent on c");

    // Cancel travels up: C's last subscription gone, C's copy, B's leg to C, B's copy and A's leg to B all go.
    let request = v1::DeleteSubscriptionRequest { session_id: "s".into(), subscription_id: "w".into() };
    api_c.delete_subscription(request).expect("delete on c");
    assert!(wait_until(WAIT, || gone(&api_c, "v") && gone(&api_b, "v")), "the copies left c and b");
    assert!(wait_until(WAIT, || subscriptions(&api_a).is_empty() && subscriptions(&api_b).is_empty()));
    let relay_endpoints = |api: &Api| endpoint_ids(api).into_iter().filter(|e| e.starts_with('~')).count();
    assert!(wait_until(WAIT, || [&api_a, &api_b, &api_c].iter().all(|api| relay_endpoints(api) == 0)));

    // Finish travels down: subscribed again, the stream deleted on A: B's copy, then C's with its subscription go.
    api_c.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscribe again on c");
    api_a.delete_stream(v1::DeleteStreamRequest { session_id: "s".into(), stream_id: "v".into() }).expect("delete v");
    assert!(wait_until(WAIT, || gone(&api_b, "v") && gone(&api_c, "v")), "finish reached c through b");
    assert!(wait_until(WAIT, || subscriptions(&api_c).is_empty()), "{:?}", subscriptions(&api_c));
    let none_left = || [&api_a, &api_b, &api_c].iter().all(|api| relay_endpoints(api) == 0);
    assert!(wait_until(WAIT, none_left), "{:?}", [endpoint_ids(&api_a), endpoint_ids(&api_b), endpoint_ids(&api_c)]);

    for daemon in [a, b, c] {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}

#[test]
fn a_nack_is_answered_by_the_nearest_cache_and_passed_upstream_when_it_misses() {
    if !ensure_redis() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    // The default chains: a NACK cache on A's stream and on B's relayed copy.
    let base = format!("{ONE_WORKER}[interceptors]\n");
    let (_, a, api_a) = redis.keyed_node(&base, "a", "");
    let (_, b, api_b) = redis.keyed_node(&base, "b", "");
    let (camera, viewer) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    publish(&api_a, camera.addr());
    assert!(wait_until(WAIT, || locate_on(&api_b).is_some()), "b locates v");
    api_b.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer");
    api_b.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on b");

    // The camera's packet 110 never reaches A (nor, so, B).
    let packets: Vec<Vec<u8>> =
        (100..120u16).map(|seq| rtp_packet(SSRC, seq, 3000 * u32::from(seq), 96, false, &[seq as u8; 100])).collect();
    for packet in packets.iter().filter(|p| u16::from_be_bytes([p[2], p[3]]) != 110) {
        camera.send(packet, a.media[0]);
    }
    assert_eq!(viewer.recv_rtp(19, WAIT).len(), 19, "the viewer got all but 110");

    // 105, which B holds, is answered by B's cache.
    viewer.send(&rtcp_generic_nack(0x0b0b_0b0b, SSRC, &[105]), b.media[0]);
    let resent = viewer.recv_rtp(1, WAIT);
    assert_eq!(resent, [packets[5].clone()], "b's cache resent 105");
    let stats = |api: &Api| {
        let request = v1::GetStreamStatsRequest { session_id: "s".into(), stream_id: "v".into() };
        api.get_stream_stats(request).expect("stats")
    };
    let retransmitted_on_b = || stats(&api_b).ingress.map_or(0, |i| i.retransmitted);
    assert!(wait_until(WAIT, || retransmitted_on_b() >= 1), "b counts its retransmission");

    // 110, which neither holds, is asked for from B to A and from A to the camera.
    viewer.send(&rtcp_generic_nack(0x0b0b_0b0b, SSRC, &[110]), b.media[0]);
    let asked = wait_until(WAIT, || {
        camera.drain(Duration::from_millis(50)).iter().any(|p| rtcp_generic_nack_seqs(p).contains(&110))
    });
    assert!(asked, "the camera on a was asked for 110");
    let leg_nacks = || {
        let leg = stats(&api_a).subscriptions.into_iter().find(|s| s.subscription_id.starts_with("~b."));
        leg.and_then(|l| l.egress).map_or(0, |e| e.nack_items_received)
    };
    assert!(wait_until(WAIT, || leg_nacks() >= 1), "a's leg to b got b's NACK: {}", leg_nacks());
    // The camera resends 110: it reaches the viewer on B.
    camera.send(&packets[10], a.media[0]);
    assert_eq!(viewer.recv_rtp(1, WAIT), [packets[10].clone()], "110 reached the viewer");

    for daemon in [a, b] {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}

#[test]
fn with_finish_inactive_streams_a_silent_origin_finishes_its_relays() {
    if !ensure_redis() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    let quick = format!("{ONE_WORKER}[telemetry]\ninactive_after_ms = 300\n");
    let (_config_a, a, api_a) = redis.keyed_node(&quick, "a", "finish_inactive_streams = true\n");
    let (_config_b, b, api_b) = redis.keyed_node(ONE_WORKER, "b", "");
    let (camera, viewer) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    publish(&api_a, camera.addr());
    assert!(wait_until(WAIT, || locate_on(&api_b).is_some()), "b locates v");
    api_b.create_endpoint(endpoint("s", "viewer", viewer.addr())).expect("viewer on b");
    api_b.create_subscription(subscription("s", "w", "v", "viewer", 0)).expect("subscription on b");
    let sent = send_media(&camera, a.media[0], 1);
    assert_eq!(viewer.recv_rtp(sent.len(), MEDIA_TIMEOUT), sent, "relayed while the camera sends");

    // The camera falls silent: after 300 ms A's stream is inactive, its leg goes, and Finish reaches B, which deletes
    // its copy with the viewer's subscription; the stream itself stays on A.
    assert!(wait_until(WAIT, || gone(&api_b, "v")), "b's copy finished: {:?}", stream(&api_b, "v"));
    assert!(subscriptions(&api_b).is_empty(), "and the subscription to it");
    assert!(subscriptions(&api_a).is_empty(), "a's leg is gone");
    assert!(stream(&api_a, "v").is_ok(), "the stream stays on a");
    let unpublished = api_b.wait_event("s", WAIT, |kind| match kind {
        v1::event::Kind::StreamUnpublished(s) => Some(s.stream_id.clone()),
        _ => None,
    });
    assert_eq!(unpublished.as_deref(), Some("v"), "b tells its watchers");

    // B has not the key: a stream of its own relayed to A lives on through a silence.
    let other = Peer::bind("127.0.0.1");
    api_b.create_endpoint(endpoint("s", "cam2", other.addr())).expect("a camera on b");
    api_b.create_stream(video_stream("s", "v2", "cam2", SSRC + 1)).expect("v2 on b");
    let located = || api_a.locate_stream(v1::LocateStreamRequest { session_id: "s".into(), stream_id: "v2".into() });
    assert!(wait_until(WAIT, || located().is_ok()), "a locates v2");
    let watcher = Peer::bind("127.0.0.1");
    api_a.create_endpoint(endpoint("s", "watcher", watcher.addr())).expect("a watcher on a");
    api_a.create_subscription(subscription("s", "w2", "v2", "watcher", 0)).expect("a subscribes to v2");
    other.send(&rtp_packet(SSRC + 1, 1, 0, 96, false, &[7; 40]), b.media[0]);
    assert_eq!(watcher.recv_rtp(1, MEDIA_TIMEOUT).len(), 1, "v2 relayed to a");
    assert!(
        api_b
            .wait_event("s", WAIT, |kind| match kind {
                v1::event::Kind::StreamInactive(s) if s.stream_id == "v2" => Some(()),
                _ => None,
            })
            .is_some(),
        "v2 went inactive on b"
    );
    other.send(&rtp_packet(SSRC + 1, 2, 3000, 96, false, &[8; 40]), b.media[0]);
    assert_eq!(watcher.recv_rtp(1, MEDIA_TIMEOUT).len(), 1, "the relay to a lives on through the silence");
    for daemon in [a, b] {
        let exit = daemon.stop();
        assert!(exit.success, "{}", exit.stderr);
    }
}
