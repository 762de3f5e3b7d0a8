#!/usr/bin/env bash
# reload_log.sh - a reload whose delivery_log cannot be appended to is refused, as a start with
# it is: `sluicectl reload` says so in one line and does not signal, a SIGHUP leaves the daemon
# on its running config (generation and delivery log), and a good file is taken afterwards.
# The bad path goes through a regular file, so no user, root included, can create it; a FIFO
# that nobody reads is refused as well, at once.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/deferring.sh"

shm=/sluice-e2e-rlog-$$
: >"$T/afile"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
gen() { ctl status | sed -n 's/.*config generation \([0-9]*\),.*/\1/p'; }
has_gen() { test -n "$(gen)"; }
inject() {
  printf "Subject: test\r\n\r\nbody\r\n" | ctl inject --binding b1 -f alice@sender.test "$@"
}
logged() { grep -q "\"id\":\"$1\".*\"outcome\":\"deferred\"" "$2" 2>/dev/null; }

deferring_config "$T/delivery.log" ok.test
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
wait_for 10 test -S "$T/spool/control.sock"
wait_for 10 has_gen
g=$(gen)

deferring_config "$T/afile/delivery.log" ok.test
err=$(ctl reload 2>&1 >/dev/null); rc=$?
check "sluicectl reload refuses it: exit 1" test "$rc" -eq 1
check "in one line naming the path and why ($err)" \
  test "$(wc -l <<<"$err")" -eq 1 -a -n "$(grep "delivery_log $T/afile/delivery.log cannot be opened for append: Not a directory" <<<"$err")"
check "the daemon was not told: same generation" test "$(gen)" = "$g"

kill -HUP "$daemon"
check "a SIGHUP with it is refused, in one line of the daemon's log" \
  wait_for 10 grep -q "reload of $T/sluice.ini refused: delivery log $T/afile/delivery.log cannot be written" "$T/daemon.log"
check "the daemon runs on" alive "$daemon"
check "on its running config (generation $g)" test "$(gen)" = "$g"
m=$(inject a@ok.test)
check "its attempts still go to the running delivery log" wait_for 20 logged "$m" "$T/delivery.log"

# a FIFO that nobody reads: sluicectl reload and the daemon refuse it at once (opening it to
# write would wait for a reader: sluicectl for ever, the master's loop with it)
mkfifo "$T/fifo.log"
deferring_config "$T/fifo.log" ok.test
err=$(timeout 20 "$SLUICECTL" -c "$T/sluice.ini" reload 2>&1 >/dev/null); rc=$?
check "sluicectl reload refuses a FIFO nobody reads at once: exit 1 ($rc)" test "$rc" -eq 1
check "in one line saying so ($err)" \
  grep -q "delivery_log $T/fifo.log cannot be opened for append: a FIFO that nobody reads" <<<"$err"
kill -HUP "$daemon"
check "a SIGHUP with it is refused by the daemon, which answers on" \
  wait_for 10 grep -q "reload of $T/sluice.ini refused: delivery log $T/fifo.log cannot be written.*a FIFO that nobody reads" "$T/daemon.log"
check "on its running config (generation $g)" test "$(timeout 10 "$SLUICECTL" -c "$T/sluice.ini" status | sed -n 's/.*config generation \([0-9]*\),.*/\1/p')" = "$g"

deferring_config "$T/delivery2.log" ok.test
out=$(ctl reload); rc=$?
check "a good file is then taken ($out)" test "$rc" -eq 0 -a "$(gen)" -gt "$g"
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
