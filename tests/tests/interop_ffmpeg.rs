//! Interop with ffmpeg as a SIP user agent without rtcp-mux: RTCP on RTP port + 1, a stream declared without an SSRC
//! (as SIP signalling gives it) that learns ffmpeg's and follows a restart whose new SSRC the kernel steers to the
//! other worker. ffmpeg (installed by `tests/scripts/install-ffmpeg.sh` when missing) publishes PCMU; two
//! subscribers without rtcp-mux receive it: another ffmpeg, with an SDP file, decoding it, and GStreamer's `rtpbin`
//! (installed by `tests/scripts/install-gstreamer.sh`), decoding it too and reporting what it received per SSRC.
//!
//! What it proves, as the third-party stacks observe it:
//! - ffmpeg's first run is learned (`stream_ssrc_changed` from 0) and both listeners decode it.
//! - ffmpeg restarts from the same ports with an SSRC of the other worker (`S2 % 2 != S1 % 2`) and numbering of its
//!   own: the stream follows (`stream_ssrc_changed` from S1) and stays on its worker, and the other worker hands
//!   its packets over (`handover_out` there, `handover_in` on the stream's).
//! - Both listeners decode the second run too and never notice the restart: the ffmpeg listener's log reports no
//!   discontinuity (sequence gap, late packet, timestamps running backwards); `rtpbin` saw one source, the first
//!   SSRC, with the packets of both runs and hardly any loss, and its receiver reports about that SSRC after the
//!   restart are taken as the subscription's feedback.
//! - ffmpeg's sender reports from port + 1 are taken for the stream after the restart too (its ingress counts
//!   sender reports), and nothing is dropped as coming from a wrong source.
//!
//! The ffmpeg listener's own receiver reports are not checked: ffmpeg sends one per ~280 kB received, over half a
//! minute of PCMU. Every peer is bounded in time and killed on every exit path; loopback only.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ringfwd_tests::api::{endpoint, subscription, v1, video_stream, wait_until, worker_total, Api};
use ringfwd_tests::ffmpeg::{
    discontinuities, ensure_ffmpeg, pcmu_publisher, pcmu_receiver, pcmu_sdp, samples_decoded, start, PCMU, PCMU_HZ,
    SAMPLES_PER_PACKET,
};
use ringfwd_tests::gst::{
    ensure_gstreamer, frames_printed, free_port_pair, number, session_stats, source_stats, words, Pipeline,
};
use ringfwd_tests::Daemon;

const SESSION: &str = "ffmpeg";
/// The first run's SSRC (even: owned by worker 0 of 2) and the restart's (odd: worker 1).
const FIRST_SSRC: u32 = 0x1234_5678;
const SECOND_SSRC: u32 = 0x2345_6789;
/// Each run's length: ffmpeg sends a sender report at its start (before the stream knows the SSRC) and then every
/// 5 s, so a run of 7 s has one the stream takes.
const RUN_SECONDS: u32 = 7;
/// At least this fraction of each run must be decoded (nothing is dropped on purpose; the first packets of each run
/// are, until the stream follows).
const MIN_DECODED_FRACTION: f64 = 0.8;
/// How long anything may take to happen.
const WAIT: Duration = Duration::from_secs(20);

fn plus_one(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip(), address.port() + 1)
}

/// The `stream_ssrc_changed` event that took `ssrc`, if one came within `WAIT`.
fn ssrc_changed(api: &Api, ssrc: u32) -> Option<v1::StreamSsrcChanged> {
    api.wait_event(SESSION, WAIT, |kind| match kind {
        v1::event::Kind::StreamSsrcChanged(c) if c.ssrc == ssrc => Some(c.clone()),
        _ => None,
    })
}

/// The stream's ingress statistics and its subscriptions' egress statistics (by subscription id), when all were
/// published.
fn stats(api: &Api) -> Option<(v1::StatsSample, v1::StatsSample, v1::StatsSample)> {
    let request = v1::GetStreamStatsRequest { session_id: SESSION.into(), stream_id: "mic".into() };
    let stats = api.get_stream_stats(request).ok()?;
    let egress = |id: &str| stats.subscriptions.iter().find(|s| s.subscription_id == id)?.egress;
    Some((stats.ingress?, egress("to-ffmpeg")?, egress("to-gst")?))
}

/// GStreamer's `rtpbin` receiving PCMU RTP on `port` and RTCP on `port + 1`, decoding it to a sink that prints each
/// buffer, and sending its RTCP from `port + 1` to ringfwd's `rtcp` address.
fn gst_listener(rtcp: SocketAddr, port: u16) -> Vec<String> {
    words(&format!(
        "rtpbin name=rb latency=200 \
         udpsrc address=127.0.0.1 port={port} \
           caps=application/x-rtp,media=audio,clock-rate={PCMU_HZ},encoding-name=PCMU,payload={PCMU} \
           ! rb.recv_rtp_sink_0 \
         udpsrc address=127.0.0.1 port={rtcp_port} caps=application/x-rtcp ! rb.recv_rtcp_sink_0 \
         rb. ! rtppcmudepay ! mulawdec ! fakesink name=frames silent=false sync=false \
         rb.send_rtcp_src_0 ! udpsink host={ip} port={rport} bind-port={rtcp_port} sync=false async=false",
        ip = rtcp.ip(),
        rport = rtcp.port(),
        rtcp_port = port + 1,
    ))
}

/// What `rtpbin` last reported receiving from `ssrc`: packets received and lost (`None`: no such source).
fn received_from(output: &str, ssrc: u32) -> Option<(i64, i64)> {
    let stats = session_stats(output).find(|stats| source_stats(stats, Some(ssrc)).is_some())?;
    let source = source_stats(&stats, Some(ssrc))?;
    Some((number(source, "packets-received"), number(source, "packets-lost")))
}

#[test]
fn ffmpeg_without_rtcp_mux_is_learned_and_followed_across_workers() {
    if !ensure_ffmpeg() || !ensure_gstreamer() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // `media.rtcp_port_plus_one` needs an explicit media port; the default interceptors (reports both ways).
    let media_port = free_port_pair();
    let daemon = Daemon::start(&format!(
        "[placement]\nworker_cores = [0, 1]\n\
         [media]\naddresses = [\"127.0.0.1:{media_port}\"]\nrtcp_port_plus_one = true\n[interceptors]\n"
    ));
    assert_eq!(daemon.workers, 2);
    assert_ne!(FIRST_SSRC % 2, SECOND_SSRC % 2, "the restart must cross workers");
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    let (pub_port, ffmpeg_port, gst_port) = (free_port_pair(), free_port_pair(), free_port_pair());
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));

    api.session(SESSION).expect("CreateSession");
    let unmuxed =
        |id: &str, address| v1::CreateEndpointRequest { rtcp_port_plus_one: true, ..endpoint(SESSION, id, address) };
    api.create_endpoint(unmuxed("phone", at(pub_port))).expect("CreateEndpoint phone");
    api.create_endpoint(unmuxed("ffmpeg", at(ffmpeg_port))).expect("CreateEndpoint ffmpeg");
    api.create_endpoint(unmuxed("gst", at(gst_port))).expect("CreateEndpoint gst");
    // As SIP gives it: an address and payload types, no SSRC.
    let audio = v1::CreateStreamRequest {
        kind: v1::MediaKind::Audio.into(),
        payload_types: vec![u32::from(PCMU)],
        clock_rate_hz: PCMU_HZ,
        ..video_stream(SESSION, "mic", "phone", 0)
    };
    let mic = api.create_stream(audio).expect("CreateStream without SSRC");
    assert_eq!((mic.ssrc, mic.learns_ssrc), (0, true));
    for (id, listener) in [("to-ffmpeg", "ffmpeg"), ("to-gst", "gst")] {
        api.create_subscription(subscription(SESSION, id, "mic", listener, 0)).expect("CreateSubscription");
    }

    let sdp = dir.path().join("ffmpeg-listener.sdp");
    std::fs::write(&sdp, pcmu_sdp(ffmpeg_port)).expect("write SDP");
    let decoded = dir.path().join("ffmpeg-listener.raw");
    let mut ffmpeg_listener = start("ffmpeg-listener", dir.path(), &pcmu_receiver(&sdp, &decoded));
    let mut gst_listener = Pipeline::start("gst-listener", dir.path(), &gst_listener(plus_one(media), gst_port));
    gst_listener.wait_playing();
    let bound = |port: u16| UdpSocket::bind(at(port)).is_err() && UdpSocket::bind(at(port + 1)).is_err();
    assert!(wait_until(WAIT, || bound(ffmpeg_port)), "ffmpeg did not bind its ports:\n{}", ffmpeg_listener.output());
    let run_samples = (f64::from(RUN_SECONDS * PCMU_HZ) * MIN_DECODED_FRACTION) as u64;
    let run_packets = u64::from(RUN_SECONDS * PCMU_HZ / SAMPLES_PER_PACKET);
    let run_wait = WAIT + Duration::from_secs(u64::from(RUN_SECONDS));

    // The first run: learned, decoded.
    let mut first = start("first", dir.path(), &pcmu_publisher(media, pub_port, FIRST_SSRC, RUN_SECONDS));
    let adopted = ssrc_changed(&api, FIRST_SSRC).expect("the stream adopted ffmpeg's SSRC");
    assert_eq!((adopted.stream_id.as_str(), adopted.previous_ssrc), ("mic", 0));
    let get = || api.get_stream(v1::GetStreamRequest { session_id: SESSION.into(), stream_id: "mic".into() });
    let home = get().expect("GetStream").worker;
    assert_eq!(home, FIRST_SSRC % 2);
    first.wait_exit(run_wait);
    let decoding = wait_until(WAIT, || samples_decoded(&decoded) >= run_samples);
    let after_first = samples_decoded(&decoded);
    assert!(decoding, "ffmpeg decoded {after_first} samples of the first run:\n{}", ffmpeg_listener.output());

    // The restart: the same ports, an SSRC of the other worker, ffmpeg's own new numbering.
    let before = api.node();
    let mut second = start("second", dir.path(), &pcmu_publisher(media, pub_port, SECOND_SSRC, RUN_SECONDS));
    let followed = ssrc_changed(&api, SECOND_SSRC).expect("the stream followed the new SSRC");
    assert_eq!(followed.previous_ssrc, FIRST_SSRC);
    // After the change the stream's chains start afresh: wait for the second run's sender report (from port + 1)
    // and rtpbin's receiver report about the SSRC it received from the start.
    let reported = wait_until(run_wait, || {
        stats(&api).is_some_and(|(ingress, _, gst)| ingress.sender_reports > 0 && gst.receiver_reports > 0)
    });
    second.wait_exit(run_wait);
    let decoding = wait_until(WAIT, || samples_decoded(&decoded) >= after_first + run_samples);
    // rtpbin prints its statistics as its RTCP goes out: wait until they cover the second run.
    let gst_received = wait_until(WAIT, || {
        received_from(&gst_listener.output(), FIRST_SSRC).is_some_and(|(n, _)| n as u64 >= run_packets * 3 / 2)
    });
    let node = api.node();
    let (ingress, to_ffmpeg, to_gst) = stats(&api).expect("stream statistics");
    ffmpeg_listener.stop().expect("the ffmpeg listener stopped on SIGINT");
    gst_listener.stop();
    let (ffmpeg_log, gst_log) = (ffmpeg_listener.output(), gst_listener.output());
    let after_second = samples_decoded(&decoded);

    let counter = |name: &str| worker_total(&node, name);
    let names = ["rx_rtp", "rx_rtcp", "rx_feedback", "handover_out", "drop_wrong_source", "drop_unknown_ssrc"];
    let seen: Vec<String> = names.iter().map(|n| format!("{n}={}", counter(n))).collect();
    println!("ringfwd counters: {}", seen.join(" "));
    let (gst_packets, gst_lost) = received_from(&gst_log, FIRST_SSRC).unwrap_or_default();
    println!(
        "ffmpeg decoded {after_first} samples of the first run, {} of the second; rtpbin received {gst_packets} \
         packets from {FIRST_SSRC:#x}, {gst_lost} lost, decoded {} buffers; after the restart the stream took {} \
         packets and {} sender reports, rtpbin sent {} receiver reports (lost {}), ffmpeg {}",
        after_second - after_first,
        frames_printed(&gst_log),
        ingress.packets,
        ingress.sender_reports,
        to_gst.receiver_reports,
        to_gst.lost,
        to_ffmpeg.receiver_reports,
    );
    assert!(decoding, "ffmpeg decoded {} samples of the second run:\n{ffmpeg_log}", after_second - after_first);
    assert!(reported, "no sender report of the second run or no receiver report after it: {ingress:?} {to_gst:?}");
    assert!(gst_received, "rtpbin did not report the packets of both runs from {FIRST_SSRC:#x}:\n{gst_log}");

    // The stream stayed on its worker; the other one handed the second run over.
    let stream = get().expect("GetStream");
    assert_eq!((stream.ssrc, stream.worker), (SECOND_SSRC, home));
    let worker = |node: &v1::NodeInfo, index: u32, name: &str| {
        node.workers.iter().find(|w| w.index == index).map_or(0, |w| w.counters[name])
    };
    let out = worker(&node, 1 - home, "handover_out") - worker(&before, 1 - home, "handover_out");
    let into = worker(&node, home, "handover_in") - worker(&before, home, "handover_in");
    let most = run_packets * 9 / 10;
    assert!(out >= most && into >= most, "handed over {out}, handed in {into} of {run_packets}");

    // Both listeners saw one stream: no discontinuity in ffmpeg's log; rtpbin saw the first SSRC only, with hardly
    // any loss, and reported on it after the restart.
    for id in ["to-ffmpeg", "to-gst"] {
        let request = v1::GetSubscriptionRequest { session_id: SESSION.into(), subscription_id: id.into() };
        assert_eq!(api.get_subscription(request).expect("GetSubscription").out_ssrc, FIRST_SSRC, "{id}");
    }
    assert!(discontinuities(&ffmpeg_log).is_empty(), "ffmpeg noticed the restart:\n{ffmpeg_log}");
    assert!(received_from(&gst_log, SECOND_SSRC).is_none(), "rtpbin saw the second SSRC:\n{gst_log}");
    assert!(gst_lost.abs() <= 5 && to_gst.lost.abs() <= 5, "rtpbin lost {gst_lost}, reported {}", to_gst.lost);

    // ffmpeg's RTCP from port + 1 was taken, never refused as from a wrong source.
    assert_eq!(counter("drop_wrong_source"), 0, "RTCP from port + 1 refused");
    assert!(ingress.sender_reports > 0, "no sender report of the second run taken");

    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}
