# listener.sh - a daemon with SMTP listeners on loopback, as the listener tests start it, and
# what they ask of it: does a listener greet, how long until it does, which process serves it.
# Source it after tap.sh and peer.sh (the ports come from peer_free_port).
#
#   listener_start NAME...
#       Write $T/sluice.ini (one worker, shm_name $shm, spool and delivery log in $T) with one
#       [listener "NAME"] per NAME, each on 127.0.0.1 on a port of its own free right now, with
#       max_sessions = $listener_sessions (1 unless set); start sluiced on it (stdout and stderr into $T/daemon.log) and set
#       daemon to its pid.  It does not wait for the listeners: poll listener_serves.
#   listener_port NAME           the listener's port
#   listener_greeting_ms NAME [SINCE]
#       Connect now and wait for the 220 (15 s at most); print the milliseconds from SINCE
#       ($EPOCHREALTIME; default: now) to the 220, or "none" when none came.  SINCE before a
#       kill measures how long the listener was out of service.
#   listener_serves NAME         exit 0 when the listener greets with a 220 (for check / wait_for)
#   listener_pid NAME            the pid of the listener's process (none printed when it has
#       none right now), from the daemon's children's titles
#   listener_backoffs NAME       the crash-loop waits the master logged for the listener, in
#       milliseconds, in order, each followed by a space ("100 200 ")

declare -A _listener_port=()

listener_port() { echo "${_listener_port[$1]}"; }

listener_start() {
  local name port
  cat >"$T/sluice.ini" <<INI
[global]
workers = 1
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
INI
  for name in "$@"; do
    port=$(peer_free_port 127.0.0.1)
    # a port is free until taken: two listeners asked in a row could be given the same one
    while [[ " ${_listener_port[*]} " == *" $port "* ]]; do port=$(peer_free_port 127.0.0.1); done
    _listener_port[$name]=$port
    printf '\n[listener "%s"]\naddress = 127.0.0.1:%s\nmax_sessions = %s\n' "$name" "$port" \
      "${listener_sessions:-1}" >>"$T/sluice.ini"
  done
  "$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
  daemon=$!
  started "$daemon"
}

listener_greeting_ms() {
  python3 - "$(listener_port "$1")" "${2:-$EPOCHREALTIME}" <<'PY'
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

listener_serves() { [ "$(listener_greeting_ms "$1")" != none ]; }

listener_pid() {
  ps -o pid=,args= --ppid "$daemon" | awk -v t="sluiced: listener $1 (" 'index($0, t) {print $1}'
}

listener_backoffs() {
  sed -n "s/.*listener processes keep dying: next start in \([0-9]*\) ms (listener $1)/\1/p" \
    "$T/daemon.log" | tr '\n' ' '
}
