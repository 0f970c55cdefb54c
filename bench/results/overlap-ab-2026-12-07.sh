#!/bin/bash
# A/B of the source-move overlap (a stream moved by SetSource takes both addresses for 200 ms, each sequence number
# once): the per-packet path gains one branch (`is_moving`) for a stream that is not moving. `ringfwd-bench micro`
# of the commit before it (OLD: 7c38983's data plane) and of the commit that adds it (NEW), alternating, three times
# each, every run 9 repetitions of 200 000 units; prints the forwarder rows of each run.
# Build each commit with `cargo build --release -p ringfwd-bench` and copy target/release/ringfwd-bench aside.
# usage: bench/results/overlap-ab-2026-12-07.sh OLD_BENCH_BINARY NEW_BENCH_BINARY
set -eu
old=$1 new=$2
for rep in 1 2 3; do
  for label in old new; do
    bin=$old; [ "$label" = new ] && bin=$new
    echo "== $label, run $rep"
    taskset -c 1 "$bin" micro --reps 9 | grep -E "^(name|baseline_rtp|baseline_rtcp|forwarder_empty|forwarder_default )"
  done
done
