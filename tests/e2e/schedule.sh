#!/usr/bin/env bash
# schedule.sh - the master's queue: mail queued before the start is picked up
# from the spool, mail injected while it runs is picked up at once (not at the
# next rescan), jobs reach the workers, deferred mail stays queued across a
# restart and is not retried before its time, SIGTERM drains and exits 0.
. "$(dirname "$0")/lib/tap.sh"

shm=/sluice-e2e-sched-$$
# a port on the peers' loopback range where nothing listens: every attempt defers
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.1.1",0)); print(s.getsockname()[1])')
cat >"$T/sluice.ini" <<INI
[global]
workers = 3
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
connect_timeout = 2s
retry_interval = 1h

[binding "b1"]
bind_address = 127.0.0.2

[domain "one.example"]
route = 127.0.1.1:$port
[domain "two.example"]
route = 127.0.1.1:$port
INI
inject() { printf 'Subject: t\r\n\r\nbody\r\n' | "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.example "$@"; }
queued() { ls "$T/spool/queue" | wc -l; }

early=$(inject a@one.example b@two.example c@one.example)
check "inject without a daemon queues the message" test "$(queued)" -eq 1

notify_listener "$T/notify.log"
"$SLUICED" -d -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon is ready" wait_for 10 grep -q '^READY=1' "$T/notify.log"
check "the start scan indexed the waiting message" grep -q "messages queued" "$T/daemon.log"
jobs_seen() { test "$(grep -c "job [0-9]* to worker pid [0-9]*: b1 \(one\|two\).example, 1 parts" "$T/daemon.log")" -ge 2; }
check "each part of it went to a worker as a job" wait_for 5 jobs_seen
check "the STATUS line counts the queued message" grep -q '^STATUS=.*1 messages queued' "$T/notify.log"

late=$(inject d@one.example)
check "mail injected while the daemon runs is picked up at once (not at the minute's rescan)" \
  wait_for 10 grep -q "queued $late" "$T/daemon.log"
check "and handed out" wait_for 20 grep -q "done by worker pid [0-9]*: $late.0=f" "$T/daemon.log"
check "deferred parts stay in the spool" test "$(queued)" -eq 2

kill -TERM "$daemon"
wait "$daemon"; rc=$?
check "SIGTERM drains and exits 0" test "$rc" -eq 0
check "nothing queued is lost by the stop" test "$(queued)" -eq 2

"$SLUICED" -d -c "$T/sluice.ini" 2>"$T/daemon2.log" &
daemon2=$!
started "$daemon2"
check "the restarted daemon indexes both messages" \
  wait_for 10 grep -q "spool $T/spool: 2 messages queued" "$T/daemon2.log"
sleep 1
check "parts deferred for an hour are not retried at the restart" \
  test "$(grep -c "job [0-9]* to worker" "$T/daemon2.log")" -eq 0
kill -TERM "$daemon2"
wait "$daemon2"
check "the second daemon stops cleanly too" test $? -eq 0
