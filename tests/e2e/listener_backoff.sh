#!/usr/bin/env bash
# listener_backoff.sh - how the master replaces listener processes that die (the rule in
# master/supervise.c's header comment): a process killed from outside while it serves
# (SIGKILL by PID, as an operator's script or the OOM killer would) is replaced at once,
# every time, with no back-off growing across the kills; a process that crashes young of
# its own fault (SIGSEGV) is a crash loop: each replacement waits longer (100, 200, 400,
# 800 ms), and the listener serves again after it.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-lbo-$$
ulimit -c 0 # the crash loop below dumps no core

lport=$(peer_free_port 127.0.0.1)
cat >"$T/sluice.ini" <<INI
[global]
workers = 1
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log

[listener "solo"]
address = 127.0.0.1:$lport
max_sessions = 1
INI

"$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
daemon=$!
started "$daemon"
solo_pid() { ps -o pid=,args= --ppid "$daemon" | awk '/sluiced: listener solo/ {print $1}'; }
# greeting_ms [SINCE]: connect now and wait for the 220; prints the milliseconds from SINCE
# ($EPOCHREALTIME; default: now) to the 220 ("none": no 220)
greeting_ms() {
  python3 - "$lport" "${1:-$EPOCHREALTIME}" <<'PY'
import socket, sys, time
t0 = float(sys.argv[2])
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
    s.settimeout(15)
    line = s.recv(512)
    s.sendall(b"QUIT\r\n")
    print(int((time.time() - t0) * 1000) if line.startswith(b"220") else "none")
except OSError:
    print("none")
PY
}
serves() { [ "$(greeting_ms)" != none ]; }
check "the listener's one process serves" wait_for 10 serves

# --- SIGKILL of the serving process, six times in a row: replaced at once each time ---
# (before the rule, each kill of a process younger than 5 s doubled the wait: 100 ms ... 3.2 s)
for round in 1 2 3 4 5 6; do
  old=$(solo_pid)
  t0=$EPOCHREALTIME
  kill -KILL "$old"
  ms=$(greeting_ms "$t0")
  new=$(solo_pid)
  check "kill -9 #$round of pid $old: a new process ($new) greets within 1 s (${ms} ms)" \
    eval '[ "$ms" != none ] && [ "$ms" -lt 1000 ] && [ -n "$new" ] && [ "$new" != "$old" ]'
done
check "the master logs each kill" \
  [ "$(grep -c 'listener pid [0-9]* killed by signal 9' "$T/daemon.log")" -eq 6 ]
check "and no back-off for them" eval '! grep -q "listener processes keep dying" $T/daemon.log'

# --- a crash loop: SIGSEGV right after each start backs off, doubling ---
for round in 1 2 3 4; do
  wait_for 10 serves
  kill -SEGV "$(solo_pid)"
done
backoffs() { sed -n 's/.*listener processes keep dying: next start in \([0-9]*\) ms.*/\1/p' "$T/daemon.log"; }
wait_for 5 eval '[ "$(backoffs | wc -l)" -ge 4 ]' # the master reaps the last one after our kill
waits=$(backoffs | tr '\n' ' ')
check "a crash loop backs off, doubling each time (${waits}ms)" [ "$waits" = "100 200 400 800 " ]
check "after the back-off the listener serves again" wait_for 10 serves
check "a serving process killed from outside after the crash loop is replaced at once" \
  eval 't0=$EPOCHREALTIME; kill -KILL "$(solo_pid)"; ms=$(greeting_ms "$t0"); [ "$ms" != none ] && [ "$ms" -lt 1000 ]'
check "the master survived all of it" alive "$daemon"

kill -TERM "$daemon"
wait "$daemon"
check "sluiced stops cleanly (exit 0)" [ $? -eq 0 ]
echo "1..$_n"
