/* ringfwd plugin ABI, version 1, for plugins written in C and built to wasm32 with clang (see plugins/README.md).
 *
 * A plugin is a WebAssembly module that exports: memory, ringfwd_abi_version, ringfwd_packet_buffer, on_rtp, and
 * optionally on_rtcp, on_timer and ringfwd_init; it may import the host functions below (module "ringfwd") and
 * nothing else. This header declares them with the right names and types; the plugin defines on_rtp (and the
 * optional ones) and uses RINGFWD_PLUGIN once.
 *
 * No libc: build with `clang --target=wasm32 -nostdlib -Wl,--no-entry` (plugins/build.sh does).
 */
#ifndef RINGFWD_PLUGIN_H
#define RINGFWD_PLUGIN_H

#include <stdint.h>

#define RINGFWD_ABI_VERSION 1
/* The packet buffer's size: the longest packet a plugin is called with. */
#define RINGFWD_PACKET_BUFFER_BYTES 2048
/* `flow` in an ingress chain, and `from` for RTCP from the publisher. */
#define RINGFWD_NONE (-1)

/* Verdicts. Any other value is a fault: the instance is disabled on its worker. */
#define RINGFWD_CONTINUE 0 /* the packet goes on through the chain */
#define RINGFWD_DROP 1     /* dropped, counted under the reason "plugin" */
#define RINGFWD_CONSUMED 2 /* the plugin took it; not a drop */

#define RINGFWD_EXPORT(name) __attribute__((export_name(name)))

/* The packet (or, for ringfwd_init, the parameters as "key=value\n" lines) is written here before each call. */
extern uint8_t ringfwd_packet[RINGFWD_PACKET_BUFFER_BYTES];

/* RTP: `len` bytes in ringfwd_packet, with the header this chain's receiver sees. `stream` is the stream's index
 * on this worker, `flow` the subscription's (RINGFWD_NONE in an ingress chain), `ext_seq` the extended sequence
 * number, `now_us` the worker's clock in microseconds. */
RINGFWD_EXPORT("on_rtp") int32_t on_rtp(int32_t len, int32_t stream, int32_t flow, int64_t ext_seq, int64_t now_us);

/* Optional: an RTCP compound; `from` is RINGFWD_NONE from the publisher, else the sending subscriber's flow. */
RINGFWD_EXPORT("on_rtcp") int32_t on_rtcp(int32_t len, int32_t stream, int32_t flow, int32_t from, int64_t now_us);

/* Optional: once per instance, before any packet; 0 accepts the parameters, anything else refuses the plugin. */
RINGFWD_EXPORT("ringfwd_init") int32_t ringfwd_init(int32_t len);

/* Optional: the time this chain's member asked for with ringfwd_set_timer has come. */
RINGFWD_EXPORT("on_timer") void on_timer(int32_t stream, int32_t flow, int64_t now_us);

/* What the host provides (module "ringfwd"). An emit copies `len` bytes at `bytes` and answers 0, or -1 when
 * refused (longer than RINGFWD_PACKET_BUFFER_BYTES, more than RINGFWD_MAX_EMITS_PER_CALL in one call, outside the
 * plugin's memory). The packets go out when the call returns; an egress chain may emit only to its own
 * subscriber, only an ingress chain may retransmit or inject. */
#define RINGFWD_MAX_EMITS_PER_CALL 8
#define RINGFWD_IMPORT(name) __attribute__((import_module("ringfwd"), import_name(name)))
/* RTCP to the stream's publisher. */
RINGFWD_IMPORT("emit_rtcp_to_publisher") int32_t ringfwd_emit_rtcp_to_publisher(const void *bytes, int32_t len);
/* The bytes as they are to the subscriber of `flow`. */
RINGFWD_IMPORT("emit_to_subscriber") int32_t ringfwd_emit_to_subscriber(int32_t flow, const void *bytes, int32_t len);
/* An RTP packet in the publisher's numbering, through subscription `flow`'s rewrite (a retransmission). */
RINGFWD_IMPORT("retransmit") int32_t ringfwd_retransmit(int32_t flow, const void *bytes, int32_t len);
/* Asks for on_timer at `at_us` (the worker's clock, as now_us); the earliest asked for wins until it fires. */
RINGFWD_IMPORT("set_timer") void ringfwd_set_timer(int64_t at_us);
/* In on_rtp (sync mode): ringfwd_packet now holds the packet to pass on, `len` bytes
 * (12..=RINGFWD_PACKET_BUFFER_BYTES, and within the worker's max_packet_bytes). Change header fields and payload in
 * place, make it shorter or longer, then call this; when on_rtp returns RINGFWD_CONTINUE the new packet replaces the
 * old one for the rest of the chain and the fan-out (from an egress chain: sent to this subscriber as it is).
 * In on_rtcp (sync mode): the same for the RTCP compound (8..=RINGFWD_PACKET_BUFFER_BYTES): it replaces the compound
 * wherever it goes next (see plugins/README.md, "Rewriting RTCP").
 * Answers 0, or -1 elsewhere or for a length out of range; the last accepted call counts. A packet that is not RTP
 * with the SSRC it was given (on_rtp), or not a valid RTCP compound whose first packet carries the SSRC it had
 * (on_rtcp), is a fault (bad_rewrite) that disables the instance. Without this call, changes to the buffer are
 * ignored. */
RINGFWD_IMPORT("rewrite") int32_t ringfwd_rewrite(int32_t len);
/* Ingress only: an RTP packet of this stream (the publisher's SSRC, in the publisher's numbering), fanned out to
 * every active subscription as if the publisher had sent it when the call's emits go out: each subscription's header
 * rewrite and egress chain, then sent. Answers -1 (besides the emits' reasons) for bytes that are not an RTP packet;
 * another SSRC is refused when the emits go out. It does not go through the stream's ingress chain again (this
 * plugin included): statistics, NACK generation, the NACK cache and the tap never see it. */
RINGFWD_IMPORT("inject") int32_t ringfwd_inject(const void *bytes, int32_t len);
/* Copies the metadata a controller set on the stream the call is about (SetMetadata on the stream; for its
 * publisher's or its session's, see ringfwd_metadata_of) into `buf`: `key=value` lines each ended by '\n', sorted by key, no NUL after them, at most
 * RINGFWD_MAX_METADATA_BYTES (the lines that do not fit are left out, from the first that does not). A snapshot the
 * worker holds, replaced when a controller writes the stream's metadata (in async mode: the one the worker held when
 * it queued the copy; in on_timer, the one of the call that asked for the timer). Answers the text's length n (0:
 * none) and copies it when n <= cap; when n > cap it copies nothing (call again with n bytes or more). Answers -1 when
 * buf..buf+cap is outside the plugin's memory, -2 when there is no stream to read (in ringfwd_init). Optional: a
 * module that does not call it does not import it. */
#define RINGFWD_MAX_METADATA_BYTES 4096
#define RINGFWD_METADATA_BAD_RANGE (-1)
#define RINGFWD_METADATA_UNAVAILABLE (-2)
RINGFWD_IMPORT("metadata") int32_t ringfwd_metadata(void *buf, int32_t cap);
/* ringfwd_metadata for `object`: RINGFWD_METADATA_OF_STREAM (the same as ringfwd_metadata), _PUBLISHER (the endpoint
 * that publishes the stream), _SESSION (the stream's session) or _SUBSCRIBER (in an egress chain, the endpoint that
 * receives the subscription; -2 in an ingress chain, which has no subscriber), each its own text of at most
 * RINGFWD_MAX_METADATA_BYTES, replaced when a controller writes that object's metadata. Answers as ringfwd_metadata,
 * and -3 for another `object`. Optional, like ringfwd_metadata. */
#define RINGFWD_METADATA_OF_STREAM 0
#define RINGFWD_METADATA_OF_PUBLISHER 1
#define RINGFWD_METADATA_OF_SESSION 2
#define RINGFWD_METADATA_OF_SUBSCRIBER 3
#define RINGFWD_METADATA_BAD_OBJECT (-3)
RINGFWD_IMPORT("metadata_of") int32_t ringfwd_metadata_of(int32_t object, void *buf, int32_t cap);

/* Defines the buffer and the two exports every plugin has. Use once, in one file. */
#define RINGFWD_PLUGIN                                                                                             \
    uint8_t ringfwd_packet[RINGFWD_PACKET_BUFFER_BYTES];                                                           \
    RINGFWD_EXPORT("ringfwd_abi_version") int32_t ringfwd_abi_version(void) { return RINGFWD_ABI_VERSION; }        \
    RINGFWD_EXPORT("ringfwd_packet_buffer") uint8_t *ringfwd_packet_buffer(void) { return ringfwd_packet; }

/* Reads the unsigned decimal value of parameter `key` from the `len` bytes of parameter text in ringfwd_packet.
 * Answers 1 and sets *value when found and well formed (at most 18 digits), else 0. */
static inline int ringfwd_param_u64(int32_t len, const char *key, uint64_t *value) {
    int32_t at = 0;
    while (at < len) {
        int32_t k = 0;
        while (key[k] != 0 && at + k < len && ringfwd_packet[at + k] == (uint8_t)key[k]) k++;
        int32_t v = at + k;
        int found = key[k] == 0 && v < len && ringfwd_packet[v] == '=';
        int32_t end = at;
        while (end < len && ringfwd_packet[end] != '\n') end++;
        if (found) {
            uint64_t n = 0;
            int32_t digits = 0;
            for (int32_t i = v + 1; i < end; i++, digits++) {
                uint8_t c = ringfwd_packet[i];
                if (c < '0' || c > '9' || digits == 18) return 0;
                n = n * 10 + (uint64_t)(c - '0');
            }
            if (digits == 0) return 0;
            *value = n;
            return 1;
        }
        at = end + 1;
    }
    return 0;
}

/* Finds `key` in `len` bytes of `key=value\n` lines at `text` (what ringfwd_metadata copied) and copies its value to
 * `out` with a NUL after it. Answers the value's length (0 for an empty value), -1 when no line holds the key, -2 when
 * the value and its NUL do not fit in `cap` bytes (nothing meaningful is in `out` then). */
static inline int32_t ringfwd_text_value(const char *text, int32_t len, const char *key, char *out, int32_t cap) {
    int32_t at = 0;
    while (at < len) {
        int32_t end = at;
        while (end < len && text[end] != '\n') end++;
        int32_t k = 0;
        while (key[k] != 0 && at + k < end && text[at + k] == key[k]) k++;
        if (key[k] == 0 && at + k < end && text[at + k] == '=') {
            int32_t start = at + k + 1, n = end - start;
            if (n + 1 > cap) return -2;
            for (int32_t i = 0; i < n; i++) out[i] = text[start + i];
            out[n] = 0;
            return n;
        }
        at = end + 1;
    }
    return -1;
}

#endif
