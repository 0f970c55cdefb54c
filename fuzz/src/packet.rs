//! Target `packet`: one datagram, as received from the wire, through every data-plane parser (demux, RTP view,
//! RTCP walker, rewriter) and a forwarder with a fixed table whose streams run every built-in interceptor, from
//! the publisher, a stranger and the publisher again. The invariants (every datagram counted once under one
//! outcome, copies as reported, rewritten RTCP valid and as long) are those of
//! `ringfwd_dataplane::core::fuzz_entry`, which the data plane's own property tests also run.

/// Runs one datagram.
pub fn run(data: &[u8]) {
    ringfwd_dataplane::core::fuzz_entry(crate::epoch(), data);
}
