#!/usr/bin/env bash
# Builds the ringfwd Debian package (packaging/build-deb.sh) and checks it the way a host takes it:
#
#  1. `dpkg-deb --info/--contents`: every path the package promises, the conffile, the maintainer scripts;
#  2. install with dpkg itself into a throwaway root: `dpkg --root=ROOT --force-script-chrootless -i`, so dpkg
#     unpacks, registers the conffile and runs the real postinst (user from sysusers.d, state directory,
#     config permissions) with $DPKG_ROOT=ROOT. Chrootless because the root is empty (no shell to chroot into);
#     the scripts honour $DPKG_ROOT, which this proves. --force-depends: the root has no libc6 or systemd
#     packages registered. The root is merged-/usr (/lib -> usr/lib) like a Debian 12 host;
#  3. `systemd-analyze verify ringfwd.service`, failing on any line it prints: in a private mount namespace the
#     installed root's /usr is laid over the host's (a read-only overlay: nothing is written, the host never
#     sees it), so systemd loads the unit where the package put it, next to systemd's own units, and finds the
#     ExecStart binary the package installed. Not `--root=ROOT`: systemd 252 then skips the syntax warnings
#     (an unknown key passes) and needs systemd's units inside ROOT;
#  4. the installed binary validates the installed config (`--check-config`), and that config as shipped is
#     the built-in one (`--print-config` of both are equal);
#  5. installing it again (the upgrade path of the scripts) keeps the config's permissions, and a purge
#     removes the package's files and keeps the user and /var/lib/ringfwd.
#
# Needs root (dpkg --root with ownership, the mount namespace), dpkg, util-linux's unshare and overlayfs; apt
# installs systemd (systemd-analyze, systemd-sysusers, the units verify resolves) when missing. Run by .ci/run;
# ends with "N passed, M failed". RINGFWD_DEB=path checks that package instead of building one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok: $*"; }
bad() { failed=$((failed + 1)); echo "  FAILED: $*"; }
check() { # check DESCRIPTION COMMAND...: one counted check
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

if [[ "$(id -u)" -ne 0 ]]; then
    echo "check-deb: needs root (dpkg --root, a mount namespace)" >&2
    exit 2
fi
if ! command -v systemd-analyze >/dev/null || ! command -v systemd-sysusers >/dev/null; then
    echo "check-deb: installing systemd (systemd-analyze, systemd-sysusers)" >&2
    apt-get install -y -q systemd >&2 || { apt-get update -q >&2 && apt-get install -y -q systemd >&2; }
fi

# RINGFWD_DEB=path checks that package instead of building one (to iterate on this script).
deb=${RINGFWD_DEB:-$(bash packaging/build-deb.sh | tail -n 1)}
echo "check-deb: $deb"
[[ -f "$deb" ]] || { echo "check-deb: build-deb.sh printed no .deb ($deb)" >&2; exit 1; }

echo "== package metadata and contents"
contents=$(dpkg-deb --contents "$deb")
for path in /usr/bin/ringfwd /lib/systemd/system/ringfwd.service /lib/systemd/system/ringfwd@.service \
    /usr/lib/sysctl.d/99-ringfwd.conf \
    /usr/lib/sysusers.d/ringfwd.conf /etc/ringfwd/ringfwd.toml /usr/share/doc/ringfwd/copyright \
    /usr/share/bash-completion/completions/ringfwd /usr/share/zsh/vendor-completions/_ringfwd \
    /usr/share/fish/vendor_completions.d/ringfwd.fish /usr/share/man/man1/ringfwd.1.gz \
    /usr/share/man/man1/ringfwd-ctl-stream-create.1.gz /usr/share/ringfwd/plugins/README.md \
    /usr/share/ringfwd/plugins/build.sh /usr/share/ringfwd/plugins/include/ringfwd_plugin.h \
    /usr/share/ringfwd/plugins/examples/throttle.c /usr/share/ringfwd/plugins/examples/remb.c \
    /usr/share/ringfwd/plugins/examples/red.c /usr/share/ringfwd/plugins/examples/sdes_cname.c; do
    check "contents list $path" grep -qE " \.$path\$" <<<"$contents"
done
check "the binary is executable" grep -qE '^-rwxr-xr-x .* \./usr/bin/ringfwd$' <<<"$contents"
check "the unit file is the one in the repository" \
    cmp -s <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./lib/systemd/system/ringfwd.service) tuning/deploy/ringfwd.service
template=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./lib/systemd/system/ringfwd@.service)
check "the template unit takes over if a daemon runs" grep -qE '^ExecStart=/usr/bin/ringfwd .* --take-over=if-running$' <<<"$template"
check "the template unit keeps the runtime directory" grep -qx 'RuntimeDirectoryPreserve=yes' <<<"$template"
check "the template unit differs from ringfwd.service in those lines only" test "$(diff \
    <(grep -v '^#' tuning/deploy/ringfwd.service) <(grep -v '^#' <<<"$template") | grep -c '^[<>]')" -eq 5
check "/etc/ringfwd/ringfwd.toml is a conffile" grep -qx /etc/ringfwd/ringfwd.toml <(dpkg-deb --info "$deb" conffiles)
info=$(dpkg-deb --info "$deb")
for script in postinst prerm postrm; do
    check "control has $script" grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$script " <<<"$info"
done
check "Depends names libc6" grep -qE '^ Depends: .*libc6' <<<"$info"

echo "== install into a throwaway root"
root=$(mktemp -d /tmp/ringfwd-deb-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib" "$root/usr/bin" "$root/usr/sbin" "$root/etc" "$root/var/lib/dpkg/info" \
    "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
ln -s usr/lib "$root/lib"
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg_root() { dpkg --root="$root" --force-script-chrootless --force-depends "$@"; }
if install_log=$(dpkg_root -i "$deb" 2>&1); then ok "dpkg -i into $root"; else bad "dpkg -i into $root"; fi
echo "$install_log" | sed 's/^/    /'
check "dpkg reports the package installed" \
    grep -qE '^ii +ringfwd ' <(dpkg --root="$root" -l ringfwd 2>/dev/null)
check "postinst says it does not start the service" grep -q "not enabled and not started" <<<"$install_log"
user=$(grep '^ringfwd:' "$root/etc/passwd" || true)
check "the ringfwd system user (sysusers.d): $user" grep -qE '^ringfwd:x:[0-9]+:[0-9]+:.*:/var/lib/ringfwd:/usr/sbin/nologin$' <<<"$user"
uid=$(cut -d: -f3 <<<"$user")
gid=$(awk -F: '$1 == "ringfwd" { print $3 }' "$root/etc/group")
check "the user is a system user (uid $uid < 1000)" test "${uid:-1000}" -lt 1000
check "/var/lib/ringfwd is ringfwd's, mode 0750" test "$(stat -c '%u:%g %a' "$root/var/lib/ringfwd")" = "$uid:$gid 750"
check "the config is root:ringfwd, mode 0640" test "$(stat -c '%u:%g %a' "$root/etc/ringfwd/ringfwd.toml")" = "0:$gid 640"

echo "== systemd-analyze verify ringfwd.service ringfwd@a.service (the installed /usr over the host's, in a private namespace)"
verify_out=$(unshare --mount --propagation private sh -c '
    mount -t overlay overlay -o "lowerdir=$1/usr:/usr" /usr && exec systemd-analyze verify ringfwd.service ringfwd@a.service
' verify "$root" 2>&1) && verify_rc=0 || verify_rc=$?
[[ -z "$verify_out" ]] || echo "$verify_out" | sed 's/^/    /'
check "systemd-analyze verify exits 0 (exit $verify_rc)" test "$verify_rc" -eq 0
check "systemd-analyze verify prints no warning" test -z "$verify_out"

echo "== the installed binary and config"
config="$root/etc/ringfwd/ringfwd.toml"
check_out=$("$root/usr/bin/ringfwd" --check-config --config "$config" 2>&1) && check_rc=0 || check_rc=$?
echo "    $check_out"
check "ringfwd --check-config accepts the shipped config" test "$check_rc" -eq 0
check "the shipped config is the built-in one" \
    cmp -s <("$root/usr/bin/ringfwd" --print-config --config "$config") <("$root/usr/bin/ringfwd" --print-config)
check "every key of the shipped config is commented out" test -z "$(grep -E '^[^#[:space:][]' "$config")"

echo "== again (upgrade path), then purge"
if reinstall_log=$(dpkg_root -i "$deb" 2>&1); then ok "dpkg -i again"; else echo "$reinstall_log"; bad "dpkg -i again"; fi
check "the config keeps root:ringfwd 0640" test "$(stat -c '%u:%g %a' "$config")" = "0:$gid 640"
check "the user keeps its uid" test "$(grep -c '^ringfwd:' "$root/etc/passwd")" -eq 1
if purge_log=$(dpkg_root --purge ringfwd 2>&1); then ok "dpkg --purge"; else echo "$purge_log"; bad "dpkg --purge"; fi
for gone in usr/bin/ringfwd lib/systemd/system/ringfwd.service lib/systemd/system/ringfwd@.service \
    usr/lib/sysctl.d/99-ringfwd.conf etc/ringfwd; do
    check "purge removed /$gone" test ! -e "$root/$gone"
done
check "purge kept /var/lib/ringfwd" test -d "$root/var/lib/ringfwd"

echo "check-deb: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
