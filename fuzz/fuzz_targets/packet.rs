//! libFuzzer entry of the `packet` target: see `ringfwd_fuzz::packet` (fuzz/src/packet.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::packet::run(data));
