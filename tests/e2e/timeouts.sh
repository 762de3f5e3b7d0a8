#!/usr/bin/env bash
# timeouts.sh - every per-phase timeout of semantics.md, end to end: the real
# daemon and its workers deliver to the scripted sink, one misbehaving address
# per case, all cases at once (one domain each, routed to its address).
#   - connect, greeting, ehlo, mail_from, rcpt_to, data (the 354 and the final
#     reply), rset (pipelined before the second MAIL of a reused connection):
#     the peer stalls that phase for 30 s, the domain sets that phase's timeout
#     to 2 s; the attempt is deferred, logged with that phase and "after 2s",
#     and the client hangs up between 2 s and 2 s + MARGIN after the phase began
#     (as the sink's timeline sees it; connect: as /proc/net/tcp sees the SYN_SENT
#     socket live, against a listener whose accept queue is full).
#   - idle: a connection held open for more mail is closed with QUIT idle_timeout
#     after its last reply.
#   - hostile peers (a reply trickled a byte a second, an endless multi-line reply,
#     a 1 MB line, a reply code out of range, a close in the middle of the body)
#     cost at most their phase's timeout, are deferred with a reply that says what
#     happened, never crash a worker, and leave every worker's memory small.
# Timing: the timers fire at their setting; the observers (sink, /proc poller) see
# the start and the end of a phase a little late, so the lower bound allows
# SLACK (0.25 s) of observation error; the upper bound allows MARGIN for a busy
# machine (and the sanitizers).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-timeouts-$$
MARGIN=4
SLACK=0.25
STALL=30
WORKERS=20
RSS_MAX_KB=$((64 * 1024)) # a worker holds one session: a few MB, sanitizers included

# One sink, one address per case.  Addresses 127.0.1.1-8: stalls (and the idle
# case); .9: the full listener; .10-14: hostile peers.
PEER_ARGS=--timeline peer_start mx "{
  \"127.0.1.1\": {\"stall\": {\"greeting\": $STALL}},
  \"127.0.1.2\": {\"stall\": {\"ehlo\": $STALL}},
  \"127.0.1.3\": {\"stall\": {\"mail_from\": $STALL}},
  \"127.0.1.4\": {\"stall\": {\"rcpt_to\": $STALL}},
  \"127.0.1.5\": {\"stall\": {\"data\": $STALL}},
  \"127.0.1.6\": {\"stall\": {\"data_end\": $STALL}},
  \"127.0.1.7\": {\"stall\": {\"rset\": $STALL}},
  \"127.0.1.8\": {},
  \"127.0.1.10\": {\"trickle\": \"ehlo\"},
  \"127.0.1.11\": {\"endless\": \"ehlo\"},
  \"127.0.1.12\": {\"hugeline\": \"greeting\"},
  \"127.0.1.13\": {\"badcode\": \"mail_from\"},
  \"127.0.1.14\": {\"drop\": \"data_body\"}
}" 127.0.1.{1..8} 127.0.1.{10..14} || { not_ok "the sink starts"; exit 1; }
port=$(peer_port mx)
stats=$(peer_dir mx)/stats.json

# A listener on 127.0.1.9 that never accepts, its queue full: a connect to it never
# completes.  It also watches /proc/net/tcp for the SYN_SENT sockets from sluice's
# source address and records when each was first and last there.
cat >"$T/blackhole.py" <<'PY'
import json, os, select, signal, socket, sys, time
addr, src, out = sys.argv[1:4]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
lst = socket.socket()
lst.bind((addr, 0))
lst.listen(0)
port = lst.getsockname()[1]
fill = []
for _ in range(16):
    s = socket.socket()
    s.setblocking(False)
    s.bind(("127.0.0.1", 0))
    s.connect_ex((addr, port))
    fill.append(s)
    if not select.select([], [s], [], 0.3)[1]:
        break  # this one hangs: the accept queue is full
else:
    sys.exit("blackhole: the accept queue never filled")
hexaddr = lambda ip, p: socket.inet_aton(ip)[::-1].hex().upper() + ":%04X" % p
local_prefix, remote = hexaddr(src, 0)[:8] + ":", hexaddr(addr, port)
seen = {}
print(f"READY port={port}", flush=True)
while True:
    now, live = time.time(), set()
    with open("/proc/net/tcp") as f:
        for line in f:
            w = line.split()
            if len(w) > 3 and w[2] == remote and w[3] == "02" and w[1].startswith(local_prefix):
                live.add(w[1])
    changed = False
    for k in live - seen.keys():
        seen[k], changed = {"first": now, "gone": None}, True
    for k, v in seen.items():
        if v["gone"] is None and k not in live:
            v["gone"], changed = now, True
    if changed:
        with open(out + ".tmp", "w") as f:
            json.dump(seen, f)
        os.replace(out + ".tmp", out)
    time.sleep(0.01)
PY
python3 "$T/blackhole.py" 127.0.1.9 127.0.0.2 "$T/syn.json" >"$T/blackhole.out" 2>"$T/blackhole.err" &
started $!
if ! wait_for 10 grep -q '^READY' "$T/blackhole.out"; then
  not_ok "the full listener starts: $(cat "$T/blackhole.err")"; exit 1
fi
bport=$(sed -n 's/^READY port=//p' "$T/blackhole.out")

# domain NAME ADDR PORT OPTION=VALUE...: a domain routed to ADDR:PORT with its own settings
domain() {
  local name=$1 addr=$2 p=$3; shift 3
  printf '\n[domain "%s"]\nroute = %s:%s\n' "$name" "$addr" "$p"
  printf '%s\n' "$@"
}
{
  cat <<INI
[global]
workers = $WORKERS
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
audit_interval = 1s
retry_interval = 1h

[binding "t"]
bind_address = 127.0.0.2
INI
  domain connect.test 127.0.1.9 "$bport" "connect_timeout = 2s"
  domain greeting.test 127.0.1.1 "$port" "greeting_timeout = 2s"
  domain ehlo.test 127.0.1.2 "$port" "ehlo_timeout = 2s"
  domain mail.test 127.0.1.3 "$port" "mail_from_timeout = 2s"
  domain rcpt.test 127.0.1.4 "$port" "rcpt_to_timeout = 2s"
  domain data.test 127.0.1.5 "$port" "data_timeout = 2s"
  domain dataend.test 127.0.1.6 "$port" "data_timeout = 2s"
  # two messages, one connection: the second transaction starts with RSET
  domain rset.test 127.0.1.7 "$port" "rset_timeout = 2s" "max_outbound_connections = 1" \
    "idle_timeout = 20s"
  domain idle.test 127.0.1.8 "$port" "idle_timeout = 2s"
  domain trickle.test 127.0.1.10 "$port" "ehlo_timeout = 3s"
  domain endless.test 127.0.1.11 "$port" "ehlo_timeout = 3s"
  domain hugeline.test 127.0.1.12 "$port" "greeting_timeout = 3s"
  domain badcode.test 127.0.1.13 "$port" "mail_from_timeout = 3s"
  domain drop.test 127.0.1.14 "$port" "data_timeout = 3s"
} >"$T/sluice.ini"

inject() {
  printf 'Subject: timeouts\r\n\r\nbody for %s\r\n' "$1" |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding t -f s@sender.test "u@$1" >/dev/null
}
for d in connect greeting ehlo mail rcpt data dataend rset rset idle \
  trickle endless hugeline badcode drop; do
  inject "$d.test" || not_ok "inject to $d.test"
done

# --- observers
# facts.py prints, one "KEY<TAB>VALUE" a line, what the checks below read:
#   log:DOMAIN:OUTCOME:FIELD  the last delivery log line for DOMAIN with OUTCOME, leaving out
#                             the "limits" lines of a message that waited for a connection
#                             slot (FIELD: phase, reply, time in epoch seconds)
#   at:DST:EVENT              when EVENT first happened in the first session to DST (sink
#                             timeline, epoch seconds)
#   cmds:DST                  the commands of the first session to DST, in order
#   syn                       how long sluice's connect to the full listener stayed SYN_SENT
cat >"$T/facts.py" <<'PY'
import calendar, json, sys, time
log, stats, syn = sys.argv[1:4]

def load(path, default):
    try:
        with open(path) as f:
            return json.load(f) if path.endswith(".json") else [json.loads(l) for l in f]
    except (OSError, ValueError):
        return default

def epoch(iso):
    t, ms = iso.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%S")) + int(ms) / 1000

for l in load(log, []):
    if l["phase"] != "limits":
        key = f"log:{l['domain']}:{l['outcome']}"
        print(f"{key}:phase\t{l['phase'] or ''}\n{key}:reply\t{l['reply']}")
        print(f"{key}:time\t{epoch(l['time']):.3f}")
seen = set()
for n, s in sorted(load(stats, {}).get("timeline", {}).items(), key=lambda i: int(i[0])):
    if s["dst"] not in seen:
        seen.add(s["dst"])
        cmds = [w[4:] for w, _ in s["events"] if w.startswith("cmd:")]
        print(f"cmds:{s['dst']}\t{' '.join(cmds)}")
        for what, t in reversed(s["events"]):
            print(f"at:{s['dst']}:{what}\t{t:.3f}")
v = [x for x in load(syn, {}).values() if x["gone"]]
if v:
    print(f"syn\t{v[0]['gone'] - v[0]['first']:.3f}")
PY
declare -A F
# load_facts: read the facts afresh into F (later lines win: the last log line, the first event)
load_facts() {
  local k v
  F=()
  while IFS=$'\t' read -r k v; do F[$k]=$v; done \
    < <(python3 "$T/facts.py" "$T/delivery.log" "$stats" "$T/syn.json")
}
fact() { echo "${F[$1]:-}"; }
# span DST FROM TO: seconds from event FROM to event TO in the first session to DST
span() {
  awk -v a="$(fact "at:$1:$2")" -v b="$(fact "at:$1:$3")" \
    'BEGIN { if (a != "" && b != "" && b >= a) printf "%.3f", b - a }'
}
# within E SETTING: SETTING - SLACK <= E < SETTING + MARGIN
within() { awk -v e="$1" -v s="$2" -v lo="$SLACK" -v m="$MARGIN" \
  'BEGIN { exit !(e != "" && e + 0 >= s - lo && e + 0 < s + m) }'; }
# below E LIMIT: E < LIMIT
below() { awk -v e="$1" -v l="$2" 'BEGIN { exit !(e != "" && e + 0 < l) }'; }
# all_done: every case is over: each attempt logged (rset.test: one delivered, one deferred),
# the connect seen ending, the sink saw every client hang up, the idle connection got QUIT
all_done() {
  local d
  load_facts
  for d in 1 2 3 4 5 6 7 10; do
    test -n "$(fact "at:127.0.1.$d:gone")" || return 1
  done
  for d in connect greeting ehlo mail rcpt data dataend rset trickle endless hugeline badcode \
    drop; do
    test -n "$(fact "log:$d.test:deferred:time")" || return 1
  done
  test -n "$(fact log:rset.test:delivered:time)" -a -n "$(fact log:idle.test:delivered:time)" \
    -a -n "$(fact syn)" -a -n "$(fact at:127.0.1.8:cmd:QUIT)"
}
workers() {
  local p
  for p in $(children_of "$daemon"); do
    grep -qa worker "/proc/$p/cmdline" 2>/dev/null && echo "$p"
  done | sort -n
}
worker_count_is() { test "$(workers | wc -l)" -eq "$1"; }

# --- run every case at once
t0=$(date +%s.%N)
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon starts its $WORKERS workers" wait_for 20 worker_count_is "$WORKERS"
before=$(workers | tr '\n' ' ')

check "every case ends: each attempt logged, the idle connection closed" wait_for 60 all_done
elapsed_all=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# timeout_case NAME DOMAIN PHASE SETTING ELAPSED: deferred, logged with PHASE and the
# reply naming the phase and the setting, the client gave up after SETTING seconds
timeout_case() {
  local name=$1 dom=$2 phase=$3 setting=$4 e=$5 want
  want="timeout waiting for the $phase reply after ${setting}s"
  [ "$phase" = connect ] && want="timeout connecting after ${setting}s"
  check "$name: deferred in phase $phase" test "$(fact "log:$dom:deferred:phase")" = "$phase"
  check "$name: the reply says \"$want\"" test "$(fact "log:$dom:deferred:reply")" = "$want"
  check "$name: fires at its setting (${e:-?}s, in [${setting}s - $SLACK, ${setting}s + $MARGIN))" \
    within "$e" "$setting"
}
timeout_case connect connect.test connect 2 "$(fact syn)"
timeout_case greeting greeting.test greeting 2 "$(span 127.0.1.1 accept gone)"
timeout_case ehlo ehlo.test ehlo 2 "$(span 127.0.1.2 cmd:EHLO gone)"
timeout_case mail_from mail.test mail_from 2 "$(span 127.0.1.3 cmd:MAIL gone)"
timeout_case rcpt_to rcpt.test rcpt_to 2 "$(span 127.0.1.4 cmd:RCPT gone)"
timeout_case "data (354)" data.test data 2 "$(span 127.0.1.5 cmd:DATA gone)"
timeout_case "data (final reply)" dataend.test data 2 "$(span 127.0.1.6 body_end gone)"
timeout_case rset rset.test rset 2 "$(span 127.0.1.7 cmd:RSET gone)"
check "rset: the first message went through on that connection" \
  test -n "$(fact log:rset.test:delivered:time)" -a "$(peer_stat mx "dest('127.0.1.7')['messages']")" = 1
check "rset: both messages used one connection" \
  test "$(peer_stat mx "dest('127.0.1.7')['connections']")" -eq 1
e_idle=$(span 127.0.1.8 sent:data_end cmd:QUIT)
check "idle: the message is delivered" test -n "$(fact log:idle.test:delivered:time)"
check "idle: QUIT idle_timeout after the last reply (${e_idle:-?}s, in [2s - $SLACK, 2s + $MARGIN))" \
  within "$e_idle" 2
check "idle: nothing but QUIT was sent on the idle connection ($(fact cmds:127.0.1.8))" \
  test "$(fact cmds:127.0.1.8)" = "EHLO MAIL RCPT DATA QUIT"

# hostile NAME DOMAIN DST PHASE TIMEOUT REPLY_REGEX: deferred in PHASE with a reply that
# matches, at most TIMEOUT (+ MARGIN) after the session began
hostile() {
  local name=$1 dom=$2 dst=$3 phase=$4 limit=$5 rx=$6 e reply
  reply=$(fact "log:$dom:deferred:reply")
  e=$(awk -v a="$(fact "at:$dst:accept")" -v b="$(fact "log:$dom:deferred:time")" \
    'BEGIN { if (a != "" && b != "") printf "%.3f", b - a }')
  check "$name: deferred in phase $phase" test "$(fact "log:$dom:deferred:phase")" = "$phase"
  check "$name: the reply says what happened ($reply)" grep -Eq "$rx" <<<"$reply"
  check "$name: costs at most the ${limit}s $phase timeout (${e:-?}s < ${limit}s + $MARGIN)" \
    below "$e" "$((limit + MARGIN))"
  echo "# $name: ${e:-?}s" >&2
}
hostile "a reply trickled a byte a second" trickle.test 127.0.1.10 ehlo 3 \
  '^timeout waiting for the ehlo reply after 3s$'
check "trickle: it is the timeout that ends it (>= 3s)" \
  within "$(span 127.0.1.10 cmd:EHLO gone)" 3
hostile "an endless multi-line reply" endless.test 127.0.1.11 ehlo 3 \
  '^ehlo reply longer than [0-9]+ lines$'
hostile "a 1 MB line" hugeline.test 127.0.1.12 greeting 3 \
  '^reply line longer than [0-9]+ bytes during greeting$'
hostile "a reply code out of range" badcode.test 127.0.1.13 mail_from 3 \
  '^malformed mail_from reply line "999 what"$'
hostile "a peer that closes mid-DATA" drop.test 127.0.1.14 data 3 \
  '^connection (closed|reset) by the peer during data$'
check "the sink closed mid-DATA as scripted" \
  peer_true mx "d['events'].get('drop:data_body') == 1"

# --- the workers survived, and stayed small
after=$(workers | tr '\n' ' ')
check "no worker died or was replaced ($WORKERS workers, same pids)" \
  test "$after" = "$before" -a "$(workers | wc -l)" -eq "$WORKERS"
absent() { ! grep -Eq "$@"; }
check "the daemon log reports no worker death" \
  absent 'worker pid [0-9]+ (killed by signal|exited with status)|workers keep dying' \
  "$T/daemon.log"
check "no sanitizer report" absent 'Sanitizer|runtime error' "$T/daemon.log"
max_rss=0
for p in $after; do
  r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
  [ "${r:-0}" -gt "$max_rss" ] && max_rss=$r
done
check "every worker's memory stays bounded (largest VmRSS ${max_rss} kB < $RSS_MAX_KB kB)" \
  test "$max_rss" -gt 0 -a "$max_rss" -lt "$RSS_MAX_KB"
# one after another, the timeouts alone would take over 20 s
check "every case ran at once (${elapsed_all}s < 15s)" below "$elapsed_all" 15

for c in "connect $(fact syn)" "greeting $(span 127.0.1.1 accept gone)" \
  "ehlo $(span 127.0.1.2 cmd:EHLO gone)" "mail_from $(span 127.0.1.3 cmd:MAIL gone)" \
  "rcpt_to $(span 127.0.1.4 cmd:RCPT gone)" "data $(span 127.0.1.5 cmd:DATA gone)" \
  "data_end $(span 127.0.1.6 body_end gone)" "rset $(span 127.0.1.7 cmd:RSET gone)" \
  "idle $e_idle"; do
  echo "# elapsed $c" >&2
done

kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM exits 0" test $? -eq 0
