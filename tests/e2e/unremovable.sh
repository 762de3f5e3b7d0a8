#!/usr/bin/env bash
# unremovable.sh - a delivered message whose queue file cannot be removed (an immutable file
# here; a file system gone read-only does the same) is not delivered again: its worker saves
# its final state, so a master that starts again takes it for finished, not for never tried;
# once the file can go, it goes.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-unremovable-$$
peer_start sink '{}' 127.0.1.90
{
  ini_global 1
  cat <<INI
retry_interval = 1s

[binding "b1"]
bind_address = 127.0.0.2

[domain "keep.test"]
route = 127.0.1.90:$(peer_port sink)
INI
} >"$T/sluice.ini"
printf 'Subject: once\r\n\r\nbody\r\n' |
  "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test u1@keep.test >"$T/id"
id=$(cat "$T/id")
qf=$T/spool/queue/$id
check "the message is queued" test -f "$qf"
# the file stays immutable only while the test runs: the clean-up must be able to remove it
trap 'rc=$?; chattr -i "$qf" 2>/dev/null; (exit $rc); cleanup' EXIT
check "its queue file is made immutable" chattr +i "$qf"

delivered() { peer_stat sink "len(messages())"; }
stop() { kill -TERM "$daemon"; wait "$daemon"; }
sluiced_start
check "it is delivered" wait_for 20 peer_true sink "len(messages()) >= 1"
check "the worker says the file could not be removed" \
  wait_for 10 grep -q "finished, but its file cannot be removed" "$T/daemon.log"
check "the file is still there" test -f "$qf"
check "its final state is saved" test -f "$T/spool/state/$id.0"
check "the daemon stops cleanly" stop

# A new master's start scan finds the file: the saved state says it is finished.
sluiced_start
check "the new master finds it finished" \
  wait_for 20 grep -q "cannot remove finished message $id" "$T/daemon.log"
sleep 2 # a delivery, were it made again, takes well under a second here
check "it is not delivered again ($(delivered) deliveries)" test "$(delivered)" -eq 1
check "the daemon stops cleanly again" stop

chattr -i "$qf"
sluiced_start
check "once it can be, the file is removed" wait_for 20 test ! -e "$qf"
check "still one delivery ($(delivered))" test "$(delivered)" -eq 1
check "the daemon stops cleanly at the end" stop
echo "1..$_n"
