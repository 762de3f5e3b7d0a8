#!/usr/bin/env bash
# soak.sh - the kill soak (make soak; a one-minute run in CI): for SOAK_SECONDS (default 300)
# mail is injected and delivered to a sink on loopback while random SIGKILLs hit the workers
# and the master; a dead master is started again at once, as systemd's Restart= would.  Then
# the queue is drained and the receiver is checked:
#   - 0 lost: every recipient whose inject succeeded arrived;
#   - duplicates at most one per session a kill cut (a worker kill: its one session; a master
#     kill: every worker's, since they die with it);
#   - every counter back to 0, nothing left in spool/tmp after a clean start, spool empty.
# Prints TAP lines ("ok N - ...") and the figures as "# ..." lines; exit 1 on a failure.
# Everything runs in a private temp dir on loopback; processes are ended by PID.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
export SLUICE_BIN=${SLUICE_BIN:-$root/bin} SLUICE_TOP=$root
# shellcheck source=../tests/e2e/lib/tap.sh
. "$root/tests/e2e/lib/tap.sh"
# shellcheck source=../tests/e2e/lib/peer.sh
. "$root/tests/e2e/lib/peer.sh"
failed=0
not_ok() { _n=$((_n + 1)); echo "not ok $_n - $*"; failed=1; }

seconds=${SOAK_SECONDS:-300}
workers=${SOAK_WORKERS:-8}
rate=${SOAK_RATE:-40} # messages injected per second
shm=/sluice-soak-$$
peer_start sink '{"hold": 0.02}' 127.0.1.90
cat >"$T/sluice.ini" <<INI
[global]
workers = $workers
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
retry_interval = 1s
max_retry_interval = 2s
idle_timeout = 1s
audit_interval = 1s

[binding "b1"]
bind_address = 127.0.0.2

[domain "/^s[0-9]+\.test\$/"]
route = 127.0.1.90:$(peer_port sink)
INI
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
master=0
start_master() {
  "$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
  master=$!
  started "$master"
  wait_for 10 sh -c "'$SLUICECTL' -c '$T/sluice.ini' counters >/dev/null 2>&1"
}
start_master

# the injector: message N to uN@s(N%20).test, one line per accepted recipient
: >"$T/accepted"
(
  n=0
  end=$((SECONDS + seconds))
  while [ $SECONDS -lt $end ]; do
    for _ in $(seq "$rate"); do
      n=$((n + 1))
      printf 'Subject: %s\r\n\r\nsoak %s\r\n' "$n" "$n" |
        ctl inject --binding b1 -f s@sender.test "u$n@s$((n % 20)).test" >/dev/null 2>&1 &&
        echo "u$n@s$((n % 20)).test" >>"$T/accepted"
    done
    sleep 1
  done
) &
injector=$!
started "$injector"

# the killer: every 0.3-1.5 s a worker (four times in five) or the master
worker_kills=0 master_kills=0
end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
  sleep "0.$((RANDOM % 12 + 3))"
  if ! alive "$master"; then start_master; continue; fi
  if [ $((RANDOM % 5)) -eq 0 ]; then
    kill -KILL "$master" 2>/dev/null && master_kills=$((master_kills + 1))
    wait "$master" 2>/dev/null
    start_master # at once, as systemd would
  else
    w=$(children_of "$master" | shuf -n 1)
    [ -n "$w" ] && kill -KILL "$w" 2>/dev/null && worker_kills=$((worker_kills + 1))
  fi
done
wait "$injector"
alive "$master" || start_master

queue_empty() { [ "$(find "$T/spool/queue" -type f | wc -l)" -eq 0 ]; }
check "the queue drains after the soak" wait_for 180 queue_empty
sleep 2 # idle connections close (idle_timeout 1s)
all_zero() { ctl counters --json | python3 -c '
import json, sys
sys.exit(0 if all(c["in_use"] == 0 for c in json.load(sys.stdin)["counters"]) else 1)'; }
check "every counter is back to 0" wait_for 10 all_zero
kill -TERM "$master"
wait "$master"
start_master # a clean start sweeps what a kill cut short
kill -TERM "$master"
wait "$master"
check "nothing is left in spool/tmp" test "$(find "$T/spool/tmp" -type f | wc -l)" -eq 0

python3 - "$T/accepted" "$(peer_dir sink)/maildir" >"$T/figures" <<'PY'
import collections, json, os, sys
accepted = set(open(sys.argv[1]).read().split())
got = collections.Counter()
for name in os.listdir(sys.argv[2]):
    if name.endswith(".msg"):
        with open(os.path.join(sys.argv[2], name), "rb") as f:
            for a in json.loads(f.readline())["rcpt_to"]:
                got[a] += 1
print(len(accepted), len(accepted - set(got)), sum(n - 1 for n in got.values()))
PY
read -r accepted lost dups <"$T/figures"
cut=$((worker_kills + master_kills * workers))
echo "# $seconds s: $accepted messages accepted, $worker_kills worker kills, $master_kills master kills"
echo "# lost $lost, duplicates $dups (at most $cut sessions cut)"
check "0 lost of $accepted accepted" test "$lost" -eq 0
check "duplicates ($dups) at most one per session a kill cut ($cut)" test "$dups" -le "$cut"
check "kills happened: $worker_kills of workers, $master_kills of the master" \
  test "$worker_kills" -gt 0 -a "$master_kills" -gt 0
exit "$failed"
