#!/usr/bin/env bash
# listener_backoff.sh - how the master replaces listener processes that die (the rule in
# master/supervise.c's header comment): a process killed from outside while it serves
# (SIGKILL by PID, as an operator's script or the OOM killer would) is replaced at once,
# every time, with no back-off growing across the kills; a process that crashes young of
# its own fault (SIGSEGV) is a crash loop: each replacement waits longer (100, 200, 400,
# 800 ms), and the listener serves again after it.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/listener.sh"
shm=/sluice-e2e-lbo-$$
ulimit -c 0 # the crash loop below dumps no core

listener_start solo
check "the listener's one process serves" wait_for 10 listener_serves solo

# --- SIGKILL of the serving process, six times in a row: replaced at once each time ---
# (before the rule, each kill of a process younger than 5 s doubled the wait: 100 ms ... 3.2 s)
for round in 1 2 3 4 5 6; do
  old=$(listener_pid solo)
  t0=$EPOCHREALTIME
  kill -KILL "$old"
  ms=$(listener_greeting_ms solo "$t0")
  new=$(listener_pid solo)
  check "kill -9 #$round of pid $old: a new process ($new) greets within 1 s (${ms} ms)" \
    eval '[ "$ms" != none ] && [ "$ms" -lt 1000 ] && [ -n "$new" ] && [ "$new" != "$old" ]'
done
check "the master logs each kill" \
  [ "$(grep -c 'listener pid [0-9]* killed by signal 9' "$T/daemon.log")" -eq 6 ]
check "and no back-off for them" eval '! grep -q "listener processes keep dying" $T/daemon.log'

# --- a crash loop: SIGSEGV right after each start backs off, doubling ---
for round in 1 2 3 4; do
  wait_for 10 listener_serves solo
  kill -SEGV "$(listener_pid solo)"
done
# the master reaps the last one after our kill
wait_for 5 eval '[ "$(listener_backoffs solo | wc -w)" -ge 4 ]'
waits=$(listener_backoffs solo)
check "a crash loop backs off, doubling each time (${waits}ms)" [ "$waits" = "100 200 400 800 " ]
check "after the back-off the listener serves again" wait_for 10 listener_serves solo
check "a serving process killed from outside after the crash loop is replaced at once" \
  eval 't0=$EPOCHREALTIME; kill -KILL "$(listener_pid solo)"; ms=$(listener_greeting_ms solo "$t0")
    [ "$ms" != none ] && [ "$ms" -lt 1000 ]'
check "the master survived all of it" alive "$daemon"

kill -TERM "$daemon"
wait "$daemon"
check "sluiced stops cleanly (exit 0)" [ $? -eq 0 ]
echo "1..$_n"
