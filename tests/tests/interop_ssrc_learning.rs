//! A stream declared without an SSRC (as SIP signalling gives it: an address and payload types, no `a=ssrc`)
//! learns its publisher's SSRC and follows a restart, observed by a GStreamer subscriber that keeps decoding.
//!
//! What it proves, and how it is observed:
//! - A GStreamer `rtpbin` publisher sends VP8 with an SSRC nobody told ringfwd; the stream adopts it (a
//!   `stream_ssrc_changed` event with previous SSRC 0, GetStream shows it) and the subscriber's decoder outputs
//!   frames.
//! - The publisher restarts from the same port with another SSRC and its own numbering (a user agent restarting);
//!   the stream follows (`stream_ssrc_changed` naming both SSRCs) and the subscriber, which keeps seeing one SSRC
//!   with continuous sequence numbers, decodes the new frames too.
//!
//! Loopback only; every pipeline is bounded in buffers and time and killed on every exit path.

use std::net::SocketAddr;
use std::time::Duration;

use ringfwd_tests::api::{endpoint, subscription, v1, video_stream, wait_until, Api};
use ringfwd_tests::gst::{ensure_gstreamer, frames_printed, free_port, vp8_publisher, vp8_subscriber, Pipeline};
use ringfwd_tests::Daemon;

const SESSION: &str = "learn";
const FIRST_SSRC: u32 = 0x1357_9bdf;
const SECOND_SSRC: u32 = 0x2468_ace0;
/// Frames the subscriber must decode from each of the publisher's runs.
const FRAMES_PER_RUN: usize = 30;
const WAIT: Duration = Duration::from_secs(30);

/// The publisher: VP8 with `ssrc` (one keyframe a second), for at most 20 s.
fn publisher(media: SocketAddr, port: u16, ssrc: u32) -> Vec<String> {
    let encode =
        "videotestsrc num-buffers=600 is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
                  ! vp8enc deadline=1 target-bitrate=300000 keyframe-max-dist=30";
    vp8_publisher(media, port, ssrc, 1200, encode, "")
}

/// The subscriber: decoded, one line per frame.
fn subscriber(media: SocketAddr, port: u16) -> Vec<String> {
    vp8_subscriber(media, port, "latency=200", "rtpvp8depay ! vp8dec ! fakesink name=frames silent=false sync=false")
}

/// The `stream_ssrc_changed` event that took `ssrc`, if one came within `WAIT`.
fn ssrc_changed(api: &Api, ssrc: u32) -> Option<v1::StreamSsrcChanged> {
    api.wait_event(SESSION, WAIT, |kind| match kind {
        v1::event::Kind::StreamSsrcChanged(c) if c.ssrc == ssrc => Some(c.clone()),
        _ => None,
    })
}

#[test]
fn a_stream_without_an_ssrc_learns_it_and_follows_a_restarted_publisher() {
    if !ensure_gstreamer() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon =
        Daemon::start("[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[interceptors]\n");
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    let (pub_port, sub_port) = (free_port(), free_port());
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "phone", at(pub_port))).expect("CreateEndpoint phone");
    api.create_endpoint(endpoint(SESSION, "viewer", at(sub_port))).expect("CreateEndpoint viewer");
    // As SIP gives it: the address and the payload types, no SSRC.
    let cam = api.create_stream(video_stream(SESSION, "cam", "phone", 0)).expect("CreateStream without SSRC");
    assert_eq!((cam.ssrc, cam.learns_ssrc), (0, true));
    api.create_subscription(subscription(SESSION, "view", "cam", "viewer", 0)).expect("CreateSubscription");

    let mut viewer = Pipeline::start("viewer", dir.path(), &subscriber(media, sub_port));
    viewer.wait_playing();
    let mut first = Pipeline::start("first", dir.path(), &publisher(media, pub_port, FIRST_SSRC));
    first.wait_playing();
    let adopted = ssrc_changed(&api, FIRST_SSRC).expect("the stream adopted the publisher's SSRC");
    assert_eq!((adopted.stream_id.as_str(), adopted.previous_ssrc), ("cam", 0));
    let decoding = wait_until(WAIT, || frames_printed(&viewer.output()) >= FRAMES_PER_RUN);
    assert!(decoding, "the viewer decoded nothing of the first run:\n{}", viewer.output());
    let get = || api.get_stream(v1::GetStreamRequest { session_id: SESSION.into(), stream_id: "cam".into() });
    assert_eq!(get().expect("GetStream").ssrc, FIRST_SSRC);
    first.stop();

    // The user agent restarts from the same port with another SSRC.
    let before = frames_printed(&viewer.output());
    let mut second = Pipeline::start("second", dir.path(), &publisher(media, pub_port, SECOND_SSRC));
    second.wait_playing();
    let followed = ssrc_changed(&api, SECOND_SSRC).expect("the stream followed the new SSRC");
    assert_eq!(followed.previous_ssrc, FIRST_SSRC);
    let more = wait_until(WAIT, || frames_printed(&viewer.output()) >= before + FRAMES_PER_RUN);
    let after = frames_printed(&viewer.output());
    println!("viewer: {before} frames from the first run, {} from the second", after - before);
    assert!(more, "the viewer decoded {} frames of the second run:\n{}", after - before, viewer.output());
    let stream = get().expect("GetStream");
    assert_eq!(stream.ssrc, SECOND_SSRC);
    let sub = api
        .get_subscription(v1::GetSubscriptionRequest { session_id: SESSION.into(), subscription_id: "view".into() })
        .expect("GetSubscription");
    assert_eq!(sub.out_ssrc, FIRST_SSRC, "the viewer keeps seeing the SSRC it saw");

    second.stop();
    viewer.stop();
    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}
