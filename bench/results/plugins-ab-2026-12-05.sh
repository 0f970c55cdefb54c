#!/bin/bash
# A/B of a no-op WebAssembly plugin in the daemon: ringfwd (state off, the default chains) started without and then
# with a plugin that answers continue to every packet on each stream's ingress chain, driven by
# `ringfwd-bench run --scenario SCENARIO` for SECONDS at OUT_PPS (bench/results/ab-step.sh); alternating, REPS times.
# Run from the repository root after `cargo build --release -p ringfwd -p ringfwd-bench`.
# usage: bench/results/plugins-ab-2026-12-05.sh REPS SCENARIO OUT_PPS SECONDS
set -eu
out=$(mktemp -d)
reps=$1 scenario=$2 pps=$3 seconds=$4
cat > "$out/noop.wat" <<'WAT'
(module
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32) (i32.const 0)))
WAT
state="[state]
directory = \"$out/state\"
persist = false"
with_plugin="$state
[[plugins]]
name = \"noop\"
path = \"$out/noop.wat\"
chains = [\"ingress\"]
[interceptors]
ingress = [\"stats\", \"keyframe_throttle\", \"noop\", \"nack_cache\", \"receiver_reports\"]"
for rep in $(seq 1 "$reps"); do
  "$(dirname "$0")/ab-step.sh" "$out" "$state" "$scenario" "$pps" "$seconds" "default" "$rep"
  "$(dirname "$0")/ab-step.sh" "$out" "$with_plugin" "$scenario" "$pps" "$seconds" "wasm_noop" "$rep"
done
