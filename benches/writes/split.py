#!/usr/bin/env python3
"""`split.py <strace output of straced.sh> <events>`: bytes atgw passed to write(2)/pwrite(2)
per file (WAL, database file = checkpoints, file sink, sockets), per event, and its syncs."""
import re, sys, collections
n = int(sys.argv[2])
bytes_ = collections.Counter(); calls = collections.Counter(); syncs = collections.Counter()
start = re.compile(r'^(\d+)\s+(\w+)\((\d+)<([^>]*)>')
resumed = re.compile(r'^(\d+)\s+<\.\.\. (\w+) resumed>')
pending = {}
def kind_of(path):
    if path.endswith('-wal'): return 'wal'
    if path.endswith('-shm'): return 'shm'
    if path.endswith('.db'): return 'db (checkpoints)'
    if path.endswith('-journal'): return 'db rollback journal (start)'
    if path.endswith('.jsonl'): return 'file sink'
    if 'socket' in path or 'TCP' in path: return 'socket'
    if 'pipe' in path or 'anon_inode' in path: return 'pipe/eventfd'
    return 'other'
def record(call, kind, ret):
    if call in ('fsync', 'fdatasync'): syncs[kind] += 1
    elif ret > 0: bytes_[kind] += ret; calls[kind] += 1
for line in open(sys.argv[1], errors='replace'):
    m = start.match(line)
    if m:
        pid, call, _, path = m.groups()
        if '<unfinished' in line:
            pending[pid] = (call, kind_of(path)); continue
        d = re.search(r'\)\s+= (-?\d+)', line)
        record(call, kind_of(path), int(d.group(1)) if d else 0)
        continue
    m = resumed.match(line)
    if m and m.group(1) in pending:
        call, kind = pending.pop(m.group(1))
        d = re.search(r'\)\s+= (-?\d+)', line)
        record(call, kind, int(d.group(1)) if d else 0)
for k in sorted(set(bytes_) | set(syncs)):
    print(f"{k:28} {bytes_[k]:>11} B {bytes_[k]/n:>7.0f} B/event {calls[k]/n:>6.2f} writes/event {syncs[k]:>6} syncs ({syncs[k]/n:.4f}/event)")
print(f"{'disk files total':28} {sum(v for k,v in bytes_.items() if k in ('wal','db (checkpoints)','file sink','shm','db rollback journal (start)')):>11} B")
