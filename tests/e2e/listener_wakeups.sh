#!/usr/bin/env bash
# listener_wakeups.sh - a new connection wakes one idle listener process, not all of them.
# Sixteen preforked processes wait on the one listening socket; 40 sessions, one after the
# other (greeting, QUIT), must cost the idle processes next to nothing: the context switches
# of all sixteen together stay under 8 per session.  A wait that woke every process (a
# poll of the shared socket) costs 16 per session, 15 of them only to find nothing to
# accept: with a connection per message, the listener's largest cost.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/listener.sh"
shm=/sluice-e2e-lwake-$$
sessions=40

listener_sessions=16 listener_start in
lport=$(listener_port in)
listener_pids() { ps -o pid=,args= --ppid "$daemon" | awk '/sluiced: listener/ {print $1}'; }
check "16 listener processes are preforked" wait_for 10 eval '[ "$(listener_pids | wc -l)" -eq 16 ]'
greets() {
  python3 - "$lport" "$1" <<'PY'
import socket, sys
for _ in range(int(sys.argv[2])):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.settimeout(10)
    f = s.makefile("rb")
    if not f.readline().startswith(b"220"):
        sys.exit(1)
    s.sendall(b"QUIT\r\n")
    f.readline()
    s.close()
PY
}
check "the listener greets" wait_for 10 greets 1
sleep 0.5 # every process back in its wait
switches() {
  local p total=0 n
  for p in $(listener_pids); do
    n=$(awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}' "/proc/$p/status" 2>/dev/null)
    total=$((total + ${n:-0}))
  done
  echo "$total"
}
before=$(switches)
check "$sessions sessions one after the other are served" greets "$sessions"
sleep 0.2
after=$(switches)
used=$((after - before))
echo "# context switches of the 16 listener processes over $sessions sessions: $used"
check "a connection wakes one listener process, not all sixteen ($used < $((8 * sessions)))" \
  test "$used" -lt $((8 * sessions))
echo "1..$_n"
