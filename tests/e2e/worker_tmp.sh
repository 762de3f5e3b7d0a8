#!/usr/bin/env bash
# worker_tmp.sh - a worker killed in the middle of a state write leaves its file in tmp/ (named
# ID.K.PID, the writer's pid in it); the master removes it as soon as it reaps that worker, not
# at its next start or a minute later, and leaves the files of live writers alone.
# The kill lands mid-write for sure: strace holds the worker at the rename that ends its
# write (30 s at the system call's entry), its new file whole in tmp/.  (A FIFO planted at
# that name no longer stops it: a writer removes whatever is there and creates its file anew.)
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/deferring.sh"

shm=/sluice-e2e-wtmp-$$
deferring_config "$T/delivery.log" ok.test
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
deferred() { grep -q "\"id\":\"$1\".*\"outcome\":\"deferred\"" "$T/delivery.log" 2>/dev/null; }
one_worker() { test "$(children_of "$daemon" | wc -l)" -eq 1; }
reaped() { ! alive "$1" && ! children_of "$daemon" | grep -qx "$1"; }

m=$(printf "Subject: test\r\n\r\nbody\r\n" | ctl inject --binding b1 -f a@sender.test x@ok.test)
ctl hold "$m" >/dev/null # not attempted before the FIFO is in place
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
wait_for 10 test -S "$T/spool/control.sock"
wait_for 10 one_worker
w=$(children_of "$daemon")
strace -qq -o /dev/null -e trace=rename,renameat,renameat2 \
  -e inject=rename,renameat,renameat2:delay_enter=30000000 -p "$w" &
tracer=$!
started "$tracer"
traced() { ! grep -q '^TracerPid:[[:space:]]*0$' "/proc/$w/status"; }
wait_for 10 traced
other=00000000000000000000.0.$daemon # a write of the master, alive
: >"$T/spool/tmp/$other"
ctl release "$m" >/dev/null
check "the worker's attempt defers; its state write is on its way" wait_for 20 deferred "$m"
check "the worker is stuck in that write (its file is in tmp/, the state not rewritten)" \
  wait_for 10 eval "test -f '$T/spool/tmp/$m.0.$w' && grep -qx 'attempts 0' '$T/spool/state/$m.0'"
kill -KILL "$w"
wait "$tracer" 2>/dev/null
wait_for 5 reaped "$w"
check "within seconds of the reap (not a minute) its file is gone from tmp/" \
  wait_for 3 eval "! test -e '$T/spool/tmp/$m.0.$w'"
check "the daemon logged the removal" grep -q "removed $T/spool/tmp/$m.0.$w" "$T/daemon.log"
check "a live writer's file stays" test -e "$T/spool/tmp/$other"
check "the message is still queued" test -e "$T/spool/queue/$m"
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
