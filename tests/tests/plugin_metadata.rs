//! A plugin that reads its stream's metadata (ABI v1 import `metadata_of`): the C example `plugins/examples/mute.c`,
//! loaded from the config by the plain `ringfwd` binary on every stream's ingress chain, drops the RTP of a stream
//! whose metadata, its publisher's or its session's says `app.muted=1`. A controller mutes and unmutes a stream with SetMetadata and DeleteMetadata
//! while its publisher sends: the subscriber receives every packet byte for byte before, none while muted (the
//! workers count each as dropped by a plugin), and every one again after. A stream created with `app.muted=1`
//! is muted from its first packet; so is a muted stream restored after a restart (from the state directory), and a
//! muted stream that moved to another worker when it learned its SSRC. Muting a session mutes each of its streams,
//! muting an endpoint only the streams it publishes. On egress chains the plugin also reads the subscriber's
//! endpoint: a listener deafened with `app.deafened=1` receives nothing while another listener of the same stream
//! receives every packet byte for byte, and a subscription created for a deafened listener is deafened from its
//! first packet.

use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, metadata_target, subscription, video_stream, wait_until, worker_total, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtp_packet, Peer};

const WAIT: Duration = Duration::from_secs(5);
const SSRC: u32 = 0x6d75_7465;
const CREATED_MUTED_SSRC: u32 = 0x6d75_7466;
/// Packets per phase.
const COUNT: u16 = 30;

fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
    rtp_packet(ssrc, seq, u32::from(seq) * 3000, 96, seq % 10 == 9, &[seq as u8; 160])
}

/// Sends packets `seqs` of `ssrc` from `publisher` to the daemon, paced well inside the socket buffers.
fn send(publisher: &Peer, daemon: &Daemon, ssrc: u32, seqs: std::ops::Range<u16>) -> Vec<Vec<u8>> {
    let sent: Vec<Vec<u8>> = seqs.map(|seq| packet(ssrc, seq)).collect();
    for (index, pkt) in sent.iter().enumerate() {
        publisher.send(pkt, daemon.media[0]);
        if index % 10 == 9 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    sent
}

/// Waits until the workers counted `at_least` packets dropped by a plugin; answers the count.
fn plugin_drops(api: &Api, at_least: u64) -> u64 {
    let mut drops = 0;
    wait_until(WAIT, || {
        drops = worker_total(&api.node(), "drop_plugin");
        drops >= at_least
    });
    drops
}

/// A config with `head` (placement, telemetry), one media address, and the mute plugin on every stream's ingress.
fn mute_config(mute: &std::path::Path, head: &str) -> String {
    format!(
        "{head}[media]\naddresses = [\"127.0.0.1:0\"]\n[[plugins]]\nname = \"mute\"\npath = \"{}\"\nchains = \
         [\"ingress\"]\n[interceptors]\ningress = [\"mute\"]\negress = []\n",
        mute.display()
    )
}

/// Deletes `app.muted` from `target`'s metadata.
fn unmute(api: &Api, target: &v1::MetadataTarget) {
    delete_key(api, target, "app.muted");
}

/// Deletes `key` from `target`'s metadata.
fn delete_key(api: &Api, target: &v1::MetadataTarget, key: &str) {
    let deletion = v1::MetadataDeletion { key: key.into(), expected_version: None };
    let request = v1::DeleteMetadataRequest { target: Some(target.clone()), deletions: vec![deletion] };
    api.delete_metadata(request).expect("DeleteMetadata");
}

/// Session `s`: endpoint `pub` (at `publisher`) publishing `stream`, endpoint `sub` (at `subscriber`) subscribed to it.
fn route(api: &Api, publisher: &Peer, subscriber: &Peer, stream: v1::CreateStreamRequest) {
    api.session("s").expect("session");
    api.create_endpoint(endpoint("s", "pub", publisher.addr())).expect("publisher");
    api.create_stream(stream).expect("stream");
    api.create_endpoint(endpoint("s", "sub", subscriber.addr())).expect("subscriber");
    api.create_subscription(subscription("s", "sub", "v", "sub", 0)).expect("subscription");
}

#[test]
fn a_stream_muted_and_unmuted_through_its_metadata_by_the_c_mute_plugin() {
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    let mute = modules.path().join("mute.wasm");
    let config = mute_config(&mute, "[placement]\nworker_cores = [0]\n");
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    route(&api, &publisher, &subscriber, video_stream("s", "v", "pub", SSRC));
    let stream = metadata_target("s", "", "v");

    // Unmuted: every packet, byte for byte (no rewrite on this subscription).
    api.set_pairs(&stream, &[("app.user", "ana")]);
    let sent = send(&publisher, &daemon, SSRC, 0..COUNT);
    let got = subscriber.recv_rtp(sent.len(), WAIT);
    assert!(got == sent, "before muting: {} of {} packets, or not byte for byte", got.len(), sent.len());
    assert_eq!(worker_total(&api.node(), "drop_plugin"), 0);

    // Muted: SetMetadata answers once the stream's worker holds the new snapshot, so every packet after is dropped.
    api.set_pairs(&stream, &[("app.muted", "1")]);
    send(&publisher, &daemon, SSRC, COUNT..2 * COUNT);
    assert_eq!(plugin_drops(&api, u64::from(COUNT)), u64::from(COUNT), "each muted packet dropped by the plugin");
    let leaked = subscriber.drain(Duration::from_millis(300));
    assert!(leaked.iter().all(|d| (200..=204).contains(&d[1])), "RTP reached the subscriber while muted");

    // Another value of the key does not mute.
    api.set_pairs(&stream, &[("app.muted", "0")]);
    let sent = send(&publisher, &daemon, SSRC, 2 * COUNT..3 * COUNT);
    let got = subscriber.recv_rtp(sent.len(), WAIT);
    assert!(got == sent, "app.muted=0: {} of {} packets, or not byte for byte", got.len(), sent.len());

    // Muted again, then the key deleted: packets flow again.
    api.set_pairs(&stream, &[("app.muted", "1")]);
    send(&publisher, &daemon, SSRC, 3 * COUNT..4 * COUNT);
    plugin_drops(&api, 2 * u64::from(COUNT));
    unmute(&api, &stream);
    let sent = send(&publisher, &daemon, SSRC, 4 * COUNT..5 * COUNT);
    let got = subscriber.recv_rtp(sent.len(), WAIT);
    assert!(got == sent, "after DeleteMetadata: {} of {} packets, or not byte for byte", got.len(), sent.len());
    assert_eq!(worker_total(&api.node(), "drop_plugin"), 2 * u64::from(COUNT), "nothing dropped once unmuted");

    // A stream created muted: its metadata reaches its worker with it.
    let (publisher2, subscriber2) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api.create_endpoint(endpoint("s", "pub2", publisher2.addr())).expect("publisher");
    let request = v1::CreateStreamRequest {
        metadata: vec![ringfwd_tests::api::metadata_write("app.muted", "1")],
        ..video_stream("s", "w", "pub2", CREATED_MUTED_SSRC)
    };
    api.create_stream(request).expect("a stream created muted");
    api.create_endpoint(endpoint("s", "sub2", subscriber2.addr())).expect("subscriber");
    api.create_subscription(subscription("s", "sub2", "w", "sub2", 0)).expect("subscription");
    send(&publisher2, &daemon, CREATED_MUTED_SSRC, 0..COUNT);
    assert_eq!(plugin_drops(&api, 3 * u64::from(COUNT)), 3 * u64::from(COUNT), "created muted: every packet dropped");
    let leaked = subscriber2.drain(Duration::from_millis(300));
    assert!(leaked.iter().all(|d| (200..=204).contains(&d[1])), "RTP of a stream created muted got through");

    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.total("drop_plugin"), 3 * u64::from(COUNT));
    assert_eq!(exit.total("forwarded_packets"), 3 * u64::from(COUNT));
    assert_eq!(exit.total("plugin_failures"), 0);
}

#[test]
fn a_session_and_an_endpoint_muted_through_their_metadata_mute_their_streams() {
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    let mute = modules.path().join("mute.wasm");
    let config = mute_config(&mute, "[placement]\nworker_cores = [0]\n");
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    // Two streams of session s: v published by pub, w by pub2.
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    route(&api, &publisher, &subscriber, video_stream("s", "v", "pub", SSRC));
    let (publisher2, subscriber2) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api.create_endpoint(endpoint("s", "pub2", publisher2.addr())).expect("publisher");
    api.create_stream(video_stream("s", "w", "pub2", CREATED_MUTED_SSRC)).expect("stream");
    api.create_endpoint(endpoint("s", "sub2", subscriber2.addr())).expect("subscriber");
    api.create_subscription(subscription("s", "sub2", "w", "sub2", 0)).expect("subscription");
    let (session, endpoint_pub) = (metadata_target("s", "", ""), metadata_target("s", "pub", ""));
    let both = |range: std::ops::Range<u16>| {
        (send(&publisher, &daemon, SSRC, range.clone()), send(&publisher2, &daemon, CREATED_MUTED_SSRC, range))
    };
    let delivered = |(sent, sent2): (Vec<Vec<u8>>, Vec<Vec<u8>>), what: &str| {
        let (got, got2) = (subscriber.recv_rtp(sent.len(), WAIT), subscriber2.recv_rtp(sent2.len(), WAIT));
        assert!(got == sent && got2 == sent2, "{what}: {} and {} of {} packets", got.len(), got2.len(), sent.len());
    };
    let count = u64::from(COUNT);
    delivered(both(0..COUNT), "before muting");

    // The session muted: both its streams' packets are dropped by the plugin.
    api.set_pairs(&session, &[("app.muted", "1")]);
    both(COUNT..2 * COUNT);
    assert_eq!(plugin_drops(&api, 2 * count), 2 * count, "a muted session: every packet of both streams dropped");
    let leaked = [subscriber.drain(Duration::from_millis(300)), subscriber2.drain(Duration::from_millis(50))].concat();
    assert!(leaked.iter().all(|d| (200..=204).contains(&d[1])), "RTP reached a subscriber while the session was muted");
    unmute(&api, &session);
    delivered(both(2 * COUNT..3 * COUNT), "the session unmuted");

    // The endpoint pub muted: only the stream it publishes.
    api.set_pairs(&endpoint_pub, &[("app.muted", "1")]);
    send(&publisher, &daemon, SSRC, 3 * COUNT..4 * COUNT);
    let sent2 = send(&publisher2, &daemon, CREATED_MUTED_SSRC, 3 * COUNT..4 * COUNT);
    assert_eq!(subscriber2.recv_rtp(sent2.len(), WAIT), sent2, "pub2's stream is not muted by pub's metadata");
    assert_eq!(plugin_drops(&api, 3 * count), 3 * count, "pub's stream muted through its endpoint");
    unmute(&api, &endpoint_pub);
    delivered(both(4 * COUNT..5 * COUNT), "the endpoint unmuted");

    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.total("drop_plugin"), 3 * count);
    assert_eq!(exit.total("plugin_failures"), 0);
}

#[test]
fn a_listener_deafened_through_its_endpoints_metadata_receives_nothing_while_another_still_does() {
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    let mute = modules.path().join("mute.wasm");
    let config = format!(
        "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[[plugins]]\nname = \"mute\"\n\
         path = \"{}\"\nchains = [\"egress\"]\n[interceptors]\ningress = []\negress = [\"mute\"]\n",
        mute.display()
    );
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    // Stream v of pub; listeners a and b subscribed to it.
    let (publisher, a, b) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    api.session("s").expect("session");
    api.create_endpoint(endpoint("s", "pub", publisher.addr())).expect("publisher");
    api.create_stream(video_stream("s", "v", "pub", SSRC)).expect("stream");
    for (id, peer) in [("a", &a), ("b", &b)] {
        api.create_endpoint(endpoint("s", id, peer.addr())).expect("listener");
        api.create_subscription(subscription("s", id, "v", id, 0)).expect("subscription");
    }
    let count = u64::from(COUNT);
    let sent = send(&publisher, &daemon, SSRC, 0..COUNT);
    assert_eq!((a.recv_rtp(sent.len(), WAIT), b.recv_rtp(sent.len(), WAIT)), (sent.clone(), sent), "before");

    // a deafened: b still receives every packet, a none (each of a's copies dropped by the plugin).
    let listener_a = metadata_target("s", "a", "");
    api.set_pairs(&listener_a, &[("app.deafened", "1")]);
    let sent = send(&publisher, &daemon, SSRC, COUNT..2 * COUNT);
    assert_eq!(b.recv_rtp(sent.len(), WAIT), sent, "the other listener hears the stream");
    assert_eq!(plugin_drops(&api, count), count, "every copy to the deafened listener dropped");
    // A subscription created for a while deafened: its worker is given a's metadata with it.
    let publisher2 = Peer::bind("127.0.0.1");
    api.create_endpoint(endpoint("s", "pub2", publisher2.addr())).expect("publisher");
    api.create_stream(video_stream("s", "w", "pub2", CREATED_MUTED_SSRC)).expect("stream");
    api.create_subscription(subscription("s", "a-w", "w", "a", 0)).expect("subscription");
    send(&publisher2, &daemon, CREATED_MUTED_SSRC, 0..COUNT);
    assert_eq!(plugin_drops(&api, 2 * count), 2 * count, "deafened from its first packet");
    let leaked = a.drain(Duration::from_millis(300));
    assert!(leaked.iter().all(|d| (200..=204).contains(&d[1])), "RTP reached the deafened listener");

    // a hears again, both streams, byte for byte.
    delete_key(&api, &listener_a, "app.deafened");
    let (sent, sent2) = (
        send(&publisher, &daemon, SSRC, 2 * COUNT..3 * COUNT),
        send(&publisher2, &daemon, CREATED_MUTED_SSRC, COUNT..2 * COUNT),
    );
    let got = a.recv_rtp(sent.len() + sent2.len(), WAIT);
    let (got_v, got_w): (Vec<Vec<u8>>, Vec<Vec<u8>>) = got.into_iter().partition(|d| d[8..12] == SSRC.to_be_bytes());
    assert!(got_v == sent && got_w == sent2, "after DeleteMetadata: {} and {} packets", got_v.len(), got_w.len());
    assert_eq!(b.recv_rtp(sent.len(), WAIT), sent);

    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.total("drop_plugin"), 2 * count);
    assert_eq!(exit.total("plugin_failures"), 0);
}

#[test]
fn a_muted_stream_stays_muted_across_a_restart_from_the_state_directory() {
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    let mute = modules.path().join("mute.wasm");
    let config = mute_config(&mute, "[placement]\nworker_cores = [0]\n");
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    route(&api, &publisher, &subscriber, video_stream("s", "v", "pub", SSRC));
    let stream = metadata_target("s", "", "v");
    api.set_pairs(&stream, &[("app.muted", "1")]);
    drop(api);
    let (exit, dir) = daemon.stop_for_restart();
    assert!(exit.success, "{}", exit.stderr);

    // The restored stream's worker gets its kept metadata: muted from the first packet after the restart.
    let daemon = Daemon::restart_in(&config, dir);
    let api = Api::dev(&daemon);
    assert_eq!(api.metadata_pairs(&stream), [("app.muted".to_owned(), "1".to_owned())], "the metadata was kept");
    send(&publisher, &daemon, SSRC, 0..COUNT);
    assert_eq!(plugin_drops(&api, u64::from(COUNT)), u64::from(COUNT), "restored muted: every packet dropped");
    let leaked = subscriber.drain(Duration::from_millis(300));
    assert!(leaked.iter().all(|d| (200..=204).contains(&d[1])), "RTP reached the subscriber while muted");

    unmute(&api, &stream);
    let sent = send(&publisher, &daemon, SSRC, COUNT..2 * COUNT);
    let got = subscriber.recv_rtp(sent.len(), WAIT);
    assert!(got == sent, "after DeleteMetadata: {} of {} packets, or not byte for byte", got.len(), sent.len());
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.total("drop_plugin"), u64::from(COUNT));
}

#[test]
fn a_stream_that_learns_an_ssrc_of_another_worker_keeps_its_metadata_there() {
    let Some(modules) = ringfwd_tests::wasm::build_c_examples() else { return };
    let mute = modules.path().join("mute.wasm");
    let config = mute_config(&mute, "[placement]\nworker_cores = [0, 1]\n[telemetry]\nstats_interval_ms = 200\n");
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    // Declared without an SSRC (on worker 0), created muted; its publisher sends an odd SSRC, which worker 1 owns:
    // the stream moves there when it learns it, and its metadata must follow.
    let request = v1::CreateStreamRequest {
        metadata: vec![ringfwd_tests::api::metadata_write("app.muted", "1")],
        ..video_stream("s", "v", "pub", 0)
    };
    route(&api, &publisher, &subscriber, request);
    let learned_ssrc = SSRC | 1;
    let first = send(&publisher, &daemon, learned_ssrc, 0..3);
    let adopted = api.wait_event("s", WAIT, |kind| match kind {
        v1::event::Kind::StreamSsrcChanged(changed) => Some(changed.ssrc),
        _ => None,
    });
    assert_eq!(adopted, Some(learned_ssrc), "the stream learned the SSRC its publisher sends");
    let got = api.get_stream(v1::GetStreamRequest { session_id: "s".into(), stream_id: "v".into() });
    assert_eq!(got.expect("GetStream").ssrc, learned_ssrc);
    let streams_on = |worker: usize| {
        let node = api.node();
        node.workers.iter().find(|w| w.index as usize == worker).and_then(|w| w.counters.get("streams").copied())
    };
    assert!(wait_until(WAIT, || streams_on(1) == Some(1) && streams_on(0) == Some(0)), "the stream moved to worker 1");

    let before = worker_total(&api.node(), "drop_plugin");
    send(&publisher, &daemon, learned_ssrc, 3..3 + COUNT);
    let drops = plugin_drops(&api, before + u64::from(COUNT)) - before;
    assert_eq!(drops, u64::from(COUNT), "muted on the worker it moved to");
    let leaked = subscriber.drain(Duration::from_millis(300));
    let rtp = |d: &Vec<u8>| !(200..=204).contains(&d[1]);
    let leaked: Vec<&Vec<u8>> = leaked.iter().filter(|d| rtp(d)).collect();
    assert!(leaked.iter().all(|d| first.contains(d)), "RTP after the move reached the subscriber while muted");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
}
