//! A plugin that rewrites RTCP, against GStreamer: the C example `plugins/examples/sdes_cname.c`, loaded from the
//! config by the plain `ringfwd` binary, on one subscription's egress chain.
//!
//! The publisher is GStreamer's `rtpbin` with an SDES that tells more than a receiver needs (CNAME, NAME, EMAIL,
//! TOOL, NOTE). Two subscribers receive its stream, each through a relay that records the RTCP ringfwd sends it:
//! - `plain` (an empty egress chain) gets GStreamer's compounds as the publisher sent them: they carry the NAME and
//!   EMAIL items, so the test has something to strip;
//! - `private` (the plugin on its egress chain) gets, compound for compound, exactly `plain`'s with every SDES item
//!   but the CNAME removed: the reference is made by the `rtcp` crate (each SDES packet parsed, its chunks' items
//!   filtered, marshalled again; every other packet byte for byte). The relay passes them on to a GStreamer `rtpbin`
//!   receiver, whose session log (`rtpsession:5`) shows which SDES items it took for the publisher's SSRC: only the
//!   CNAME, with the publisher's value. It decodes the video meanwhile (RTP is untouched by the plugin).
//!
//! Loopback only; every process is bounded in time and killed on every exit path.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ringfwd_tests::api::{endpoint, subscription, v1, video_stream, wait_until, Api};
use ringfwd_tests::gst::{
    ensure_gstreamer, frames_printed, free_port, logged_sdes_items, vp8_publisher, vp8_subscriber, wait_media_sent,
    Pipeline,
};
use ringfwd_tests::relay::RtcpTap;
use ringfwd_tests::Daemon;
use rtcp::source_description::{SdesType, SourceDescription};

const SESSION: &str = "private";
const PUB_SSRC: u32 = 0x5D35_0001;
const PUB_CNAME: &str = "cam-7.example";
/// 5 s at 30 fps: long enough for the publisher's regular compounds besides its last (SR, SDES, BYE).
const FRAMES: u32 = 150;
/// How long the publisher's BYE compound may take to reach the subscriber once the sender was stopped.
const BYE_TIMEOUT: Duration = Duration::from_secs(10);
const RTCP_SDES: u8 = 202;
const RTCP_BYE: u8 = 203;

/// The compound's packets, each with its type, split at their length fields.
fn packets(compound: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= compound.len() {
        let len = 4 + 4 * usize::from(u16::from_be_bytes([compound[at + 2], compound[at + 3]]));
        let packet = compound.get(at..at + len).unwrap_or_else(|| panic!("a cut packet in {compound:02x?}"));
        out.push((compound[at + 1], packet));
        at += len;
    }
    assert_eq!(at, compound.len(), "whole packets in {compound:02x?}");
    out
}

/// `packet`, one SDES packet, parsed by the `rtcp` crate.
fn sdes(packet: &[u8]) -> SourceDescription {
    let parsed = rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(packet)).expect("a valid SDES");
    let first = parsed.first().and_then(|p| p.as_any().downcast_ref::<SourceDescription>());
    first.cloned().unwrap_or_else(|| panic!("not an SDES packet: {parsed:?}"))
}

/// The SDES item types (and their text) of every chunk about `ssrc` in `compound`.
fn sdes_items(compound: &[u8], ssrc: u32) -> Vec<(SdesType, String)> {
    packets(compound)
        .into_iter()
        .filter(|(kind, _)| *kind == RTCP_SDES)
        .flat_map(|(_, packet)| {
            sdes(packet)
                .chunks
                .into_iter()
                .filter(|chunk| chunk.source == ssrc)
                .flat_map(|chunk| chunk.items)
                .map(|item| (item.sdes_type, String::from_utf8_lossy(&item.text).into_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What `sdes_cname.c` must make of `compound`: each SDES packet with only its chunks' CNAME items (marshalled by the
/// `rtcp` crate), every other packet as it was.
fn stripped(compound: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, packet) in packets(compound) {
        if kind != RTCP_SDES {
            out.extend_from_slice(packet);
            continue;
        }
        let mut cnames = sdes(packet);
        for chunk in &mut cnames.chunks {
            chunk.items.retain(|item| item.sdes_type == SdesType::SdesCname);
        }
        let packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> = vec![Box::new(cnames)];
        out.extend_from_slice(&rtcp::packet::marshal(&packets).expect("marshal the SDES"));
    }
    out
}

fn says_bye(compound: &[u8]) -> bool {
    packets(compound).iter().any(|(kind, _)| *kind == RTCP_BYE)
}

#[test]
fn the_c_sdes_plugin_strips_gstreamers_sdes_to_the_cname_for_one_subscriber_byte_for_byte() {
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    if !ensure_gstreamer() {
        return;
    }
    let plugin = modules.path().join("sdes_cname.wasm");
    let config = format!(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[[plugins]]\nname = \"sdes_cname\"\n\
         path = \"{}\"\nchains = [\"egress\"]\n[interceptors]\ningress = []\negress = []\n",
        plugin.display()
    );
    let daemon = Daemon::start(&config);
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    let dir = tempfile::tempdir().expect("a directory for the pipelines' output");

    // `plain` stands for a subscriber nobody listens behind (its relay only records); `private` for GStreamer.
    let (pub_port, private_port, nobody) = (free_port(), free_port(), free_port());
    let plain = RtcpTap::start(media, SocketAddr::from(([127, 0, 0, 1], nobody)));
    let private = RtcpTap::start(media, SocketAddr::from(([127, 0, 0, 1], private_port)));
    api.session(SESSION).expect("session");
    let publisher_addr = SocketAddr::from(([127, 0, 0, 1], pub_port));
    api.create_endpoint(endpoint(SESSION, "cam", publisher_addr)).expect("publisher");
    api.create_endpoint(endpoint(SESSION, "plain", plain.addr())).expect("plain subscriber");
    api.create_endpoint(endpoint(SESSION, "private", private.addr())).expect("private subscriber");
    api.create_stream(video_stream(SESSION, "video", "cam", PUB_SSRC)).expect("stream");
    let chain = |names: &[&str]| Some(v1::InterceptorChain { names: names.iter().map(|n| n.to_string()).collect() });
    let sub = v1::CreateSubscriptionRequest {
        interceptors: chain(&[]),
        ..subscription(SESSION, "plain", "video", "plain", 0)
    };
    api.create_subscription(sub).expect("plain subscription");
    let sub = v1::CreateSubscriptionRequest {
        interceptors: chain(&["sdes_cname"]),
        ..subscription(SESSION, "private", "video", "private", 0)
    };
    let created = api.create_subscription(sub).expect("private subscription");
    assert_eq!(created.interceptors, ["sdes_cname"]);

    let receiver = vp8_subscriber(
        private.addr(),
        private_port,
        "latency=200",
        "rtpvp8depay ! vp8dec ! fakesink name=frames silent=false sync=false",
    );
    let mut rx = Pipeline::start_with_env(
        "receiver",
        dir.path(),
        &receiver,
        &[("GST_DEBUG", "rtpsession:5"), ("GST_DEBUG_NO_COLOR", "1")],
    );
    rx.wait_playing();
    let encode = format!(
        "videotestsrc num-buffers={FRAMES} is-live=true pattern=smpte \
           ! video/x-raw,width=320,height=240,framerate=30/1 ! vp8enc deadline=1 target-bitrate=300000"
    );
    let sdes = format!(
        "sdes=\"application/x-rtp-source-sdes,cname=(string){PUB_CNAME},name=(string)Alice,\
         email=(string)alice.example.org,tool=(string)camera-app,note=(string)in-a-meeting\""
    );
    let mut tx =
        Pipeline::start("publisher", dir.path(), &vp8_publisher(media, pub_port, PUB_SSRC, 1200, &encode, &sdes));
    tx.wait_playing();
    wait_media_sent(&api, &mut tx);
    // Stopping the sender makes its rtpbin send SR + SDES + BYE: the last compound both subscribers get.
    tx.stop();
    let bye_reached = wait_until(BYE_TIMEOUT, || private.rtcp_seen().iter().any(|c| says_bye(c)));
    let got_plain_bye = wait_until(BYE_TIMEOUT, || plain.rtcp_seen().iter().any(|c| says_bye(c)));
    rx.stop();
    let rx_out = rx.output();
    let (as_sent, as_stripped) = (plain.finish(), private.finish());
    assert!(bye_reached && got_plain_bye, "the publisher's BYE compound reached both subscribers");

    println!(
        "compounds: {} to each subscriber; plain {:?} bytes, private {:?} bytes",
        as_sent.len(),
        as_sent.iter().map(Vec::len).collect::<Vec<_>>(),
        as_stripped.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // What GStreamer sent, as the plain subscriber got it: regular compounds and the last one, with the items.
    assert!(as_sent.len() >= 2, "only {} compounds from the publisher: {as_sent:02x?}", as_sent.len());
    let told = as_sent.iter().flat_map(|c| sdes_items(c, PUB_SSRC)).map(|(kind, _)| kind).collect::<Vec<_>>();
    for wanted in [SdesType::SdesCname, SdesType::SdesName, SdesType::SdesEmail] {
        assert!(told.contains(&wanted), "GStreamer's SDES carried no {wanted:?}: {told:?}");
    }

    // The private subscriber got the same compounds, in the same order, each with only the CNAME.
    assert_eq!(as_stripped.len(), as_sent.len(), "one compound for each the plain subscriber got");
    for (index, (theirs, ours)) in as_sent.iter().zip(&as_stripped).enumerate() {
        let expected = stripped(theirs);
        assert!(
            ours == &expected,
            "compound {index} differs:\n as sent   {theirs:02x?}\n ringfwd   {ours:02x?}\n reference {expected:02x?}"
        );
        let items = sdes_items(ours, PUB_SSRC);
        assert_eq!(items, [(SdesType::SdesCname, PUB_CNAME.to_string())], "compound {index}");
    }

    // What GStreamer took: the publisher's CNAME and no other item; and it decoded the video meanwhile.
    let logged = logged_sdes_items(&rx_out, PUB_SSRC);
    assert!(!logged.is_empty(), "the receiver logged no SDES for {PUB_SSRC:#x}:\n{rx_out}");
    assert!(logged.iter().all(|(kind, data)| *kind == 1 && data == PUB_CNAME), "{logged:?}");
    let decoded = frames_printed(&rx_out);
    println!("receiver: SDES items taken for the publisher {logged:?}; decoded {decoded} of {FRAMES} frames");
    assert!(decoded >= FRAMES as usize / 2, "the receiver decoded {decoded} of {FRAMES} frames");

    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert!(
        exit.total("rewritten_by_plugin") >= as_stripped.len() as u64,
        "each of the publisher's compounds rewritten for the private subscriber (its receiver's own too, if it told \
         more than its CNAME): {}",
        exit.total("rewritten_by_plugin")
    );
    assert_eq!((exit.total("plugin_failures"), exit.total("drop_malformed")), (0, 0));
}
