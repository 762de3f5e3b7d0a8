#!/usr/bin/env bash
# ctl_stuck.sh - sluicectl never waits for ever on a daemon that reads no request: the master
# is stopped (SIGSTOP) and its control socket's queue filled, so a send would block; suspend
# (and every command that asks the daemon) gives up after its answer's wait with one line on
# stderr and exit 1, and the daemon, resumed, answers again.
. "$(dirname "$0")/lib/tap.sh"

shm=/sluice-e2e-stuck-$$
ini_global 1 >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }

sluiced_stopped
# fill_queue: datagrams to the control socket until the kernel refuses one (its queue is full)
filled=$(python3 - "$T/spool/control.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
n = 0
try:
    while n < 100000:
        s.sendto(b"L", socket.MSG_DONTWAIT, sys.argv[1])
        n += 1
except BlockingIOError:
    pass
print(n)
PY
)
check "the stopped master's socket queue is full ($filled datagrams)" test "$filled" -gt 0 -a "$filled" -lt 100000
t0=$(date +%s)
timeout 60 "$SLUICECTL" -c "$T/sluice.ini" suspend --domain stuck.test >"$T/out" 2>"$T/err"; rc=$?
t1=$(date +%s)
check "suspend gives up by itself, exit 1 (rc $rc, $((t1 - t0)) s; 124 would be the test's timeout)" \
  test "$rc" -eq 1
check "saying the daemon took no request" grep -q 'took no request within 10 s' "$T/err"
check "in one line" test "$(wc -l <"$T/err")" -eq 1
kill -CONT "$daemon"
check "the daemon, resumed, answers again: it takes a suspension" \
  eval 'ctl suspend --domain later.test | grep -q "^OK"'
check "and holds none it was not asked for" eval '! ctl suspended | grep -q stuck.test'
echo "1..$_n"
