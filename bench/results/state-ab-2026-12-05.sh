#!/bin/bash
# A/B of ringfwd's [state] settings at 50 k pps: ringfwd started with each setting in turn and driven by
# `ringfwd-bench run --scenario flat` for 6 s (bench/results/ab-step.sh); the settings alternate, REPS times.
# Run from the repository root after `cargo build --release -p ringfwd -p ringfwd-bench`.
# usage: bench/results/state-ab-2026-12-05.sh REPS LABEL:PERSIST:NUMBERING_INTERVAL_MS:STATE_DIR ...
set -eu
out=$(mktemp -d)
reps=$1; shift
for rep in $(seq 1 "$reps"); do
  for spec in "$@"; do
    IFS=: read -r label persist interval dir <<<"$spec"
    rm -rf "$dir"; mkdir -p "$dir"
    toml="[state]
directory = \"$dir\"
persist = $persist
numbering_interval_ms = $interval"
    "$(dirname "$0")/ab-step.sh" "$out" "$toml" flat 50000 6 "$label" "$rep"
  done
done
