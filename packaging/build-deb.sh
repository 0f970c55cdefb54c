#!/usr/bin/env bash
# Builds the ringfwd Debian package from the workspace and prints its path as the last line of stdout.
#
# What goes in it is [package.metadata.deb] in controlplane/Cargo.toml (the crate of the `ringfwd` binary); the
# maintainer scripts are packaging/debian/. Steps: cargo-deb (pinned) into target/tools when it is not there
# yet; dpkg-dev (dpkg-shlibdeps, for Depends: $auto) from apt when missing; one release build of the `ringfwd`
# binary only (~10 min on 2 cores from cold); the conffile /etc/ringfwd/ringfwd.toml generated from the
# reference config tuning/examples/dev-2core.toml with every key commented out (so the file as shipped is the
# built-in config, and its comments are never a second copy to keep in step); then `cargo deb --no-build`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_DEB_VERSION=3.8.0
tools="$PWD/target/tools"
cargo_deb="$tools/bin/cargo-deb"

if ! "$cargo_deb" --version 2>/dev/null | grep -qF " $CARGO_DEB_VERSION"; then
    echo "build-deb: installing cargo-deb $CARGO_DEB_VERSION into $tools" >&2
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --root "$tools" >&2
fi
if ! command -v dpkg-shlibdeps >/dev/null; then
    echo "build-deb: installing dpkg-dev (dpkg-shlibdeps)" >&2
    apt-get install -y -q dpkg-dev >&2 || { apt-get update -q >&2 && apt-get install -y -q dpkg-dev >&2; }
fi

echo "build-deb: release build of the ringfwd binary" >&2
cargo build --release --locked -p ringfwd --bin ringfwd >&2

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
assets="$target_dir/release/deb-assets"
mkdir -p "$assets"
{
    cat packaging/config-header.toml
    echo
    # Drop the reference's own header (up to the first blank line); comment out every key line.
    awk 'NR == 1, /^$/ { next } /^[^#[:space:]\[]/ { print "# " $0; next } { print }' tuning/examples/dev-2core.toml
} >"$assets/ringfwd.toml"

"$cargo_deb" -p ringfwd --no-build --locked >"$assets/cargo-deb.out" 2>&1 \
    || { cat "$assets/cargo-deb.out" >&2; exit 1; }
cat "$assets/cargo-deb.out" >&2
tail -n 1 "$assets/cargo-deb.out"
