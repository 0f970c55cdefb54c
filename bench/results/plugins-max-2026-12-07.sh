#!/bin/bash
# Each example plugin at 50 k out-pps and at its maximum rate, against the same chains without a plugin: for each
# repetition, `ringfwd-bench compare --forwarders ringfwd --reps 1 --scenarios SCENARIO` once per configuration, in
# turn (alternating), with `--plugins` adding the plugin to every stream's ingress chain after the default chains.
# Max rate is the bench's (loss < 0.1 %, p99 < 5 ms, the generator held its rate); the 50 k step is compare's fixed
# step. Configurations:
#   default        the default chains, no plugin
#   wasm_noop      a WebAssembly no-op (WAT), inline
#   throttle       plugins/examples/throttle.c, inline, max_pps = 1000000 per stream (nothing dropped: its check
#                  and its state update on every packet)
#   jitter_sync    plugins/examples/jitter.c, inline, delay_ms = 1 (every packet held 1 ms in the plugin, then
#                  injected from its timer)
#   jitter_async   the same on the plugin's thread (`jitter:mode=async:async_pass=consume`), on core 0 beside the
#                  load generator
#   red            plugins/examples/red.c, inline, red_pt = 120: every packet rewritten into RED with the stream's
#                  previous packet as a redundant block (about twice as long); the plugins file's `red_pt` makes
#                  the sink check each packet's primary block (added after the first run: that run had no red)
# Only when named in LABELS (run through plugins-more-2026-12-07.sh, the third run):
#   mute           plugins/examples/mute.c, inline: on every packet it reads the stream's, the publisher's, the
#                  session's and the subscriber's metadata (none is set: nothing dropped; `metadata_of` answers 0, or
#                  -2 for the subscriber on an ingress chain)
#   remb           plugins/examples/remb.c, inline: counts each stream's bytes and sends its publisher a REMB once a
#                  second from its timer
#   sdes_cname     plugins/examples/sdes_cname.c, inline: the bench's publishers send no RTCP, so this is its on_rtp
#                  (a no-op) only; what rewriting a compound costs is `micro`'s plugin_wasm_rtcp_rewrite row
# LABELS (optional) runs only those configurations, e.g. "default red".
# Writes OUT/<label>-<rep>.json and .md, and prints one line per run. Run from the repository root after
# `cargo build --release -p ringfwd -p ringfwd-bench`; needs clang and lld (`bash tests/scripts/install-clang.sh`).
# usage: bench/results/plugins-max-2026-12-07.sh REPS SCENARIO OUT [LABELS]
set -eu
reps=$1 scenario=$2 out=$3
labels=${4:-default wasm_noop throttle jitter_sync jitter_async red}
B=target/release
mkdir -p "$out/wasm"
bash plugins/build.sh "$out/wasm" > /dev/null
cat > "$out/wasm/noop.wat" <<'WAT'
(module
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32) (i32.const 0)))
WAT
plugins() { # NAME MODULE CHAIN-NAME PARAMS...
  local name=$1 module=$2 chain=$3
  shift 3
  printf 'ingress = ["%s"]\n[[plugins]]\nname = "%s"\npath = "%s"\nchains = ["ingress"]\n' \
    "$chain" "$name" "$out/wasm/$module"
  if [ $# -gt 0 ]; then
    echo "[plugins.params]"
    printf '%s\n' "$@"
  fi
}
plugins noop noop.wat noop > "$out/wasm_noop.toml"
plugins throttle throttle.wasm throttle 'max_pps = "1000000"' > "$out/throttle.toml"
plugins jitter jitter.wasm jitter 'delay_ms = "1"' > "$out/jitter_sync.toml"
plugins jitter jitter.wasm "jitter:mode=async:async_pass=consume" 'delay_ms = "1"' > "$out/jitter_async.toml"
{ echo "red_pt = 120"; plugins red red.wasm red 'red_pt = "120"'; } > "$out/red.toml"
plugins mute mute.wasm mute > "$out/mute.toml"
plugins remb remb.wasm remb > "$out/remb.toml"
plugins sdes_cname sdes_cname.wasm sdes_cname > "$out/sdes_cname.toml"
for rep in $(seq 1 "$reps"); do
  for label in $labels; do
    extra=()
    if [ "$label" != default ]; then extra=(--plugins "$out/$label.toml"); fi
    $B/ringfwd-bench compare --forwarders ringfwd --reps 1 --scenarios "$scenario" "${extra[@]}" \
      --json "$out/$label-$rep.json" --markdown "$out/$label-$rep.md" > "$out/$label-$rep.log" 2>&1
    python3 - "$out/$label-$rep.json" "$label" "$rep" <<'PY'
import json, sys
ringfwd = json.load(open(sys.argv[1]))["scenarios"][0]["forwarders"][0]
search, fixed, at_max = ringfwd["searches"][0], ringfwd["fixed"][0], ringfwd["at_max"][0]
print(f"{sys.argv[2]:<13} rep {sys.argv[3]}  max {search['max_out_pps']:8.0f} out-pps ({search['limit']})"
      f"  at max: cpu/pkt {at_max['cpu_ns_per_packet']:6.0f} ns  p99 {at_max['latency_p99_ns']/1000:7.0f} us"
      f"  | 50 k: cpu/pkt {fixed['cpu_ns_per_packet']:6.0f} ns  p50 {fixed['latency_p50_ns']/1000:5.0f} us"
      f"  p99 {fixed['latency_p99_ns']/1000:6.0f} us  lost {fixed['lost']}")
PY
  done
done
