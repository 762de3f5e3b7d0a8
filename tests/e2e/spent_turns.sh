#!/usr/bin/env bash
# spent_turns.sh - a connection spent by max_deliveries_per_connection = 1, under a small
# server limit, never makes the master hand the same mail out twice:
#   1. one domain that wants more connections than the limit allows: the only mail that
#      waits for the counter is its own, so the worker opens its next connection itself
#      instead of giving its job back (which would only bring the same mail back to it);
#   2. two domains that share a limit of 1 (another binding, to count its connections apart),
#      each with more mail than a job holds: each turn on the counter is one message (what one
#      connection carries), so no job carries mail it must give back to the other's turn, and
#      the two take turns;
#   3. a spent connection closes with its job, not after idle_timeout (60 s here): it holds
#      its units for nothing.
# The master's debug log names every job and its parts, and every part's outcome: one given
# back at a spent connection is "y".  (A part may also come back "w" when the worker was
# refused the unit it was sent for, another worker reopening its next connection having taken
# it first: that is not what these checks look at.)
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

PEER_MAILDIR=0 peer_start mx '{}' 127.0.1.1 127.0.1.2

shm=/sluice-e2e-spent-$$
cat >"$T/sluice.ini" <<INI
[global]
workers = 4
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
log_level = debug
server_max_outbound_connections = 2
server_reserve_outbound_connections = 0
max_deliveries_per_connection = 1
idle_timeout = 60s
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2
[binding "b2"]
bind_address = 127.0.0.3

[domain "one.test"]
route = 127.0.1.1:$PEER_PORT
[domain "two.test"]
route = 127.0.1.2:$PEER_PORT
INI

printf 'Subject: t\r\n\r\nbody\r\n' >"$T/msg"
# queue BINDING N DOMAIN...: N messages to each domain, interleaved, while the daemon is stopped
queue() {
  local b=$1 n=$2 i d
  shift 2
  for ((i = 1; i <= n; i++)); do
    for d; do
      "$SLUICECTL" -c "$T/sluice.ini" inject --binding "$b" -f s@sender.test "r$i@$d" <"$T/msg" \
        >/dev/null || return 1
    done
  done
}
delivered() { test "$(grep -c '"delivered"' "$T/delivery.log" 2>/dev/null)" = "$1"; }
# given_back LOG: the parts workers gave back at a spent connection ("y" in "job N done by
# worker pid P: ID.K=y ...")
given_back() { grep ' job [0-9]* done by worker pid ' "$1" | grep -o '=y\b' | wc -l; }
jobs_sent() { grep -c ' job [0-9]* to worker pid ' "$1"; }
run() { # run LOG: start the daemon on the queue, until it is delivered
  "$SLUICED" -c "$T/sluice.ini" 2>"$1" &
  daemon=$!
  started "$daemon"
}
stop() { kill -TERM "$daemon"; wait "$daemon"; }

# 1. one domain, 40 messages, 2 connections at a time, one message each
queue b1 40 one.test
run "$T/daemon1.log"
check "40 messages to one domain are delivered" wait_for 60 delivered 40
check "over 40 connections, never more than 2 at once" \
  peer_true mx "dest('127.0.1.1')['connections'] == 40 and dest('127.0.1.1')['peak'] <= 2"
stop
check "no job gave its mail back ($(given_back "$T/daemon1.log") parts given back)" \
  test "$(given_back "$T/daemon1.log")" -eq 0
check "the jobs carried several messages each, not one connection's worth ($(jobs_sent "$T/daemon1.log") jobs)" \
  test "$(jobs_sent "$T/daemon1.log")" -lt 20

# 2. two domains share a limit of 1: turns of one message
sed -i 's/^server_max_outbound_connections = 2$/server_max_outbound_connections = 1/' "$T/sluice.ini"
: >"$T/delivery.log"
queue b2 150 one.test two.test
run "$T/daemon2.log"
check "300 messages to two domains are delivered" wait_for 60 delivered 300
check "one connection at a time" peer_true mx "source('127.0.0.3')['peak'] == 1"
check "no job gave its mail back: every turn carried what a connection may ($(given_back "$T/daemon2.log") parts given back)" \
  test "$(given_back "$T/daemon2.log")" -eq 0
first_two=$(grep -n -m1 '"domain":"two.test".*"delivered"' "$T/delivery.log" | cut -d: -f1)
check "the two domains took turns: two.test's first message came before one.test's tenth" \
  test "$first_two" -lt 10

# 3. one message on b1, with the daemon running
"$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test last@one.test <"$T/msg" >/dev/null
check "one more message is delivered" wait_for 20 delivered 301
check "and its spent connection closes at once, not after idle_timeout (60 s)" \
  wait_for 5 peer_true mx "source('127.0.0.2')['connections'] == 41 and source('127.0.0.2')['sessions'] == 0"
stop
