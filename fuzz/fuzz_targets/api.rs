//! libFuzzer entry of the `api` target: see `ringfwd_fuzz::api` (fuzz/src/api.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::api::run(data));
