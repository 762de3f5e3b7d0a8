#!/usr/bin/env bash
# listener_backoff_each.sh - each listener has its own crash-loop back-off (master/listeners.c):
# while the processes of one listener crash young again and again (SIGSEGV by PID, as a key
# file a reload made unreadable would), another listener's processes are replaced as their
# own record says: one killed from outside at once, one that crashes young once after 100 ms,
# not after the other listener's grown wait.  And the other listener's deaths do not reset
# the crash loop's back-off: it keeps doubling.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/listener.sh"
shm=/sluice-e2e-lbe-$$
ulimit -c 0 # the crash loop below dumps no core

listener_start crashy steady
check "listener crashy serves" wait_for 10 listener_serves crashy
check "listener steady serves" wait_for 10 listener_serves steady

# --- crashy crash-loops: every process of it is SIGSEGVed as soon as it is there ---
crash_loop() {
  while :; do
    p=$(listener_pid crashy)
    [ -n "$p" ] && kill -SEGV $p 2>/dev/null
    sleep 0.05
  done
}
crash_loop &
looper=$!
started "$looper"
wait_for 10 eval '[ "$(listener_backoffs crashy | wc -w)" -ge 4 ]'
check "crashy backs off (waits so far: $(listener_backoffs crashy)ms)" eval '[ "$(listener_backoffs crashy | wc -w)" -ge 4 ]'

# steady's process killed from outside meanwhile: replaced at once
old=$(listener_pid steady)
t0=$EPOCHREALTIME
kill -KILL "$old"
ms=$(listener_greeting_ms steady "$t0")
check "steady's process killed from outside during crashy's crash loop greets again within 1 s (${ms} ms)" \
  eval '[ "$ms" != none ] && [ "$ms" -lt 1000 ] && [ "$(listener_pid steady)" != "$old" ]'

# steady's young process crashes once, while crashy's wait has grown past 1 s: steady waits
# its own first step (100 ms), not crashy's
sleep 3
t0=$EPOCHREALTIME
kill -SEGV "$(listener_pid steady)"
ms=$(listener_greeting_ms steady "$t0")
check "steady's young process crashing once is replaced after its own back-off, within 1 s (${ms} ms)" \
  eval '[ "$ms" != none ] && [ "$ms" -lt 1000 ]'
check "the master logs steady's own first step" \
  eval '[ "$(listener_backoffs steady)" = "100 " ]'

kill "$looper"
wait "$looper" 2>/dev/null
waits=$(listener_backoffs crashy)
doubling="100 200 400 800 1600 3200 6400 10000 10000 10000 "
check "crashy's back-off kept doubling through steady's deaths (${waits}ms)" \
  eval '[ "${doubling#"$waits"}" != "$doubling" ]'
check "after its crash loop crashy serves again" wait_for 15 listener_serves crashy
check "the master survived all of it" alive "$daemon"

kill -TERM "$daemon"
wait "$daemon"
check "sluiced stops cleanly (exit 0)" [ $? -eq 0 ]
echo "1..$_n"
