#!/usr/bin/env bash
# Installs the SIP user agent the SIP interop test (tests/tests/interop_sip.rs) runs, from Debian's packages:
# baresip (package baresip-core: the binary and its modules, without the GUI, video and GStreamer extras of the
# baresip metapackage) with the modules the test's config loads: g711 (PCMU), ausine (a sine tone as the
# microphone), sndfile (writes the decoded audio it received to a WAV file; no audio player is loaded, so none
# is needed), menu (the dial/hangup/reinvite commands), ctrl_tcp (the test sends those commands and reads the
# call events over TCP) and account (reads the accounts file).
# Idempotent: when baresip and every module are already there it does nothing. Needs root (or sudo) and Debian's
# package registry when it has to install; exits non-zero saying what is missing otherwise.
set -euo pipefail

# Where Debian's baresip-core puts its modules, and the ones the test's config loads.
MODULE_DIR=/usr/lib/baresip/modules
MODULES=(g711 ausine sndfile menu ctrl_tcp account)
PACKAGES=(baresip-core)

missing_parts() {
    local missing=()
    command -v baresip >/dev/null 2>&1 || missing+=(baresip)
    for module in "${MODULES[@]}"; do
        [[ -f "$MODULE_DIR/$module.so" ]] || missing+=("$module.so")
    done
    echo "${missing[*]:-}"
}

# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
ensure_installed install-sip missing_parts "${PACKAGES[@]}"
