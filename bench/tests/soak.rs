//! End-to-end test of `ringfwd-bench soak`: a short soak (a few seconds at a low rate, with churn)
//! against the real daemon over real sockets writes a time series whose footprint samples are real,
//! shows no loss on the untouched subscriptions and passes its verdict; bad flags are refused naming
//! the flag and the value. Not a performance test: the latency and memory bounds are set wide, so
//! only a functional failure can fail it. Loopback only; bounded in time.

mod common;

use std::process::Command;

use common::{ringfwd_binary, work_dir, BENCH};

#[test]
fn a_short_soak_with_churn_samples_the_daemon_and_passes() {
    let dir = work_dir("soak");
    let out = dir.join("out");
    let run = Command::new(BENCH)
        .args(["soak", "--duration", "6s", "--interval", "1s", "--rate", "50%:600", "--churn", "30"])
        // Not a timing test: a shared machine's stalls (late copies, p99) and the caches filling (memory) are
        // not what it is about.
        .args(["--p99-bound-us", "1000000", "--max-late", "1000000", "--max-rss-growth-mib", "256"])
        .arg("--out")
        .arg(&out)
        .arg("--ringfwd")
        .arg(ringfwd_binary())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("verdict: PASS") && stdout.contains("pass memory flat"), "{stdout}");
    assert!(stdout.contains("50% of a capacity of 600 packets/s in"), "{stdout}");

    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("soak.json")).unwrap()).unwrap();
    assert_eq!(r["verdict"]["pass"], true, "{r}");
    assert_eq!(r["in_pps"].as_f64(), Some(300.0), "{r}");
    let samples = r["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 6, "{r}");
    let n = |s: &serde_json::Value, key: &str| s[key].as_u64().unwrap_or_else(|| panic!("{key} in {s}"));
    for s in samples {
        // Real figures of the daemon's process, not defaults.
        assert!(n(s, "rss_kib") > 1024 && n(s, "anon_kib") > 0 && n(s, "anon_kib") < n(s, "rss_kib"), "{s}");
        assert!(n(s, "fds") >= 3 && n(s, "threads") >= 2, "{s}");
        assert!(n(s, "expected") > 1000, "{s}");
        for key in ["lost", "errors", "churn_errors"] {
            assert_eq!(n(s, key), 0, "{key}: {s}");
        }
        assert!(s["p99_us"].as_f64().unwrap() > 0.0, "{s}");
    }
    assert_eq!(samples.iter().filter(|s| s["warmup"] == true).count(), 1, "{r}");
    // Both kinds of churn cycle ran, and everything churned was freed again.
    let churn = &r["churn"];
    assert!(n(churn, "operations") > 100 && n(churn, "creates") >= n(churn, "deletes"), "{churn}");
    let end = &r["end"];
    assert_eq!(end["registry_after"], end["registry_expected"], "{end}");
    assert_eq!(end["registry_expected"], serde_json::json!([1, 22, 22, 220]), "{end}");
    assert_eq!((n(end, "worker_subscriptions_after"), n(end, "commands_failed")), (220, 0), "{end}");

    let csv = std::fs::read_to_string(out.join("soak.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(csv.starts_with("t_s,warmup,rss_kib,"), "{csv}");
    let md = std::fs::read_to_string(out.join("soak.md")).unwrap();
    assert!(md.contains("| t s | rss MiB |") && md.contains("| memory flat |") && md.contains("verdict: PASS"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_soak_flags_are_refused_naming_the_flag_and_the_value() {
    let refuse = |args: &[&str], says: &[&str]| {
        let run = Command::new(BENCH).arg("soak").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} was accepted");
        for s in says {
            assert!(stderr.contains(s), "{args:?}: {s:?} not in:\n{stderr}");
        }
    };
    refuse(&["--duration", "5x", "--rate", "100", "--churn", "1"], &["--duration", "5x"]);
    refuse(&["--duration", "1m", "--rate", "70%", "--churn", "1"], &["--rate", "\"70%\"", "after a colon"]);
    refuse(&["--duration", "1m", "--rate", "fast", "--churn", "1"], &["--rate", "\"fast\" is not a number"]);
    refuse(&["--duration", "15s", "--rate", "100", "--churn", "1"], &["--duration", "makes 1 intervals"]);
    refuse(&["--duration", "1m", "--rate", "100", "--churn", "-3"], &["--churn", "-3"]);
    refuse(&["--duration", "1m", "--rate", "70%:/nonexistent/cap.json", "--churn", "1"], &["/nonexistent/cap.json"]);
}
