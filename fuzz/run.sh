#!/usr/bin/env bash
# Builds the fuzz targets with cargo-fuzz (libFuzzer, nightly) and runs each for a given time, printing per
# target the executions, the seconds and whether it crashed.
#
# Usage: fuzz/run.sh SECONDS [TARGET...]     (no target: every one of fuzz/Cargo.toml's [[bin]]s, in order)
#
# cargo-fuzz (pinned) is installed into target/tools when it is not there yet (as packaging/build-deb.sh installs
# cargo-deb); a nightly toolchain is required (`cargo +nightly`), and its absence fails the script. The build is
# release with debug assertions (so overflow is a crash) and no sanitizer (the targets are safe code; the one
# `unsafe` reader, io_uring's `RecvMsgOut`, is bounds-checked), into target/fuzz. Each target runs over its working
# corpus fuzz/corpus/<target> (new inputs go there; not in git) and its committed seeds fuzz/seeds/<target>; a crash
# leaves its input in fuzz/artifacts/<target>/ and the log in target/fuzz/logs/<target>.log. Exits non-zero if any
# target crashed or did not run. FUZZ_MAX_LEN (default 8192) bounds the input size; FUZZ_RSS_MB (default 2048)
# the memory. FUZZ_BUILD=dev builds without optimisation (a shorter build, far fewer executions per second): for
# short smoke runs such as CI's. FUZZ_RUNS=N stops each target after N executions (SECONDS still caps it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_FUZZ_VERSION=0.13.2
tools="$PWD/target/tools"
cargo_fuzz="$tools/bin/cargo-fuzz"

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^ringfwd-fuzz$')
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: a nightly toolchain is required (cargo +nightly): rustup toolchain install nightly" >&2
    exit 1
fi
if ! "$cargo_fuzz" --version 2>/dev/null | grep -qF " $CARGO_FUZZ_VERSION"; then
    echo "fuzz/run.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools" >&2
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$tools" >&2
fi

# cargo-fuzz runs `cargo`; the toolchain comes from RUSTUP_TOOLCHAIN. Thin LTO of the workspace's release profile
# would be redone for every target binary: off here.
export RUSTUP_TOOLCHAIN=nightly CARGO_PROFILE_RELEASE_LTO=false
build_flags=(--fuzz-dir fuzz --features libfuzzer --sanitizer none --target-dir target/fuzz)
case "${FUZZ_BUILD:-release}" in
    release) build_flags+=(--debug-assertions --codegen-units 8) ;;
    # No debug info: a smaller, quicker build (a crash still names the panic's file and line).
    dev) build_flags+=(--dev) && export CARGO_PROFILE_DEV_DEBUG=false ;;
    *) echo "fuzz/run.sh: FUZZ_BUILD is release or dev, not ${FUZZ_BUILD}" >&2; exit 1 ;;
esac
logs=target/fuzz/logs
mkdir -p "$logs"

started=$(date +%s)
"$cargo_fuzz" fuzz build "${build_flags[@]}" >&2
echo "fuzz/run.sh: built in $(($(date +%s) - started)) s" >&2

failed=0
printf '%-10s %14s %8s  %s\n' target executions seconds result
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log="$logs/$target.log"
    t0=$(date +%s)
    status=0
    "$cargo_fuzz" fuzz run "${build_flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -max_len="${FUZZ_MAX_LEN:-8192}" \
        -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout=20 -runs="${FUZZ_RUNS:--1}" >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - t0))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$status" -eq 0 ] && [ -n "$execs" ]; then
        result=ok
    else
        result="CRASHED (exit $status; see $log and fuzz/artifacts/$target/)"
        failed=1
        grep -m 5 -E 'panicked at|^==[0-9]+== ?ERROR|SUMMARY' "$log" >&2 || tail -n 20 "$log" >&2
    fi
    printf '%-10s %14s %8s  %s\n' "$target" "${execs:-?}" "$elapsed" "$result"
done
exit "$failed"
