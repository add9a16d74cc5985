#!/usr/bin/env bash
# Runs the packaged unit under a real systemd: a minimal Debian bookworm (debootstrap) with the
# amd64 .deb installed is booted with `systemd-nspawn --boot` (systemd as the container's PID 1,
# its own network namespace, so nothing here touches the host's ports), and inside it:
#
#   1. readiness: `systemctl start atgw` returns only after READY=1 (Type=notify); the unit is
#      active/running with the STATUS= text atgw sends;
#   2. credentials: the API token (LoadCredential=api-token, shipped unit) and a webhook signing
#      secret (LoadCredential=webhook.secret, a drop-in) reach atgw from root-only files the atgw
#      user cannot read: the API answers the token, the receiver verifies the signature;
#   3. features under the hardening: a DC-09 frame over TCP is ACKed; an MQTT button press is
#      journaled and published upstream (atgw simulate mqtt --upstream-prefix follows it); the
#      webhook sink POSTs over TLS (a private CA) to a receiver that checks the Standard Webhooks
#      signature; the file sink writes /var/lib/atgw/events.jsonl;
#   4. `systemctl reload atgw`: same main PID, "configuration reloaded", a sink added by the
#      reload delivers;
#   5. the watchdog: the main process is stopped (SIGSTOP); systemd must kill it (SIGABRT,
#      "Watchdog timeout") and restart it (NRestarts=1), and the new process must become ready
#      and serve again;
#   6. `systemd-analyze security atgw` of the running unit, and a clean `systemctl stop`.
#
#   bash packaging/systemd-boot-test.sh [path/to/atgw_*_amd64.deb]
#
# Without an argument it packages the tree (packaging/sbom.sh, then `cargo deb`). The base rootfs
# is debootstrapped once into $ROOTFS_CACHE (default /var/tmp/atgw-systemd-rootfs/base; ~5 min,
# ~250 MB) and copied fresh for every run. Needs root, debootstrap and systemd-container (installed
# with apt-get when missing). Output: one "boot-test: ..." line per check with wall times and the
# evidence; exit 1 on the first failure of atgw or its package, exit 77 when this machine cannot
# run the test at all (not root, no Debian mirror for debootstrap, nspawn cannot boot a plain
# Debian): .ci/run reports that as SKIPPED, loudly. docs/SYSTEMD-BOOT.md holds a transcript.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$(date +%s)
say() { echo "boot-test: $* (+$(($(date +%s) - t0)) s)"; }
fail() {
  echo "boot-test: FAIL: $* (+$(($(date +%s) - t0)) s)" >&2
  if [ -n "${leader:-}" ]; then
    echo "--- journalctl -u atgw (container) ---" >&2
    inside journalctl -u atgw --no-pager -n 80 >&2 || true
  fi
  exit 1
}
cannot() { echo "boot-test: CANNOT RUN HERE: $* (+$(($(date +%s) - t0)) s)" >&2; exit 77; }

[ "$(id -u)" = 0 ] || cannot "needs root (debootstrap, systemd-nspawn)"
need_apt=()
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || need_apt+=(systemd-container)
command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# --- the package ------------------------------------------------------------------------------
deb=${1:-}
if [ -z "$deb" ]; then
  command -v cargo-deb >/dev/null 2>&1 || { say "installing cargo-deb"; cargo install --locked cargo-deb; }
  bash packaging/sbom.sh
  built=$(cargo deb --locked)
  deb=$(echo "$built" | grep -E '/atgw_[^/]*\.deb$' | tail -n 1)
fi
[ -f "$deb" ] || fail "no package at '$deb'"
deb=$(realpath "$deb")
say "package $(dpkg-deb --field "$deb" Package Version Architecture | tr '\n' ' ')"

# --- the rootfs ------------------------------------------------------------------------------
cache=${ROOTFS_CACHE:-/var/tmp/atgw-systemd-rootfs/base}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ ! -x "$cache/usr/lib/systemd/systemd" ]; then
  say "debootstrap bookworm into $cache ($mirror)"
  rm -rf "$cache.partial"
  mkdir -p "$(dirname "$cache")"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,mosquitto,python3,openssl,ca-certificates,sqlite3,curl,iproute2,procps \
    bookworm "$cache.partial" "$mirror" > "$(dirname "$cache")/debootstrap.log" 2>&1 \
    || { tail -n 20 "$(dirname "$cache")/debootstrap.log" >&2; cannot "debootstrap failed (is $mirror reachable?)"; }
  mv "$cache.partial" "$cache"
  say "rootfs ready"
fi

work=$(mktemp -d /var/tmp/atgw-boot.XXXXXX)
root="$work/root"
nspawn_pid=
leader=
cleanup() {
  if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
    inside systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  [ -z "$nspawn_pid" ] || kill "$nspawn_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "boot-test: kept $work" || rm -rf "$work"
}
trap cleanup EXIT
cp -a "$cache" "$root"
cp "$deb" "$root/tmp/atgw.deb"
# What netbase gives every installed Debian (minbase leaves it out): without it `localhost`
# does not resolve.
[ -e "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
# Installed the way an integrator does, from inside the Debian (a chroot: postinst runs
# systemd-sysusers and generates /etc/atgw/api-token; systemd is not running there yet).
chroot "$root" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/atgw.deb > "$work/dpkg.log" 2>&1 \
  || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
say "installed in the rootfs: $(chroot "$root" dpkg-query -W -f='${Package} ${Version} ${Status}' atgw)"
chroot "$root" getent passwd atgw >/dev/null || fail "postinst did not create the atgw user"
[ "$(stat -c '%a %U' "$root/etc/atgw/api-token")" = "600 root" ] || fail "/etc/atgw/api-token is not 600 root"

# --- the site: certificates, secrets, a webhook receiver, the configuration ---------------------
pki="$work/pki"
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=atgw boot-test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$pki/ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
  -extfile "$pki/ext" -out "$pki/server.pem" 2>/dev/null
install -d -m 755 "$root/etc/webhook-receiver"
install -m 644 "$pki/server.pem" "$root/etc/webhook-receiver/server.pem"
install -m 600 "$pki/server.key" "$root/etc/webhook-receiver/server.key"
install -m 644 "$pki/ca.pem" "$root/etc/atgw/receiver-ca.pem"
secret="whsec_$(head -c 24 /dev/urandom | base64)"
(umask 077 && echo "$secret" > "$root/etc/atgw/webhook.secret" && echo "$secret" > "$root/etc/webhook-receiver/secret")

# A Standard Webhooks receiver: checks every POST's signature with the shared secret and
# records (id, type, verified) as JSON lines.
cat > "$root/usr/local/bin/webhook-receiver" <<'EOF'
#!/usr/bin/python3
import base64, hashlib, hmac, http.server, json, ssl
secret = open("/etc/webhook-receiver/secret").read().strip()
key = base64.b64decode(secret.removeprefix("whsec_"))
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        wid, ts = self.headers.get("webhook-id", ""), self.headers.get("webhook-timestamp", "")
        mac = hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
        want = base64.b64encode(mac).decode()
        sigs = [s.split(",", 1)[-1] for s in self.headers.get("webhook-signature", "").split()]
        ok = any(hmac.compare_digest(s, want) for s in sigs)
        try:
            kind = json.loads(body).get("type")
        except ValueError:
            kind = None
        with open("/var/log/webhook-receiver.jsonl", "a") as f:
            f.write(json.dumps({"id": wid, "type": kind, "verified": ok}) + "\n")
        self.send_response(200 if ok else 401)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 8443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/etc/webhook-receiver/server.pem", "/etc/webhook-receiver/server.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
chmod 755 "$root/usr/local/bin/webhook-receiver"
cat > "$root/etc/systemd/system/webhook-receiver.service" <<'EOF'
[Unit]
Description=Standard Webhooks test receiver (HTTPS, 127.0.0.1:8443)
[Service]
ExecStart=/usr/local/bin/webhook-receiver
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/webhook-receiver.service "$root/etc/systemd/system/multi-user.target.wants/webhook-receiver.service"

# The secret the webhook sink signs with reaches the service as a credential, as the unit's
# comments tell an integrator to add it.
mkdir -p "$root/etc/systemd/system/atgw.service.d"
cat > "$root/etc/systemd/system/atgw.service.d/secrets.conf" <<'EOF'
[Service]
LoadCredential=webhook.secret:/etc/atgw/webhook.secret
EOF

# The site's configuration: like the packaged file ([api] token_file = "api-token", the shipped
# credential; the zigbee2mqtt profile on the container's Mosquitto), plus a DC-09 receiver and
# three more sinks: MQTT upstream, a webhook over TLS and the file sink.
site_config() {
  cat <<'EOF'
[gateway]
id = "gw-boot"
site = "boot"
data_dir = "/var/lib/atgw"
profiles_dir = "/etc/atgw/profiles"
timezone = "Europe/London"

[api]
listen = "127.0.0.1:8780"
token_file = "api-token"

[[adapter]]
name = "zigbee"
type = "mqtt"
host = "127.0.0.1"
port = 1883
topics = ["zigbee2mqtt/#"]
profiles = ["zigbee2mqtt"]

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "127.0.0.1:7777"
accounts = [{ account = "1234" }]

[[sink]]
name = "upstream"
type = "mqtt"
host = "127.0.0.1"
port = 1883
topic_prefix = "atgw/boot"

[[sink]]
name = "care-platform"
type = "webhook"
url = "https://localhost:8443/hooks/atgw"
secret_file = "webhook.secret"
ca_file = "/etc/atgw/receiver-ca.pem"
ca_only = true

[[sink]]
name = "audit"
type = "file"
path = "/var/lib/atgw/events.jsonl"
EOF
}
site_config > "$root/etc/atgw/atgw.toml"
chroot "$root" atgw check-config --config /etc/atgw/atgw.toml > "$work/check-config.log" 2>&1 \
  || { cat "$work/check-config.log" >&2; fail "the test site's configuration does not pass check-config"; }

# --- boot -------------------------------------------------------------------------------------
say "systemd-nspawn --boot (private network)"
# No systemd runs on the host of a container build box (PID 1 is something else): no system bus,
# no machined. --register=no skips machined, --keep-unit the scope nspawn would ask the host's
# systemd for over D-Bus ("Failed to open system bus" without it).
systemd-nspawn --quiet --boot --directory="$root" --machine="atgw-boot-$$" --private-network \
  --register=no --keep-unit --console=passive > "$work/console.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1 is nspawn's child named systemd.
for _ in $(seq 1 300); do
  leader=$(pgrep -P "$nspawn_pid" -x systemd 2>/dev/null | head -n 1 || true)
  [ -n "$leader" ] && break
  kill -0 "$nspawn_pid" 2>/dev/null || { cat "$work/console.log" >&2; cannot "systemd-nspawn exited"; }
  sleep 0.1
done
[ -n "$leader" ] || { cat "$work/console.log" >&2; cannot "no systemd in the container"; }
inside() { nsenter --target "$leader" --mount --uts --ipc --net --pid -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
# Until the container's systemd has its private socket up, systemctl cannot connect.
for _ in $(seq 1 300); do
  state=$(inside systemctl is-system-running --wait 2>&1) || true
  case "$state" in *"Failed to connect"*) sleep 0.1 ;; *) break ;; esac
done
say "container booted: systemd $(inside systemctl --version | head -n 1 | cut -d' ' -f2) as PID 1 (host pid $leader), is-system-running: $state"
# Nothing of atgw's runs yet (the package leaves the unit disabled): a plain Debian that does not
# come up is this machine's problem, not the package's.
[ "$state" = running ] || { inside systemctl --failed --no-pager >&2 || true; cannot "the booted Debian is $state"; }
show() { inside systemctl show atgw -p "$1" --value; }

# --- 1. readiness -----------------------------------------------------------------------------
s0=$(date +%s%N)
inside systemctl start atgw || fail "systemctl start atgw failed"
ms=$(( ($(date +%s%N) - s0) / 1000000 ))
[ "$(show ActiveState)/$(show SubState)" = active/running ] || fail "atgw is $(show ActiveState)/$(show SubState)"
say "1. readiness: systemctl start returned after READY=1 in $ms ms; $(show ActiveState)/$(show SubState), Type=$(show Type), MainPID=$(show MainPID), WatchdogUSec=$(show WatchdogUSec), StatusText=\"$(show StatusText)\""
pid1=$(show MainPID)
inside journalctl -u atgw --no-pager -o cat | grep -m1 'Started atgw' >/dev/null || fail "no 'Started' line in the journal"

# --- 2. credentials ---------------------------------------------------------------------------
inside runuser -u atgw -- cat /etc/atgw/api-token >/dev/null 2>&1 && fail "the atgw user can read /etc/atgw/api-token"
token=$(cat "$root/etc/atgw/api-token")
code=$(inside curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" http://127.0.0.1:8780/api/v1/alerts)
[ "$code" = 200 ] || fail "GET /api/v1/alerts with the generated token: HTTP $code"
bad=$(inside curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong" http://127.0.0.1:8780/api/v1/alerts)
[ "$bad" = 401 ] || fail "GET /api/v1/alerts with a wrong token: HTTP $bad"
creds=$(inside ls "/run/credentials/atgw.service" | tr '\n' ' ')
say "2. credentials: /run/credentials/atgw.service holds: $creds; the atgw user cannot read /etc/atgw/api-token, yet the API takes it (200; a wrong token 401)"

# --- 3. features ------------------------------------------------------------------------------
inside atgw simulate dc09 --target 127.0.0.1:7777 --account 1234 --count 1 > "$work/dc09.log" 2>&1 \
  || { cat "$work/dc09.log" >&2; fail "atgw simulate dc09: no ACK"; }
say "3a. DC-09 over TCP: $(tr '\n' ' ' < "$work/dc09.log" | cut -c1-200)"
inside atgw simulate mqtt --kind button --devices 1 --count 1 --upstream-prefix atgw/boot --settle 10s > "$work/mqtt.log" 2>&1 \
  || { cat "$work/mqtt.log" >&2; fail "atgw simulate mqtt: the press did not come through upstream"; }
say "3b. MQTT in and upstream: $(tr '\n' ' ' < "$work/mqtt.log" | cut -c1-240)"
q() { inside sqlite3 -readonly /var/lib/atgw/atgw.db "$1"; }
dc09=$(q "SELECT count(*) FROM events WHERE source = 'urn:atgw:gw-boot:alarms'")
mqtt=$(q "SELECT count(*) FROM events WHERE source = 'urn:atgw:gw-boot:zigbee'")
[ "$dc09" -ge 1 ] && [ "$mqtt" -ge 1 ] || fail "journal: $dc09 DC-09 and $mqtt MQTT events"
hooks=0
for _ in $(seq 1 150); do
  hooks=$(cat "$root/var/log/webhook-receiver.jsonl" 2>/dev/null | grep -c '"verified": true' || true)
  [ "$hooks" -ge 2 ] && break
  sleep 0.2
done
[ "$hooks" -ge 2 ] || fail "the webhook receiver verified $hooks POSTs, expected both events"
unverified=$(cat "$root/var/log/webhook-receiver.jsonl" 2>/dev/null | grep -c '"verified": false' || true)
[ "$unverified" = 0 ] || fail "$unverified webhook POSTs failed signature verification"
lines=$(grep -c . "$root/var/lib/atgw/events.jsonl" || true)
[ "$lines" -ge 2 ] || fail "the file sink wrote $lines lines"
say "3c. journal: $dc09 DC-09 + $mqtt MQTT events; webhook over TLS (private CA, ca_only): $hooks POSTs, all signatures verified; file sink: $lines lines"

# --- 4. reload --------------------------------------------------------------------------------
# The reload adds a second file sink; it must come up and deliver what is journaled next.
{ site_config; printf '\n[[sink]]\nname = "after-reload"\ntype = "file"\npath = "/var/lib/atgw/after-reload.jsonl"\n'; } > "$root/etc/atgw/atgw.toml"
r0=$(date +%s%N)
inside systemctl reload atgw || fail "systemctl reload atgw failed"
ms=$(( ($(date +%s%N) - r0) / 1000000 ))
[ "$(show MainPID)" = "$pid1" ] || fail "the reload changed the main PID ($pid1 -> $(show MainPID))"
# Type=notify: ExecReload (kill -HUP) returns at once; atgw then says RELOADING=1 and READY=1
# once the new configuration runs, so "reloading" may still show for a moment.
for _ in $(seq 1 100); do [ "$(show ActiveState)" = active ] && break; sleep 0.2; done
[ "$(show ActiveState)" = active ] || fail "atgw is $(show ActiveState) after the reload"
for _ in $(seq 1 50); do
  inside journalctl -u atgw --no-pager -o cat | grep -q 'configuration reloaded' && break
  sleep 0.2
done
inside journalctl -u atgw --no-pager -o cat | grep -q 'configuration reloaded' || fail "no 'configuration reloaded' in the journal"
# Another zone: the same frame again within its retry window would be a retransmission, ACKed
# and deduplicated (nothing new to deliver).
inside atgw simulate dc09 --target 127.0.0.1:7777 --account 1234 --cid "1101 01 007" --count 1 > "$work/dc09b.log" 2>&1 \
  || { cat "$work/dc09b.log" >&2; fail "no ACK after the reload"; }
for _ in $(seq 1 50); do [ -s "$root/var/lib/atgw/after-reload.jsonl" ] && break; sleep 0.2; done
[ -s "$root/var/lib/atgw/after-reload.jsonl" ] || fail "the sink added by the reload wrote nothing"
say "4. reload: systemctl reload returned in $ms ms; MainPID $pid1 unchanged, 'configuration reloaded', the new sink delivered"

# --- 5. watchdog ------------------------------------------------------------------------------
since=$(inside date '+%Y-%m-%d %H:%M:%S')
w0=$(date +%s)
# $pid1 is the PID in the container's namespace; signal it from inside.
inside kill -STOP "$pid1" || fail "cannot SIGSTOP atgw"
say "5. watchdog: SIGSTOP sent to atgw (pid $pid1 in the container); waiting for systemd"
restarted=no
for _ in $(seq 1 120); do
  n=$(show NRestarts)
  if [ "$n" -ge 1 ] && [ "$(show ActiveState)" = active ] && [ "$(show MainPID)" != "$pid1" ]; then restarted=yes; break; fi
  sleep 1
done
log=$(inside journalctl -u atgw --no-pager --since "$since" -o short-monotonic)
echo "$log" | grep -E 'Watchdog timeout|Killing process|Main process exited|Scheduled restart|Started atgw' | sed 's/^/    /'
[ "$restarted" = yes ] || fail "atgw was not restarted after the stall (NRestarts=$(show NRestarts), $(show ActiveState))"
echo "$log" | grep -q 'Watchdog timeout' || fail "the restart was not a watchdog timeout"
pid2=$(show MainPID)
say "5. watchdog: killed after the stall and restarted in $(($(date +%s) - w0)) s: NRestarts=$(show NRestarts), MainPID $pid1 -> $pid2, $(show ActiveState)/$(show SubState)"
inside atgw simulate dc09 --target 127.0.0.1:7777 --account 1234 --cid "1101 01 009" --count 1 > "$work/dc09c.log" 2>&1 \
  || { cat "$work/dc09c.log" >&2; fail "no ACK after the watchdog restart"; }
total=$(q "SELECT count(*) FROM events WHERE source = 'urn:atgw:gw-boot:alarms'")
say "5. after the restart: DC-09 ACKed again; the journal holds $total DC-09 events (integrity: $(q 'PRAGMA quick_check'))"

# --- 6. exposure, stop --------------------------------------------------------------------------
exposure=$(inside systemd-analyze security atgw --no-pager 2>&1 | grep 'Overall exposure level' || true)
say "6. systemd-analyze security atgw (live, in the container): ${exposure#→ }"
inside systemctl stop atgw || fail "systemctl stop atgw failed"
result=$(show Result)
[ "$result" = success ] || fail "stop result: $result"
say "6. systemctl stop: Result=$result, $(show ActiveState)"
say "ok"
