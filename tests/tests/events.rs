//! Lifecycle events on the real daemon: a watcher sees every create and delete (a session delete reporting what
//! it took with it, innermost first) in order, with strictly increasing sequence numbers, unique ids and
//! timestamps; a watcher that disconnects resumes from the last seq it saw and gets exactly what it missed; a
//! resume from a forgotten or future seq is refused with OUT_OF_RANGE; a watcher that never reads is cut off
//! with RESOURCE_EXHAUSTED (naming the seq to resume from) while another one gets everything; a stream's first
//! packet is reported; a subscription paused, resumed and switched through the API is reported to watchers,
//! `ctl` and webhooks; `ringfwd ctl events watch` prints them; and webhooks reach a real HTTP server signed,
//! retried after 500s, while a dead receiver slows nothing and does not hold up the shutdown.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use ringfwd_tests::api::{
    ctl_ok, dev_token, endpoint, expect_status, metadata_target, metadata_write, subscription, v1, video_stream,
    wait_until, Code, Status, RPC_TIMEOUT,
};
use ringfwd_tests::{config, rtp_packet, Api, Daemon, Peer};
use sha2::Sha256;
use v1::event::Kind;

const MEDIA: &str = "[media]\naddresses = [\"127.0.0.1:0\"]\n";

/// An open WatchEvents stream of the client that opened it.
#[derive(Debug)]
struct EventWatch(tonic::Streaming<v1::Event>);

fn watch(api: &Api, from_seq: Option<u64>, session: &str) -> Result<EventWatch, Status> {
    let mut client = api.client();
    let request = v1::WatchEventsRequest { from_seq, session_id: session.into() };
    api.block_on(async move { client.watch_events(request).await }).map(|r| EventWatch(r.into_inner()))
}

/// The watch's next event, `Ok(None)` when it ended, or its error; fails the test when nothing comes in time.
fn next_event(api: &Api, watch: &mut EventWatch) -> Result<Option<v1::Event>, Status> {
    api.block_on(async { tokio::time::timeout(RPC_TIMEOUT, watch.0.message()).await })
        .unwrap_or_else(|_| panic!("no event within {RPC_TIMEOUT:?}"))
}

/// The next `n` events, which must come.
#[track_caller]
fn take(api: &Api, watch: &mut EventWatch, n: usize) -> Vec<v1::Event> {
    (0..n).map(|_| next_event(api, watch).expect("an event").expect("the watch is open")).collect()
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// An event as `kind name: ids`, for comparing sequences of events.
fn describe(event: &v1::Event) -> String {
    let ids = match event.kind.as_ref().expect("a kind") {
        Kind::SessionStarted(_) => "session_started".to_string(),
        Kind::SessionEnded(_) => "session_ended".to_string(),
        Kind::EndpointJoined(e) => format!("endpoint_joined {}", e.endpoint_id),
        Kind::EndpointLeft(e) => format!("endpoint_left {}", e.endpoint_id),
        Kind::StreamPublished(s) => format!("stream_published {} by {} ssrc {}", s.stream_id, s.endpoint_id, s.ssrc),
        Kind::StreamUnpublished(s) => format!("stream_unpublished {} by {}", s.stream_id, s.endpoint_id),
        Kind::StreamStarted(s) => format!("stream_started {} by {}", s.stream_id, s.endpoint_id),
        Kind::StreamInactive(s) => format!("stream_inactive {} by {}", s.stream_id, s.endpoint_id),
        Kind::StreamBye(s) => format!("stream_bye {}", s.stream_id),
        Kind::SourceChanged(s) => format!("source_changed {} to {}", s.stream_id, s.source_address),
        Kind::StreamSsrcChanged(c) => format!("stream_ssrc_changed {} {}", c.stream_id, c.ssrc),
        Kind::UnknownSsrc(u) => format!("unknown_ssrc {} from {} by {}", u.ssrc, u.source_address, u.endpoint_id),
        Kind::SubscriberUnreachable(s) => format!("subscriber_unreachable {}", s.subscription_id),
        Kind::RateLimited(s) => format!("rate_limited {}", s.stream_id),
        Kind::PluginDisabled(p) => {
            format!("plugin_disabled {} {} on {}{}", p.plugin, p.fault, p.stream_id, p.subscription_id)
        }
        Kind::Subscribed(s) => format!("subscribed {} {}->{}", s.subscription_id, s.stream_id, s.endpoint_id),
        Kind::Unsubscribed(s) => format!("unsubscribed {} {}->{}", s.subscription_id, s.stream_id, s.endpoint_id),
        Kind::SubscriptionPaused(s) => {
            format!("subscription_paused {} {}->{}", s.subscription_id, s.stream_id, s.endpoint_id)
        }
        Kind::SubscriptionResumed(s) => {
            format!("subscription_resumed {} {}->{}", s.subscription_id, s.stream_id, s.endpoint_id)
        }
        Kind::SubscriptionSwitched(s) => format!(
            "subscription_switched {} from {} to {}->{}",
            s.subscription_id, s.previous_stream_id, s.stream_id, s.endpoint_id
        ),
        Kind::NodeJoined(n) => format!("node_joined {}", n.node_id),
        Kind::NodeLost(n) => format!("node_lost {} expired {}", n.node_id, n.expired),
        Kind::RelayMoved(m) => format!("relay_moved {} from {} to {}", m.stream_id, m.from_node_id, m.to_node_id),
        Kind::MetadataChanged(m) => {
            let keys: Vec<_> = m.entries.iter().map(|e| format!("{}={}", e.key, e.value)).collect();
            format!("metadata_changed {}", keys.join(","))
        }
    };
    format!("{} {ids}", event.session_id)
}

/// Strictly increasing by one from `first`, unique ids, timestamps within `[from_ms, to_ms]`.
#[track_caller]
fn check_numbering(events: &[v1::Event], first: u64, from_ms: u64, to_ms: u64) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (first..first + events.len() as u64).collect::<Vec<_>>());
    let ids: BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "unique ids: {ids:?}");
    for e in events {
        assert!((from_ms..=to_ms).contains(&e.unix_ms), "{} not within {from_ms}..={to_ms}", e.unix_ms);
        assert!(e.id.ends_with(&format!("-{}", e.seq)), "{}", e.id);
    }
}

/// Session `s`: endpoints `a` (publishing `v`) and `b` (subscribed to it as `b-v`).
fn conference(api: &Api, s: &str) {
    api.session(s).expect("session");
    api.create_endpoint(endpoint(s, "a", Peer::bind("127.0.0.1").addr())).expect("endpoint a");
    api.create_endpoint(endpoint(s, "b", Peer::bind("127.0.0.1").addr())).expect("endpoint b");
    api.create_stream(video_stream(s, "v", "a", 0x7000 + s.len() as u32)).expect("stream");
    api.create_subscription(subscription(s, "b-v", "v", "b", 0)).expect("subscription");
}

#[test]
fn a_watcher_sees_every_change_in_order_and_ctl_prints_them() {
    let daemon = Daemon::start(MEDIA);
    let api = Api::dev(&daemon);
    let mut w = watch(&api, None, "").expect("watch");
    let before = unix_ms();
    conference(&api, "room");
    let target = metadata_target("room", "a", "");
    let set = v1::SetMetadataRequest { target: Some(target), writes: vec![metadata_write("app.user", "alice")] };
    api.set_metadata(set).expect("metadata");
    api.delete_session(v1::DeleteSessionRequest { session_id: "room".into() }).expect("delete");
    let after = unix_ms();
    let events = take(&api, &mut w, 11);
    let expected = [
        "room session_started",
        "room endpoint_joined a",
        "room endpoint_joined b",
        "room stream_published v by a ssrc 28676",
        "room subscribed b-v v->b",
        "room metadata_changed app.user=alice",
        "room unsubscribed b-v v->b",
        "room stream_unpublished v by a",
        "room endpoint_left a",
        "room endpoint_left b",
        "room session_ended",
    ];
    assert_eq!(events.iter().map(describe).collect::<Vec<_>>(), expected);
    check_numbering(&events, 1, before, after);

    // `ringfwd ctl events watch` replays from a seq and prints one line (or one JSON object) per event.
    let token = dev_token(&daemon);
    let ctl = |args: &[&str]| ctl_ok(&daemon, &token, args);
    let lines = ctl(&["events", "watch", "--from", "0", "--count", "2"]);
    let lines: Vec<&str> = lines.lines().collect();
    assert!(lines[0].starts_with("1 ") && lines[0].ends_with(" room session_started"), "{lines:?}");
    assert!(lines[1].starts_with("2 ") && lines[1].ends_with("room endpoint_joined endpoint=a"), "{lines:?}");
    let json = ctl(&["--json", "events", "watch", "--from", "4", "--count", "1", "--session", "room"]);
    let json: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(json["seq"], "5");
    assert_eq!(json["subscribed"]["subscriptionId"], "b-v");
}

#[test]
fn a_watcher_resumes_from_the_last_seq_without_gap_or_repeat() {
    let daemon = Daemon::start(&format!("{MEDIA}[events]\nhistory = 16\n"));
    let api = Api::dev(&daemon);
    let mut w = watch(&api, None, "").expect("watch");
    api.session("one").expect("session");
    api.session("two").expect("session");
    let seen = take(&api, &mut w, 2);
    let last = seen[1].seq;
    drop(w);

    conference(&api, "one");
    api.delete_session(v1::DeleteSessionRequest { session_id: "two".into() }).expect("delete");
    let mut w = watch(&api, Some(last), "").expect("resume");
    let missed = take(&api, &mut w, 5);
    let described: Vec<_> = missed.iter().map(describe).collect();
    assert_eq!(described[0], "one endpoint_joined a", "the idempotent session create reported nothing");
    assert_eq!(described[4], "two session_ended");
    check_numbering(&missed, last + 1, 0, u64::MAX);
    api.session("three").expect("session");
    let live = take(&api, &mut w, 1);
    assert_eq!((describe(&live[0]), live[0].seq), ("three session_started".to_string(), last + 6), "then live");

    // Filtered by session: only that session's events, resumed the same way.
    let mut only_two = watch(&api, Some(0), "two").expect("filtered");
    let two = take(&api, &mut only_two, 2);
    assert_eq!(two.iter().map(describe).collect::<Vec<_>>(), ["two session_started", "two session_ended"]);

    // Too old (history = 16 events) or from another run of the node: OUT_OF_RANGE with the bounds.
    for i in 0..10 {
        api.session(&format!("more{i}")).expect("session");
    }
    let newest = last + 6 + 10;
    expect_status(watch(&api, Some(0), ""), Code::OutOfRange, &["events.history = 16", &format!("newest {newest}")]);
    expect_status(watch(&api, Some(newest + 1), ""), Code::OutOfRange, &["beyond the newest event"]);
    expect_status(watch(&api, None, "not a session!"), Code::InvalidArgument, &["session_id"]);
    assert_eq!(take(&api, &mut watch(&api, Some(newest - 1), "").expect("kept"), 1)[0].seq, newest);
}

#[test]
fn a_watcher_that_never_reads_is_cut_off_while_another_gets_everything() {
    let daemon = Daemon::start(&format!("{MEDIA}[events]\nwatch_buffer = 8\n"));
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    // Its own connection, whose runtime never runs again until it reads: it never acknowledges a byte.
    let slow_api = Api::dev(&daemon);
    let mut slow = watch(&slow_api, Some(1), "").expect("slow watch");

    const WRITES: usize = 600;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (address, token) = (daemon.api, dev_token(&daemon));
    let reader = std::thread::spawn(move || {
        let api = Api::connect(address, Some(&token));
        let mut w = watch(&api, Some(1), "").expect("reading watch");
        ready_tx.send(()).expect("main thread");
        take(&api, &mut w, WRITES).into_iter().map(|e| e.seq).collect::<Vec<_>>()
    });
    ready_rx.recv_timeout(RPC_TIMEOUT).expect("the reader watches");
    // Big events (4 KB of metadata each) fill the slow watcher's transport windows quickly.
    let value = "x".repeat(4000);
    let target = metadata_target("s", "", "");
    let started = Instant::now();
    for i in 0..WRITES {
        let write = metadata_write("app.blob", &format!("{i}{value}"));
        api.set_metadata(v1::SetMetadataRequest { target: Some(target.clone()), writes: vec![write] }).expect("write");
    }
    let writing = started.elapsed();
    let got = reader.join().expect("reader");
    assert_eq!(got, (2..2 + WRITES as u64).collect::<Vec<_>>(), "the reading watcher got every event in order");

    let mut received = Vec::new();
    let status = loop {
        match next_event(&slow_api, &mut slow) {
            Ok(Some(event)) => received.push(event.seq),
            Ok(None) => panic!("the slow watch ended without an error after {} events", received.len()),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("events.watch_buffer = 8"), "{}", status.message());
    let last = *received.last().expect("it got some events first");
    assert!(received.len() < WRITES, "it was cut off before the end ({} events)", received.len());
    assert_eq!(received, (2..=last).collect::<Vec<_>>());
    assert!(status.message().contains(&format!("from_seq {last}")), "names the seq to resume from: {status:?}");
    // It resumes from there and gets exactly the rest.
    let mut resumed = watch(&slow_api, Some(last), "").expect("resume after the cut-off");
    let rest: Vec<u64> = take(&slow_api, &mut resumed, WRITES + 1 - last as usize).iter().map(|e| e.seq).collect();
    assert_eq!(rest, (last + 1..2 + WRITES as u64).collect::<Vec<_>>());
    eprintln!("{WRITES} writes took {writing:?} with a watcher that never read");
}

#[test]
fn a_streams_first_packet_is_reported() {
    let publisher = Peer::bind("127.0.0.1");
    let subscriber = Peer::bind("127.0.0.1");
    let daemon = Daemon::start(&config::one_stream("", Some(publisher.addr()), subscriber.addr(), 0x4242));
    let api = Api::dev(&daemon);
    // The static session's events were published before anyone watched: replay them from the start.
    let mut w = watch(&api, Some(0), "call").expect("watch");
    let created: Vec<_> = take(&api, &mut w, 5).iter().map(describe).collect();
    assert_eq!(created[0], "call session_started");
    assert_eq!(created[4], format!("call subscribed {} s->sub", subscription_id(&api)));
    let media = daemon.media_for(publisher.addr());
    publisher.send(&rtp_packet(0x4242, 1, 0, 96, false, &[0; 20]), media);
    assert_eq!(subscriber.recv(1, Duration::from_secs(2)).len(), 1, "forwarded");
    let started = take(&api, &mut w, 1);
    assert_eq!(describe(&started[0]), "call stream_started s by pub");
}

#[test]
fn pause_resume_and_switch_are_reported_once_the_workers_applied_them_to_watchers_ctl_and_webhooks() {
    let (hook, attempts) = webhook_receiver(0);
    // One worker: the two streams share it, as a switch needs.
    let config = format!(
        "[placement]\nworker_cores = [0]\n{MEDIA}[webhooks]\nurls = [\"http://{hook}/hook\"]\nsecret = \"{SECRET}\"\n"
    );
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    conference(&api, "call");
    api.create_stream(video_stream("call", "w", "a", 0x7100)).expect("a second stream");
    let mut w = watch(&api, None, "call").expect("watch");

    assert!(api.set_paused("call", "b-v", true).expect("pause").paused);
    api.set_paused("call", "b-v", true).expect("pause again, which changes nothing");
    assert!(!api.set_paused("call", "b-v", false).expect("resume").paused);
    assert_eq!(api.switch("call", "b-v", "w").expect("switch").stream_id, "w");
    // Each call returned after the workers applied it and its event was published: they are all there, in order,
    // and the repeated pause reported nothing.
    let events = take(&api, &mut w, 3);
    let described: Vec<_> = events.iter().map(describe).collect();
    assert_eq!(
        described,
        [
            "call subscription_paused b-v v->b",
            "call subscription_resumed b-v v->b",
            "call subscription_switched b-v from v to w->b",
        ]
    );
    let first = events[0].seq;
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [first, first + 1, first + 2]);

    // `ringfwd ctl events watch` prints them with their fields.
    let token = dev_token(&daemon);
    let from = (first - 1).to_string();
    let lines = ctl_ok(&daemon, &token, &["events", "watch", "--from", &from, "--count", "3", "--session", "call"]);
    let lines: Vec<&str> = lines.lines().collect();
    assert!(lines[0].ends_with(" call subscription_paused subscription=b-v stream=v endpoint=b"), "{lines:?}");
    assert!(lines[1].ends_with(" call subscription_resumed subscription=b-v stream=v endpoint=b"), "{lines:?}");
    let switched = " call subscription_switched subscription=b-v stream=w endpoint=b previous=v";
    assert!(lines[2].ends_with(switched), "{lines:?}");

    // The webhook receives them as the protobuf JSON mapping.
    let bodies = || -> Vec<serde_json::Value> {
        let attempts = attempts.lock().expect("attempts");
        attempts.iter().map(|a| serde_json::from_slice(&a.body).expect("a JSON body")).collect()
    };
    let switch_delivered = || bodies().iter().any(|b| b["seq"].as_str() == Some(events[2].seq.to_string().as_str()));
    assert!(wait_until(Duration::from_secs(10), switch_delivered), "the webhook got {:?}", bodies());
    let bodies = bodies();
    let kind =
        |name: &str| bodies.iter().find(|b| b[name].is_object()).unwrap_or_else(|| panic!("no {name}"))[name].clone();
    assert_eq!(kind("subscriptionPaused")["subscriptionId"], "b-v");
    assert_eq!(kind("subscriptionResumed")["streamId"], "v");
    let switched = kind("subscriptionSwitched");
    assert_eq!((switched["streamId"].as_str(), switched["previousStreamId"].as_str()), (Some("w"), Some("v")));
    assert_eq!(switched["endpointId"], "b");
    assert!(daemon.stop().success);
}

fn subscription_id(api: &Api) -> String {
    let list = api.list_subscriptions(v1::ListSubscriptionsRequest { session_id: "call".into() }).expect("list");
    list.subscriptions[0].subscription_id.clone()
}

/// What a webhook receiver got: each attempt's timestamp and signature headers, body, and the status answered.
#[derive(Clone, Debug)]
struct Attempt {
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

/// An HTTP server on loopback that answers 500 to its first `failures` requests and 200 to the others, recording
/// every request. One request per connection (`connection: close`).
fn webhook_receiver(failures: usize) -> (SocketAddr, Arc<Mutex<Vec<Attempt>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let address = listener.local_addr().expect("address");
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&attempts);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let Some((headers, body)) = read_request(&mut stream) else { continue };
            let header = |name: &str| {
                headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default()
            };
            let mut attempts = record.lock().expect("attempts");
            let answered = if attempts.len() < failures { 500 } else { 200 };
            attempts.push(Attempt {
                timestamp: header("x-ringfwd-timestamp"),
                signature: header("x-ringfwd-signature"),
                body,
                answered,
            });
            let reply = format!("HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (address, attempts)
}

/// An HTTP request's headers, `(name, value)`.
type Headers = Vec<(String, String)>;

/// The headers and body of one HTTP/1.1 request.
fn read_request(stream: &mut std::net::TcpStream) -> Option<(Headers, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    assert!(line.starts_with("POST /hook "), "{line:?}");
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length"))?.1.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

const SECRET: &str = "webhook-test-secret";

/// Checks the signature as a receiver would, with the shared secret.
#[track_caller]
fn check_signature(attempt: &Attempt) {
    let timestamp: u64 = attempt.timestamp.parse().expect("a timestamp in seconds");
    let now_s = unix_ms() / 1000;
    assert!(timestamp <= now_s && now_s - timestamp < 60, "fresh timestamp {timestamp}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(attempt.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&attempt.body);
    assert_eq!(attempt.signature, format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
}

#[test]
fn webhooks_are_signed_retried_and_a_dead_receiver_holds_nothing_up() {
    let (live, attempts) = webhook_receiver(2);
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let config = format!(
        "{MEDIA}[webhooks]\nurls = [\"http://{live}/hook\", \"http://{dead}/hook\"]\nsecret = \"{SECRET}\"\n\
         timeout_ms = 1000\nmax_retries = 5\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n"
    );
    let daemon = Daemon::start(&config);
    let api = Api::dev(&daemon);
    api.session("w").expect("session");
    api.delete_session(v1::DeleteSessionRequest { session_id: "w".into() }).expect("delete");
    assert!(wait_until(Duration::from_secs(10), || attempts.lock().unwrap().len() >= 4), "{:?}", attempts.lock());
    let attempts = attempts.lock().unwrap().clone();
    let answered: Vec<u16> = attempts.iter().map(|a| a.answered).collect();
    assert_eq!(answered, [500, 500, 200, 200]);
    for attempt in &attempts {
        check_signature(attempt);
    }
    let bodies: Vec<serde_json::Value> =
        attempts.iter().map(|a| serde_json::from_slice(&a.body).expect("a JSON body")).collect();
    assert_eq!(bodies[0], bodies[1], "a retry sends the same event");
    assert_eq!(bodies[1], bodies[2]);
    assert_eq!((bodies[0]["seq"].as_str(), bodies[0]["sessionId"].as_str()), (Some("1"), Some("w")));
    assert!(bodies[0]["sessionStarted"].is_object(), "{}", bodies[0]);
    assert_eq!(bodies[3]["seq"], "2");
    assert!(bodies[3]["sessionEnded"].is_object(), "{}", bodies[3]);
    assert_ne!(bodies[0]["id"], bodies[3]["id"]);

    // The dead receiver is still being retried: the API, the watchers and the shutdown do not wait for it.
    let started = Instant::now();
    let mut w = watch(&api, Some(0), "").expect("watch");
    assert_eq!(take(&api, &mut w, 2).len(), 2);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    let stopping = Instant::now();
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    assert!(stopping.elapsed() < Duration::from_secs(6), "shutdown took {:?}", stopping.elapsed());
}

#[test]
fn node_info_tells_a_restart_by_its_boot_id_which_prefixes_event_ids() {
    let before_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let first = Daemon::start(MEDIA);
    let api = Api::dev(&first);
    let node = api.node();
    let after_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!((before_ms..=after_ms).contains(&node.started_unix_ms), "{} not within the start", node.started_unix_ms);
    api.session("boot").expect("session");
    let id = api.wait_whole_event("boot", Duration::from_secs(5), |e| Some(e.id.clone())).expect("an event");
    assert!(id.starts_with(&format!("{:016x}-", node.boot_id)), "{id} vs {:016x}", node.boot_id);
    assert!(first.stop().success);
    let second = Daemon::start(MEDIA);
    let again = Api::dev(&second).node();
    assert_ne!(again.boot_id, node.boot_id, "a restarted node has another boot id");
    assert!(again.started_unix_ms >= node.started_unix_ms);
    assert!(second.stop().success);
}
