#!/bin/bash
# The RED example (plugins/examples/red.c, red_pt = 120) on every stream's ingress chain after the default chains,
# with the worker's spare buffers at the default (pool.spare_buffers_per_worker = 512) and at 4096, against the
# default chains without a plugin: each rewritten packet is copied once into a spare buffer and fanned out from it, so
# the spares bound how many rewritten copies may wait for their sends. Driven by
# `ringfwd-bench run --scenario SCENARIO --red-pt 120` for SECONDS at OUT_PPS (bench/results/ab-step.sh, which also
# prints ringfwd's drop_tx_full), alternating, REPS times. Run from the repository root after
# `cargo build --release -p ringfwd -p ringfwd-bench`; needs clang and lld (`bash tests/scripts/install-clang.sh`).
# usage: bench/results/red-spares-2026-12-07.sh REPS SCENARIO OUT_PPS SECONDS
set -eu
out=${AB_OUT:-$(mktemp -d)}
reps=$1 scenario=$2 pps=$3 seconds=$4
mkdir -p "$out/wasm"
bash plugins/build.sh "$out/wasm" > /dev/null
state="[state]
directory = \"$out/state\"
persist = false"
red() { # SPARE_BUFFERS
  echo "$state
[pool]
spare_buffers_per_worker = $1
[[plugins]]
name = \"red\"
path = \"$out/wasm/red.wasm\"
chains = [\"ingress\"]
[plugins.params]
red_pt = \"120\"
[interceptors]
ingress = [\"stats\", \"keyframe_throttle\", \"nack_cache\", \"receiver_reports\", \"red\"]"
}
export AB_RUN_ARGS="--red-pt 120"
for rep in $(seq 1 "$reps"); do
  "$(dirname "$0")/ab-step.sh" "$out" "$state" "$scenario" "$pps" "$seconds" "default" "$rep"
  "$(dirname "$0")/ab-step.sh" "$out" "$(red 512)" "$scenario" "$pps" "$seconds" "red_512" "$rep"
  "$(dirname "$0")/ab-step.sh" "$out" "$(red 4096)" "$scenario" "$pps" "$seconds" "red_4096" "$rep"
done
