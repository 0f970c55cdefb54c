#!/bin/bash
# A/B of the sampled call timing (one WebAssembly plugin call in 64 timed, for `ns_per_call` in the plugin list):
# `ringfwd-bench micro` of the commit before it (OLD) and of the commit that adds it (NEW), through micro-ab.sh;
# prints the WebAssembly rows and the forwarder rows of each run.
# usage: bench/results/timing-ab-2026-12-07.sh OLD_BENCH_BINARY NEW_BENCH_BINARY
exec bash "$(dirname "$0")/micro-ab.sh" "$1" "$2" "baseline_rtp|baseline_rtcp|plugin_wasm|forwarder_default_wasm"
