#!/usr/bin/env bash
# cluster_probe.sh - `sluicectl probe` under a cluster limit shared through a real Redis, as the
# receiver sees it.  Two sluiced nodes, p.test limited to 1 connection across the cluster
# (cluster_max_outbound_connections), a sink that holds each final reply so a connection
# stays open:
#   1. node 1 delivers (its connection holds the cluster's one unit): a probe on node 2 is
#      refused, naming the cluster counter; once node 1's connection is gone it succeeds;
#   2. while node 2's probe holds the unit, node 1 opens no connection (its lease is refused),
#      and delivers once the probe gives the unit back;
# the receiver never sees more than 1 connection, and no lease is left in Redis.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/cluster.sh"

dns_zone test <<'ZONE'
p       MX 10 mx.p
mx.p    A  127.0.1.1
ZONE
dns_start
peer_start mx '{"hold": 5}' 127.0.1.1
redis_start

cat >"$T/common.ini" <<INI
smtp_port = $(peer_port mx)
cluster_redis = 127.0.0.1:$REDIS_PORT
cluster_lease_ttl = 3s

[domain "p.test"]
cluster_max_outbound_connections = 1
INI
NODE_WORKERS=4
for n in 1 2; do node_config "$n"; done
for n in 1 2; do node_start "$n"; done
both_up() { node_ctl 1 counters >/dev/null 2>&1 && node_ctl 2 counters >/dev/null 2>&1; }
check "both nodes answer" wait_for 10 both_up

connections() { peer_stat mx "dest('127.0.1.1')['connections']"; }
leases() { redis_cli --scan --pattern '{sluice}:lease:*' | wc -l; }
no_lease() { [ "$(leases)" -eq 0 ]; }
probe2() { node_ctl 2 probe --binding b --domain p.test "$@"; }

# --- 1. node 1's connection holds the cluster's unit: node 2's probe is refused
node_inject 1 1 b p.test
check "node 1's connection is open at the sink" wait_for 30 peer_true mx "dest('127.0.1.1')['sessions'] == 1"
probe2 >"$T/refused.out" 2>&1
rc=$?
check "a probe on node 2 is refused while node 1 holds the cluster's connection (exit 1)" \
  test "$rc" -eq 1
check "the refusal names the cluster counter, its cluster-wide in-use and its limit" \
  grep -qxF 'REFUSED cluster binding_domain b p.test: 1 in use, limit 1 across the cluster' \
  "$T/refused.out"
node2_holds_none() {
  node_ctl 2 counters --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(any(c["in_use"] for c in d["counters"]))'
}
check "node 2 holds no unit after the refusal" node2_holds_none
node1_done() { no_lease && node_drained 1 && peer_true mx "dest('127.0.1.1')['sessions'] == 0"; }
check "node 1 delivers and closes its connection; its lease is given back" wait_for 30 node1_done
probe2 --hold 8 >"$T/held.out" 2>&1
rc=$?
check "once node 1's connection is gone the probe on node 2 succeeds (exit 0)" test "$rc" -eq 0
check "the probe's answer shows the cluster counter held" \
  grep -qE '^OK held for 8000 ms: .*cluster binding_domain b p\.test 1/1' "$T/held.out"
check "the probe holds the cluster's lease in Redis" test "$(leases)" -eq 1

# --- 2. node 2's probe holds the unit: node 1 does not connect until it is given back
before=$(connections)
node_inject 1 1 b p.test
refusals() { grep -c '"refused":{"scope":"cluster binding_domain b p.test","in_use":1,"limit":1}' "$T/delivery1.log"; }
twice_refused() { [ "$(refusals)" -ge 2 ]; }
check "node 1's lease is refused, again and again, while the probe holds it (delivery log)" \
  wait_for 7 twice_refused
check "node 1 opened no connection while the probe held the unit" test "$(connections)" -eq "$before"
check "node 1 delivers once the probe gives the unit back" \
  wait_for 40 peer_true mx "dest('127.0.1.1')['connections'] > $before and total['messages'] == 2"

check "the receiver never saw more than 1 connection ($(peer_stat mx "dest('127.0.1.1')['peak']"))" \
  test "$(peer_stat mx "dest('127.0.1.1')['peak']")" -eq 1
check "no lease is left in Redis" wait_for 30 no_lease
for n in 1 2; do node_stop "$n"; done
