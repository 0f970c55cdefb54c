# Shared by the tests/scripts/install-*.sh scripts (sourced, not run): installs Debian packages when something a
# test needs is missing, and checks again afterwards.
#
# ensure_installed NAME CHECK PACKAGE...
#   NAME     the calling script's name, for its messages
#   CHECK    a function printing what is missing (empty when nothing is)
#   PACKAGE  the Debian packages that bring it
# Does nothing when CHECK prints nothing. Needs root (or sudo) and Debian's package registry when it has to
# install; returns non-zero saying what is missing otherwise.
ensure_installed() {
    local name=$1 check=$2
    shift 2
    local packages=("$@") missing
    missing=$("$check")
    if [[ -z "$missing" ]]; then
        echo "$name: everything needed is present"
        return 0
    fi
    echo "$name: missing: $missing; installing ${packages[*]}"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "$name: not root and no sudo: install ${packages[*]} by hand" >&2
            return 1
        fi
        sudo=(sudo -n)
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$name: no apt-get (not Debian/Ubuntu): install what provides $missing by hand" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get update -q; then
        echo "$name: apt-get update failed (is Debian's package registry reachable?)" >&2
        return 1
    fi
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"; then
        echo "$name: apt-get install ${packages[*]} failed" >&2
        return 1
    fi
    missing=$("$check")
    if [[ -n "$missing" ]]; then
        echo "$name: installed ${packages[*]} but still missing: $missing" >&2
        return 1
    fi
    echo "$name: done"
}
