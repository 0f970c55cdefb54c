//! A native plugin in a program that links ringfwd as a library: the `max_pps` example
//! (controlplane/examples/max_pps.rs), a packet-rate cap registered by name for both chains, run as a daemon.
//!
//! Named in the config's default ingress chain, it caps every stream; named by the API on one subscription, it
//! caps that subscriber only while another subscriber of the same stream gets every packet. The subscribers check
//! what arrives byte for byte (the first packets of the burst, in order) and the workers count the rest as
//! `drop_plugin`. A name this binary does not register is refused where it is written: by the API with the
//! field, by the config with the key (also by the plain `ringfwd`, which registers no plugin).

use std::time::{Duration, Instant};

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, expect_status, subscription, video_stream, wait_until, worker_total, Api, Code};
use ringfwd_tests::daemon::{example, run_to_exit, Daemon};
use ringfwd_tests::peer::{rtp_packet, Peer};

const SSRC: u32 = 0x6d61_7870;
const MEDIA: &str = "[placement]\nworker_cores = [0]\n[media]\naddresses = [\"127.0.0.1:0\"]\n";
const WAIT: Duration = Duration::from_secs(5);
/// A burst sent in a few milliseconds: well within the plugin's one-second window.
const BURST: u16 = 100;

/// The `max_pps` example with the cap `limit`, on `config`.
fn start(config: &str, limit: u32) -> Daemon {
    let limit = limit.to_string();
    Daemon::start_program(&example("max_pps"), config, &[("MAX_PPS_LIMIT", &limit)])
        .unwrap_or_else(|stderr| panic!("max_pps did not become ready; stderr:\n{stderr}"))
}

/// The packets of the burst, by index.
fn packet(seq: u16) -> Vec<u8> {
    rtp_packet(SSRC, seq, u32::from(seq) * 3000, 96, false, &[seq as u8; 160])
}

/// Sends the burst and answers how long sending it took.
fn send_burst(publisher: &Peer, to: std::net::SocketAddr) -> Duration {
    let t0 = Instant::now();
    for seq in 0..BURST {
        publisher.send(&packet(seq), to);
    }
    t0.elapsed()
}

/// Creates session "s" with publisher "pub" (stream "v") and one subscriber endpoint per `subscribers` entry,
/// subscribed with that chain (`None`: the config's default egress chain).
/// Answers the stream's view and the subscriptions'.
fn route(
    api: &Api,
    publisher: &Peer,
    subscribers: &[(&str, &Peer, Option<&[&str]>)],
) -> (v1::Stream, Vec<v1::Subscription>) {
    api.session("s").expect("session");
    api.create_endpoint(endpoint("s", "pub", publisher.addr())).expect("publisher");
    let stream = api.create_stream(video_stream("s", "v", "pub", SSRC)).expect("stream");
    let subscriptions = subscribers
        .iter()
        .map(|(id, peer, chain)| {
            api.create_endpoint(endpoint("s", id, peer.addr())).expect("subscriber");
            let request = v1::CreateSubscriptionRequest {
                interceptors: chain
                    .map(|names| v1::InterceptorChain { names: names.iter().map(|n| n.to_string()).collect() }),
                ..subscription("s", id, "v", id, 0)
            };
            api.create_subscription(request).expect("subscription")
        })
        .collect();
    (stream, subscriptions)
}

/// Receives what the cap lets through (`expected` packets), then for a while more to see that nothing else comes.
fn received(peer: &Peer, expected: usize) -> Vec<Vec<u8>> {
    let mut got = peer.recv(expected, WAIT);
    got.extend(peer.drain(Duration::from_millis(300)));
    got
}

/// The burst took well under the window, so exactly the first `limit` packets pass, unchanged and in order.
#[track_caller]
fn assert_first(got: &[Vec<u8>], limit: u16, burst_took: Duration) {
    assert!(burst_took < Duration::from_millis(500), "the burst took {burst_took:?}: not within one window");
    let expected: Vec<Vec<u8>> = (0..limit).map(packet).collect();
    assert_eq!(got.len(), expected.len(), "received {} packets, the cap is {limit}", got.len());
    assert!(got == expected, "the subscriber did not get the burst's first {limit} packets unchanged");
}

/// The drops the workers counted for plugins, once they reach `expected`.
fn wait_drops(api: &Api, expected: u64) -> u64 {
    let mut drops = 0;
    wait_until(WAIT, || {
        drops = worker_total(&api.node(), "drop_plugin");
        drops >= expected
    });
    drops
}

#[test]
fn a_plugin_named_in_the_config_caps_every_stream_and_counts_what_it_drops() {
    let config = format!("{MEDIA}[interceptors]\ningress = [\"max_pps\"]\negress = []\n");
    let daemon = start(&config, 20);
    let api = Api::dev(&daemon);
    let (publisher, subscriber) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let (stream, _) = route(&api, &publisher, &[("sub", &subscriber, None)]);
    assert_eq!(stream.interceptors, ["max_pps"], "the stream runs the config's chain, plugin included");

    let took = send_burst(&publisher, daemon.media[0]);
    assert_first(&received(&subscriber, 20), 20, took);
    assert_eq!(wait_drops(&api, u64::from(BURST) - 20), u64::from(BURST) - 20, "every packet over the cap is counted");
    let exit = daemon.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.total("plugin_failures"), 0);
    assert_eq!(exit.total("forwarded_packets"), 20);
}

#[test]
fn the_api_puts_the_plugin_on_one_subscription_and_refuses_names_it_does_not_know() {
    let daemon = start(MEDIA, 10);
    let api = Api::dev(&daemon);
    let (publisher, capped, full) = (Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"));
    let (_, views) =
        route(&api, &publisher, &[("capped", &capped, Some(&["stats", "max_pps"])), ("full", &full, None)]);
    // Plugins run after payload_type_filter and before stats, whatever the order the request lists them in.
    assert_eq!(views[0].interceptors, ["max_pps", "stats"]);
    assert!(views[1].interceptors.is_empty(), "the test's default egress chain is empty");

    let unknown = v1::CreateSubscriptionRequest {
        interceptors: Some(v1::InterceptorChain { names: vec!["stats".into(), "max_ppz".into()] }),
        ..subscription("s", "other", "v", "full", 0)
    };
    expect_status(api.create_subscription(unknown), Code::InvalidArgument, &["interceptors.names[1]", "max_ppz"]);
    let too_many = v1::CreateSubscriptionRequest {
        interceptors: Some(v1::InterceptorChain { names: vec!["max_pps".into(), "max_pps".into()] }),
        ..subscription("s", "other", "v", "full", 0)
    };
    expect_status(api.create_subscription(too_many), Code::InvalidArgument, &["interceptors.names[1]", "twice"]);

    let took = send_burst(&publisher, daemon.media[0]);
    let all: Vec<Vec<u8>> = (0..BURST).map(packet).collect();
    assert!(received(&full, all.len()) == all, "the uncapped subscriber gets every packet unchanged");
    assert_first(&received(&capped, 10), 10, took);
    assert_eq!(wait_drops(&api, u64::from(BURST) - 10), u64::from(BURST) - 10);
    assert!(daemon.stop().success);
}

#[test]
fn a_plugin_name_the_binary_does_not_register_is_refused_by_key() {
    let config = format!("{MEDIA}[interceptors]\ningress = [\"stats\", \"max_pps\"]\negress = []\n");
    // The plain ringfwd registers no plugin: it refuses at start-up and in --check-config, naming the key.
    let stderr = Daemon::start_refused(&config);
    assert!(stderr.contains("interceptors.ingress[1]") && stderr.contains("max_pps"), "{stderr}");
    let (ok, _, stderr) = run_to_exit(&["--check-config"], Some(&config));
    assert!(!ok && stderr.contains("interceptors.ingress[1]"), "{stderr}");
    // The example registers it.
    let daemon = start(&config, 5);
    assert!(daemon.stop().success);
    // And refuses a cap it cannot apply, naming the variable.
    match Daemon::start_program(&example("max_pps"), MEDIA, &[("MAX_PPS_LIMIT", "0")]) {
        Ok(daemon) => panic!("max_pps started with a cap of 0: {:?}", daemon.stop()),
        Err(stderr) => assert!(stderr.contains("MAX_PPS_LIMIT"), "{stderr}"),
    }
}
