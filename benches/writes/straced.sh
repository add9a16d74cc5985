#!/bin/sh
# Stand-in for `atgw` (set ATGW_BIN to this file): traces the daemon's write and sync calls
# with strace (attached to this pid, which then execs the real binary, so the bench's pid and
# SIGTERM stay the daemon's). REAL_ATGW: the binary; TRACE_OUT: strace's output. --seccomp-bpf
# stops only on the traced calls, yet a drain still runs several times slower under it, so
# batches are larger than untraced: use it for the split, not for the totals.
strace -f --seccomp-bpf -qq -s 0 -y -e trace=write,pwrite64,writev,pwritev,fsync,fdatasync \
    -o "${TRACE_OUT:?}" -p $$ 2>/dev/null &
sleep 1
exec "${REAL_ATGW:?}" "$@"
