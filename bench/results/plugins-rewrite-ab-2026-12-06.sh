#!/bin/bash
# A/B/C of a rewriting WebAssembly plugin in the daemon: ringfwd (state off, the default chains) without a plugin, with
# a plugin that answers continue (the no-op of plugins-ab-2026-12-05.sh), and with one that rewrites every packet into
# itself (rewrite(len) over the unchanged buffer: the whole rewrite path, and every copy leaves from a buffer of its
# own instead of the received one, while the bench's sink still finds each payload intact), each on every stream's
# ingress chain, driven by `ringfwd-bench run --scenario SCENARIO` for SECONDS at OUT_PPS (bench/results/ab-step.sh);
# alternating, REPS times. Run from the repository root after `cargo build --release -p ringfwd -p ringfwd-bench`.
# usage: bench/results/plugins-rewrite-ab-2026-12-06.sh REPS SCENARIO OUT_PPS SECONDS
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
cat > "$out/same.wat" <<'WAT'
(module
  (import "ringfwd" "rewrite" (func $rewrite (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param $len i32) (param i32 i32 i64 i64) (result i32)
    (drop (call $rewrite (local.get $len)))
    (i32.const 0)))
WAT
state="[state]
directory = \"$out/state\"
persist = false"
plugin() {
  echo "$state
[[plugins]]
name = \"$1\"
path = \"$out/$1.wat\"
chains = [\"ingress\"]
[interceptors]
ingress = [\"stats\", \"keyframe_throttle\", \"$1\", \"nack_cache\", \"receiver_reports\"]"
}
for rep in $(seq 1 "$reps"); do
  "$(dirname "$0")/ab-step.sh" "$out" "$state" "$scenario" "$pps" "$seconds" "default" "$rep"
  "$(dirname "$0")/ab-step.sh" "$out" "$(plugin noop)" "$scenario" "$pps" "$seconds" "wasm_noop" "$rep"
  "$(dirname "$0")/ab-step.sh" "$out" "$(plugin same)" "$scenario" "$pps" "$seconds" "wasm_rewrite" "$rep"
done
