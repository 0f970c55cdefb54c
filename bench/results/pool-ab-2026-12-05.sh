#!/bin/bash
# A/B of ringfwd's [pool] settings: ringfwd (worker on core 1, state off) is started with each setting in turn,
# `ringfwd-bench run --scenario SCENARIO` drives it from core 0 for SECONDS at OUT_PPS, and the step's figures are
# printed; the settings alternate, REPS times. Run from the repository root after
# `cargo build --release -p ringfwd -p ringfwd-bench`.
# usage: bench/results/pool-ab-2026-12-05.sh REPS SCENARIO OUT_PPS SECONDS LABEL:GSO_MAX_SEGMENTS:BUFFERS_PER_WORKER ...
set -eu
B=target/release
out=$(mktemp -d)
reps=$1 scenario=$2 pps=$3 seconds=$4; shift 4
for rep in $(seq 1 "$reps"); do
  for spec in "$@"; do
    IFS=: read -r label segments buffers <<<"$spec"
    cat > "$out/ringfwd.toml" <<CFG
[placement]
worker_cores = [1]
[media]
addresses = ["127.0.0.1:41000"]
[api]
listen = "127.0.0.1:51051"
[pool]
gso_max_segments = $segments
buffers_per_worker = $buffers
[state]
directory = "$out/state"
persist = false
CFG
    $B/ringfwd --config "$out/ringfwd.toml" > "$out/ringfwd.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do grep -q "^ringfwd: ready" "$out/ringfwd.log" && break; sleep 0.1; done
    $B/ringfwd-bench run --scenario "$scenario" --api 127.0.0.1:51051 --media 127.0.0.1:41000 --pid $pid \
      --seconds "$seconds" --out-pps "$pps" --load-cores 0 --quiet --json "$out/$label-$rep.json" > /dev/null
    kill -TERM $pid; wait $pid
    python3 - "$out/$label-$rep.json" "$label" "$rep" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))['step']
print(f"{sys.argv[2]:<12} rep {sys.argv[3]}  out {s['delivered_out_pps']:8.0f}  p50 {s['latency_p50_ns']/1000:6.0f} us"
      f"  p99 {s['latency_p99_ns']/1000:6.0f} us  cpu/pkt {s['cpu_ns_per_packet']:6.0f} ns  lost {s['lost']}")
PY
  done
done
