#!/usr/bin/env bash
# listener_backoff_each.sh - each listener has its own crash-loop back-off (master/listeners.c):
# while the processes of one listener crash young again and again (SIGSEGV by PID, as a key
# file a reload made unreadable would), another listener's processes are replaced as their
# own record says: one killed from outside at once, one that crashes young once after 100 ms,
# not after the other listener's grown wait.  And the other listener's deaths do not reset
# the crash loop's back-off: it keeps doubling.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-lbe-$$
ulimit -c 0 # the crash loop below dumps no core

cport=$(peer_free_port 127.0.0.1)
sport=$(peer_free_port 127.0.0.1)
while [ "$sport" = "$cport" ]; do sport=$(peer_free_port 127.0.0.1); done
cat >"$T/sluice.ini" <<INI
[global]
workers = 1
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log

[listener "crashy"]
address = 127.0.0.1:$cport
max_sessions = 1

[listener "steady"]
address = 127.0.0.1:$sport
max_sessions = 1
INI

"$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
daemon=$!
started "$daemon"
# pid_of NAME: the process of that listener
pid_of() { ps -o pid=,args= --ppid "$daemon" | awk -v n="sluiced: listener $1" 'index($0, n) {print $1}'; }
# greeting_ms PORT [SINCE]: connect now and wait for the 220; prints the milliseconds from
# SINCE ($EPOCHREALTIME; default: now) to the 220 ("none": no 220)
greeting_ms() {
  python3 - "$1" "${2:-$EPOCHREALTIME}" <<'PY'
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
serves() { [ "$(greeting_ms "$1")" != none ]; }
# backoffs NAME: the waits the master logged for that listener, in order
backoffs() {
  sed -n "s/.*listener processes keep dying: next start in \([0-9]*\) ms (listener $1)/\1/p" \
    "$T/daemon.log" | tr '\n' ' '
}
check "listener crashy serves" wait_for 10 serves "$cport"
check "listener steady serves" wait_for 10 serves "$sport"

# --- crashy crash-loops: every process of it is SIGSEGVed as soon as it is there ---
crash_loop() {
  while :; do
    p=$(pid_of crashy)
    [ -n "$p" ] && kill -SEGV $p 2>/dev/null
    sleep 0.05
  done
}
crash_loop &
looper=$!
started "$looper"
wait_for 10 eval '[ "$(backoffs crashy | wc -w)" -ge 4 ]'
check "crashy backs off (waits so far: $(backoffs crashy)ms)" eval '[ "$(backoffs crashy | wc -w)" -ge 4 ]'

# steady's process killed from outside meanwhile: replaced at once
old=$(pid_of steady)
t0=$EPOCHREALTIME
kill -KILL "$old"
ms=$(greeting_ms "$sport" "$t0")
check "steady's process killed from outside during crashy's crash loop greets again within 1 s (${ms} ms)" \
  eval '[ "$ms" != none ] && [ "$ms" -lt 1000 ] && [ "$(pid_of steady)" != "$old" ]'

# steady's young process crashes once, while crashy's wait has grown past 1 s: steady waits
# its own first step (100 ms), not crashy's
sleep 3
t0=$EPOCHREALTIME
kill -SEGV "$(pid_of steady)"
ms=$(greeting_ms "$sport" "$t0")
check "steady's young process crashing once is replaced after its own back-off, within 1 s (${ms} ms)" \
  eval '[ "$ms" != none ] && [ "$ms" -lt 1000 ]'
check "the master logs steady's own first step" \
  eval '[ "$(backoffs steady)" = "100 " ]'

kill "$looper"
wait "$looper" 2>/dev/null
waits=$(backoffs crashy)
doubling="100 200 400 800 1600 3200 6400 10000 10000 10000 "
check "crashy's back-off kept doubling through steady's deaths (${waits}ms)" \
  eval '[ "${doubling#"$waits"}" != "$doubling" ]'
check "after its crash loop crashy serves again" wait_for 15 serves "$cport"
check "the master survived all of it" alive "$daemon"

kill -TERM "$daemon"
wait "$daemon"
check "sluiced stops cleanly (exit 0)" [ $? -eq 0 ]
echo "1..$_n"
