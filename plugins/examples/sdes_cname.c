/* Keeps a publisher's SDES private (ABI v1): rewrites every RTCP compound it sees so that its SDES chunks carry only
 * the CNAME (RFC 3550 §6.5.1, the one item a receiver needs) and the item types `keep` names; NAME, EMAIL, PHONE,
 * LOC, TOOL, NOTE and PRIV items are removed, the chunks and packets shortened, and the compound passed on with
 * ringfwd_rewrite. Other packets (SR, RR, BYE, feedback, APP) pass byte for byte. A compound with nothing to remove is
 * not rewritten. RTP passes untouched.
 *
 * Parameters: keep (a bit mask of SDES item types 1..=8 kept besides CNAME: bit n keeps type n, e.g. 64 keeps TOOL;
 * default 0).
 * Runs on ingress chains (every subscriber gets the stripped compound) or on a subscription's egress chain (only that
 * subscriber does). Sync mode only: an async call cannot rewrite.
 */
#include "ringfwd_plugin.h"

RINGFWD_PLUGIN

#define RTCP_SDES 202
#define SDES_CNAME 1
#define MAX_ITEM_TYPE 8

/* Item types kept: bit n keeps type n. */
static uint32_t keep = 1u << SDES_CNAME;

int32_t ringfwd_init(int32_t len) {
    uint64_t value;
    if (ringfwd_param_u64(len, "keep", &value)) {
        if (value >= (1u << (MAX_ITEM_TYPE + 1)) || (value & 1)) return 1;
        keep |= (uint32_t)value;
    }
    return 0;
}

int32_t on_rtp(int32_t len, int32_t stream, int32_t flow, int64_t ext_seq, int64_t now_us) {
    (void)len;
    (void)stream;
    (void)flow;
    (void)ext_seq;
    (void)now_us;
    return RINGFWD_CONTINUE;
}

/* Writes the SDES packet at `at` (`plen` bytes, header included) to `out` (out <= at, both multiples of 4) with only
 * the kept items, in place: each chunk's SSRC, its kept items, one null octet and zeros to the next 32-bit boundary;
 * no padding (the P bit is cleared). What is written never overtakes what is still to be read: a chunk never grows.
 * Answers the new packet's length in bytes, or -1 for a packet that is not well formed (the host validated the
 * compound, so this is only a guard). */
static int32_t strip_sdes(int32_t at, int32_t plen, int32_t out) {
    uint8_t *p = ringfwd_packet;
    int32_t count = p[at] & 0x1f;
    int32_t end = at + plen;
    if (p[at] & 0x20) {
        int32_t padding = p[end - 1];
        if (padding == 0 || padding > plen - 4) return -1;
        end -= padding;
    }
    int32_t r = at + 4;
    int32_t w = out + 4;
    for (int32_t c = 0; c < count; c++) {
        if (r + 4 > end) return -1;
        __builtin_memmove(&p[w], &p[r], 4);
        r += 4;
        w += 4;
        for (;;) {
            if (r >= end) return -1;
            uint32_t type = p[r];
            if (type == 0) break;
            if (r + 2 > end) return -1;
            int32_t item = 2 + p[r + 1];
            if (r + item > end) return -1;
            if (type <= MAX_ITEM_TYPE && (keep >> type) & 1) {
                __builtin_memmove(&p[w], &p[r], (unsigned long)item);
                w += item;
            }
            r += item;
        }
        /* The null item and the zeros after it, up to the chunk's 32-bit boundary. */
        r += 1;
        while ((r - at) % 4) r++;
        if (r > end) return -1;
        p[w++] = 0;
        while ((w - out) % 4) p[w++] = 0;
    }
    int32_t n = w - out;
    p[out] = (uint8_t)(0x80 | count);
    p[out + 1] = RTCP_SDES;
    p[out + 2] = (uint8_t)((n / 4 - 1) >> 8);
    p[out + 3] = (uint8_t)(n / 4 - 1);
    return n;
}

int32_t on_rtcp(int32_t len, int32_t stream, int32_t flow, int32_t from, int64_t now_us) {
    (void)stream;
    (void)flow;
    (void)from;
    (void)now_us;
    int32_t at = 0;
    int32_t out = 0;
    while (at + 4 <= len) {
        int32_t plen = ((int32_t)ringfwd_packet[at + 2] << 8 | ringfwd_packet[at + 3]) * 4 + 4;
        if (at + plen > len) return RINGFWD_CONTINUE;
        if (ringfwd_packet[at + 1] == RTCP_SDES) {
            int32_t n = strip_sdes(at, plen, out);
            /* The buffer may be half rewritten: without ringfwd_rewrite the host ignores it. */
            if (n < 0) return RINGFWD_CONTINUE;
            out += n;
        } else {
            if (out != at) __builtin_memmove(&ringfwd_packet[out], &ringfwd_packet[at], (unsigned long)plen);
            out += plen;
        }
        at += plen;
    }
    if (at == len && out != len) ringfwd_rewrite(out);
    return RINGFWD_CONTINUE;
}
