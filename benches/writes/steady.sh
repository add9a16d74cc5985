#!/bin/bash
# Bytes atgw writes to storage per event at a steady rate, the case an SD card lives with
# (BENCHMARKS.md §10.4): `benches/writes/steady.sh <atgw binary>`; RATE messages/s (20) for
# SECS s (30), one pendant press each, through the MQTT adapter to the upstream MQTT sink and a
# file sink (the mqtt_drain setup) on a private broker; /proc/<pid>/io write_bytes from 2 s
# after ready to 3 s after the last publish. SNAP=<dir> also copies the journal and its WAL
# just before the stop, for walpages.py.
set -u
BIN=$1; RATE=${RATE:-20}; SECS=${SECS:-30}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
D=$(mktemp -d "${CARGO_TARGET_DIR:-$REPO/target}/steady-XXXX")
PORT=$((20000 + RANDOM % 20000))
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' $PORT > $D/mosq.conf
/usr/sbin/mosquitto -c $D/mosq.conf > $D/mosq.log 2>&1 & MOSQ=$!
sleep 0.5
cat > $D/atgw.toml <<EOT
[gateway]
id = "gw-bench"
site = "bench"
data_dir = "$D/state"
profiles_dir = "$REPO/config/profiles"
timezone = "UTC"

[[adapter]]
name = "zigbee"
type = "mqtt"
host = "127.0.0.1"
port = $PORT
topics = ["zigbee2mqtt/#"]
profiles = ["zigbee2mqtt"]

[[sink]]
name = "upstream"
type = "mqtt"
host = "127.0.0.1"
port = $PORT
topic_prefix = "atgw/bench"

[[sink]]
name = "audit"
type = "file"
path = "$D/events.jsonl"
rotate_bytes = 4294967296
EOT
touch $D/atgw.log
env -u ATGW_BIN "$BIN" run --config $D/atgw.toml > $D/atgw.log 2>&1 & PID=$!
for i in $(seq 1 100); do grep -q "atgw ready" $D/atgw.log && break; sleep 0.1; done
sleep 2
W0=$(awk '/^write_bytes/ {print $2}' /proc/$PID/io)
N=$((RATE*SECS))
python3 - $PORT $N $RATE <<'PY'
import subprocess, sys, time
port, n, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
p = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-l", "-t", "zigbee2mqtt/dev-1"], stdin=subprocess.PIPE, text=True)
t0 = time.time()
for i in range(n):
    p.stdin.write('{"action":"emergency","seq":%d}\n' % i); p.stdin.flush()
    time.sleep(max(0, t0 + (i + 1) / rate - time.time()))
p.stdin.close(); p.wait()
PY
sleep 3
W1=$(awk '/^write_bytes/ {print $2}' /proc/$PID/io)
EV=$(sqlite3 "file:$D/state/atgw.db?mode=ro" "SELECT count(*) FROM events")
OB=$(sqlite3 "file:$D/state/atgw.db?mode=ro" "SELECT count(*) FROM outbox")
if [ -n "${SNAP:-}" ]; then mkdir -p $SNAP; cp $D/state/atgw.db $D/state/atgw.db-wal $SNAP/; fi
kill -s TERM $PID; wait $PID; kill $MOSQ
echo "$(basename $BIN): $N published at $RATE/s, events $EV, outbox left $OB, write_bytes $((W1-W0)) = $(( (W1-W0)/N )) B/event"
rm -rf $D
