/* A delay and reorder buffer (ABI v1, ingress): holds each RTP packet of a stream for `delay_ms`, then injects the
 * held packets back into the stream in extended-sequence-number order (ringfwd_inject: every subscription sends them
 * through its own rewrite, as if the publisher had sent them then). The original is consumed, so subscribers receive
 * only the reordered copies.
 *
 * The held packet with the lowest sequence number goes out once its own hold time has passed; packets behind it wait
 * for it (so each packet is held at least `delay_ms`, and a packet that arrived early behind a late one waits a
 * little longer). A packet whose sequence number is already held, or not above the last one sent (a duplicate, or
 * one later than `delay_ms`), is dropped. When a stream's buffer is full, its lowest packet goes out at once.
 *
 * Parameters: delay_ms (optional, default 50, 1..=10000). Runs on ingress chains only (inject is ingress only).
 * Runs in either mode: sync (inline on each worker), or async with async_pass = "consume" (on its own thread; the
 * chain consumes each packet and the plugin re-injects it from there, so a slow buffer never holds up a worker).
 * State is per stream, in fixed tables keyed by the stream argument (in async mode it carries the worker's lane in
 * its top bits): STREAMS streams per instance (about 6 MB of buffers); streams beyond share slots, and a shared slot
 * drops what it takes for another stream's duplicates.
 * Packets longer than SLOT_BYTES pass untouched. Injected packets skip the ingress chain: the NACK cache, the
 * stream's statistics and the tap see the packets as they arrived, not as they are sent.
 */
#include "ringfwd_plugin.h"

RINGFWD_PLUGIN

#define STREAMS 64
#define HOLD 64
#define SLOT_BYTES 1500

struct held {
    int64_t due_us;
    int64_t ext_seq;
    int32_t len;
    int32_t used;
};

struct buffer {
    struct held held[HOLD];
    uint8_t bytes[HOLD][SLOT_BYTES];
    int64_t last_sent; /* the extended sequence number sent last (0: none yet) */
    int32_t count;
};

static struct buffer buffers[STREAMS];
static int64_t delay_us = 50000;

int32_t ringfwd_init(int32_t len) {
    uint64_t delay_ms = 50;
    int found = ringfwd_param_u64(len, "delay_ms", &delay_ms);
    /* Absent: the default; present but not a number in range: refused. */
    int32_t at = 0;
    const char key[] = "delay_ms=";
    int present = 0;
    while (at < len) {
        int32_t k = 0;
        while (key[k] != 0 && at + k < len && ringfwd_packet[at + k] == (uint8_t)key[k]) k++;
        if (key[k] == 0) present = 1;
        while (at < len && ringfwd_packet[at] != '\n') at++;
        at++;
    }
    if (present && (!found || delay_ms == 0 || delay_ms > 10000)) return 1;
    delay_us = (int64_t)delay_ms * 1000;
    return 0;
}

/* The table slot of a stream: its index (low 24 bits) mixed with its worker's lane (async mode, top 8 bits). */
static uint32_t slot_of(int32_t stream) {
    uint32_t s = (uint32_t)stream;
    return ((s & 0xffffff) + (s >> 24) * 7) % STREAMS;
}

/* The index of the held packet with the lowest extended sequence number, or -1. */
static int32_t lowest(const struct buffer *b) {
    int32_t best = -1;
    for (int32_t i = 0; i < HOLD; i++) {
        if (b->held[i].used && (best < 0 || b->held[i].ext_seq < b->held[best].ext_seq)) best = i;
    }
    return best;
}

/* Injects held packet `i` and frees its slot. */
static void send(struct buffer *b, int32_t i) {
    ringfwd_inject(b->bytes[i], b->held[i].len);
    b->last_sent = b->held[i].ext_seq;
    b->held[i].used = 0;
    b->count--;
}

/* Sends the lowest packets while they are due (at most `budget` of them), then asks for the next one's time. */
static void release(struct buffer *b, int64_t now_us, int32_t budget) {
    int32_t i = lowest(b);
    while (i >= 0 && budget > 0 && b->held[i].due_us <= now_us) {
        send(b, i);
        budget--;
        i = lowest(b);
    }
    if (i >= 0) ringfwd_set_timer(b->held[i].due_us > now_us ? b->held[i].due_us : now_us);
}

int32_t on_rtp(int32_t len, int32_t stream, int32_t flow, int64_t ext_seq, int64_t now_us) {
    if (flow != RINGFWD_NONE || len > SLOT_BYTES) return RINGFWD_CONTINUE;
    struct buffer *b = &buffers[slot_of(stream)];
    if (b->last_sent != 0 && ext_seq + 32768 < b->last_sent) {
        /* Far behind what this slot sent: another stream now has its index (or shares it); start afresh. */
        for (int32_t i = 0; i < HOLD; i++) b->held[i].used = 0;
        b->count = 0;
        b->last_sent = 0;
    }
    if (b->last_sent != 0 && ext_seq <= b->last_sent) return RINGFWD_DROP;
    int32_t free_slot = -1;
    for (int32_t i = 0; i < HOLD; i++) {
        if (b->held[i].used && b->held[i].ext_seq == ext_seq) return RINGFWD_DROP;
        if (!b->held[i].used && free_slot < 0) free_slot = i;
    }
    if (free_slot < 0) {
        /* Full: the lowest goes out now (unless this one is lower still: then this one does). */
        int32_t i = lowest(b);
        if (ext_seq < b->held[i].ext_seq) {
            ringfwd_inject(ringfwd_packet, len);
            b->last_sent = ext_seq;
            return RINGFWD_CONSUMED;
        }
        send(b, i);
        free_slot = i;
    }
    struct held *h = &b->held[free_slot];
    __builtin_memcpy(b->bytes[free_slot], ringfwd_packet, (uint32_t)len);
    h->due_us = now_us + delay_us;
    h->ext_seq = ext_seq;
    h->len = len;
    h->used = 1;
    b->count++;
    release(b, now_us, RINGFWD_MAX_EMITS_PER_CALL - 1);
    return RINGFWD_CONSUMED;
}

void on_timer(int32_t stream, int32_t flow, int64_t now_us) {
    if (flow != RINGFWD_NONE) return;
    release(&buffers[slot_of(stream)], now_us, RINGFWD_MAX_EMITS_PER_CALL);
}
