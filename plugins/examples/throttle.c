/* A per-stream packet-rate throttle (ABI v1): each stream may send at most `max_pps` packets per one-second
 * window, the window starting with the first packet after the previous one ended; the rest is dropped.
 *
 * Parameters: max_pps (required, 1..=10000000). Runs on ingress chains (a stream's packets, before the NACK
 * cache); on an egress chain it throttles each subscription by its own index instead.
 *
 * State is per stream index on this worker, in a fixed table (indices beyond it share slots modulo its size).
 */
#include "ringfwd_plugin.h"

RINGFWD_PLUGIN

#define SLOTS 16384
#define WINDOW_US 1000000

struct window {
    int64_t start_us;
    uint32_t count;
    uint32_t used;
};

static struct window windows[SLOTS];
static uint64_t max_pps;

int32_t ringfwd_init(int32_t len) {
    if (!ringfwd_param_u64(len, "max_pps", &max_pps) || max_pps == 0 || max_pps > 10000000) return 1;
    return 0;
}

int32_t on_rtp(int32_t len, int32_t stream, int32_t flow, int64_t ext_seq, int64_t now_us) {
    (void)len;
    (void)ext_seq;
    uint32_t key = (uint32_t)(flow == RINGFWD_NONE ? stream : flow) % SLOTS;
    struct window *w = &windows[key];
    if (!w->used || (uint64_t)(now_us - w->start_us) >= WINDOW_US) {
        w->used = 1;
        w->start_us = now_us;
        w->count = 0;
    }
    w->count++;
    return w->count > max_pps ? RINGFWD_DROP : RINGFWD_CONTINUE;
}
