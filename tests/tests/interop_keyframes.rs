//! A video subscriber that starts receiving mid-way gets a keyframe at once, observed by GStreamer: two
//! `rtpbin` publishers encode VP8 with a keyframe only every 10 000 frames (so none comes by itself during the
//! test), and a third `rtpbin` subscribes to the first through ringfwd and is switched to the second.
//!
//! What it proves, and how it is observed:
//! - The switch makes ringfwd ask the new stream's publisher for a keyframe (a PLI through the stream's keyframe
//!   throttle), the publisher's `rtpsession` turns it into a force-key-unit event for its encoder, and the
//!   subscriber's depayloader outputs a keyframe (a buffer without the `delta-unit` flag, printed by `fakesink
//!   silent=false`) within the throttle interval plus the encoder's latency of the switch returning.
//! - The subscriber's sequence numbers stay continuous across the switch, so nothing else would make its decoder
//!   notice the change: without the request it would go on decoding the new stream's delta frames on the old
//!   picture until the publisher's next natural keyframe (here: minutes).
//! - A paused subscription asks for nothing; its resume asks again (`keyframe_requests` counter).
//!
//! Loopback only; every pipeline is bounded in buffers and time and killed on every exit path.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ringfwd_tests::api::{endpoint, subscription, video_stream, wait_until, worker_total, Api};
use ringfwd_tests::gst::{ensure_gstreamer, free_port, vp8_publisher, vp8_subscriber, Pipeline};
use ringfwd_tests::Daemon;

const SESSION: &str = "switch";
const SSRC_A: u32 = 0x0a0a_0001;
const SSRC_B: u32 = 0x0b0b_0002;
/// The SSRC the subscriber sees, whichever stream it receives.
const OUT_SSRC: u32 = 0x0c0c_0003;
/// The keyframe throttle's interval in the test's config (its default).
const THROTTLE: Duration = Duration::from_millis(500);
/// What the encoder, both pipelines and the loopback may add to a keyframe's arrival after it was asked for.
const PIPELINE_SLACK: Duration = Duration::from_millis(700);
/// Frames the subscriber must have received before the test switches (a running stream).
const FRAMES_BEFORE: usize = 30;
/// How long the subscriber may take to receive them.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);

/// A publisher: VP8 at 30 fps with keyframes only every 10 000 frames (the first one, and those it is asked for).
fn publisher(media: SocketAddr, port: u16, ssrc: u32, pattern: &str) -> Vec<String> {
    let encode = format!(
        "videotestsrc num-buffers=1800 is-live=true pattern={pattern} ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc deadline=1 target-bitrate=300000 keyframe-max-dist=10000"
    );
    vp8_publisher(media, port, ssrc, 1200, &encode, "")
}

/// The subscriber: the VP8 depayloader and a sink printing every frame with its flags (no decoder: nothing but
/// ringfwd asks the publisher for keyframes).
fn subscriber(media: SocketAddr, port: u16) -> Vec<String> {
    vp8_subscriber(media, port, "latency=100", "rtpvp8depay ! fakesink name=frames silent=false sync=false")
}

/// Frames the subscriber's sink printed, and how many of them are keyframes.
fn frames(output: &str) -> (usize, usize) {
    let frames: Vec<&str> = output.lines().filter(|l| l.contains("frames: last-message = chain")).collect();
    let keyframes = frames.iter().filter(|l| !l.contains("delta-unit")).count();
    (frames.len(), keyframes)
}

fn start(dir: &Path, name: &'static str, description: Vec<String>) -> Pipeline {
    let mut pipeline = Pipeline::start(name, dir, &description);
    pipeline.wait_playing();
    pipeline
}

#[test]
fn a_switched_video_subscriber_gets_a_keyframe_at_once() {
    if !ensure_gstreamer() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // The default interceptor chains (stats, keyframe_throttle, nack_cache, receiver_reports / stats, sender_reports):
    // an `[interceptors]` table without keys (without one, the test harness turns them off).
    let daemon =
        Daemon::start("[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[interceptors]\n");
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    let (port_a, port_b, port_sub) = (free_port(), free_port(), free_port());
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));

    api.session(SESSION).expect("CreateSession");
    for (id, port) in [("pub-a", port_a), ("pub-b", port_b), ("viewer", port_sub)] {
        api.create_endpoint(endpoint(SESSION, id, at(port))).expect("CreateEndpoint");
    }
    let cam_a = api.create_stream(video_stream(SESSION, "cam-a", "pub-a", SSRC_A)).expect("CreateStream a");
    assert!(cam_a.interceptors.iter().any(|name| name == "keyframe_throttle"), "the default chain");
    api.create_stream(video_stream(SESSION, "cam-b", "pub-b", SSRC_B)).expect("CreateStream b");
    api.create_subscription(subscription(SESSION, "view", "cam-a", "viewer", OUT_SSRC)).expect("CreateSubscription");

    let mut viewer = start(dir.path(), "viewer", subscriber(media, port_sub));
    let mut pub_a = start(dir.path(), "pub-a", publisher(media, port_a, SSRC_A, "smpte"));
    let mut pub_b = start(dir.path(), "pub-b", publisher(media, port_b, SSRC_B, "ball"));
    let running = wait_until(MEDIA_TIMEOUT, || frames(&viewer.output()).0 >= FRAMES_BEFORE);
    assert!(running, "the viewer received no stream from cam-a:\n{}", viewer.output());
    let (_, keyframes_before) = frames(&viewer.output());
    assert!(keyframes_before >= 1, "cam-a's first frame is a keyframe");

    let switched = Instant::now();
    api.switch(SESSION, "view", "cam-b").expect("switch to cam-b");
    let got_keyframe = wait_until(THROTTLE + PIPELINE_SLACK, || frames(&viewer.output()).1 > keyframes_before);
    let waited = switched.elapsed();
    let (frames_after, keyframes_after) = frames(&viewer.output());
    println!("viewer: {keyframes_after} keyframes of {frames_after} frames; keyframe {waited:?} after the switch");
    assert!(got_keyframe, "no keyframe within {:?} of the switch:\n{}", THROTTLE + PIPELINE_SLACK, pub_b.output());

    // Paused, nothing is asked; resumed, a keyframe comes again.
    api.set_paused(SESSION, "view", true).expect("pause");
    let requests_paused = worker_total(&api.node(), "keyframe_requests");
    api.set_paused(SESSION, "view", false).expect("resume");
    let resumed = wait_until(THROTTLE + PIPELINE_SLACK, || frames(&viewer.output()).1 > keyframes_after);
    let node = api.node();
    let requests = worker_total(&node, "keyframe_requests");
    println!("ringfwd: keyframe_requests={requests} (before the resume {requests_paused})");
    assert!(resumed, "no keyframe after the resume:\n{}", viewer.output());
    assert_eq!(requests, 3, "create, switch, resume: one request each");
    assert_eq!(worker_total(&node, "drop_malformed"), 0);

    for pipeline in [&mut pub_a, &mut pub_b, &mut viewer] {
        pipeline.stop();
    }
    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}
