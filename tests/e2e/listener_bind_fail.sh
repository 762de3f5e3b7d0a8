#!/usr/bin/env bash
# listener_bind_fail.sh - a reload that adds a listener whose address cannot be bound (the
# port is taken): the master warns, the other listener serves on, and the master idles (it
# used to wait for that listener's processes with a zero timeout, spinning a core).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-lbf-$$

aport=$(peer_free_port 127.0.0.1)
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
cat >"$T/sluice.ini" <<INI
[global]
workers = 1
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log

[listener "a"]
address = 127.0.0.1:$aport
max_sessions = 1
INI

"$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
daemon=$!
started "$daemon"
greets() { python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.settimeout(5)
    ok = s.recv(512).startswith(b"220")
    s.sendall(b"QUIT\r\n")
    sys.exit(0 if ok else 1)
except OSError:
    sys.exit(1)
PY
}
check "listener a serves" wait_for 10 greets "$aport"
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
check "listener a still serves" greets "$aport"

kill -TERM "$daemon"
wait "$daemon"
check "sluiced stops cleanly (exit 0)" [ $? -eq 0 ]
echo "1..$_n"
