#!/usr/bin/env bash
# restart.sh - a master killed with -9 and restarted at once (as systemd's Restart= does) does
# not deliver again what the dead master's workers were finishing: they die with it, so the
# receiver gets at most one duplicate per session in flight, every message arrives, and the
# new master drains the queue.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-restart-$$
workers=4
n=120
peer_start sink '{"hold": 0.2}' 127.0.1.70
cat >"$T/sluice.ini" <<INI
[global]
workers = $workers
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
retry_interval = 1s
max_retry_interval = 2s
idle_timeout = 1s

[binding "b1"]
bind_address = 127.0.0.2

[domain "restart.test"]
route = 127.0.1.70:$(peer_port sink)
INI
seq $n | xargs -P 4 -I{} sh -c "printf 'Subject: {}\r\n\r\nbody\r\n' |
  '$SLUICECTL' -c '$T/sluice.ini' inject --binding b1 -f s@sender.test u{}@restart.test >/dev/null"
queued() { find "$T/spool/queue" -type f | wc -l; }
queue_empty() { test "$(queued)" -eq 0; }
check "$n messages queued" test "$(queued)" -eq $n
start() {
  "$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
  daemon=$!
  started "$daemon"
}
start
check "the daemon delivers" wait_for 30 peer_true sink "dest('127.0.1.70')['messages'] >= 20"
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
start # at once: the dead master's workers would otherwise still be in their sessions
check "the new master drains the queue" wait_for 90 queue_empty
dups() {
  peer_stat sink "(lambda r: len(r) - len(set(r)))([a for env, _ in messages() for a in env['rcpt_to']])"
}
missing() {
  peer_stat sink "len(set('u%d@restart.test' % i for i in range(1, $n + 1)) - set(a for env, _ in messages() for a in env['rcpt_to']))"
}
check "every message arrived ($(missing) missing)" test "$(missing)" -eq 0
echo "# $(dups) duplicates for $workers sessions in flight"
check "at most one duplicate per session in flight ($(dups) for $workers)" test "$(dups)" -le $workers
kill -TERM "$daemon"
wait "$daemon"
check "the new master stops cleanly" test $? -eq 0
