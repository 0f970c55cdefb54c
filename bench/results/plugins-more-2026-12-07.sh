#!/bin/bash
# The examples not in plugins-max-2026-12-07.sh's default run, at 50 k out-pps and at their maximum rate, against the
# same chains without a plugin: that script with the configurations default, mute, remb and sdes_cname (see it for
# what each one is, how max rate is found, and what it writes and prints).
# LABELS (optional) runs only those configurations, e.g. "default mute".
# Run from the repository root after `cargo build --release -p ringfwd -p ringfwd-bench`; needs clang and lld
# (`bash tests/scripts/install-clang.sh`).
# usage: bench/results/plugins-more-2026-12-07.sh REPS SCENARIO OUT [LABELS]
set -eu
exec bash "$(dirname "$0")/plugins-max-2026-12-07.sh" "$1" "$2" "$3" "${4:-default mute remb sdes_cname}"
