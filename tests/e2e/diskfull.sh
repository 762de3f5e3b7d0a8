#!/usr/bin/env bash
# diskfull.sh - the spool on a small tmpfs made by the test, filled up: inject refuses cleanly
# (one line, a non-zero exit, nothing half-written left in the spool), delivery goes on for
# what was accepted, nothing accepted is lost, and injecting works again once space returns.
# A message the receiver keeps deferring still ends after max_retries attempts although no
# attempt's state can be saved (the master carries the count), and a deferral's state is
# saved once space returns, so a restart keeps its attempt count.
# The listener: with the spool full, a message submitted over SMTP gets 452 4.3.1 at the end
# of DATA, nothing of it stays in tmp/ or queue/, the process serves on, and the same
# submission gets 250 and is delivered once space returns.  A listener whose write hangs in
# its sync (a stalled disk: the group commit's lock held by the test) and is killed there,
# or whose master is, never said 250, leaves nothing in tmp/, and its message (renamed into
# queue/ before the sync) is delivered once, whole.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-full-$$
mkdir -p "$T/spool"
if ! mount -t tmpfs -o size=2m tmpfs "$T/spool" 2>"$T/mount.err"; then
  not_ok "a 2 MB tmpfs for the spool can be mounted: $(cat "$T/mount.err")"
  exit 1
fi
unmount() { umount "$T/spool" 2>/dev/null; cleanup; }
trap unmount EXIT

peer_start sink '{"rcpt": [{"match": "@(defer|later)\\.test$", "reply": "451 4.3.0 try later"},
                             {"match": "@bounce\\.test$", "reply": "550 5.1.1 no such user"}]}' 127.0.1.80
cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
retry_interval = 1s
max_retry_interval = 2s

[binding "b1"]
bind_address = 127.0.0.2

[domain "full.test"]
route = 127.0.1.80:$(peer_port sink)

[domain "defer.test"]
route = 127.0.1.80:$(peer_port sink)
max_retries = 2

[domain "later.test"]
route = 127.0.1.80:$(peer_port sink)
retry_interval = 1h
max_retry_interval = 1h

[domain "bounce.test"]
route = 127.0.1.80:$(peer_port sink)
INI
body=$(seq 300 | sed 's/$/ a line of about sixty bytes to fill the small spool up quickly/')
inject() { # inject N: one 20 KB message to uN@full.test; its id, or the error on stderr
  printf 'Subject: %s\r\n\r\n%s\r\n' "$1" "$body" |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test "u$1@full.test"
}
# the spool is filled while the daemon is stopped, so nothing drains meanwhile
"$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test warm@full.test \
  <<<"Subject: warm" >/dev/null # makes the spool's directories
# the filler leaves about 60 KB
avail=$(df --output=avail -B1 "$T/spool" | tail -1)
head -c $((avail - 61440)) /dev/zero >"$T/spool/filler" 2>/dev/null
accepted=() refused=0 errline=""
for i in $(seq 10); do
  if id=$(inject "$i" 2>"$T/inject.err"); then accepted+=("$i"); else
    refused=$((refused + 1)); errline=$(cat "$T/inject.err"); fi
done
echo "# ${#accepted[@]} accepted, $refused refused; the refusal: $errline"
check "some messages are accepted, then inject refuses" test "${#accepted[@]}" -ge 1 -a "$refused" -ge 1
check "the refusal is one line naming the cause" \
  sh -c "[ \$(printf '%s\n' \"\$1\" | wc -l) -eq 1 ] && printf '%s' \"\$1\" | grep -qi 'no space'" _ "$errline"
check "a refused inject leaves nothing half-written in spool/tmp" \
  test "$(find "$T/spool/tmp" -type f | wc -l)" -eq 0
check "the spool holds exactly the accepted messages" \
  test "$(find "$T/spool/queue" -type f | wc -l)" -eq "$((${#accepted[@]} + 1))"
notify_listener "$T/notify.log"
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon starts on the full spool" wait_for 10 grep -q '^READY=1' "$T/notify.log"
check "delivery goes on with the disk full: every accepted message arrives" \
  wait_for 60 peer_true sink "dest('127.0.1.80')['messages'] == ${#accepted[@]} + 1"
check "the daemon is still up" alive "$daemon"
rm -f "$T/spool/filler"
id=$(inject 99 2>"$T/inject.err")
check "with space back, inject accepts again ($id)" test -n "$id"
check "and the new message is delivered at once" \
  wait_for 30 peer_true sink "dest('127.0.1.80')['messages'] == ${#accepted[@]} + 2"
check "nothing is left queued" test "$(find "$T/spool/queue" -type f | wc -l)" -eq 0
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0

# a null sender: its expiry writes no bounce, which a full disk would refuse
late=$("$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f '' late@defer.test \
  <<<"Subject: deferred")
later=$("$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f '' wait@later.test \
  <<<"Subject: deferred for an hour")
head -c 4194304 /dev/zero >"$T/spool/filler" 2>/dev/null # not a byte left for a state file
: >"$T/notify.log"
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon2.log" &
daemon=$!
started "$daemon"
check "the message deferred for an hour was tried once" \
  wait_for 10 grep -q '"rcpt":\["wait@later.test"\].*"outcome":"deferred"' "$T/delivery.log"
check "its state could not be saved (the disk is full)" test ! -e "$T/spool/state/$later.0"
deferred_logged() { grep -c '"rcpt":\["late@defer.test"\].*"outcome":"deferred"' "$T/delivery.log"; }
check "a deferral with no room for its state still ends: expired after max_retries" \
  wait_for 30 grep -q '"rcpt":\["late@defer.test"\].*"outcome":"bounced".*"phase":"expiry"' \
  "$T/delivery.log"
check "after exactly 3 attempts (max_retries = 2), though none could be saved" \
  test "$(deferred_logged)" -eq 3
check "the saves did fail for want of space" grep -qi 'no space' "$T/daemon2.log"
check "and the expired message left the queue" test ! -e "$T/spool/queue/$late"
rm -f "$T/spool/filler"
check "with space back, its state is saved: 1 attempt" \
  wait_for 10 grep -qx 'attempts 1' "$T/spool/state/$later.0"
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
attempts_after_restart() {
  "$SLUICECTL" -c "$T/sluice.ini" queue --json | python3 -c '
import json, sys
print([p["attempts"] for m in json.load(sys.stdin)["messages"] if m["id"] == sys.argv[1]
       for p in m["parts"]])' "$1"
}
check "and the count survives the stop: queue says 1 attempt" \
  test "$(attempts_after_restart "$later")" = "[1]"

# --- a bounce whose report the full disk refuses: the recipient stays queued (its sender is
# told later, never not at all) and bounces with its report once there is space; an
# operator's bounce is refused the same way, and changes nothing ---
gone=$("$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test x@bounce.test \
  z@bounce.test <<<"Subject: refused by the receiver")
# z asked for no report (RFC 3461 NOTIFY=NEVER, as a listener stores it): owed nothing, it
# does not wait for the report
sed -i 's/^rcpt 0 z@bounce\.test$/&\nnotify 1/' "$T/spool/queue/$gone"
by_hand=$("$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test y@later.test \
  <<<"Subject: to be bounced by the operator")
head -c 4194304 /dev/zero >"$T/spool/filler" 2>/dev/null # not a byte left for a report
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon4.log" &
daemon=$!
started "$daemon"
check "the receiver's 550 bounces the recipient" \
  wait_for 10 grep -q "\"id\":\"$gone\".*\"outcome\":\"bounced\"" "$T/delivery.log"
check "its report cannot be written: the recipient stays queued" \
  wait_for 10 grep -q "queue $gone part 0: its 1 bounced recipient(s) stay queued" "$T/daemon4.log"
check "and the delivery log's last word on it says so: deferred, naming the bounce" \
  eval "grep '\"id\":\"$gone\"' '$T/delivery.log' | tail -1 |
        grep -q '\"outcome\":\"deferred\",\"reply\":\"bounce report not written (No space left on device): tried again later; the bounce: 550 5.1.1'"
check "the message is still in the spool" test -e "$T/spool/queue/$gone"
check "the recipient owed no report stays bounced" \
  eval "grep '\"id\":\"$gone\".*z@bounce.test' '$T/delivery.log' | tail -1 |
        grep -q '\"outcome\":\"bounced\"'"
wait_for 10 grep -q "\"id\":\"$by_hand\".*\"outcome\":\"deferred\"" "$T/delivery.log"
out=$("$SLUICECTL" -c "$T/sluice.ini" bounce "$by_hand" 2>&1); rc=$?
check "an operator's bounce whose report cannot be written fails (exit $rc: $(head -1 <<<"$out"))" \
  test "$rc" -ne 0
check "and leaves the message queued, its recipient not bounced" \
  eval "test -e '$T/spool/queue/$by_hand' &&
        ! grep -q '\"id\":\"$by_hand\".*\"outcome\":\"bounced\"' '$T/delivery.log'"
rm -f "$T/spool/filler"
check "with space back, the retry bounces it, its report queued" \
  wait_for 20 grep -q "queue $gone: bounce report [0-9A-Za-z]* queued" "$T/daemon4.log"
check "and the message leaves the queue" wait_for 10 test ! -e "$T/spool/queue/$gone"
"$SLUICECTL" -c "$T/sluice.ini" bounce "$by_hand" >/dev/null 2>&1
check "the operator's bounce goes through now, with its report" \
  eval "test ! -e '$T/spool/queue/$by_hand' &&
        grep -q 'queue $by_hand: bounce report [0-9A-Za-z]* queued' '$T/daemon4.log'"
kill -TERM "$daemon"
wait "$daemon"

# --- the listener: a message submitted over SMTP with the spool full gets 452 at the end of
# DATA, nothing of it stays in the spool, the process serves on, and the same submission is
# accepted (250) and delivered once space returns ---
lport=$(peer_free_port 127.0.0.1)
cat >>"$T/sluice.ini" <<INI

[listener "in"]
address = 127.0.0.1:$lport
binding = b1
max_sessions = 2
INI
cat >"$T/submit.py" <<'PY'
# submit.py PORT SUBJECT: one message over SMTP, then NOOP in the same session; prints
# "data CODE TEXT" and "noop CODE TEXT" ("disconnected" when the session is cut).
# submit.py PORT -: a session with NOOP only.
import smtplib, sys
port, subject = int(sys.argv[1]), sys.argv[2]
try:
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.ehlo("client.test")
    if subject != "-":
        s.mail("s@sender.test")
        s.rcpt("lst@full.test")
        body = ("Subject: %s\r\n\r\n" % subject + "a line of text to make some bytes\r\n" * 300 +
                "end of %s\r\n" % subject)
        code, text = s.data(body)
        print("data", code, text.decode(), flush=True)
    code, text = s.noop()
    print("noop", code, text.decode(), flush=True)
    s.quit()
except (smtplib.SMTPException, OSError) as e:
    print("disconnected", e, flush=True)
PY
submit() { python3 "$T/submit.py" "$lport" "$@"; }
with_subject() { peer_stat sink "sum(1 for e, b in messages() if b'Subject: $1' in b)"; }
listener_pids() { ps -o pid=,args= --ppid "$daemon" | awk '/sluiced: listener/ {print $1}'; }
answers() { submit - | grep -q '^noop 250'; }
rm -f "$T/spool/filler"
queued_before=$(find "$T/spool/queue" -type f | wc -l)
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon3.log" &
daemon=$!
started "$daemon"
check "the listener answers" wait_for 10 answers
head -c 4194304 /dev/zero >"$T/spool/filler" 2>/dev/null # not a byte left for a message
submit "listener full" >"$T/full.out"
echo "# $(tr '\n' ' ' <"$T/full.out")"
check "with the spool full, the end of DATA gets 452 4.3.1 naming the cause" \
  grep -q '^data 452 4\.3\.1 .*insufficient system storage' "$T/full.out"
check "the listener logs why it was not queued" grep -qi 'not queued: .*no space' "$T/daemon3.log"
check "the session goes on: NOOP after the refusal gets 250" grep -q '^noop 250' "$T/full.out"
check "a second session is served" answers
check "the refused message left nothing in spool/tmp" \
  test "$(find "$T/spool/tmp" -type f | wc -l)" -eq 0
check "nor in spool/queue" test "$(find "$T/spool/queue" -type f | wc -l)" -eq "$queued_before"
rm -f "$T/spool/filler"
submit "listener full" >"$T/again.out"
check "with space back, the same submission gets 250" grep -q '^data 250 ' "$T/again.out"
check "and it is delivered to the sink, once" \
  wait_for 30 eval '[ "$(with_subject "listener full")" -eq 1 ]'

# --- a stalled disk: the listener's write hangs in its sync (the group-commit lock of queue/
# is held here, as a sync that does not return would hold it).  By then its file is renamed
# into queue/, whole: a listener killed there never said 250, leaves nothing in tmp/, and its
# message is delivered once, whole (at least once: the client will send it again) ---
hold_queue() { # take the group commit's lock of spool/queue; prints LOCKED to $T/lock.out
  : >"$T/lock.out"
  python3 -c 'import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("LOCKED", flush=True)
time.sleep(120)' "$T/spool/queue" >"$T/lock.out" &
  locker=$!
  started "$locker"
  wait_for 5 grep -q LOCKED "$T/lock.out"
}
in_tmp() { find "$T/spool/tmp" -type f | grep -q .; }
queued_whole() { grep -rqs "Subject: $1" "$T/spool/queue" && grep -rqs "end of $1" "$T/spool/queue"; }
delivered_whole() {
  peer_stat sink "sum(1 for e, b in messages() if b'Subject: $1' in b and b'end of $1' in b)"
}
hold_queue
submit "stalled one" >"$T/stalled1.out" &
client=$!
check "the listener's write waits on the stalled sync, its file whole in queue/" \
  wait_for 10 queued_whole "stalled one"
for p in $(listener_pids); do kill -KILL "$p"; done
wait "$client"
check "a listener killed in its sync: the client never got 250" \
  eval '! grep -q "^data 250" "$T/stalled1.out"'
check "nothing of it stays in tmp/" eval '! in_tmp'
kill "$locker"
wait "$locker" 2>/dev/null
check "the killed listeners are replaced" wait_for 10 answers
check "its message is delivered once, whole" \
  wait_for 10 eval '[ "$(delivered_whole "stalled one")" -eq 1 ]'

# the same with the master killed: its listeners die with it; the next start delivers it
hold_queue
submit "stalled two" >"$T/stalled2.out" &
client=$!
check "a second write waits likewise" wait_for 10 queued_whole "stalled two"
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
wait "$client"
kill "$locker"
wait "$locker" 2>/dev/null
check "a master killed during a listener's sync: the client never got 250" \
  eval '! grep -q "^data 250" "$T/stalled2.out"'
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon4.log" &
daemon=$!
started "$daemon"
check "the next start answers" wait_for 10 answers
check "nothing is left in tmp/" eval '! in_tmp'
check "and the message is delivered once, whole" \
  wait_for 10 eval '[ "$(delivered_whole "stalled two")" -eq 1 ]'
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
