//! Interop with an RTP stack this project did not write: GStreamer's `rtpbin` (Debian's gstreamer1.0 packages,
//! installed by `tests/scripts/install-gstreamer.sh`, which this test runs itself when `gst-launch-1.0` or an
//! element is missing) publishes VP8 through ringfwd to another `rtpbin`, with ringfwd's default interceptor
//! chains (written out in the config): ingress `stats, keyframe_throttle, nack_cache, receiver_reports`, egress
//! `stats, sender_reports`.
//!
//! What it proves, and how it is observed:
//! - The publisher's RTCP passes: its compounds (SR + SDES, BYE at the end) arrive from the same address as its
//!   RTP and validate (ringfwd's `rx_rtcp` counts more than the subscriber's, `drop_malformed` and
//!   `drop_wrong_source` stay 0), and ringfwd's receiver reports reach the publisher's `rtpsession`, which
//!   shows a report block about its SSRC from ringfwd (through the publisher's relay) whose LSR echoes its own
//!   SR.
//! - ringfwd's sender reports pass: the subscriber's `rtpsession` shows `have-sr` for the subscription's out
//!   SSRC (the only source of SRs for it).
//! - The publisher's goodbye passes and is reported: when the sender stops, its `rtpbin` sends SR + SDES +
//!   BYE; the subscriber's `rtpsession` takes a BYE for the out SSRC, ringfwd's WatchEvents shows a
//!   `stream_bye` for the stream (and `ringfwd ctl events watch` prints it).
//! - Every RTCP compound ringfwd sends is valid and carries an SDES CNAME (RFC 3550 §6.1): a relay standing
//!   for each peer's address ([`RtcpTap`]) records every RTCP datagram ringfwd sends to the publisher and to
//!   the subscriber; each parses (`rtcp` crate), starts with an SR or RR, and has a CNAME for that report's
//!   SSRC. The subscriber's compounds name the out SSRC with the publisher's CNAME (set in the sender's
//!   `rtpbin`), and the subscriber's `rtpsession` takes that CNAME for the out SSRC (its debug log,
//!   `GST_DEBUG=rtpsession:5`, prints each SDES entry it processes and each BYE source it takes; `-v` alone
//!   shows neither: the stats carry no SDES, and a BYE'd source may be gone before the next stats print).
//! - The subscriber's RTCP is recognised: its RRs and NACKs come from its address and name the out SSRC
//!   (`rx_feedback` counts them).
//! - Its NACKs are answered: the relay in front of the receiver drops every 20th RTP packet to it on purpose
//!   (never RTCP; see [`receiver`]), its jitter buffer asks
//!   for them again (`rtpsession`'s `sent-nack-count`), ringfwd's NACK cache retransmits them
//!   (`retransmissions`), and the decoder outputs nearly every frame: without retransmission about a quarter
//!   of the frames (7 packets each) lack a packet and are dropped by the depayloader (measured with
//!   `nack_cache` left out of the chain: 114 of 150 frames).
//!
//! GStreamer's `rtpsession` sends a NACK early only once per regular RTCP interval (AVPF), so a request can
//! wait about half a second; the jitter buffer holds 1 s, within ringfwd's default `nack_cache.max_age_ms`.
//!
//! Retransmissions go out as the original packets (no RTX): `rtpbin` takes an RTX receiver only through a
//! signal, which `gst-launch-1.0` cannot connect. GStreamer's own numbers come from `gst-launch-1.0 -v`,
//! which prints `rtpsession`'s `stats` property whenever it changes, and `fakesink silent=false`, which
//! prints one line per decoded frame.
//!
//! One port per peer for RTP and RTCP both ways (ringfwd identifies a peer by one address, here its relay's):
//! each pipeline sends everything through one `udpsink` bound to its port (`bind-port`, a wildcard bind) and receives with
//! a `udpsrc` bound to 127.0.0.1 on the same port, which the kernel prefers for packets to 127.0.0.1 (both
//! sockets set SO_REUSEADDR/SO_REUSEPORT; the more specific bound address wins the lookup). The receiver's
//! `rtpsession` takes the SRs arriving on its RTP pad (RTCP multiplexing). Loopback only; every process is
//! bounded in time and killed on every exit path.

use std::net::SocketAddr;
use std::time::Duration;

use ringfwd_tests::api::{ctl_ok, dev_token, endpoint, subscription, v1, video_stream, wait_until, worker_total, Api};
use ringfwd_tests::gst::{
    ensure_gstreamer, field, free_port, logged_sdes_items, newest_source, number, session_stats, source_stats,
    vp8_publisher, wait_media_sent, words, Pipeline,
};
use ringfwd_tests::relay::{compound, Compound, RtcpTap};
use ringfwd_tests::Daemon;

const SESSION: &str = "interop";
/// The publisher's SSRC, fixed in the sender's payloader.
const PUB_SSRC: u32 = 0x1122_3344;
/// The SSRC the subscriber sees.
const OUT_SSRC: u32 = 0xaabb_ccdd;
/// The publisher's CNAME, set in the sender's `rtpbin`.
const PUB_CNAME: &str = "gst-sender.interop";
/// How long the publisher's BYE may take to show at the subscriber and as an event once the sender stopped.
const BYE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames the sender encodes: 5 s at 30 fps.
const FRAMES: u32 = 150;
/// The relay before the receiver drops every this-many-th RTP packet to it (5 %; never RTCP).
const DROP_EVERY: usize = 20;
/// At least this fraction of the frames must be decoded (without retransmission 0.95^7 ≈ 0.70 are, 0.76 measured).
const MIN_DECODED_FRACTION: f64 = 0.9;
/// How long the receiver keeps running after the sender finished (last retransmissions and reports).
const LINGER: Duration = Duration::from_secs(2);
/// The sender: VP8 of a moving test pattern (about 7 packets of at most 400 bytes a frame) into an AVPF
/// `rtpbin`; its RTP and RTCP leave through one `udpsink` bound to `port`, and ringfwd's reports to it are read
/// on `port` into the same session.
fn sender(media: SocketAddr, port: u16) -> Vec<String> {
    let encode = format!(
        "videotestsrc num-buffers={FRAMES} is-live=true pattern=smpte horizontal-speed=8 \
           ! video/x-raw,width=320,height=240,framerate=30/1 ! vp8enc deadline=1 target-bitrate=600000 keyframe-max-dist=60"
    );
    let sdes = format!("sdes=\"application/x-rtp-source-sdes,cname=(string){PUB_CNAME}\"");
    vp8_publisher(media, port, PUB_SSRC, 400, &encode, &sdes)
}

/// The receiver: RTP (every [`DROP_EVERY`]-th packet dropped by the relay in front of it, which never drops
/// RTCP) and ringfwd's SRs on `port`, into an AVPF `rtpbin` with retransmission requests, the VP8 depayloader and
/// decoder and a sink printing each frame; its RTCP (RRs, NACKs) leaves from `port`.
///
/// The loss is made in the relay rather than by GStreamer's `identity drop-probability`: that one also drops RTCP
/// (now and then the one BYE the test waits for), and marks the buffer after a dropped one DISCONT, which the
/// jitter buffer passes on even once the gap is filled, so the VP8 depayloader would discard the whole frame.
fn receiver(media: SocketAddr, port: u16) -> Vec<String> {
    words(&format!(
        "rtpbin name=rb rtp-profile=avpf do-retransmission=true latency=1000 \
         udpsrc address=127.0.0.1 port={port} \
           caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload=96 ! rb.recv_rtp_sink_0 \
         rb. ! rtpvp8depay ! vp8dec ! fakesink name=frames silent=false sync=false \
         rb.send_rtcp_src_0 ! udpsink host={ip} port={mport} bind-port={port} sync=false async=false",
        ip = media.ip(),
        mport = media.port(),
    ))
}

fn took_bye(output: &str) -> bool {
    output.contains(&format!("rtp_session_process_bye: SSRC: {OUT_SSRC:08x}"))
}

/// True if the session stats in `output` mark the out SSRC `received-bye`.
fn received_bye(output: &str) -> bool {
    session_stats(output).any(|stats| {
        source_stats(&stats, Some(OUT_SSRC)).is_some_and(|entry| field(entry, "received-bye") == Some("true"))
    })
}

/// The session's `stream_bye` events so far (WatchEvents replayed from the start), with their seq.
fn stream_byes(api: &Api) -> Vec<(u64, v1::StreamBye)> {
    let mut client = api.client();
    let request = v1::WatchEventsRequest { from_seq: Some(0), session_id: SESSION.into() };
    api.block_on(async move {
        let mut events = client.watch_events(request).await.expect("WatchEvents").into_inner();
        let mut byes = Vec::new();
        // The replay comes at once; a short wait after it tells that nothing more is queued.
        while let Ok(Ok(Some(event))) = tokio::time::timeout(Duration::from_millis(300), events.message()).await {
            if let Some(v1::event::Kind::StreamBye(bye)) = event.kind {
                byes.push((event.seq, bye));
            }
        }
        byes
    })
}

/// Waits (at most [`BYE_TIMEOUT`]) for the session's first `stream_bye` event.
fn wait_stream_bye(api: &Api) -> Option<v1::StreamBye> {
    let mut found = None;
    wait_until(BYE_TIMEOUT, || {
        found = stream_byes(api).into_iter().next().map(|(_, bye)| bye);
        found.is_some()
    });
    found
}

/// The seq of the session's first `stream_bye` event.
fn bye_event_seq(api: &Api) -> u64 {
    stream_byes(api).first().map(|(seq, _)| *seq).expect("a stream_bye event")
}

#[test]
fn gstreamer_rtpbin_rtcp_passes_and_its_nacks_are_answered() {
    if !ensure_gstreamer() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n\
         [interceptors]\n\
         ingress = [\"stats\", \"keyframe_throttle\", \"nack_cache\", \"receiver_reports\"]\n\
         egress = [\"stats\", \"sender_reports\"]\n",
    );
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    let (pub_port, sub_port) = (free_port(), free_port());
    // Each peer reaches ringfwd through a relay that records the RTCP ringfwd sends it.
    let pub_tap = RtcpTap::start(media, ([127, 0, 0, 1], pub_port).into());
    let pub_tap_addr = pub_tap.addr();
    let sub_tap = RtcpTap::start_lossy(media, ([127, 0, 0, 1], sub_port).into(), Some(DROP_EVERY));

    api.session(SESSION).expect("CreateSession");
    api.create_endpoint(endpoint(SESSION, "gst-sender", pub_tap.addr())).expect("CreateEndpoint sender");
    api.create_endpoint(endpoint(SESSION, "gst-receiver", sub_tap.addr())).expect("CreateEndpoint receiver");
    let stream = api.create_stream(video_stream(SESSION, "cam", "gst-sender", PUB_SSRC)).expect("CreateStream");
    assert_eq!(stream.interceptors, ["stats", "keyframe_throttle", "nack_cache", "receiver_reports"]);
    let sub = api
        .create_subscription(subscription(SESSION, "cam-to-receiver", "cam", "gst-receiver", OUT_SSRC))
        .expect("CreateSubscription");
    assert_eq!(sub.interceptors, ["stats", "sender_reports"]);

    // `rtpsession:5` makes the receiver's session log the CNAME each SSRC's SDES gives and each BYE it takes.
    let rx_description = receiver(sub_tap.addr(), sub_port);
    let mut rx = Pipeline::start_with_env(
        "receiver",
        dir.path(),
        &rx_description,
        &[("GST_DEBUG", "rtpsession:5"), ("GST_DEBUG_NO_COLOR", "1")],
    );
    rx.wait_playing();
    let mut tx = Pipeline::start("sender", dir.path(), &sender(pub_tap.addr(), pub_port));
    tx.wait_playing();
    wait_media_sent(&api, &mut tx);
    std::thread::sleep(LINGER);
    let node = api.node();
    // Stopping the sender makes its rtpbin say BYE; the receiver keeps running until it took it.
    let tx_eos = tx.stop();
    let bye_reached = wait_until(BYE_TIMEOUT, || took_bye(&rx.output()));
    let bye_event = wait_stream_bye(&api);
    let rx_eos = rx.stop();
    println!("pipelines ended by EOS: sender {tx_eos}, receiver {rx_eos}");
    let (tx_out, rx_out) = (tx.output(), rx.output());
    let (to_publisher, to_subscriber) = (pub_tap.finish(), sub_tap.finish());

    // ringfwd's side.
    let counter = |name: &str| worker_total(&node, name);
    let names = [
        "rx_rtp",
        "rx_rtcp",
        "rx_feedback",
        "forwarded_packets",
        "retransmissions",
        "interceptor_emitted",
        "feedback_forwarded",
        "drop_malformed",
        "drop_wrong_source",
        "drop_unknown_ssrc",
    ];
    let seen: Vec<String> = names.iter().map(|n| format!("{n}={}", counter(n))).collect();
    println!("ringfwd counters: {}", seen.join(" "));

    // GStreamer's side.
    let decoded = rx_out.lines().filter(|l| l.contains("frames: last-message = chain")).count();
    let rx_stats = session_stats(&rx_out).next().unwrap_or_else(|| panic!("no receiver session stats:\n{rx_out}"));
    let from_ringfwd =
        newest_source(&rx_out, Some(OUT_SSRC), "have-sr", "true").expect("the receiver knows the out SSRC");
    let ringfwd_at_sender =
        newest_source(&tx_out, None, "have-rb", "true").expect("the sender knows ringfwd's RTCP source");
    let (from_ringfwd, ringfwd_at_sender) = (from_ringfwd.as_str(), ringfwd_at_sender.as_str());
    let bye_seen = received_bye(&rx_out);
    let show = |entry: &str, keys: &[&str]| -> String {
        keys.iter().map(|k| format!("{k}={}", field(entry, k).unwrap_or("-"))).collect::<Vec<_>>().join(" ")
    };
    println!("receiver: the publisher's BYE reached it as the out SSRC's: {bye_seen}");
    println!(
        "receiver: decoded {decoded}/{FRAMES} frames; session sent-nack-count={}; source {OUT_SSRC:#x}: {}",
        field(&rx_stats, "sent-nack-count").unwrap_or("-"),
        show(from_ringfwd, &["rtp-from", "rtcp-from", "packets-received", "packets-lost", "have-sr", "sr-ntptime"]),
    );
    println!(
        "sender: ringfwd's reports: {}",
        show(
            ringfwd_at_sender,
            &["ssrc", "rtcp-from", "have-rb", "rb-ssrc", "rb-exthighestseq", "rb-lsr", "rb-round-trip"]
        ),
    );

    // The publisher's RTCP came from its RTP address and validated; ringfwd answered it with RRs.
    assert!(counter("rx_rtcp") > counter("rx_feedback"), "no RTCP from the publisher");
    assert_eq!((counter("drop_malformed"), counter("drop_wrong_source")), (0, 0), "GStreamer's packets refused");
    assert_eq!(field(ringfwd_at_sender, "rtcp-from"), Some(pub_tap_addr.to_string().as_str()));
    assert_eq!(field(ringfwd_at_sender, "have-rb"), Some("true"), "the sender got no report block");
    assert_eq!(field(ringfwd_at_sender, "rb-ssrc"), Some(PUB_SSRC.to_string().as_str()));
    assert_ne!(number(ringfwd_at_sender, "rb-lsr"), 0, "ringfwd's RR does not echo the publisher's SR");

    // ringfwd's SRs reached the subscriber as its out SSRC's (through the relay, so from the relay's port).
    assert_eq!(field(from_ringfwd, "have-sr"), Some("true"), "the receiver saw no SR for the out SSRC");
    assert!(counter("interceptor_emitted") > 0, "ringfwd sent no reports");

    // The subscriber's RTCP was recognised, its NACKs answered from the cache, and the frames recovered.
    assert!(counter("rx_feedback") > 0, "no RTCP from the subscriber was recognised");
    assert!(number(&rx_stats, "sent-nack-count") > 0, "the receiver sent no NACK");
    assert!(counter("retransmissions") > 0, "ringfwd retransmitted nothing");
    let fraction = decoded as f64 / f64::from(FRAMES);
    assert!(fraction >= MIN_DECODED_FRACTION, "decoded {decoded} of {FRAMES} frames: losses were not recovered");

    println!(
        "BYE: relayed to the subscriber {}, taken by its session {bye_reached}, event {bye_event:?}",
        to_subscriber.iter().any(|bytes| compound(bytes).bye.contains(&OUT_SSRC))
    );
    // The publisher's BYE reached the subscriber as the out SSRC's, and the controller heard of it.
    let said = |word: &str| -> Vec<&str> { rx_out.lines().filter(|l| l.contains(word)).collect() };
    assert!(bye_reached, "the subscriber's rtpsession took no BYE for the out SSRC: {:#?}", said("process_"));
    let bye_event = bye_event.expect("WatchEvents showed no stream_bye");
    assert_eq!((bye_event.stream_id.as_str(), bye_event.endpoint_id.as_str()), ("cam", "gst-sender"));
    let token = dev_token(&daemon);
    let from = (bye_event_seq(&api) - 1).to_string();
    let line = ctl_ok(&daemon, &token, &["events", "watch", "--from", &from, "--count", "1"]);
    assert!(line.trim_end().ends_with(" interop stream_bye stream=cam endpoint=gst-sender"), "ctl printed {line:?}");

    // Every RTCP datagram ringfwd sent is a valid compound with a CNAME for its reporter.
    let to_publisher: Vec<Compound> = to_publisher.iter().map(|bytes| compound(bytes)).collect();
    let to_subscriber: Vec<Compound> = to_subscriber.iter().map(|bytes| compound(bytes)).collect();
    println!("RTCP from ringfwd: {} to the publisher, {} to the subscriber", to_publisher.len(), to_subscriber.len());
    assert!(!to_publisher.is_empty() && !to_subscriber.is_empty(), "the relays saw no RTCP from ringfwd");
    for c in &to_publisher {
        assert_ne!(c.reporter, OUT_SSRC, "only ringfwd's own RTCP goes to the publisher: {c:?}");
        assert!(c.cname.starts_with("ringfwd-"), "ringfwd's own CNAME toward the publisher: {c:?}");
    }
    assert!(to_subscriber.iter().all(|c| c.reporter == OUT_SSRC), "the subscriber hears only the out SSRC");
    assert!(to_subscriber.iter().any(|c| c.cname == PUB_CNAME), "the publisher's CNAME never reached the subscriber");
    assert!(to_subscriber.iter().any(|c| c.bye.contains(&OUT_SSRC)), "no BYE for the out SSRC reached the subscriber");
    // The subscriber's session took the publisher's CNAME for the out SSRC (what it ties streams by), and
    // ringfwd's stand-in only before the publisher's first SDES.
    let cnames: Vec<String> = logged_sdes_items(&rx_out, OUT_SSRC)
        .into_iter()
        .filter(|(kind, _)| *kind == 1)
        .map(|(_, cname)| cname)
        .collect();
    println!("receiver: CNAMEs its session took for {OUT_SSRC:#x}: {cnames:?}");
    assert!(cnames.iter().any(|c| c == PUB_CNAME), "the subscriber never took the publisher's CNAME: {cnames:?}");
    let stand_in = format!("ringfwd-{PUB_SSRC:08x}");
    let first_publishers = cnames.iter().position(|c| c == PUB_CNAME).unwrap_or(0);
    assert!(cnames[first_publishers..].iter().all(|c| c == PUB_CNAME), "the CNAME went back: {cnames:?}");
    assert!(cnames[..first_publishers].iter().all(|c| *c == stand_in), "unexpected CNAMEs: {cnames:?}");

    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}
