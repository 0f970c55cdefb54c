#!/bin/bash
# An A/B of `ringfwd-bench micro`: the OLD and NEW bench binaries alternating, three times each, every run 9
# repetitions of 200 000 units, pinned to core 1; prints the rows whose names ROWS (an extended regex) matches.
# Build each commit with `cargo build --release -p ringfwd-bench` and copy target/release/ringfwd-bench aside.
# usage: bench/results/micro-ab.sh OLD_BENCH_BINARY NEW_BENCH_BINARY ROWS
set -eu
old=$1 new=$2 rows=$3
for rep in 1 2 3; do
  for label in old new; do
    bin=$old; [ "$label" = new ] && bin=$new
    echo "== $label, run $rep"
    taskset -c 1 "$bin" micro --reps 9 | grep -E "^(name|$rows)"
  done
done
