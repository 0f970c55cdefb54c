//! The daemon as an operator meets it: the built-in default config (run on free ports and a private token
//! directory, never the defaults a developer's own daemon holds), the listener flags, config errors that name the
//! key and the value, the effective config (`--print-config`) and its check (`--check-config`), a clean exit on
//! SIGTERM and SIGINT with the final counters, and recordings under its state directory.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;

use ringfwd_tests::config::one_stream;
use ringfwd_tests::daemon::{run_to_exit, FREE_PORT_FLAGS};
use ringfwd_tests::{rtp_packet, Daemon, Peer};

/// The built-in default config runs with no file at all.
///
/// Its own ports (media 40000, API 50051, metrics 9464) and token path belong to the daemon a developer may be
/// running while the tests run, so this test moves only those: the listeners with the daemon's `--api-listen`,
/// `--media-port 0` and `--metrics-listen` flags ([`FREE_PORT_FLAGS`]; operators use them to run a second daemon
/// beside a first), and the development token with `RUNTIME_DIRECTORY` (as systemd sets it) pointing at a
/// private directory of the test's. Flags rather than a network namespace of the test's own: a namespace needs
/// root, so the test would be skipped for most developers, and the flags are an operator feature worth testing
/// anyway. That the defaults themselves are the documented ports is checked without binding anything, in
/// [`the_default_ports_are_documented_and_the_flags_move_them`].
#[test]
fn the_default_config_needs_no_file() {
    let daemon = Daemon::spawn(None);
    assert!(daemon.workers >= 1);
    let ips: Vec<IpAddr> = daemon.media.iter().map(|m| m.ip()).collect();
    assert_eq!(ips, ["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()], "the default media IPs");
    assert!(daemon.media.iter().all(|m| m.port() != 40000), "a free media port, not the default: {:?}", daemon.media);
    assert!(daemon.api.ip().is_loopback() && daemon.api.port() != 50051, "{}", daemon.api);
    // The development token is in $RUNTIME_DIRECTORY, for the owner only, and printed nowhere.
    let token = std::fs::read_to_string(&daemon.dev_token_file).expect("the development token file");
    let mode = std::fs::metadata(&daemon.dev_token_file).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = token.trim().to_string();
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    assert_eq!(exit.total("rx_packets"), 0);
    assert!(exit.stderr.contains("dev-token"), "the log says where the token is: {}", exit.stderr);
    for output in [&exit.stderr, &exit.stdout] {
        assert!(!output.contains(&token), "the token was printed:\n{output}");
    }
}

#[test]
fn the_default_ports_are_documented_and_the_flags_move_them() {
    let (ok, stdout, stderr) = run_to_exit(&["--print-config"], None);
    assert!(ok, "{stderr}");
    for default in
        ["\"127.0.0.1:40000\"", "\"[::1]:40000\"", "listen = \"127.0.0.1:50051\"", "listen = \"127.0.0.1:9464\""]
    {
        assert!(stdout.contains(default), "no {default} in the default config:\n{stdout}");
    }
    let mut args = vec!["--print-config"];
    args.extend(FREE_PORT_FLAGS);
    let (ok, stdout, stderr) = run_to_exit(&args, None);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"127.0.0.1:0\"") && stdout.contains("\"[::1]:0\""), "{stdout}");
    assert!(!stdout.contains("40000") && !stdout.contains("50051") && !stdout.contains("9464"), "{stdout}");
    // A flag is validated as the file would be: a generated development key serves loopback only.
    let (ok, _, stderr) = run_to_exit(&["--print-config", "--api-listen", "0.0.0.0:50051"], None);
    assert!(!ok, "a non-loopback API without keys was accepted");
    assert!(stderr.contains("auth.keys") && stderr.contains("0.0.0.0:50051"), "{stderr}");
    let (ok, _, stderr) = run_to_exit(&["--media-port", "70000"], None);
    assert!(!ok && stderr.contains("--media-port") && stderr.contains("70000"), "{stderr}");
}

#[test]
fn an_invalid_value_names_the_key_and_the_value() {
    let (ok, _, stderr) = run_to_exit(&[], Some("[pool]\nbuffers_per_worker = 1000\n"));
    assert!(!ok);
    assert!(stderr.contains("pool.buffers_per_worker") && stderr.contains("1000"), "{stderr}");
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let (ok, _, stderr) = run_to_exit(&[], Some("[media]\nadresses = [\"127.0.0.1:0\"]\n"));
    assert!(!ok);
    assert!(stderr.contains("adresses"), "{stderr}");
}

#[test]
fn a_missing_file_is_named() {
    let (ok, _, stderr) = run_to_exit(&["--config", "/nonexistent/ringfwd.toml"], None);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/ringfwd.toml"), "{stderr}");
}

#[test]
fn a_media_address_that_cannot_be_bound_is_named() {
    // 192.0.2.1 (TEST-NET-1) is not an address of this host, so bind fails; nothing is ever sent to it.
    let (ok, _, stderr) = run_to_exit(&[], Some("[media]\naddresses = [\"192.0.2.1:40000\"]\n"));
    assert!(!ok);
    assert!(stderr.contains("192.0.2.1:40000") && stderr.contains("bind"), "{stderr}");
}

#[test]
fn sigterm_stops_cleanly_after_forwarding_what_was_received() {
    let publisher = Peer::bind("127.0.0.1");
    let sink = Peer::bind("127.0.0.1");
    let config = one_stream("", Some(publisher.addr()), sink.addr(), 5);
    let daemon = Daemon::start(&config);
    let receiver = std::thread::spawn(move || sink.recv(500, std::time::Duration::from_secs(5)).len());
    for seq in 0..500 {
        publisher.send(&rtp_packet(5, seq, 0, 0, false, &[1; 160]), daemon.media[0]);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    let rx = exit.total("rx_packets");
    assert_eq!(rx, 500);
    assert_eq!(exit.total("forwarded_packets"), rx, "everything received was forwarded before exit");
    assert_eq!(receiver.join().expect("receiver"), 500, "the subscriber got every packet");
}

/// The line of `key` in printed TOML (the first one: the keys tested are unique to one section).
#[track_caller]
fn toml_line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

#[test]
fn print_config_prints_a_config_the_daemon_accepts_with_what_it_resolved_and_derived_marked() {
    let (ok, printed, stderr) = run_to_exit(&["--print-config"], None);
    assert!(ok, "{stderr}");
    assert!(printed.contains("[pool]") && printed.contains("buffer_bytes = 2048"), "{printed}");
    assert!(printed.contains("[load]") && printed.contains("expected_packets_per_second = 200000"), "{printed}");
    // "auto" is resolved to this host's cores, and says so.
    let (cores, comment) = toml_line(&printed, "worker_cores").split_once("  # ").expect("worker_cores is marked");
    assert_eq!(comment, "resolved from \"auto\" on this host");
    let cores = cores.strip_prefix("worker_cores = ").expect("a value");
    assert!(cores.starts_with('[') && cores.ends_with(']') && cores.len() > 2, "a list of cores: {cores}");
    // Every size left to [load] is written out and says how it was derived.
    for key in ["buffers_per_worker", "send_slots_per_worker", "recv_buffer_bytes", "send_buffer_bytes"] {
        let (value, comment) = toml_line(&printed, key).split_once("  # ").expect("marked");
        let value: u64 = value.strip_prefix(&format!("{key} = ")).and_then(|v| v.parse().ok()).expect("a number");
        assert!(value > 0, "{key} = {value}");
        assert!(comment.starts_with("derived from [load]: "), "{key}: {comment}");
    }
    // It is a config the daemon accepts, placing its workers on the printed cores.
    let (ok, stdout, stderr) = run_to_exit(&["--check-config"], Some(&printed));
    assert!(ok, "the printed config fails --check-config: {stderr}\n{printed}");
    assert!(stdout.contains(&format!("on cores {cores}")), "{stdout}");
    // Printed from itself, everything is now set: the same values, nothing left to mark.
    let (ok, again, stderr) = run_to_exit(&["--print-config"], Some(&printed));
    assert!(ok, "{stderr}");
    assert_eq!(toml_line(&again, "worker_cores"), format!("worker_cores = {cores}"));
    assert!(!again.lines().any(|l| l.contains("  # ")), "nothing marked: {again}");
    // A placement this host cannot run is refused as --check-config refuses it, naming the key.
    let (ok, stdout, stderr) = run_to_exit(&["--print-config"], Some("[placement]\nworker_cores = [4095]\n"));
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("placement.worker_cores") && stderr.contains("4095"), "{stderr}");
}

#[test]
fn check_config_refuses_what_the_daemon_would_refuse_on_this_host() {
    let (ok, stdout, stderr) = run_to_exit(&["--check-config"], None);
    assert!(ok, "the default config passes: {stderr}");
    assert!(stdout.contains("config ok") && stdout.contains("workers on cores"), "{stdout}");
    // A core this host does not have: the daemon would refuse to start, so the check does too.
    let (ok, _, stderr) = run_to_exit(&["--check-config"], Some("[placement]\nworker_cores = [4095]\n"));
    assert!(!ok, "a missing core passed --check-config");
    assert!(stderr.contains("placement.worker_cores") && stderr.contains("4095"), "{stderr}");
    // "auto" takes this host's cores: their packet memory must fit the limit.
    let tight = "[placement]\nworker_cores = \"auto\"\n[limits]\nmax_pool_bytes_total = 1048576\n";
    let (ok, _, stderr) = run_to_exit(&["--check-config"], Some(tight));
    assert!(!ok, "a pool over limits.max_pool_bytes_total passed --check-config");
    assert!(stderr.contains("limits.max_pool_bytes_total"), "{stderr}");
}

#[test]
fn a_tapped_stream_is_recorded_under_the_state_directory() {
    let publisher = Peer::bind("127.0.0.1");
    let sink = Peer::bind("127.0.0.1");
    let tap_only = "[interceptors]\ningress = [\"tap\"]\negress = []\n";
    let daemon = Daemon::start(&one_stream(tap_only, Some(publisher.addr()), sink.addr(), 7));
    // The harness sets $STATE_DIRECTORY as systemd's StateDirectory= does; the tap's default is "pcap" under it.
    let pcap = daemon.state_directory.join("pcap");
    assert!(!pcap.exists(), "nothing is created before a stream is recorded");
    for seq in 0..20 {
        publisher.send(&rtp_packet(7, seq, 0, 0, false, &[1; 160]), daemon.media[0]);
    }
    assert_eq!(sink.recv(20, std::time::Duration::from_secs(5)).len(), 20, "forwarded, so tapped");
    // On stop the recorder drains the tap rings and closes its files.
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    let files: Vec<std::path::PathBuf> =
        std::fs::read_dir(&pcap).expect("the pcap directory").map(|e| e.expect("entry").path()).collect();
    let [file] = files.as_slice() else { panic!("expected one recording in {}: {files:?}", pcap.display()) };
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(name.starts_with("ringfwd-00000007-") && name.ends_with(".pcap"), "{name}");
    // The pcap header, then per packet a record header, IPv4 and UDP headers and the 172-byte RTP packet.
    assert_eq!(std::fs::metadata(file).unwrap().len(), 24 + 20 * (16 + 20 + 8 + 172));
    let mode = std::fs::metadata(&pcap).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o027, 0, "the pcap directory is closed to others: {mode:o}");
}
