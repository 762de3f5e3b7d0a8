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
#   domains   the many-domain drain, one row per BENCH_DOMAIN_ROWS entry
#             SHAPE:LIMIT[:RTT[:PER]] (default "1:4 100:4 1:20 100:20 1000:20 100mx2:20 100:4:20
#             1:4:0:1 100:4:0:1"): N messages spread evenly
#             over SHAPE domains; with RTT, the receiver is RTT ms away (bench_sink -d: each
#             batch of replies leaves RTT ms late, so every round trip costs RTT more, as with
#             a real receiver on the internet; its ceilings are fed N/10 messages)
#             (d0000.bench.test ...; message i to domain i mod SHAPE), drained by sluiced
#             (BENCH_DOMAIN_WORKERS workers, default 32) with server_max_outbound_connections =
#             LIMIT and server_reserve_outbound_connections = 0, and by a private Postfix with
#             default_process_limit, default_ and smtp_destination_concurrency_limit = LIMIT
#             and smtp_connection_cache_on_demand = no, so that its open connections are its
#             at most LIMIT smtp processes; with BENCH_POSTFIX_CACHED=1 (the default) a second
#             Postfix drain ("pf+cache") keeps Postfix's default connection cache, whose idle
#             connections stay open beyond LIMIT.  Each is timed from its start (sluiced
#             started, Postfix's queue released) to the last message's final dot at the
#             receiver, as bench_sink clocks it (a drain of 10,000 at 30,000/s takes a third of
#             a second: the 50 ms step of the poll that waits for the empty queue would be a
#             sixth of it); sluice's spool is filled once per domain count and copied for each
#             row; Postfix's queue is filled on hold through its smtpd with bench_feed -d and
#             released.  Each domain has a
#             receiver of its own: one port of bench_sink on 127.0.1.1 per domain (sluice:
#             `route`; Postfix: transport_maps to [127.0.1.1]:PORT, so it too sees SHAPE
#             destinations).  SHAPEmx2: SHAPE domains that share two MX hosts, 127.0.1.1 and
#             127.0.1.2 (one bench_sink on both), published by nsd on 127.0.0.53:53 (MX records;
#             sluice: dns_server, smtp_port; Postfix: DNS through a resolv.conf bind-mounted in a
#             private mount namespace, transport_maps DOMAIN:PORT, so each domain is still its
#             own destination).  Per row: msgs/s of each, the ratio, the sink's ceilings in the
#             same run at LIMIT sessions (bench_feed -s LIMIT with -p and with -b 16; see
#             CHUNKING below) and each one's share of them,
#             CPU ms per message, and what the receiver saw: the peak of concurrent sessions
#             (all of them, and the most at one domain's listener or MX host), and the number
#             of connections, and sluice's rate as a share of its one-domain rate at the same
#             LIMIT and RTT (the row 1:LIMIT[:RTT], when it ran: "of 1 dom").  A drain not done in BENCH_DOMAIN_DRAIN_LIMIT seconds (default
#             60) is cut there: its rate is what was delivered by then, and the note says how
#             much and how many domains were left.  With PER, a connection carries at most PER
#             messages: sluice's max_deliveries_per_connection, the ceilings' bench_feed -c PER,
#             and pf+cache's smtp_connection_reuse_count_limit = PER - 1 (the Postfix drain
#             without its cache sends one message per connection whatever PER says; with PER 1
#             pf+cache is not run: it would be that drain again).
#   submit    N messages submitted by smtp-source over 8 and 32 sessions to sluice's listener
#             and to a private Postfix's smtpd, both delivering to bench_sink: accept and
#             end-to-end rates, latency from the durable write to the sink, CPU per message
#             (scripts/bench_listener.sh says how each is measured)
#   latency   one message every BENCH_LATENCY_INTERVAL_MS ms (default 50), BENCH_LATENCY_MESSAGES
#             of them (default 200) per row, message i to domain i mod D, one row per
#             BENCH_LATENCY_ROWS entry D:LIMIT (default "1:20 100:20 1000:20 1:4 100:4 1000:4";
#             one bench_sink port per domain, limits as in domains).  sluice: each message is
#             injected with `sluicectl inject` into a running sluiced, and its clock starts when
#             inject exits (the message is durable); Postfix: each is submitted to its smtpd
#             over one SMTP connection (python's smtplib), and its clock starts at the 250 after
#             DATA.  The clock stops at the sink's final dot, which bench_sink logs with the
#             message's Message-ID.  Prints p50, p90, p99 and max in ms (a message that had
#             not arrived 10 s after the last one was sent counts as lost: ">10s"), and the
#             peak of sessions at the sink.  Postfix has no connection cache, as in domains.
#   cluster   what a cluster lease adds to a connection (tests/bench/bench_cluster.c against a
#             private redis-server on loopback): acquire + release of one and of three cluster
#             counters, mean / p50 / p99 in µs and Redis calls per connection
#             (BENCH_CLUSTER_CONNECTIONS of them, default 20000); lease pairs per second that one
#             Redis serves to 2, 8 and 32 processes; one node's renewal round of 1,000 leases
#             over 100 counters and the Redis calls per second it costs
# The bench_sink receivers offer CHUNKING (as Postfix's smtpd and the large mailbox providers
# do), so sluice sends BDAT runs (its default chunking = on); BENCH_CHUNKING=0 offers only
# DATA.  The domains part measures the sink's ceiling both ways: "ceil DATA" (bench_feed -p,
# one round trip per message, the most a DATA client such as Postfix can get) and "ceil BDAT"
# (bench_feed -b 16, runs of 16 messages per round trip as sluice sends them); s/ceil is
# sluice's share of the BDAT one when the sink offers CHUNKING, p/ceil Postfix's of the DATA one.
# BENCH_LIMIT_SCOPE=binding puts a domains row's LIMIT on sluice's binding (its
# server_max_outbound_connections, a per-IP limit) instead of the whole server's.
# sluice's idle_timeout is its default unless BENCH_IDLE_TIMEOUT is set (e.g. 1s).  The new
# parts use tests/bench/bench_sink.c (an epoll SMTP sink that counts concurrent sessions as
# tests/peer/sink.py does and timestamps each message) rather than smtp-sink, which counts
# neither; their ceilings are measured against it too.
# Rates are messages/s of wall time; CPU is the user+system time of the sending system's
# processes (the Postfix master and every child, reaped or live; sluiced and its workers)
# over the drain, per message.  The machine is shared, so the figure that matters is the
# ratio sluice/postfix of the same run.
#
# Everything runs in a private temp dir; every process is started here and ended by PID at
# exit (tests/e2e/lib/tap.sh's clean-up).  Needs root (Postfix's queue hands files to the
# postfix user).  A part that fails prints why; the script always exits 0.  BENCH_PARTS runs
# some parts only, in its order (default: submit feeders postfix sluice domains latency
# cluster), e.g.
#   BENCH_PARTS=domains BENCH_DOMAIN_ROWS="100:4" make bench
# submit runs first: every other part deletes tens of thousands of queue files, and ext4
# without a journal then skips each inode freed in the last minutes when it allocates one, so
# for minutes every file creation (both systems' queue files before their 250) costs several
# times its usual CPU; on a journaled file system nothing changes.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
bench=${1:?usage: bench_delivery.sh BENCHDIR}
export SLUICE_BIN=${SLUICE_BIN:-$root/bin}
N=${BENCH_MESSAGES:-10000}
BODY=4096
INJECT_JOBS=${BENCH_INJECT_JOBS:-8}
DRAIN_LIMIT=${BENCH_DRAIN_LIMIT:-60} # seconds before a drain is given up
WORKERS=${BENCH_WORKERS:-16}
PARTS=${BENCH_PARTS:-submit feeders postfix sluice domains latency cluster} # a subset runs only those parts
DOMAIN_ROWS=${BENCH_DOMAIN_ROWS:-1:4 100:4 1:20 100:20 1000:20 100mx2:20 100:4:20 1:4:0:1 100:4:0:1}
SINK_DELAY=0 # ms the domains part's receivers hold each batch of replies (a row's RTT)
PER_CONN=0   # messages a connection carries in the domains part (a row's PER); 0: no limit
DOMAIN_WORKERS=${BENCH_DOMAIN_WORKERS:-32}
DOMAIN_DRAIN_LIMIT=${BENCH_DOMAIN_DRAIN_LIMIT:-60}
LAT_ROWS=${BENCH_LATENCY_ROWS:-1:20 100:20 1000:20 1:4 100:4 1000:4}
LAT_N=${BENCH_LATENCY_MESSAGES:-200}
LAT_GAP=${BENCH_LATENCY_INTERVAL_MS:-50}
LAT_WAIT=10 # seconds after the last message before the missing ones count as lost
IDLE=${BENCH_IDLE_TIMEOUT:-}
PF_CACHED=${BENCH_POSTFIX_CACHED:-1}
CHUNKING=${BENCH_CHUNKING:-1}
LIMIT_SCOPE=${BENCH_LIMIT_SCOPE:-server} # binding: a domains row's LIMIT is the binding's
# shellcheck source=../tests/e2e/lib/tap.sh
. "$root/tests/e2e/lib/tap.sh"
# shellcheck source=../tests/e2e/lib/postfix.sh
. "$root/tests/e2e/lib/postfix.sh"
# shellcheck source=../tests/e2e/lib/peer.sh
. "$root/tests/e2e/lib/peer.sh"
# shellcheck source=../tests/e2e/lib/dns.sh
. "$root/tests/e2e/lib/dns.sh"
# shellcheck source=bench_listener.sh
. "$root/scripts/bench_listener.sh"

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

# --- bench_sink: the receiver of the domains and latency parts -----------------------------

# bsink_start NAME PORTS LOG ADDR...: a fresh bench_sink with PORTS ports on every ADDR (LOG 1:
# a line per message); sets BS_PID, BS_DIR and BS_PORTS (an array, port i for domain i)
bsink_start() {
  local name=$1 n=$2 log=$3 args
  shift 3
  BS_DIR=$T/bsink.$name
  mkdir -p "$BS_DIR"
  args=(-n "$n" -s "$BS_DIR/stats")
  [ "$CHUNKING" = 0 ] || args+=(-c)
  [ "$SINK_DELAY" = 0 ] || args+=(-d "$SINK_DELAY")
  [ "$log" = 1 ] && args+=(-l "$BS_DIR/log")
  : >"$BS_DIR/out"
  "$bench/bench_sink" "${args[@]}" "$@" >"$BS_DIR/out" 2>"$BS_DIR/err" &
  BS_PID=$!
  started "$BS_PID"
  if ! wait_for 5 _bsink_ready "$n"; then
    echo "no READY line with $n ports" >>"$BS_DIR/err"
    bsink_stop
    return 1
  fi
  read -r -a BS_PORTS <<<"$(sed -n 's/^READY //p' "$BS_DIR/out")"
}
_bsink_ready() { [ "$(sed -n 's/^READY //p' "$BS_DIR/out" | wc -w)" -eq "$1" ]; }
# bsink_stop: end it; it writes its stats file as it goes
bsink_stop() {
  kill -TERM "$BS_PID" 2>/dev/null
  wait "$BS_PID" 2>/dev/null
}
# bsink_last: the time of the last message's final dot (seconds, 0 before any), as the sink
# clocked it
bsink_last() {
  awk '$1 == "total" { for (i = 2; i < NF; i++) if ($i == "last") v = $(i + 1) }
    END { print v == "" ? 0 : v }' "$BS_DIR/stats" 2>/dev/null
}
# bsink_stat WHAT FIELD: a figure of its stats: "total peak", "total messages", "listener peak"
# (the most at one listener: at one domain, or at one MX host), "addr peak" (at one address)
bsink_stat() {
  awk -v k="$1" -v f="$2" '
    $1 == k { for (i = 2; i < NF; i++) if ($i == f && $(i + 1) > m) m = $(i + 1) }
    END { print m + 0 }' "$BS_DIR/stats" 2>/dev/null
}

# pyfmt EXPR FORMAT: EXPR with a python format, "-" when it cannot be computed
pyfmt() { python3 -c "
try: print(format($1, '$2'))
except Exception: print('-')"; }

# --- sluice and Postfix over many domains ------------------------------------------------------

# spread_fill DIR D: a spool in DIR/spool of N messages, message i to rcpt@d(i mod D).bench.test,
# by sluicectl inject with no daemon (INJECT_JOBS at a time)
spread_fill() {
  local dir=$1 D=$2
  mkdir -p "$dir"
  cat >"$dir/fill.ini" <<EOF
[global]
spool_dir = $dir/spool
shm_name = /sluice-bench-$$-fill
delivery_log = $dir/delivery.log
tls = disabled

[binding "bench"]
bind_address = 127.0.0.2
EOF
  sluice_message >"$dir/msg.eml"
  seq 0 $((N - 1)) | xargs -P "$INJECT_JOBS" -n 100 sh -c '
    conf=$1 msg=$2 ctl=$3 D=$4; shift 4
    for i; do "$ctl" -c "$conf" inject --binding bench -f bench@sender.test \
      "$(printf "rcpt@d%04d.bench.test" $((i % D)))" <"$msg" >/dev/null || exit 255; done' \
    sh "$dir/fill.ini" "$dir/msg.eml" "$SLUICECTL" "$D" 2>"$dir/fill.err" || return 1
  [ "$(find "$dir/spool/queue" -type f | wc -l)" -eq "$N" ]
}

# spread_conf DIR D LIMIT MODE PORT...: sluiced's config for D domains under a server limit;
# MODE route: domain i routed to 127.0.1.1:PORT_i; mx2: MX records from DNS_SERVER, port PORT
spread_conf() {
  local dir=$1 D=$2 limit=$3 mode=$4 i
  shift 4
  local ports=("$@")
  cat <<EOF
[global]
workers = $DOMAIN_WORKERS
spool_dir = $dir/spool
shm_name = /sluice-bench-$$-${dir##*/}
delivery_log = $dir/delivery.log
server_max_outbound_connections = $([ "$LIMIT_SCOPE" = binding ] && echo 1000 || echo "$limit")
server_reserve_outbound_connections = 0
tls = disabled
EOF
  [ -z "$IDLE" ] || echo "idle_timeout = $IDLE"
  [ "$PER_CONN" = 0 ] || echo "max_deliveries_per_connection = $PER_CONN"
  [ "$mode" != mx2 ] || printf 'dns_server = %s\nsmtp_port = %s\nmta_sts = off\ndane = off\n' \
    "$DNS_SERVER" "${ports[0]}"
  printf '\n[binding "bench"]\nbind_address = 127.0.0.2\n'
  [ "$LIMIT_SCOPE" != binding ] || echo "server_max_outbound_connections = $limit"
  if [ "$mode" = route ]; then
    for ((i = 0; i < D; i++)); do
      printf '\n[domain "d%04d.bench.test"]\nroute = 127.0.1.1:%s\n' "$i" "${ports[i]}"
    done
  fi
}

# spread_sink NAME D MODE LOG: the receiver of a row: one port per domain on 127.0.1.1 (route),
# or one port on both MX hosts (mx2)
spread_sink() {
  if [ "$3" = mx2 ]; then
    bsink_start "$1" 1 "$4" 127.0.1.1 127.0.1.2
  else
    bsink_start "$1" "$2" "$4" 127.0.1.1
  fi
}

# spread_transport D MODE: Postfix's transport map for the sink started last
spread_transport() {
  local i
  for ((i = 0; i < $1; i++)); do
    if [ "$2" = mx2 ]; then
      printf 'd%04d.bench.test smtp:d%04d.bench.test:%s\n' "$i" "$i" "${BS_PORTS[0]}"
    else
      printf 'd%04d.bench.test smtp:[127.0.1.1]:%s\n' "$i" "${BS_PORTS[i]}"
    fi
  done
}

# spread_postfix_start TAG D LIMIT MODE [MAIN_CF_LINE...]: a private Postfix on 127.0.1.10 that
# sends the D domains to the sink started last, at most LIMIT deliveries at once; sets SP_PORT
# and SP_DIR; 1 with the reason in SP_ERR
spread_postfix_start() {
  local tag=$1 D=$2 limit=$3 mode=$4 map=$T/transport.$1 extra=()
  shift 4
  spread_transport "$D" "$mode" >"$map"
  extra=("transport_maps = texthash:$map" "smtp_bind_address = 127.0.0.3"
    "default_process_limit = $limit" "default_destination_concurrency_limit = $limit"
    "smtp_destination_concurrency_limit = $limit" "$@")
  [ "$mode" != mx2 ] || extra+=("smtp_dns_support_level = enabled" "smtp_host_lookup = dns")
  SP_PORT=$(peer_free_port 127.0.1.10)
  if ! POSTFIX_RESOLV_CONF=$([ "$mode" != mx2 ] || echo "$T/resolv.conf") \
    postfix_relay_start 127.0.1.10 "$SP_PORT" 127.0.1.1 "${BS_PORTS[0]}" "${extra[@]}" \
    >"$T/postfix-$tag.out" 2>&1; then
    SP_ERR="did not start: $(grep -v '^$' "$T/postfix-$tag.out" | tail -1)"
    postfix_stop "$POSTFIX_DIR" 2>/dev/null # in case its master runs but did not answer
    return 1
  fi
  SP_DIR=$POSTFIX_DIR
}

# spread_dns: nsd on 127.0.0.53:53 with d0000..d0999.bench.test MX mx1 or mx2 (alternately),
# mx1 at 127.0.1.1 and mx2 at 127.0.1.2; a resolv.conf naming it for Postfix
spread_dns() {
  local i
  [ -n "${DNS_SERVER:-}" ] && return 0
  {
    printf 'mx1 A 127.0.1.1\nmx2 A 127.0.1.2\n'
    for ((i = 0; i < 1000; i++)); do printf 'd%04d MX 10 mx%d\n' "$i" $((i % 2 + 1)); done
  } | dns_zone bench.test
  echo "nameserver 127.0.0.53" >"$T/resolv.conf"
  dns_start 127.0.0.53 53 2>"$T/dns.err"
}

declare -A dr=() # the domains part's figures, by "ROW,WHAT"

# dom_record ROW WHO T0 T1 TICKS DELIVERED: rate and CPU per message, and the sink's figures;
# the rate ends at the sink's last message when it has one (T1, the poll's, otherwise)
dom_record() {
  local hz t1
  hz=$(getconf CLK_TCK)
  t1=$(bsink_last)
  [ "$t1" != 0 ] || t1=$4
  dr[$1,$2-rate]=$(pyfmt "$6 / ($t1 - $3)" .0f)
  [ -z "$5" ] || dr[$1,$2-cpu]=$(pyfmt "$5 * 1000 / $hz / $6" .3f)
  dr[$1,$2-peak]=$(bsink_stat total peak)
  dr[$1,$2-dpeak]=$(bsink_stat listener peak)
  dr[$1,$2-conns]=$(bsink_stat total connections)
}

# dom_left QUEUE: "K messages for J domains left"
dom_left() {
  local k j
  k=$(find "$1" -type f | wc -l)
  j=$(find "$1" -type f -exec sed -n 's/^rcpt [0-9]* [^@]*@//p' {} + | sort -u | wc -l)
  echo "$k messages to $j domains left"
}

# dom_sluice ROW D LIMIT MODE SPOOL: drain a copy of SPOOL
dom_sluice() {
  local row=$1 D=$2 limit=$3 mode=$4 d=$T/dsl.$1 pid t0 t1 c1 got refused deferred more
  mkdir -p "$d"
  if ! spread_sink "sl$row" "$D" "$mode" 0; then
    dr[$row,sluice-note]="sink did not start: $(tail -1 "$BS_DIR/err")"
    return
  fi
  spread_conf "$d" "$D" "$limit" "$mode" "${BS_PORTS[@]}" >"$d/sluice.ini"
  if ! "$SLUICECTL" -c "$d/sluice.ini" config check >"$d/check.out" 2>&1; then
    dr[$row,sluice-note]="config refused: $(head -1 "$d/check.out")"
    bsink_stop
    return
  fi
  cp -a "$5" "$d/spool"
  t0=$(now)
  "$SLUICED" -c "$d/sluice.ini" >"$d/sluiced.out" 2>&1 &
  pid=$!
  started "$pid"
  wait_for "$DOMAIN_DRAIN_LIMIT" _sluice_done "$d/spool/queue" "$pid"
  t1=$(now)
  if ! alive "$pid"; then
    dr[$row,sluice-note]="sluiced exited: $(tail -1 "$d/sluiced.out")"
    bsink_stop
    return
  fi
  c1=$(cpu_ticks "$pid")
  queue_empty "$d/spool/queue" ||
    dr[$row,sluice-note]="not drained in ${DOMAIN_DRAIN_LIMIT}s: $(dom_left "$d/spool/queue")"
  _sluice_stop "$pid"
  bsink_stop
  got=$(bsink_stat total messages)
  dom_record "$row" sluice "$t0" "$t1" "$c1" "$got"
  deferred=$(grep -c '"outcome":"deferred"' "$d/delivery.log" 2>/dev/null)
  refused=$(grep -c '"refused"' "$d/delivery.log" 2>/dev/null)
  [ "${refused:-0}" -eq 0 ] ||
    dr[$row,sluice-note]+="${dr[$row,sluice-note]:+; }$refused attempts refused by a full counter"
  more=$((${deferred:-0} - ${refused:-0}))
  [ "$more" -le 0 ] || dr[$row,sluice-note]+="${dr[$row,sluice-note]:+; }$more other deferred attempts"
}

# dom_postfix ROW D LIMIT MODE WHO: fill a private Postfix on hold, release, time until empty;
# WHO postfix: no connection cache, so that its open connections are its smtp processes, at most
# LIMIT; pfcache: Postfix's default, on-demand connection caching (idle cached connections stay
# open beyond LIMIT)
dom_postfix() {
  local row=$1 D=$2 limit=$3 mode=$4 who=$5 master t0 t1 c0 c1 got cache=no log deferred
  local reuse=()
  [ "$who" = postfix ] || cache=yes
  # PER - 1 reuses; 0 would mean no limit, and the postfix drain (no cache) reuses nothing
  [ "$PER_CONN" -lt 2 ] || reuse=("smtp_connection_reuse_count_limit = $((PER_CONN - 1))")
  if ! spread_sink "$who$row" "$D" "$mode" 0; then
    dr[$row,$who-note]="sink did not start: $(tail -1 "$BS_DIR/err")"
    return
  fi
  if ! spread_postfix_start "$who$row" "$D" "$limit" "$mode" \
    "smtpd_recipient_restrictions = check_client_access static:HOLD" \
    "smtp_connection_cache_on_demand = $cache" "${reuse[@]}"; then
    dr[$row,$who-note]=$SP_ERR
    bsink_stop
    return
  fi
  master=${_postfix_pid[$SP_DIR]}
  if ! "$bench/bench_feed" -p -s $((limit < 8 ? limit : 8)) -m "$N" -d "$D" "127.0.1.10:$SP_PORT" \
    >"$T/$who-fill-$row.out" 2>&1 || ! wait_for 30 _postfix_held "$SP_DIR"; then
    dr[$row,$who-note]="queue not filled: $(tail -1 "$T/$who-fill-$row.out")"
    postfix_stop "$SP_DIR"
    bsink_stop
    return
  fi
  postsuper -c "$SP_DIR/etc" -H ALL >/dev/null 2>&1
  c0=$(cpu_ticks "$master")
  t0=$(now)
  postqueue -c "$SP_DIR/etc" -f >/dev/null 2>&1
  wait_for "$DOMAIN_DRAIN_LIMIT" queue_empty "$SP_DIR/queue/hold" "$SP_DIR/queue/incoming" \
    "$SP_DIR/queue/active" "$SP_DIR/queue/deferred"
  t1=$(now)
  c1=$(cpu_ticks "$master")
  postfix_stop "$SP_DIR"
  bsink_stop
  got=$(bsink_stat total messages)
  log=$(postfix_log "$SP_DIR")
  deferred=$(grep -c 'status=deferred' "$log")
  [ "$got" -eq "$N" ] ||
    dr[$row,$who-note]="$got of $N delivered in ${DOMAIN_DRAIN_LIMIT}s; $(postfix_queued "$SP_DIR") left"
  [ "${deferred:-0}" -eq 0 ] || dr[$row,$who-note]+="${dr[$row,$who-note]:+; }$deferred deferred"
  dom_record "$row" "$who" "$t0" "$t1" $((c1 - c0)) "$got"
}

# dom_ceiling ROW LIMIT: bench_feed at LIMIT sessions into a fresh sink, with PIPELINING
# (ceiling-rate) and, when the sink offers CHUNKING, with BDAT runs of 16 (bdat-rate)
dom_ceiling() {
  local row=$1 out mode key
  for mode in -p "-b 16"; do
    key=ceiling
    if [ "$mode" != -p ]; then
      [ "$CHUNKING" = 1 ] || continue
      key=bdat
    fi
    if ! bsink_start "cl$row$key" 1 0 127.0.1.1; then
      dr[$row,$key-note]="sink did not start: $(tail -1 "$BS_DIR/err")"
      continue
    fi
    # shellcheck disable=SC2086 # mode is one or two words
    if out=$("$bench/bench_feed" $mode -c "$PER_CONN" -s "$2" -m "$([ "$SINK_DELAY" = 0 ] && echo "$N" ||
      echo $((N / 10)))" "127.0.1.1:${BS_PORTS[0]}" 2>&1); then
      dr[$row,$key-rate]=${out##* }
    else
      dr[$row,$key-note]="bench_feed $mode failed: $out"
    fi
    bsink_stop
  done
}

# dom_row SPEC: the key of a domains row ("100-4", "100-4-20ms", "100-4-1pc")
dom_row() {
  local shape limit rtt per
  IFS=: read -r shape limit rtt per <<<"$1"
  [[ ! ${rtt:-0} =~ ^0*$ ]] || rtt=
  [[ ! ${per:-0} =~ ^0*$ ]] || per=
  echo "$shape-$limit${rtt:+-${rtt}ms}${per:+-${per}pc}"
}

# dom_one SPEC: the key of the one-domain row at SPEC's limit, RTT and PER ("1-4", "1-4-20ms")
dom_one() {
  local shape limit rest
  IFS=: read -r shape limit rest <<<"$1"
  dom_row "1:$limit${rest:+:$rest}"
}

bench_domains() {
  local row shape limit rtt per D mode spec
  [ -x "$bench/bench_sink" ] && [ -x "$bench/bench_feed" ] ||
    { echo "bench_delivery: domains: no $bench/bench_sink or bench_feed; skipped"; return; }
  [ -x "$SLUICED" ] || { echo "bench_delivery: domains: no $SLUICED; skipped"; return; }
  local t_start
  t_start=$(now)
  for spec in $DOMAIN_ROWS; do
    IFS=: read -r shape limit rtt per <<<"$spec"
    rtt=${rtt:-0} per=${per:-0}
    D=${shape%mx2} mode=route
    [ "$D" = "$shape" ] || mode=mx2
    row=$(dom_row "$spec")
    if ! [[ $D =~ ^[0-9]+$ && $limit =~ ^[0-9]+$ && $rtt =~ ^[0-9]+$ && $per =~ ^[0-9]+$ ]] ||
      [ "$D" -lt 1 ] || [ "$D" -gt 1000 ] || [ "$limit" -lt 1 ]; then
      echo "bench_delivery: domains: bad row $spec (SHAPE:LIMIT[:RTT[:PER]], SHAPE 1..1000 with" \
        "mx2 or not, RTT in ms, PER messages per connection)"
      continue
    fi
    rtt=$((10#$rtt)) per=$((10#$per))
    SINK_DELAY=$rtt PER_CONN=$per
    dr[$row,label]="$D domains x $((N / D)) msgs$([ "$mode" = route ] || echo ", 2 MX")"
    [ "$rtt" = 0 ] || dr[$row,label]+=", ${rtt} ms"
    [ "$per" = 0 ] || dr[$row,label]+=", $per/conn"
    dr[$row,limit]=$limit
    if [ "$mode" = mx2 ] && ! spread_dns; then
      dr[$row,sluice-note]="nsd did not start on 127.0.0.53:53: $(tail -1 "$T/dns.err")"
      SINK_DELAY=0 PER_CONN=0
      continue
    fi
    if [ ! -d "$T/fill.$D/spool" ] && ! spread_fill "$T/fill.$D" "$D"; then
      dr[$row,sluice-note]="inject failed: $(head -1 "$T/fill.$D/fill.err")"
      rm -rf "$T/fill.$D"
    fi
    [ -d "$T/fill.$D/spool" ] && dom_sluice "$row" "$D" "$limit" "$mode" "$T/fill.$D/spool"
    dom_postfix "$row" "$D" "$limit" "$mode" postfix
    [ "$PF_CACHED" = 0 ] || [ "$per" = 1 ] || dom_postfix "$row" "$D" "$limit" "$mode" pfcache
    dom_ceiling "$row" "$limit"
    SINK_DELAY=0 PER_CONN=0
  done
  dom_report "$(pyfmt "$(now) - $t_start" .0f)"
}

dom_report() {
  local spec row s p c b who one
  local f1='  %-32s %5s %7s %7s %6s %7s %7s %6s %6s %7s %6s\n'
  local f2='  %-32s %5s %6s %6s %6s %7s %7s %7s %6s %6s %6s\n'
  echo "bench_delivery, many domains: $N messages of $BODY bytes, sluice $DOMAIN_WORKERS workers," \
    "idle_timeout ${IDLE:-default}, reserve 0 (took $1 s)"
  # shellcheck disable=SC2059 # the formats are the tables' columns
  printf "$f1" "msgs/s" limit sluice postfix "s/p" "ceil" "ceil" "s/ceil" "p/ceil" "pf+cache" \
    "of 1"
  # shellcheck disable=SC2059
  printf "$f1" "" "" "" "" "" DATA BDAT "" "" "" "dom"
  for spec in $DOMAIN_ROWS; do
    row=$(dom_row "$spec")
    [ -n "${dr[$row,label]:-}" ] || continue
    s=${dr[$row,sluice-rate]:-} p=${dr[$row,postfix-rate]:-} c=${dr[$row,ceiling-rate]:-}
    b=${dr[$row,bdat-rate]:-}
    one=${dr[$(dom_one "$spec"),sluice-rate]:-}
    # shellcheck disable=SC2059
    printf "$f1" "${dr[$row,label]}" "${dr[$row,limit]}" "${s:--}" "${p:--}" \
      "$(pyfmt "$s / $p" .2f | sed 's/[0-9]$/&x/')" "${c:--}" "${b:--}" \
      "$(pyfmt "100 * $s / ${b:-$c}" .0f | sed 's/[0-9]$/&%/')" \
      "$(pyfmt "100 * $p / $c" .0f | sed 's/[0-9]$/&%/')" "${dr[$row,pfcache-rate]:--}" \
      "$([ -n "$one" ] && pyfmt "100 * $s / $one" .0f | sed 's/[0-9]$/&%/' || echo -)"
  done
  # shellcheck disable=SC2059
  printf "$f2" "" "" "CPU ms/msg" "" "" "peak conns" "" "" "connections" "" ""
  # shellcheck disable=SC2059
  printf "$f2" "" limit sluice postfix "pf+c" sluice postfix "pf+c" sluice postfix "pf+c"
  for spec in $DOMAIN_ROWS; do
    row=$(dom_row "$spec")
    [ -n "${dr[$row,label]:-}" ] || continue
    # shellcheck disable=SC2059
    printf "$f2" "${dr[$row,label]}" "${dr[$row,limit]}" \
      "${dr[$row,sluice-cpu]:--}" "${dr[$row,postfix-cpu]:--}" "${dr[$row,pfcache-cpu]:--}" \
      "${dr[$row,sluice-peak]:--}/${dr[$row,sluice-dpeak]:--}" \
      "${dr[$row,postfix-peak]:--}/${dr[$row,postfix-dpeak]:--}" \
      "${dr[$row,pfcache-peak]:--}/${dr[$row,pfcache-dpeak]:--}" \
      "${dr[$row,sluice-conns]:--}" "${dr[$row,postfix-conns]:--}" "${dr[$row,pfcache-conns]:--}"
  done
  echo "  postfix: smtp_connection_cache_on_demand = no, so its connections are its at most LIMIT"
  echo "  smtp processes; pf+cache (pf+c): Postfix's default connection cache, whose idle"
  echo "  connections stay open beyond LIMIT.  ceil: bench_feed at LIMIT sessions into the same"
  echo "  sink, DATA pipelined (-p) and BDAT runs of 16 (-b 16, when the sink offers CHUNKING);"
  echo "  s/ceil: sluice's share of ceil BDAT (of ceil DATA without CHUNKING), p/ceil Postfix's"
  echo "  of ceil DATA (its client sends DATA).  of 1 dom: sluice's rate against its rate for one"
  echo "  domain at the same limit (and RTT), the row 1:LIMIT, when it ran."
  echo "  peak conns: most sessions open at once at the receiver, in all / at one domain (or one"
  echo "  MX host with 2 MX); connections: sessions opened over the drain."
  for spec in $DOMAIN_ROWS; do
    row=$(dom_row "$spec")
    for who in sluice postfix pfcache ceiling bdat; do
      [ -z "${dr[$row,$who-note]:-}" ] || echo "  note: $row $who: ${dr[$row,$who-note]}"
    done
  done
}

# --- latency ---------------------------------------------------------------------------------

# lat_send WHO OUT ARG...: one message every LAT_GAP ms, LAT_N of them, message i to
# rcpt@d(i mod D).bench.test with Message-ID <lat-i@bench.test>; writes "MESSAGE-ID START" lines
# to OUT, START the epoch time at which the message was durable: after `sluicectl inject`
# exited (WHO sluice: CTL CONF D), or after smtpd's 250 to the final dot (WHO postfix: HOST PORT D)
lat_send() {
  python3 - "$LAT_N" "$LAT_GAP" "$BODY" "$@" <<'PY'
import smtplib, subprocess, sys, time
n, gap, size = int(sys.argv[1]), float(sys.argv[2]) / 1000, int(sys.argv[3])
who, out, args = sys.argv[4], sys.argv[5], sys.argv[6:]
D = int(args[2])

def message(i, rcpt):
    head = [f"From: <bench@sender.test>", f"To: <{rcpt}>", f"Message-ID: <lat-{i}@bench.test>",
            "Subject: latency", ""]
    lines, left = [], size
    while left > 0:
        k = min(76, max(left - 2, 0))
        lines.append("x" * k)
        left -= k + 2
    return ("\r\n".join(head + lines) + "\r\n").encode()

smtp = None
if who == "postfix":
    smtp = smtplib.SMTP(args[0], int(args[1]), timeout=30)
    smtp.ehlo("latency.test")
starts = []
t0 = time.time()
for i in range(n):
    delay = t0 + i * gap - time.time()
    if delay > 0:
        time.sleep(delay)
    rcpt = f"rcpt@d{i % D:04d}.bench.test"
    msg = message(i, rcpt)
    if who == "sluice":
        r = subprocess.run([args[0], "-c", args[1], "inject", "--binding", "bench",
                            "-f", "bench@sender.test", rcpt], input=msg, stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            sys.exit(f"inject exited {r.returncode}")
    else:
        smtp.sendmail("bench@sender.test", [rcpt], msg)
    starts.append(f"<lat-{i}@bench.test> {time.time():.6f}\n")
if smtp:
    smtp.quit()
with open(out, "w") as f:
    f.writelines(starts)
PY
}

# lat_figures STARTS SINKLOG: "P50 P90 P99 MAX ARRIVED" in ms (a lost message counts as infinite;
# a negative figure is a message at the sink before its clock started: inject's exit, or the
# client's reading of the 250, is seen a little after the message is durable and announced)
lat_figures() {
  python3 - "$1" "$2" "$LAT_N" "$LAT_WAIT" <<'PY'
import math, sys
starts = dict(l.split() for l in open(sys.argv[1]))
ends = {}
for l in open(sys.argv[2]):
    t, _, mid = l.split()
    ends.setdefault(mid, float(t))
n, wait = int(sys.argv[3]), sys.argv[4]
lat = sorted((ends[m] - float(t)) * 1000 if m in ends else math.inf for m, t in starts.items())
lat += [math.inf] * (n - len(lat))
def pct(p):
    v = lat[max(0, math.ceil(p / 100 * n) - 1)]
    return f"{v:.1f}" if v != math.inf else f">{wait}s"
print(pct(50), pct(90), pct(99), pct(100), sum(1 for m in starts if m in ends))
PY
}

declare -A lr=() # the latency part's figures, by "ROW,WHAT"

# lat_arrived: messages in the sink's log so far
lat_arrived() { [ -f "$BS_DIR/log" ] && wc -l <"$BS_DIR/log" || echo 0; }
_lat_all_in() { [ "$(lat_arrived)" -ge "$LAT_N" ]; }

# _sluice_up PID CONF: sluiced publishes its table with every worker running
_sluice_up() {
  alive "$1" && [ "$("$SLUICECTL" -c "$2" counters --json 2>/dev/null | python3 -c '
import json, sys; print(json.load(sys.stdin)["daemon"]["workers"])' 2>/dev/null)" = "$DOMAIN_WORKERS" ]
}

# lat_sluice ROW D LIMIT
lat_sluice() {
  local row=$1 D=$2 limit=$3 d=$T/lsl.$1 pid
  mkdir -p "$d"
  if ! bsink_start "ls$row" "$D" 1 127.0.1.1; then
    lr[$row,sluice-note]="sink did not start: $(tail -1 "$BS_DIR/err")"
    return
  fi
  spread_conf "$d" "$D" "$limit" route "${BS_PORTS[@]}" >"$d/sluice.ini"
  "$SLUICED" -c "$d/sluice.ini" >"$d/sluiced.out" 2>&1 &
  pid=$!
  started "$pid"
  if ! wait_for 10 _sluice_up "$pid" "$d/sluice.ini"; then
    lr[$row,sluice-note]="sluiced not up: $(tail -1 "$d/sluiced.out")"
  elif ! lat_send sluice "$d/starts" "$SLUICECTL" "$d/sluice.ini" "$D" 2>"$d/send.err"; then
    lr[$row,sluice-note]="sending failed: $(tail -1 "$d/send.err")"
  else
    wait_for "$LAT_WAIT" _lat_all_in
    lr[$row,sluice]=$(lat_figures "$d/starts" "$BS_DIR/log")
  fi
  alive "$pid" || lr[$row,sluice-note]="sluiced exited: $(tail -1 "$d/sluiced.out")"
  _sluice_stop "$pid"
  bsink_stop
  lr[$row,sluice-peak]=$(bsink_stat total peak)
}

# lat_postfix ROW D LIMIT
lat_postfix() {
  local row=$1 D=$2 limit=$3
  if ! bsink_start "lp$row" "$D" 1 127.0.1.1; then
    lr[$row,postfix-note]="sink did not start: $(tail -1 "$BS_DIR/err")"
    return
  fi
  if ! spread_postfix_start "l$row" "$D" "$limit" route "smtp_connection_cache_on_demand = no"; then
    lr[$row,postfix-note]=$SP_ERR
  elif ! lat_send postfix "$T/lpf.$row.starts" 127.0.1.10 "$SP_PORT" "$D" 2>"$T/lpf.$row.err"; then
    lr[$row,postfix-note]="sending failed: $(tail -1 "$T/lpf.$row.err")"
  else
    wait_for "$LAT_WAIT" _lat_all_in
    lr[$row,postfix]=$(lat_figures "$T/lpf.$row.starts" "$BS_DIR/log")
  fi
  [ -z "${SP_DIR:-}" ] || postfix_stop "$SP_DIR"
  SP_DIR=
  bsink_stop
  lr[$row,postfix-peak]=$(bsink_stat total peak)
}

bench_latency() {
  local spec D limit row t_start
  [ -x "$bench/bench_sink" ] ||
    { echo "bench_delivery: latency: no $bench/bench_sink; skipped"; return; }
  [ -x "$SLUICED" ] || { echo "bench_delivery: latency: no $SLUICED; skipped"; return; }
  t_start=$(now)
  for spec in $LAT_ROWS; do
    D=${spec%%:*} limit=${spec#*:} row=$spec
    if ! [[ $D =~ ^[0-9]+$ && $limit =~ ^[0-9]+$ ]] || [ "$D" -lt 1 ] || [ "$D" -gt 1000 ] ||
      [ "$limit" -lt 1 ]; then
      echo "bench_delivery: latency: bad row $spec (DOMAINS:LIMIT, DOMAINS 1..1000)"
      continue
    fi
    lr[$row,ok]=1
    lat_sluice "$row" "$D" "$limit"
    lat_postfix "$row" "$D" "$limit"
  done
  lat_report "$(pyfmt "$(now) - $t_start" .0f)"
}

lat_report() {
  local spec who sv pv
  echo "bench_delivery, latency: $LAT_N messages of $BODY bytes per row, one every $LAT_GAP ms;" \
    "ms from durable to the sink's final dot (took $1 s)"
  printf '  %-8s %5s | %7s %7s %7s %7s %7s %4s | %7s %7s %7s %7s %7s %4s\n' domains limit \
    "s p50" "p90" "p99" "max" arrived peak "p p50" "p90" "p99" "max" arrived peak
  for spec in $LAT_ROWS; do
    [ -n "${lr[$spec,ok]:-}" ] || continue
    read -r -a sv <<<"${lr[$spec,sluice]:-- - - - -}"
    read -r -a pv <<<"${lr[$spec,postfix]:-- - - - -}"
    printf '  %-8s %5s | %7s %7s %7s %7s %7s %4s | %7s %7s %7s %7s %7s %4s\n' "${spec%%:*}" \
      "${spec#*:}" "${sv[@]}" "${lr[$spec,sluice-peak]:--}" "${pv[@]}" \
      "${lr[$spec,postfix-peak]:--}"
  done
  echo "  s: sluice, sluicectl inject into a running sluiced, clock from inject's exit; p: Postfix"
  echo "  (no connection cache), clock from smtpd's 250; peak: most sessions open at once at the"
  echo "  sink.  A figure below 0 is a message delivered before its clock started (the start is"
  echo "  seen a few ms late: the process exit, the reply read by python)."
  for spec in $LAT_ROWS; do
    for who in sluice postfix; do
      [ -z "${lr[$spec,$who-note]:-}" ] || echo "  note: $spec $who: ${lr[$spec,$who-note]}"
    done
  done
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
  command -v postfix >/dev/null || { echo "bench_delivery: no postfix; skipped"; return; }
  local part i=0 last=0 # last: the position of the last part of the smtp-sink table
  for part in $PARTS; do
    i=$((i + 1))
    case $part in feeders | postfix | sluice) last=$i ;; esac
  done
  i=0
  for part in $PARTS; do
    i=$((i + 1))
    case $part in
    feeders | postfix | sluice)
      if [ -z "${SINK:-}" ] && ! sink_start; then
        echo "bench_delivery: $part: smtp-sink did not start: $(cat "$T/sink.out")"
      else
        "bench_$part"
      fi
      [ "$i" -ne "$last" ] || report
      ;;
    domains | latency | cluster) "bench_$part" ;;
    submit) bench_submit ;;
    rescan) ;; # bench.sh's own (bench_rescan)
    *) echo "bench_delivery: no part $part (feeders postfix sluice domains latency cluster submit rescan)" ;;
    esac
  done
}

# bench_cluster - the cost of a cluster lease per connection, against a private redis-server
bench_cluster() {
  # shellcheck source=../tests/e2e/lib/redis.sh
  . "$root/tests/e2e/lib/redis.sh"
  if ! redis_start; then
    echo "bench_delivery: cluster: redis-server did not start"
    return
  fi
  echo
  echo "cluster leases (one redis-server on loopback; a worker's cost per connection):"
  "$bench/bench_cluster" "$REDIS_PORT" "${BENCH_CLUSTER_CONNECTIONS:-20000}" | sed 's/^/  /'
  redis_stop
}

# main runs in a subshell with the same clean-up, so that even a mistake of this script (an
# unset variable under set -u) ends it with its processes ended and exit status 0
(
  trap cleanup EXIT
  main
)
rc=$?
[ "$rc" -eq 0 ] || echo "bench_delivery: stopped early (status $rc); the error is above"
exit 0
