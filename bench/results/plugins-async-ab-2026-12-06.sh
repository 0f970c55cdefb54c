#!/bin/bash
# A/B/C of the async mode in the daemon: ringfwd (state off, the default chains) without a plugin, with a WebAssembly
# no-op inline on the worker (sync), and with the same no-op in async mode (async_pass = "forward", a queue of 4096
# per worker: the worker copies each packet into the queue and goes on; the plugin's thread runs the call on the
# control plane's core, which is also the load generator's, core 0), each on every stream's ingress chain, driven by
# `ringfwd-bench run --scenario SCENARIO` for SECONDS at OUT_PPS (bench/results/ab-step.sh); alternating, REPS times.
# cpu/pkt is the whole process's CPU (the plugin's thread included) per packet. The plugin's counters
# (async_queued, async_queue_full) are printed after each async step. Run from the repository root after
# `cargo build --release -p ringfwd -p ringfwd-bench`.
# With ASYNC_WAKE_DELAY_US set, a fourth configuration: the async no-op with that async_wake_delay_us.
# usage: [ASYNC_WAKE_DELAY_US=N] bench/results/plugins-async-ab-2026-12-06.sh REPS SCENARIO OUT_PPS SECONDS
set -eu
out=${AB_OUT:-$(mktemp -d)}
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
plugin() {
  echo "$state
[[plugins]]
name = \"noop\"
path = \"$out/noop.wat\"
chains = [\"ingress\"]
$1
[interceptors]
ingress = [\"stats\", \"keyframe_throttle\", \"noop\", \"nack_cache\", \"receiver_reports\"]"
}
async='mode = "async"
async_queue_packets = 4096
async_pass = "forward"'
for rep in $(seq 1 "$reps"); do
  "$(dirname "$0")/ab-step.sh" "$out" "$state" "$scenario" "$pps" "$seconds" "default" "$rep"
  "$(dirname "$0")/ab-step.sh" "$out" "$(plugin '')" "$scenario" "$pps" "$seconds" "wasm_sync" "$rep"
  "$(dirname "$0")/ab-step.sh" "$out" "$(plugin "$async")" "$scenario" "$pps" "$seconds" "wasm_async" "$rep"
  grep -o "async_\(queue[a-z_]*\|wakeups\)=[0-9]*" "$out/ringfwd.log" | tail -3 | tr '\n' ' ' || true
  echo
  if [ -n "${ASYNC_WAKE_DELAY_US:-}" ]; then
    "$(dirname "$0")/ab-step.sh" "$out" "$(plugin "$async
async_wake_delay_us = $ASYNC_WAKE_DELAY_US")" "$scenario" "$pps" "$seconds" "wasm_async_d$ASYNC_WAKE_DELAY_US" "$rep"
    grep -o "async_\(queue[a-z_]*\|wakeups\)=[0-9]*" "$out/ringfwd.log" | tail -3 | tr '\n' ' ' || true
    echo
  fi
done
