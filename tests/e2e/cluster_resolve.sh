#!/usr/bin/env bash
# cluster_resolve.sh - a reload that names the Redis by a host name never holds the master:
# the name is resolved by a thread of its own, and no process resolves it at each connect.
# sluiced runs in a private mount namespace whose /etc/resolv.conf names a resolver that
# never answers (getaddrinfo waits its whole timeout, 3 s) and whose /etc/hosts the test
# writes.  A name the resolver is asked for must leave control commands answered at once (a
# loop that resolved it would hold every one of them for the timeout).  A name /etc/hosts
# gives is resolved once: once the hosts file names another address and Redis restarts, the
# worker forked at the reload reconnects to the address it had, and a worker forked later gets
# the address from the master (the name would now lead nowhere).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/cluster.sh"

dns_zone test <<'ZONE'
d       MX 10 mx.d
mx.d    A  127.0.1.1
ZONE
dns_start
redis_start
peer_start sink '{"hold": 0}' 127.0.1.1
cat >"$T/common.ini" <<INI
smtp_port = $(peer_port sink)
cluster_on_failure = closed
cluster_lease_ttl = 1s

[domain "d.test"]
cluster_max_outbound_connections = 2
INI

# a resolver that reads every query and answers none, on port 53 of a free 127.0.0.x
python3 - "$T/silent.ip" <<'PY' &
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for last in range(70, 100):
    try:
        s.bind(("127.0.0.%d" % last, 53))
        break
    except OSError:
        continue
else:
    sys.exit("no free 127.0.0.x:53")
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("127.0.0.%d" % last)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(3600)
PY
started $!
if ! wait_for 5 test -s "$T/silent.ip"; then
  not_ok "a silent resolver on a free 127.0.0.x:53"
  echo "1..$_n"
  exit 1
fi
printf 'nameserver %s\noptions timeout:3 attempts:1\n' "$(cat "$T/silent.ip")" >"$T/resolv.conf"
printf '127.0.0.1 localhost\n127.0.0.1 redis.node.test\n' >"$T/hosts"

# start_node: node 1 in its own mount namespace; $! is sluiced (sh and sluiced replace unshare)
start_node() {
  unshare --mount --propagation private sh -c \
    'mount --bind "$0" /etc/resolv.conf && mount --bind "$1" /etc/hosts && exec "$2" -c "$3"' \
    "$T/resolv.conf" "$T/hosts" "$SLUICED" "$T/node1.ini" 2>>"$T/daemon1.log" &
  NODE_PID[1]=$!
  started "${NODE_PID[1]}"
}

# --- a name that does not resolve at start: the cluster thread does not wait for it either
NODE_WORKERS=1 node_config 1 "cluster_redis = redis.hang.test:$REDIS_PORT"
start_node
check "a name that does not resolve at start is said in one line" \
  wait_for 30 grep -q "cluster_redis redis.hang.test:$REDIS_PORT: waiting for the name to resolve; cluster limits: no new connection until it does" "$T/daemon1.log"
check "sluiced starts all the same" wait_for 30 grep -q "0 messages queued" "$T/daemon1.log"
sleep 1
t0=$(date +%s%N)
node_stop 1
ms=$((($(date +%s%N) - t0) / 1000000))
check "its stop waits for no resolver ($ms ms; the resolver takes 3 s a try)" test "$ms" -lt 1500
: >"$T/daemon1.log"

NODE_WORKERS=1 node_config 1 "cluster_redis = 127.0.0.1:$REDIS_PORT"
start_node
check "sluiced starts with Redis at an address" \
  wait_for 20 grep -q "cluster_redis 127.0.0.1:$REDIS_PORT: node node1" "$T/daemon1.log"

# --- a name the resolver never answers for, at a reload
NODE_WORKERS=1 node_config 1 "cluster_redis = redis.hang.test:$REDIS_PORT"
kill -HUP "${NODE_PID[1]}"
t_hup=$(date +%s%N)
slowest=0 answered=0
for i in $(seq 30); do
  t0=$(date +%s%N)
  node_ctl 1 lockouts >/dev/null 2>&1 && answered=$((answered + 1))
  ms=$((($(date +%s%N) - t0) / 1000000))
  [ "$ms" -gt "$slowest" ] && slowest=$ms
  sleep 0.05
done
echo "# slowest control answer while the name was being resolved: $slowest ms"
check "the reload is done" grep -q "reloaded $T/node1.ini" "$T/daemon1.log"
check "every control command was answered while the name was being resolved" \
  test "$answered" -eq 30
check "none waited for the resolver: the slowest took $slowest ms (it waits 3 s)" \
  test "$slowest" -lt 1500
check "the master counts the new name's Redis unreachable until it resolves (not the old one's)" \
  grep -q "cluster_redis redis.hang.test:$REDIS_PORT: waiting for the name to resolve" "$T/daemon1.log"
check "the name's failure is said in one line" \
  wait_for 20 grep -q "cluster_redis host redis.hang.test does not resolve now: tried again every 5 s" "$T/daemon1.log"
waited=$((($(date +%s%N) - t_hup) / 1000000))
check "and only after the resolver's timeout ($waited ms after the reload): it was asked, and never answered" \
  test "$waited" -ge 2500
check "it is said once" \
  test "$(grep -c "redis.hang.test does not resolve" "$T/daemon1.log")" -eq 1
check "sluiced keeps running" alive "${NODE_PID[1]}"

# --- a name the hosts file gives: resolved once by each process, never at each connect
NODE_WORKERS=1 node_config 1 "cluster_redis = redis.node.test:$REDIS_PORT"
kill -HUP "${NODE_PID[1]}"
check "the master reaches Redis by the new name" \
  wait_for 20 grep -q "cluster_redis redis.node.test:$REDIS_PORT: node node1" "$T/daemon1.log"
node_inject 1 3 b d.test
check "the worker forked at the reload delivers mail under the cluster limit" \
  wait_for 30 node_drained 1
worker=$(children_of "${NODE_PID[1]}")
no_lease() { [ "$(redis_cli zcard '{sluice}:lease:binding_domain b d.test')" -eq 0 ]; }
check "its connection closes when idle, and gives its lease back" wait_for 20 no_lease
printf '127.0.0.1 localhost\n127.0.0.99 redis.node.test\n' >"$T/hosts" # nothing listens there
redis_stop
redis_start # the same port, empty: every connection to it is made again
node_inject 1 3 b d.test
check "after Redis restarts, that worker reconnects to the address it had (the name now says 127.0.0.99)" \
  wait_for 30 node_drained 1
check "it is the same worker" test "$(children_of "${NODE_PID[1]}")" = "$worker"
kill -KILL "$worker"
replaced() { local p; p=$(children_of "${NODE_PID[1]}"); [ -n "$p" ] && [ "$p" != "$worker" ]; }
check "the killed worker is replaced" wait_for 20 replaced
node_inject 1 3 b d.test
check "its successor reaches Redis at the address the master resolved, not by the name" \
  wait_for 30 node_drained 1

node_stop 1
check "the master stopped cleanly" grep -q "stopped" "$T/daemon1.log"
echo "1..$_n"
