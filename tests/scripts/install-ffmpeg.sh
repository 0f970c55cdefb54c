#!/usr/bin/env bash
# Installs the ffmpeg command-line tool the interop test (tests/tests/interop_ffmpeg.rs) runs, from Debian's
# packages: ffmpeg with the lavfi `sine` source, the `pcm_mulaw` (PCMU) encoder and decoder, the RTP muxer and the
# SDP/RTP demuxer. Idempotent: when ffmpeg and every component are already there it does nothing. Needs root (or
# sudo) and Debian's package registry when it has to install; exits non-zero saying what is missing otherwise.
set -euo pipefail

# What the test's command lines name, as `ffmpeg -h <kind>=<name>` knows them.
COMPONENTS=(filter=sine encoder=pcm_mulaw decoder=pcm_mulaw muxer=rtp demuxer=sdp demuxer=rtp)
PACKAGES=(ffmpeg)

missing_components() {
    if ! command -v ffmpeg >/dev/null 2>&1; then
        echo "ffmpeg"
        return
    fi
    local missing=()
    local component kind name
    for component in "${COMPONENTS[@]}"; do
        kind=${component%%=*}
        name=${component#*=}
        # A known one is described from "<Kind> <name>" on; an unknown one is not (exit status 0 either way).
        if ! ffmpeg -hide_banner -h "$component" 2>&1 | head -n 1 | grep -qi "^$kind $name\b"; then
            missing+=("$component")
        fi
    done
    echo "${missing[*]:-}"
}

# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
ensure_installed install-ffmpeg missing_components "${PACKAGES[@]}"
