#!/usr/bin/env bash
# cluster_failover.sh - cluster limits through failures, as the receiver sees them: three
# sluiced nodes and one real Redis (cluster_lease_ttl 3s), d.test limited to 3 connections
# across the cluster, a sink that holds each final reply so the limit stays saturated.
#   1. kill -9 of the node holding every slot: the others take them within the lease's life
#      plus two seconds, and the receiver never sees more than 3;
#   2. Redis stopped mid-run, cluster_on_failure = closed: no new connection while it is down,
#      the open ones close once their leases run out; delivery resumes when it returns;
#   3. the same under share: each node keeps to its share (3 / 3 nodes = 1) while it is down;
#   4. Redis restarted empty under load: the holders re-establish their leases first, the
#      receiver never sees more than 3.
# Each part has a sink of its own, so its peak covers that part alone.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/cluster.sh"

TTL=3
dns_zone test <<'ZONE'
d       MX 10 mx.d
mx.d    A  127.0.1.1
ZONE
dns_start
redis_start
PEER_ARGS=--timeline peer_start kill '{"hold": 1.5}' 127.0.1.1
peer_start closed '{"hold": 0.5}' 127.0.1.1
PEER_ARGS=--timeline peer_start share '{"hold": 0.5}' 127.0.1.1
peer_start empty '{"hold": 0.5}' 127.0.1.1

# configure SINK [EXTRA]: every node delivers d.test to that sink
configure() {
  cat >"$T/common.ini" <<INI
smtp_port = $(peer_port "$1")
cluster_redis = 127.0.0.1:$REDIS_PORT
cluster_lease_ttl = ${TTL}s
${2:-}

[domain "d.test"]
cluster_max_outbound_connections = 3
INI
  for n in 1 2 3; do node_config "$n"; done
}
sessions() { peer_stat "$1" "dest('127.0.1.1')['sessions']"; }
connections() { peer_stat "$1" "dest('127.0.1.1')['connections']"; }
peak() { peer_stat "$1" "dest('127.0.1.1')['peak']"; }
saturated() { [ "$(sessions "$1")" -eq 3 ]; }
no_session() { [ "$(sessions "$1")" -eq 0 ]; }
drained() { node_drained 1 && node_drained 2 && node_drained 3; }
# no_fall: no node's log since LOGGED[node] lines has its count of nodes alive fall from 3
no_fall() {
  for n in 1 2 3; do
    ! tail -n +$((LOGGED[n] + 1)) "$T/daemon$n.log" | grep -q "nodes\? alive (was 3)" || return 1
  done
}
# all_seen N: in every node's log since LOGGED[node] lines, its last heartbeat saw N nodes alive
all_seen() {
  for n in 1 2 3; do
    tail -n +$((LOGGED[n] + 1)) "$T/daemon$n.log" | grep -o "cluster: [0-9]* nodes\? alive" |
      tail -n 1 | grep -q "cluster: $1 nodes alive" || return 1
  done
}
stop_all() { for n in 1 2 3; do node_stop "$n"; done; }

# --- 1. kill -9 of the node that holds every slot
configure kill
node_inject 1 40 b d.test
node_start 1
check "node 1 alone takes the 3 slots" wait_for 30 saturated kill

# kill -9 of one worker holding a lease: the master removes its lease at the reap, at once
# rather than after the lease's life
lease_key='{sluice}:lease:binding_domain b d.test'
victim=$(redis_cli zrange "$lease_key" 0 0 | cut -d: -f2)
check "a worker of node 1 holds a lease (member node1:$victim:...)" test -n "$victim"
kill -KILL "$victim"
t_kill=$(date +%s.%N)
lease_gone() { ! redis_cli zrange "$lease_key" 0 -1 | grep -q "^node1:$victim:"; }
check "its lease is gone from Redis within two seconds, not after the ttl" wait_for 2 lease_gone
gone=$(python3 -c "import time; print(round(time.time() - $t_kill, 2))")
check "the master says it removed it (${gone}s)" \
  wait_for 2 grep -q 'cluster leases of a dead worker removed' "$T/daemon1.log"
check "node 1 takes the slot again" wait_for 10 saturated kill
node_inject 2 10 b d.test
node_inject 3 10 b d.test
node_start 2
node_start 3
sleep 2
others() { peer_stat kill "pair('127.0.0.3', '127.0.1.1')['connections'] + pair('127.0.0.4', '127.0.1.1')['connections']"; }
check "nodes 2 and 3 get nothing while node 1 holds the slots" test "$(others)" -eq 0
t0=$(date +%s.%N)
node_kill 1
others_connected() { [ "$(others)" -gt 0 ]; }
check "after kill -9 of node 1, nodes 2 and 3 connect" wait_for $((TTL + 5)) others_connected
first=$(peer_stat kill "min(t['events'][0][1] for t in d['timeline'].values() if t['src'] in ('127.0.0.3', '127.0.0.4'))")
delay=$(python3 -c "print(round($first - $t0, 2))")
check "they took the dead node's slots within cluster_lease_ttl + 2 s (${delay}s)" \
  python3 -c "import sys; sys.exit(not $delay <= $TTL + 2)"
two_three_drained() { node_drained 2 && node_drained 3; }
check "nodes 2 and 3 deliver their mail" wait_for 60 two_three_drained
check "the receiver never saw more than 3 ($(peak kill))" test "$(peak kill)" -eq 3
stop_all
rm -rf "$T"/spool1/queue/*

# --- 2. Redis stopped mid-run under cluster_on_failure = closed
configure closed
for n in 1 2 3; do node_inject "$n" 40 b d.test; done
for n in 1 2 3; do node_start "$n"; done
check "closed: the three nodes saturate the limit" wait_for 60 saturated closed
redis_stop
sleep 0.5
c0=$(connections closed)
check "closed: the open connections close once their leases run out" wait_for $((TTL + 3)) no_session closed
sleep 2
check "closed: no new connection while Redis is down ($c0 then $(connections closed))" \
  test "$(connections closed)" -eq "$c0"
check "closed: the mail waits (still queued)" test "$(( $(node_queued 1) + $(node_queued 2) + $(node_queued 3) ))" -gt 0
redis_start
check "closed: delivery resumes when Redis returns, and drains" wait_for 90 drained
check "closed: the receiver never saw more than 3 ($(peak closed))" test "$(peak closed)" -eq 3
stop_all

# --- 3. Redis stopped mid-run under cluster_on_failure = share: 3 / 3 nodes = 1 each
configure share "cluster_on_failure = share"
for n in 1 2 3; do node_inject "$n" 60 b d.test; done
for n in 1 2 3; do
  LOGGED[$n]=$(wc -l <"$T/daemon$n.log")
  node_start "$n"
done
check "share: the three nodes saturate the limit" wait_for 60 saturated share
# A share is the limit divided by the nodes this node's heartbeats saw alive: Redis goes down
# only once every node's heartbeat has seen the other two (one started just before Redis went
# down would rightly count itself alone).
check "share: each node has seen the three nodes alive" wait_for 10 all_seen 3
redis_stop
sleep $((2 * TTL + 1)) # connections over a node's share close; shares open after 2 ttl
m0=$(peer_stat share "dest('127.0.1.1')['messages']")
worst=0
for _ in $(seq 40); do
  m=$(peer_stat share "max(pair('127.0.0.%d' % n, '127.0.1.1')['sessions'] for n in (2, 3, 4))")
  [ "$m" -gt "$worst" ] && worst=$m
  sleep 0.1
done
check "share: while Redis is down no node has more than its share of 1 open (saw $worst)" \
  test "$worst" -le 1
check "share: the nodes keep delivering within their shares" \
  test "$(peer_stat share "dest('127.0.1.1')['messages']")" -gt "$m0"
redis_start
check "share: delivery goes on when Redis returns, and drains" wait_for 90 drained
check "share: no node's count of nodes alive fell when Redis came back (it would widen its share)" \
  no_fall
check "share: the receiver never saw more than 3 ($(peak share))" test "$(peak share)" -eq 3
stop_all

# --- 4. Redis restarted empty under load: no overshoot
configure empty
for n in 1 2 3; do node_inject "$n" 40 b d.test; done
for n in 1 2 3; do
  LOGGED[$n]=$(wc -l <"$T/daemon$n.log")
  node_start "$n"
done
check "empty: the three nodes saturate the limit" wait_for 60 saturated empty
check "empty: each node has seen the three nodes alive" wait_for 10 all_seen 3
redis_kill
redis_start
check "empty: every message is delivered" wait_for 90 drained
check "empty: no node's count of nodes alive fell when Redis came back empty" no_fall
check "empty: the receiver never saw more than 3 across the restart ($(peak empty))" \
  test "$(peak empty)" -eq 3
stop_all
