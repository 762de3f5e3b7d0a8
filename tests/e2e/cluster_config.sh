#!/usr/bin/env bash
# cluster_config.sh - the cluster settings as an operator meets them: a cluster limit with no
# cluster_redis is enforced on the node alone and config check says so once; a bad
# cluster_redis or password is one clear line in config check and at start; a password Redis
# takes works; grouped bindings refuse a cluster limit.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/cluster.sh"

dns_zone test <<'ZONE'
d       MX 10 mx.d
mx.d    A  127.0.1.1
ZONE
dns_start
peer_start mx '{"hold": 0.3}' 127.0.1.1

# --- No cluster_redis: the node counts its own connections against the cluster limit.
cat >"$T/common.ini" <<INI
smtp_port = $(peer_port mx)

[domain "d.test"]
cluster_max_outbound_connections = 2
INI
node_config 1
node_ctl 1 config check >"$T/check.out" 2>"$T/check.err"
check "config check passes (exit 0) without cluster_redis" test $? -eq 0
check "and says once that the cluster limits count this node alone" \
  test "$(grep -c 'cluster limits are set but cluster_redis is not' "$T/check.err")" -eq 1
node_inject 1 20 b d.test
node_start 1
check "every message is delivered" wait_for 60 node_drained 1
check "the node alone never passed the cluster limit (peak 2)" \
  test "$(peer_stat mx "dest('127.0.1.1')['peak']")" -eq 2
check "sluiced said it once at start" \
  test "$(grep -c 'cluster_redis is not' "$T/daemon1.log")" -eq 1
node_stop 1

# --- cluster_redis where nothing listens: a warning line, the check passes, the daemon runs.
dead=$(peer_free_port 127.0.0.1)
node_config 1 "cluster_redis = 127.0.0.1:$dead"
node_ctl 1 config check >"$T/check.out" 2>"$T/check.err"
check "config check with an unreachable cluster_redis exits 0" test $? -eq 0
check "with one line naming it and why ($(cat "$T/check.err"))" \
  grep -qx "$T/node1.ini:[0-9]*: warning: cluster_redis 127.0.0.1:$dead: cannot connect: Connection refused" \
  "$T/check.err"
check "and only that line" test "$(wc -l <"$T/check.err")" -eq 1
: >"$T/daemon1.log"
node_start 1
check "sluiced starts and says it in one line" \
  wait_for 10 grep -q "cluster_redis 127.0.0.1:$dead: cannot connect: Connection refused; cluster limits: no new connection until it answers" "$T/daemon1.log"
check "sluiced keeps running" alive "${NODE_PID[1]}"
node_stop 1

# --- A Redis with a password: a wrong one is an error in config check and at start.
redis_start --requirepass s3cret
printf 'wrong\n' >"$T/bad.pw"
printf 's3cret\n' >"$T/good.pw"
node_config 1 "cluster_redis = 127.0.0.1:$REDIS_PORT
cluster_redis_password_file = $T/bad.pw"
node_ctl 1 config check >"$T/check.out" 2>"$T/check.err"
check "config check with a refused password exits 1" test $? -eq 1
check "with one line saying Redis refused it ($(cat "$T/check.err"))" \
  grep -q "^$T/node1.ini:[0-9]*: cluster_redis 127.0.0.1:$REDIS_PORT: AUTH refused: WRONGPASS" "$T/check.err"
"$SLUICED" -c "$T/node1.ini" 2>"$T/start.err"
check "sluiced refuses to start (exit $?)" test $? -ne 0
check "with one line saying Redis refused the password" \
  grep -q "fatal: cluster_redis 127.0.0.1:$REDIS_PORT: AUTH refused: WRONGPASS" "$T/start.err"
node_config 1 "cluster_redis = 127.0.0.1:$REDIS_PORT
cluster_redis_password_file = $T/missing.pw"
check "a password file that cannot be read is a config error" \
  bash -c "'$SLUICECTL' -c '$T/node1.ini' config check 2>&1 | grep -q 'node1.ini:[0-9]*: cluster_redis_password_file cannot read $T/missing.pw'"
node_config 1 "cluster_redis = localhost"
check "cluster_redis without a port is a config error" \
  bash -c "'$SLUICECTL' -c '$T/node1.ini' config check 2>&1 | grep -q 'cluster_redis localhost: expected host:port or the absolute path of a unix socket'"

# --- The right password: leases go through Redis.
node_config 1 "cluster_redis = 127.0.0.1:$REDIS_PORT
cluster_redis_password_file = $T/good.pw
cluster_lease_ttl = 2s"
check "config check passes with the right password" node_ctl 1 config check
node_inject 1 10 b d.test
: >"$T/daemon1.log"
node_start 1
check "every message is delivered through the password-protected Redis" \
  wait_for 60 node_drained 1
check "the node's heartbeat is in Redis" \
  bash -c "REDIS_AUTH=s3cret; $(declare -f redis_cli); REDIS_PORT=$REDIS_PORT; redis_cli zscore '{sluice}:nodes' node1 | grep -q '^[0-9]'"

# --- SIGHUP with a lower cluster limit: the counter shows it and the next mail keeps to it.
peer_start after '{"hold": 0.3}' 127.0.1.1
sed -i -e "s/^smtp_port = .*/smtp_port = $(peer_port after)/" \
  -e 's/^cluster_max_outbound_connections = 2$/cluster_max_outbound_connections = 1/' "$T/node1.ini"
kill -HUP "${NODE_PID[1]}"
cluster_limit_is_1() {
  node_ctl 1 counters --json 2>/dev/null | python3 -c '
import json, sys
c = [c for c in json.load(sys.stdin)["cluster"]["counters"] if c["key"] == "b d.test"]
sys.exit(not (c and c[0]["limit"] == 1))'
}
check "after SIGHUP the cluster counter's limit is 1" wait_for 10 cluster_limit_is_1
node_inject 1 10 b d.test
check "the next mail is delivered" wait_for 60 node_drained 1
check "one connection at a time under the new limit ($(peer_stat after "dest('127.0.1.1')['peak']"))" \
  test "$(peer_stat after "dest('127.0.1.1')['peak']")" -eq 1
node_stop 1

# --- A connection the connection throttle turns away gives its cluster lease back at once,
# not when the lease runs out (30 s here): no lease is left once the connections are closed.
cat >"$T/common.ini" <<INI
smtp_port = $(peer_port after)

[domain "d.test"]
cluster_max_outbound_connections = 4
outbound_throttle_connections = 2/4
INI
node_config 1 "cluster_redis = 127.0.0.1:$REDIS_PORT
cluster_redis_password_file = $T/good.pw
cluster_lease_ttl = 30s"
node_inject 1 30 b d.test
node_start 1
check "the throttled mail is delivered" wait_for 60 node_drained 1
leases_left() {
  REDIS_AUTH=s3cret redis_cli --scan --pattern '{sluice}:lease:*' | while read -r k; do
    REDIS_AUTH=s3cret redis_cli zcard "$k"; done | awk '{n += $1} END {print n + 0}'
}
no_lease_left() { [ "$(leases_left)" -eq 0 ]; }
check "no cluster lease is left a few seconds after the last connection ($(leases_left) now)" \
  wait_for 8 no_lease_left
grep -c '"outcome":"held".*throttle' "$T/delivery1.log" | sed 's/^/# throttle refusals logged: /'
node_stop 1

# --- Grouped bindings refuse a cluster limit (seed 001).
cat >"$T/grouped.ini" <<'INI'
[binding_group "g"]
[binding "b"]
binding_group = g
cluster_max_outbound_connections = 2
INI
check "cluster_max_outbound_connections in a grouped binding is refused" \
  bash -c "'$SLUICECTL' -c '$T/grouped.ini' config check 2>&1 | grep -q 'grouped.ini:4: cluster_max_outbound_connections is not valid in \[binding \"b\"\]: binding \"b\" belongs to binding_group \"g\"'"
printf '[binding_group "g"]\ncluster_server_max_outbound_connections = 2\n' >"$T/group.ini"
check "cluster_server_max_outbound_connections in a binding_group is refused" \
  bash -c "'$SLUICECTL' -c '$T/group.ini' config check 2>&1 | grep -q 'group.ini:2: cluster_server_max_outbound_connections is not valid in \[binding_group \"g\"\]'"
