#!/usr/bin/env bash
# Cross-builds atgw's .deb for a Pi-class gateway and smoke-tests the packaged binary under
# qemu-user, on this (amd64) machine:
#
#   bash packaging/cross.sh arm64          # aarch64-unknown-linux-gnu: 64-bit Raspberry Pi OS, Debian arm64
#   bash packaging/cross.sh armhf          # armv7-unknown-linux-gnueabihf: 32-bit Raspberry Pi OS (Pi 2 and later)
#
# 1. Builds with Debian's cross gcc as linker and C compiler (rusqlite's bundled SQLite and ring
#    are C/assembly built by the cc crate) and packages with `cargo deb --target`, exactly the
#    assets, unit and maintainer scripts of the amd64 package (Cargo.toml's [package.metadata.deb]).
# 2. Unpacks the package into a scratch root (dpkg -x) and, with qemu-user-static running the
#    target binary against Debian's cross libc (-L /usr/<gnu-triple>):
#    - `atgw --version` must print the workspace version;
#    - `atgw check-config` must pass on the packaged /etc/atgw/atgw.toml with the packaged profiles;
#    - a short run: the emulated daemon listens for SIA DC-09 on loopback and subscribes to a
#      private Mosquitto started here on a free port; `atgw simulate dc09` and `atgw simulate mqtt`
#      (the same emulated binary) send one DC-09 frame and one zigbee2mqtt button press; after a
#      clean stop (SIGTERM) the journal (sqlite3 on atgw.db) must hold both events and the file
#      sink must have written them.
#
# What it needs is installed when missing (root with apt-get: the cross gcc, libc6-dev-*-cross,
# qemu-user-static, mosquitto, sqlite3; rustup's target; cargo-deb from crates.io). Writes only
# under target/ (the package: target/debian/atgw_<version>-1_<arch>.deb) and a mktemp directory
# it removes.
# Output: one "cross: ..." line per step, with wall times; exit 1 on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-}
case "$arch" in
  arm64 | aarch64)
    arch=arm64 triple=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu qemu=qemu-aarch64-static ;;
  armhf | armv7)
    arch=armhf triple=armv7-unknown-linux-gnueabihf gnu=arm-linux-gnueabihf qemu=qemu-arm-static ;;
  *)
    echo "usage: $0 arm64|armhf" >&2
    exit 64 ;;
esac

t0=$(date +%s)
say() { echo "cross[$arch]: $* (+$(($(date +%s) - t0)) s)"; }
fail() { echo "cross[$arch]: FAIL: $*" >&2; exit 1; }

# --- tools ----------------------------------------------------------------------------------
need_apt=()
command -v "$gnu-gcc" >/dev/null 2>&1 || need_apt+=("gcc-$gnu")
[ -e "/usr/$gnu/lib/libc.so" ] || need_apt+=("libc6-dev-$arch-cross")
command -v "$qemu" >/dev/null 2>&1 || need_apt+=(qemu-user-static)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
command -v dpkg-deb >/dev/null 2>&1 || need_apt+=(dpkg)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
    || fail "missing ${need_apt[*]} (install them, or run as root with apt-get)"
  say "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup target list --installed 2>/dev/null | grep -qx "$triple" || rustup target add "$triple"
command -v cargo-deb >/dev/null 2>&1 || { say "installing cargo-deb"; cargo install --locked cargo-deb; }
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)

# --- build ------------------------------------------------------------------------------------
# Cargo's per-target linker, and the cc crate's compiler and archiver for the C parts (SQLite,
# ring). cargo-deb finds $gnu-strip and $gnu-objcopy on PATH for the stripped binary and the
# -dbgsym package.
upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
under=$(echo "$triple" | tr '-' '_')
export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc" "CC_${under}=$gnu-gcc" "AR_${under}=$gnu-ar"
# The package ships the SBOM (Cargo.toml's assets): write it first, as check-deb.sh does.
[ -f target/sbom/atgw.cdx.json ] && [ target/sbom/atgw.cdx.json -nt Cargo.lock ] || bash packaging/sbom.sh
say "cargo deb --target $triple"
b0=$(date +%s)
built=$(cargo deb --locked --target "$triple")
echo "$built"
deb=$(echo "$built" | grep -E '/atgw_[^/]*\.deb$' | tail -n 1)
[ -n "$deb" ] && [ -f "$deb" ] || fail "cargo deb did not report a package"
say "built $deb in $(($(date +%s) - b0)) s"
deb_arch=$(dpkg-deb --field "$deb" Architecture)
[ "$deb_arch" = "$arch" ] || fail "the package's Architecture is $deb_arch, not $arch"
dpkg-deb --field "$deb" Package Version Architecture Depends | sed 's/^/  /'
# $auto is dpkg-shlibdeps against the cross libc: the package must depend on the target's own
# libc6, never on the build machine's libc6-*-cross.
depends=$(dpkg-deb --field "$deb" Depends)
case "$depends" in *-cross*) fail "Depends names a cross package: $depends" ;; esac
echo "$depends" | grep -q 'libc6' || fail "Depends has no libc6: $depends"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
root="$work/root"
dpkg -x "$deb" "$root"
bin="$root/usr/bin/atgw"
file_out=$(file -b "$bin" 2>/dev/null || true)
[ -z "$file_out" ] || say "usr/bin/atgw: $file_out"
emu() { "$qemu" -L "/usr/$gnu" "$bin" "$@"; }

# --- smoke: --version, check-config ---------------------------------------------------------
version=$(emu --version)
[ "$version" = "atgw $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" ] \
  || fail "unexpected --version: $version"
say "$version under $qemu"
# check-config reads every secret as `run` does; postinst generates the API token on a real
# install, so make one here the same way.
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$root/etc/atgw/api-token" && echo >> "$root/etc/atgw/api-token")
ATGW_GATEWAY__PROFILES_DIR="$root/etc/atgw/profiles" emu check-config --config "$root/etc/atgw/atgw.toml" \
  || fail "check-config of the packaged atgw.toml failed under $qemu"
say "check-config of the packaged /etc/atgw/atgw.toml passes"

# --- smoke: a short run journals a DC-09 frame and an MQTT message ----------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mqtt_port=$(free_port)
dc09_port=$(free_port)
api_port=$(free_port)
cat > "$work/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
EOF
"$mosquitto_bin" -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
pids+=($!)
install -d -m 750 "$work/state"
cat > "$work/atgw.toml" <<EOF
[gateway]
id = "gw-$arch"
site = "smoke"
data_dir = "$work/state"
profiles_dir = "$root/etc/atgw/profiles"
timezone = "Europe/London"

[api]
listen = "127.0.0.1:$api_port"
token_file = "$root/etc/atgw/api-token"

[[adapter]]
name = "zigbee"
type = "mqtt"
host = "127.0.0.1"
port = $mqtt_port
topics = ["zigbee2mqtt/#"]
profiles = ["zigbee2mqtt"]

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "127.0.0.1:$dc09_port"
accounts = [{ account = "1234" }]

[[sink]]
name = "audit"
type = "file"
path = "$work/state/events.jsonl"
EOF
emu check-config --config "$work/atgw.toml" >/dev/null || fail "the smoke configuration does not pass check-config"
r0=$(date +%s%N)
# qemu itself, not the shell function, so that $! is the process SIGTERM must reach.
"$qemu" -L "/usr/$gnu" "$bin" run --config "$work/atgw.toml" > "$work/atgw.log" 2>&1 &
daemon=$!
pids+=("$daemon")
ready=no
for _ in $(seq 1 600); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$api_port/readyz" 2>/dev/null; then ready=yes; break; fi
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.1
done
[ "$ready" = yes ] || { cat "$work/atgw.log" >&2; fail "the emulated daemon did not become ready"; }
say "emulated daemon ready (/readyz 200) $(( ($(date +%s%N) - r0) / 1000000 )) ms after start"

emu simulate dc09 --target "127.0.0.1:$dc09_port" --account 1234 --count 1 \
  || { cat "$work/atgw.log" >&2; fail "atgw simulate dc09 got no ACK from the emulated daemon"; }
emu simulate mqtt --port "$mqtt_port" --kind button --devices 1 --count 1 \
  || { cat "$work/atgw.log" >&2; fail "atgw simulate mqtt failed"; }

db="$work/state/atgw.db"
q() { sqlite3 -readonly "$db" "$1"; }
# The DC-09 ACK came after the commit; the MQTT event is committed asynchronously to the
# publish, so give it a moment.
for _ in $(seq 1 100); do
  [ "$(q "SELECT count(*) FROM events WHERE source LIKE '%:zigbee'" 2>/dev/null || echo 0)" -ge 1 ] && break
  sleep 0.1
done
kill -TERM "$daemon"
wait "$daemon" && stopped=0 || stopped=$?
[ "$stopped" = 0 ] || { cat "$work/atgw.log" >&2; fail "the emulated daemon exited $stopped on SIGTERM"; }
say "emulated daemon stopped cleanly on SIGTERM"

echo "  journal: $(q "SELECT group_concat(source || ' ' || kind || ' ' || phase, '; ') FROM events WHERE source NOT LIKE '%:gateway'")"
dc09=$(q "SELECT count(*) FROM events WHERE source LIKE '%:alarms'")
mqtt=$(q "SELECT count(*) FROM events WHERE source LIKE '%:zigbee' AND kind = 'pendant_press'")
[ "$dc09" -ge 1 ] || { cat "$work/atgw.log" >&2; fail "no DC-09 event in the journal"; }
[ "$mqtt" -ge 1 ] || { cat "$work/atgw.log" >&2; fail "no MQTT (zigbee2mqtt button) event in the journal"; }
lines=$(grep -c . "$work/state/events.jsonl" || true)
[ "$lines" -ge 2 ] || fail "the file sink wrote $lines lines, expected both events"
integrity=$(q "PRAGMA integrity_check")
[ "$integrity" = ok ] || fail "journal integrity_check: $integrity"
say "journal holds the DC-09 event ($dc09) and the MQTT event ($mqtt); file sink $lines lines; integrity ok"
say "ok: $deb"
