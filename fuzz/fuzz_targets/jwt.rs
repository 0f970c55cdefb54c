//! libFuzzer entry of the `jwt` target: see `ringfwd_fuzz::jwt` (fuzz/src/jwt.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::jwt::run(data));
