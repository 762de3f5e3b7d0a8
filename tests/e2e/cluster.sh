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
  node_inject "$n" 6 c e.test
  node_inject "$n" 14 b f.test
  node_inject "$n" 14 b h.test
  node_inject "$n" 14 s s.test
done
for n in 1 2 3; do node_start "$n"; done

# While the nodes deliver: node 1's counters show the cluster-wide in-use from Redis beside
# its own holds, and sluicectl cluster lists the three nodes alive.
cluster_full() {
  node_ctl 1 counters --json 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)["cluster"]
except ValueError:
    sys.exit(1)  # the daemon is not up yet
c = next((c for c in d["counters"] if c["scope"] == "binding_domain" and c["key"] == "b d.test"),
         {"cluster_in_use": -1})
sys.exit(not (c["cluster_in_use"] == 3 and c["limit"] == 3 and 0 <= c["node_holds"] < 3))'
}
check "counters --json: d.test's cluster counter at 3 of 3 across nodes, fewer held by node 1" \
  wait_for 60 cluster_full
node_ctl 1 counters >"$T/counters.txt"
check "counters: the cluster section names the counter with its cluster-wide in-use" \
  grep -Eq '^binding_domain b d.test +[0-9]+ +[0-9]+ +3$' "$T/counters.txt"
node_ctl 1 metrics >"$T/metrics.txt"
check "metrics: sluice_cluster_in_use per cluster counter, Redis up" \
  grep -q '^sluice_cluster_in_use{scope="binding_domain b d.test"} [0-3]$' "$T/metrics.txt"
check "metrics: sluice_cluster_redis_up 1" grep -qx 'sluice_cluster_redis_up 1' "$T/metrics.txt"
nodes_alive() {
  node_ctl 2 cluster --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(sorted(n["name"] for n in d["nodes"] if n["alive"]) != ["node1", "node2", "node3"])'
}
check "sluicectl cluster lists node1, node2 and node3 alive" wait_for 10 nodes_alive
node_ctl 3 cluster >"$T/cluster.txt"
check "sluicectl cluster's table: a line per node with its heartbeat and holds" \
  test "$(grep -Ec '^node[123] +yes +[0-9.]+s ago +[0-9]+$' "$T/cluster.txt")" -eq 3

# a miss says what the mail left waits for, on each node that still has some
if wait_for 120 all_drained; then
  ok "every message is delivered through the three nodes"
else
  not_ok "every message is delivered through the three nodes"
  for n in 1 2 3; do
    node_drained "$n" && continue
    echo "# node $n: $(node_queued "$n") messages queued"
    node_ctl "$n" queue 2>&1 | sed "s/^/#   queue$n: /" | head -n 8
    ps -o pid=,stat=,wchan:24=,etime=,args= --ppid "${NODE_PID[$n]}" 2>&1 | sed "s/^/#   ps$n: /"
    node_ctl "$n" counters --nonzero 2>&1 | sed "s/^/#   counters$n: /" | head -n 10
    grep -E ': (warning|error): |died|lease' "$T/daemon$n.log" | tail -n 8 | cut -c1-200 |
      sed "s/^/#   daemon$n: /"
  done
  redis_cli --scan --pattern '{sluice}:lease:*' 2>&1 | while read -r k; do
    echo "#   redis: $k $(redis_cli zrange "$k" 0 -1 withscores | tr '\n' ' ')"
  done
fi
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
check "a refused lease names the cluster scope in the delivery log" \
  bash -c "grep -hq '\"refused\":{\"scope\":\"cluster binding_domain b d.test\",\"in_use\":3,\"limit\":3}' $T/delivery[123].log"
counts_zero() {
  node_ctl "$1" counters --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(any(c["in_use"] for c in d["counters"]) or any(c["cluster_in_use"] for c in d["cluster"]["counters"]))'
}
check "every count, local and cluster-wide, is back at 0" wait_for 10 counts_zero 1
check "no lease is left in Redis" test "$(redis_cli --scan --pattern '{sluice}:lease:*' | wc -l)" -eq 0
