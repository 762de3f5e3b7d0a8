#!/usr/bin/env bash
# keep_guard.sh - a spent connection (max_deliveries_per_connection = 1) hands its units to
# its worker's next connection without asking the counters again; that is sound only while
# they would be taken as they were.  Two workers, each with a long job over its own
# connection (the receiver holds each message 0.3 s), and in the middle of their jobs:
#   1. a reload that lowers the server limit from 2 to 1;
#   2. a receiver's 450 [TS01] to one recipient (the session goes on), whose shaping rule
#      caps the binding x domain at one connection.
# Once either is in, no connection opens while another is open, and the rest of the mail is
# delivered.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

PEER_MAILDIR=0 PEER_ARGS=--timeline peer_start mx '{"hold": 0.3}' 127.0.1.1

cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = /sluice-e2e-keep-$$
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
delivered() { test "$(grep -c '"delivered"' "$T/delivery.log" 2>/dev/null)" -ge "$1"; }

# busy WHAT: 40 messages queued, the daemon started on them, both connections busy with
# mail left for long after
busy() {
  : >"$T/delivery.log"
  for i in $(seq 1 40); do
    ctl inject --binding b1 -f s@sender.test "r$i@one.test" <"$T/msg" >/dev/null
  done
  "$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
  daemon=$!
  started "$daemon"
  check "$1: two connections at once before it" \
    wait_for 20 peer_true mx "dest('127.0.1.1')['sessions'] == 2"
  check "$1: (and the jobs go on: some mail delivered, much left)" \
    eval 'wait_for 20 delivered 2 && ! delivered 20'
}

# never_crowded WHAT SINCE: the rest is delivered, and no connection opened beside another
# after SINCE (epoch seconds)
never_crowded() {
  local crowded after
  check "$1: the rest of the mail is delivered" wait_for 60 delivered 40
  kill -TERM "$daemon"
  wait "$daemon"
  crowded=$(peer_stat mx "crowded($2)")
  after=$(peer_stat mx "len(opened_since($2))")
  check "$1: after it, no connection opened while another was open ($after opened; crowded: $crowded)" \
    test "$crowded" = "[]" -a "$after" -gt 0
}

# 1. a reload to a lower limit
busy reload
sed -i 's/^server_max_outbound_connections = 2$/server_max_outbound_connections = 1/' "$T/sluice.ini"
kill -HUP "$daemon"
check "reload: to a limit of 1, in" wait_for 10 grep -q 'config generation 2' "$T/daemon.log"
never_crowded reload "$(date +%s.%N)"

# 2. a shaping cap (the limit back at 2)
sed -i 's/^server_max_outbound_connections = 1$/server_max_outbound_connections = 2/' "$T/sluice.ini"
busy cap
peer_script mx '{"hold": 0.3, "reply": {"rcpt_to": {"text": "450 4.7.0 [TS01] deferred", "times": 1}}}'
check "cap: the receiver's [TS01] takes the rule's action" \
  wait_for 10 bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -qE 'max_outbound_connections = 1 +ts01'"
never_crowded cap "$(date +%s.%N)"
