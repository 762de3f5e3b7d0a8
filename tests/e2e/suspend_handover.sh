#!/usr/bin/env bash
# suspend_handover.sh - a suspension frees what its destination held for others, with one
# server slot (server_max_outbound_connections = 1) and idle_timeout = 60s:
#   1. a destination waiting for the slot, then suspended, waits for it no more: counters
#      shows nobody waiting once the slot is free (a stale wait made workers give up
#      connections and shorten turns for a waiter that was not there);
#   2. a destination suspended with mail ready, while its connection is open, gives that
#      connection up to mail that waits for the slot at once, not after idle_timeout.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-shandover-$$
peer_start mx '{"hold": 0.5}' 127.0.1.1 # every message takes half a second
{
  ini_global 3
  cat <<INI
server_max_outbound_connections = 1
server_reserve_outbound_connections = 0
idle_timeout = 60s
retry_interval = 1h
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2

[domain "/.*[.]test$/"]
route = 127.0.1.1:$(peer_port mx)

[domain "x.test"]
route = 127.0.1.1:$(peer_port mx)
max_deliveries_per_connection = 2
INI
} >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
inject() { # DOMAIN N
  for i in $(seq 1 "$2"); do
    printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test "r$i@$1" >/dev/null
  done
}
delivered() { [ "$(grep -c "\"domain\":\"$1\".*\"outcome\":\"delivered\"" "$T/delivery.log" 2>/dev/null)" -ge "$2" ]; }
server_waiting() { # the server counter's destinations waiting, from counters --json
  ctl counters --json | python3 -c '
import json, sys
print(sum(c["waiting"] for c in json.load(sys.stdin)["counters"] if c["scope"] == "server"))'
}
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
up() { ctl counters >/dev/null 2>&1; }
check "the daemon comes up" wait_for 10 up

# 1. y.test waits for the slot x.test's connections hold (a new one every 2 messages);
# suspended, it waits no more
inject x.test 6
check "x.test is being delivered" wait_for 15 delivered x.test 1
inject y.test 1
check "y.test waits for the server slot" wait_for 10 eval '[ "$(server_waiting)" -eq 1 ]'
ctl suspend --domain y.test --reason "test" >/dev/null
check "x.test drains" wait_for 30 delivered x.test 6
check "suspended, y.test waits for the slot no more ($(server_waiting) waiting)" \
  wait_for 5 eval '[ "$(server_waiting)" -eq 0 ]'
ctl resume --domain y.test >/dev/null
check "resumed, y.test goes" wait_for 15 delivered y.test 1

# 2. a.test suspended with mail ready and its connection open: c.test gets the slot at once
inject a.test 8
check "a.test is being delivered again" wait_for 15 delivered a.test 7
ctl suspend --domain a.test --reason "test" >/dev/null
inject c.test 1
t0=$SECONDS
check "c.test is delivered long before idle_timeout (60 s)" wait_for 20 delivered c.test 1
echo "# c.test delivered after $((SECONDS - t0)) s"
check "a.test's mail still waits, suspended" eval '! delivered a.test 14'
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
echo "1..$_n"
