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

missing=$(missing_parts)
if [[ -z "$missing" ]]; then
    echo "install-sip: baresip and every module needed are present"
    exit 0
fi
echo "install-sip: missing: $missing; installing ${PACKAGES[*]}"

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "install-sip: not root and no sudo: install ${PACKAGES[*]} by hand" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-sip: no apt-get (not Debian/Ubuntu): install baresip with the modules ${MODULES[*]}" \
        "in $MODULE_DIR by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get update -q; then
    echo "install-sip: apt-get update failed (is Debian's package registry reachable?)" >&2
    exit 1
fi
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; then
    echo "install-sip: apt-get install ${PACKAGES[*]} failed" >&2
    exit 1
fi

missing=$(missing_parts)
if [[ -n "$missing" ]]; then
    echo "install-sip: installed ${PACKAGES[*]} but still missing: $missing" >&2
    exit 1
fi
echo "install-sip: done"
