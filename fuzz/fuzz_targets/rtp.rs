//! libFuzzer entry of the `rtp` target: see `ringfwd_fuzz::rtp` (fuzz/src/rtp.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::rtp::run(data));
