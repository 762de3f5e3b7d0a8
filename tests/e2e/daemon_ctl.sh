#!/usr/bin/env bash
# daemon_ctl.sh - `sluicectl status` and `sluicectl reload` through the pid file the daemon
# writes in spool_dir: status says whether it runs (exit 0 / 3) with its pid and figures;
# reload validates the file first (a broken one is refused without a signal), then has the
# daemon re-read it and waits for the new config generation; unexpected arguments are named;
# a FIFO planted as the pid file is no pid file (status does not wait on it).
. "$(dirname "$0")/lib/tap.sh"

shm=/sluice-e2e-dctl-$$
cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
INI
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }

out=$(ctl status); rc=$?
check "status with no daemon: exit 3, says so ($out)" \
  bash -c '[ "$1" -eq 3 ] && grep -q "is not running" <<<"$2"' _ "$rc" "$out"
out=$(ctl reload 2>&1); rc=$?
check "reload with no daemon: exit 1, says so" \
  bash -c '[ "$1" -eq 1 ] && grep -q "not running" <<<"$2"' _ "$rc" "$out"

"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon writes its pid file" wait_for 10 test -s "$T/spool/sluiced.pid"
check "the pid file names the master" test "$(cat "$T/spool/sluiced.pid")" = "$daemon"
ready() { ctl status | grep -q 'workers 2,'; }
wait_for 10 ready
out=$(ctl status); rc=$?
echo "$out" | sed 's/^/# /'
check "status: exit 0, the pid, workers and the queue" \
  bash -c '[ "$1" -eq 0 ] && grep -q "is running: pid $3" <<<"$2" && grep -q "workers 2, config generation" <<<"$2" && grep -q "0 messages queued" <<<"$2"' _ "$rc" "$out" "$daemon"
gen() { ctl status | sed -n 's/.*config generation \([0-9]*\).*/\1/p'; }
g1=$(gen)
out=$(ctl reload); rc=$?
check "reload: exit 0, the new generation ($out)" \
  bash -c '[ "$1" -eq 0 ] && grep -q "config generation $(($3 + 1))" <<<"$2"' _ "$rc" "$out" "$g1"
check "the daemon logged the reload" grep -q "reloaded $T/sluice.ini" "$T/daemon.log"
cp "$T/sluice.ini" "$T/good.ini"
g2=$(gen)
echo "workers = lots" >>"$T/sluice.ini"
out=$(ctl reload 2>&1); rc=$?
check "reload of a broken file: exit 1, FILE:LINE, the daemon not told" \
  bash -c '[ "$1" -eq 1 ] && grep -q "sluice.ini:[0-9]*: " <<<"$2" && grep -q "was not told" <<<"$2"' _ "$rc" "$out"
cp "$T/good.ini" "$T/sluice.ini"
check "the generation did not move" test "$(gen)" = "$g2"
out=$(ctl status extra 2>&1); rc=$?
check "status extra: exit 2, the argument named" \
  bash -c '[ "$1" -eq 2 ] && grep -q "unexpected argument extra" <<<"$2"' _ "$rc" "$out"
out=$(ctl resolve --bogus x.test 2>&1); rc=$?
check "resolve --bogus: exit 2, the argument named" \
  bash -c '[ "$1" -eq 2 ] && grep -q "unexpected argument --bogus" <<<"$2"' _ "$rc" "$out"
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
check "and removes its pid file" test ! -e "$T/spool/sluiced.pid"
ctl status >/dev/null
check "status after the stop: exit 3" test $? -eq 3

# a FIFO where the pid file goes (the spool is the daemon's user's): status answers at once
mkfifo "$T/spool/sluiced.pid"
timeout 20 "$SLUICECTL" -c "$T/sluice.ini" status >/dev/null
check "status with a FIFO as the pid file: exit 3 at once (no wait for a writer)" test $? -eq 3
rm "$T/spool/sluiced.pid"
