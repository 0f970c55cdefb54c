//! A plugin that rewrites every packet and changes its length, against GStreamer: the C example
//! `plugins/examples/red.c` (RFC 2198 RED with one redundant block), loaded from the config by the plain `ringfwd`
//! binary, on a stream GStreamer publishes as Opus.
//!
//! The publisher's pipeline also feeds the same RTP packets to GStreamer's own RED encoder (`rtpredenc distance=1`),
//! whose output is the reference: every packet a plain subscriber receives from ringfwd is byte for byte the
//! reference's (header fields as the subscription rewrites them: here none). A second subscriber is a GStreamer
//! receiver behind a relay that drops every 7th RTP packet: `rtpreddec` rebuilds each lost packet from the next
//! one's redundant block, and `opusdec` decodes every frame the publisher sent.

use std::net::SocketAddr;
use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, subscription, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::gst::{ensure_gstreamer, frames_printed, free_port, words, Pipeline};
use ringfwd_tests::peer::{rtp_fields, Peer};
use ringfwd_tests::relay::RtcpTap;

const SSRC: u32 = 0x0EED_0001;
const OPUS_PT: u8 = 111;
const RED_PT: u8 = 100;
/// 20 ms Opus frames: 3 s of audio.
const FRAMES: usize = 150;
const DROP_EVERY: usize = 7;

#[test]
fn the_c_red_plugin_wraps_opus_exactly_as_gstreamer_does_and_gstreamer_recovers_losses_from_it() {
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    if !ensure_gstreamer() {
        return;
    }
    let red = modules.path().join("red.wasm");
    let config = format!(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[[plugins]]\nname = \"red\"\npath = \
         \"{}\"\nchains = [\"ingress\"]\n[plugins.params]\nred_pt = \"{RED_PT}\"\n[interceptors]\ningress = \
         [\"red\"]\negress = []\n",
        red.display()
    );
    let daemon = Daemon::start(&config);
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let dir = tempfile::tempdir().expect("a directory for the pipelines' output");

    // The GStreamer receiver, behind a relay that loses every 7th RTP packet on its way.
    let receiver_port = free_port();
    let mut receiver = Pipeline::start(
        "receiver",
        dir.path(),
        &words(&format!(
            "udpsrc address=127.0.0.1 port={receiver_port} \
               caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload={RED_PT} \
             ! rtpjitterbuffer latency=300 ! rtpreddec pt={RED_PT} ! rtpopusdepay ! opusdec \
             ! fakesink name=frames silent=false sync=false"
        )),
    );
    receiver.wait_playing();
    let lossy = RtcpTap::start_lossy(media, SocketAddr::from(([127, 0, 0, 1], receiver_port)), Some(DROP_EVERY));
    let plain = Peer::bind("127.0.0.1");
    let reference = Peer::bind("127.0.0.1");

    let publisher_port = free_port();
    let publisher_addr = SocketAddr::from(([127, 0, 0, 1], publisher_port));
    api.create_endpoint(endpoint("s", "pub", publisher_addr)).expect("publisher");
    let stream = v1::CreateStreamRequest {
        session_id: "s".into(),
        stream_id: "opus".into(),
        endpoint_id: "pub".into(),
        ssrc: SSRC,
        kind: v1::MediaKind::Audio.into(),
        payload_types: vec![u32::from(OPUS_PT)],
        clock_rate_hz: 48_000,
        metadata: Vec::new(),
        interceptors: None,
    };
    api.create_stream(stream).expect("stream");
    for (id, addr) in [("plain", plain.addr()), ("gst", lossy.addr())] {
        api.create_endpoint(endpoint("s", id, addr)).expect("subscriber");
        api.create_subscription(subscription("s", id, "opus", id, 0)).expect("subscription");
    }

    let mut publisher = Pipeline::start(
        "publisher",
        dir.path(),
        &words(&format!(
            "audiotestsrc is-live=true num-buffers={FRAMES} samplesperbuffer=960 wave=sine \
             ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 ! rtpopuspay pt={OPUS_PT} ssrc={SSRC} \
             ! tee name=t \
             t. ! queue ! udpsink host={ip} port={port} bind-port={publisher_port} sync=false async=false \
             t. ! queue ! rtpredenc pt={RED_PT} distance=1 allow-no-red-blocks=true \
                ! udpsink host=127.0.0.1 port={reference_port} sync=false async=false",
            ip = media.ip(),
            port = media.port(),
            reference_port = reference.addr().port(),
        )),
    );
    let expected = reference.recv(FRAMES, Duration::from_secs(15));
    let mut expected_all = expected.clone();
    expected_all.extend(reference.drain(Duration::from_millis(500)));
    assert!(publisher.stop() || publisher.exited().is_some(), "the publisher ended");
    let got = {
        let mut got = plain.recv(expected_all.len(), Duration::from_secs(5));
        got.extend(plain.drain(Duration::from_millis(300)));
        got
    };
    assert!(expected_all.len() >= FRAMES, "GStreamer's RED encoder made {} packets", expected_all.len());
    assert_eq!(got.len(), expected_all.len(), "the plain subscriber received every packet, and no other");
    let mut redundant = 0;
    for (index, (ours, theirs)) in got.iter().zip(&expected_all).enumerate() {
        assert!(ours == theirs, "packet {index} differs:\n ringfwd   {ours:02x?}\n GStreamer {theirs:02x?}");
        let fields = rtp_fields(ours);
        assert_eq!(fields.payload_type, RED_PT);
        if ours.get(12).is_some_and(|first| first & 0x80 != 0) {
            redundant += 1;
        }
    }
    assert_eq!(redundant, got.len() - 1, "every packet but the first carries its predecessor");

    // Every frame decoded, though the relay lost every 7th packet on the way.
    let lost = got.len() / DROP_EVERY;
    assert!(lost >= 20, "the relay dropped {lost} packets");
    let mut decoded = 0;
    ringfwd_tests::api::wait_until(Duration::from_secs(5), || {
        decoded = frames_printed(&receiver.output());
        decoded >= got.len()
    });
    receiver.stop();
    let output = receiver.output();
    let decoded = frames_printed(&output);
    // A frame opusdec made up for a gap (no packet to decode) would be flagged gap: none may be.
    let concealed = output.lines().filter(|l| l.contains("frames: last-message = chain") && l.contains(" gap")).count();
    assert_eq!(concealed, 0, "frames concealed instead of recovered");
    let tail = &output[output.len().saturating_sub(3000)..];
    assert_eq!(
        decoded,
        got.len(),
        "GStreamer decoded {decoded} of {} frames, {lost} lost on the way:\n{tail}",
        got.len()
    );
    drop(lossy);

    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.total("rewritten_by_plugin"), got.len() as u64, "each packet rewritten once, on ingress");
    assert_eq!(exit.total("forwarded_packets"), 2 * got.len() as u64);
    assert_eq!(exit.total("plugin_failures"), 0);
}
