//! libFuzzer entry of the `rtcp` target: see `ringfwd_fuzz::rtcp` (fuzz/src/rtcp.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::rtcp::run(data));
