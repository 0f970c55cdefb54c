//! Replays inputs (a crash from `fuzz/artifacts/<target>/`, a corpus file) through a target on stable, with the
//! panic's message and backtrace: `cargo run -p ringfwd-fuzz --example replay -- <target> <file>...`.
//! `RINGFWD_FUZZ_DESCRIBE=1` first prints the structured input as the target decodes it (targets that have one).

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: replay <target> <file>...");
    let (_, run) =
        ringfwd_fuzz::TARGETS.iter().find(|(name, _)| *name == target).unwrap_or_else(|| panic!("no target {target}"));
    for file in args {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        if std::env::var_os("RINGFWD_FUZZ_DESCRIBE").is_some() {
            println!("{}", ringfwd_fuzz::describe(&target, &bytes));
        }
        println!("{file}: {} bytes", bytes.len());
        run(&bytes);
        println!("{file}: ok");
    }
}
