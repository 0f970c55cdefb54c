//! libFuzzer entry of the `config` target: see `ringfwd_fuzz::config` (fuzz/src/config.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::config::run(data));
