#!/usr/bin/env bash
# keep_reload.sh - a spent connection (max_deliveries_per_connection = 1) hands its units to
# its worker's next connection without asking the counters again; that is sound only while
# the limits it took them under still hold.  A reload that lowers the limit in the middle of
# two workers' jobs: their next connections take their units anew, under the new limit, so
# that once the reload is in, no connection opens while another is open (limit 1); the rest
# of the mail is delivered.  The receiver holds each message 0.3 s, so jobs are long and the
# reload finds both connections busy.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

PEER_MAILDIR=0 PEER_ARGS=--timeline peer_start mx '{"hold": 0.3}' 127.0.1.1

cat >"$T/sluice.ini" <<INI
[global]
workers = 4
shm_name = /sluice-e2e-keep-$$
spool_dir = $T/spool
delivery_log = $T/delivery.log
server_max_outbound_connections = 2
server_reserve_outbound_connections = 0
max_deliveries_per_connection = 1
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2

[domain "one.test"]
route = 127.0.1.1:$PEER_PORT
INI

printf 'Subject: t\r\n\r\nbody\r\n' >"$T/msg"
for i in $(seq 1 40); do
  "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test "r$i@one.test" \
    <"$T/msg" >/dev/null
done
delivered() { test "$(grep -c '"delivered"' "$T/delivery.log" 2>/dev/null)" -ge "$1"; }

"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "two connections at once under the first limit" \
  wait_for 20 peer_true mx "dest('127.0.1.1')['peak'] == 2 and dest('127.0.1.1')['sessions'] == 2"
check "(and the jobs go on: some mail delivered, much left)" \
  eval 'wait_for 20 delivered 2 && ! delivered 20'
sed -i 's/^server_max_outbound_connections = 2$/server_max_outbound_connections = 1/' "$T/sluice.ini"
kill -HUP "$daemon"
check "the reload to a limit of 1 is in" wait_for 10 grep -q 'config generation 2' "$T/daemon.log"
reloaded=$(date +%s.%N)
check "the rest of the mail is delivered" wait_for 60 delivered 40
kill -TERM "$daemon"
wait "$daemon"

crowded=$(peer_stat mx "crowded($reloaded)")
after=$(peer_stat mx "len(opened_since($reloaded))")
check "after the reload, no connection opened while another was open ($after opened; crowded: $crowded)" \
  test "$crowded" = "[]" -a "$after" -gt 0
