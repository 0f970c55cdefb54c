//! libFuzzer entry of the `metadata` target: see `ringfwd_fuzz::metadata` (fuzz/src/metadata.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::metadata::run(data));
