//! Symmetric RTP behind NAT ("comedia"): a latching endpoint receives its media at the address it sends from,
//! and follows a NAT rebinding only by the documented rule (see `media.latch_window_ms` in the README and
//! `dataplane/src/core/table.rs`).
//!
//! - With a third-party stack: a GStreamer peer created as a latching endpoint *without* an address, and
//!   subscribed to a VP8 stream a GStreamer sender publishes, sends its own VP8 stream from port P and receives
//!   on that same port P (`udpsink bind-port=P` + `udpsrc port=P`, as `interop_gstreamer.rs` explains). Before
//!   it sends, the subscription is held (`not_sent_no_destination` counts its copies); once it sent, GetEndpoint
//!   shows `latched_address` = P, a keyframe is asked for it, and its decoder outputs frames: media is delivered
//!   to the latched address.
//! - With plain UDP sockets: a peer latched at P1 whose signalled address is wrong receives at P1 and nothing
//!   reaches the signalled address; a spoofer sending the peer's SSRC from another port while the peer is live
//!   is dropped (`drop_wrong_source`), is not forwarded and gets nothing; after the peer was silent for the
//!   window it moves to P2, and media follows it there; `ringfwd ctl endpoint get/list` print P2.
//!
//! Loopback only; every wait is bounded, and waits for an observable event rather than sleeping.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringfwd_proto::v1;
use ringfwd_tests::api::{ctl_ok, dev_token, endpoint, subscription, video_stream, wait_until, worker_total, Api};
use ringfwd_tests::gst::{ensure_gstreamer, frames_printed, free_port, words, Pipeline};
use ringfwd_tests::{rtp_packet, Daemon, Peer};

const SESSION: &str = "nat";
/// The SSRC of the stream the NATed peer receives (the other endpoint's).
const CAM_SSRC: u32 = 0x1122_3344;
/// The SSRC of the NATed peer's own stream.
const NAT_SSRC: u32 = 0x5566_7788;
/// Frames the NATed peer's decoder must output.
const MIN_FRAMES: usize = 30;
/// How long a latch or the frames may take to show.
const WAIT: Duration = Duration::from_secs(30);
/// How long to listen to make sure nothing arrives.
const QUIET: Duration = Duration::from_millis(300);
/// The latch window of the socket test: the silence after which a latched peer may move.
const WINDOW_MS: u64 = 300;

/// A latching endpoint, with `address` as its signalled (fallback) address if any.
fn latching_endpoint(id: &str, address: Option<SocketAddr>) -> v1::CreateEndpointRequest {
    let media_address = address.map(|a| a.to_string()).unwrap_or_default();
    let placeholder = ([127, 0, 0, 1], 9).into();
    v1::CreateEndpointRequest { media_address, latching: true, ..endpoint(SESSION, id, placeholder) }
}

/// The endpoint's `latched_address` as GetEndpoint shows it ("" before it latched).
fn latched(api: &Api, id: &str) -> String {
    let request = v1::GetEndpointRequest { session_id: SESSION.into(), endpoint_id: id.into() };
    api.get_endpoint(request).expect("GetEndpoint").latched_address
}

/// A live VP8 test pattern sent with `ssrc` to `media` from `port`.
fn vp8_source(ssrc: u32, media: SocketAddr, port: u16, pattern: &str) -> String {
    format!(
        "videotestsrc is-live=true num-buffers=900 pattern={pattern} \
           ! video/x-raw,width=320,height=240,framerate=30/1 \
           ! vp8enc deadline=1 target-bitrate=400000 keyframe-max-dist=15 \
           ! rtpvp8pay ssrc={ssrc} pt=96 mtu=1200 \
           ! udpsink host={ip} port={mport} bind-port={port} sync=false async=false",
        ip = media.ip(),
        mport = media.port(),
    )
}

/// The NATed peer: its own stream leaves from `port`, and what it receives on `port` is decoded frame by frame.
fn symmetric_peer(media: SocketAddr, port: u16) -> Vec<String> {
    words(&format!(
        "{} udpsrc address=127.0.0.1 port={port} \
           caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload=96 \
           ! rtpvp8depay wait-for-keyframe=true ! vp8dec ! fakesink name=frames silent=false sync=false",
        vp8_source(NAT_SSRC, media, port, "ball"),
    ))
}

#[test]
fn gstreamer_behind_nat_receives_at_the_port_it_sends_from() {
    if !ensure_gstreamer() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start("[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n");
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    let (cam_port, nat_port) = (free_port(), free_port());
    let nat_addr: SocketAddr = ([127, 0, 0, 1], nat_port).into();

    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "camera", ([127, 0, 0, 1], cam_port).into())).expect("camera");
    let nat = api.create_endpoint(latching_endpoint("natted", None)).expect("a latching endpoint, no address");
    assert_eq!((nat.media_address.as_str(), nat.latched_address.as_str()), ("", ""));
    api.create_stream(video_stream(SESSION, "cam", "camera", CAM_SSRC)).expect("cam");
    api.create_stream(video_stream(SESSION, "nat-cam", "natted", NAT_SSRC)).expect("nat-cam");
    api.create_subscription(subscription(SESSION, "cam-to-nat", "cam", "natted", 0))
        .expect("subscribing an endpoint with no address yet is allowed");

    let mut camera = Pipeline::start("camera", dir.path(), &words(&vp8_source(CAM_SSRC, media, cam_port, "smpte")));
    camera.wait_playing();
    let held = wait_until(WAIT, || worker_total(&api.node(), "not_sent_no_destination") > 0);
    assert!(held, "the camera's packets never reached the held subscription:\n{}", camera.output());
    let before = api.node();
    assert_eq!(worker_total(&before, "forwarded_packets"), 0, "nothing is sent before the peer latched");
    assert_eq!(worker_total(&before, "keyframe_requests"), 0, "a held subscription asks for no keyframe");

    let mut peer = Pipeline::start("natted", dir.path(), &symmetric_peer(media, nat_port));
    peer.wait_playing();
    let nat_addr_text = nat_addr.to_string();
    assert!(wait_until(WAIT, || latched(&api, "natted") == nat_addr_text), "GetEndpoint never showed {nat_addr}");
    let decoded = wait_until(WAIT, || frames_printed(&peer.output()) >= MIN_FRAMES);
    let node = api.node();
    let (camera_eos, peer_eos) = (camera.stop(), peer.stop());
    println!("pipelines ended by EOS: camera {camera_eos}, natted peer {peer_eos}");
    let frames = frames_printed(&peer.output());
    println!(
        "natted peer decoded {frames} frames; forwarded_packets={} not_sent_no_destination={} latched={}",
        worker_total(&node, "forwarded_packets"),
        worker_total(&node, "not_sent_no_destination"),
        worker_total(&node, "latched"),
    );
    assert!(decoded, "the natted peer decoded {frames} frames, fewer than {MIN_FRAMES}:\n{}", peer.output());
    assert_eq!(worker_total(&node, "keyframe_requests"), 1, "it asks for one when its endpoint latched");
    let listed = api.list_endpoints(v1::ListEndpointsRequest { session_id: SESSION.into() }).expect("ListEndpoints");
    let listed = listed.endpoints.iter().find(|e| e.endpoint_id == "natted").expect("listed");
    assert_eq!(listed.latched_address, nat_addr_text);

    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}

/// Sends `count` RTP packets of `ssrc` from `from`, ending with `tag`.
fn send(from: &Peer, to: SocketAddr, ssrc: u32, first_seq: u16, count: u16, tag: &[u8]) {
    for seq in first_seq..first_seq + count {
        from.send(&rtp_packet(ssrc, seq, u32::from(seq) * 3000, 96, true, tag), to);
    }
}

/// The RTP packets among `packets` (RTCP packet types are 200..=206 in the second byte).
fn rtp_only(packets: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    packets.into_iter().filter(|p| p.len() > 1 && !(200..=206).contains(&p[1])).collect()
}

/// Receives until `count` RTP packets arrived (RTCP is skipped) or [`WAIT`] passed.
fn recv_rtp(peer: &Peer, count: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < count && Instant::now() < deadline {
        got.extend(rtp_only(peer.recv(1, deadline.saturating_duration_since(Instant::now()))));
    }
    got
}

#[test]
fn a_rebound_peer_is_followed_only_after_its_old_port_went_silent() {
    let daemon = Daemon::start(&format!(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\nlatch_window_ms = {WINDOW_MS}\n"
    ));
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    let (camera, signalled, first, moved, spoofer) = (
        Peer::bind("127.0.0.1"),
        Peer::bind("127.0.0.1"),
        Peer::bind("127.0.0.1"),
        Peer::bind("127.0.0.1"),
        Peer::bind("127.0.0.1"),
    );
    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "camera", camera.addr())).expect("camera");
    api.create_endpoint(latching_endpoint("natted", Some(signalled.addr()))).expect("natted, signalled wrongly");
    api.create_stream(video_stream(SESSION, "cam", "camera", CAM_SSRC)).expect("cam");
    api.create_stream(video_stream(SESSION, "nat-cam", "natted", NAT_SSRC)).expect("nat-cam");
    api.create_subscription(subscription(SESSION, "cam-to-nat", "cam", "natted", 0)).expect("cam-to-nat");
    api.create_subscription(subscription(SESSION, "nat-to-cam", "nat-cam", "camera", 0)).expect("nat-to-cam");

    // The peer sends from behind its NAT: it latches there and receives there.
    send(&first, media, NAT_SSRC, 1, 1, b"peer");
    let first_text = first.addr().to_string();
    assert!(wait_until(WAIT, || latched(&api, "natted") == first_text), "never latched to {first_text}");
    send(&camera, media, CAM_SSRC, 1, 1, b"media-1");
    let got = recv_rtp(&first, 1);
    assert!(got.len() == 1 && got[0].ends_with(b"media-1"), "the latched address got {got:?}");

    // A spoofer with the peer's SSRC while the peer is live: dropped, not forwarded, and sent nothing.
    let wrong_before = worker_total(&api.node(), "drop_wrong_source");
    for seq in 2..12 {
        send(&first, media, NAT_SSRC, seq, 1, b"peer");
        send(&spoofer, media, NAT_SSRC, seq, 1, b"spoof");
    }
    // The camera also gets keyframe requests (the peer subscribed to it, and moved): only RTP counts here.
    let at_camera = recv_rtp(&camera, 11);
    let tails: Vec<String> = at_camera.iter().map(|p| String::from_utf8_lossy(&p[12..]).into_owned()).collect();
    assert_eq!(at_camera.len(), 11, "the peer's own packets reach its subscriber: {tails:?}");
    assert!(at_camera.iter().all(|p| p.ends_with(b"peer")), "the spoofer's packets were forwarded: {tails:?}");
    assert!(rtp_only(camera.drain(QUIET)).is_empty(), "nothing more (no spoofed packet) reaches the subscriber");
    assert!(wait_until(WAIT, || worker_total(&api.node(), "drop_wrong_source") >= wrong_before + 10));
    assert_eq!(latched(&api, "natted"), first_text, "the spoofer took the stream over");
    send(&camera, media, CAM_SSRC, 2, 1, b"media-2");
    let got = recv_rtp(&first, 1);
    assert!(got.len() == 1 && got[0].ends_with(b"media-2"), "media still goes to the peer: {got:?}");
    assert!(spoofer.drain(QUIET).is_empty(), "the spoofer received media");

    // The NAT rebinds: the peer is silent on its old port and sends from a new one; once its old port has
    // been silent for the window it re-latches there, and media follows it.
    let moved_text = moved.addr().to_string();
    let mut seq = 100;
    let relatched = wait_until(WAIT, || {
        seq += 1;
        send(&moved, media, NAT_SSRC, seq, 1, b"moved");
        latched(&api, "natted") == moved_text
    });
    assert!(relatched, "never re-latched to {moved_text}");
    let token = dev_token(&daemon);
    let shown = ctl_ok(&daemon, &token, &["endpoint", "get", SESSION, "natted"]);
    assert!(shown.contains("LATCHED ADDRESS") && shown.contains(&moved_text), "ctl endpoint get shows:\n{shown}");
    let listed = ctl_ok(&daemon, &token, &["endpoint", "list", SESSION]);
    assert!(listed.contains(&moved_text), "ctl endpoint list shows:\n{listed}");
    send(&camera, media, CAM_SSRC, 3, 1, b"media-3");
    let got = recv_rtp(&moved, 1);
    assert!(got.len() == 1 && got[0].ends_with(b"media-3"), "the new address got {got:?}");
    assert!(first.drain(QUIET).is_empty(), "the old address still receives");
    assert!(signalled.drain(QUIET).is_empty(), "media went to the signalled address");
    let exit = daemon.stop();
    assert_eq!(exit.total("latched"), 2, "one latch and one re-latch");
}
