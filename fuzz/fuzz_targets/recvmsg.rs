//! libFuzzer entry of the `recvmsg` target: see `ringfwd_fuzz::recvmsg` (fuzz/src/recvmsg.rs) for what it fuzzes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringfwd_fuzz::recvmsg::run(data));
