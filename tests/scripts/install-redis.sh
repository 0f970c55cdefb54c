#!/usr/bin/env bash
# Installs the Redis server the cluster directory's tests (tests/tests/cluster_directory.rs) start, one private
# instance per test on a port of 127.0.0.1, from Debian's packages. Idempotent: when `redis-server` is there it does
# nothing. Needs root (or sudo) and Debian's package registry when it has to install; exits non-zero saying what is
# missing otherwise. The package's own service is not needed and not started by the tests.
set -euo pipefail

PACKAGES=(redis-server)

missing_components() {
    command -v redis-server >/dev/null 2>&1 || echo "redis-server"
}

# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
ensure_installed install-redis missing_components "${PACKAGES[@]}"
