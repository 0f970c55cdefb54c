#!/bin/bash
# A/B of the source-move overlap (a relayed stream moved by SetSource takes both addresses for 200 ms, each
# sequence number once): the per-packet path gains one branch (`is_moving`) for a stream that is not moving.
# `ringfwd-bench micro` of the commit before it (OLD: 7c38983's data plane) and of the commit that adds it (NEW),
# through micro-ab.sh; prints the forwarder rows of each run.
# usage: bench/results/overlap-ab-2026-12-07.sh OLD_BENCH_BINARY NEW_BENCH_BINARY
exec bash "$(dirname "$0")/micro-ab.sh" "$1" "$2" "baseline_rtp|baseline_rtcp|forwarder_empty|forwarder_default "
