#!/usr/bin/env bash
# Installs the third-party gRPC client the health/reflection test (tests/tests/api_health.rs) drives: Python's
# grpcio, grpcio-health-checking and grpcio-reflection from PyPI, into a project-local virtual environment (never
# system-wide). The environment is `$RINGFWD_GRPC_VENV`, by default `target/grpc-python-venv` at the repository
# root; the test runs its `bin/python`.
# Idempotent: when the environment already imports the three packages it does nothing. Needs python3 with the
# venv module and PyPI when it has to install; exits non-zero saying what is missing otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${RINGFWD_GRPC_VENV:-$ROOT/target/grpc-python-venv}
PACKAGES=(grpcio grpcio-health-checking grpcio-reflection)
CHECK='import grpc, grpc_health.v1.health_pb2_grpc, grpc_reflection.v1alpha.proto_reflection_descriptor_database'

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "$CHECK" >/dev/null 2>&1; then
    echo "install-grpc-python: ${PACKAGES[*]} present in $VENV"
    exit 0
fi
echo "install-grpc-python: installing ${PACKAGES[*]} into $VENV"

if ! command -v python3 >/dev/null 2>&1; then
    echo "install-grpc-python: no python3: install Python 3 (3.9 or newer) with its venv module" >&2
    exit 1
fi
if ! python3 -m venv "$VENV"; then
    echo "install-grpc-python: python3 -m venv $VENV failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
fi
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}"; then
    echo "install-grpc-python: pip install ${PACKAGES[*]} failed (is PyPI reachable?)" >&2
    exit 1
fi
if ! "$VENV/bin/python" -c "$CHECK"; then
    echo "install-grpc-python: installed ${PACKAGES[*]} into $VENV but they do not import" >&2
    exit 1
fi
echo "install-grpc-python: done"
