#!/usr/bin/env bash
# action_cap.sh - a rule's max_outbound_connections = 1 action is an exact limit:
#   with plenty of mail queued for the binding x domain and several free workers, the receiver
#   never sees a second connection from that binding at once (the cap is taken in the same
#   all-or-none reservation as the configured limits, not only checked before dispatch), the
#   mail keeps flowing over the one connection, `counters` shows the cap, and once the action
#   is cancelled the configured limit is back.  The master's gate holds the pair back by the
#   cap the workers take (the published one), and says so.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-actcap-$$
ts01='421 4.7.0 [TS01] Messages from 127.0.0.2 temporarily deferred due to user complaints'
ts02='421 4.7.0 [TS02] Messages from 127.0.0.2 temporarily deferred'
# host ADDR TEXT: one MX address's script: every session is slow to finish and carries at most
# 2 messages, so connections come and go while mail waits (each close lets the master hand out
# several jobs at once); the first MAIL FROM gets TEXT
host() {
  echo "\"$1\": {\"hold\": 0.3, \"max_messages\": 2,
    \"reply\": {\"mail_from\": {\"text\": \"$2\", \"times\": 1}}}"
}
peer_start mx "{$(host 127.0.1.1 "$ts01"), $(host 127.0.1.2 "$ts02")}" 127.0.1.1 127.0.1.2
cat >"$T/sluice.ini" <<INI
[global]
workers = 4
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
retry_interval = 1s
max_outbound_connections = 8
log_level = debug

[binding "b1"]
bind_address = 127.0.0.2

[binding "b2"]
bind_address = 127.0.0.3

[domain "capped.test"]
route = 127.0.1.1:$PEER_PORT

[domain "wide.test"]
route = 127.0.1.2:$PEER_PORT

[shaping "ts02"]
domain = wide.test
scope = domain
match = /TS02/
trigger = immediate
action = max_outbound_connections = 1
duration = 1h

[shaping "ts01"]
domain = capped.test
match = /TS01/
trigger = immediate
action = max_outbound_connections = 1
duration = 1h
INI
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
inject() { inject_by b1 "$@"; }
inject_by() {
  printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding "$1" -f s@sender.test "${@:2}" >/dev/null
}
peak() { peer_stat mx "pair('127.0.0.2', '127.0.1.1')['peak']"; }

"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
wait_for 10 test -S "$T/spool/control.sock"

inject first@capped.test
check "the receiver's 421 [TS01] takes the rule's action" \
  wait_for 10 bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -qE 'max_outbound_connections = 1 +ts01'"
check "counters shows the cap for the binding x domain" \
  wait_for 5 bash -c "'$SLUICECTL' -c '$T/sluice.ini' counters --shm $shm | grep -E '^action_cap +b1 +capped.test' | grep -qw 1"

# Queue plenty while the domain is held, then let it all go at once.
ctl suspend --domain capped.test --reason 'fill the queue' >/dev/null
for i in $(seq 1 24); do inject "m$i@capped.test"; done
ctl resume --domain capped.test >/dev/null
check "delivery goes on at one connection until the queue is empty" \
  wait_for 60 peer_true mx "dest('127.0.1.1')['messages'] >= 25"
p=$(peak)
check "the receiver saw at most one connection from b1 at once (peak $p)" test "$p" -eq 1
check "many connections were opened one after the other" \
  peer_true mx "pair('127.0.0.2', '127.0.1.1')['connections'] >= 12"
# The gate counts the connection of a job handed out and not yet opened: no second job goes
# out for the pair while the first one's worker is still looking up the MX (each would be
# refused by the cap at the worker, a "held" line for nothing).
held=$(grep -c '"outcome":"held"' "$T/delivery.log")
check "no job was refused by the cap at the worker ($held held)" test "$held" = 0
# (the one unit open, or promised to a job whose worker has not taken it yet)
check "the master's gate holds the pair back by the same cap, naming the action" \
  grep -qE 'holding back b1 capped.test: action [0-9]+: max_outbound_connections = 1 \((1 in use|0 in use, 1 promised)\)$' "$T/daemon.log"

# A cap over a whole domain (scope = domain) covers a binding that never connected to it: the
# gate counts its first connection's promised unit too (its counter is made for it), so the
# first pass does not hand b2's mail to every free worker.
inject_by b1 first@wide.test
check "the receiver's 421 [TS02] takes the domain-wide action" \
  wait_for 10 bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -qE 'max_outbound_connections = 1 +ts02'"
ctl suspend --domain wide.test --reason 'fill the queue' >/dev/null
for i in $(seq 1 12); do inject_by b2 "w$i@wide.test"; done
ctl resume --domain wide.test >/dev/null
check "b2's mail to wide.test is delivered" \
  wait_for 60 peer_true mx "pair('127.0.0.3', '127.0.1.2')['messages'] >= 12"
p2=$(peer_stat mx "pair('127.0.0.3', '127.0.1.2')['peak']")
check "at one connection at once (peak $p2)" test "$p2" -eq 1
held=$(grep -c '"outcome":"held"' "$T/delivery.log")
check "and no job was refused by the cap at the worker ($held held)" test "$held" = 0

check "metrics keeps the cap out of the connection counters" \
  bash -c "! '$SLUICECTL' -c '$T/sluice.ini' metrics --shm $shm | grep -q 'action_cap'"
id=$(ctl shaping | awk '/ ts01 / {print $1; exit}')
check "shaping cancel ends the cap" bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping cancel $id | grep -q cancelled"
check "counters no longer shows it" \
  wait_for 5 bash -c "! '$SLUICECTL' -c '$T/sluice.ini' counters --shm $shm | grep -qE '^action_cap +b1 +capped.test'"
ctl suspend --domain capped.test --reason 'fill the queue' >/dev/null
for i in $(seq 1 12); do inject "n$i@capped.test"; done
ctl resume --domain capped.test >/dev/null
check "the next mail arrives" wait_for 60 peer_true mx "dest('127.0.1.1')['messages'] >= 37"
p=$(peak)
check "and with the cap gone, more than one connection at once (peak $p)" test "$p" -gt 1
