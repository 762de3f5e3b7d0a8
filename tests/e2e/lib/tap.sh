# tap.sh - helpers for the end-to-end tests: TAP lines, waiting, clean-up.
# Source it; it sets $T (a private temp dir) and ends only the processes the
# test started, by PID, on exit (a stopped one is woken first, to take its SIGTERM).
set -u
SLUICED=${SLUICE_BIN:?}/sluiced
SLUICECTL=${SLUICE_BIN:?}/sluicectl
T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-e2e.XXXXXX")
_n=0
_failed=0
_pids=()

ok() { _n=$((_n + 1)); echo "ok $_n - $*"; }
not_ok() { _n=$((_n + 1)); _failed=$((_failed + 1)); echo "not ok $_n - $*"; }
# check DESCRIPTION COMMAND...: ok when the command succeeds
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# wait_for SECONDS COMMAND...: poll every 50 ms until the command succeeds
wait_for() {
  local limit=$(($1 * 20)) i=0; shift
  until "$@"; do i=$((i + 1)); [ $i -ge $limit ] && return 1; sleep 0.05; done
}
# started PID: remember a process to end at exit
started() { _pids+=("$1"); }
alive() { kill -0 "$1" 2>/dev/null; }
children_of() { ps -o pid= --ppid "$1" | tr -d ' '; }
# sluiced_start: the daemon on $T/sluice.ini, its stderr added to $T/daemon.log; sets daemon
sluiced_start() {
  "$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
  daemon=$!
  started "$daemon"
}
# sluiced_stopped: the daemon started as sluiced_start, checked ready, then stopped (SIGSTOP),
# so that its control socket goes unread while the test works on sluicectl
sluiced_stopped() {
  sluiced_start
  check "the daemon is ready" wait_for 10 grep -q 'info: ready:' "$T/daemon.log"
  kill -STOP "$daemon"
}
# ini_global WORKERS: the [global] head of a test's config (WORKERS workers, the counter
# table $shm, spool and delivery log in $T); the test's own settings follow it
ini_global() {
  printf '[global]\nworkers = %s\nshm_name = %s\nspool_dir = %s\ndelivery_log = %s\n' \
    "$1" "$shm" "$T/spool" "$T/delivery.log"
}

# show_logs: after a failed check, the end of each log the test's daemons wrote in $T, as
# TAP comments: a failure in CI, where $T is gone, says what the daemon did meanwhile
show_logs() {
  local f
  for f in "$T"/*.log; do
    [ -s "$f" ] || continue
    echo "# ${f#"$T"/}, its last lines:"
    tail -n 8 "$f" | cut -c1-240 | sed 's/^/#   /'
  done
}

cleanup() {
  local rc=$? p # first: the script's exit status (one that died without a "not ok" failed too)
  [ "$_failed" -eq 0 ] && [ "$rc" -eq 0 ] || show_logs
  for p in "${_pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
  sleep 0.2
  for p in "${_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

# notify_listener FILE: a datagram socket that appends what systemd would get
notify_listener() {
  local sock=$T/notify.sock out=$1
  python3 -u - "$sock" "$out" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        msg = s.recv(4096).decode()
        for line in msg.split("\n"):
            f.write(line + "\n")
PY
  started $!
  wait_for 5 test -S "$sock"
  export NOTIFY_SOCKET=$sock
}
