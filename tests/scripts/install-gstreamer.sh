#!/usr/bin/env bash
# Installs the GStreamer command-line tools and the plugins the interop tests (tests/tests/interop_*.rs) run, from
# Debian's packages: gst-launch-1.0 with rtpbin (rtpmanager), udpsrc/udpsink, videotestsrc, vp8enc/vp8dec (libvpx),
# the RTP VP8 (de)payloader, the RTP PCMU depayloader and mu-law decoder, and the core elements (identity, funnel,
# fakesink).
# Idempotent: when every element is already there it does nothing. Needs root (or sudo) and Debian's package
# registry when it has to install; exits non-zero saying what is missing otherwise.
set -euo pipefail

# Every element the test's pipelines name.
ELEMENTS=(rtpbin rtpsession rtpjitterbuffer rtprtxreceive udpsrc udpsink videotestsrc vp8enc vp8dec
    rtpvp8pay rtpvp8depay rtppcmudepay mulawdec identity funnel fakesink capsfilter)
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

missing=$(missing_elements)
if [[ -z "$missing" ]]; then
    echo "install-gstreamer: gst-launch-1.0 and every element needed are present"
    exit 0
fi
echo "install-gstreamer: missing: $missing; installing ${PACKAGES[*]}"

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "install-gstreamer: not root and no sudo: install ${PACKAGES[*]} by hand" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-gstreamer: no apt-get (not Debian/Ubuntu): install GStreamer 1.x with the elements" \
        "${ELEMENTS[*]} by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get update -q; then
    echo "install-gstreamer: apt-get update failed (is Debian's package registry reachable?)" >&2
    exit 1
fi
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; then
    echo "install-gstreamer: apt-get install ${PACKAGES[*]} failed" >&2
    exit 1
fi

missing=$(missing_elements)
if [[ -n "$missing" ]]; then
    echo "install-gstreamer: installed ${PACKAGES[*]} but still missing: $missing" >&2
    exit 1
fi
echo "install-gstreamer: done"
