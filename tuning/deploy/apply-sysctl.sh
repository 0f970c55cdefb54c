#!/usr/bin/env bash
# Installs ringfwd's sysctl settings (99-ringfwd.conf) to /etc/sysctl.d/ and loads them.
# Prints what it will do; changes nothing unless run with --yes. Needs root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
conf="$here/99-ringfwd.conf"
target="/etc/sysctl.d/99-ringfwd.conf"

if [[ ! -f "$conf" ]]; then
    echo "apply-sysctl: $conf not found" >&2
    exit 2
fi

echo "apply-sysctl: will copy $conf to $target and run 'sysctl --system'. Settings:"
grep -Ev '^[[:space:]]*(#|$)' "$conf" | sed 's/^/  /'

if [[ "${1:-}" != "--yes" ]]; then
    echo "apply-sysctl: dry run; re-run with --yes to apply."
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "apply-sysctl: must run as root to write $target" >&2
    exit 1
fi

install -m 0644 "$conf" "$target"
sysctl --system
echo "apply-sysctl: done; check with: ringfwd tune check"
