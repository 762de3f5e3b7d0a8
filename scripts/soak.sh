#!/usr/bin/env bash
# soak.sh - the kill soak (make soak; a one-minute run in CI): for SOAK_SECONDS (default 300)
# mail is injected (sluicectl inject) and submitted over SMTP to a listener (Python's smtplib,
# SOAK_CLIENTS sessions at once, a message whose session was cut sent again as a client
# would), and delivered to a sink on loopback while random SIGKILLs hit the workers, the
# listener processes and the master; a dead master is started again at once, as systemd's
# Restart= would.  Then the queue is drained and the receiver is checked:
#   - 0 lost: every recipient whose inject succeeded, or whose message got 250 from the
#     listener, arrived;
#   - duplicates at most one per session a kill cut (a worker or listener kill: its one
#     session; a master kill: every worker's and listener process's, since they die with it);
#   - every counter back to 0, no listener write left in spool/tmp, nothing at all left there
#     after a clean start, spool empty.
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
clients=${SOAK_CLIENTS:-3} # SMTP sessions submitting at once, each about 10 messages a second
sessions=$((clients + 1)) # listener processes (one spare)
shm=/sluice-soak-$$
peer_start sink '{"hold": 0.02}' 127.0.1.90
lport=$(peer_free_port 127.0.0.1)
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

[listener "in"]
address = 127.0.0.1:$lport
binding = b1
max_sessions = $sessions
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

# the submitter: message N to lN@s(N%20).test over SMTP, one line per message that got 250
: >"$T/acked"
python3 - 127.0.0.1 "$lport" "$seconds" "$clients" "$T/acked" >"$T/submitter.out" 2>&1 <<'PY' &
import collections, smtplib, sys, threading, time
host, port, seconds, clients, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), sys.argv[5]
end = time.time() + seconds
lock, counts, next_n = threading.Lock(), collections.Counter(), [0]
acked = open(out, "a", buffering=1)

def take():
    with lock:
        next_n[0] += 1
        return next_n[0]

def session():
    try:
        s = smtplib.SMTP(host, port, timeout=10)
        s.ehlo("soak.test")
        return s
    except (smtplib.SMTPException, OSError):
        with lock:
            counts["connect failed"] += 1
        time.sleep(0.2)  # the master is being restarted
        return None

def client():
    s, n = None, take()
    while time.time() < end:
        s = s or session()
        if s is None:
            continue
        rcpt = "l%d@s%d.test" % (n, n % 20)
        try:
            s.sendmail("s@sender.test", [rcpt], "Subject: %d\r\n\r\nsubmitted %d\r\n" % (n, n))
        except (smtplib.SMTPException, OSError) as e:  # cut, or refused: sent again
            with lock:
                counts[type(e).__name__] += 1
            s.close()
            s = None
            continue
        with lock:
            acked.write(rcpt + "\n")
            counts["acknowledged"] += 1
        n = take()
        time.sleep(0.1)

threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(", ".join("%s %d" % kv for kv in sorted(counts.items())))
PY
submitter=$!
started "$submitter"

# the killer: every 0.3-1.5 s the master (one time in five), a listener process (one in
# five) or a worker
children() { ps -o pid=,args= --ppid "$master" | awk -v k="sluiced: $1" 'index($0, k) {print $1}'; }
worker_kills=0 listener_kills=0 master_kills=0
end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
  sleep "0.$((RANDOM % 12 + 3))"
  if ! alive "$master"; then start_master; continue; fi
  dice=$((RANDOM % 5))
  if [ "$dice" -eq 0 ]; then
    kill -KILL "$master" 2>/dev/null && master_kills=$((master_kills + 1))
    wait "$master" 2>/dev/null
    start_master # at once, as systemd would
  elif [ "$dice" -eq 1 ] && l=$(children listener | shuf -n 1) && [ -n "$l" ]; then
    kill -KILL "$l" 2>/dev/null && listener_kills=$((listener_kills + 1))
  else
    w=$(children worker | shuf -n 1)
    [ -n "$w" ] && kill -KILL "$w" 2>/dev/null && worker_kills=$((worker_kills + 1))
  fi
done
wait "$injector"
wait "$submitter"
alive "$master" || start_master

queue_empty() { [ "$(find "$T/spool/queue" -type f | wc -l)" -eq 0 ]; }
check "the queue drains after the soak" wait_for 180 queue_empty
sleep 2 # idle connections close (idle_timeout 1s)
all_zero() { ctl counters --json | python3 -c '
import json, sys
sys.exit(0 if all(c["in_use"] == 0 for c in json.load(sys.stdin)["counters"]) else 1)'; }
check "every counter is back to 0" wait_for 10 all_zero
# a worker killed mid-write leaves its state write (ID.K) to the next start; a listener's write
# is removed when its process is reaped, or at the start after a master kill
not_state_write() { find "$T/spool/tmp" -type f | grep -Evc '/[0-9A-Za-z]{20}\.[0-9]+$'; }
check "no listener write is left in spool/tmp" test "$(not_state_write)" -eq 0
kill -TERM "$master"
wait "$master"
start_master # a clean start sweeps what a kill cut short
kill -TERM "$master"
wait "$master"
check "nothing is left in spool/tmp" test "$(find "$T/spool/tmp" -type f | wc -l)" -eq 0

python3 - "$T/accepted" "$T/acked" "$(peer_dir sink)/maildir" >"$T/figures" <<'PY'
import collections, json, os, sys
injected = set(open(sys.argv[1]).read().split())
submitted = set(open(sys.argv[2]).read().split())
accepted = injected | submitted
got = collections.Counter()
for name in os.listdir(sys.argv[3]):
    if name.endswith(".msg"):
        with open(os.path.join(sys.argv[3], name), "rb") as f:
            for a in json.loads(f.readline())["rcpt_to"]:
                got[a] += 1
print(len(injected), len(submitted), len(accepted - set(got)), sum(n - 1 for n in got.values()))
PY
read -r injected submitted lost dups <"$T/figures"
accepted=$((injected + submitted))
cut=$((worker_kills + listener_kills + master_kills * (workers + sessions)))
echo "# $seconds s: $accepted messages accepted ($injected injected, $submitted by the listener)"
echo "# kills: $worker_kills of workers, $listener_kills of listener processes, $master_kills of the master"
echo "# submitter: $(tail -1 "$T/submitter.out")"
echo "# lost $lost, duplicates $dups (at most $cut sessions cut)"
check "0 lost of $accepted accepted" test "$lost" -eq 0
check "duplicates ($dups) at most one per session a kill cut ($cut)" test "$dups" -le "$cut"
check "the listener acknowledged messages: $submitted" test "$submitted" -gt 0
check "kills happened: $worker_kills of workers, $listener_kills of listener processes, $master_kills of the master" \
  test "$worker_kills" -gt 0 -a "$listener_kills" -gt 0 -a "$master_kills" -gt 0
exit "$failed"
