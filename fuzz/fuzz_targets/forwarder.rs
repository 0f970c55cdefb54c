//! libFuzzer entry of the `forwarder` target: see `ringfwd_fuzz::forwarder` (fuzz/src/forwarder.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::forwarder::run(data));
