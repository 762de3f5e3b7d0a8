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
#      its units for nothing;
#   4. two domains behind one host's limit of 1 (the master cannot know that counter before
#      the MX): once a spent connection gave a turn to the other domain, the master learns the
#      counter they share, keeps their turns to a connection's worth and holds each back while
#      the other has the host; the parts given back are the first turn's alone.
# The master's debug log names every job and its parts, and every part's outcome: one given
# back at a spent connection is "y".  (A part may also come back "w" when the worker was
# refused the unit it was sent for, another worker reopening its next connection having taken
# it first: that is not what these checks look at.)
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

PEER_MAILDIR=0 peer_start mx '{}' 127.0.1.1 127.0.1.2 127.0.1.3

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
[binding "b3"]
bind_address = 127.0.0.4

[domain "one.test"]
route = 127.0.1.1:$PEER_PORT
[domain "two.test"]
route = 127.0.1.2:$PEER_PORT

[host "127.0.1.3"]
scope_max_outbound_connections = 1
[domain "three.test"]
route = 127.0.1.3:$PEER_PORT
[domain "four.test"]
route = 127.0.1.3:$PEER_PORT
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
given_back() { grep ' job [0-9]* done by worker pid ' "$1" | grep -oE '=y[0-9]*h?\b' | wc -l; }
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

# 4. two domains behind one host's limit of 1, the server's limit far above it
sed -i 's/^server_max_outbound_connections = 1$/server_max_outbound_connections = 10/' "$T/sluice.ini"
: >"$T/delivery.log"
queue b3 150 three.test four.test
run "$T/daemon4.log"
check "300 messages to two domains behind one host are delivered" wait_for 60 delivered 300
check "one connection at a time to that host" peer_true mx "source('127.0.0.4')['peak'] == 1"
stop
check "only the first turns gave mail back, fewer than one domain's 150 messages ($(given_back "$T/daemon4.log") parts given back)" \
  test "$(given_back "$T/daemon4.log")" -lt 150
check "no more than a few jobs beyond one per message ($(jobs_sent "$T/daemon4.log") jobs for 300)" \
  test "$(jobs_sent "$T/daemon4.log")" -lt 400
# among the deliveries (the log also has a line for each job a host refused before the master
# knew the host's counter)
first_four=$(grep '"delivered"' "$T/delivery.log" | grep -n -m1 '"domain":"four.test"' | cut -d: -f1)
check "the two domains took turns: four.test's first message came before three.test's tenth" \
  test "$first_four" -lt 10
