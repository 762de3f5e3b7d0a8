#!/usr/bin/env bash
# start_backlog.sh - a daemon started on a backlog over many domains (far more than the start
# scan's first chunk) gives each domain one connection that carries all of its mail, rather
# than one for the messages the first chunks happened to hold and more for the rest: during
# the scan's warm-up a domain waits until 64 of its messages are read, and a new connection
# carries a whole turn (a job, up to 128 messages) when other domains want the connection units.
# No worker is sent to a full counter on the way (the units of jobs not yet started count).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

D=100 M=30 # domains and messages each: 3,000 messages, the scan's first chunk is 256
addrs=()
for ((i = 1; i <= D; i++)); do addrs+=("127.0.1.$i"); done
PEER_MAILDIR=0 peer_start mx '{}' "${addrs[@]}"

shm=/sluice-e2e-backlog-$$
{
  cat <<INI
[global]
workers = 4
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
server_max_outbound_connections = 2
idle_timeout = 60s
server_reserve_outbound_connections = 0
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2
INI
  for ((i = 1; i <= D; i++)); do
    printf '\n[domain "d%02d.example"]\nroute = 127.0.1.%d:%s\n' "$i" "$i" "$PEER_PORT"
  done
} >"$T/sluice.ini"

# queued while the daemon is stopped, the domains interleaved as mail from many senders
# arrives: the first chunks of the start scan hold some of every domain's mail, not all
printf 'Subject: t\r\n\r\nbody\r\n' >"$T/msg"
# queue_backlog PREFIX D M: M messages to each of domains PREFIX01..PREFIXnn.example, interleaved
queue_backlog() {
  seq 0 $(($3 * $2 - 1)) | xargs -P 4 -n 50 sh -c '
    conf=$1 msg=$2 ctl=$3 p=$4 D=$5; shift 5
    for n; do "$ctl" -c "$conf" inject --binding b1 -f s@sender.example \
      "r$n@$p$(printf %02d $((n % D + 1))).example" <"$msg" >/dev/null || exit 255; done' \
    sh "$T/sluice.ini" "$T/msg" "$SLUICECTL" "$1" "$2"
}
queue_backlog d "$D" "$M"
check "the backlog is queued" test "$(ls "$T/spool/queue" | wc -l)" -eq $((M * D))

"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
delivered() { test "$(grep -c "\"delivered\"" "$T/delivery.log" 2>/dev/null)" = $((M * D)); }
check "the whole backlog is delivered" wait_for 60 delivered
check "the receiver never saw more than the server limit" peer_true mx "total['peak'] <= 2"
per_domain() {
  peer_stat mx "sorted(set(dest('127.0.1.%d' % i)['connections'] for i in range(1, $D + 1)))"
}
check "each domain got one connection, carrying all its mail (per domain: $(per_domain))" \
  test "$(per_domain)" = "[1]"
# The master counts the units of the jobs it sent until their workers take them: it never
# hands the limit's two units to more than two new connections at once, so no worker tries
# a full counter (an attempt logged "held" and a refusal on the counter, for nothing).
held=$(grep -c '"outcome":"held"' "$T/delivery.log")
check "no attempt was refused by the full server counter ($held held)" test "$held" = 0
"$SLUICECTL" -c "$T/sluice.ini" counters >"$T/counters.out" 2>&1
check "the counters show no refusal ($(grep -o 'refused [0-9]*' "$T/counters.out"))" \
  grep -q 'refused 0;' "$T/counters.out"

kill -TERM "$daemon"
wait "$daemon"

# Domains with more mail than the old 64-part job but no more than a job (128): each domain's
# turn on the shared server counter is one job, so each still gets one connection (with 64 a
# job, each needed two, and two rounds of connection set-up: a round trip each, far away).
# The first few domains may start while the scan still reads their mail and need a second
# connection for the rest (more of them under a sanitizer's slower scan): allow half again.
D2=20 M2=100
sed -i '/^\[domain /,$d' "$T/sluice.ini"
for ((i = 1; i <= D2; i++)); do
  printf '\n[domain "e%02d.example"]\nroute = 127.0.1.%d:%s\n' "$i" "$i" "$PEER_PORT"
done >>"$T/sluice.ini"
: >"$T/delivery.log"
queue_backlog e "$D2" "$M2"
check "the second backlog is queued ($D2 domains of $M2)" \
  test "$(ls "$T/spool/queue" | wc -l)" -eq $((M2 * D2))
conns() { peer_stat mx "sum(dest('127.0.1.%d' % i)['connections'] for i in range(1, $D2 + 1))"; }
before=$(conns)
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon2.log" &
daemon=$!
started "$daemon"
delivered2() { test "$(grep -c "\"delivered\"" "$T/delivery.log" 2>/dev/null)" = $((M2 * D2)); }
check "the second backlog is delivered" wait_for 60 delivered2
check "the receiver never saw more than the server limit" peer_true mx "total['peak'] <= 2"
n=$(($(conns) - before))
check "a domain of $M2 messages takes one connection, a few at most two ($n for $D2 domains)" \
  [ "$n" -le $((D2 + D2 / 2)) ]
kill -TERM "$daemon"
wait "$daemon"
