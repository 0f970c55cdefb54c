#!/usr/bin/env bash
# Installs the GStreamer command-line tools and the plugins the interop tests (tests/tests/interop_*.rs) run, from
# Debian's packages: gst-launch-1.0 with rtpbin (rtpmanager), udpsrc/udpsink, videotestsrc, vp8enc/vp8dec (libvpx),
# the RTP VP8 (de)payloader, the RTP PCMU depayloader and mu-law decoder, Opus (audiotestsrc, opusenc/opusdec, the
# RTP Opus (de)payloader) with RED (rtpredenc/rtpreddec) for the plugin test (tests/tests/plugin_red.rs), and the core
# elements (identity, funnel, fakesink, tee, queue).
# Idempotent: when every element is already there it does nothing. Needs root (or sudo) and Debian's package
# registry when it has to install; exits non-zero saying what is missing otherwise.
set -euo pipefail

# Every element the test's pipelines name.
ELEMENTS=(rtpbin rtpsession rtpjitterbuffer rtprtxreceive udpsrc udpsink videotestsrc vp8enc vp8dec
    rtpvp8pay rtpvp8depay rtppcmudepay mulawdec identity funnel fakesink capsfilter
    audiotestsrc opusenc opusdec rtpopuspay rtpopusdepay rtpredenc rtpreddec tee queue)
# The Debian packages that carry them (libgstreamer1.0-0, with the core elements, comes with the tools).
PACKAGES=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good)

missing_elements() {
    local missing=()
    if ! command -v gst-inspect-1.0 >/dev/null 2>&1 || ! command -v gst-launch-1.0 >/dev/null 2>&1; then
        echo "gst-launch-1.0 gst-inspect-1.0"
        return
    fi
    for element in "${ELEMENTS[@]}"; do
        gst-inspect-1.0 --exists "$element" || missing+=("$element")
    done
    echo "${missing[*]:-}"
}

# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
ensure_installed install-gstreamer missing_elements "${PACKAGES[@]}"
