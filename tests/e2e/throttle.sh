#!/usr/bin/env bash
# throttle.sh - rate throttles as the receiver sees them (semantics.md, "Rate throttles"):
#   outbound_throttle_messages = 10/2 in a binding group is one bucket for both of its
#   bindings and every worker: the sink never sees more than 10 messages in 2 s, and the
#   mail still all arrives; the bucket shows in counters, metrics and config eval --explain;
#   outbound_throttle_connections in a [host] section paces new connections to that host;
#   a reload with a new rate applies it to the same bucket.
# Windows are counted at the receiver from its own timestamps.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-throttle-$$
PEER_ARGS=--timeline peer_start mx '{}' 127.0.1.1 127.0.1.2
cat >"$T/sluice.ini" <<INI
[global]
workers = 4
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
retry_interval = 1h
log_level = debug

[binding_group "g"]
outbound_throttle_messages = 10/2

[binding "b1"]
binding_group = g
bind_address = 127.0.0.2
[binding "b2"]
binding_group = g
bind_address = 127.0.0.3
[binding "b3"]
bind_address = 127.0.0.4

[domain "one.test"]
route = 127.0.1.1:$PEER_PORT
[domain "two.test"]
route = 127.0.1.1:$PEER_PORT
[domain "host.test"]
route = 127.0.1.2:$PEER_PORT
max_deliveries_per_connection = 1

[host "127.0.1.2"]
outbound_throttle_connections = 3/2
INI
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
inject() { printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject "$@" >/dev/null; }

out=$(ctl config eval --explain --binding b2 --domain one.test outbound_throttle_messages)
check "config eval shows the group's throttle" grep -qx 'Outbound_Throttle_Messages = 10/2' <<<"$out"
check "and the stanza whose bucket it is" grep -q '^  from \[binding_group "g"\] (.*:[0-9]*)$' <<<"$out"
printf '[global]\nspool_dir = %s/x\noutbound_throttle_messages = 10/0\n' "$T" >"$T/bad.ini"
check "a bad rate is refused with FILE:LINE" bash -c \
  "'$SLUICECTL' -c '$T/bad.ini' config check 2>&1 | grep -q '^$T/bad.ini:3: .*N/S'"

# 40 messages over two bindings of the group and two domains, queued before the start
for i in $(seq 1 10); do
  inject --binding b1 -f s@sender.test "a$i@one.test"
  inject --binding b2 -f s@sender.test "b$i@one.test"
  inject --binding b1 -f s@sender.test "c$i@two.test"
  inject --binding b2 -f s@sender.test "d$i@two.test"
done
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
t0=$(date +%s.%N)
shows_throttle_wait() { ctl queue | grep -q 'waiting for throttle_messages binding_group "g" (10/2, next token in [0-9]* ms)$'; }
check "while they drain, queue says the mail waits for the group's bucket" wait_for 10 shows_throttle_wait
check "all 40 messages arrive" wait_for 40 peer_true mx "dest('127.0.1.1')['messages'] >= 40"
t1=$(date +%s.%N)

# most arrivals of a list of times within any window of W seconds
max_in_window() {
  python3 -c '
import sys
w = float(sys.argv[1]); ts = sorted(float(x) for x in sys.stdin.read().split())
best, j = 0, 0
for i, t in enumerate(ts):
    while ts[i] - ts[j] >= w: j += 1
    best = max(best, i - j + 1)
print(best)' "$1"
}
arrivals() { peer_stat mx "' '.join(str(e['time']) for e, b in messages() if e['dst'] == '127.0.1.1')"; }
peak=$(arrivals | max_in_window 2)
check "the sink never saw more than 10 messages in 2 s (peak $peak)" test "$peak" -le 10
check "the rate is used, not starved: at least 8 in some 2 s window" test "$peak" -ge 8
span=$(python3 -c "print(int(float('$t1') - float('$t0')))")
check "40 messages at 10/2 take at least 6 s, at most 20 s ($span s)" \
  test "$span" -ge 6 -a "$span" -le 20
check "both bindings of the group delivered" \
  peer_true mx "pair('127.0.0.2', '127.0.1.1')['messages'] > 0 and pair('127.0.0.3', '127.0.1.1')['messages'] > 0"
check "the pacing writes no held lines to the delivery log" \
  bash -c "! grep -q '\"outcome\":\"held\"' '$T/delivery.log'"
check "every message has one delivered line" test "$(grep -c '"outcome":"delivered"' "$T/delivery.log")" -eq 40
c=$(ctl counters --shm "$shm")
check "counters shows the group's bucket with its rate" \
  grep -qE '^messages +binding_group "g" +10/2 ' <<<"$c"
check "counters --json lists the bucket under throttles" bash -c "
  '$SLUICECTL' -c '$T/sluice.ini' counters --json --shm '$shm' | python3 -c '
import json, sys
t = [b for b in json.load(sys.stdin)[\"throttles\"] if b[\"bucket\"] == \"binding_group \\\"g\\\"\"]
sys.exit(not (t and t[0][\"rate\"] == \"10/2\" and t[0][\"taken\"] >= 40))'"
m=$(ctl metrics --shm "$shm")
check "metrics shows the bucket's rate in tokens per second" \
  grep -qF 'sluice_throttle_rate{kind="messages",bucket="binding_group \"g\""} 5' <<<"$m"
check "metrics counts the waits the bucket caused" \
  grep -qE '^sluice_throttle_waits_total\{kind="messages",bucket="binding_group \\"g\\""\} [1-9]' <<<"$m"

# a host-scope connection throttle: 3 new connections per 2 s to 127.0.1.2, one message each
for i in $(seq 1 9); do inject --binding b3 -f s@sender.test "h$i@host.test"; done
check "all 9 messages to the throttled host arrive" \
  wait_for 30 peer_true mx "dest('127.0.1.2')['messages'] >= 9"
check "one connection per message there" peer_true mx "dest('127.0.1.2')['connections'] >= 9"
conns() { peer_stat mx "' '.join(str(ev[1]) for s in d['timeline'].values() if s['dst'] == '127.0.1.2' for ev in s['events'] if ev[0] == 'accept')"; }
peak=$(conns | max_in_window 2)
check "never more than 3 new connections to the host in 2 s (peak $peak)" test "$peak" -le 3

# a reload with a new rate: the same bucket (same stanza) takes the new rate at once
sed -i 's|^outbound_throttle_messages = 10/2$|outbound_throttle_messages = 20/2|' "$T/sluice.ini"
kill -HUP "$daemon"
check "the reload is accepted" wait_for 10 grep -q 'reloaded .*config generation [0-9]' "$T/daemon.log"
inject --binding b1 -f s@sender.test late@one.test
check "mail after the reload arrives" wait_for 10 peer_true mx "dest('127.0.1.1')['messages'] >= 41"
check "the group's bucket paces at the new rate" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' counters --shm '$shm' | grep -qE '^messages +binding_group \"g\" +20/2 '"
