#!/usr/bin/env bash
# latency.sh - at light load over many domains, mail is handed to a connection at once, not
# when an idle connection to an earlier domain times out: 30 messages to 30 domains, one
# every 50 ms, under a server limit of 4 and idle_timeout 60s, all arrive long before the
# first idle connection could time out, and never over the limit at the receiver.  The
# metrics show where the time went: per binding, histograms of queued, connect and
# transaction time, one observation per message or connection.  (How fast is measured by
# make bench, against Postfix; this checks behaviour.)
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-lat-$$
peer_start sink '{}' 127.0.1.50
cat >"$T/sluice.ini" <<INI
[global]
workers = 8
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
server_max_outbound_connections = 4
server_reserve_outbound_connections = 0
idle_timeout = 60s
retry_interval = 1h

[binding "b1"]
bind_address = 127.0.0.2

[domain "/^l[0-9]+\.test\$/"]
route = 127.0.1.50:$(peer_port sink)
INI
notify_listener "$T/notify.log"
"$SLUICED" -d -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon is ready" wait_for 10 grep -q '^READY=1' "$T/notify.log"

t0=$(date +%s)
for i in $(seq 30); do
  printf 'Subject: %s\r\n\r\nbody\r\n' "$i" |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test "u@l$i.test" >/dev/null
  sleep 0.05
done
check "30 messages to 30 domains all arrive" \
  wait_for 30 peer_true sink "dest('127.0.1.50')['messages'] == 30"
t1=$(date +%s)
check "long before an idle connection's 60 s timeout could free a slot ($((t1 - t0)) s)" \
  test $((t1 - t0)) -lt 30
check "the receiver never saw more than the server limit of 4" \
  peer_true sink "dest('127.0.1.50')['peak'] <= 4"

"$SLUICECTL" -c "$T/sluice.ini" metrics >"$T/metrics.txt"
# count PHASE: the histogram's count for binding b1 and phase PHASE
count() { sed -n "s/^sluice_delivery_phase_seconds_count{binding=\"b1\",phase=\"$1\"} //p" "$T/metrics.txt"; }
check "metrics: one queued-time observation per message ($(count queued))" test "$(count queued)" -eq 30
check "metrics: one transaction-time observation per message ($(count transaction))" \
  test "$(count transaction)" -eq 30
check "metrics: connect time for every connection opened ($(count connect))" \
  test "$(count connect)" -ge 1 -a "$(count connect)" -le 30
check "metrics: no TLS handshakes counted without TLS" test "$(count tls)" -eq 0
check "metrics: the +Inf bucket equals the count" \
  grep -q '^sluice_delivery_phase_seconds_bucket{binding="b1",phase="queued",le="+Inf"} 30$' "$T/metrics.txt"
check "metrics: buckets only ever grow with le" python3 - "$T/metrics.txt" <<'PY'
import re, sys
last = {}
for line in open(sys.argv[1]):
    m = re.match(r'sluice_delivery_phase_seconds_bucket\{binding="([^"]*)",phase="([^"]*)",le="([^"]*)"\} (\d+)', line)
    if m:
        k = (m[1], m[2])
        if int(m[4]) < last.get(k, 0):
            sys.exit(1)
        last[k] = int(m[4])
sys.exit(0 if last else 1)
PY
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
