#!/usr/bin/env bash
# cluster.sh - cluster limits counted across three nodes through one real Redis, as the
# receiver sees them.  Three sluiced nodes on this machine (own spool, shared memory, source
# addresses) deliver to one scripted sink that holds every final reply, so connections
# overlap; the peak the sink observes across every node must equal each cluster limit and
# never pass it, in every scope:
#   cluster_max_outbound_connections (binding x domain, across nodes)      d.test  3
#   cluster_scope_max in [domain] (Global::Domain, every binding and node)  e.test  4
#   cluster_scope_max in [binding_group g domain] (Binding_Group::Domain)   h.test  2
#   cluster_scope_max in [host] (Global::Host)                              mx.f    2
#   cluster_server_max in [binding s] (every connection of s, every node)   s.test  3
# then each node's counters show its holds, the cluster-wide in-use and the limit, and
# `sluicectl cluster` lists the three nodes with their heartbeats.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/redis.sh"
. "$(dirname "$0")/lib/cluster.sh"

dns_zone test <<'ZONE'
d       MX 10 mx.d
mx.d    A  127.0.1.1
e       MX 10 mx.e
mx.e    A  127.0.1.2
f       MX 10 mx.f
mx.f    A  127.0.1.3
h       MX 10 mx.h
mx.h    A  127.0.1.4
s       MX 10 mx.s
mx.s    A  127.0.1.5
ZONE
dns_start
peer_start mx '{"hold": 0.4}' 127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4 127.0.1.5
redis_start

cat >"$T/common.ini" <<INI
smtp_port = $(peer_port mx)
cluster_redis = 127.0.0.1:$REDIS_PORT
cluster_lease_ttl = 3s

[domain "d.test"]
cluster_max_outbound_connections = 3

[domain "e.test"]
cluster_scope_max_outbound_connections = 4

[binding_group "g" domain "h.test"]
cluster_scope_max_outbound_connections = 2

[host "mx.f.test"]
cluster_scope_max_outbound_connections = 2
INI
NODE_BINDING_S="cluster_server_max_outbound_connections = 3"
for n in 1 2 3; do node_config "$n"; done
check "config check passes on a node" node_ctl 1 config check

for n in 1 2 3; do
  node_inject "$n" 20 b d.test
  node_inject "$n" 14 b e.test
  node_inject "$n" 6 s e.test
  node_inject "$n" 14 b f.test
  node_inject "$n" 14 b h.test
  node_inject "$n" 14 s s.test
done
for n in 1 2 3; do node_start "$n"; done

check "every message is delivered through the three nodes" wait_for 120 all_drained
dest_peak() { peer_stat mx "dest('$1')['peak']"; }
check "d.test (cluster_max 3 across nodes) peaks at 3 ($(dest_peak 127.0.1.1))" \
  test "$(dest_peak 127.0.1.1)" -eq 3
check "e.test (Global::Domain 4, two bindings) peaks at 4 ($(dest_peak 127.0.1.2))" \
  test "$(dest_peak 127.0.1.2)" -eq 4
check "mx.f.test (Global::Host 2) peaks at 2 ($(dest_peak 127.0.1.3))" \
  test "$(dest_peak 127.0.1.3)" -eq 2
check "h.test (Binding_Group::Domain 2) peaks at 2 ($(dest_peak 127.0.1.4))" \
  test "$(dest_peak 127.0.1.4)" -eq 2
check "binding s (cluster_server_max 3) peaks at 3 on s.test ($(dest_peak 127.0.1.5))" \
  test "$(dest_peak 127.0.1.5)" -eq 3
srcs() { peer_stat mx "sum(1 for n in (2, 3, 4) if pair('127.0.0.%d' % n, '$1')['connections'] > 0)"; }
check "every node delivered to d.test" test "$(srcs 127.0.1.1)" -eq 3
check "the sink accepted every message" \
  peer_true mx "total['messages'] == $((3 * (20 + 14 + 6 + 14 + 14 + 14)))"
