#!/usr/bin/env bash
# Installs what builds the C example plugins to WebAssembly (plugins/build.sh, run by tests/tests/wasm_plugin.rs):
# Debian's clang, which targets wasm32, and lld, whose wasm-ld links the module. Idempotent: when clang builds a
# wasm32 module already it does nothing. Needs root (or sudo) and Debian's package registry when it has to install;
# exits non-zero saying what is missing otherwise.
set -euo pipefail

PACKAGES=(clang lld)

missing_components() {
    if ! command -v clang >/dev/null 2>&1; then
        echo "clang"
        return
    fi
    local dir
    dir=$(mktemp -d)
    # A module with one export, built as plugins/build.sh builds: what fails here is what the build needs.
    if ! echo 'int __attribute__((export_name("f"))) f(void) { return 1; }' \
        | clang --target=wasm32 -nostdlib -Wl,--no-entry -o "$dir/probe.wasm" -x c - >/dev/null 2>&1; then
        echo "wasm-ld (lld)"
    fi
    rm -rf "$dir"
}

# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
ensure_installed install-clang missing_components "${PACKAGES[@]}"
