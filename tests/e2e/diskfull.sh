#!/usr/bin/env bash
# diskfull.sh - the spool on a small tmpfs made by the test, filled up: inject refuses cleanly
# (one line, a non-zero exit, nothing half-written left in the spool), delivery goes on for
# what was accepted, nothing accepted is lost, and injecting works again once space returns.
# A message the receiver keeps deferring still ends after max_retries attempts although no
# attempt's state can be saved (the master carries the count), and a deferral's state is
# saved once space returns, so a restart keeps its attempt count.
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

peer_start sink '{"rcpt": [{"match": "@(defer|later)\\.test$", "reply": "451 4.3.0 try later"}]}' 127.0.1.80
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
