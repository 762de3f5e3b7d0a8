#!/usr/bin/env bash
# cluster_resolve.sh - a reload that names the Redis by a host name never holds the master:
# the name is resolved on the cluster thread, and the address it resolved to is what the
# workers forked afterwards connect to.
# sluiced runs in a private mount namespace whose /etc/resolv.conf names a resolver that
# never answers (getaddrinfo waits its whole timeout, 3 s) and whose /etc/hosts the test
# writes.  A name the resolver is asked for must leave control commands answered at once
# (a loop that resolved it would hold every one of them for the timeout).  A name /etc/hosts
# gives is taken by the workers as an address: once the hosts file names another address,
# a new worker still reaches Redis, at the address the master handed it.
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
wait_for 5 test -s "$T/silent.ip" || echo "# no silent resolver: $(cat "$T/silent.ip" 2>&1)"
printf 'nameserver %s\noptions timeout:3 attempts:1\n' "$(cat "$T/silent.ip")" >"$T/resolv.conf"
printf '127.0.0.1 localhost\n127.0.0.1 redis.node.test\n' >"$T/hosts"

# start node 1 in its own mount namespace; $! is sluiced (sh and sluiced replace unshare)
NODE_WORKERS=2 node_config 1 "cluster_redis = 127.0.0.1:$REDIS_PORT"
unshare --mount --propagation private sh -c \
  'mount --bind "$0" /etc/resolv.conf && mount --bind "$1" /etc/hosts && exec "$2" -c "$3"' \
  "$T/resolv.conf" "$T/hosts" "$SLUICED" "$T/node1.ini" 2>>"$T/daemon1.log" &
NODE_PID[1]=$!
started "${NODE_PID[1]}"
check "sluiced starts with Redis at an address" \
  wait_for 20 grep -q "cluster_redis 127.0.0.1:$REDIS_PORT: node node1" "$T/daemon1.log"

# --- a name the resolver never answers for, at a reload
NODE_WORKERS=2 node_config 1 "cluster_redis = redis.hang.test:$REDIS_PORT"
kill -HUP "${NODE_PID[1]}"
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
  test "$slowest" -lt 300
check "the name's failure is said in one line" \
  wait_for 20 grep -q "cluster_redis redis.hang.test:$REDIS_PORT: the name does not resolve now; it is resolved again at each connect" "$T/daemon1.log"
check "sluiced keeps running" alive "${NODE_PID[1]}"

# --- a name the hosts file gives: the workers forked next get its address
NODE_WORKERS=2 node_config 1 "cluster_redis = redis.node.test:$REDIS_PORT"
kill -HUP "${NODE_PID[1]}"
check "the thread reaches Redis by the new name" \
  wait_for 20 grep -q "cluster_redis redis.node.test:$REDIS_PORT: node node1" "$T/daemon1.log"
# the thread handed the address back before it connected; the loop takes it before it forks
printf '127.0.0.1 localhost\n127.0.0.99 redis.node.test\n' >"$T/hosts" # nothing listens there
workers() { children_of "${NODE_PID[1]}"; }
old=$(workers | tr '\n' ' ')
kill -KILL $old 2>/dev/null
replaced() { local p; for p in $(workers); do [[ " $old " == *" $p "* ]] && return 1; done; [ -n "$(workers)" ]; }
check "the killed workers are replaced" wait_for 20 replaced
node_inject 1 6 b d.test
check "mail under the cluster limit is delivered: the new workers reach Redis at the address the master resolved (the name now says 127.0.0.99)" \
  wait_for 30 node_drained 1

node_stop 1
check "the master stopped cleanly" grep -q "stopped" "$T/daemon1.log"
echo "1..$_n"
