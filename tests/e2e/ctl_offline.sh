#!/usr/bin/env bash
# ctl_offline.sh - sluicectl's queue commands when no daemon answers:
#  - a delete with no daemon writes the same delivery-log line the daemon writes (phase
#    "operator"), per part, naming the recipients it made final, so the audit trail does not
#    depend on whether the daemon was up;
#  - a command sent while the daemon starts (it holds the spool's lock, its socket not open yet)
#    waits and goes through the daemon, not to the spool behind its back: queue commands and
#    suspend alike;
#  - a lock file that cannot be locked (here a directory: EISDIR) tells nothing of a daemon:
#    the command changes nothing and says why in one line, exit 1 (it acted on the spool as
#    if no daemon ran).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/deferring.sh"

shm=/sluice-e2e-offl-$$
deferring_config "$T/delivery.log" ok.test other.test

inject() {
  printf "Subject: test\r\n\r\nbody\r\n" |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f alice@sender.test "$@"
}
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
in_queue() { test -e "$T/spool/queue/$1"; }
# line ID: the delivery log's lines of that message
line() { grep "\"id\":\"$1\"" "$T/delivery.log" 2>/dev/null; }
# shape ID: its lines without the time and the id (what must not depend on who wrote them)
shape() { line "$1" | sed -e 's/"time":"[^"]*",//' -e "s/$1/ID/"; }
start() {
  "$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
  daemon=$!
  started "$daemon"
}
stop() { kill -TERM "$daemon"; wait "$daemon"; }

# --- no daemon: delete writes the delivery log
m1=$(inject a@ok.test b@ok.test)
m2=$(inject c@ok.test d@ok.test)
m3=$(inject e@ok.test f@other.test)
ctl hold "$m2" >/dev/null
out=$(ctl delete "$m1")
check "with no daemon the delete acts on the spool" grep -q "no daemon is running" <<<"$out"
check "the message is gone" test ! -e "$T/spool/queue/$m1"
check "the delivery log has one line for it: deleted by the operator, both recipients" \
  test "$(line "$m1" | grep -c '"rcpt":\["a@ok.test","b@ok.test"\],"binding":"b1","domain":"ok.test".*"outcome":"deleted","reply":"deleted by the operator","phase":"operator"')" -eq 1
ctl delete --domain other.test >/dev/null
check "delete --domain with no daemon logs the part it deleted, with its recipient only" \
  test "$(line "$m3" | grep -c '"rcpt":\["f@other.test"\],"binding":"b1","domain":"other.test".*"outcome":"deleted"')" -eq 1
check "and the message stays for its other part" in_queue "$m3"
ctl delete "$m3" >/dev/null
check "deleting the rest logs the other part only" \
  test "$(line "$m3" | grep -c '"outcome":"deleted"')" -eq 2 -a \
  "$(line "$m3" | grep -c '"rcpt":\["e@ok.test"\],"binding":"b1","domain":"ok.test"')" -eq 1
check "and the message leaves the queue" test ! -e "$T/spool/queue/$m3"

# --- the daemon deletes the held message: the same record
start
wait_for 10 test -S "$T/spool/control.sock"
out=$(ctl delete "$m2")
check "with the daemon up the delete goes through it" eval '! grep -q "no daemon" <<<"$out"'
check "the daemon logs its delete" wait_for 10 eval 'line "$m2" | grep -q deleted'
check "both lines are the same record but for the time, id and recipients" \
  test "$(shape "$m1" | sed 's/"rcpt":\[[^]]*\]//')" = "$(shape "$m2" | sed 's/"rcpt":\[[^]]*\]//')"
# the next section's message has its attempt now (deferred for an hour): the daemon started
# there finds nothing due, so the hold it is sent is never one for after an attempt in flight
m4=$(inject g@ok.test)
check "a message for the next part is tried and deferred" \
  wait_for 10 eval 'line "$m4" | grep -q "\"outcome\":\"deferred\""'
stop

# --- a command while a daemon starts: the spool is held (here by a stand-in for the start of
# a daemon, holding the lock sluiced takes before its start scan until the test says go, then
# that daemon itself), no socket answers yet: sluicectl waits and goes through the daemon,
# which acts once.  A second sluiced started meanwhile refuses the spool (it would take the first one's
# control socket) ---
# the holder then becomes the daemon (exec keeps its POSIX lock): the lock passes on with no
# moment free, in which a waiting command would take the spool itself
# (it becomes the daemon when the test says go: once the second sluiced was refused and both
# commands wait, however slow the machine)
python3 - "$T/spool/sluiced.lock" "$T/held" "$SLUICED" "$T/sluice.ini" "$T/daemon.log" "$T/go" <<'PY' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
deadline = time.time() + 30
while not os.path.exists(sys.argv[6]) and time.time() < deadline:
    time.sleep(0.05)
os.set_inheritable(fd, True)
os.dup2(os.open(sys.argv[5], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640), 2)
os.execv(sys.argv[3], [sys.argv[3], "-c", sys.argv[4]])
PY
holder=$!
started "$holder"
wait_for 5 test -e "$T/held"
ctl hold "$m4" >"$T/hold.out" 2>"$T/hold.err" &
hold=$!
ctl suspend --domain other.test --reason maintenance >"$T/suspend.out" 2>"$T/suspend.err" &
suspend=$!
timeout 10 "$SLUICED" -c "$T/sluice.ini" >"$T/second.out" 2>&1
check "a second sluiced on a held spool exits non-zero" test $? -ne 0
check "saying which daemon holds it" grep -q "is held by another sluiced (pid $holder)" "$T/second.out"
check "and leaves the control socket to the first" test ! -e "$T/spool/control.sock"
waiting() { grep -q "the daemon is starting" "$T/hold.err" && grep -q "the daemon is starting" "$T/suspend.err"; }
wait_for 10 waiting # (the checks below say so if they did not)
touch "$T/go"
daemon=$holder
wait "$hold"
wait "$suspend"
check "the command did not act on the spool itself" eval '! grep -q "no daemon" "$T/hold.out"'
check "it said it waited for the starting daemon" grep -q "the daemon is starting" "$T/hold.err"
check "the daemon held the message" grep -qx "$m4: held" "$T/hold.out"
check "the daemon logged the hold once" test "$(grep -c "operator: hold $m4: done" "$T/daemon.log")" -eq 1
check "the hold is in the part's state file" grep -qx 'held 1' "$T/spool/state/$m4.0"
check "a suspend sent meanwhile waited too, and the daemon took it (not the file behind it)" \
  eval 'grep -q "the daemon is starting" "$T/suspend.err" && grep -q "^OK" "$T/suspend.out" &&
        ! grep -q "no daemon runs" "$T/suspend.out"'
check "the suspension is in force, once" test "$(ctl suspended | grep -c other.test)" -eq 1
stop

# --- no daemon: a message whose state file is damaged is still deleted whole
m5=$(inject h@ok.test)
printf 'garbage\n' >"$T/spool/state/$m5.0"
ctl delete "$m5" >"$T/del5.out" 2>&1
check "delete of a message with a damaged state file succeeds" grep -q "$m5" "$T/del5.out"
check "and the message is gone" eval '! in_queue "$m5"'

# --- no daemon: sluicectl commands run at once take turns on the spool (each reads, changes
# and writes back the actions file): every suspension is in force
pids=()
for i in 1 2 3 4 5 6 7 8; do
  ctl suspend --domain "many$i.test" --reason turns >/dev/null 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
check "eight suspensions made at once are all in force" \
  test "$(ctl suspended | grep -c 'many[1-8]\.test')" -eq 8

# --- no daemon, but the spool's lock cannot be had (its path is a directory): whether a daemon
# runs is not known, so nothing is changed
m6=$(inject i@ok.test)
rm "$T/spool/sluiced.lock"
mkdir "$T/spool/sluiced.lock"
ctl hold "$m6" >"$T/nolock.out" 2>"$T/nolock.err"
check "a hold whose lock cannot be had exits 1" test $? -eq 1
check "saying why in one line, with the error" \
  test "$(cat "$T/nolock.err")" = "sluicectl: hold: cannot lock $T/spool/sluiced.lock: Is a directory: nothing done"
check "without acting on the spool" eval '! grep -q "no daemon" "$T/nolock.out"'
check "the message is not held" eval '! grep -qx "held 1" "$T/spool/state/$m6.0"'
ctl delete "$m6" >/dev/null 2>&1
rc=$?
check "a delete is refused too (exit 1), and the message stays" eval '[ $rc -eq 1 ] && in_queue "$m6"'
ctl suspend --domain nolock.test --reason lock >"$T/nolock.out" 2>"$T/nolock.err"
rc=$?
check "a suspend is refused too (exit 1), in one line" \
  eval '[ $rc -eq 1 ] && [ "$(cat "$T/nolock.err")" = "sluicectl: suspend: cannot lock $T/spool/sluiced.lock: Is a directory: nothing done" ]'
check "and no suspension is written" eval '! ctl suspended | grep -q nolock.test'
