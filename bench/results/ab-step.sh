#!/bin/bash
# One step of an A/B over ringfwd settings, shared by the *-ab-*.sh scripts here: starts ringfwd (worker on core 1,
# media 127.0.0.1:41000, API 127.0.0.1:51051) with the config in $1 plus the TOML of $2, drives it with
# `ringfwd-bench run --scenario $3 --out-pps $4 --seconds $5` from core 0, stops it (SIGTERM) and prints one line
# for label $6, repetition $7 (with ringfwd's own count of copies dropped for want of a send buffer, `drop_tx_full`).
# AB_RUN_ARGS adds arguments to `ringfwd-bench run` (e.g. `--red-pt 120`).
# Run from the repository root after `cargo build --release -p ringfwd -p ringfwd-bench`.
# usage: bench/results/ab-step.sh WORK_DIR TOML SCENARIO OUT_PPS SECONDS LABEL REP
set -eu
B=target/release
out=$1 toml=$2 scenario=$3 pps=$4 seconds=$5 label=$6 rep=$7
cat > "$out/ringfwd.toml" <<CFG
[placement]
worker_cores = [1]
[media]
addresses = ["127.0.0.1:41000"]
[api]
listen = "127.0.0.1:51051"
$toml
CFG
$B/ringfwd --config "$out/ringfwd.toml" > "$out/ringfwd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "^ringfwd: ready" "$out/ringfwd.log" && break; sleep 0.1; done
$B/ringfwd-bench run --scenario "$scenario" --api 127.0.0.1:51051 --media 127.0.0.1:41000 --pid $pid \
  --seconds "$seconds" --out-pps "$pps" --load-cores 0 --quiet --json "$out/$label-$rep.json" ${AB_RUN_ARGS:-} > /dev/null
kill -TERM $pid; wait $pid
python3 - "$out/$label-$rep.json" "$label" "$rep" "$out/ringfwd.log" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))['step']
final = [l for l in open(sys.argv[4]) if l.startswith('ringfwd: final counters ')]
tx_full = json.loads(final[-1][len('ringfwd: final counters '):])['total'].get('drop_tx_full', '?') if final else '?'
print(f"{sys.argv[2]:<12} rep {sys.argv[3]}  out {s['delivered_out_pps']:8.0f}  p50 {s['latency_p50_ns']/1000:6.0f} us"
      f"  p99 {s['latency_p99_ns']/1000:6.0f} us  p99.9 {s['latency_p999_ns']/1000:6.0f} us"
      f"  cpu/pkt {s['cpu_ns_per_packet']:6.0f} ns  lost {s['lost']}  tx_full {tx_full}")
PY
