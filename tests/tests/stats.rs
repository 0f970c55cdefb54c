//! Statistics through the real daemon match the truth: a publisher sends a known sequence with a known
//! share missing (lost on its way to ringfwd), reordered and duplicated packets; the stream's statistics
//! count exactly what arrived and the RFC 3550 loss within 0.5 percentage points, each subscription counts
//! what it was sent, and the session and endpoint aggregates add up.

use std::time::Duration;

use ringfwd_proto::v1;
use ringfwd_tests::api::{dev_token, endpoint, run_ringfwd, subscription, video_stream, wait_until, worker_total, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtp_packet, Peer};

const SSRC: u32 = 0x5747_0001;
const SENT_SEQS: u16 = 2000;

const CONFIG: &str = "[media]\naddresses = [\"127.0.0.1:0\"]\n\
    [interceptors]\ningress = [\"stats\"]\negress = [\"stats\"]\n\
    [telemetry]\nstats_interval_ms = 200\n";

#[test]
fn stream_endpoint_and_session_statistics_match_what_was_sent() {
    let publisher = Peer::bind("127.0.0.1");
    let subs = [Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1")];
    let daemon = Daemon::start(CONFIG);
    let media = daemon.media[0];
    let api = Api::dev(&daemon);
    api.create_session(v1::CreateSessionRequest { session_id: "room".into(), ..Default::default() }).unwrap();
    api.create_endpoint(endpoint("room", "pub", publisher.addr())).unwrap();
    for (i, peer) in subs.iter().enumerate() {
        api.create_endpoint(endpoint("room", &format!("sub{i}"), peer.addr())).unwrap();
    }
    api.create_stream(video_stream("room", "video", "pub", SSRC)).unwrap();
    for i in 0..subs.len() {
        api.create_subscription(subscription("room", &format!("s{i}"), "video", &format!("sub{i}"), 0)).unwrap();
    }

    // Sequence numbers 0..2000: every 25th never sent (4% loss), every 100th sent twice, and pairs at
    // 50 + 100k swapped (reordered).
    let mut order: Vec<u16> = (0..SENT_SEQS).filter(|seq| seq % 25 != 7).collect();
    for i in (0..order.len() - 1).filter(|i| i % 100 == 50) {
        order.swap(i, i + 1);
    }
    let duplicates: Vec<u16> = (0..SENT_SEQS).filter(|seq| seq % 100 == 3).collect();
    let mut datagrams = 0u64;
    for (n, &seq) in order.iter().enumerate() {
        let packet = rtp_packet(SSRC, seq, u32::from(seq) * 90, 96, false, &[seq as u8; 300]);
        publisher.send(&packet, media);
        datagrams += 1;
        if duplicates.contains(&seq) {
            publisher.send(&packet, media);
            datagrams += 1;
        }
        if n % 20 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let never_sent = u64::from(SENT_SEQS) - order.len() as u64;
    let received: Vec<usize> =
        subs.iter().map(|peer| peer.recv(datagrams as usize, Duration::from_secs(5)).len()).collect();
    assert_eq!(received, [datagrams as usize; 2], "every datagram reached both subscribers");

    let request = v1::GetStreamStatsRequest { session_id: "room".into(), stream_id: "video".into() };
    let mut stats = api.get_stream_stats(request.clone()).unwrap();
    let settled = wait_until(Duration::from_secs(5), || {
        stats = api.get_stream_stats(request.clone()).unwrap();
        stats.ingress.is_some_and(|s| s.packets == datagrams)
            && stats.subscriptions.iter().all(|s| s.egress.is_some_and(|e| e.packets == datagrams))
    });
    assert!(settled, "statistics never caught up: {stats:?}");
    let ingress = stats.ingress.unwrap();
    eprintln!("ingress {ingress:?}");
    assert_eq!(ingress.packets, datagrams, "packets: exact");
    assert_eq!(ingress.bytes, datagrams * (12 + 300), "bytes: exact");
    assert_eq!(ingress.duplicates, duplicates.len() as u64, "duplicates: exact");
    assert!(ingress.reordered >= 1, "the swapped pairs are seen as reordered: {}", ingress.reordered);
    // RFC 3550: expected - received, duplicates counted as received.
    assert_eq!(ingress.lost, never_sent as i64 - duplicates.len() as i64);
    let truth = never_sent as f64 / f64::from(SENT_SEQS) * 100.0;
    let reported = (ingress.lost + duplicates.len() as i64) as f64 / f64::from(SENT_SEQS) * 100.0;
    assert!((reported - truth).abs() <= 0.5, "loss {reported}% vs truth {truth}%");
    assert_eq!(worker_total(&api.node(), "rx_rtp"), datagrams);

    let session = api.get_session_stats(v1::GetSessionStatsRequest { session_id: "room".into() }).unwrap();
    assert_eq!((session.streams, session.subscriptions), (1, 2));
    assert_eq!(session.published.unwrap().packets, datagrams);
    assert_eq!(session.received.unwrap().packets, 2 * datagrams, "the two subscriptions together");
    let endpoint_stats = |id: &str| {
        api.get_endpoint_stats(v1::GetEndpointStatsRequest { session_id: "room".into(), endpoint_id: id.into() })
            .unwrap()
    };
    let publisher_side = endpoint_stats("pub");
    assert_eq!((publisher_side.streams, publisher_side.subscriptions), (1, 0));
    let subscriber_side = endpoint_stats("sub1");
    assert_eq!((subscriber_side.streams, subscriber_side.subscriptions), (0, 1));
    assert_eq!(subscriber_side.received.unwrap().packets, datagrams);
    let missing =
        api.get_endpoint_stats(v1::GetEndpointStatsRequest { session_id: "room".into(), endpoint_id: "x".into() });
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);

    // `ringfwd ctl stats` shows the same figures.
    let token = dev_token(&daemon);
    let address = daemon.api.to_string();
    let ctl = run_ringfwd(
        &["ctl", "--json", "stats", "room", "--stream", "video"],
        &[("RINGFWD_TOKEN", &token), ("RINGFWD_API", &address)],
    );
    assert!(ctl.success, "{ctl:?}");
    let json: serde_json::Value = serde_json::from_str(&ctl.stdout).expect("JSON");
    assert_eq!(json["ingress"]["packets"].as_str(), Some(datagrams.to_string().as_str()), "{json}");
    let table = run_ringfwd(&["ctl", "stats", "room"], &[("RINGFWD_TOKEN", &token), ("RINGFWD_API", &address)]);
    assert!(table.success && table.stdout.contains("received (2 subscriptions)"), "{table:?}");
}
