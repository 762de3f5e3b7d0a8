#!/usr/bin/env bash
# drain_wait.sh - SIGTERM while a session waits on a receiver that does not answer: the master
# waits for its worker (up to the drain's grace: the longest phase timeout plus 5 s, here 35 s)
# without spinning, asleep until a worker speaks, a signal comes or the grace ends, and a
# SIGHUP (a reload, by a script that does not know the daemon stops) does not wake it for
# good; a second SIGTERM ends the wait at once, and the message stays queued for the next
# start.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

# the greeting comes only after 60 s: the session outlasts the part of the drain we watch
peer_start mx '{"stall": {"greeting": 60}}' 127.0.1.1
shm=/sluice-e2e-drainwait-$$
{
  ini_global 2
  cat <<INI
tls = disabled
greeting_timeout = 30s

[binding "b1"]
bind_address = 127.0.0.2

[domain "slow.test"]
route = 127.0.1.1:$(peer_port mx)
INI
} >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
up() { ctl counters >/dev/null 2>&1; }
# cpu_ticks PID - user and system time of a process so far, in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon comes up" wait_for 10 up

id=$(printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test r@slow.test)
check "the message is queued" test -n "$id"
check "a worker waits for the receiver's greeting" \
  wait_for 10 peer_true mx "total['connections'] == 1"
kill -TERM "$daemon"
check "SIGTERM: the master drains" wait_for 10 grep -q "stopping: " "$T/daemon.log"
kill -HUP "$daemon"
check "a SIGHUP meanwhile is ignored, and said so" \
  wait_for 10 grep -q "SIGHUP ignored: the daemon is stopping" "$T/daemon.log"
sleep 1.5 # past the master's own timers (status, audit), each of which once kept its waits at 0
a=$(cpu_ticks "$daemon")
sleep 2
b=$(cpu_ticks "$daemon")
echo "# the master used $((b - a)) clock ticks of CPU in 2 s of draining ($(getconf CLK_TCK)/s)"
check "draining, the master sleeps while its worker waits (at most 0.2 s of CPU in 2 s)" \
  test $((b - a)) -le $(($(getconf CLK_TCK) / 5))
check "it still waits for the session" alive "$daemon"
kill -TERM "$daemon"
wait "$daemon"
check "a second SIGTERM ends the wait, exit 0" test $? -eq 0
check "the message is still queued" test -f "$T/spool/queue/$id"
