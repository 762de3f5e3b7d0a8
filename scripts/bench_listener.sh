# bench_listener.sh - the "submit" part of make bench (sourced by bench_delivery.sh, which
# provides N, BODY, WORKERS, DRAIN_LIMIT, bench_sink (bsink_start), cpu_ticks, now, calc,
# sluice_message, postfix_relay_start and the clean-up).
#
# N messages of BODY bytes (sluice_message's, without Message-ID: each server adds its own)
# submitted by smtp-source -F over S sessions (one row per BENCH_SUBMIT_SESSIONS entry,
# default "8 32"), a new connection per message (smtp-source without -d, as most applications
# submit; it greets with HELO and waits for each reply before the next command), to:
#   sluice    sluiced's listener on 127.0.0.1 (max_sessions = S)
#   postfix   a private Postfix (smtpd, queue, smtp; defaults but enable_long_queue_ids and
#             always_add_missing_headers, for the latency below)
# both making each message durable (fsync) before the 250, and both delivering to one
# bench_sink port on 127.0.1.1 (rather than smtp-sink: it timestamps each message with its
# Message-ID, which the latency needs; its ceiling is far above both).  Per row and system:
#   accept    N / the time smtp-source took (every 250 in)
#   e2e       N / (from smtp-source's start, the first MAIL, to the queue empty: the last
#             message at the sink; polled every 50 ms)
#   p50, p99  from the queue file's creation to the message at the sink, per message, in ms:
#             sluice from its queue id (the write's microsecond, after DATA) to the delivery
#             log's line (written after the sink's 250); Postfix from its long queue id (the
#             file's creation at MAIL FROM, a millisecond or so before the 250 on loopback) to
#             bench_sink's timestamp of the Message-ID Postfix added (<QUEUEID@host>)
#   CPU       user+system ms per message of the whole system (sluiced and every child;
#             Postfix's master and every child) from the start of the submission to the end
# The ceiling of both: smtp-source straight into a fresh bench_sink at the same
# sessions (a server that keeps nothing): each system's accept rate is also given as a share
# of it, the part of the submission the client and the machine leave to the server.
# The ratios sluice/postfix of the same run are the figures that matter (a shared machine).

SUBMIT_SESSIONS=${BENCH_SUBMIT_SESSIONS:-8 32}
declare -A sub=()

# submit_conf DIR PORT SESSIONS: sluiced with a listener, bench.test routed to the sink
submit_conf() {
  cat <<EOF
[global]
workers = $WORKERS
spool_dir = $1/spool
shm_name = /sluice-bench-submit-$$
delivery_log = $1/delivery.log
max_outbound_connections = 64
server_max_outbound_connections = 1000
server_reserve_outbound_connections = 0
tls = disabled

[binding "bench"]
bind_address = 127.0.0.2

[domain "bench.test"]
route = $SUBMIT_SINK
max_outbound_connections = 64
max_deliveries_per_connection = 1000

[listener "bench"]
address = 127.0.0.1:$2
binding = bench
max_sessions = $3
EOF
}

# submit_source ADDR:PORT SESSIONS: smtp-source, N messages, a connection each
submit_source() {
  smtp-source -c -s "$2" -m "$N" -F "$T/submit-msg.eml" -f bench@sender.test -t rcpt@bench.test \
    "$1" >"$T/submit-source.out" 2>&1
}

# submit_latency KIND FILE: "p50 p99" in ms (sluice: from its delivery.log; postfix: from
# bench_sink's log), or "- -"
submit_latency() {
  python3 - "$@" <<'PY'
import datetime, json, re, sys
kind, files = sys.argv[1], sys.argv[2:]
D = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
lat = []
if kind == "sluice":
    for line in open(files[0]):
        j = json.loads(line)
        if j.get("outcome") != "delivered":
            continue
        us = 0
        for c in j["id"][:10]:
            us = us * 62 + D.index(c)
        t = datetime.datetime.strptime(j["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        lat.extend([(t - us / 1e6) * 1000] * len(j["rcpt"]))
else:
    # Postfix's long queue id: seconds (6) and microseconds (4) in its base-52 alphabet
    P = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
    def dec(t):
        v = 0
        for c in t:
            v = v * 52 + P.index(c)
        return v
    for line in open(files[0]):
        t, _, mid = line.split()
        m = re.match(r"<(\w{10})z\w+@", mid)
        if m:
            q = m.group(1)
            lat.append((float(t) - dec(q[:6]) - dec(q[6:]) / 1e6) * 1000)
if not lat:
    print("- -")
else:
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(f"{q(0.50):.0f} {q(0.99):.0f}")
PY
}

# submit_figures KEY T0 T_ACCEPT T_END TICKS: rates and CPU into sub[KEY,...]
submit_figures() {
  local hz
  hz=$(getconf CLK_TCK)
  sub[$1,accept]=$(calc "f'{$N / ($3 - $2):.0f}'")
  sub[$1,e2e]=$(calc "f'{$N / ($4 - $2):.0f}'")
  sub[$1,cpu]=$(calc "f'{$5 * 1000 / $hz / $N:.3f}'")
}

# submit_sink: a fresh bench_sink, one port on 127.0.1.1 with a line per message; sets SUBMIT_SINK
submit_sink() {
  [ -n "${BS_PID:-}" ] && bsink_stop
  bsink_start submit 1 1 127.0.1.1 || return 1
  SUBMIT_SINK=127.0.1.1:${BS_PORTS[0]}
}
submit_sluice() {
  local s=$1 d=$T/submit-sluice-$1 port pid t0 t1 t2 c0 c1 n
  mkdir -p "$d"
  submit_sink || { sub[sluice$s,note]="bench_sink did not start"; return; }
  port=$(peer_free_port 127.0.0.1)
  submit_conf "$d" "$port" "$s" >"$d/sluice.ini"
  "$SLUICED" -c "$d/sluice.ini" >"$d/sluiced.out" 2>&1 &
  pid=$!
  started "$pid"
  if ! wait_for 10 _sink_port_up 127.0.0.1 "$port"; then
    sub[sluice$s,note]="listener did not start: $(tail -1 "$d/sluiced.out")"
    return
  fi
  sleep 0.5 # every listener process forked
  c0=$(cpu_ticks "$pid")
  t0=$(now)
  if ! submit_source "127.0.0.1:$port" "$s"; then
    sub[sluice$s,note]="smtp-source failed: $(tail -1 "$T/submit-source.out")"
    _sluice_stop "$pid"
    return
  fi
  t1=$(now)
  wait_for "$DRAIN_LIMIT" _submit_sluice_done "$d"
  t2=$(now)
  c1=$(cpu_ticks "$pid")
  n=$(grep -c '"delivered"' "$d/delivery.log" 2>/dev/null)
  [ "${n:-0}" -eq "$N" ] || sub[sluice$s,note]="${n:-0} of $N delivered in ${DRAIN_LIMIT}s"
  submit_figures "sluice$s" "$t0" "$t1" "$t2" $((c1 - c0))
  read -r "sub[sluice$s,p50]" "sub[sluice$s,p99]" < <(submit_latency sluice "$d/delivery.log")
  _sluice_stop "$pid"
}
_submit_sluice_done() {
  queue_empty "$1/spool/queue" && [ "$(grep -c '"delivered"' "$1/delivery.log" 2>/dev/null)" -ge "$N" ]
}
_sink_port_up() { python3 -c "import socket; socket.create_connection(('$1', $2), 1)" 2>/dev/null; }

# submit_postfix SESSIONS
submit_postfix() {
  local s=$1 port d master t0 t1 t2 c0 c1 n
  submit_sink || { sub[postfix$s,note]="bench_sink did not start"; return; }
  port=$(peer_free_port 127.0.1.2)
  if ! postfix_relay_start 127.0.1.2 "$port" "${SUBMIT_SINK%:*}" "${SUBMIT_SINK#*:}" \
    "smtp_bind_address = 127.0.0.3" "enable_long_queue_ids = yes" \
    "always_add_missing_headers = yes" >"$T/submit-postfix.out" 2>&1; then
    sub[postfix$s,note]="did not start: $(tail -1 "$T/submit-postfix.out")"
    return
  fi
  d=$POSTFIX_DIR
  master=${_postfix_pid[$d]}
  c0=$(cpu_ticks "$master")
  t0=$(now)
  if ! submit_source "127.0.1.2:$port" "$s"; then
    sub[postfix$s,note]="smtp-source failed: $(tail -1 "$T/submit-source.out")"
    postfix_stop "$d"
    return
  fi
  t1=$(now)
  wait_for "$DRAIN_LIMIT" _submit_postfix_done "$d"
  t2=$(now)
  c1=$(cpu_ticks "$master")
  n=$(grep -c 'status=sent' "$(postfix_log "$d")")
  [ "$n" -eq "$N" ] || sub[postfix$s,note]="$n of $N sent in ${DRAIN_LIMIT}s"
  submit_figures "postfix$s" "$t0" "$t1" "$t2" $((c1 - c0))
  read -r "sub[postfix$s,p50]" "sub[postfix$s,p99]" < <(submit_latency postfix "$BS_DIR/log")
  postfix_stop "$d"
}
_submit_postfix_done() {
  queue_empty "$1/queue/incoming" "$1/queue/active" "$1/queue/deferred" "$1/queue/maildrop" &&
    [ "$(grep -c 'status=sent' "$(postfix_log "$1")")" -ge "$N" ]
}

# submit_ceiling SESSIONS: smtp-source into bench_sink alone, the same N messages
submit_ceiling() {
  local s=$1 t0 t1
  submit_sink || { sub[ceil$s,note]="bench_sink did not start"; return; }
  t0=$(now)
  if ! submit_source "$SUBMIT_SINK" "$s"; then
    sub[ceil$s,note]="smtp-source failed: $(tail -1 "$T/submit-source.out")"
    return
  fi
  t1=$(now)
  sub[ceil$s,accept]=$(calc "f'{$N / ($t1 - $t0):.0f}'")
}

# submit_share S KEY: KEY's accept rate as a share of the ceiling at S sessions
submit_share() {
  local a=${sub[$2$1,accept]:-} c=${sub[ceil$1,accept]:-}
  [ -n "$a" ] && [ -n "$c" ] && [ "$a" != - ] && [ "$c" != 0 ] &&
    sub[$2$1,share]=$(calc "f'{100 * $a / $c:.0f}%'")
  return 0
}

# submit_row KEY LABEL
submit_row() {
  printf '  %-28s %9s %7s %9s %8s %8s %10s  %s\n' "$2" "${sub[$1,accept]:--}" \
    "${sub[$1,share]:--}" "${sub[$1,e2e]:--}" "${sub[$1,p50]:--}" "${sub[$1,p99]:--}" \
    "${sub[$1,cpu]:--}" "${sub[$1,note]:-}"
}

# submit_ratio S WHAT TARGET: sluice/postfix of a figure
submit_ratio() {
  local a=${sub[sluice$1,$2]:-} b=${sub[postfix$1,$2]:-}
  [ -n "$a" ] && [ -n "$b" ] && [ "$a" != - ] && [ "$b" != - ] && [ "$b" != 0 ] &&
    printf '  %s sessions: %s sluice/postfix %sx (target %s)\n' "$1" "$2" \
      "$(calc "f'{$a / $b:.2f}'")" "$3"
  return 0
}

bench_submit() {
  local s
  [ -x "$bench/bench_sink" ] || { echo "bench_delivery: submit: no $bench/bench_sink"; return; }
  sluice_message | tr -d '\r' >"$T/submit-msg.eml" # smtp-source -F adds the CRLF
  for s in $SUBMIT_SESSIONS; do
    sync # both start on a file system with nothing left to write back from an earlier part:
    # each one's syncs before its 250s would flush that too (a drain's spool, Postfix's queue)
    submit_sluice "$s"
    sync
    submit_postfix "$s"
    submit_ceiling "$s"
    submit_share "$s" sluice
    submit_share "$s" postfix
  done
  [ -n "${BS_PID:-}" ] && bsink_stop
  echo "bench_delivery: submit: $N messages of $BODY bytes by smtp-source (a connection each), to bench_sink"
  printf '  %-28s %9s %7s %9s %8s %8s %10s\n' "" "accept/s" "of ceil" "e2e/s" "p50 ms" "p99 ms" \
    "CPU ms/msg"
  for s in $SUBMIT_SESSIONS; do
    submit_row "sluice$s" "sluice listener, $s sessions"
    submit_row "postfix$s" "postfix smtpd, $s sessions"
    submit_row "ceil$s" "ceiling (source->sink), $s"
  done
  for s in $SUBMIT_SESSIONS; do
    submit_ratio "$s" accept ">= 3x"
    submit_ratio "$s" e2e ">= 5x"
  done
  echo "  (latency: from the queue file's creation to the message at the sink; of ceil: the accept"
  echo "  rate's share of smtp-source's straight into bench_sink at the same sessions; see bench_listener.sh)"
}
