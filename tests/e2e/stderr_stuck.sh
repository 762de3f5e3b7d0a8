#!/usr/bin/env bash
# stderr_stuck.sh - a stderr whose reader stops reading (a journal that lags, a pipe nobody
# reads) never stops the daemon.  With debug lines on, the pipe is full within the first
# messages; every queued message is delivered all the same, and the master answers
# sluicectl.  The lines the pipe could not take are dropped, and their count is said once the
# pipe takes lines again.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

PEER_MAILDIR=0 peer_start mx '{}' 127.0.1.1
shm=/sluice-e2e-stderr-$$
{
  ini_global 2
  cat <<INI
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2

[domain "stuck.test"]
route = 127.0.1.1:$(peer_port mx)
INI
} >"$T/sluice.ini"
ctl() { timeout 20 "$SLUICECTL" -c "$T/sluice.ini" "$@"; } # a wedged master fails, not hangs, the test
up() { ctl counters >/dev/null 2>&1; }
# pipe_bytes - what the pipe holds, unread
pipe_bytes() {
  python3 -c 'import fcntl, os, struct, sys, termios
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
print(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])' "$T/err.fifo"
}
mkfifo "$T/err.fifo"
exec 7<>"$T/err.fifo" # its one reader, which reads nothing until the end
"$SLUICED" -d -c "$T/sluice.ini" 2>"$T/err.fifo" &
daemon=$!
started "$daemon"
check "the daemon comes up" wait_for 10 up

n=300
seq $n | xargs -P 4 -I{} sh -c "printf 'Subject: {}\r\n\r\nbody\r\n' |
  '$SLUICECTL' -c '$T/sluice.ini' inject --binding b1 -f s@sender.test u{}@stuck.test >/dev/null"
check "the pipe is full: nobody reads it (64 KiB)" test "$(pipe_bytes)" -ge 60000
check "every message is delivered all the same" \
  wait_for 60 peer_true mx "total['messages'] == $n"
check "the master answers sluicectl" eval "ctl suspend --domain other.test --for 1m >/dev/null"
check "and again" eval "ctl resume --domain other.test >/dev/null"
timeout 3 cat <&7 >"$T/err.log" # the reader is back
ctl suspend --domain other.test --for 1m >/dev/null # a line to say it with
timeout 3 cat <&7 >>"$T/err.log"
check "the count of the lines dropped is said" \
  grep -q "log lines dropped: stderr did not take them" "$T/err.log"
kill -TERM "$daemon"
check "the daemon stops" wait_for 30 eval '! alive "$daemon"'
alive "$daemon" || wait "$daemon"
check "cleanly" test $? -eq 0
