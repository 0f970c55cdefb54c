//! An upgrade observed by GStreamer: an `rtpbin` publisher sends VP8 through ringfwd to an `rtpbin` subscriber that
//! decodes it, and midway a second `ringfwd --take-over` takes over from the first.
//!
//! What it proves, and how it is observed: the subscriber's decoder outputs every frame the publisher encoded (its
//! depayloader drops a frame with a missing packet), and its `rtpsession` counts no packet lost for the out SSRC —
//! across the takeover, with ringfwd's default interceptor chains (sender reports included) on both daemons.
//!
//! Loopback only; every pipeline is bounded in buffers and time and killed on every exit path.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ringfwd_tests::api::{endpoint, subscription, video_stream, wait_until, Api};
use ringfwd_tests::gst::{
    ensure_gstreamer, frames_printed, free_port, newest_source, number, vp8_publisher, vp8_subscriber, Pipeline,
};
use ringfwd_tests::Daemon;

const SESSION: &str = "upgrade";
const SSRC: u32 = 0x5151_0001;
const OUT_SSRC: u32 = 0x5151_0002;
/// Frames the publisher encodes: 5 s at 30 fps.
const FRAMES: usize = 150;
/// Frames the subscriber must have decoded before the takeover.
const FRAMES_BEFORE: usize = 40;
const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);

fn start(dir: &Path, name: &'static str, description: Vec<String>) -> Pipeline {
    let mut pipeline = Pipeline::start(name, dir, &description);
    pipeline.wait_playing();
    pipeline
}

#[test]
fn a_gstreamer_subscriber_decodes_every_frame_across_a_takeover() {
    if !ensure_gstreamer() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // The default interceptor chains: an `[interceptors]` table without keys.
    let config = "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[interceptors]\n";
    let old = Daemon::start(config);
    let media = old.media[0];
    let api = Api::dev(&old);
    let (port_pub, port_sub) = (free_port(), free_port());
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "camera", at(port_pub))).expect("camera");
    api.create_endpoint(endpoint(SESSION, "viewer", at(port_sub))).expect("viewer");
    api.create_stream(video_stream(SESSION, "cam", "camera", SSRC)).expect("CreateStream");
    api.create_subscription(subscription(SESSION, "view", "cam", "viewer", OUT_SSRC)).expect("CreateSubscription");
    drop(api);

    let decode = "rtpvp8depay ! vp8dec ! fakesink name=frames silent=false sync=false";
    let mut viewer = start(dir.path(), "viewer", vp8_subscriber(media, port_sub, "latency=200", decode));
    let encode = format!(
        "videotestsrc num-buffers={FRAMES} is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc deadline=1 target-bitrate=400000"
    );
    let mut camera = start(dir.path(), "camera", vp8_publisher(media, port_pub, SSRC, 1200, &encode, ""));
    let running = wait_until(MEDIA_TIMEOUT, || frames_printed(&viewer.output()) >= FRAMES_BEFORE);
    assert!(running, "the viewer decoded nothing:\n{}", viewer.output());

    let (new, old_exit) = old.take_over(config);
    assert!(old_exit.success, "the old daemon exits cleanly: {}", old_exit.stderr);
    let decoded_at_takeover = frames_printed(&viewer.output());
    let all = wait_until(MEDIA_TIMEOUT, || frames_printed(&viewer.output()) >= FRAMES);
    let decoded = frames_printed(&viewer.output());
    // Each `rtpsession` prints its stats when it sends RTCP, so a newest print may lag. The camera's last print is
    // its BYE's, once its pipeline reached EOS after the last frame: that count is final. The viewer prints again
    // when it receives that BYE (ringfwd forwards it), and its newest count must then reach the camera's.
    let camera_done = wait_until(MEDIA_TIMEOUT, || camera.output().contains("Got EOS from element \"pipeline0\""));
    assert!(camera_done, "the camera's pipeline did not reach EOS:\n{}", camera.output());
    let camera_output = camera.output();
    let sent = newest_source(&camera_output, Some(SSRC), "is-sender", "true").expect("the camera's stats");
    let sent = number(&sent, "packets-sent");
    let viewer_counts = || {
        let source = newest_source(&viewer.output(), Some(OUT_SSRC), "is-validated", "true")?;
        Some((number(&source, "packets-received"), number(&source, "packets-lost")))
    };
    wait_until(MEDIA_TIMEOUT, || viewer_counts().is_some_and(|(received, _)| received >= sent));
    let (received, lost) = viewer_counts().expect("the out SSRC's stats");
    println!(
        "viewer: {decoded} of {FRAMES} frames decoded ({decoded_at_takeover} before the takeover); rtpsession: \
         packets-received={received} packets-lost={lost}; camera: packets-sent={sent}"
    );
    assert!(all, "the viewer decoded {decoded} of {FRAMES} frames:\n{}", camera.output());
    assert_eq!(received, sent, "the viewer received every packet the camera sent");
    // GStreamer counts an uninterrupted stream as -1 lost here (measured without a takeover too): not above it.
    assert!(lost <= 0, "the viewer's rtpsession counts {lost} lost packets");
    for pipeline in [&mut camera, &mut viewer] {
        pipeline.stop();
    }
    let exit = new.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}
