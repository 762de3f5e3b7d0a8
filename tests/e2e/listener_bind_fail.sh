#!/usr/bin/env bash
# listener_bind_fail.sh - a reload that adds a listener whose address cannot be bound (the
# port is taken): the master warns, the other listener serves on, and the master idles (it
# used to wait for that listener's processes with a zero timeout, spinning a core).  Then a
# start with that listener in the config: it fails (exit 1, one line), and leaves no counter
# table in /dev/shm (a start that failed after creating it used to leave it).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/listener.sh"
shm=/sluice-e2e-lbf-$$

python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(120)' >"$T/taken.port" &
taker=$!
started "$taker"
wait_for 5 test -s "$T/taken.port"
taken=$(cat "$T/taken.port")
listener_start a
check "listener a serves" wait_for 10 listener_serves a
printf '\n[listener "b"]\naddress = 127.0.0.1:%s\nmax_sessions = 1\n' "$taken" >>"$T/sluice.ini"
kill -HUP "$daemon"
check "the reload warns that b cannot listen" \
  wait_for 10 grep -q "listener b: cannot listen on 127.0.0.1:$taken" "$T/daemon.log"
check "the reload took effect" wait_for 10 grep -q "config generation 2" "$T/daemon.log"
# cpu: the master's user+system time in clock ticks
cpu() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
sleep 0.5
t1=$(cpu)
sleep 2
t2=$(cpu)
hz=$(getconf CLK_TCK)
check "the master idles meanwhile ($((t2 - t1)) ticks of $((2 * hz)) in 2 s)" \
  [ $((t2 - t1)) -lt $((hz / 5)) ]
check "listener a still serves" listener_serves a

kill -TERM "$daemon"
wait "$daemon"
check "sluiced stops cleanly (exit 0)" [ $? -eq 0 ]

"$SLUICED" -c "$T/sluice.ini" 2>"$T/start.log"
rc=$?
check "a start with b in the config fails (exit $rc)" test "$rc" -eq 1
check "with one line naming the address" \
  grep -q "listener b: cannot listen on 127.0.0.1:$taken" "$T/start.log"
check "and leaves no counter table behind" test ! -e "/dev/shm$shm"
echo "1..$_n"
