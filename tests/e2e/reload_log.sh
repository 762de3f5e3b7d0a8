#!/usr/bin/env bash
# reload_log.sh - a reload whose delivery_log cannot be appended to is refused, as a start with
# it is: `sluicectl reload` says so in one line and does not signal, a SIGHUP leaves the daemon
# on its running config (generation and delivery log), and a good file is taken afterwards.
# The bad path goes through a regular file, so no user, root included, can create it.
. "$(dirname "$0")/lib/tap.sh"

shm=/sluice-e2e-rlog-$$
: >"$T/afile"
conf() {
  cat >"$T/sluice.ini" <<INI
[global]
workers = 1
shm_name = $shm
spool_dir = $T/spool
delivery_log = $1
retry_interval = 1h

[binding "b1"]
bind_address = 127.0.0.2

[domain "ok.test"]
route = 127.0.1.31:9
INI
}
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
gen() { ctl status | sed -n 's/.*config generation \([0-9]*\),.*/\1/p'; }
has_gen() { test -n "$(gen)"; }
inject() {
  printf "Subject: test\r\n\r\nbody\r\n" | ctl inject --binding b1 -f alice@sender.test "$@"
}
logged() { grep -q "\"id\":\"$1\".*\"outcome\":\"deferred\"" "$2" 2>/dev/null; }

conf "$T/delivery.log"
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
wait_for 10 test -S "$T/spool/control.sock"
wait_for 10 has_gen
g=$(gen)

conf "$T/afile/delivery.log"
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

conf "$T/delivery2.log"
out=$(ctl reload); rc=$?
check "a good file is then taken ($out)" test "$rc" -eq 0 -a "$(gen)" -gt "$g"
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
