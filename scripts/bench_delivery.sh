#!/usr/bin/env bash
# bench_delivery.sh - the delivery benchmark (end of make bench): bench_delivery.sh BENCHDIR
#
# Drains a queue of N messages of 4 KB (BENCH_MESSAGES, default 10000) into smtp-sink on
# 127.0.1.1, all on loopback, and prints a table of figures (never pass/fail):
#   postfix   a private Postfix instance (defaults, relayhost = the sink): the queue is filled
#             while held (every message arrives on hold), then released and flushed; timed
#             until its queue is empty
#   sluice    sluiced with its spool filled by `sluicectl inject` while it is stopped, then
#             started; timed until spool/queue/ is empty
#   feeders   a client feeding the sink directly (smtp-source with connection reuse, and
#             BENCHDIR/bench_feed with reuse and with PIPELINING): the ceiling of the sink
# Rates are messages/s of wall time; CPU is the user+system time of the sending system's
# processes (the Postfix master and every child, reaped or live; sluiced and its workers)
# over the drain, per message.  The machine is shared, so the figure that matters is the
# ratio sluice/postfix of the same run.
#
# Everything runs in a private temp dir; every process is started here and ended by PID at
# exit (tests/e2e/lib/tap.sh's clean-up).  Needs root (Postfix's queue hands files to the
# postfix user).  A part that fails prints why; the script always exits 0.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
bench=${1:?usage: bench_delivery.sh BENCHDIR}
export SLUICE_BIN=${SLUICE_BIN:-$root/bin}
N=${BENCH_MESSAGES:-10000}
BODY=4096
INJECT_JOBS=${BENCH_INJECT_JOBS:-8}
DRAIN_LIMIT=${BENCH_DRAIN_LIMIT:-60} # seconds before a drain is given up
WORKERS=${BENCH_WORKERS:-16}
PARTS=${BENCH_PARTS:-feeders postfix sluice} # a subset runs only those parts
# shellcheck source=../tests/e2e/lib/tap.sh
. "$root/tests/e2e/lib/tap.sh"
# shellcheck source=../tests/e2e/lib/postfix.sh
. "$root/tests/e2e/lib/postfix.sh"
# shellcheck source=../tests/e2e/lib/peer.sh
. "$root/tests/e2e/lib/peer.sh"

declare -A rate=() cpu=() note=() fill=()

# cpu_ticks PID: clock ticks of user+system time used by PID, its reaped children and every
# live descendant (a live process's reaped children are in its own cutime/cstime)
cpu_ticks() {
  python3 - "$1" <<'PY'
import os, sys
stat = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stat[int(p)] = (int(f[1]), sum(int(x) for x in f[11:15]))  # ppid; utime..cstime
def total(pid):
    return stat.get(pid, (0, 0))[1] + sum(total(c) for c, (pp, _) in stat.items() if pp == pid)
print(total(int(sys.argv[1])))
PY
}

# own_ticks PID: clock ticks of user+system time of PID alone
own_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# now: wall time in seconds (bash's EPOCHREALTIME, no fork)
now() { echo "$EPOCHREALTIME"; }
# calc EXPR: a float expression
calc() { python3 -c "print($1)"; }

# figures NAME T0 T1 TICKS: record rate and ms of CPU per message
figures() {
  local hz
  hz=$(getconf CLK_TCK)
  rate[$1]=$(calc "f'{$N / ($3 - $2):.0f}'")
  [ -n "$4" ] && cpu[$1]=$(calc "f'{$4 * 1000 / $hz / $N:.3f}'")
}

# sink_start: smtp-sink on 127.0.1.1 at a free port (PIPELINING on by default); sets SINK
sink_start() {
  local port
  port=$(peer_free_port 127.0.1.1)
  smtp-sink -u postfix -m 1000 "127.0.1.1:$port" 1000 >"$T/sink.out" 2>&1 &
  started $!
  SINK=127.0.1.1:$port
  wait_for 5 _sink_up "$port"
}
_sink_up() { python3 -c "import socket; socket.create_connection(('127.0.1.1', $1), 1)" 2>/dev/null; }

# queue_empty DIR...: no file left under any DIR (stops at the first one found)
queue_empty() { [ -z "$(find "$@" -type f -print -quit 2>/dev/null)" ]; }

# --- Postfix ------------------------------------------------------------------------------

# postfix_fill DIR PORT: N messages through the instance's smtpd, each put on hold
postfix_fill() {
  local d=$1 port=$2
  smtp-source -s 8 -m "$N" -l "$BODY" -d -f bench@sender.test -t rcpt@bench.test \
    "127.0.1.2:$port" >"$T/postfix-fill.out" 2>&1 || return 1
  wait_for 30 _postfix_held "$d"
}
_postfix_held() { [ "$(find "$1/queue/hold" -type f | wc -l)" -ge "$N" ]; }

bench_postfix() {
  local port d master t0 t1 c0 c1 sent f0
  port=$(peer_free_port 127.0.1.2)
  if ! postfix_relay_start 127.0.1.2 "$port" "${SINK%:*}" "${SINK#*:}" \
    "smtpd_recipient_restrictions = check_client_access static:HOLD" \
    "smtp_bind_address = 127.0.0.3" >"$T/postfix-start.out" 2>&1; then
    note[postfix]="did not start: $(tail -1 "$T/postfix-start.out")"
    return
  fi
  d=$POSTFIX_DIR
  master=${_postfix_pid[$d]} # the instance's master (postfix.sh keeps it by directory)
  f0=$(now)
  if ! postfix_fill "$d" "$port"; then
    note[postfix]="queue not filled: $(tail -1 "$T/postfix-fill.out")"
    return
  fi
  fill[postfix]=$(calc "f'{$(now) - $f0:.1f}'")
  # released mail waits in deferred/ for the next queue run: the flush starts the drain
  postsuper -c "$d/etc" -H ALL >/dev/null 2>&1
  c0=$(cpu_ticks "$master")
  t0=$(now)
  postqueue -c "$d/etc" -f >/dev/null 2>&1
  if ! wait_for "$DRAIN_LIMIT" queue_empty "$d/queue/hold" "$d/queue/incoming" \
    "$d/queue/active" "$d/queue/deferred"; then
    note[postfix]="not drained in ${DRAIN_LIMIT}s"
    return
  fi
  t1=$(now)
  c1=$(cpu_ticks "$master")
  figures postfix "$t0" "$t1" $((c1 - c0))
  sent=$(grep -c 'status=sent' "$(postfix_log "$d")")
  [ "$sent" -eq "$N" ] || note[postfix]="$sent of $N logged as sent"
  postfix_stop "$d"
}

# --- sluice -------------------------------------------------------------------------------

# sluice_conf DIR: a config that routes bench.test to the sink, no DNS
sluice_conf() {
  cat <<EOF
[global]
workers = $WORKERS
spool_dir = $1/spool
shm_name = /sluice-bench-$$
delivery_log = $1/delivery.log
max_outbound_connections = 64
server_max_outbound_connections = 1000
server_reserve_outbound_connections = 0
tls = disabled

[binding "bench"]
bind_address = 127.0.0.2

[domain "bench.test"]
route = $SINK
max_outbound_connections = 64
max_deliveries_per_connection = 1000
EOF
}

# sluice_message: one message of BODY bytes of text in 76-character lines
sluice_message() {
  python3 - "$BODY" <<'PY'
import sys
n = int(sys.argv[1])
out = ["From: <bench@sender.test>", "To: <rcpt@bench.test>", "Subject: bench", ""]
while n > 0:
    k = min(76, max(n - 2, 0))
    out.append("x" * k)
    n -= k + 2
sys.stdout.write("\r\n".join(out) + "\r\n")
PY
}

# sluice_fill CONF: N messages injected with the daemon stopped, INJECT_JOBS at a time
sluice_fill() {
  local conf=$1 msg=$T/sluice-msg.eml
  sluice_message >"$msg"
  seq "$N" | xargs -P "$INJECT_JOBS" -n 100 sh -c '
    conf=$1 msg=$2 ctl=$3; shift 3
    for i; do "$ctl" -c "$conf" inject --binding bench -f bench@sender.test rcpt@bench.test \
      <"$msg" >/dev/null || exit 255; done' sh "$conf" "$msg" "$SLUICECTL" \
    2>"$T/sluice-fill.err" || return 1
  [ "$(find "$T/sluice/spool/queue" -type f | wc -l)" -eq "$N" ]
}

bench_sluice() {
  local d=$T/sluice conf pid t0 t1 c1 left delivered f0 master_ticks
  [ -x "$SLUICED" ] && [ -x "$SLUICECTL" ] || { note[sluice]="no $SLUICED"; return; }
  mkdir -p "$d"
  conf=$d/sluice.ini
  sluice_conf "$d" >"$conf"
  if ! "$SLUICECTL" -c "$conf" config check >"$d/check.out" 2>&1; then
    note[sluice]="config refused: $(head -1 "$d/check.out")"
    return
  fi
  f0=$(now)
  if ! sluice_fill "$conf"; then
    note[sluice]="inject failed: $(head -1 "$T/sluice-fill.err")"
    return
  fi
  fill[sluice]=$(calc "f'{$(now) - $f0:.1f}'")
  t0=$(now)
  "$SLUICED" -c "$conf" >"$d/sluiced.out" 2>&1 &
  pid=$!
  started "$pid"
  wait_for "$DRAIN_LIMIT" _sluice_done "$d/spool/queue" "$pid"
  t1=$(now)
  if ! alive "$pid"; then
    note[sluice]="sluiced exited: $(tail -1 "$d/sluiced.out")"
    return
  fi
  if ! queue_empty "$d/spool/queue"; then
    left=$(find "$d/spool/queue" -type f | wc -l)
    note[sluice]="not drained in ${DRAIN_LIMIT}s: $left of $N messages left; log: $(tail -1 "$d/sluiced.out")"
    _sluice_stop "$pid"
    return
  fi
  c1=$(cpu_ticks "$pid")
  master_ticks=$(own_ticks "$pid")
  figures sluice "$t0" "$t1" "$c1"
  figures sluice-master "$t0" "$t1" "$master_ticks"
  rate[sluice-master]=
  delivered=$(grep -c '"delivered"' "$d/delivery.log" 2>/dev/null)
  [ "${delivered:-0}" -eq "$N" ] || note[sluice]="${delivered:-0} of $N logged as delivered"
  _sluice_stop "$pid"
}
# _sluice_done QUEUE PID: the queue is empty or sluiced is gone
_sluice_done() { ! alive "$2" || queue_empty "$1"; }
_sluice_stop() {
  kill -TERM "$1" 2>/dev/null
  wait_for 10 eval '! alive '"$1"
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# --- feeders ------------------------------------------------------------------------------

bench_feeders() {
  local t0 t1 out
  t0=$(now)
  if smtp-source -s 8 -m "$N" -l "$BODY" -d -f bench@sender.test -t rcpt@bench.test "$SINK" \
    >"$T/source.out" 2>&1; then
    t1=$(now)
    figures smtp-source "$t0" "$t1" ""
  else
    note[smtp-source]="failed: $(tail -1 "$T/source.out")"
  fi
  if [ ! -x "$bench/bench_feed" ]; then
    note[feed]="no $bench/bench_feed"
    return
  fi
  if out=$("$bench/bench_feed" -s 8 -m "$N" -l "$BODY" "$SINK" 2>&1); then
    rate[feed]=${out##* }
  else
    note[feed]="failed: $out"
  fi
  if out=$("$bench/bench_feed" -p -s 8 -m "$N" -l "$BODY" "$SINK" 2>&1); then
    rate[feed-pipelining]=${out##* }
  else
    note[feed-pipelining]="failed: $out"
  fi
}

# --- report -------------------------------------------------------------------------------

row() {
  printf '  %-34s %10s %12s  %s\n' "$2" "${rate[$1]:--}" "${cpu[$1]:--}" "${note[$1]:-}"
}

ratio() {
  local s=sluice p=postfix
  [ -n "${rate[$s]:-}" ] && [ -n "${rate[$p]:-}" ] &&
    echo "  drain rate, sluice/postfix:       $(calc "f'{${rate[$s]} / ${rate[$p]}:.2f}'")x (target 10x)"
  [ -n "${cpu[$s]:-}" ] && [ -n "${cpu[$p]:-}" ] && [ "${cpu[$s]}" != 0.000 ] &&
    echo "  CPU per message, postfix/sluice:  $(calc "f'{${cpu[$p]} / ${cpu[$s]}:.2f}'")x"
  [ -n "${rate[$s]:-}" ] && [ -n "${rate[feed-pipelining]:-}" ] &&
    echo "  sluice/pipelined feeder rate:     $(calc "f'{${rate[$s]} / ${rate[feed-pipelining]}:.2f}'")"
  return 0
}

report() {
  echo "bench_delivery: $N messages of ${BODY} bytes into smtp-sink on loopback ($(nproc) cores)"
  printf '  %-34s %10s %12s\n' "" "msg/s" "CPU ms/msg"
  row postfix "postfix drain (defaults)"
  row sluice "sluice drain ($WORKERS workers)"
  row sluice-master "  of which the master process"
  row smtp-source "smtp-source -d, 8 sessions"
  row feed "bench_feed, reuse, 8 sessions"
  row feed-pipelining "bench_feed, pipelining, 8 sessions"
  ratio
  [ -z "${fill[postfix]:-}${fill[sluice]:-}" ] ||
    echo "  filling the queue (not timed above): postfix ${fill[postfix]:--} s by SMTP," \
      "sluice ${fill[sluice]:--} s by sluicectl inject ($INJECT_JOBS at a time)"
}

main() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench_delivery: needs root (a private Postfix queue); skipped"
    return
  fi
  command -v smtp-sink >/dev/null || { echo "bench_delivery: no smtp-sink (postfix); skipped"; return; }
  if ! sink_start; then
    echo "bench_delivery: smtp-sink did not start: $(cat "$T/sink.out")"
    return
  fi
  local part
  for part in $PARTS; do "bench_$part"; done
  report
}

main
exit 0
