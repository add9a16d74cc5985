#!/usr/bin/env bash
# Builds the .deb with cargo-deb and checks what it would install, without installing it:
# the package is unpacked into a scratch root (dpkg -x), the expected files must be there, the
# packaged binary must run from that root against the packaged configuration and profiles, the
# unit must pass `systemd-analyze verify`, and `systemd-analyze security --offline=yes` must put
# its exposure at or below $MAX_EXPOSURE (default 2.0). Prints the figure.
#
#   bash packaging/check-deb.sh            # from anywhere; CI runs it from .ci/run
#
# Tools it needs are installed when missing (cargo-deb from crates.io; dpkg and systemd with
# apt-get when running as root); without systemd-analyze the unit checks are skipped with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}

say() { echo "check-deb: $*"; }
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else
    return 1
  fi
}

command -v cargo-deb >/dev/null 2>&1 || { say "installing cargo-deb"; cargo install --locked cargo-deb; }
command -v dpkg-deb >/dev/null 2>&1 || apt_install dpkg || fail "dpkg-deb is missing"
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd || true

# --- build --------------------------------------------------------------------------------
# The SBOM first: the .deb ships it (Cargo.toml's assets).
bash packaging/sbom.sh
say "cargo deb"
# cargo deb prints the packages it wrote: the .deb, and the -dbgsym .ddeb with debug symbols.
built=$(cargo deb --locked)
echo "$built"
deb=$(echo "$built" | grep -E '/atgw_[^/]*\.deb$' | tail -n 1)
[ -n "$deb" ] && [ -f "$deb" ] || fail "cargo deb did not report a package"
say "built $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'

root=$(mktemp -d)
ctrl=$(mktemp -d)
trap 'rm -rf "$root" "$ctrl"' EXIT
dpkg -x "$deb" "$root"
dpkg-deb -e "$deb" "$ctrl"
say "contents:"
dpkg-deb -c "$deb" | awk '{ print "  " $1 " " $6 }'

# --- files --------------------------------------------------------------------------------
expected=(
  usr/bin/atgw
  etc/atgw/atgw.toml
  etc/atgw/profiles/zigbee2mqtt.toml
  etc/atgw/profiles/tuya-mir-he200-fall-radar.toml
  etc/atgw/profiles/heiman-hs2fd-fall.toml
  etc/atgw/profiles/ble-hub-oximeter.toml
  usr/lib/systemd/system/atgw.service
  usr/lib/sysusers.d/atgw.conf
  usr/share/man/man1/atgw.1.gz
  usr/share/man/man1/atgw-run.1.gz
  usr/share/doc/atgw/README.md
  usr/share/doc/atgw/SECURITY.md
  usr/share/doc/atgw/sbom.cdx.json
)
for f in "${expected[@]}"; do
  [ -e "$root/$f" ] || fail "missing /$f"
done
[ -x "$root/usr/bin/atgw" ] || fail "/usr/bin/atgw is not executable"
grep -qx /etc/atgw/atgw.toml "$ctrl/conffiles" || fail "/etc/atgw/atgw.toml is not a conffile"
grep -q systemd-sysusers "$ctrl/postinst" || fail "postinst does not create the atgw user"
grep -q 'etc/atgw/api-token' "$ctrl/postinst" || fail "postinst does not generate the API token"
# Our part of each script runs under `set -e`, and the token exists before cargo-deb's part
# (re)starts the unit that loads it.
for script in postinst postrm; do
  first_auto=$(grep -n 'Automatically added by cargo-deb' "$ctrl/$script" | head -n 1 | cut -d: -f1)
  set_e=$(grep -n '^set -e' "$ctrl/$script" | head -n 1 | cut -d: -f1)
  [ -n "$first_auto" ] && [ -n "$set_e" ] && [ "$set_e" -lt "$first_auto" ] \
    || fail "$script: cargo-deb's section is not after set -e"
done
token_line=$(grep -n 'etc/atgw/api-token' "$ctrl/postinst" | head -n 1 | cut -d: -f1)
sysusers_line=$(grep -nE '^[[:space:]]*systemd-sysusers ' "$ctrl/postinst" | head -n 1 | cut -d: -f1)
[ -n "$sysusers_line" ] && [ "$token_line" -lt "$sysusers_line" ] || fail "postinst starts the unit before the API token exists"
sh -n "$ctrl/postinst" && sh -n "$ctrl/postrm" && sh -n "$ctrl/prerm" || fail "a maintainer script does not parse"
zcat "$root/usr/share/man/man1/atgw.1.gz" | grep -q '^\.SH FILES' || fail "atgw.1 has no FILES section"
say "all ${#expected[@]} expected files present; conffiles: $(tr '\n' ' ' < "$ctrl/conffiles")"
# The packaged SBOM lists every crate of Cargo.lock the package links, with version and licence.
python3 packaging/check_sbom.py "$root/usr/share/doc/atgw/sbom.cdx.json" | cut -c1-400 \
  || fail "the packaged SBOM does not match Cargo.lock"

# --- the packaged binary, configuration and profiles work together -------------------------
version=$("$root/usr/bin/atgw" --version)
[ "$version" = "atgw $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" ] \
  || fail "unexpected --version: $version"
say "$version runs from the scratch root"
# check-config reads every secret file as `run` does; postinst makes the API token on a real
# install, so make one here the same way.
[ -e "$root/etc/atgw/api-token" ] \
  || (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$root/etc/atgw/api-token" && echo >> "$root/etc/atgw/api-token")
ATGW_GATEWAY__PROFILES_DIR="$root/etc/atgw/profiles" \
  "$root/usr/bin/atgw" check-config --config "$root/etc/atgw/atgw.toml" \
  || fail "the packaged atgw.toml does not pass check-config with the packaged profiles"

# --- the unit -----------------------------------------------------------------------------
if ! command -v systemd-analyze >/dev/null 2>&1; then
  say "SKIPPED unit checks: systemd-analyze is not installed and could not be (not root, or no apt-get)"
  exit 0
fi
unit="$root/usr/lib/systemd/system/atgw.service"
# verify checks that ExecStart's binary exists on this machine, so it reads a copy of the
# packaged unit pointing at the binary in the scratch root (`--root` would want a whole systemd
# tree there). MANPATH lets its Documentation=man:atgw(1) check find the packaged manual page;
# without man-db that one check is left out.
verify_dir="$ctrl/verify"
mkdir -p "$verify_dir"
sed "s|/usr/bin/atgw|$root/usr/bin/atgw|g" "$unit" > "$verify_dir/atgw.service"
man_check=yes
command -v man >/dev/null 2>&1 || { man_check=no; say "man-db not installed: verify runs with --man=no"; }
if ! out=$(MANPATH="$root/usr/share/man" systemd-analyze verify --man="$man_check" "$verify_dir/atgw.service" 2>&1); then
  echo "$out" >&2
  fail "systemd-analyze verify failed"
fi
[ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify printed warnings"; }
say "systemd-analyze verify: clean"

report=$(systemd-analyze security --offline=yes "$unit" 2>&1) || true
# The settings that still cost exposure (their figure is the last column).
echo "$report" | awk '$NF ~ /^[0-9]+\.[0-9]+$/ && $NF + 0 > 0 { print "  " $0 }'
line=$(echo "$report" | grep 'Overall exposure level') || { echo "$report" >&2; fail "no exposure figure"; }
exposure=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
say "systemd-analyze security --offline=yes: exposure $exposure (limit $MAX_EXPOSURE)"
awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e != "" && e + 0 <= m + 0) }' \
  || fail "exposure $exposure is above $MAX_EXPOSURE"
say "ok"
