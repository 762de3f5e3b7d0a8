#!/usr/bin/env bash
# faults.sh - what the daemon does when things go wrong around it: a count
# corrupted behind its back (the periodic audit repairs it), a second daemon on
# the same table (refused), the master killed with -9 (no worker outlives it,
# and the next start takes over the table), serving workers killed from outside (replaced at
# once), workers that keep crashing (back-off).
. "$(dirname "$0")/lib/tap.sh"
ulimit -c 0 # the crash loop below dumps no core

shm=/sluice-faults-$$
cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
audit_interval = 1s

[domain "/^(wanadoo|orange)\.fr\$/"]
scope_max_outbound_connections = 3
INI
key='/^(wanadoo|orange)\.fr$/'
jget() { "$SLUICECTL" -c "$T/sluice.ini" counters --json | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
in_use() { jget "[c['in_use'] for c in d['counters'] if c['scope']=='domain'][0]"; }
in_use_is() { test "$(in_use)" = "$1"; }
audit_fixed_at_least() { test "$(jget "d['daemon']['audit_fixed']")" -ge "$1"; }
start() { "$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" & daemon=$!; started "$daemon"; }
up() { "$SLUICECTL" -c "$T/sluice.ini" counters >/dev/null 2>&1 && test "$(children_of "$daemon" | wc -l)" -eq "$1"; }

start
check "the daemon comes up" wait_for 10 up 2

# --- a count left wrong (as a crash between count and record would): the audit repairs it
python3 "$(dirname "$0")/lib/shm_poke.py" "$shm" domain "$key" 2 >/dev/null
check "the corrupted count is visible" in_use_is 2
check "the periodic audit sets it back to the live holds (0)" wait_for 10 in_use_is 0
check "the inspector counts the correction" audit_fixed_at_least 1
check "the master logs the correction" grep -q 'audit corrected 1 of' "$T/daemon.log"

# --- a second daemon on the same table is refused, and the first is unharmed
"$SLUICED" -c "$T/sluice.ini" >"$T/second.out" 2>&1; rc=$?
check "a second daemon on the same shm_name exits 1" test "$rc" -eq 1
check "it names the daemon that owns the table" grep -q "pid $daemon" "$T/second.out"
check "the first daemon still serves" "$SLUICECTL" -c "$T/sluice.ini" probe --domain orange.fr

# --- kill -9 of the master: the workers notice and leave; a new start takes over
workers=$(children_of "$daemon")
kill -KILL "$daemon"; wait "$daemon" 2>/dev/null
orphans_gone() { local p; for p in $workers; do alive "$p" && return 1; done; return 0; }
check "no worker outlives a killed master" wait_for 10 orphans_gone
"$SLUICECTL" -c "$T/sluice.ini" counters >"$T/dead.out" 2>&1; rc=$?
check "the inspector says the daemon is gone (exit 1)" test "$rc" -eq 1
check "and names the pid that left the table" grep -q "left by pid $daemon" "$T/dead.out"
start
check "a new daemon takes over the stale table" wait_for 10 up 2

# --- serving workers killed from outside (kill -9, the OOM killer) are replaced at once, each
# time: no back-off (it would be 1.6 s, then 3.2 s, by the third round)
# replaced: N live children (zombies not yet reaped do not count), none of them in $killed
replaced() {
  local n=0 p
  for p in $(ps -o pid=,stat= --ppid "$daemon" | awk '$2 !~ /^Z/ {print $1}'); do
    case " $killed " in *" $p "*) return 1 ;; esac
    n=$((n + 1))
  done
  [ "$n" -eq "$1" ]
}
for round in 1 2 3; do
  wait_for 10 up 2
  killed=$(children_of "$daemon" | tr '\n' ' ')
  for p in $killed; do kill -KILL "$p"; done
  check "kill -9 of both workers, round $round: both replaced within 3 s" wait_for 3 replaced 2
done
check "no back-off for workers killed from outside" eval '! grep -q "workers keep dying" $T/daemon.log'

# --- workers that crash young (SIGSEGV) are restarted with a growing delay, and come back
for round in 1 2 3 4; do
  for p in $(children_of "$daemon"); do kill -SEGV "$p"; done
  sleep 0.3
done
check "the master backs off" grep -q 'workers keep dying: next start in' "$T/daemon.log"
check "the pool is whole again after the back-off" wait_for 20 up 2
check "the master survived all of it" alive "$daemon"
kill -TERM "$daemon"; wait "$daemon"
check "and stops cleanly" test $? -eq 0
