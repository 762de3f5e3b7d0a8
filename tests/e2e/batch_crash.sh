#!/usr/bin/env bash
# batch_crash.sh - a message whose recipients go in several transactions (more of them than
# max_recipients_per_batch) records those delivered after each transaction, before the next
# body goes: a worker killed with -9 in its third transaction leaves the first two recipients
# delivered on disk, and the retry sends only the third (at most one accepted message is ever
# unrecorded, as for one transaction).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

# r3's RCPT waits 30 s the first time: the worker is in its third transaction when killed
peer_start mx '{"rcpt": [{"match": "^r3@", "stall": 30, "times": 1}]}' 127.0.1.1
shm=/sluice-e2e-bcrash-$$
{
  ini_global 1
  cat <<INI
tls = disabled
retry_interval = 1s

[binding "b1"]
bind_address = 127.0.0.2

[domain "batch.test"]
route = 127.0.1.1:$(peer_port mx)
max_recipients_per_batch = 1
INI
} >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
up() { ctl counters >/dev/null 2>&1; }
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon comes up" wait_for 10 up

id=$(printf 'Subject: t\r\n\r\nbody\r\n' |
  ctl inject --binding b1 -f s@sender.test r1@batch.test r2@batch.test r3@batch.test)
check "the message is queued" test -n "$id"
check "two transactions delivered, the third waits at its RCPT" \
  wait_for 20 peer_true mx "total['messages'] == 2 and events.get('rcpt_rule:^r3@', 0) == 1"
for p in $(children_of "$daemon"); do kill -9 "$p"; done
check "the retry delivers the message" wait_for 30 eval '! test -f "$T/spool/queue/$id"'
check "the receiver got each recipient once ($(peer_stat mx "total['recipients']") in all)" \
  peer_true mx "total['recipients'] == 3"
delivered() { grep -c "\"rcpt\":\[\"$1@batch.test\"\].*\"outcome\":\"delivered\"" "$T/delivery.log"; }
check "the delivery log says so: r1, r2, r3 delivered once each" \
  test "$(delivered r1) $(delivered r2) $(delivered r3)" = "1 1 1"
check "the master survived it" alive "$daemon"
kill -TERM "$daemon"
wait "$daemon"
check "and stops cleanly" test $? -eq 0
echo "1..$_n"
