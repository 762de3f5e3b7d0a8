#!/usr/bin/env bash
# unremovable.sh - a delivered message whose queue file cannot be removed (an immutable file
# here; a file system gone read-only does the same) is not delivered again: its worker saves
# its final state, so a master that starts again takes it for finished, not for never tried;
# an operator's delete of such a message is final all the same; once the files can go, they
# go.  (The master's own list of such messages, which keeps them out of its rescans, is
# tested in test_queue: a rescan comes a minute apart.)
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-unremovable-$$
peer_start sink '{"rcpt": [{"match": "@later\\.test$", "reply": "451 4.3.0 try later"}]}' 127.0.1.90
{
  ini_global 1
  cat <<INI
retry_interval = 1s

[binding "b1"]
bind_address = 127.0.0.2

[domain "keep.test"]
route = 127.0.1.90:$(peer_port sink)

[domain "later.test"]
route = 127.0.1.90:$(peer_port sink)
INI
} >"$T/sluice.ini"
printf 'Subject: once\r\n\r\nbody\r\n' |
  "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test u1@keep.test >"$T/id"
id=$(cat "$T/id")
qf=$T/spool/queue/$id
printf 'Subject: deleted\r\n\r\nbody\r\n' |
  "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test u2@later.test >"$T/id2"
id2=$(cat "$T/id2")
qf2=$T/spool/queue/$id2
check "the messages are queued" test -f "$qf" -a -f "$qf2"
# the files stay immutable only while the test runs: the clean-up must be able to remove them
trap 'rc=$?; chattr -i "$qf" "$qf2" 2>/dev/null; (exit $rc); cleanup' EXIT
check "their queue files are made immutable" chattr +i "$qf" "$qf2"

delivered() { peer_stat sink "len(messages())"; }
stop() { kill -TERM "$daemon"; wait "$daemon"; }
sluiced_start
check "it is delivered" wait_for 20 peer_true sink "len(messages()) >= 1"
check "the worker says the file could not be removed" \
  wait_for 10 grep -q "finished, but its file cannot be removed" "$T/daemon.log"
check "the file is still there" test -f "$qf"
check "its final state is saved" test -f "$T/spool/state/$id.0"
# An operator's delete of a message it cannot remove: final all the same, never tried again.
check "the other message is deferred" \
  wait_for 20 grep -q "\"id\":\"$id2\".*\"outcome\":\"deferred\"" "$T/delivery.log"
out=$("$SLUICECTL" -c "$T/sluice.ini" delete "$id2" 2>&1)
rc=$?
check "sluicectl delete of it succeeds (exit $rc: $(head -1 <<<"$out"))" test "$rc" -eq 0
tries() { grep -c "\"id\":\"$id2\".*\"outcome\":\"deferred\"" "$T/delivery.log"; }
tried=$(tries)
pending() { # recipients of message $1 the queue listing shows pending
  "$SLUICECTL" -c "$T/sluice.ini" queue --json | python3 -c '
import json, sys
print(sum(p["pending"] for m in json.load(sys.stdin)["messages"] if m["id"] == sys.argv[1]
          for p in m["parts"]))' "$1"
}
check "the queue shows nothing of it pending" test "$(pending "$id2")" -eq 0
check "the daemon stops cleanly" stop

# A new master's start scan finds the files: the saved states say they are finished.
sluiced_start
check "the new master finds the delivered one finished" \
  wait_for 20 grep -q "cannot remove finished message $id" "$T/daemon.log"
check "and the deleted one" wait_for 20 grep -q "cannot remove finished message $id2" "$T/daemon.log"
sleep 2 # a delivery, were it made again, takes well under a second here
check "the delivered one is not delivered again ($(delivered) deliveries)" test "$(delivered)" -eq 1
check "the deleted one is not tried again ($(tries) tries, $tried before)" test "$(tries)" -eq "$tried"
check "nor shown pending" test "$(pending "$id2")" -eq 0
check "the daemon stops cleanly again" stop

chattr -i "$qf" "$qf2"
sluiced_start
check "once they can be, the files are removed" wait_for 20 test ! -e "$qf" -a ! -e "$qf2"
check "still one delivery ($(delivered))" test "$(delivered)" -eq 1
check "the daemon stops cleanly at the end" stop
echo "1..$_n"
