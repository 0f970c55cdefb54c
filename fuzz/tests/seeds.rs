//! Replays every fuzz target over its seed corpus (`fuzz/seeds/<target>/`) on stable, and checks that the
//! committed seeds are the ones `ringfwd_fuzz::seeds` makes (`RINGFWD_WRITE_SEEDS=1` writes them instead).

use std::path::{Path, PathBuf};

fn seed_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target)
}

#[test]
fn seeds_are_the_generated_ones() {
    let write = std::env::var_os("RINGFWD_WRITE_SEEDS").is_some();
    for (target, _) in ringfwd_fuzz::TARGETS {
        let seeds = ringfwd_fuzz::seeds::of(target);
        assert!(!seeds.is_empty(), "target {target} has no seeds");
        let dir = seed_dir(target);
        for (name, bytes) in seeds {
            let path = dir.join(&name);
            if write {
                std::fs::create_dir_all(&dir).expect("seed dir");
                std::fs::write(&path, &bytes).expect("seed written");
            } else {
                let committed = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!(
                        "{}: {e}; run `RINGFWD_WRITE_SEEDS=1 cargo test -p ringfwd-fuzz --test seeds`",
                        path.display()
                    )
                });
                assert!(committed == bytes, "{} differs from what ringfwd_fuzz::seeds makes", path.display());
            }
        }
    }
}

#[test]
fn every_target_runs_its_seeds() {
    for (target, run) in ringfwd_fuzz::TARGETS {
        let mut count = 0;
        for entry in std::fs::read_dir(seed_dir(target)).expect("seed dir") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("seed");
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "target {target} failed on {}", path.display());
            count += 1;
        }
        assert!(count > 0, "target {target} ran no seed");
    }
}
