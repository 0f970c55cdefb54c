//! libFuzzer entry of the `twcc` target: see `ringfwd_fuzz::twcc` (fuzz/src/twcc.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::twcc::run(data));
