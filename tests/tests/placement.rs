//! Where the daemon's threads run, read from `/proc` as an operator would: workers alone on their cores, every
//! other thread (control runtime, recorder, API, telemetry) on the cores left over, and a spinning worker that
//! would share its core with the control plane refused at start.

use std::path::Path;

use ringfwd_tests::daemon::run_to_exit;
use ringfwd_tests::Daemon;

/// The cores this test process may run on.
fn allowed_cores() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    cpu_list(status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim())
}

/// Parses a kernel CPU list such as `0-2,5`.
fn cpu_list(text: &str) -> Vec<usize> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

/// Every thread of `pid`: its name and the cores it may run on.
fn threads(pid: u32) -> Vec<(String, Vec<usize>)> {
    let dir = format!("/proc/{pid}/task");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|task| {
            let path = task.unwrap().path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap().trim().to_string();
            let status = std::fs::read_to_string(Path::new(&path).join("status")).unwrap();
            let cores = cpu_list(status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim());
            (name, cores)
        })
        .collect()
}

#[test]
fn no_thread_but_a_worker_runs_on_a_worker_core() {
    let allowed = allowed_cores();
    if allowed.len() < 2 {
        eprintln!("skipped: needs two cores this test may run on, has {allowed:?}");
        return;
    }
    let worker = *allowed.last().unwrap();
    let config = format!(
        "[placement]\nworker_cores = [{worker}]\n[media]\naddresses = [\"127.0.0.1:0\"]\n\
         [interceptors.tap]\nring_packets = 64\n"
    );
    let daemon = Daemon::start(&config);
    let threads = threads(daemon.pid());
    let workers: Vec<_> = threads.iter().filter(|(name, _)| name.starts_with("ringfwd-w")).collect();
    assert_eq!(workers.len(), 1, "{threads:?}");
    assert_eq!(workers[0].1, [worker], "{threads:?}");
    let others: Vec<_> = threads.iter().filter(|(name, _)| !name.starts_with("ringfwd-w")).collect();
    assert!(others.len() >= 2, "the main thread and the control runtime at least: {threads:?}");
    for (name, cores) in others {
        assert!(!cores.contains(&worker), "{name} may run on worker core {worker}: {cores:?}");
        assert!(!cores.is_empty() && cores.iter().all(|c| allowed.contains(c)), "{name}: {cores:?}");
    }
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
}

#[test]
fn a_spinning_worker_on_every_core_is_refused_by_name() {
    let allowed = allowed_cores();
    let list = allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let config = format!(
        "[placement]\nworker_cores = [{list}]\n[media]\naddresses = [\"127.0.0.1:0\"]\n[idle]\nstrategy = \"spin\"\n"
    );
    let (ok, _, stderr) = run_to_exit(&[], Some(&config));
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("idle.strategy") && stderr.contains("starve"), "{stderr}");
}
