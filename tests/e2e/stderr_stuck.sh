#!/usr/bin/env bash
# stderr_stuck.sh - a stderr whose reader stops reading (a journal that lags, a pipe nobody
# reads) never stops the daemon.  The pipe is made small (4 KiB) and debug lines are on, so
# it is full within the first messages; every message, injected (the master logs each) or
# submitted to a listener (whose processes log each), is delivered all the same, and the
# master answers sluicectl.  The lines the pipe could not take are dropped, and their count
# is said once the pipe takes lines again.  Started as root, the daemon runs as nobody: the
# workers and listener processes, which may not open root's pipe, write through the master's
# non-blocking copy of it.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

PEER_MAILDIR=0 peer_start mx '{}' 127.0.1.1
shm=/sluice-e2e-stderr-$$
# as root, the daemon runs as nobody, its delivery log in a directory of nobody's
user=
mkdir -p "$T/log"
if [ "$(id -u)" -eq 0 ]; then
  user="user = nobody"
  chown nobody "$T/log"
  chmod 0711 "$T" # nobody reaches the spool and the log below it
fi
{
  cat <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/log/delivery.log
$user
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2

[domain "stuck.test"]
route = 127.0.1.1:$(peer_port mx)

[listener "in"]
address = 127.0.0.1:$(peer_free_port 127.0.0.1)
binding = b1
max_sessions = 4
INI
} >"$T/sluice.ini"
chmod 0644 "$T/sluice.ini"
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
python3 -c 'import fcntl; fcntl.fcntl(7, fcntl.F_SETPIPE_SZ, 4096)'
"$SLUICED" -d -c "$T/sluice.ini" 2>"$T/err.fifo" &
daemon=$!
started "$daemon"
check "the daemon comes up" wait_for 10 up

n=300
seq $n | xargs -P 4 -I{} sh -c "printf 'Subject: {}\r\n\r\nbody\r\n' |
  '$SLUICECTL' -c '$T/sluice.ini' inject --binding b1 -f s@sender.test u{}@stuck.test >/dev/null"
full() { test "$(pipe_bytes)" -ge 3500; }
check "the pipe is full: nobody reads it" wait_for 20 full
check "every injected message is delivered all the same" \
  wait_for 60 peer_true mx "total['messages'] == $n"
port=$(sed -n 's/^address = 127.0.0.1://p' "$T/sluice.ini")
check "the listener takes 200 more" \
  timeout 60 smtp-source -s 4 -m 200 -f s@sender.test -t u@stuck.test "127.0.0.1:$port"
check "and they are delivered too" wait_for 60 peer_true mx "total['messages'] == $n + 200"
check "the master answers sluicectl" eval "ctl suspend --domain other.test --for 1m >/dev/null"
check "and again" eval "ctl resume --domain other.test >/dev/null"
timeout 3 cat <&7 >"$T/err.log" # the reader is back
ctl suspend --domain other.test --for 1m >/dev/null # a line to say it with
timeout 3 cat <&7 >>"$T/err.log"
check "the count of the lines dropped is said" \
  grep -q "log lines dropped: stderr did not take them" "$T/err.log"
kill -TERM "$daemon"
check "the daemon stops" wait_for 30 eval '! alive "$daemon"'
rc=1
alive "$daemon" || { wait "$daemon"; rc=$?; }
check "cleanly" test "$rc" -eq 0

# --- an unnamed pipe (`sluiced -d 2>&1 | less`, left paused), which the master opens again
# non-blocking as it did the named FIFO above; and a descriptor limit of 64, below the copy's
# usual place (100): the copy goes to the highest place the limit allows
exec 8> >(exec sleep 600) # the write end; its reader never reads
started "$!"
python3 -c 'import fcntl; fcntl.fcntl(8, fcntl.F_SETPIPE_SZ, 4096)'
held() { python3 -c 'import fcntl, struct, termios
print(struct.unpack("i", fcntl.ioctl(8, termios.FIONREAD, b"\0" * 4))[0])'; }
(ulimit -n 64 && exec "$SLUICED" -d -c "$T/sluice.ini" 2>&8) &
daemon=$!
started "$daemon"
check "the daemon comes up again, its stderr an unnamed pipe" wait_for 10 up
seq 100 | xargs -P 4 -I{} sh -c "printf 'Subject: {}\r\n\r\nbody\r\n' |
  '$SLUICECTL' -c '$T/sluice.ini' inject --binding b1 -f s@sender.test v{}@stuck.test >/dev/null"
check "that pipe is full too" wait_for 20 eval 'test "$(held)" -ge 3500'
check "all 100 are delivered all the same" \
  wait_for 60 peer_true mx "total['messages'] == $n + 300"
check "the listener takes 100 more" \
  timeout 60 smtp-source -s 4 -m 100 -f s@sender.test -t u@stuck.test "127.0.0.1:$port"
check "and they are delivered too" wait_for 60 peer_true mx "total['messages'] == $n + 400"
kill -TERM "$daemon"
check "the daemon stops" wait_for 30 eval '! alive "$daemon"'
rc=1
alive "$daemon" || { wait "$daemon"; rc=$?; }
check "cleanly" test "$rc" -eq 0

# --- a fatal line waits for room, but not for ever: a daemon that cannot start (its spool is
# a file), its stderr the full pipe, exits
sed -e "s|^spool_dir = .*|spool_dir = $T/sluice.ini|" -e "s|^shm_name = .*|shm_name = $shm-fatal|" \
  "$T/sluice.ini" >"$T/fatal.ini"
"$SLUICED" -c "$T/fatal.ini" 2>&8 &
fatal=$!
started "$fatal"
check "a fatal error with stderr full: the daemon exits all the same (within 15 s)" \
  wait_for 15 eval '! alive "$fatal"'
rc=0
alive "$fatal" || { wait "$fatal"; rc=$?; }
check "with status 1" test "$rc" -eq 1
check "and leaves no counter table behind" test ! -e "/dev/shm$shm-fatal"
