/* RED (RFC 2198) for audio, ABI v1: wraps each RTP packet of a stream into a RED payload that also carries the
 * stream's previous packet as one redundant block, so a receiver that loses a packet recovers it from the next one
 * (GStreamer's rtpreddec, a browser's RED decoder for Opus). Every packet changes length: this is the example of a
 * plugin that rewrites packets.
 *
 * Parameters: red_pt (required, 0..=127): the payload type of RED, as negotiated with the subscribers;
 * max_len (optional, 64..=2048, default 1200; keep it within the worker's max_packet_bytes): the longest packet it
 * makes. A packet whose RED form would be longer goes out with its primary block only, one that does not fit even
 * so goes out as it came (with its own payload type, which RED receivers take as a plain packet).
 *
 * Packet n of a stream goes out with its header as it came (sequence number, timestamp, SSRC, marker, CSRCs,
 * header extension), the payload type set to red_pt, any padding removed, and this payload:
 *   - when the previous packet n-1 of the stream is held, its sequence number is n's minus one, the timestamp
 *     offset ts(n) - ts(n-1) is below 2^14 and its payload is shorter than 2^10 bytes:
 *       [1|pt(n-1)] [offset: 14 bits | length(n-1): 10 bits]  [0|pt(n)]  payload(n-1)  payload(n)
 *   - otherwise:
 *       [0|pt(n)]  payload(n)
 *
 * Runs on ingress chains. What it holds is per stream index on this worker, in a fixed table: streams whose
 * indices share a slot (modulo SLOTS) take turns, and a packet that finds another stream's in its slot goes out
 * with its primary block only.
 */
#include "ringfwd_plugin.h"

RINGFWD_PLUGIN

#define SLOTS 64
#define MAX_BLOCK 1023 /* a block length has 10 bits */

struct previous {
    int32_t stream_plus_one; /* 0: empty */
    uint16_t seq;
    uint32_t timestamp;
    uint8_t payload_type;
    uint16_t len;
    uint8_t payload[MAX_BLOCK];
};

static struct previous held[SLOTS];
static uint64_t red_pt;
static uint64_t max_len = 1200;

int32_t ringfwd_init(int32_t len) {
    if (!ringfwd_param_u64(len, "red_pt", &red_pt) || red_pt > 127) return 1;
    uint64_t asked;
    if (ringfwd_param_u64(len, "max_len", &asked)) {
        if (asked < 64 || asked > RINGFWD_PACKET_BUFFER_BYTES) return 2;
        max_len = asked;
    }
    return 0;
}

static uint32_t be32(const uint8_t *at) {
    return (uint32_t)at[0] << 24 | (uint32_t)at[1] << 16 | (uint32_t)at[2] << 8 | (uint32_t)at[3];
}

int32_t on_rtp(int32_t len, int32_t stream, int32_t flow, int64_t ext_seq, int64_t now_us) {
    (void)flow;
    (void)ext_seq;
    (void)now_us;
    uint8_t *pkt = ringfwd_packet;
    /* Where the payload starts and ends (the host checked the header, the CSRCs, the extension and the padding). */
    int32_t start = 12 + 4 * (pkt[0] & 0x0f);
    if (pkt[0] & 0x10) start += 4 + 4 * ((int32_t)pkt[start + 2] << 8 | pkt[start + 3]);
    int32_t end = len;
    if (pkt[0] & 0x20) end -= pkt[len - 1];
    int32_t payload_len = end - start;
    uint8_t payload_type = pkt[1] & 0x7f;
    uint16_t seq = (uint16_t)(pkt[2] << 8 | pkt[3]);
    uint32_t timestamp = be32(pkt + 4);

    struct previous *prev = &held[(uint32_t)stream % SLOTS];
    uint32_t offset = timestamp - prev->timestamp;
    int redundant = prev->stream_plus_one == stream + 1 && (uint16_t)(prev->seq + 1) == seq && offset < (1u << 14) &&
                    start + 5 + prev->len + payload_len <= (int32_t)max_len;
    int32_t blocks = redundant ? 5 + prev->len : 1;
    if (start + blocks + payload_len > (int32_t)max_len) {
        prev->stream_plus_one = 0;
        return RINGFWD_CONTINUE; /* not even the primary block fits: the packet goes out as it came */
    }

    /* The primary payload moves right past the block headers (and the redundant block); then the headers go in. */
    __builtin_memmove(pkt + start + blocks, pkt + start, (unsigned long)payload_len);
    uint8_t *at = pkt + start;
    if (redundant) {
        at[0] = 0x80 | prev->payload_type;
        at[1] = (uint8_t)(offset >> 6);
        at[2] = (uint8_t)((offset & 0x3f) << 2 | prev->len >> 8);
        at[3] = (uint8_t)(prev->len & 0xff);
        at[4] = payload_type;
        __builtin_memcpy(at + 5, prev->payload, prev->len);
    } else {
        at[0] = payload_type;
    }
    pkt[0] &= (uint8_t)~0x20; /* no padding any more */
    pkt[1] = (uint8_t)((pkt[1] & 0x80) | red_pt);

    /* This packet becomes the stream's previous one (when its payload fits a block). */
    if (payload_len <= MAX_BLOCK) {
        prev->stream_plus_one = stream + 1;
        prev->seq = seq;
        prev->timestamp = timestamp;
        prev->payload_type = payload_type;
        prev->len = (uint16_t)payload_len;
        __builtin_memcpy(prev->payload, pkt + start + blocks, (unsigned long)payload_len);
    } else {
        prev->stream_plus_one = 0;
    }
    ringfwd_rewrite(start + blocks + payload_len);
    return RINGFWD_CONTINUE;
}
