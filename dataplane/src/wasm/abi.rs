//! The plugin ABI, version 1: what a WebAssembly module exports for ringfwd to run it, and what each call means.
//!
//! Owns the export names, their signatures (as Rust tuples), the verdict codes, the packet buffer's size, the
//! parameter text format with its bounds, and the answers of the `metadata` import. Must never hold behaviour beyond checking parameters: loading and
//! calling are [`super::load`]'s and [`super::instance`]'s.
//!
//! # The module
//! A plugin is a core WebAssembly module (binary `.wasm`, or WAT text). It exports:
//!
//! | export | signature | |
//! |---|---|---|
//! | `memory` | memory | its linear memory (at most the plugin's `memory_max_bytes`) |
//! | `ringfwd_abi_version` | `() -> i32` | must return 1 |
//! | `ringfwd_packet_buffer` | `() -> i32` | the address of a [`PACKET_BUFFER_BYTES`]-byte buffer in `memory` |
//! | `on_rtp` | `(len: i32, stream: i32, flow: i32, ext_seq: i64, now_us: i64) -> i32` | required |
//! | `on_rtcp` | `(len: i32, stream: i32, flow: i32, from: i32, now_us: i64) -> i32` | optional |
//! | `ringfwd_init` | `(len: i32) -> i32` | optional: reads the parameters, 0 accepts |
//! | `on_timer` | `(stream: i32, flow: i32, now_us: i64)` | optional: the time it asked for has come |
//!
//! It may import these functions of the module `ringfwd`, and nothing else:
//!
//! | import | signature | |
//! |---|---|---|
//! | `emit_rtcp_to_publisher` | `(ptr: i32, len: i32) -> i32` | RTCP to the stream's publisher |
//! | `emit_to_subscriber` | `(flow: i32, ptr: i32, len: i32) -> i32` | bytes as they are to subscription `flow` |
//! | `retransmit` | `(flow: i32, ptr: i32, len: i32) -> i32` | an RTP packet in the publisher's numbering, through the subscription's rewrite (ingress only) |
//! | `set_timer` | `(at_us: i64)` | asks for `on_timer` at `at_us` (the chain keeps the earliest) |
//! | `rewrite` | `(len: i32) -> i32` | the packet buffer now holds the packet to pass on, `len` bytes (`on_rtp` and `on_rtcp`) |
//! | `inject` | `(ptr: i32, len: i32) -> i32` | an RTP packet of this stream in the publisher's numbering, fanned out to every subscription as if the publisher sent it (ingress only) |
//! | `metadata` | `(ptr: i32, cap: i32) -> i32` | copies the calling packet's stream metadata to `ptr` (see below) |
//! | `metadata_of` | `(object: i32, ptr: i32, cap: i32) -> i32` | the same for the stream (0), its publishing endpoint (1), its session (2) or, in an egress chain, the subscriber (3) |
//!
//! An emit copies `len` bytes from the plugin's memory at `ptr` and answers 0, or −1 when refused (out of its
//! memory, longer than [`PACKET_BUFFER_BYTES`], more than [`MAX_EMITS_PER_CALL`] in one call). The packets go out
//! after the call returns (not if it faults), through the same outbox as the built-ins' (a full outbox refuses and
//! counts); an egress chain may emit only to its own subscriber, only an ingress chain may retransmit or inject.
//!
//! # Injecting a packet
//! `inject` hands the stream a packet as if its publisher had sent it when the call's emits go out: an RTP packet
//! (version 2, a whole header) with the stream's SSRC, in the publisher's numbering; every active subscription of
//! the stream rewrites its header (SSRC, sequence number, timestamp, payload type map), runs it through its egress
//! chain and sends it. It answers −1 (besides the emits' reasons) for bytes that are not an RTP packet; a packet
//! with another SSRC is refused when the emits go out (counted as refused, like any emit that cannot be sent). An
//! injected packet does not go through the stream's ingress chain again, this plugin included: the stream's
//! statistics, NACK generation, the NACK cache (it cannot be retransmitted) and the tap never see it.
//!
//! # Reading the stream's metadata
//! `metadata(ptr, cap)` hands the plugin the metadata a controller set on the stream the call is about (SetMetadata
//! on the stream), read-only: `key=value` lines each ended by
//! `\n`, sorted by key, at most [`MAX_METADATA_BYTES`] bytes (the lines that do not fit, in key order from the first
//! that does not, are left out; a value with a line break is left out). It is a snapshot the worker holds, replaced
//! when a controller writes the stream's metadata: two calls about the same packet read the same text (in async
//! mode the copy carries the snapshot the worker held when it queued the copy). It answers:
//! - [`METADATA_UNAVAILABLE`] (−2) when there is no stream to read (in `ringfwd_init`: an instance serves every
//!   stream of its worker);
//! - [`METADATA_BAD_RANGE`] (−1) when `ptr..ptr + cap` is not within the plugin's memory (or either is negative);
//! - otherwise the text's length `n` in bytes (0: the stream has no metadata). When `n <= cap` the text is copied
//!   to `ptr..ptr + n` (nothing after it is written: no NUL); when `n > cap` nothing is copied, so a plugin calls
//!   again with at least `n` bytes (`n` is at most [`MAX_METADATA_BYTES`]). `metadata(0, 0)` asks only the length.
//!
//! `metadata_of(object, ptr, cap)` reads, the same way, the text of [`METADATA_OF_STREAM`] (0: what `metadata`
//! reads), [`METADATA_OF_PUBLISHER`] (1: the endpoint that publishes the stream, SetMetadata on the endpoint),
//! [`METADATA_OF_SESSION`] (2: the stream's session, SetMetadata on the session) or [`METADATA_OF_SUBSCRIBER`] (3:
//! in an egress chain, the endpoint that receives the subscription, SetMetadata on that endpoint; a call of an
//! ingress chain, which has no subscriber, gets [`METADATA_UNAVAILABLE`]); each is its own text of at most
//! [`MAX_METADATA_BYTES`], replaced when a controller writes that object's metadata (the first three are one snapshot
//! of the stream's, the subscriber's is the subscription's own). It answers [`METADATA_BAD_OBJECT`] (−3) for any other
//! `object`, besides the answers above.
//!
//! Both imports are optional: a module that names neither runs as before (the ABI version stays 1), and only an
//! instance that imports one pays for it (a reference count per snapshot per call: one in an ingress chain, two in an
//! egress chain).
//!
//! # Rewriting a packet
//! In `on_rtp` a plugin may change the packet in its buffer, header fields and payload, and make it shorter or
//! longer (up to [`PACKET_BUFFER_BYTES`] and the worker's `max_packet_bytes`), then call `rewrite(len)`: when the
//! call returns continue, the packet's first `len` bytes in the buffer replace the packet. The members after the
//! plugin see the new packet; from an ingress chain it is what every subscription rewrites (SSRC, sequence number,
//! timestamp, payload type map) and sends; from an egress chain it goes to this subscriber as it is (its header
//! as the plugin left it: the buffer held what this subscriber receives). `rewrite` answers 0, or −1 outside
//! `on_rtp` and `on_rtcp` or for a length out of [`MIN_RTP_REWRITE_BYTES`]..=[`PACKET_BUFFER_BYTES`]; the last
//! accepted call counts. A buffer that does not then hold an RTP packet (version 2, a whole header, valid padding)
//! with the SSRC it was given, or longer than the worker's `max_packet_bytes`, is a fault (`bad_rewrite`), like a bad
//! verdict. Without `rewrite`, changes to the buffer are ignored.
//!
//! In `on_rtcp` the same call replaces the RTCP compound (a length of [`MIN_RTCP_REWRITE_BYTES`]..=
//! [`PACKET_BUFFER_BYTES`]): the plugin may drop, add, shorten or change packets of it, SDES items, report blocks,
//! feedback. The new compound must be one ringfwd would take from the network (every packet version 2, lengths that
//! cover the datagram exactly, padding only on the last, the structure of SR, RR, SDES, BYE and feedback whole)
//! whose first packet carries the SSRC the compound had (bytes 4..8, by which it was steered); otherwise it is a
//! `bad_rewrite` fault. Where the new compound goes:
//! - the publisher's, in an ingress chain (`from` −1): to every subscription, each rewriting its SSRCs and SR times
//!   as it does the publisher's own;
//! - the publisher's, in an egress chain: to this subscriber as it is;
//! - a subscriber's, in its egress chain: translated to the publisher's SSRC and numbering, then through the
//!   stream's ingress chain;
//! - a subscriber's, in the ingress chain: to the publisher, when it asks for something (NACK, PLI, FIR) no
//!   built-in of the chain answers (read again from the new compound); a keyframe request the API asked for goes to
//!   the publisher as the plugin left it.
//!
//! # The calls
//! Before each call ringfwd writes the packet at the buffer's address:
//! - `on_rtp`: the RTP datagram as the chain sees it, `len` bytes. In an egress chain its fixed header already
//!   carries what this subscriber receives (SSRC, sequence number, timestamp, payload type, marker). `stream` is the
//!   stream's index on this worker, `flow` the subscription's (−1 in an ingress chain), `ext_seq` the extended
//!   sequence number (cycles × 65536 + sequence number, in the numbering the header shows), `now_us` the worker's
//!   clock in microseconds since it started (the only clock a plugin has).
//! - `on_rtcp`: the RTCP compound, `len` bytes; `from` is −1 when it came from the publisher, else the flow of the
//!   subscriber that sent it.
//! - `ringfwd_init`: once per instance, before any packet: the parameters as text, `key=value` lines each ended by
//!   `\n`, sorted by key, `len` bytes. A result other than 0 refuses the plugin (at load, naming the code).
//!
//! Each of `on_rtp` and `on_rtcp` returns a verdict: [`VERDICT_CONTINUE`] (the packet goes on through the chain),
//! [`VERDICT_DROP`] (dropped, counted under the reason `plugin`) or [`VERDICT_CONSUMED`] (the plugin took it; not
//! a drop). Any other value is a fault, like a trap. Packets longer than the buffer pass without a call.
//!
//! # Instances and state
//! In sync mode, one instance per plugin per worker, shared by every stream and subscription on that worker that runs it: a
//! plugin keeps per-stream state in its own memory, keyed by `stream` (and `flow`). Indices are reused after a
//! stream or subscription is deleted; a stream moved to another worker starts with that worker's instance.
//!
//! # Async mode
//! A plugin loaded with `mode = "async"` runs the same module, the same calls, on one instance on its own thread,
//! off the worker cores (see [`super::offload`]). What differs:
//! - Each chain that names it hands the thread a copy of the packet (the header patched as above) through a
//!   bounded queue per worker, and goes on at once as the plugin's `async_pass` says (`forward`: the packet goes
//!   on; `consume`: the chain stops it). A full queue drops the copy and counts it (`async_queue_full`); with
//!   `consume` the packet is then dropped under `plugin`. RTCP copies always go on.
//! - The verdict does not decide the packet's fate (it is already gone): continue, drop and consumed are counted,
//!   any other value is a fault. `rewrite` answers −1 (in `on_rtp` and `on_rtcp` alike); `metadata` and
//!   `metadata_of` read the snapshot the copy carries (see above).
//! - What a call (or `on_timer`) emits goes back to the worker that sent the copy, through a bounded queue
//!   (`async_returns_dropped` when full), and is sent there as the chain that sent the copy would have sent it,
//!   with the same rules. An injected packet is fanned out when the worker takes it.
//! - `now_us` is the copy's arrival time (or, in `on_timer`, the thread's time), on the thread's clock:
//!   microseconds since the plugin's thread started. `set_timer` times are on that clock; one timer per chain.
//! - One instance serves every worker: `stream` and `flow` carry the worker's lane (0..=254) in their top 8 bits,
//!   so they are unique across workers (the index is the low 24 bits). Pass a `flow` back to `emit_to_subscriber`
//!   or `retransmit` as it was given; a flow of another worker is refused.
//! - A fault drops the one instance: every worker's chains then take the failure path, and one event says so.
//!
//! # Limits
//! Every call runs with the plugin's fuel budget (about one unit per WebAssembly instruction); running out, a
//! trap (unreachable, out-of-bounds access, division by zero, stack overflow), a bad verdict or a bad rewrite disables the
//! instance on that worker: from then on its packets take the plugin's failure path (`forward`: pass untouched;
//! `drop`: dropped under `plugin`), and the fault is counted. `memory.grow` beyond `memory_max_bytes` fails
//! (returns −1). A module importing anything but the functions above is refused at load.

use std::collections::BTreeMap;

/// The ABI version this host runs.
pub const ABI_VERSION: i32 = 1;

/// The plugin's linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// `() -> i32`: the ABI version the plugin was written for.
pub const EXPORT_VERSION: &str = "ringfwd_abi_version";
/// `() -> i32`: the packet buffer's address.
pub const EXPORT_BUFFER: &str = "ringfwd_packet_buffer";
/// `(len: i32) -> i32`: reads the parameters; optional.
pub const EXPORT_INIT: &str = "ringfwd_init";
/// `(len, stream, flow, ext_seq, now_us) -> verdict`.
pub const EXPORT_ON_RTP: &str = "on_rtp";
/// `(len, stream, flow, from, now_us) -> verdict`; optional.
pub const EXPORT_ON_RTCP: &str = "on_rtcp";

/// `(stream, flow, now_us)`; optional.
pub const EXPORT_ON_TIMER: &str = "on_timer";

/// The module every import comes from.
pub const IMPORT_MODULE: &str = "ringfwd";
/// `(ptr, len) -> i32`.
pub const IMPORT_EMIT_RTCP_TO_PUBLISHER: &str = "emit_rtcp_to_publisher";
/// `(flow, ptr, len) -> i32`.
pub const IMPORT_EMIT_TO_SUBSCRIBER: &str = "emit_to_subscriber";
/// `(flow, ptr, len) -> i32`.
pub const IMPORT_RETRANSMIT: &str = "retransmit";
/// `(at_us)`.
pub const IMPORT_SET_TIMER: &str = "set_timer";
/// `(len) -> i32`.
pub const IMPORT_REWRITE: &str = "rewrite";
/// `(ptr, len) -> i32`.
pub const IMPORT_INJECT: &str = "inject";
/// `(ptr, cap) -> i32`: the stream's metadata (see the module docs).
pub const IMPORT_METADATA: &str = "metadata";
/// `(object, ptr, cap) -> i32`: the metadata of the stream, its publisher, its session or the subscriber (see the
/// module docs).
pub const IMPORT_METADATA_OF: &str = "metadata_of";
/// `metadata_of`'s `object`: the stream's own.
pub const METADATA_OF_STREAM: i32 = 0;
/// `metadata_of`'s `object`: the endpoint that publishes the stream.
pub const METADATA_OF_PUBLISHER: i32 = 1;
/// `metadata_of`'s `object`: the stream's session.
pub const METADATA_OF_SESSION: i32 = 2;
/// `metadata_of`'s `object`: in an egress chain, the endpoint that receives the subscription.
pub const METADATA_OF_SUBSCRIBER: i32 = 3;
/// Every import a module may name.
pub const IMPORTS: [&str; 8] = [
    IMPORT_EMIT_RTCP_TO_PUBLISHER,
    IMPORT_EMIT_TO_SUBSCRIBER,
    IMPORT_RETRANSMIT,
    IMPORT_SET_TIMER,
    IMPORT_REWRITE,
    IMPORT_INJECT,
    IMPORT_METADATA,
    IMPORT_METADATA_OF,
];
/// What `metadata` answers when `ptr..ptr + cap` is not within the plugin's memory.
pub const METADATA_BAD_RANGE: i32 = -1;
/// What `metadata` answers when the call has no stream metadata to read (`ringfwd_init`).
pub const METADATA_UNAVAILABLE: i32 = -2;
/// What `metadata_of` answers for an `object` it does not know.
pub const METADATA_BAD_OBJECT: i32 = -3;
/// The longest metadata text `metadata` hands a plugin, in bytes.
pub const MAX_METADATA_BYTES: usize = crate::core::interceptor::MAX_METADATA_BYTES;
/// The most packets one call may emit.
pub const MAX_EMITS_PER_CALL: usize = 8;
/// What an emit answers when it took the packet.
pub const EMIT_OK: i32 = 0;
/// What an emit answers when it refused the packet.
pub const EMIT_REFUSED: i32 = -1;

/// `on_timer`'s parameters.
pub type OnTimerArgs = (i32, i32, i64);
/// `on_rtp`'s parameters.
pub type OnRtpArgs = (i32, i32, i32, i64, i64);
/// `on_rtcp`'s parameters.
pub type OnRtcpArgs = (i32, i32, i32, i32, i64);

/// The shortest packet `rewrite(len)` accepts in `on_rtp`: an RTP fixed header.
pub const MIN_RTP_REWRITE_BYTES: usize = 12;
/// The shortest compound `rewrite(len)` accepts in `on_rtcp`: one RTCP packet's header and SSRC.
pub const MIN_RTCP_REWRITE_BYTES: usize = 8;
/// The size of the buffer the plugin exports, in bytes: the longest packet it is called with.
pub const PACKET_BUFFER_BYTES: usize = 2048;

/// `flow` in an ingress chain, and `from` for RTCP from the publisher.
pub const NONE: i32 = -1;

/// The packet goes on through the chain.
pub const VERDICT_CONTINUE: i32 = 0;
/// The packet is dropped (reason `plugin`).
pub const VERDICT_DROP: i32 = 1;
/// The plugin took the packet; it goes no further and is not counted as dropped.
pub const VERDICT_CONSUMED: i32 = 2;

/// The most parameters a plugin may have.
pub const MAX_PARAMS: usize = 32;
/// The longest parameter key, in bytes.
pub const MAX_PARAM_KEY_BYTES: usize = 64;

/// Why a plugin's parameters are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Too many.
    #[error("{count} parameters, at most {MAX_PARAMS}")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A key is empty, too long, or not ASCII letters, digits, `_`, `-` and `.`.
    #[error("parameter key {0:?} is not 1..={MAX_PARAM_KEY_BYTES} bytes of ASCII letters, digits, _, - and .")]
    BadKey(String),
    /// A value holds a line break or a NUL.
    #[error("the value of parameter {0:?} holds a line break or a NUL")]
    BadValue(String),
    /// The text is longer than the packet buffer.
    #[error("the parameters take {bytes} bytes as text, at most {PACKET_BUFFER_BYTES}")]
    TooLong {
        /// The text's length.
        bytes: usize,
    },
}

/// The parameters as `ringfwd_init` reads them (`key=value\n`, sorted by key), or why they are refused.
pub fn params_text(params: &BTreeMap<String, String>) -> Result<String, ParamsError> {
    if params.len() > MAX_PARAMS {
        return Err(ParamsError::TooMany { count: params.len() });
    }
    let mut text = String::new();
    for (key, value) in params {
        let key_ok = (1..=MAX_PARAM_KEY_BYTES).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !key_ok {
            return Err(ParamsError::BadKey(key.clone()));
        }
        if value.contains(['\n', '\r', '\0']) {
            return Err(ParamsError::BadValue(key.clone()));
        }
        text.push_str(key);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    if text.len() > PACKET_BUFFER_BYTES {
        return Err(ParamsError::TooLong { bytes: text.len() });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_sorted_lines_and_bounded() {
        let params: BTreeMap<String, String> =
            [("rate", "50"), ("burst", "")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        assert_eq!(params_text(&params).as_deref(), Ok("burst=\nrate=50\n"));
        let bad_key: BTreeMap<String, String> = [("a=b".to_owned(), String::new())].into();
        assert_eq!(params_text(&bad_key), Err(ParamsError::BadKey("a=b".into())));
        let bad_value: BTreeMap<String, String> = [("a".to_owned(), "x\ny".to_owned())].into();
        assert_eq!(params_text(&bad_value), Err(ParamsError::BadValue("a".into())));
        let many: BTreeMap<String, String> = (0..=MAX_PARAMS).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(params_text(&many), Err(ParamsError::TooMany { count: MAX_PARAMS + 1 }));
        let long: BTreeMap<String, String> = [("k".to_owned(), "v".repeat(PACKET_BUFFER_BYTES))].into();
        assert_eq!(params_text(&long), Err(ParamsError::TooLong { bytes: PACKET_BUFFER_BYTES + 3 }));
    }
}
