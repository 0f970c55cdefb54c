//! Interop with peers that do not mux RTCP (SIP user agents without `a=rtcp-mux`, ffmpeg): GStreamer's `rtpbin`
//! (installed by `tests/scripts/install-gstreamer.sh` when missing) publishes VP8 with its RTP from port X and
//! its RTCP from X + 1, and another `rtpbin` receives RTP on Y and RTCP on Y + 1 and sends its RTCP from Y + 1.
//! Both endpoints are created with `rtcp_port_plus_one`, and ringfwd runs with `media.rtcp_port_plus_one`: the
//! peers send their RTCP to ringfwd's media port + 1 and get ringfwd's RTCP from there.
//!
//! What it proves, as the third-party stack observes it:
//! - The publisher's RTCP from X + 1 is accepted for its stream (ringfwd's `rx_rtcp` counts more than the
//!   subscriber's feedback, `drop_wrong_source` stays 0), and ringfwd's receiver reports reach the publisher's
//!   `rtpsession` at X + 1: a source with a report block about the publisher's SSRC (`have-rb`), whose RTCP came
//!   from ringfwd's RTCP address.
//! - ringfwd's sender reports reach the subscriber's `rtpsession` at Y + 1 (`have-sr` for the out SSRC, RTCP from
//!   ringfwd's RTCP address, RTP from its media address), and the frames are decoded.
//! - The subscriber's RTCP from Y + 1 is recognised as feedback (`rx_feedback`).
//! - `GetEndpoint` shows the effective RTCP addresses.
//!
//! Every pipeline is bounded in time and killed on every exit path; loopback only.

use std::net::SocketAddr;
use std::time::Duration;

use ringfwd_tests::api::{endpoint, subscription, v1, video_stream, wait_until, worker_total, Api};
use ringfwd_tests::gst::{ensure_gstreamer, field, frames_printed, free_port_pair, newest_source, words, Pipeline};
use ringfwd_tests::Daemon;

const SESSION: &str = "rtcp-port";
/// The publisher's SSRC, fixed in the sender's payloader.
const PUB_SSRC: u32 = 0x2233_4455;
/// The SSRC the subscriber sees.
const OUT_SSRC: u32 = 0xbbcc_ddee;
/// Frames the sender encodes: 5 s at 30 fps.
const FRAMES: u32 = 150;
/// At least this fraction of the frames must be decoded (nothing is dropped on purpose).
const MIN_DECODED_FRACTION: f64 = 0.9;
/// How long the frames and the reports may take to arrive.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(60);

/// The sender: VP8 into an AVPF `rtpbin`; RTP leaves from `port` to ringfwd's `media`, RTCP from `port + 1` to
/// `rtcp`, and ringfwd's reports are read on `port + 1`.
fn sender(media: SocketAddr, rtcp: SocketAddr, port: u16) -> Vec<String> {
    words(&format!(
        "rtpbin name=rb rtp-profile=avpf \
         videotestsrc num-buffers={FRAMES} is-live=true pattern=smpte horizontal-speed=8 \
           ! video/x-raw,width=320,height=240,framerate=30/1 \
           ! vp8enc deadline=1 target-bitrate=600000 keyframe-max-dist=30 \
           ! rtpvp8pay ssrc={PUB_SSRC} pt=96 mtu=1200 ! rb.send_rtp_sink_0 \
         rb.send_rtp_src_0 ! udpsink host={ip} port={mport} bind-port={port} sync=false async=false \
         rb.send_rtcp_src_0 ! udpsink host={rip} port={rport} bind-port={rtcp_port} sync=false async=false \
         udpsrc address=127.0.0.1 port={rtcp_port} caps=application/x-rtcp ! rb.recv_rtcp_sink_0",
        ip = media.ip(),
        mport = media.port(),
        rip = rtcp.ip(),
        rport = rtcp.port(),
        rtcp_port = port + 1,
    ))
}

/// The receiver: RTP on `port`, RTCP on `port + 1` into an AVPF `rtpbin`, the VP8 depayloader and decoder and a
/// sink printing each frame; its RTCP (RRs) leaves from `port + 1` to ringfwd's `rtcp`.
fn receiver(rtcp: SocketAddr, port: u16) -> Vec<String> {
    words(&format!(
        "rtpbin name=rb rtp-profile=avpf latency=200 \
         udpsrc address=127.0.0.1 port={port} \
           caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload=96 ! rb.recv_rtp_sink_0 \
         udpsrc address=127.0.0.1 port={rtcp_port} caps=application/x-rtcp ! rb.recv_rtcp_sink_0 \
         rb. ! rtpvp8depay ! vp8dec ! fakesink name=frames silent=false sync=false \
         rb.send_rtcp_src_0 ! udpsink host={ip} port={rport} bind-port={rtcp_port} sync=false async=false",
        ip = rtcp.ip(),
        rport = rtcp.port(),
        rtcp_port = port + 1,
    ))
}

fn plus_one(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip(), address.port() + 1)
}

#[test]
fn rtpbin_without_rtcp_mux_gets_reports_at_rtp_port_plus_one() {
    if !ensure_gstreamer() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // `media.rtcp_port_plus_one` needs an explicit media port (port 0 is refused).
    let media_port = free_port_pair();
    let daemon = Daemon::start(&format!(
        "[placement]\nworker_cores = [0]\n\
         [media]\naddresses = [\"127.0.0.1:{media_port}\"]\nrtcp_port_plus_one = true\n\
         [interceptors]\ningress = [\"stats\", \"receiver_reports\"]\negress = [\"stats\", \"sender_reports\"]\n",
    ));
    let media = daemon.media[0];
    // Where ringfwd takes and sends RTCP: its media port + 1.
    let ringfwd_rtcp = plus_one(media);
    let api = Api::dev(&daemon);
    let (pub_port, sub_port) = (free_port_pair(), free_port_pair());
    let pub_rtp: SocketAddr = ([127, 0, 0, 1], pub_port).into();
    let sub_rtp: SocketAddr = ([127, 0, 0, 1], sub_port).into();

    api.session(SESSION).expect("CreateSession");
    let unmuxed =
        |id: &str, address| v1::CreateEndpointRequest { rtcp_port_plus_one: true, ..endpoint(SESSION, id, address) };
    let sender_endpoint = api.create_endpoint(unmuxed("gst-sender", pub_rtp)).expect("CreateEndpoint sender");
    assert_eq!(sender_endpoint.rtcp_address, plus_one(pub_rtp).to_string(), "the effective RTCP address");
    assert_eq!(sender_endpoint.rtcp_send_to, [ringfwd_rtcp.to_string()], "where the peer sends its RTCP");
    assert_eq!(api.node().rtcp_addresses, [ringfwd_rtcp.to_string()]);
    api.create_endpoint(unmuxed("gst-receiver", sub_rtp)).expect("CreateEndpoint receiver");
    api.create_stream(video_stream(SESSION, "cam", "gst-sender", PUB_SSRC)).expect("CreateStream");
    api.create_subscription(subscription(SESSION, "cam-to-receiver", "cam", "gst-receiver", OUT_SSRC))
        .expect("CreateSubscription");

    let mut rx = Pipeline::start("receiver", dir.path(), &receiver(ringfwd_rtcp, sub_port));
    rx.wait_playing();
    let mut tx = Pipeline::start("sender", dir.path(), &sender(media, ringfwd_rtcp, pub_port));
    tx.wait_playing();
    let enough = (f64::from(FRAMES) * MIN_DECODED_FRACTION).ceil() as usize;
    let reported = |tx: &Pipeline, rx: &Pipeline| {
        let (tx_out, rx_out) = (tx.output(), rx.output());
        frames_printed(&rx_out) >= enough
            && newest_source(&tx_out, None, "have-rb", "true").is_some_and(|s| field(&s, "have-rb") == Some("true"))
            && newest_source(&rx_out, Some(OUT_SSRC), "have-sr", "true")
                .is_some_and(|s| field(&s, "have-sr") == Some("true"))
    };
    let done = wait_until(MEDIA_TIMEOUT, || reported(&tx, &rx));
    let node = api.node();
    tx.stop();
    rx.stop();
    let (tx_out, rx_out) = (tx.output(), rx.output());

    let counter = |name: &str| worker_total(&node, name);
    let names = ["rx_rtp", "rx_rtcp", "rx_feedback", "interceptor_emitted", "drop_wrong_source", "drop_unknown_ssrc"];
    let seen: Vec<String> = names.iter().map(|n| format!("{n}={}", counter(n))).collect();
    println!("ringfwd counters: {}", seen.join(" "));
    let decoded = frames_printed(&rx_out);
    let at_sender = newest_source(&tx_out, None, "have-rb", "true").unwrap_or_default();
    let at_receiver = newest_source(&rx_out, Some(OUT_SSRC), "have-sr", "true").unwrap_or_default();
    let show = |entry: &str, keys: &[&str]| -> String {
        keys.iter().map(|k| format!("{k}={}", field(entry, k).unwrap_or("-"))).collect::<Vec<_>>().join(" ")
    };
    println!("sender: ringfwd's source: {}", show(&at_sender, &["ssrc", "rtcp-from", "have-rb", "rb-ssrc"]));
    println!(
        "receiver: decoded {decoded}/{FRAMES}; source {OUT_SSRC:#x}: {}",
        show(&at_receiver, &["rtp-from", "rtcp-from", "packets-received", "have-sr"])
    );
    assert!(done, "GStreamer did not see frames and reports within {MEDIA_TIMEOUT:?}");

    // The publisher's RTCP from X + 1 was taken for its stream; ringfwd's RRs reached it at X + 1.
    assert_eq!(counter("drop_wrong_source"), 0, "RTCP from port + 1 refused");
    assert!(counter("rx_rtcp") > counter("rx_feedback"), "no RTCP from the publisher was counted");
    assert_eq!(field(&at_sender, "have-rb"), Some("true"), "the sender got no report block");
    assert_eq!(field(&at_sender, "rb-ssrc"), Some(PUB_SSRC.to_string().as_str()));
    assert_eq!(field(&at_sender, "rtcp-from"), Some(ringfwd_rtcp.to_string().as_str()));

    // ringfwd's SRs reached the subscriber at Y + 1, its RTP at Y; the frames were decoded.
    assert_eq!(field(&at_receiver, "have-sr"), Some("true"), "the receiver saw no SR for the out SSRC");
    assert_eq!(field(&at_receiver, "rtcp-from"), Some(ringfwd_rtcp.to_string().as_str()));
    assert_eq!(field(&at_receiver, "rtp-from"), Some(media.to_string().as_str()));
    assert!(decoded >= enough, "decoded {decoded} of {FRAMES} frames");

    // The subscriber's RTCP from Y + 1 was recognised as feedback.
    assert!(counter("rx_feedback") > 0, "no RTCP from the subscriber's port + 1 was recognised");

    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}
