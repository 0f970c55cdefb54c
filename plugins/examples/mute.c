/* Mutes a stream from its metadata (ABI v1): drops every RTP packet of a stream whose metadata, its publishing
 * endpoint's or its session's says `app.muted=1`, forwards the rest; RTCP always passes. A controller mutes and
 * unmutes one stream, everything an endpoint publishes, or a whole session with SetMetadata / DeleteMetadata on that
 * object, without touching any chain. On an egress chain it also deafens a subscriber: an endpoint whose metadata
 * says `app.deafened=1` receives no RTP through the subscriptions that run it, while every other subscriber of the
 * same streams still does.
 *
 * Parameters: none. Runs on ingress chains (the publisher's packets, before the NACK cache) or egress chains (the
 * stream's metadata either way: a subscription's chain reads its stream's; and its subscriber's). Sync mode only: in
 * async mode its verdict no longer decides (the packet has gone on), so it would mute nothing.
 *
 * No state: the metadata is read on each packet (up to four copies of at most RINGFWD_MAX_METADATA_BYTES).
 */
#include "ringfwd_plugin.h"

RINGFWD_PLUGIN

static char text[RINGFWD_MAX_METADATA_BYTES];

/* Whether the metadata of `object` says `key`=1 (an ingress chain has no subscriber: -2, not set). */
static int says(int32_t object, const char *key) {
    int32_t n = ringfwd_metadata_of(object, text, (int32_t)sizeof text);
    if (n <= 0 || n > (int32_t)sizeof text) return 0;
    char value[8];
    int32_t found = ringfwd_text_value(text, n, key, value, (int32_t)sizeof value);
    return found == 1 && value[0] == '1';
}

static int muted(int32_t object) {
    return says(object, "app.muted");
}

int32_t on_rtp(int32_t len, int32_t stream, int32_t flow, int64_t ext_seq, int64_t now_us) {
    (void)len;
    (void)stream;
    (void)flow;
    (void)ext_seq;
    (void)now_us;
    if (muted(RINGFWD_METADATA_OF_STREAM) || muted(RINGFWD_METADATA_OF_PUBLISHER) ||
        muted(RINGFWD_METADATA_OF_SESSION) || says(RINGFWD_METADATA_OF_SUBSCRIBER, "app.deafened"))
        return RINGFWD_DROP;
    return RINGFWD_CONTINUE;
}
