#!/usr/bin/env python3
"""Memory and journal growth of atgw under unauthenticated input (issue 11 item 7).

    cargo build --release
    python3 benches/hostile_input.py [--bin target/release/atgw] [--only a,b,c,d] [--quick]

Each scenario starts the real binary with a fresh data dir (and a private Mosquitto on a free
loopback port), feeds it one kind of hostile input, and prints the peak RSS of the atgw process
(VmHWM from /proc/PID/status), its RSS at the end, the journal's size on disk (atgw.db + -wal)
and the row counts that matter:

  a   50,000 distinct MQTT device topics (zigbee2mqtt/hostile-N, a telemetry payload), QoS 1,
      with the default caps, and again with max_unregistered_devices = 1000000 (no cap in
      practice) for comparison.
  b   UDP garbage (512 random bytes a datagram) to the DC-09 receiver from 200 source addresses
      127.0.0.2 ... 127.0.0.201 for 30 s, and again with max_dead_letters = 1000000.
  c   20,000 idle TCP connections to the local API (default max_connections = 256), held 10 s.
  d   /api/v1/devices requested by 10 clients at once, repeatedly for 10 s, over the journal a
      left (capped: 1,000 unregistered devices; uncapped: 50,000, paginated).

Python stdlib only (a minimal MQTT 3.1.1 publisher is included). Prints one `HOSTILE {json}`
line per scenario and a table at the end. --quick divides every count by 10.
"""

import argparse
import json
import os
import random
import resource
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def memory(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0])
    return out


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def journal_bytes(data):
    return sum(
        os.path.getsize(os.path.join(data, f))
        for f in ("atgw.db", "atgw.db-wal")
        if os.path.exists(os.path.join(data, f))
    )


def query(data, sql):
    c = sqlite3.connect(f"file:{os.path.join(data, 'atgw.db')}?mode=ro", uri=True, timeout=10)
    try:
        return c.execute(sql).fetchone()[0]
    finally:
        c.close()


ROWS = {
    "events": "SELECT count(*) FROM events",
    # The gateway's own components (`gateway:…`, `sink:…`) are not outside input.
    "devices_unregistered": "SELECT count(*) FROM devices WHERE registered = 0 AND adapter != 'gateway'",
    "devices_evicted": "SELECT coalesce((SELECT value FROM adapter_state WHERE adapter = 'gateway'"
    " AND key = 'unregistered_devices.evicted'), 0)",
    "dedupe": "SELECT count(*) FROM dedupe",
    "adapter_state": "SELECT count(*) FROM adapter_state",
    "dead_letters": "SELECT count(*) FROM dead_letters",
    "dead_letters_pruned": "SELECT coalesce((SELECT value FROM adapter_state WHERE adapter = 'gateway'"
    " AND key = 'dead_letters.pruned'), 0)",
    "gateway_alerts": "SELECT group_concat(DISTINCT device_id) FROM events WHERE device_id LIKE 'gateway:%'",
}


def table_bytes(data):
    """Bytes on disk per table and index (SQLite's dbstat), the biggest first."""
    try:
        c = sqlite3.connect(f"file:{os.path.join(data, 'atgw.db')}?mode=ro", uri=True, timeout=10)
        got = c.execute(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 8"
        ).fetchall()
        c.close()
        return {n: b for n, b in got}
    except sqlite3.Error as e:
        return {"error": str(e)}


def rows(data):
    out = {}
    for k, sql in ROWS.items():
        try:
            out[k] = query(data, sql)
        except sqlite3.Error as e:
            out[k] = f"error: {e}"
    return out


class Broker:
    def __init__(self, dir):
        self.port = free_port()
        conf = os.path.join(dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_queued_messages 0\nmax_inflight_messages 100\nset_tcp_nodelay true\n"
            )
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", conf],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Gateway:
    def __init__(self, bin, dir, text):
        self.dir = dir
        self.data = os.path.join(dir, "state")
        cfg = os.path.join(dir, "atgw.toml")
        with open(cfg, "w") as f:
            f.write(text)
        self.log = os.path.join(dir, "atgw.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATGW_")}
        env["RUST_LOG"] = "info,rumqttc=warn"
        self.proc = subprocess.Popen(
            [bin, "run", "--config", cfg],
            stdin=subprocess.DEVNULL,
            stdout=open(self.log, "w"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.wait_log("atgw ready", 30)

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_log(self, needle, within):
        deadline = time.time() + within
        while needle not in self.log_text():
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"no `{needle}`:\n{self.log_text()}")
            time.sleep(0.05)

    def memory(self):
        return memory(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def config(dir, extra="", mqtt_port=None, dc09_port=None, api_port=None):
    data = os.path.join(dir, "state")
    s = (
        f'[gateway]\nid = "gw-hostile"\nsite = "bench"\ndata_dir = "{data}"\n'
        f'profiles_dir = "{os.path.join(REPO, "config/profiles")}"\ntimezone = "UTC"\n'
    )
    if mqtt_port:
        s += (
            f'\n[[adapter]]\nname = "zigbee"\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
            'topics = ["zigbee2mqtt/#"]\nprofiles = ["zigbee2mqtt"]\n'
        )
    if dc09_port:
        s += (
            f'\n[[adapter]]\nname = "alarms"\ntype = "sia-dc09"\nlisten_udp = "127.0.0.1:{dc09_port}"\n'
            'accounts = [{ account = "1234" }]\n'
        )
    if api_port:
        token = os.path.join(dir, "api-token")
        with open(token, "w") as f:
            f.write("hostile-bench-token")
        os.chmod(token, 0o600)
        s += f'\n[api]\nlisten = "127.0.0.1:{api_port}"\ntoken_file = "{token}"\n'
    s += f'\n[[sink]]\nname = "audit"\ntype = "file"\npath = "{os.path.join(dir, "events.jsonl")}"\n'
    return s + extra


def mqtt_publish(port, messages, client_id="hostile", window=100):
    """QoS 1 publishes over one connection, at most `window` unacknowledged."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def enc_len(n):
        out = bytearray()
        while True:
            b = n % 128
            n //= 128
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def utf8(x):
        b = x.encode()
        return struct.pack("!H", len(b)) + b

    body = utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + utf8(client_id)
    s.sendall(bytes([0x10]) + enc_len(len(body)) + body)
    assert s.recv(4)[:2] == b"\x20\x02", "no CONNACK"
    sem = threading.Semaphore(window)
    acked = [0]
    done = threading.Event()

    def reader():
        buf = b""
        while not done.is_set() or acked[0] < len(messages):
            chunk = s.recv(65536)
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 4:
                if buf[0] >> 4 == 4:  # PUBACK
                    acked[0] += 1
                    sem.release()
                buf = buf[2 + buf[1]:]
            if acked[0] >= len(messages):
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    for i, (topic, payload) in enumerate(messages):
        pid = i % 65535 + 1
        body = utf8(topic) + struct.pack("!H", pid) + payload
        sem.acquire()
        s.sendall(bytes([0x32]) + enc_len(len(body)) + body)
    done.set()
    t.join(60)
    s.close()
    return acked[0]


def wait_stable(fn, within, settle=2.0):
    """Polls fn() until its value has not changed for `settle` seconds."""
    deadline = time.time() + within
    last, since = None, time.time()
    while time.time() < deadline:
        v = fn()
        if v != last:
            last, since = v, time.time()
        elif time.time() - since >= settle:
            return v
        time.sleep(0.25)
    return last


def scenario_a(bin, base, n, cap_extra, label):
    dir = tempfile.mkdtemp(prefix=f"a-{label}-", dir=base)
    broker = Broker(dir)
    g = Gateway(bin, dir, config(dir, cap_extra, mqtt_port=broker.port))
    g.wait_log("subscribed to", 20)
    idle = g.memory()
    t0 = time.time()
    msgs = [
        (f"zigbee2mqtt/hostile-{i:06}", b'{"linkquality":120,"battery":87}') for i in range(n)
    ]
    acked = mqtt_publish(broker.port, msgs)
    heard = lambda: query(g.data, ROWS["devices_unregistered"]) + int(
        query(g.data, ROWS["devices_evicted"])
    )
    wait_stable(heard, 300)
    secs = time.time() - t0
    m = g.memory()
    r = rows(g.data)
    out = {
        "scenario": f"a: {n} distinct MQTT device topics ({label})",
        "published": acked,
        "seconds": round(secs, 1),
        "idle_rss_mb": round(idle["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(m["VmHWM"] / 1024, 1),
        "end_rss_mb": round(m["VmRSS"] / 1024, 1),
        "journal_mb": round(journal_bytes(g.data) / 1e6, 2),
        "rows": r,
        "table_bytes": table_bytes(g.data),
        "log_cap_lines": g.log_text().count("reached max_unregistered_devices"),
    }
    g.stop()
    broker.stop()
    return out, dir


def scenario_b(bin, base, secs, extra, label):
    dir = tempfile.mkdtemp(prefix=f"b-{label}-", dir=base)
    port = free_port()
    g = Gateway(bin, dir, config(dir, extra, dc09_port=port))
    idle = g.memory()
    sockets = []
    for i in range(2, 202):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.0.{i}", 0))
        sockets.append(s)
    rnd = random.Random(11)
    garbage = [bytes(rnd.getrandbits(8) for _ in range(512)) for _ in range(64)]
    sent = 0
    t0 = time.time()
    while time.time() - t0 < secs:
        for s in sockets:
            try:
                s.sendto(garbage[sent % 64], ("127.0.0.1", port))
                sent += 1
            except OSError:
                pass
        time.sleep(0.01)
    time.sleep(3)
    m = g.memory()
    r = rows(g.data)
    out = {
        "scenario": f"b: UDP garbage from 200 addresses for {secs} s ({label})",
        "datagrams": sent,
        "idle_rss_mb": round(idle["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(m["VmHWM"] / 1024, 1),
        "end_rss_mb": round(m["VmRSS"] / 1024, 1),
        "journal_mb": round(journal_bytes(g.data) / 1e6, 2),
        "rows": r,
        "table_bytes": table_bytes(g.data),
    }
    g.stop()
    return out


def api_get(url, path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer hostile-bench-token"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def metric(url, name):
    text = api_get(url, "/metrics").decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def scenario_c(bin, base, n, hold):
    dir = tempfile.mkdtemp(prefix="c-", dir=base)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    g = Gateway(bin, dir, config(dir, api_port=port))
    idle = g.memory()
    conns = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        conns.append(s)
    t0 = time.time()
    peak_fds = 0
    while time.time() - t0 < hold:
        peak_fds = max(peak_fds, fds(g.proc.pid))
        time.sleep(0.5)
    m = g.memory()
    for s in conns:
        s.close()
    time.sleep(1)
    capped = metric(url, "atgw_api_connections_capped_total")
    out = {
        "scenario": f"c: {n} idle API connections held {hold} s (max_connections 256)",
        "opened": len(conns),
        "idle_rss_mb": round(idle["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(m["VmHWM"] / 1024, 1),
        "end_rss_mb": round(m["VmRSS"] / 1024, 1),
        "atgw_peak_fds": peak_fds,
        "journal_mb": round(journal_bytes(g.data) / 1e6, 2),
        "capped_metric": capped,
        "log_cap_lines": g.log_text().count("max_connections ("),
        "rows": rows(g.data),
    }
    g.stop()
    return out


def scenario_d(bin, a_dir, label, secs, clients=10):
    """Reuses scenario a's data dir (its devices table) with the API on."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = os.path.join(a_dir, "state")
    text = config(a_dir, api_port=port)
    g = Gateway(bin, a_dir, text)
    idle = g.memory()
    stats = {"requests": 0, "bytes": 0, "max_body": 0, "pages_for_all": 0}
    lock = threading.Lock()
    stop = time.time() + secs

    def client():
        while time.time() < stop:
            after, pages = None, 0
            while time.time() < stop:
                path = "/api/v1/devices?limit=1000" + (
                    f"&after={urllib.parse.quote(str(after))}" if after else ""
                )
                body = api_get(url, path)
                pages += 1
                with lock:
                    stats["requests"] += 1
                    stats["bytes"] += len(body)
                    stats["max_body"] = max(stats["max_body"], len(body))
                doc = json.loads(body)
                after = doc.get("next") if isinstance(doc, dict) else None
                if not after:
                    with lock:
                        stats["pages_for_all"] = max(stats["pages_for_all"], pages)
                    break

    ts = [threading.Thread(target=client) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    m = g.memory()
    out = {
        "scenario": f"d: /api/v1/devices, {clients} clients for {secs} s ({label})",
        "devices_in_journal": query(data, "SELECT count(*) FROM devices"),
        "idle_rss_mb": round(idle["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(m["VmHWM"] / 1024, 1),
        "end_rss_mb": round(m["VmRSS"] / 1024, 1),
        **stats,
    }
    g.stop()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/atgw"))
    ap.add_argument("--only", default="a,b,c,d")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = ap.parse_args()
    only = set(args.only.split(","))
    div = 10 if args.quick else 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    base = tempfile.mkdtemp(prefix="hostile-", dir=os.path.join(REPO, "target"))
    results = []

    def report(r):
        print("HOSTILE " + json.dumps(r), flush=True)
        results.append(r)

    a_dirs = {}
    if "a" in only or "d" in only:
        for label, extra in [
            ("default cap 1000", ""),
            ("cap 1000000", "\n[journal]\nmax_unregistered_devices = 1000000\n"),
        ]:
            try:
                r, d = scenario_a(args.bin, base, 50_000 // div, extra, label)
            except RuntimeError as e:  # e.g. a binary without the key
                print(f"scenario a ({label}) not run: {str(e)[:300]}", file=sys.stderr)
                continue
            a_dirs[label] = d
            if "a" in only:
                report(r)
    if "b" in only:
        for label, extra in [
            ("default max_dead_letters 10000", ""),
            ("max_dead_letters 1000000", "\n[journal]\nmax_dead_letters = 1000000\n"),
        ]:
            report(scenario_b(args.bin, base, 30 // (3 if args.quick else 1), extra, label))
    if "c" in only:
        n = min(20_000 // div, hard - 100)
        report(scenario_c(args.bin, base, n, 10))
    if "d" in only:
        for label, d in a_dirs.items():
            report(scenario_d(args.bin, d, label, 10))
    print()
    for r in results:
        print(
            f"{r['scenario']}: peak RSS {r['peak_rss_mb']} MB (idle {r['idle_rss_mb']} MB), "
            f"journal {r.get('journal_mb', '-')} MB, "
            + ", ".join(f"{k} {v}" for k, v in r.get("rows", {}).items() if v not in (0, "0", None))
        )
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
