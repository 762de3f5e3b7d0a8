#!/usr/bin/env bash
# keep_cap.sh - a spent connection (max_deliveries_per_connection = 1) hands its units to its
# worker's next connection without asking the counters again; that is sound only while no
# shaping action caps them tighter than they were taken.  Two workers, each with a long job
# over its own connection; a receiver's 450 [TS01] to one recipient (the session goes on)
# caps the binding x domain at one connection: once the action is in, no connection opens
# while another is open, and the rest of the mail is delivered.  The receiver holds each
# message 0.3 s, so the action finds both connections busy.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

PEER_MAILDIR=0 PEER_ARGS=--timeline peer_start mx '{"hold": 0.3}' 127.0.1.1

cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = /sluice-e2e-keepcap-$$
spool_dir = $T/spool
delivery_log = $T/delivery.log
server_max_outbound_connections = 2
server_reserve_outbound_connections = 0
max_deliveries_per_connection = 1
retry_interval = 1s
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2

[domain "one.test"]
route = 127.0.1.1:$PEER_PORT

[shaping "ts01"]
domain = one.test
match = /TS01/
trigger = immediate
action = max_outbound_connections = 1
duration = 1h
INI
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }

printf 'Subject: t\r\n\r\nbody\r\n' >"$T/msg"
for i in $(seq 1 40); do
  ctl inject --binding b1 -f s@sender.test "r$i@one.test" <"$T/msg" >/dev/null
done
delivered() { test "$(grep -c '"delivered"' "$T/delivery.log" 2>/dev/null)" -ge "$1"; }

"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "two connections at once before the action" \
  wait_for 20 peer_true mx "dest('127.0.1.1')['peak'] == 2 and dest('127.0.1.1')['sessions'] == 2"
check "(and the jobs go on: some mail delivered, much left)" \
  eval 'wait_for 20 delivered 2 && ! delivered 20'
peer_script mx '{"hold": 0.3, "reply": {"rcpt_to": {"text": "450 4.7.0 [TS01] deferred", "times": 1}}}'
check "the receiver's [TS01] takes the rule's action" \
  wait_for 10 bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -qE 'max_outbound_connections = 1 +ts01'"
capped=$(date +%s.%N)
check "the rest of the mail is delivered" wait_for 60 delivered 40
kill -TERM "$daemon"
wait "$daemon"

crowded=$(peer_stat mx "crowded($capped)")
after=$(peer_stat mx "len(opened_since($capped))")
check "after the action, no connection opened while another was open ($after opened; crowded: $crowded)" \
  test "$crowded" = "[]" -a "$after" -gt 0
