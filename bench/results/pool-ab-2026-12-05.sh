#!/bin/bash
# A/B of ringfwd's [pool] settings: ringfwd (state off) started with each setting in turn and driven by
# `ringfwd-bench run --scenario SCENARIO` for SECONDS at OUT_PPS (bench/results/ab-step.sh); the settings
# alternate, REPS times. Run from the repository root after `cargo build --release -p ringfwd -p ringfwd-bench`.
# usage: bench/results/pool-ab-2026-12-05.sh REPS SCENARIO OUT_PPS SECONDS LABEL:GSO_MAX_SEGMENTS:BUFFERS_PER_WORKER ...
set -eu
out=$(mktemp -d)
reps=$1 scenario=$2 pps=$3 seconds=$4; shift 4
for rep in $(seq 1 "$reps"); do
  for spec in "$@"; do
    IFS=: read -r label segments buffers <<<"$spec"
    toml="[pool]
gso_max_segments = $segments
buffers_per_worker = $buffers
[state]
directory = \"$out/state\"
persist = false"
    "$(dirname "$0")/ab-step.sh" "$out" "$toml" "$scenario" "$pps" "$seconds" "$label" "$rep"
  done
done
