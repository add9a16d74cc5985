#!/usr/bin/env python3
"""Which tables and indexes the frames in a WAL belong to: `walpages.py <dir>` with `atgw.db`
and `atgw.db-wal` copied from a running daemon (steady.sh SNAP=<dir>). Counts the frames of the
WAL's current generation (since the last checkpoint reset) per b-tree, by dbstat's page owners."""
import struct, sys, sqlite3, collections, shutil, os
snap = sys.argv[1]
wal = open(os.path.join(snap, 'atgw.db-wal'), 'rb').read()
hdr = wal[:32]; psz = struct.unpack('>I', hdr[8:12])[0]; salt = hdr[16:24]
frames = []; off = 32
while off + 24 + psz <= len(wal):
    pg, commit = struct.unpack('>II', wal[off:off+8])
    if wal[off+8:off+16] != salt: break
    frames.append((pg, commit)); off += 24 + psz
# Page owners from a copy of db + wal.
tmp = os.path.join(snap, 'copy'); os.makedirs(tmp, exist_ok=True)
shutil.copy(os.path.join(snap, 'atgw.db'), tmp); shutil.copy(os.path.join(snap, 'atgw.db-wal'), tmp)
c = sqlite3.connect(os.path.join(tmp, 'atgw.db'))
owner = dict(c.execute("SELECT pageno, name FROM dbstat"))
commits = sum(1 for f in frames if f[1])
cnt = collections.Counter(owner.get(pg, 'freelist/ptrmap/header' if pg > 1 else 'header (page 1)') for pg, _ in frames)
print(f"{len(frames)} frames, {commits} commits, {len(frames)/max(commits,1):.1f} frames/commit")
for k, v in cnt.most_common(): print(f"  {k:32} {v:6} {v/max(commits,1):5.2f}/commit")
