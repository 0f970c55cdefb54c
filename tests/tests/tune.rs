//! `ringfwd tune check` on this machine: it runs, prints a JSON array of items with a known status, and the
//! io_uring probe is among them; an unreadable config is refused before anything is checked.

use ringfwd_tests::daemon::run_to_exit;

#[test]
fn tune_check_json_reports_io_uring_and_every_host_item() {
    let (ok, stdout, stderr) = run_to_exit(&["tune", "check", "--json"], None);
    let items: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let items = items.as_array().expect("a JSON array");
    let status_of =
        |name: &str| items.iter().find(|i| i["name"] == name).map(|i| i["status"].as_str().unwrap_or("").to_owned());
    let io_uring = status_of("io_uring").unwrap_or_else(|| panic!("no io_uring item: {stdout}"));
    for name in [
        "worker cores online",
        "damon threads",
        "rmem_max",
        "netdev_max_backlog",
        "nic irqs on worker cores",
        "rps masks",
        "disk irqs on worker cores",
    ] {
        assert!(status_of(name).is_some(), "no {name} item: {stdout}");
    }
    for item in items {
        assert!(matches!(item["status"].as_str(), Some("ok" | "warn" | "fail")), "{item}");
        assert!(item["detail"].as_str().is_some_and(|d| !d.is_empty()), "{item}");
    }
    let any_fail = items.iter().any(|i| i["status"] == "fail");
    assert_eq!(ok, !any_fail, "exit status must be 1 exactly when an item fails: {stdout}\n{stderr}");
    eprintln!("io_uring: {io_uring}");
}

#[test]
fn tune_check_refuses_an_invalid_config_by_key() {
    let (ok, stdout, stderr) = run_to_exit(&["tune", "check"], Some("[pool]\nbuffers_per_worker = 1000\n"));
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("pool.buffers_per_worker"), "{stderr}");
}
