#!/usr/bin/env bash
# Builds the C example plugins (plugins/examples/*.c) to WebAssembly with Debian's clang and lld:
#   bash plugins/build.sh OUT_DIR
# writes OUT_DIR/<name>.wasm for each. Needs clang and wasm-ld (`bash tests/scripts/install-clang.sh` installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: plugins/build.sh OUT_DIR}
mkdir -p "$out"
for source in "$here"/examples/*.c; do
    name=$(basename "$source" .c)
    # -mbulk-memory: __builtin_memcpy / __builtin_memmove become memory.copy (no libc to call).
    clang --target=wasm32 -O2 -nostdlib -ffreestanding -mbulk-memory -Wall -Wextra -Werror \
        -I "$here/include" \
        -Wl,--no-entry -Wl,--export-dynamic -Wl,-z,stack-size=65536 \
        -o "$out/$name.wasm" "$source"
    echo "$out/$name.wasm"
done
