//! libFuzzer entry of the `rewrite` target: see `ringfwd_fuzz::rewrite` (fuzz/src/rewrite.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::rewrite::run(data));
