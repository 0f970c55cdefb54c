//! SIP interop: two baresip user agents (Debian's 1.0.0, installed by `tests/scripts/install-sip.sh`) call each
//! other through the test controller of `ringfwd_tests::sip`, a back-to-back user agent that sets the call's media
//! up in ringfwd through the gRPC API, and ringfwd relays their audio: PCMU both ways, RTCP on RTP port + 1 (no
//! rtcp-mux, as SIP user agents do), SSRCs learned (SIP's SDP gives none to rely on), a re-INVITE applied in place.
//!
//! What it proves, as the user agents and ringfwd observe it:
//! - Each user agent hears the other's tone: the audio its decoder wrote has the other's frequency and the length
//!   of the packets it received; it received what ringfwd sent it (the last few may meet the BYE), none lost by
//!   its own sequence-number count, none in error.
//! - ringfwd forwarded every packet its streams took (in == out, apart from packets a stream took in the moment
//!   before its subscription existed, counted as `consumed_no_subscriber` during set-up), lost none, dropped none
//!   after set-up and none as `wrong_source`; the only drops are a user agent's first packets before its stream
//!   learned the SSRC, which is the SSRC baresip announced in its (unused) `a=ssrc`.
//! - RTCP on port + 1 both ways: each user agent sends its RTCP to ringfwd's media port + 1 (`audio_debug`), and
//!   its SRs are taken for its stream; each receives ringfwd's SRs (`CALL_RTCP` events, from the SSRC it hears)
//!   and its receiver reports about its own stream (an RTCP member reporting no loss) at its port + 1.
//! - A re-INVITE from the caller becomes UpdateEndpoint, is answered, and media goes on.
//! - The caller's BYE reaches the callee, and the session is deleted.
//!
//! - A user agent sends and receives, so it reports its reception in its SRs (never in RRs), which start with its
//!   own SSRC: their report blocks about the SSRC ringfwd sends it are taken as its reports as a subscriber (its
//!   subscription's `receiver_reports`).
//!
//! Loopback only; every process is bounded in time and killed on every exit path; every wait is for an event.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use ringfwd_tests::api::{dev_token, v1, wait_until, worker_total, Api};
use ringfwd_tests::baresip::{ensure_baresip, remote_addresses, rtcp_members, rtp_stat, Ua, UaConfig};
use ringfwd_tests::gst::free_port_pair;
use ringfwd_tests::sip::{B2bua, CallEvent, Leg, Setup};
use ringfwd_tests::Daemon;

/// The caller's tone and the callee's, in Hz.
const CALLER_TONE_HZ: u32 = 440;
const CALLEE_TONE_HZ: u32 = 1000;
/// How long any one step may take.
const WAIT: Duration = Duration::from_secs(20);
/// Packets each stream must carry after the re-INVITE (1 s of 20 ms packets).
const PACKETS_AFTER_REINVITE: u64 = 50;
/// Samples in one 20 ms PCMU packet at 8 kHz.
const SAMPLES_PER_PACKET: usize = 160;
/// Packets ringfwd may send a user agent after it closed its call: the other side sends until the BYE reaches it.
const PACKETS_AFTER_BYE: f64 = 10.0;
/// Packets a user agent's jitter buffer may still hold, undecoded, when its call closes (`jitter_buffer_delay`).
const JITTER_BUFFER_PACKETS: usize = 3;

/// Prints every log of a directory (the user agents', the controller's transcript) when the test fails.
struct LogsOnFailure(PathBuf);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for entry in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(300)..].join("\n");
                eprintln!("==== {} (last 300 lines)\n{tail}", path.display());
            }
        }
    }
}

/// `event` is a baresip event of `kind`.
fn is(event: &Value, kind: &str) -> bool {
    event["type"] == kind
}

/// The controller's next call event; fails the test with what it said instead when it failed.
fn next_call_event(b2bua: &B2bua, waiting_for: &str) -> CallEvent {
    match b2bua.next_event(WAIT) {
        Some(CallEvent::Failed(why)) => panic!("the controller failed while {waiting_for}: {why}"),
        Some(event) => event,
        None => panic!("no call event within {WAIT:?} while {waiting_for}"),
    }
}

/// Both legs' stream statistics now, caller first.
fn stats(api: &Api, session: &str) -> Vec<v1::StreamStats> {
    [Leg::Caller, Leg::Callee]
        .iter()
        .map(|leg| {
            let request = v1::GetStreamStatsRequest { session_id: session.into(), stream_id: leg.stream().into() };
            api.get_stream_stats(request).expect("GetStreamStats")
        })
        .collect()
}

/// A stream's ingress figures and its one subscription's egress figures.
fn figures(stats: &v1::StreamStats) -> (v1::StatsSample, v1::StatsSample) {
    let ingress = stats.ingress.unwrap_or_default();
    let egress = stats.subscriptions.first().and_then(|s| s.egress).unwrap_or_default();
    (ingress, egress)
}

fn plus_one(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip(), address.port() + 1)
}

#[test]
fn baresip_calls_baresip_through_a_controller_with_ringfwd_relaying_the_audio() {
    if !ensure_baresip() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // `media.rtcp_port_plus_one` needs an explicit media port; statistics every 100 ms for the final record.
    let media_port = free_port_pair();
    let daemon = Daemon::start(&format!(
        "[placement]\nworker_cores = [0]\n\
         [media]\naddresses = [\"127.0.0.1:{media_port}\"]\nrtcp_port_plus_one = true\n\
         [interceptors]\ningress = [\"stats\", \"receiver_reports\"]\negress = [\"stats\", \"sender_reports\"]\n\
         [telemetry]\nstats_interval_ms = 100\n",
    ));
    let media = daemon.media[0];
    let api = Api::dev(&daemon);

    let mut callee = Ua::start(dir.path(), UaConfig { name: "bob", tone_hz: CALLEE_TONE_HZ, auto_answer: true });
    let setup = Setup { api: daemon.api, token: dev_token(&daemon), media, callee: callee.sip };
    let b2bua = B2bua::start(setup, &dir.path().join("b2bua.log"));
    let mut caller = Ua::start(dir.path(), UaConfig { name: "alice", tone_hz: CALLER_TONE_HZ, auto_answer: false });

    // The call: alice dials bob at the controller, which calls bob with ringfwd's address in the SDP.
    caller.command("dial", &format!("sip:bob@{}", b2bua.address())).expect("dial");
    let CallEvent::Established { session, caller: caller_sdp, callee: callee_sdp } =
        next_call_event(&b2bua, "setting up the call")
    else {
        panic!("the call was not established first")
    };
    println!("call {session}: caller {caller_sdp:?}\n  callee {callee_sdp:?}");
    assert!(!caller_sdp.rtcp_mux && !callee_sdp.rtcp_mux, "baresip was configured without rtcp-mux");
    for ua in [&mut caller, &mut callee] {
        ua.wait_event(WAIT, |e| is(e, "CALL_ESTABLISHED")).expect("the user agent saw the call established");
    }

    // Both streams learn the SSRC their user agent sends: the one baresip announced in its a=ssrc, which the
    // controller does not pass on.
    for (leg, sdp) in [(Leg::Caller, &caller_sdp), (Leg::Callee, &callee_sdp)] {
        let learned = api
            .wait_event(&session, WAIT, |kind| match kind {
                v1::event::Kind::StreamSsrcChanged(c) if c.stream_id == leg.stream() => Some(c.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{} learned no SSRC", leg.stream()));
        assert_eq!(learned.previous_ssrc, 0);
        assert_eq!(Some(learned.ssrc), sdp.announced_ssrc, "{} learned another SSRC than baresip's", leg.stream());
    }
    let after_setup = api.node();

    // RTCP from each user agent's port + 1 is taken for its stream (its SRs), and ringfwd sends each its SRs.
    let rtcp_taken = wait_until(WAIT, || {
        stats(&api, &session).iter().all(|s| {
            let (ingress, egress) = figures(s);
            ingress.sender_reports > 0 && egress.sender_reports > 0
        })
    });
    assert!(rtcp_taken, "ringfwd did not take RTCP from both user agents: {:?}", stats(&api, &session));
    // Each user agent got ringfwd's SRs at its port + 1 (baresip raises CALL_RTCP for an SR), from the SSRC it
    // hears, and counts no loss on what it received.
    for ua in [&mut caller, &mut callee] {
        let report = ua
            .wait_event(WAIT, |e| is(e, "CALL_RTCP") && e["rtcp_stats"]["rx"]["sent"].as_u64() > Some(0))
            .expect("a sender report from ringfwd reached the user agent");
        assert_eq!(report["rtcp_stats"]["rx"]["lost"], 0, "the user agent counts lost packets: {report}");
    }
    for (ua, own, heard) in [(&mut caller, &caller_sdp, &callee_sdp), (&mut callee, &callee_sdp, &caller_sdp)] {
        let debug = ua.command("audio_debug", "").expect("audio_debug");
        let members = rtcp_members(&debug);
        println!("audio_debug of {:?}: remote {:?}, RTCP members {members:?}", own.address, remote_addresses(&debug));
        assert_eq!(remote_addresses(&debug), Some((media, plus_one(media))), "it sends RTP and RTCP to ringfwd");
        let heard = members.iter().find(|m| Some(m.ssrc) == heard.announced_ssrc).expect("the SSRC it hears");
        assert!(heard.rtp.is_some_and(|(from, received)| from == media && received > 0), "{heard:?}");
        // ringfwd's receiver reports come from an SSRC of its own, about the user agent's stream.
        let reports = members.iter().find(|m| m.ssrc != heard.ssrc && Some(m.ssrc) != own.announced_ssrc);
        let reports = reports.expect("an RTCP member that is neither side: ringfwd's receiver reports");
        assert_eq!(reports.reported_lost, 0, "ringfwd reported loss: {reports:?}");
    }

    // A re-INVITE (same address, as baresip sends it) becomes UpdateEndpoint; media goes on.
    let before = stats(&api, &session);
    caller.command("reinvite", "").expect("reinvite");
    match next_call_event(&b2bua, "applying the re-INVITE") {
        CallEvent::Updated { leg: Leg::Caller, offer, .. } => assert_eq!(offer.address, caller_sdp.address),
        other => panic!("expected the caller's re-INVITE, got {other:?}"),
    }
    let flowing = wait_until(WAIT, || {
        stats(&api, &session).iter().zip(&before).all(|(now, then)| {
            let ((now_in, now_out), (then_in, then_out)) = (figures(now), figures(then));
            now_in.packets >= then_in.packets + PACKETS_AFTER_REINVITE
                && now_out.packets >= then_out.packets + PACKETS_AFTER_REINVITE
        })
    });
    assert!(flowing, "media stopped after the re-INVITE: {:?}", stats(&api, &session));

    // alice hangs up: the BYE reaches bob, and the session is deleted.
    caller.command("hangup", "").expect("hangup");
    let closed = callee.wait_event(WAIT, |e| is(e, "CALL_CLOSED")).expect("the BYE reached the callee");
    assert_eq!(closed["param"], "Connection reset by peer", "baresip's word for the peer's BYE: {closed}");
    caller.wait_event(WAIT, |e| is(e, "CALL_CLOSED")).expect("the caller's call closed");
    let CallEvent::Ended { session: ended, record } = next_call_event(&b2bua, "ending the call") else {
        panic!("the call did not end next")
    };
    assert_eq!((ended.as_str(), record.hung_up_by), (session.as_str(), Leg::Caller));
    assert!(!api.session_ids().contains(&session), "the session outlived the call");
    let at_end = api.node();
    assert!(caller.stop() && callee.stop(), "baresip did not exit on SIGTERM");
    drop(b2bua);

    // What ringfwd saw.
    let counter = |name: &str| worker_total(&at_end, name);
    let names = ["rx_rtp", "rx_rtcp", "forwarded_packets", "consumed_no_subscriber", "drop_unknown_ssrc"];
    println!("ringfwd at the end: {}", names.map(|n| format!("{n}={}", counter(n))).join(" "));
    for name in at_end.workers[0].counters.keys().filter(|n| n.starts_with("drop_")) {
        assert_eq!(counter(name), worker_total(&after_setup, name), "{name} counted after the call was set up");
    }
    assert_eq!(counter("drop_wrong_source"), 0, "RTCP from port + 1 (or RTP) refused");
    let taken_before_subscribed = counter("consumed_no_subscriber");
    assert_eq!(taken_before_subscribed, worker_total(&after_setup, "consumed_no_subscriber"));
    let legs = [Leg::Caller, Leg::Callee];
    let (mut not_forwarded, mut ingress_of, mut egress_of) = (0, Vec::new(), Vec::new());
    for (leg, (stream, stats)) in legs.iter().zip(record.streams.iter().zip(&record.stats)) {
        let (ingress, egress) = figures(stats);
        println!(
            "{}: ssrc {:#x}; in {} packets, lost {}, {} SRs taken; out {} packets, {} SRs sent, {} reports taken \
             from the subscriber (rtt {} us)",
            leg.stream(),
            stream.ssrc,
            ingress.packets,
            ingress.lost,
            ingress.sender_reports,
            egress.packets,
            egress.sender_reports,
            egress.receiver_reports,
            egress.rtt_us
        );
        assert_eq!((ingress.lost, ingress.duplicates, egress.payload_type_filtered), (0, 0, 0), "{}", leg.stream());
        assert!(egress.receiver_reports > 0, "{}: the report blocks in the hearer's SRs were not taken", leg.stream());
        assert!(ingress.packets >= egress.packets, "{}: more out than in", leg.stream());
        not_forwarded += ingress.packets - egress.packets;
        ingress_of.push(ingress.packets as f64);
        egress_of.push(egress.packets as f64);
    }
    assert_eq!(not_forwarded, taken_before_subscribed, "packets taken but not forwarded");

    // What the user agents saw. Index 0 is alice (the caller), who hears bob's stream (index 1), and vice versa.
    let mut sent_before_learned = 0.0;
    for (i, (ua, tone_hz)) in [(&caller, CALLEE_TONE_HZ), (&callee, CALLER_TONE_HZ)].into_iter().enumerate() {
        let output = ua.output();
        let (sent, received) = rtp_stat(&output, "packets").expect("baresip printed its RTP statistics");
        let (errors_sent, errors_received) = rtp_stat(&output, "errors").expect("errors");
        let audio = ua.received_audio().expect("the decoded audio");
        let forwarded_to_it = egress_of[1 - i];
        println!(
            "{}: sent {sent}, received {received} of the {forwarded_to_it} ringfwd sent it; lost {:?}; heard {:.0} Hz \
             for {:?} (rms {:.2})",
            ["alice", "bob"][i],
            rtp_stat(&output, "lost"),
            audio.tone_hz,
            audio.duration(),
            audio.rms
        );
        assert_eq!((errors_sent, errors_received), (0.0, 0.0));
        assert!(received <= forwarded_to_it && received >= forwarded_to_it - PACKETS_AFTER_BYE, "packets lost");
        if let Some((_, lost)) = rtp_stat(&output, "lost") {
            assert_eq!(lost, 0.0, "baresip counted lost packets");
        }
        let tone = f64::from(tone_hz);
        assert!((audio.tone_hz - tone).abs() < tone * 0.02, "heard {:.1} Hz, not the other's {tone} Hz", audio.tone_hz);
        assert!(audio.rms > 0.1, "the received audio is too quiet: {audio:?}");
        let decoded_packets = audio.samples / SAMPLES_PER_PACKET;
        let received_packets = received as usize;
        assert!(
            decoded_packets <= received_packets && decoded_packets + JITTER_BUFFER_PACKETS >= received_packets,
            "decoded {decoded_packets} packets' worth of audio from {received_packets} received"
        );
        sent_before_learned += sent - ingress_of[i];
    }
    // Only what a user agent sent before its stream learned the SSRC was dropped, as unknown.
    assert!(sent_before_learned >= 0.0 && sent_before_learned <= counter("drop_unknown_ssrc") as f64);

    let exit = daemon.stop();
    assert!(exit.success, "ringfwd did not exit cleanly: {}", exit.stderr);
}
