#!/bin/bash
# A/B of ringfwd's [state] settings at 50 k pps: ringfwd (worker on core 1) is started with each setting in turn,
# `ringfwd-bench run --scenario flat` drives it from core 0 for 6 s, and the step's figures are printed; the
# settings alternate, REPS times. Run from the repository root after `cargo build --release -p ringfwd -p ringfwd-bench`.
# usage: bench/results/state-ab-2026-12-05.sh REPS LABEL:PERSIST:NUMBERING_INTERVAL_MS:STATE_DIR ...
set -eu
B=target/release
out=$(mktemp -d)
reps=$1; shift
for rep in $(seq 1 "$reps"); do
  for spec in "$@"; do
    IFS=: read -r label persist interval dir <<<"$spec"
    rm -rf "$dir"; mkdir -p "$dir"
    cat > "$out/ringfwd.toml" <<CFG
[placement]
worker_cores = [1]
[media]
addresses = ["127.0.0.1:41000"]
[api]
listen = "127.0.0.1:51051"
[state]
directory = "$dir"
persist = $persist
numbering_interval_ms = $interval
CFG
    $B/ringfwd --config "$out/ringfwd.toml" > "$out/ringfwd.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do grep -q "^ringfwd: ready" "$out/ringfwd.log" && break; sleep 0.1; done
    $B/ringfwd-bench run --scenario flat --api 127.0.0.1:51051 --media 127.0.0.1:41000 --pid $pid \
      --seconds 6 --out-pps 50000 --load-cores 0 --quiet --json "$out/$label-$rep.json" > /dev/null
    kill -TERM $pid; wait $pid
    python3 - "$out/$label-$rep.json" "$label" "$rep" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))['step']
print(f"{sys.argv[2]:<10} rep {sys.argv[3]}  p50 {s['latency_p50_ns']/1000:6.0f} us  p99 {s['latency_p99_ns']/1000:6.0f} us"
      f"  p99.9 {s['latency_p999_ns']/1000:6.0f} us  cpu/pkt {s['cpu_ns_per_packet']:6.0f} ns  lost {s['lost']}")
PY
  done
done
