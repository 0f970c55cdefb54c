//! Loss repair through the real daemon: a subscriber loses 5% of its packets, asks for them with RFC 4585
//! generic NACKs, and gets them back from ringfwd's retransmission cache; the statistics API reports the
//! loss and the repairs.
//!
//! The loss is on the subscriber's side of ringfwd (the path the cache repairs): the subscriber discards
//! the first copy of every twentieth sequence number, as a lossy last mile would, notices the gap from
//! the sequence numbers, and NACKs what is missing (again every 100 ms, at most 5 times). Two workers, so
//! the subscriber's RTCP may arrive on the worker that does not own the stream and be handed over.
//!
//! And loss on the publisher's side: the publisher never sends the first copy of every twentieth packet;
//! ringfwd's NACK generator asks it again, the publisher answers from its history, and the subscriber gets
//! every packet (late, or from the cache when its own NACK comes after the repair reached ringfwd).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use ringfwd_proto::v1;
use ringfwd_tests::api::{endpoint, subscription, video_stream, wait_until, worker_total, Api};
use ringfwd_tests::daemon::Daemon;
use ringfwd_tests::peer::{rtcp_generic_nack, rtcp_generic_nack_seqs, rtp_fields, rtp_packet, Peer};

const SSRC: u32 = 0x4e41_434b;
/// Odd, like `SSRC`: owned by the stream's worker (of two), where this subscriber's RTCP lands.
const SUBSCRIBER_SSRC: u32 = 0x5ab5_0001;
const PACKETS: u16 = 2000;
const FIRST_SEQ: u16 = 65_000; // crosses the 16-bit wrap
const NACK_RETRY: Duration = Duration::from_millis(100);
const NACK_TRIES: u32 = 5;

const CONFIG: &str = "[placement]\nworker_cores = [0, 1]\n[media]\naddresses = [\"127.0.0.1:0\"]\n\
    [interceptors]\ningress = [\"stats\", \"keyframe_throttle\", \"nack_cache\", \"receiver_reports\"]\n\
    egress = [\"stats\", \"sender_reports\"]\n\
    [telemetry]\nstats_interval_ms = 200\nstats_grace_ms = 5000\n";

/// A daemon started with a config, routing one call: "pub" publishes stream "video" (`SSRC`), "sub" receives it
/// through subscription "s" with out SSRC `out_ssrc` (0: the publisher's).
struct Call {
    publisher: Peer,
    subscriber: Peer,
    daemon: Daemon,
    media: SocketAddr,
    api: Api,
    stream: v1::Stream,
    subscription: v1::Subscription,
}

impl Call {
    fn start(config: &str, out_ssrc: u32) -> Call {
        let publisher = Peer::bind("127.0.0.1");
        let subscriber = Peer::bind("127.0.0.1");
        let daemon = Daemon::start(config);
        let media = daemon.media[0];
        let api = Api::dev(&daemon);
        api.create_session(v1::CreateSessionRequest { session_id: "call".into(), ..Default::default() }).unwrap();
        api.create_endpoint(endpoint("call", "pub", publisher.addr())).unwrap();
        api.create_endpoint(endpoint("call", "sub", subscriber.addr())).unwrap();
        let stream = api.create_stream(video_stream("call", "video", "pub", SSRC)).unwrap();
        let subscription = api.create_subscription(subscription("call", "s", "video", "sub", out_ssrc)).unwrap();
        Call { publisher, subscriber, daemon, media, api, stream, subscription }
    }
}

/// The subscriber's view: what arrived, what is missing, what it asked for.
#[derive(Default)]
struct Receiver {
    /// Whether it loses the first copy of every twentieth sequence number (the last mile).
    last_mile_loss: bool,
    /// The SSRC it receives (that its NACKs name): `SSRC`, or the subscription's out SSRC.
    media_ssrc: u32,
    /// Its own SSRC (its NACKs' sender), which steers its RTCP to a worker.
    own_ssrc: u32,
    /// Sequence numbers received (after the simulated loss).
    received: BTreeSet<u16>,
    /// Dropped once on purpose already.
    dropped: BTreeSet<u16>,
    /// Missing: when last NACKed and how often.
    missing: BTreeMap<u16, (Instant, u32)>,
    /// Highest sequence number seen, as an offset from FIRST_SEQ.
    highest: Option<u16>,
    /// Missing packets that arrived after a NACK.
    repaired: u64,
    /// Sequence numbers asked for, counting retries.
    nack_items: u64,
    /// NACK packets sent.
    nacks: u64,
}

impl Receiver {
    /// Handles one datagram; returns the sequence numbers to NACK now.
    fn on_packet(&mut self, packet: &[u8], now: Instant) -> Vec<u16> {
        if packet.len() < 12 || (200..=207).contains(&packet[1]) {
            return Vec::new(); // RTCP from ringfwd (its sender reports)
        }
        let seq = rtp_fields(packet).seq;
        let offset = seq.wrapping_sub(FIRST_SEQ);
        if self.last_mile_loss && offset % 20 == 3 && self.dropped.insert(seq) {
            return Vec::new(); // lost on the last mile, the first time
        }
        if self.missing.remove(&seq).is_some() {
            self.repaired += 1;
        }
        self.received.insert(seq);
        let mut ask = Vec::new();
        let next = self.highest.map_or(0, |h| h + 1);
        if offset >= next {
            for gap in next..offset {
                let lost = FIRST_SEQ.wrapping_add(gap);
                if !self.received.contains(&lost) {
                    self.missing.insert(lost, (now, 1));
                    ask.push(lost);
                }
            }
            self.highest = Some(offset);
        }
        ask
    }

    /// The missing sequence numbers whose NACK is due again.
    fn retries(&mut self, now: Instant) -> Vec<u16> {
        let mut ask = Vec::new();
        for (&seq, (last, tries)) in self.missing.iter_mut() {
            if *tries < NACK_TRIES && now.duration_since(*last) >= NACK_RETRY {
                *last = now;
                *tries += 1;
                ask.push(seq);
            }
        }
        ask
    }

    /// Receives on `peer` and NACKs to `to` what is missing until every packet is in, or 2 s pass with
    /// nothing arriving (20 s at most).
    fn receive_all(&mut self, peer: &Peer, to: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            let now = Instant::now();
            let got = peer.recv(64, Duration::from_millis(20));
            if !got.is_empty() {
                quiet_since = now;
            }
            for datagram in got {
                let ask = self.on_packet(&datagram, now);
                self.nack(peer, to, &ask);
            }
            let retry = self.retries(now);
            self.nack(peer, to, &retry);
            let all_in = self.highest == Some(PACKETS - 1) && self.missing.is_empty();
            if all_in || now.duration_since(quiet_since) > Duration::from_secs(2) {
                break;
            }
        }
    }

    fn nack(&mut self, peer: &Peer, to: SocketAddr, seqs: &[u16]) {
        if seqs.is_empty() {
            return;
        }
        peer.send(&rtcp_generic_nack(self.own_ssrc, self.media_ssrc, seqs), to);
        self.nacks += 1;
        self.nack_items += seqs.len() as u64;
    }
}

#[test]
fn nacked_packets_come_back_from_the_cache_and_the_stats_say_so() {
    last_mile_repair(0, SUBSCRIBER_SSRC);
}

/// With an out SSRC the other worker owns, the subscriber's NACKs name that SSRC and its own SSRC steers them
/// to that worker too: they reach the subscription's worker along the feedback route the control plane gave
/// the other worker (handed over once).
#[test]
fn nacks_about_a_rewritten_ssrc_reach_the_subscription_on_the_other_worker() {
    last_mile_repair(SSRC ^ 1, SUBSCRIBER_SSRC ^ 3);
}

/// The last-mile loss run with subscription out SSRC `out_ssrc` (0: the publisher's) and a subscriber whose
/// own SSRC is `own_ssrc`.
fn last_mile_repair(out_ssrc: u32, own_ssrc: u32) {
    let Call { publisher, subscriber, daemon: _daemon, media, api, stream, subscription } =
        Call::start(CONFIG, out_ssrc);
    assert_eq!(stream.interceptors, ["stats", "keyframe_throttle", "nack_cache", "receiver_reports"]);
    assert_eq!(subscription.interceptors, ["stats", "sender_reports"]);

    let sender = thread::spawn(move || {
        let start = Instant::now();
        for i in 0..PACKETS {
            let seq = FIRST_SEQ.wrapping_add(i);
            publisher.send(&rtp_packet(SSRC, seq, u32::from(i) * 3000, 96, false, &[i as u8; 1000]), media);
            // 1 packet per millisecond, paced against the start so a slow scheduler does not stretch the run.
            let due = start + Duration::from_millis(u64::from(i) + 1);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
        publisher
    });

    let media_ssrc = if out_ssrc == 0 { SSRC } else { out_ssrc };
    let mut receiver = Receiver { last_mile_loss: true, media_ssrc, own_ssrc, ..Receiver::default() };
    receiver.receive_all(&subscriber, media);
    let _publisher = sender.join().expect("sender");

    let dropped = receiver.dropped.len() as u64;
    let residual = u64::from(PACKETS) - receiver.received.len() as u64;
    eprintln!(
        "dropped on purpose {dropped}, repaired {}, residual {residual}, NACKs {} for {} sequence numbers",
        receiver.repaired, receiver.nacks, receiver.nack_items
    );
    assert_eq!(dropped, u64::from(PACKETS) / 20, "the subscriber lost 5% of the first copies");
    assert!(residual * 1000 < u64::from(PACKETS), "residual loss {residual} of {PACKETS} is not below 0.1%");
    assert_eq!(receiver.repaired + residual, dropped, "every lost packet came back or is counted as residual");

    // The workers' counters and the statistics API agree with what the subscriber saw.
    let retransmitted = |api: &Api| worker_total(&api.node(), "retransmissions");
    assert!(wait_until(Duration::from_secs(5), || retransmitted(&api) >= receiver.repaired));
    let stats_request = v1::GetStreamStatsRequest { session_id: "call".into(), stream_id: "video".into() };
    let mut stats = api.get_stream_stats(stats_request.clone()).unwrap();
    let settled = wait_until(Duration::from_secs(5), || {
        stats = api.get_stream_stats(stats_request.clone()).unwrap();
        let ingress = stats.ingress.unwrap_or_default();
        let egress = stats.subscriptions.first().and_then(|s| s.egress).unwrap_or_default();
        ingress.packets == u64::from(PACKETS) && egress.nack_items_received == receiver.nack_items
    });
    assert!(settled, "statistics never caught up: {stats:?}");
    let ingress = stats.ingress.expect("stream statistics");
    let egress = stats.subscriptions[0].egress.expect("subscription statistics");
    assert_eq!(stats.subscriptions[0].subscription_id, "s");
    eprintln!("ingress {ingress:?}\negress {egress:?}");
    // The publisher's path lost nothing; the subscriber's NACKs and the repairs are counted exactly.
    assert_eq!((ingress.lost, ingress.duplicates), (0, 0));
    assert_eq!(ingress.nack_items_received, receiver.nack_items);
    assert_eq!(ingress.retransmitted, retransmitted(&api));
    assert!(ingress.retransmitted >= receiver.repaired);
    assert_eq!(egress.nacks_received, receiver.nacks);
    assert!(egress.packets >= u64::from(PACKETS), "every packet was sent at least once: {}", egress.packets);
    assert!(egress.sender_reports > 0, "ringfwd sent the subscriber sender reports");
    assert!(ingress.receiver_reports > 0, "ringfwd sent the publisher receiver reports");
    assert_eq!(worker_total(&api.node(), "drop_malformed"), 0);
    if own_ssrc != SUBSCRIBER_SSRC {
        // Its NACKs landed on the other worker and were handed over along the route, every one of them.
        let handed = worker_total(&api.node(), "handover_in");
        assert!(handed >= receiver.nacks, "{handed} handed over for {} NACKs", receiver.nacks);
    }
}

const CONFIG_WITH_GENERATOR: &str = "[placement]\nworker_cores = [0, 1]\n[media]\naddresses = [\"127.0.0.1:0\"]\n\
    [interceptors]\ningress = [\"stats\", \"nack_generator\", \"keyframe_throttle\", \"nack_cache\", \"receiver_reports\"]\n\
    egress = [\"stats\", \"sender_reports\"]\n\
    [telemetry]\nstats_interval_ms = 200\nstats_grace_ms = 5000\n";

#[test]
fn packets_lost_before_ringfwd_are_fetched_from_the_publisher_and_reach_the_subscriber() {
    let Call { publisher, subscriber, daemon: _daemon, media, api, .. } = Call::start(CONFIG_WITH_GENERATOR, 0);

    let packet = |i: u16| rtp_packet(SSRC, FIRST_SEQ.wrapping_add(i), u32::from(i) * 3000, 96, false, &[i as u8; 1000]);
    let answering = publisher.try_clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The publisher's RTCP side: answers ringfwd's NACKs from its history (every packet it ever sent).
    let responder = {
        let done = done.clone();
        thread::spawn(move || {
            let (mut nack_packets, mut resent) = (0u64, 0u64);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for datagram in answering.recv(16, Duration::from_millis(20)) {
                    let asked = rtcp_generic_nack_seqs(&datagram);
                    if asked.is_empty() {
                        continue; // a receiver report
                    }
                    nack_packets += 1;
                    for seq in asked {
                        let i = seq.wrapping_sub(FIRST_SEQ);
                        if i < PACKETS {
                            answering.send(&packet(i), media);
                            resent += 1;
                        }
                    }
                }
            }
            (nack_packets, resent)
        })
    };
    let sender = thread::spawn(move || {
        let start = Instant::now();
        for i in 0..PACKETS {
            if i % 20 != 3 {
                publisher.send(&packet(i), media); // every twentieth is lost on its way to ringfwd
            }
            let due = start + Duration::from_millis(u64::from(i) + 1);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
    });

    let mut receiver = Receiver { media_ssrc: SSRC, own_ssrc: SUBSCRIBER_SSRC, ..Receiver::default() };
    receiver.receive_all(&subscriber, media);
    sender.join().expect("sender");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (publisher_nacks, resent) = responder.join().expect("responder");

    let residual = u64::from(PACKETS) - receiver.received.len() as u64;
    eprintln!(
        "publisher got {publisher_nacks} NACKs and resent {resent}; subscriber repaired {} (NACKs {}), residual {residual}",
        receiver.repaired, receiver.nacks
    );
    assert!(resent >= u64::from(PACKETS) / 20, "ringfwd asked for every lost packet: {resent}");
    assert!(residual * 1000 < u64::from(PACKETS), "residual loss {residual} of {PACKETS} is not below 0.1%");

    let stats_request = v1::GetStreamStatsRequest { session_id: "call".into(), stream_id: "video".into() };
    let mut stats = api.get_stream_stats(stats_request.clone()).unwrap();
    // Every packet the publisher sent, resends included, once the last resends are in a statistics round.
    let expected_packets = u64::from(PACKETS) - u64::from(PACKETS) / 20 + resent;
    let settled = wait_until(Duration::from_secs(5), || {
        stats = api.get_stream_stats(stats_request.clone()).unwrap();
        stats.ingress.is_some_and(|i| i.nacks_sent == publisher_nacks && i.packets >= expected_packets)
    });
    assert!(settled, "statistics never caught up: {stats:?}");
    let ingress = stats.ingress.unwrap();
    eprintln!("ingress {ingress:?}");
    // Every NACK the publisher got is counted; after the repairs nothing is lost (RFC 3550: duplicates
    // of a packet resent twice count as received, so `lost` may dip below 0).
    assert!(ingress.lost <= 0, "{ingress:?}");
    assert_eq!(ingress.packets, expected_packets);
}
