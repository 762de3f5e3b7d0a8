#!/usr/bin/env bash
# worker_crash.sh - a worker that dies of its own doing (SIGSEGV here, as a bug would) in the
# middle of a delivery: the parts of its job are not handed out again at once, where a message
# that kills its worker would kill the next one and the next (each time perhaps after the
# receiver took it, so its recipients would get it again and again), but wait five minutes,
# and the master names them; the message stays queued, and `sluicectl flush` sends it at once.
# A worker killed from outside (kill -9, the OOM killer) gives its parts back at once: crash.sh.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
ulimit -c 0 # the crash dumps no core

# the 354 comes only after 30 s: the worker is in the middle of the message when it dies
peer_start mx '{"stall": {"data": 30}}' 127.0.1.1
shm=/sluice-e2e-wcrash-$$
{
  ini_global 2
  cat <<INI
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2

[domain "crash.test"]
route = 127.0.1.1:$(peer_port mx)
INI
} >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
up() { ctl counters >/dev/null 2>&1; }
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon comes up" wait_for 10 up

id=$(printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test r@crash.test)
check "the message is queued" test -n "$id"
check "a worker is in the middle of it" wait_for 10 peer_true mx "total['connections'] == 1"
for p in $(children_of "$daemon"); do kill -SEGV "$p"; done
check "the master says the worker died with it, and names it" \
  wait_for 10 grep -q "died of its own doing with job .*: its 1 parts wait 300 s.*$id" "$T/daemon.log"
check "the replacements come up" wait_for 10 eval 'test "$(children_of "$daemon" | wc -l)" -eq 2'
sleep 3 # time enough for a replacement to take the message again, were it handed out
check "nobody took the message again" peer_true mx "total['connections'] == 1"
check "it is still queued" test -f "$T/spool/queue/$id"
check "the queue shows it waiting" eval 'ctl queue | grep -q "$id"'
peer_script mx '{}' # the receiver is well again
ctl flush "$id" >/dev/null
check "sluicectl flush sends it at once" wait_for 10 eval '! test -f "$T/spool/queue/$id"'
check "and the receiver has it, once" peer_true mx "total['messages'] == 1"
check "the master survived it" alive "$daemon"
kill -TERM "$daemon"
wait "$daemon"
check "and stops cleanly" test $? -eq 0
