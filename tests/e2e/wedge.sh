#!/usr/bin/env bash
# wedge.sh - nothing outside the process freezes the master: a notify socket whose reader
# never reads (a stalled or foreign supervisor; its queue fills after about ten datagrams)
# with a 0.2 s watchdog (a ping every 0.1 s, so the queue is full within a second, before any
# mail comes): 300 messages are delivered all the same, and SIGTERM stops the daemon.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-wedge-$$
peer_start sink '{}' 127.0.1.60
cat >"$T/sluice.ini" <<INI
[global]
workers = 4
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
retry_interval = 1h

[binding "b1"]
bind_address = 127.0.0.2

[domain "wedge.test"]
route = 127.0.1.60:$(peer_port sink)
INI

# a datagram socket bound and never read
python3 -u - "$T/deaf.sock" <<'PY' &
import signal, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(3600)
PY
started $!
wait_for 5 test -S "$T/deaf.sock"

NOTIFY_SOCKET=$T/deaf.sock WATCHDOG_USEC=200000 "$SLUICED" -d -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon comes up with a notify reader that never reads" \
  wait_for 10 sh -c "'$SLUICECTL' -c '$T/sluice.ini' counters >/dev/null 2>&1"
sleep 2 # the socket's queue is full now
seq 300 | xargs -P 4 -I{} sh -c "printf 'Subject: {}\r\n\r\nbody\r\n' |
  '$SLUICECTL' -c '$T/sluice.ini' inject --binding b1 -f s@sender.test u{}@wedge.test >/dev/null"
check "300 messages are delivered while the notify socket stays full" \
  wait_for 60 peer_true sink "dest('127.0.1.60')['messages'] == 300"
check "the master still answers" sh -c "'$SLUICECTL' -c '$T/sluice.ini' counters >/dev/null"
check "the dropped pings were warned of, not more than once a minute" \
  test "$(grep -c 'the notify socket takes nothing' "$T/daemon.log")" -eq 1
kill -TERM "$daemon"
stopped() { ! alive "$daemon"; }
check "SIGTERM stops the daemon within 10 s" wait_for 10 stopped
wait "$daemon"
check "and it exits 0" test $? -eq 0

# --- damaged spool entries are set aside, not retried, not followed -------------------------
inject() {
  printf 'Subject: t\r\n\r\n%s\r\n' "${2:-body}" |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test "$1"
}
good=$(inject good@wedge.test)
trunc=$(inject trunc@wedge.test "$(seq 400 | sed 's/$/ a line of the body that the truncation cuts off/')")
garbage_state=$(inject state@wedge.test)
fake() { printf '%s' "${good%??????????}$1"; } # a well-formed id of no message
check "three messages were queued to be damaged" test -n "$good" -a -n "$trunc" -a -n "$garbage_state"
truncate -s -5000 "$T/spool/queue/$trunc"
printf 'attempts 99999999999999999999\nnext 0\nreply \n' >"$T/spool/state/$garbage_state.0"
mkfifo "$T/spool/queue/$(fake FIFOFIFOFI)"
ln -s /etc/passwd "$T/spool/queue/$(fake LINKLINKLI)"
echo junk >"$T/spool/queue/not-an-id"
before=$(peer_stat sink "dest('127.0.1.60')['messages']")
"$SLUICED" -d -c "$T/sluice.ini" 2>"$T/daemon2.log" &
daemon=$!
started "$daemon"
check "the start scan is not hung by a FIFO in the queue" \
  wait_for 10 grep -q 'ready: ' "$T/daemon2.log"
check "the sound message and the one with a garbage state file are delivered" \
  wait_for 20 peer_true sink "dest('127.0.1.60')['messages'] == $before + 2"
check "the message with the garbage state went to its recipient, not dropped" \
  wait_for 5 sh -c "grep -q '\"id\":\"$garbage_state\".*\"outcome\":\"delivered\"' '$T/delivery.log'"
for f in "$trunc" "$(fake FIFOFIFOFI)" "$(fake LINKLINKLI)" not-an-id "$garbage_state.0"; do
  check "corrupt/ holds $f" wait_for 5 test -e "$T/spool/corrupt/$f" -o -L "$T/spool/corrupt/$f"
done
check "the symlink was not followed: /etc/passwd is untouched and nothing of it was delivered" \
  sh -c "! grep -q 'root:' '$(peer_dir sink)'/maildir/*.msg 2>/dev/null"
check "one warning names the truncated message and the reason" \
  test "$(grep -c "queue/$trunc set aside.*truncated" "$T/daemon2.log")" -eq 1
check "no busy loop on it: no attempt was logged" sh -c "! grep -q '\"id\":\"$trunc\"' '$T/delivery.log'"
check "the queue is empty of them" test "$(find "$T/spool/queue" -type f | wc -l)" -eq 0
check "sluicectl queue lists what was set aside" \
  sh -c "'$SLUICECTL' -c '$T/sluice.ini' queue | grep -q '5 damaged spool entries set aside'"
check "metrics count them" \
  sh -c "'$SLUICECTL' -c '$T/sluice.ini' metrics | grep -q '^sluice_spool_quarantined_files 5$'"
kill -TERM "$daemon"
wait "$daemon"

# --- a file named in the config is read only if it is a regular file, and bounded ----------
for dev in /dev/zero /dev/urandom; do
  printf '[global]\ntls_ca_file = %s\n' "$dev" >"$T/dev.ini"
  out=$(timeout 10 "$SLUICECTL" -c "$T/dev.ini" config check 2>&1); rc=$?
  check "tls_ca_file = $dev: a FILE:LINE error at once, exit 1 ($out)" \
    sh -c "[ $rc -eq 1 ] && printf '%s' \"\$1\" | grep -q 'dev.ini:2: tls_ca_file $dev: not a regular file'" _ "$out"
done
mkfifo "$T/fifo.ini"
out=$(timeout 10 "$SLUICECTL" -c "$T/fifo.ini" config check 2>&1); rc=$?
check "a FIFO as the config file is refused at once, exit 1 ($out)" \
  sh -c "[ $rc -eq 1 ] && printf '%s' \"\$1\" | grep -q 'not a regular file'" _ "$out"
printf '[global]\ntls_ca_file = /dev/zero\nspool_dir = %s\n' "$T/spool2" >"$T/dev.ini"
out=$(timeout 10 "$SLUICED" -c "$T/dev.ini" 2>&1); rc=$?
check "the daemon refuses to start on it too (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
