//! Loss between a publisher and ringfwd is repaired with the default interceptor chain, observed by two GStreamer
//! subscribers that decode every frame.
//!
//! The media is real VP8 that GStreamer encoded (`vp8enc ! rtpvp8pay` into a socket of the test, captured once per
//! run). The publisher is the test itself: it replays the capture in real time from its address, never sends one
//! packet in twenty the first time (the uplink loss), and answers generic NACKs by sending the packets asked for
//! again, as an RTP stack with a retransmission buffer does (GStreamer's own sender can only answer with RTX on
//! another SSRC, which ringfwd's publishers are not declared with). The subscribers are GStreamer `rtpbin`s with
//! retransmission requests on (`do-retransmission=true`), each decoding with `vp8dec`.
//!
//! What it proves, and how it is observed:
//! - Each subscriber's NACKs for the packets ringfwd never received miss ringfwd's NACK cache; the cache asks the
//!   publisher for them (one NACK in the publisher's sequence space for both subscribers: the publisher is asked
//!   only for packets it dropped, each at most `max_retransmits_per_packet` times); the resent packets reach both
//!   subscribers, whose decoders output (nearly) every frame. Before the cache asked the publisher, such NACKs were
//!   dropped and about half the frames were lost (73 of 150 in an earlier report, H.264).
//! - The stream's statistics count the NACKs ringfwd sent the publisher (`nacks_sent`).
//!
//! Loopback only; the replay, every pipeline and every wait are bounded in time.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ringfwd_tests::api::{endpoint, subscription, video_stream, Api};
use ringfwd_tests::gst::{ensure_gstreamer, frames_printed, free_port, vp8_subscriber, words, Pipeline};
use ringfwd_tests::{peer, rtp_fields, Daemon};

const SESSION: &str = "uplink";
const PUB_SSRC: u32 = 0x5eed_0001;
/// Frames encoded: 5 s at 30 fps.
const FRAMES: usize = 150;
/// The publisher leaves out one packet in this many on its first send.
const DROP_EVERY: usize = 20;
/// Packets at the end never dropped: a subscriber notices a gap only when a later packet arrives.
const KEEP_LAST: usize = 30;
/// Every subscriber must decode at least this many frames (without repair, 0.95^7 ≈ 70 % of them decode).
const MIN_DECODED: usize = 145;
/// How long the capture, the replay and the last repairs may take.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(60);
const LINGER: Duration = Duration::from_secs(3);
const DECODE_TIMEOUT: Duration = Duration::from_secs(20);

/// Encodes [`FRAMES`] frames of VP8 as RTP (about 7 packets of at most 400 bytes a frame) and captures them; in
/// real time, so no burst overflows the capture socket.
fn capture_vp8(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("capture socket");
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    let mut encoder = Pipeline::start(
        "encoder",
        dir,
        &words(&format!(
            "videotestsrc num-buffers={FRAMES} is-live=true pattern=smpte horizontal-speed=8 \
               ! video/x-raw,width=320,height=240,framerate=30/1 \
               ! vp8enc deadline=1 target-bitrate=600000 keyframe-max-dist=60 \
               ! rtpvp8pay ssrc={PUB_SSRC} pt=96 mtu=400 seqnum-offset=65000 \
               ! udpsink host=127.0.0.1 port={port} sync=false"
        )),
    );
    let deadline = Instant::now() + CAPTURE_TIMEOUT;
    let mut packets = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => packets.push(buf[..n].to_vec()),
            Err(_) if encoder.exited().is_some() => break,
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "the encoder did not finish:\n{}", encoder.output());
    }
    for (k, pair) in packets.windows(2).enumerate() {
        let (a, b) = (rtp_fields(&pair[0]).seq, rtp_fields(&pair[1]).seq);
        assert_eq!(b, a.wrapping_add(1), "the capture lost packet {k}+1 (the kernel dropped it?)");
    }
    assert!(packets.len() > FRAMES * 3, "only {} packets captured", packets.len());
    packets
}

/// A subscriber: an AVPF `rtpbin` that asks for retransmissions, the VP8 depayloader and decoder, and a sink
/// printing each decoded frame.
fn subscriber(media: SocketAddr, port: u16) -> Vec<String> {
    let sink = "rtpvp8depay ! vp8dec ! fakesink name=frames silent=false sync=false";
    vp8_subscriber(media, port, "do-retransmission=true latency=1000", sink)
}

fn decoded(pipeline: &Pipeline) -> usize {
    frames_printed(&pipeline.output())
}

/// What the publisher did.
#[derive(Debug, Default)]
struct Replay {
    /// Packets left out on the first send.
    dropped: Vec<u16>,
    /// NACK packets received, and how often each sequence number was asked for.
    nacks: u64,
    asked: BTreeMap<u16, u32>,
}

/// Sends `packets` from `socket` to `media`, paced by their RTP timestamps (90 kHz), leaving out every
/// [`DROP_EVERY`]th; answers NACKs from ringfwd with the packets asked for, until [`LINGER`] after the last send.
fn replay(socket: &UdpSocket, media: SocketAddr, packets: &[Vec<u8>]) -> Replay {
    let by_seq: BTreeMap<u16, &Vec<u8>> = packets.iter().map(|p| (rtp_fields(p).seq, p)).collect();
    let first_ts = rtp_fields(&packets[0]).timestamp;
    let start = Instant::now();
    let mut result = Replay::default();
    let mut buf = [0u8; 2048];
    socket.set_read_timeout(Some(Duration::from_millis(1))).expect("timeout");
    let mut answer = |result: &mut Replay| {
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let seqs = peer::rtcp_generic_nack_seqs(&buf[..n]);
            if from != media || seqs.is_empty() {
                continue; // ringfwd's receiver reports, or not from ringfwd
            }
            result.nacks += 1;
            for seq in seqs {
                *result.asked.entry(seq).or_default() += 1;
                if let Some(packet) = by_seq.get(&seq) {
                    socket.send_to(packet, media).expect("resend");
                }
            }
        }
    };
    for (k, packet) in packets.iter().enumerate() {
        let ticks = rtp_fields(packet).timestamp.wrapping_sub(first_ts);
        let due = start + Duration::from_micros(u64::from(ticks) * 1_000 / 90);
        while Instant::now() < due {
            answer(&mut result);
        }
        if k % DROP_EVERY == DROP_EVERY - 1 && k < packets.len() - KEEP_LAST {
            result.dropped.push(rtp_fields(packet).seq);
        } else {
            socket.send_to(packet, media).expect("send");
        }
    }
    let end = Instant::now() + LINGER;
    while Instant::now() < end {
        answer(&mut result);
    }
    result
}

#[test]
fn uplink_loss_is_repaired_for_every_subscriber_with_the_default_chain() {
    if !ensure_gstreamer() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let packets = capture_vp8(dir.path());
    // The default interceptor chains (stats, keyframe_throttle, nack_cache, receiver_reports / stats, sender_reports):
    // an `[interceptors]` table without keys (without one, the test harness turns them off).
    let daemon =
        Daemon::start("[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[interceptors]\n");
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    let publisher = UdpSocket::bind("127.0.0.1:0").expect("publisher socket");
    let (port_1, port_2) = (free_port(), free_port());
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));

    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "camera", publisher.local_addr().unwrap())).expect("CreateEndpoint");
    api.create_endpoint(endpoint(SESSION, "viewer-1", at(port_1))).expect("CreateEndpoint");
    api.create_endpoint(endpoint(SESSION, "viewer-2", at(port_2))).expect("CreateEndpoint");
    let stream = api.create_stream(video_stream(SESSION, "cam", "camera", PUB_SSRC)).expect("CreateStream");
    assert_eq!(stream.interceptors, ["stats", "keyframe_throttle", "nack_cache", "receiver_reports"], "the defaults");
    api.create_subscription(subscription(SESSION, "to-1", "cam", "viewer-1", 0x0101_0101)).expect("subscribe 1");
    api.create_subscription(subscription(SESSION, "to-2", "cam", "viewer-2", 0x0202_0202)).expect("subscribe 2");

    let mut viewers = [
        Pipeline::start("viewer-1", dir.path(), &subscriber(media, port_1)),
        Pipeline::start("viewer-2", dir.path(), &subscriber(media, port_2)),
    ];
    for viewer in &mut viewers {
        viewer.wait_playing();
    }
    let replayed = replay(&publisher, media, &packets);
    let all_decoded =
        ringfwd_tests::api::wait_until(DECODE_TIMEOUT, || viewers.iter().all(|v| decoded(v) >= MIN_DECODED));
    let counts: Vec<usize> = viewers.iter().map(decoded).collect();
    let stats = api
        .get_stream_stats(ringfwd_proto::v1::GetStreamStatsRequest {
            session_id: SESSION.into(),
            stream_id: "cam".into(),
        })
        .expect("GetStreamStats");
    let node = api.node();
    println!("ringfwd: {:?}", node.workers[0].counters.iter().filter(|(_, v)| **v > 0).collect::<BTreeMap<_, _>>());
    let ingress = stats.ingress.unwrap_or_else(|| panic!("no ingress statistics: {stats:?}; decoded {counts:?}"));
    println!(
        "publisher: {} of {} packets left out, {} NACKs from ringfwd asking for {:?}; viewers decoded {counts:?} of \
         {FRAMES} frames; stream stats: nacks_received={} retransmitted={} retransmit_misses={} nacks_sent={}",
        replayed.dropped.len(),
        packets.len(),
        replayed.nacks,
        replayed.asked,
        ingress.nacks_received,
        ingress.retransmitted,
        ingress.retransmit_misses,
        ingress.nacks_sent,
    );

    assert!(all_decoded, "decoded {counts:?} of {FRAMES} frames: uplink loss was not repaired");
    assert!(replayed.nacks > 0, "ringfwd never asked the publisher");
    for (seq, times) in &replayed.asked {
        assert!(replayed.dropped.contains(seq), "ringfwd asked for {seq}, which it had received");
        assert!(*times <= 3, "asked for {seq} {times} times (max_retransmits_per_packet = 3)");
    }
    assert!(ingress.nacks_sent > 0, "the statistics count no NACK to the publisher");
    for viewer in &mut viewers {
        viewer.stop();
    }
    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}
