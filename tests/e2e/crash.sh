#!/usr/bin/env bash
# crash.sh - "nothing accepted is ever lost" (architecture I2, I4), end to end:
#   1. workers killed with -9 in the middle of their sessions: every message
#      still reaches the sink (at least once), every counter returns to 0, the
#      master replaces the dead and keeps its full worker count;
#   2. the master killed with -9 mid-delivery: its workers leave, its segment is
#      left behind and a new start takes it over, the queue is finished;
#   3. SIGTERM mid-delivery: exit 0 within the drain grace, each message is
#      either delivered or still queued (never both, never neither), and a
#      restart finishes the queue;
#   4. a message whose one part was delivered and whose other part is deferred
#      survives a kill -9 of the master: the delivered part is not sent again,
#      the deferred one is still queued and retried;
#   5. SIGHUP while delivering: old workers finish their jobs, nothing is lost
#      and nothing is sent twice.
# Duplicates are allowed (at-least-once: a kill between the peer's 250 and the
# spool update) but counted and printed as "# ..." lines.
# The sink holds every final DATA reply 0.25 s so sessions are long and the
# kills land in them.  Routes replace DNS: no resolver is involved.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-crash-$$
workers=12
timeout=3 # every session phase timeout, seconds: the drain grace is this plus 5 s

# a.test, b.test, c.test accept everything; defer.test answers 451 to every RCPT
peer_start mx '{"hold": 0.25, "rcpt": [{"match": "@defer\\.test$", "reply": "451 4.3.0 try later"}]}' \
  127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4
port=$(peer_port mx)
maildir=$(peer_dir mx)/maildir

cat >"$T/sluice.ini" <<INI
[global]
workers = $workers
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
audit_interval = 1s
idle_timeout = 1s
retry_interval = 1s
max_retry_interval = 2s
connect_timeout = ${timeout}s
greeting_timeout = ${timeout}s
ehlo_timeout = ${timeout}s
mail_from_timeout = ${timeout}s
rcpt_to_timeout = ${timeout}s
data_timeout = ${timeout}s
rset_timeout = ${timeout}s

[binding "b1"]
bind_address = 127.0.0.2

[domain "a.test"]
route = 127.0.1.1:$port
[domain "b.test"]
route = 127.0.1.2:$port
[domain "c.test"]
route = 127.0.1.3:$port
[domain "defer.test"]
route = 127.0.1.4:$port
INI

ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
# now_ms: wall clock in milliseconds, for the figures printed
now_ms() { date +%s%3N; }
# start NAME: a daemon logging to $T/NAME.log; sets $daemon
start() {
  "$SLUICED" -c "$T/sluice.ini" 2>>"$T/$1.log" &
  daemon=$!
  started "$daemon"
}
# up: the daemon publishes its table and runs its full worker count
up() {
  alive "$daemon" &&
    test "$(ctl counters --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["workers"])' 2>/dev/null)" = "$workers" &&
    test "$(children_of "$daemon" | wc -l)" -eq "$workers"
}
queued() { find "$T/spool/queue" -type f | wc -l; }
queue_empty() { test "$(queued)" -eq 0; }
queue_at_most() { test "$(queued)" -le "$1"; }
sink_at_least() { peer_true mx "total['messages'] >= $1"; }
sink_total() { peer_stat mx "total['messages']"; }
counts_zero() {
  ctl counters --json | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(any(c["in_use"] for c in d["counters"]))'
}

# inject_many PREFIX N: N one-recipient messages PREFIX-I@{a,b,c}.test, in
# parallel; "RCPT QUEUE-ID" lines go to $T/PREFIX.ids
# shellcheck disable=SC2016 # the inner sh expands its own $0 $1
inject_many() {
  local prefix=$1 n=$2 doms=(a.test b.test c.test) i
  for i in $(seq "$n"); do echo "$prefix-$i@${doms[i % 3]}"; done |
    xargs -P 6 -I{} sh -c 'id=$(printf "Subject: crash {}\r\n\r\nbody of {}\r\n" |
      "$0" -c "$1" inject --binding b1 -f s@sender.test {}) && echo "{} $id"' \
      "$SLUICECTL" "$T/sluice.ini" >>"$T/$prefix.ids"
}

# tally PREFIX: for the messages of $T/PREFIX.ids, print
#   "MISSING DUPLICATES UNLOGGED": recipients the sink never accepted, extra
#   acceptances beyond the first, queue ids without a "delivered" log line
tally() {
  python3 - "$T/$1.ids" "$maildir" "$T/delivery.log" <<'PY'
import json, os, sys
ids_file, maildir, dlog = sys.argv[1:]
want = dict(line.split() for line in open(ids_file))
seen = dict.fromkeys(want, 0)
for name in os.listdir(maildir):
    if name.endswith(".msg"):
        with open(os.path.join(maildir, name), "rb") as f:
            env = json.loads(f.readline())
        for r in env["rcpt_to"]:
            r = r.strip("<>")
            if r in seen:
                seen[r] += 1
logged = set()
if os.path.exists(dlog):
    for line in open(dlog):
        e = json.loads(line)
        if e["outcome"] == "delivered":
            logged.add(e["id"])
missing = sum(1 for c in seen.values() if c == 0)
dups = sum(c - 1 for c in seen.values() if c > 1)
unlogged = sum(1 for i in set(want.values()) if i not in logged)
print(missing, dups, unlogged)
PY
}

# check_all_delivered PHASE PREFIX N: the assertions every phase ends with;
# sets $dups
check_all_delivered() {
  local phase=$1 prefix=$2 n=$3 missing unlogged
  read -r missing dups unlogged < <(tally "$prefix")
  check "$phase: every one of the $n messages reached the sink ($missing missing)" test "$missing" -eq 0
  echo "# $phase: $dups duplicate deliveries (at-least-once)"
  check "$phase: the delivery log has a delivered line for each ($unlogged without)" test "$unlogged" -eq 0
  check "$phase: every counter is back at 0" wait_for 15 counts_zero
}

# kill_workers ROUNDS: SIGKILL one random worker every 0.3 s; sets $kills
kill_workers() {
  local victims v
  kills=0
  for _ in $(seq "$1"); do
    mapfile -t victims < <(children_of "$daemon")
    if [ ${#victims[@]} -gt 0 ]; then
      v=${victims[RANDOM % ${#victims[@]}]}
      kill -KILL "$v" 2>/dev/null && kills=$((kills + 1))
    fi
    sleep 0.3
  done
}

# ---------------------------------------------------------------- 1. workers
n1=300
inject_many p1 $n1
check "phase 1: $n1 messages queued before the start" test "$(queued)" -eq $n1 -a "$(wc -l <"$T/p1.ids")" -eq $n1

t0=$(now_ms)
start daemon1
check "phase 1: the daemon delivers" wait_for 30 sink_at_least 30
kill_workers 12
died=$(grep -c 'died with job' "$T/daemon1.log")
echo "# phase 1: $kills workers killed, $died of them in the middle of a job"
check "phase 1: kills landed in the middle of delivery jobs" test "$died" -ge 1
check "phase 1: the queue drains" wait_for 90 queue_empty
echo "# phase 1: the queue drained $(($(now_ms) - t0)) ms after the start"
check_all_delivered "phase 1" p1 $n1
# one kill ends one session, in which at most its current message was accepted unrecorded
check "phase 1: at most one duplicate per kill ($dups for $kills)" test "$dups" -le "$kills"
check "phase 1: the daemon is still up with its $workers workers" wait_for 30 up
check "phase 1: the master logged each death" \
  test "$(grep -c 'killed by signal 9' "$T/daemon1.log")" -eq "$kills"

# ---------------------------------------------------------------- 2. master
kill -TERM "$daemon"
wait "$daemon"
check "phase 1: the daemon that lost workers stops with exit 0" test $? -eq 0
n2=150
inject_many p2 $n2
check "phase 2: $n2 messages queued before the start" test "$(queued)" -eq $n2
before=$(sink_total)
start daemon2
check "phase 2: the daemon delivers" wait_for 30 sink_at_least $((before + 15))
orphans=$(children_of "$daemon")
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
left=$(queued)
echo "# phase 2: master killed with $left messages still queued"
check "phase 2: the kill fell in the middle of the delivery" test "$left" -gt 0
orphans_gone() { local p; for p in $orphans; do alive "$p" && return 1; done; return 0; }
check "phase 2: no worker outlives the killed master" wait_for 20 orphans_gone
check "phase 2: the killed master's segment is left behind" test -e "/dev/shm/${shm#/}"
ctl counters >"$T/dead.out" 2>&1
check "phase 2: the inspector says the daemon is gone" grep -q "left by pid" "$T/dead.out"
t0=$(now_ms)
start daemon2b
check "phase 2: a new daemon starts on the stale segment" wait_for 20 up
check "phase 2: the segment is now the new master's" \
  test "$(ctl counters --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["pid"])')" = "$daemon"
check "phase 2: the restarted daemon finishes the queue" wait_for 90 queue_empty
echo "# phase 2: the queue drained $(($(now_ms) - t0)) ms after the restart"
check_all_delivered "phase 2" p2 $n2
kill -TERM "$daemon"
wait "$daemon"
check "phase 2: an idle daemon stops with exit 0" test $? -eq 0

# ---------------------------------------------------------------- 3. SIGTERM
n3=200
inject_many p3 $n3
check "phase 3: $n3 messages queued before the start" test "$(queued)" -eq $n3
before=$(sink_total)
start daemon3
check "phase 3: the daemon delivers" wait_for 30 sink_at_least $((before + 20))
orphans=$(children_of "$daemon")
t0=$(now_ms)
kill -TERM "$daemon"
wait "$daemon"
rc=$?
took=$(($(now_ms) - t0))
echo "# phase 3: SIGTERM to exit took $took ms"
check "phase 3: SIGTERM during delivery exits 0" test "$rc" -eq 0
check "phase 3: within the drain grace (${timeout} s + 5 s)" test "$took" -le $(((timeout + 5) * 1000))
check "phase 3: no worker outlives the stop" orphans_gone
# every message is exactly one of: delivered (logged), still queued
split=$(python3 - "$T/p3.ids" "$T/delivery.log" "$T/spool/queue" <<'PY'
import json, os, sys
ids = {line.split()[1] for line in open(sys.argv[1])}
delivered = {e["id"] for e in map(json.loads, open(sys.argv[2])) if e["outcome"] == "delivered"} & ids
queued = set(os.listdir(sys.argv[3])) & ids
print(len(queued), len(delivered), len(queued & delivered), len(ids - queued - delivered))
PY
)
read -r q3 d3 both3 neither3 <<<"$split"
echo "# phase 3: at the stop $d3 delivered, $q3 still queued"
check "phase 3: the stop fell in the middle of the delivery" test "$q3" -gt 0 -a "$d3" -gt 0
check "phase 3: queued + delivered == injected ($q3 + $d3 == $n3)" test $((q3 + d3)) -eq $n3
check "phase 3: no message both delivered and queued ($both3), none neither ($neither3)" \
  test "$both3" -eq 0 -a "$neither3" -eq 0
t0=$(now_ms)
start daemon4
check "phase 3: the restarted daemon finishes the queue" wait_for 90 queue_empty
echo "# phase 3: the rest drained $(($(now_ms) - t0)) ms after the restart"
check_all_delivered "phase 3" p3 $n3
check "phase 3: a clean stop sends nothing twice" test "$dups" -eq 0

# ---------------------------------------------------------------- 4. split message
id4=$(printf 'Subject: crash p4\r\n\r\nbody of p4\r\n' |
  ctl inject --binding b1 -f s@sender.test p4-ok@a.test p4-later@defer.test)
attempts() { grep -c "\"id\":\"$id4\".*\"outcome\":\"$1\"" "$T/delivery.log"; }
first_round() { test "$(attempts delivered)" -ge 1 -a "$(attempts deferred)" -ge 1; }
check "phase 4: one part is delivered, the other deferred" wait_for 20 first_round
orphans=$(children_of "$daemon")
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
check "phase 4: no worker outlives the killed master" wait_for 20 orphans_gone
deferred=$(attempts deferred)
start daemon5
retried() { test "$(attempts deferred)" -gt "$deferred"; }
check "phase 4: the restarted daemon retries the deferred part" wait_for 30 retried
sleep 1
check "phase 4: the delivered part was logged delivered once" test "$(attempts delivered)" -eq 1
check "phase 4: and the sink got it once" \
  test "$(peer_stat mx "sum(r == 'p4-ok@a.test' for e, b in messages() for r in e['rcpt_to'])")" -eq 1
state=$(ctl queue --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
m = [m for m in d["messages"] if m["id"] == sys.argv[1]]
if not m:
    print("absent"); sys.exit()
p = {p["domain"]: p for p in m[0]["parts"]}
ok, later = p["a.test"], p["defer.test"]
print(ok["pending"], ok["done"], ok["recipients"][0]["status"],
      later["pending"], later["recipients"][0]["status"], later["attempts"] >= 2, later["reply"][:3])
' "$id4")
echo "# phase 4: queue state: $state"
check "phase 4: the message is still queued: a.test part delivered, defer.test pending after 2+ attempts with 451" \
  test "$state" = "0 1 delivered 1 pending True 451"
check "phase 4: every counter is back at 0 between attempts" wait_for 15 counts_zero

# ---------------------------------------------------------------- 5. reload
# SIGHUP while delivering: the old workers finish their jobs (a reload never
# cuts a transaction), the new ones take the rest; nothing lost, nothing twice.
inject_many p5 150
before=$(sink_total)
check "phase 5: the daemon delivers the new mail" wait_for 30 sink_at_least $((before + 10))
kill -HUP "$daemon"
check "phase 5: the reload is accepted" wait_for 10 grep -q "reloaded" "$T/daemon5.log"
check "phase 5: the queue drains across the reload" wait_for 90 queue_at_most 1
check_all_delivered "phase 5" p5 150
check "phase 5: a reload sends nothing twice" test "$dups" -eq 0
check "phase 5: the daemon runs its $workers workers of the new config" wait_for 30 up

kill -TERM "$daemon"
wait "$daemon"
check "the last daemon stops with exit 0" test $? -eq 0
check "no sanitizer or runtime error in any daemon log" \
  bash -c "! grep -l -E 'AddressSanitizer|LeakSanitizer|runtime error' '$T'/daemon*.log"
check "the last stop removed the segment" test ! -e "/dev/shm/${shm#/}"
