//! Key/value metadata on the real daemon over gRPC: every operation and every error with its status code and
//! the key or limit it names, metadata given at creation, read-only tokens, several clients writing the same keys
//! at once and converging, a watcher that disconnects and resumes without missing or repeating a change, a slow
//! watcher cut off without slowing writers, and the end of a watch when its object is deleted.

use std::collections::BTreeMap;

use ringfwd_tests::api::{
    ctl, ctl_ok, endpoint, expect_status, metadata_target, metadata_write, parse_json, v1, video_stream, Code,
    KeyedConfig, MetadataWatch,
};
use ringfwd_tests::{Api, Daemon, Peer};

use v1::metadata_event::Kind;

const MEDIA: &str = "[media]\naddresses = [\"127.0.0.1:0\"]\n";

/// A daemon with `[metadata]` set to `metadata` (TOML keys).
fn daemon_with(metadata: &str) -> Daemon {
    Daemon::start(&format!("{MEDIA}[metadata]\n{metadata}\n"))
}

/// Session `s` with endpoint `pub` publishing stream `v`.
fn call(api: &Api) {
    api.session("s").expect("session");
    api.create_endpoint(endpoint("s", "pub", Peer::bind("127.0.0.1").addr())).expect("endpoint");
    api.create_stream(video_stream("s", "v", "pub", 0x5151)).expect("stream");
}

/// DeleteMetadata of `key` on `target`, conditional on `expected` when given.
fn deletion(
    target: &v1::MetadataTarget,
    key: &str,
    expected: Option<v1::MetadataVersion>,
) -> v1::DeleteMetadataRequest {
    let deletion = v1::MetadataDeletion { key: key.into(), expected_version: expected };
    v1::DeleteMetadataRequest { target: Some(target.clone()), deletions: vec![deletion] }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn text(v: &v1::MetadataVersion) -> String {
    format!("{}.{}.{}", v.wall_us, v.counter, v.node_id)
}

fn order(v: &v1::MetadataVersion) -> (u64, u64, u32) {
    (v.wall_us, v.counter, v.node_id)
}

/// The next event, which must be there.
#[track_caller]
fn next(api: &Api, watch: &mut MetadataWatch) -> v1::MetadataEvent {
    api.next_event(watch).expect("a watch event").expect("the watch is still open")
}

/// The key/value pairs of a snapshot event, or of a change (deleted keys with value `None`).
#[track_caller]
fn entries(event: &v1::MetadataEvent) -> Vec<(String, Option<String>)> {
    let list = match &event.kind {
        Some(Kind::Snapshot(s)) => &s.entries,
        Some(Kind::Change(c)) => &c.entries,
        other => panic!("expected a snapshot or a change, got {other:?}"),
    };
    list.iter().map(|e| (e.key.clone(), (!e.deleted).then(|| e.value.clone()))).collect()
}

#[test]
fn set_get_delete_and_create_with_metadata() {
    let daemon = Daemon::start(MEDIA);
    let api = Api::dev(&daemon);
    let session = v1::CreateSessionRequest {
        session_id: "s".into(),
        metadata: vec![metadata_write("sip.call_id", "abc@host"), metadata_write("app.room", "blue")],
    };
    api.create_session(session.clone()).expect("a session with metadata");
    let s = metadata_target("s", "", "");
    assert_eq!(api.metadata_pairs(&s), pairs(&[("app.room", "blue"), ("sip.call_id", "abc@host")]));

    // An idempotent repeat of the create leaves the metadata as it is, whatever metadata it carries.
    api.set_pairs(&s, &[("app.room", "green")]);
    let repeat = v1::CreateSessionRequest { metadata: vec![metadata_write("app.other", "x")], ..session };
    api.create_session(repeat).expect("idempotent create");
    assert_eq!(api.metadata_pairs(&s), pairs(&[("app.room", "green"), ("sip.call_id", "abc@host")]));

    // Several keys at once share one version, later than the last.
    let before = api.get_metadata(v1::GetMetadataRequest { target: Some(s.clone()), keys: vec![] }).unwrap();
    let version = api.set_pairs(&s, &[("app.a", "1"), ("app.b", "2")]);
    assert!(order(&version) > order(before.version.as_ref().unwrap()));
    let some = api
        .get_metadata(v1::GetMetadataRequest { target: Some(s.clone()), keys: vec!["app.b".into(), "app.none".into()] })
        .unwrap();
    assert_eq!(some.entries.len(), 1, "only the keys asked for that are set");
    assert_eq!((some.entries[0].value.as_str(), some.entries[0].version), ("2", Some(version)));

    let deletions = |keys: &[&str]| v1::DeleteMetadataRequest {
        target: Some(s.clone()),
        deletions: keys.iter().map(|k| v1::MetadataDeletion { key: k.to_string(), expected_version: None }).collect(),
    };
    let deleted = api.delete_metadata(deletions(&["app.a", "app.room"])).expect("delete");
    assert!(order(deleted.version.as_ref().unwrap()) > order(&version));
    assert_eq!(api.metadata_pairs(&s), pairs(&[("app.b", "2"), ("sip.call_id", "abc@host")]));
    let nothing = api.delete_metadata(deletions(&["app.a"])).expect("deleting a key that is not set is no change");
    assert_eq!(nothing.version, deleted.version);

    // Endpoints and streams carry their own maps, from their creation on.
    let mut ep = endpoint("s", "pub", Peer::bind("127.0.0.1").addr());
    ep.metadata = vec![metadata_write("app.user", "alice")];
    api.create_endpoint(ep).expect("endpoint with metadata");
    let mut stream = video_stream("s", "v", "pub", 0x7777);
    stream.metadata = vec![v1::MetadataWrite { set_once: true, ..metadata_write("app.layout", "main") }];
    api.create_stream(stream).expect("stream with metadata");
    assert_eq!(api.metadata_pairs(&metadata_target("s", "pub", "")), pairs(&[("app.user", "alice")]));
    let got = api.get_metadata(v1::GetMetadataRequest { target: Some(metadata_target("s", "", "v")), keys: vec![] });
    assert!(got.unwrap().entries[0].set_once, "set-once given at creation");
    api.set_pairs(&metadata_target("s", "", "v"), &[("app.bitrate", "900")]);
    assert_eq!(api.metadata_pairs(&s).len(), 2, "the session's map is its own");

    // A bad key in a create is refused naming it, and nothing is created.
    let mut bad = endpoint("s", "bob", Peer::bind("127.0.0.1").addr());
    bad.metadata = vec![metadata_write("NoNamespace", "x")];
    expect_status(api.create_endpoint(bad), Code::InvalidArgument, &["NoNamespace"]);
    let missing = api.get_endpoint(v1::GetEndpointRequest { session_id: "s".into(), endpoint_id: "bob".into() });
    expect_status(missing, Code::NotFound, &["bob"]);
    let cas_at_create = v1::CreateSessionRequest {
        session_id: "t".into(),
        metadata: vec![v1::MetadataWrite { expected_version: Some(version), ..metadata_write("app.a", "1") }],
    };
    expect_status(api.create_session(cas_at_create), Code::InvalidArgument, &["app.a", "expected_version"]);
    assert_eq!(api.session_ids(), ["s"]);
    assert!(daemon.stop().success);
}

#[test]
fn every_error_has_its_code_and_names_the_key_or_the_limit() {
    let daemon = daemon_with("max_key_bytes = 16\nmax_value_bytes = 8\nmax_object_bytes = 40");
    let api = Api::dev(&daemon);
    call(&api);
    let s = metadata_target("s", "", "");
    let set =
        |writes: Vec<v1::MetadataWrite>| api.set_metadata(v1::SetMetadataRequest { target: Some(s.clone()), writes });

    expect_status(set(vec![metadata_write("Bad.Key", "x")]), Code::InvalidArgument, &["Bad.Key", "[a-z0-9_-]"]);
    expect_status(set(vec![metadata_write("nodot", "x")]), Code::InvalidArgument, &["nodot", "namespace"]);
    expect_status(
        set(vec![metadata_write("app.much-too-long", "x")]),
        Code::InvalidArgument,
        &["app.much-too-long", "metadata.max_key_bytes = 16"],
    );
    expect_status(
        set(vec![metadata_write("ringfwd.worker", "1")]),
        Code::InvalidArgument,
        &["ringfwd.worker", "only by ringfwd"],
    );
    expect_status(
        set(vec![metadata_write("app.big", "123456789")]),
        Code::InvalidArgument,
        &["app.big", "metadata.max_value_bytes = 8"],
    );
    expect_status(
        set(vec![metadata_write("app.a", "1"), metadata_write("app.a", "2")]),
        Code::InvalidArgument,
        &["app.a", "twice"],
    );
    expect_status(set(vec![]), Code::InvalidArgument, &["no keys"]);
    expect_status(
        api.set_metadata(v1::SetMetadataRequest { target: None, writes: vec![] }),
        Code::InvalidArgument,
        &["target"],
    );

    // 3 x (5 + 8) = 39 of 40 bytes; one more key is over the object's total.
    api.set_pairs(&s, &[("app.a", "12345678"), ("app.b", "12345678"), ("app.c", "12345678")]);
    expect_status(
        set(vec![metadata_write("app.d", "1")]),
        Code::ResourceExhausted,
        &["metadata.max_object_bytes = 40"],
    );
    let refused = set(vec![metadata_write("app.a", "1"), metadata_write("app.e", "12345678")]);
    expect_status(refused, Code::ResourceExhausted, &["metadata.max_object_bytes"]);
    assert_eq!(api.metadata_pairs(&s).len(), 3, "a refused write changes no key");

    // Compare-and-set: the current version passes, another answers the current one.
    let current = api.set_pairs(&s, &[("app.a", "v1")]);
    let cas = |value: &str, expected: v1::MetadataVersion| {
        set(vec![v1::MetadataWrite { expected_version: Some(expected), ..metadata_write("app.a", value) }])
    };
    let newer = cas("v2", current).expect("compare-and-set at the current version").version.unwrap();
    expect_status(cas("v3", current), Code::FailedPrecondition, &["app.a", &text(&newer), &text(&current)]);
    let absent = v1::MetadataVersion::default();
    expect_status(cas("v3", absent), Code::FailedPrecondition, &["app.a", &text(&newer)]);
    let only_if_unset = v1::MetadataWrite { expected_version: Some(absent), ..metadata_write("app.n", "1") };
    api.delete_metadata(deletion(&s, "app.c", Some(current))).expect_err("a stale delete is refused");
    api.delete_metadata(deletion(&s, "app.c", None)).expect("delete");
    set(vec![only_if_unset]).expect("zero version: only if not set");

    // Set-once keys are never written again, nor deleted.
    let first = set(vec![v1::MetadataWrite { set_once: true, ..metadata_write("sip.id", "x") }]).unwrap().version;
    let again = text(&first.unwrap());
    expect_status(set(vec![metadata_write("sip.id", "x")]), Code::FailedPrecondition, &["sip.id", "set-once", &again]);
    let delete_once = api.delete_metadata(deletion(&s, "sip.id", None));
    expect_status(delete_once, Code::FailedPrecondition, &["sip.id", "set-once"]);

    // Objects that do not exist.
    expect_status(
        api.set_metadata(v1::SetMetadataRequest {
            target: Some(metadata_target("s", "", "ghost")),
            writes: vec![metadata_write("app.a", "1")],
        }),
        Code::NotFound,
        &["stream", "ghost"],
    );
    let get = api.get_metadata(v1::GetMetadataRequest { target: Some(metadata_target("nope", "", "")), keys: vec![] });
    expect_status(get, Code::NotFound, &["session", "nope"]);
    expect_status(api.watch_metadata(metadata_target("s", "ghost", ""), None), Code::NotFound, &["endpoint", "ghost"]);
    let both = metadata_target("s", "pub", "v");
    expect_status(api.watch_metadata(both, None), Code::InvalidArgument, &["target"]);
    assert!(daemon.stop().success);
}

#[test]
fn a_read_only_token_reads_and_watches_but_cannot_write() {
    let config = KeyedConfig::new(MEDIA, "k1", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
    let daemon = Daemon::start(&config.text);
    let admin = Api::connect(daemon.api, Some(&config.mint("admin", "10m")));
    let reader = Api::connect(daemon.api, Some(&config.mint("read", "10m")));
    admin.session("s").expect("session");
    let s = metadata_target("s", "", "");
    admin.set_pairs(&s, &[("app.a", "1")]);
    assert_eq!(reader.metadata_pairs(&s), pairs(&[("app.a", "1")]));
    let mut watch = reader.watch_metadata(s.clone(), None).expect("a reader may watch");
    assert_eq!(entries(&next(&reader, &mut watch)), [("app.a".to_string(), Some("1".to_string()))]);
    let write = reader
        .set_metadata(v1::SetMetadataRequest { target: Some(s.clone()), writes: vec![metadata_write("app.a", "2")] });
    expect_status(write, Code::PermissionDenied, &["admin"]);
    let delete = reader.delete_metadata(deletion(&s, "app.a", None));
    expect_status(delete, Code::PermissionDenied, &["admin"]);
    assert_eq!(admin.metadata_pairs(&s), pairs(&[("app.a", "1")]));
    assert!(daemon.stop().success);
}

#[test]
fn concurrent_writers_converge_and_every_watcher_sees_the_same_map() {
    const WRITERS: usize = 4;
    const WRITES: usize = 40;
    let daemon = Daemon::start(MEDIA);
    let api = Api::dev(&daemon);
    call(&api);
    let s = metadata_target("s", "", "v");
    let watcher = Api::dev(&daemon);
    let mut watch = watcher.watch_metadata(s.clone(), None).expect("watch");
    assert!(entries(&next(&watcher, &mut watch)).is_empty(), "the snapshot of an empty map");

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let client = Api::dev(&daemon);
            let target = s.clone();
            std::thread::spawn(move || {
                for n in 0..WRITES {
                    let value = format!("w{w}-{n}");
                    client.set_pairs(&target, &[("app.shared", &value), ("app.other", &value)]);
                    if n % 7 == w {
                        client.delete_metadata(deletion(&target, "app.other", None)).expect("delete");
                    }
                }
                client.set_pairs(&target, &[(&format!("app.writer-{w}"), "done")]).wall_us
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer thread");
    }

    // Every client reads the same map, and the watcher's map, folded from its events, is that map.
    let clients: Vec<Api> = (0..3).map(|_| Api::dev(&daemon)).collect();
    let maps: Vec<_> = clients.iter().map(|c| c.metadata_pairs(&s)).collect();
    assert!(maps.windows(2).all(|m| m[0] == m[1]), "{maps:?}");
    let final_version = api.get_metadata(v1::GetMetadataRequest { target: Some(s.clone()), keys: vec![] }).unwrap();
    let final_version = final_version.version.unwrap();
    let mut seen = BTreeMap::new();
    let mut last = (0, 0, 0);
    while last < order(&final_version) {
        let event = next(&watcher, &mut watch);
        let version = order(event.version.as_ref().unwrap());
        assert!(version > last, "events come in version order, each once");
        last = version;
        for (key, value) in entries(&event) {
            match value {
                Some(value) => seen.insert(key, value),
                None => seen.remove(&key),
            };
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), maps[0]);
    assert_eq!(maps[0].iter().filter(|(k, _)| k.starts_with("app.writer-")).count(), WRITERS);
    assert!(daemon.stop().success);
}

#[test]
fn a_watcher_resumes_from_its_last_version_without_gaps_or_repeats() {
    let daemon = daemon_with("log_retention_bytes = 200");
    let api = Api::dev(&daemon);
    call(&api);
    let s = metadata_target("s", "pub", "");
    api.set_pairs(&s, &[("app.a", "0")]);

    let watcher = Api::dev(&daemon);
    let mut watch = watcher.watch_metadata(s.clone(), None).expect("watch");
    let snapshot = next(&watcher, &mut watch);
    assert_eq!(entries(&snapshot), [("app.a".to_string(), Some("0".to_string()))]);
    let mut last = snapshot.version.unwrap();
    for i in 1..=2 {
        let version = api.set_pairs(&s, &[("app.a", &i.to_string())]);
        let event = next(&watcher, &mut watch);
        assert_eq!(event.version, Some(version));
        last = version;
    }
    drop(watch);
    drop(watcher);

    // Missed while away: a set, a delete, a set of two keys.
    let mut missed = vec![api.set_pairs(&s, &[("app.a", "3")])];
    missed.push(api.delete_metadata(deletion(&s, "app.a", None)).unwrap().version.unwrap());
    missed.push(api.set_pairs(&s, &[("app.b", "4"), ("app.c", "5")]));

    let watcher = Api::dev(&daemon);
    let mut watch = watcher.watch_metadata(s.clone(), Some(last)).expect("resume");
    let got: Vec<v1::MetadataEvent> = (0..missed.len()).map(|_| next(&watcher, &mut watch)).collect();
    assert_eq!(got.iter().map(|e| e.version.unwrap()).collect::<Vec<_>>(), missed, "exactly the missed changes");
    assert_eq!(entries(&got[1]), [("app.a".to_string(), None)]);
    assert_eq!(entries(&got[2]).len(), 2);
    // Nothing repeats: the next event is the next write.
    let after = api.set_pairs(&s, &[("app.d", "6")]);
    assert_eq!(next(&watcher, &mut watch).version, Some(after));

    // From before the retained log (200 bytes), the whole map comes again.
    for i in 0..20 {
        api.set_pairs(&s, &[("app.filler", &format!("{i:020}"))]);
    }
    let mut stale = watcher.watch_metadata(s.clone(), Some(last)).expect("resume from too old");
    let event = next(&watcher, &mut stale);
    assert!(matches!(event.kind, Some(Kind::Snapshot(_))), "{event:?}");
    assert_eq!(entries(&event).len(), 4, "app.b, app.c, app.d, app.filler");
    assert!(daemon.stop().success);
}

#[test]
fn a_slow_watcher_is_cut_off_and_writers_never_wait() {
    // 64 KiB values: a watcher that reads nothing fills the transport's buffers, then falls behind.
    let daemon = daemon_with("max_value_bytes = 65536\nmax_object_bytes = 131072\nwatch_buffer_events = 4");
    let api = Api::dev(&daemon);
    call(&api);
    let s = metadata_target("s", "", "");
    let slow = Api::dev(&daemon);
    let mut watch = slow.watch_metadata(s.clone(), None).expect("watch");
    let big = "x".repeat(65_000);
    let started = std::time::Instant::now();
    for i in 0..400 {
        api.set_pairs(&s, &[("app.big", &format!("{i}{big}"))]);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "writers were held up: {:?}", started.elapsed());
    let mut received = 0;
    let status = loop {
        match slow.next_event(&mut watch) {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("the stream ended OK after {received} events"),
            Err(status) => break status,
        }
        assert!(received <= 401, "the watcher was never cut off");
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    for word in ["metadata.watch_buffer_events = 4", "resume_from"] {
        assert!(status.message().contains(word), "{:?} does not name {word:?}", status.message());
    }
    assert!(daemon.stop().success);
}

#[test]
fn deleting_the_object_drops_its_metadata_and_ends_its_watches() {
    let daemon = Daemon::start(MEDIA);
    let api = Api::dev(&daemon);
    call(&api);
    let (session, endpoint_t, stream) =
        (metadata_target("s", "", ""), metadata_target("s", "pub", ""), metadata_target("s", "", "v"));
    for target in [&session, &endpoint_t, &stream] {
        api.set_pairs(target, &[("app.k", "v")]);
    }
    let watcher = Api::dev(&daemon);
    let mut watches: Vec<MetadataWatch> =
        [&session, &endpoint_t, &stream].iter().map(|t| watcher.watch_metadata((*t).clone(), None).unwrap()).collect();
    for watch in &mut watches {
        assert!(matches!(next(&watcher, watch).kind, Some(Kind::Snapshot(_))));
    }

    api.delete_stream(v1::DeleteStreamRequest { session_id: "s".into(), stream_id: "v".into() }).expect("delete");
    let last = next(&watcher, &mut watches[2]);
    assert!(matches!(last.kind, Some(Kind::Deleted(_))), "{last:?}");
    assert_eq!(last.target, Some(stream.clone()));
    assert!(watcher.next_event(&mut watches[2]).expect("ends OK").is_none(), "the stream ends after the deletion");
    let get = api.get_metadata(v1::GetMetadataRequest { target: Some(stream.clone()), keys: vec![] });
    expect_status(get, Code::NotFound, &["v"]);

    // A session takes its endpoints' metadata with it.
    api.delete_session(v1::DeleteSessionRequest { session_id: "s".into() }).expect("delete session");
    for watch in &mut watches[..2] {
        assert!(matches!(next(&watcher, watch).kind, Some(Kind::Deleted(_))));
        assert!(watcher.next_event(watch).expect("ends OK").is_none());
    }
    // A new session of the same id starts empty, and a stream of the same id too.
    call(&api);
    assert!(api.metadata_pairs(&session).is_empty());
    assert!(api.metadata_pairs(&stream).is_empty());
    assert!(daemon.stop().success);
}

#[test]
fn ctl_sets_gets_deletes_and_watches_metadata() {
    let daemon = Daemon::start(MEDIA);
    let token = ringfwd_tests::api::dev_token(&daemon);
    ctl_ok(&daemon, &token, &["session", "create", "s", "--meta", "sip.call_id=abc@host"]);
    let peer = Peer::bind("127.0.0.1").addr().to_string();
    ctl_ok(&daemon, &token, &["endpoint", "create", "s", "pub", "--address", &peer, "--meta", "app.user=alice"]);

    let set = parse_json(&ctl_ok(&daemon, &token, &["--json", "metadata", "set", "s", "app.a=1", "app.b=x=y"]));
    assert!(set["version"]["wallUs"].is_string(), "64-bit integers are strings in the JSON mapping: {set}");
    let table = ctl_ok(&daemon, &token, &["metadata", "get", "s"]);
    for cell in ["KEY", "app.a", "x=y", "sip.call_id", "abc@host"] {
        assert!(table.contains(cell), "{cell:?} missing from {table}");
    }
    let got = parse_json(&ctl_ok(&daemon, &token, &["--json", "metadata", "get", "s", "--endpoint", "pub"]));
    assert_eq!(got["entries"][0]["key"], "app.user", "{got}");
    assert_eq!(got["entries"][0]["value"], "alice", "{got}");

    // Compare-and-set and its refusal with the server's code; a bad key names the key.
    let stale = ctl(&daemon, &token, &["metadata", "set", "s", "app.a=2", "--expect", "app.a=0"]);
    assert!(!stale.success && stale.stderr.contains("FailedPrecondition"), "{stale:?}");
    assert!(stale.stderr.contains("app.a"), "{stale:?}");
    let bad = ctl(&daemon, &token, &["metadata", "set", "s", "Bad=x"]);
    assert!(!bad.success && bad.stderr.contains("InvalidArgument") && bad.stderr.contains("Bad"), "{bad:?}");

    // Watch: the whole map first; then, resumed, exactly the changes after a version, one JSON line each.
    let snapshot = ctl_ok(&daemon, &token, &["metadata", "watch", "s", "--count", "1"]);
    assert!(snapshot.starts_with("snapshot ") && snapshot.contains("app.a=1"), "{snapshot}");
    let from = parse_json(&ctl_ok(&daemon, &token, &["--json", "metadata", "set", "s", "app.c=3"]))["version"].clone();
    let from = format!(
        "{}.{}.{}",
        from["wallUs"].as_str().unwrap(),
        from["counter"].as_str().unwrap_or("0"),
        from["nodeId"].as_u64().unwrap_or(0)
    );
    ctl_ok(&daemon, &token, &["metadata", "delete", "s", "app.c"]);
    ctl_ok(&daemon, &token, &["metadata", "set", "s", "app.d=4"]);
    let lines = ctl_ok(&daemon, &token, &["--json", "metadata", "watch", "s", "--resume-from", &from, "--count", "2"]);
    let events: Vec<serde_json::Value> = lines.lines().map(parse_json).collect();
    assert_eq!(events.len(), 2, "{lines}");
    assert_eq!(events[0]["change"]["entries"][0]["key"], "app.c");
    assert_eq!(events[0]["change"]["entries"][0]["deleted"], true);
    assert_eq!(events[1]["change"]["entries"][0]["key"], "app.d");

    let deleted = ctl_ok(&daemon, &token, &["metadata", "delete", "s", "app.a", "app.b"]);
    assert!(deleted.contains("VERSION"), "{deleted}");
    let left = parse_json(&ctl_ok(&daemon, &token, &["--json", "metadata", "get", "s"]));
    let keys: Vec<&str> = left["entries"].as_array().unwrap().iter().filter_map(|e| e["key"].as_str()).collect();
    assert_eq!(keys, ["app.d", "sip.call_id"]);
    assert!(daemon.stop().success);
}

#[test]
fn metadata_watchers_are_capped_by_config_and_freed_when_they_go() {
    let daemon = Daemon::start(&format!("{MEDIA}[metadata]\nmax_watchers = 2\n"));
    let api = Api::dev(&daemon);
    api.session("s").expect("session");
    let s = metadata_target("s", "", "");
    let first = api.watch_metadata(s.clone(), None).expect("first watcher");
    let _second = api.watch_metadata(s.clone(), None).expect("second watcher");
    expect_status(api.watch_metadata(s.clone(), None), Code::ResourceExhausted, &["metadata.max_watchers = 2"]);
    // A watcher that goes gives its place back (once the server sees its stream closed).
    drop(first);
    let freed = ringfwd_tests::api::wait_until(std::time::Duration::from_secs(5), || {
        api.watch_metadata(s.clone(), None).is_ok()
    });
    assert!(freed, "the closed watcher's place was not given back");
    assert!(daemon.stop().success);
}
