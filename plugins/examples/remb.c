/* Receiver-estimated maximum bitrate (REMB) for each publisher (ABI v1): counts the bytes each stream delivers and,
 * once a second, sends its publisher an RTCP REMB (draft-alvestrand-rmcat-remb) of the measured bitrate times
 * `percent` / 100, through the host's emit import and timer. Every packet continues.
 *
 * Parameters: percent (1..=1000, default 100), sender_ssrc (the REMB's sender SSRC, default 1).
 * Runs on ingress chains (where the publisher's packets arrive).
 */
#include "ringfwd_plugin.h"

RINGFWD_PLUGIN

#define SLOTS 16384
#define PERIOD_US 1000000

struct stream {
    uint64_t bytes;
    uint32_t media_ssrc;
    uint32_t armed;
};

static struct stream streams[SLOTS];
static uint64_t percent = 100;
static uint64_t sender_ssrc = 1;
static uint8_t remb[24];

int32_t ringfwd_init(int32_t len) {
    uint64_t value;
    if (ringfwd_param_u64(len, "percent", &value)) {
        if (value == 0 || value > 1000) return 1;
        percent = value;
    }
    if (ringfwd_param_u64(len, "sender_ssrc", &value)) {
        if (value > 0xffffffffu) return 2;
        sender_ssrc = value;
    }
    return 0;
}

static uint32_t read32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void write32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int32_t on_rtp(int32_t len, int32_t stream, int32_t flow, int64_t ext_seq, int64_t now_us) {
    (void)flow;
    (void)ext_seq;
    struct stream *s = &streams[(uint32_t)stream % SLOTS];
    s->bytes += (uint64_t)len;
    s->media_ssrc = read32(&ringfwd_packet[8]);
    if (!s->armed) {
        s->armed = 1;
        ringfwd_set_timer(now_us + PERIOD_US);
    }
    return RINGFWD_CONTINUE;
}

void on_timer(int32_t stream, int32_t flow, int64_t now_us) {
    (void)flow;
    (void)now_us;
    struct stream *s = &streams[(uint32_t)stream % SLOTS];
    uint64_t bps = s->bytes * 8 * 1000000 / PERIOD_US * percent / 100;
    s->bytes = 0;
    s->armed = 0; /* the next packet arms it again: an idle stream gets no REMB */
    uint32_t exponent = 0;
    while (bps >= (1u << 18)) {
        bps >>= 1;
        exponent++;
    }
    remb[0] = 0x80 | 15; /* V=2, FMT=15 */
    remb[1] = 206;       /* PSFB */
    remb[2] = 0;
    remb[3] = 5; /* 6 words */
    write32(&remb[4], (uint32_t)sender_ssrc);
    write32(&remb[8], 0);
    remb[12] = 'R';
    remb[13] = 'E';
    remb[14] = 'M';
    remb[15] = 'B';
    write32(&remb[16], 1u << 24 | exponent << 18 | (uint32_t)bps);
    write32(&remb[20], s->media_ssrc);
    ringfwd_emit_rtcp_to_publisher(remb, sizeof remb);
}
