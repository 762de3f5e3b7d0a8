#!/usr/bin/env bash
# cluster_hung.sh - a Redis that accepts connections but never answers (SIGSTOP) must not
# hold the master: each of its calls waits for the whole Redis timeout (half a second), and
# the heartbeat comes every cluster_lease_ttl / 3.  While Redis hangs, with leases of 1 s and
# a worker holding a lease killed (its leases go to Redis' removal at the reap), the master
# answers every control command at once, mail without a cluster limit keeps flowing, and mail
# under one waits; once Redis answers again, the heartbeat says so and the waiting mail goes.
# The sink holds each final reply a second, so the limit's two connections are busy when
# Redis stops.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/cluster.sh"

dns_zone test <<'ZONE'
d       MX 10 mx.d
e       MX 10 mx.d
mx.d    A  127.0.1.1
ZONE
dns_start
redis_start
PEER_ARGS=--timeline peer_start sink '{"hold": 1}' 127.0.1.1
cat >"$T/common.ini" <<INI
smtp_port = $(peer_port sink)
cluster_redis = 127.0.0.1:$REDIS_PORT
cluster_lease_ttl = 1s
cluster_on_failure = closed

[domain "d.test"]
cluster_max_outbound_connections = 2
INI
NODE_WORKERS=4 node_config 1
lease_key='{sluice}:lease:binding_domain b d.test'
leases() { redis_cli zcard "$lease_key"; }
queued_for() { node_ctl 1 queue --json --domain "$1" | grep -o '"id"' | wc -l; }
leases_are() { [ "$(leases)" -eq "$1" ]; }
none_queued_for() { [ "$(queued_for "$1")" -eq 0 ]; }
node_inject 1 20 b d.test
node_start 1
check "with Redis answering, the cluster limit's 2 leases are taken" wait_for 30 leases_are 2
victim=$(redis_cli zrange "$lease_key" 0 0 | cut -d: -f2)

redis_pause
t_pause=$(date +%s.%N)

# the probe: a control command the master answers itself, timed from outside, every 50 ms
# for two seconds (the heartbeat and each reconnect wait half a second on a hung Redis: a
# loop that made them would keep at least one probe waiting more than 400 ms)
slowest=0 answered=0
for i in $(seq 24); do
  t0=$(date +%s%N)
  node_ctl 1 lockouts >/dev/null 2>&1 && alive "${NODE_PID[1]}" && answered=$((answered + 1))
  ms=$((($(date +%s%N) - t0) / 1000000))
  [ "$ms" -gt "$slowest" ] && slowest=$ms
  [ "$i" -eq 8 ] && kill -KILL "$victim" # its lease goes to Redis' removal at the reap
  sleep 0.05
done
echo "# slowest control answer while Redis hung: $slowest ms ($answered of 24 answered)"
check "the master saw Redis hang (its heartbeat timed out)" \
  wait_for 10 grep -q "cluster_redis unreachable" "$T/daemon1.log"
check "every control command was answered while Redis hung" test "$answered" -eq 24
check "none waited for Redis: the slowest took $slowest ms (a Redis call waits 500 ms)" \
  test "$slowest" -lt 300

node_inject 1 5 b e.test
check "mail without a cluster limit is delivered while Redis hangs" \
  wait_for 20 none_queued_for e.test
# the counter alone would let its 2 connections deliver 2 a second (the sink holds each a
# second) until the queue is empty; under cluster_on_failure = closed, a connection closes
# once its lease is no longer good (0.9 s after the last renewal, before the pause) and the
# transaction in hand ends: a run of pipelined transactions begun before that holds no more
# than the lease's time left (it held a job's 4 or 5, seconds past the lease, before)
sleep "$(python3 -c "import time; print(max(0, $t_pause + 7 - time.time()))")" # a job's run, had it gone on
d_last() { # seconds from the pause to the last d.test delivery
  python3 - "$T/delivery1.log" "$t_pause" <<'PY'
import datetime, json, sys
last = 0.0
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j["domain"] == "d.test" and j["outcome"] == "delivered":
        t = datetime.datetime.fromisoformat(j["time"].replace("Z", "+00:00")).timestamp()
        last = max(last, t - float(sys.argv[2]))
print(f"{last:.2f}")
PY
}
last=$(d_last)
check "mail under the cluster limit stops while Redis hangs: the last d.test delivery came \
$last s after the pause (at most 3: the lease's 0.9 s and the transaction in hand)" \
  python3 -c "import sys; sys.exit(not $last < 3)"
check "with mail still queued for it" test "$(queued_for d.test)" -gt 0
check "the master is still running" alive "${NODE_PID[1]}"

redis_resume
check "the heartbeat says Redis answers again" \
  wait_for 10 grep -q "cluster_redis answers again" "$T/daemon1.log"
# 18 or so messages at a second each over 2 connections; the bound leaves room for a slow
# (sanitizer) build, and a miss says what the queue was waiting for
if wait_for 120 node_drained 1; then
  ok "the mail that waited is delivered once Redis answers"
else
  not_ok "the mail that waited is delivered once Redis answers"
  # what the mail left waits for: its attempts and next attempt (a deferral), a worker that
  # holds it (its process and kernel wait), the counters' use and the sink's open sessions
  node_ctl 1 queue --domain d.test 2>&1 | sed 's/^/#   queue: /' | head -n 8
  ps -o pid=,stat=,wchan:24=,etime=,args= --ppid "${NODE_PID[1]}" 2>&1 | sed 's/^/#   ps: /'
  node_ctl 1 counters --nonzero 2>&1 | sed 's/^/#   counters: /' | head -n 8
  peer_stat sink "[(n, t['events'][-4:]) for n, t in d.get('timeline', {}).items() \
    if not any(e[0] in ('gone', 'closed') for e in t['events'])]" | sed 's/^/#   sink open: /'
  grep -E ': (warning|error): |died|answers again' "$T/daemon1.log" | tail -n 12 | cut -c1-200 |
    sed 's/^/#   daemon: /'
  python3 - "$T/delivery1.log" <<'PY' | sed 's/^/#   /'
import json, sys
for line in list(open(sys.argv[1]))[-15:]:
    j = json.loads(line)
    print(j["time"][11:23], j["domain"], j["outcome"], (j.get("reply") or "")[:90])
PY
  tail -n 15 "$T/daemon1.log" | sed 's/^/#   log: /'
fi
check "the dead worker's lease was handed to the removal (removed, or left to expire)" \
  grep -Eq "cluster leases of (a dead worker|dead workers) (removed|not removed)" "$T/daemon1.log"
check "no lease is left in Redis once the queue is empty and idle" wait_for 10 leases_are 0
node_stop 1
check "the master stopped cleanly" grep -q "stopped" "$T/daemon1.log"
echo "1..$_n"
