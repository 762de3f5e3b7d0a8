#!/usr/bin/env bash
# suspend.sh - runtime suspend and resume (sluicectl suspend, resume, suspended, shaping):
#   a suspended domain gets no connection and no delivery-log line (its mail waits in the
#   master), queue says "suspended until ... (reason)", other domains flow; the suspension
#   is kept in the spool across a restart; resume lets the mail go at once; a timed one
#   ends by itself; shaping cancel ends one by its id; with no daemon running the commands
#   work on the spool's file; bad arguments are refused.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-suspend-$$
peer_start mx '{}' 127.0.1.1 127.0.1.2 127.0.1.3
cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
retry_interval = 1h

[binding "b1"]
bind_address = 127.0.0.2
[binding "b2"]
bind_address = 127.0.0.3

[domain "one.test"]
route = 127.0.1.1:$PEER_PORT
[domain "two.test"]
route = 127.0.1.2:$PEER_PORT
[domain "three.test"]
route = 127.0.1.3:$PEER_PORT
INI
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
inject() { printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject "$@" >/dev/null; }
got() { peer_true mx "dest('$1')['messages'] >= $2"; }
conns() { peer_stat mx "dest('$1')['connections']"; }
start() {
  "$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
  daemon=$!
  started "$daemon"
  wait_for 10 test -S "$T/spool/control.sock"
}
stop() { kill -TERM "$daemon"; wait "$daemon"; }

start
out=$(ctl suspend --domain one.test --reason "receiver maintenance")
check "suspend answers with the action's id" grep -qE '^OK [0-9]+ domain one.test suspended$' <<<"$out"
inject --binding b1 -f s@sender.test a@one.test
inject --binding b1 -f s@sender.test b@two.test
check "an other domain's mail flows" wait_for 10 got 127.0.1.2 1
sleep 2
check "no connection is opened for the suspended domain" test "$(conns 127.0.1.1)" -eq 0
check "nor is its mail dispatched to fail: no delivery-log line for it" \
  bash -c "! grep -q '\"domain\":\"one.test\"' '$T/delivery.log'"
check "queue says it is suspended and why" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' queue | grep -q 'part 0 one.test: 1 pending, 0 done, 0 attempts, suspended until resumed (receiver maintenance)'"
check "queue --json carries the suspension" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' queue --json | grep -q '\"suspended\":{\"text\":\"suspended until resumed (receiver maintenance)\",\"reason\":\"receiver maintenance\"}'"
check "suspended lists it" bash -c "'$SLUICECTL' -c '$T/sluice.ini' suspended | grep -qE '^[0-9]+ +domain one.test +resumed +receiver maintenance$'"
check "suspended --json gives scope, reason and no end" bash -c "
  '$SLUICECTL' -c '$T/sluice.ini' suspended --json | python3 -c '
import json, sys
a = json.load(sys.stdin)
sys.exit(not (len(a) == 1 and a[0][\"domain\"] == \"one.test\" and a[0][\"binding\"] == \"\" and
              a[0][\"action\"] == \"suspend\" and a[0][\"reason\"] == \"receiver maintenance\" and
              a[0][\"until\"] is None and a[0][\"rule\"] == \"\"))'"
check "the spool keeps it" grep -q 'suspend.*one.test' "$T/spool/actions"
out=$(ctl probe --binding b1 --domain one.test 2>&1)
rc=$?
check "probe of a suspended pair says so, until resumed, and why" \
  grep -qE '^SUSPENDED binding b1 domain one.test until resumed \(action [0-9]+, by the operator: receiver maintenance\)$' <<<"$out"
check "and fails though its counters are free" bash -c "test $rc -eq 1 && grep -q '^OK held' <<<'$out'"
ctl suspend --binding b2 --domain two.test --for 1h >/dev/null
out=$(ctl probe --binding b2 --domain two.test 2>&1)
check "probe says until when a timed suspension holds" \
  grep -qE '^SUSPENDED binding b2 domain two.test until 2[0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z \(action [0-9]+, by the operator\)$' <<<"$out"
ctl resume --binding b2 --domain two.test >/dev/null
out=$(ctl probe --binding b2 --domain two.test 2>&1)
rc=$?
check "probe of a pair not suspended says nothing of suspension" \
  bash -c "test $rc -eq 0 && ! grep -q SUSPENDED <<<'$out'"

stop
check "the daemon stops cleanly with a suspension in force" test $? -eq 0
start
check "the restarted daemon restored it" wait_for 5 grep -q '1 shaping action(s) in force' "$T/daemon.log"
sleep 2
check "and still opens no connection for the domain" test "$(conns 127.0.1.1)" -eq 0
out=$(ctl resume --domain one.test)
check "resume ends it" grep -qx 'OK 1 suspension(s) ended' <<<"$out"
check "and the mail goes at once" wait_for 20 got 127.0.1.1 1
check "suspended is empty then" test "$(ctl suspended | wc -l)" -eq 1
check "resume of a scope not suspended fails" bash -c "! '$SLUICECTL' -c '$T/sluice.ini' resume --domain one.test 2>/dev/null"

# a binding x domain suspension for a while: the other binding flows, this one waits, then goes
ctl suspend --binding b1 --domain three.test --for 12s --reason short >/dev/null
inject --binding b1 -f s@sender.test c@three.test
inject --binding b2 -f s@sender.test d@three.test
check "the other binding's mail to the domain flows" \
  wait_for 10 peer_true mx "pair('127.0.0.3', '127.0.1.3')['messages'] >= 1"
check "the suspended binding's does not" peer_true mx "pair('127.0.0.2', '127.0.1.3')['messages'] == 0"
check "a timed suspension ends by itself" \
  wait_for 30 peer_true mx "pair('127.0.0.2', '127.0.1.3')['messages'] >= 1"

# shaping lists every action; cancel ends one by its id
id=$(ctl suspend --binding b2 | awk '{print $2}')
inject --binding b2 -f s@sender.test e@two.test
check "shaping lists the operator's action" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -qE '^$id +binding b2 +suspend +\(operator\) '"
sleep 1
check "a suspended binding gets no connection" peer_true mx "pair('127.0.0.3', '127.0.1.2')['messages'] == 0"
check "shaping cancel ends it" bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping cancel $id | grep -qx 'OK action $id cancelled'"
check "and its mail goes at once" wait_for 20 peer_true mx "pair('127.0.0.3', '127.0.1.2')['messages'] >= 1"

# with no daemon the commands work on the spool's file, and a start honours it
stop
out=$(ctl suspend --domain two.test --for 1h)
check "suspend without a daemon writes the spool" grep -q 'no daemon runs' <<<"$out"
check "suspended reads it without a daemon" bash -c "'$SLUICECTL' -c '$T/sluice.ini' suspended | grep -q 'domain two.test'"
# what the daemon would refuse is refused without it too: an empty name would suspend all mail
cp "$T/spool/actions" "$T/actions.before"
for bad in "--domain ''" "--host ''" "--binding ''" "--domain $(printf 'd%.0s' $(seq 256)).test" \
  "--domain x.test --for 400d"; do
  eval "ctl suspend $bad" >"$T/bad.out" 2>"$T/bad.err"; rc=$?
  check "suspend ${bad:0:24}... without a daemon: refused, exit $rc, one line" \
    test "$rc" -ne 0 -a "$(wc -l <"$T/bad.err")" -eq 1 -a ! -s "$T/bad.out"
done
check "and the spool's actions are as they were" cmp -s "$T/actions.before" "$T/spool/actions"
inject --binding b1 -f s@sender.test f@two.test
before=$(conns 127.0.1.2)
start
sleep 2
check "a daemon started after an offline suspend honours it" test "$(conns 127.0.1.2)" -eq "$before"
ctl resume --domain two.test >/dev/null
check "and resume over the socket lets the mail go" wait_for 20 got 127.0.1.2 3

# a host's suspension: no connection to that MX host; mail for other hosts flows
out=$(ctl suspend --host 127.0.1.1 --for 1h --reason 'mx maintenance')
check "suspend --host answers with the host scope" grep -qE '^OK [0-9]+ host 127.0.1.1 suspended$' <<<"$out"
hid=$(awk '{print $2}' <<<"$out")
before=$(conns 127.0.1.1)
delivered=$(peer_stat mx "dest('127.0.1.1')['messages']")
inject --binding b1 -f s@sender.test h1@one.test
inject --binding b1 -f s@sender.test h2@two.test
check "mail for a domain on another host flows" wait_for 10 got 127.0.1.2 4
sleep 2
check "no connection is opened to the suspended host" test "$(conns 127.0.1.1)" -eq "$before"
check "its mail waits in the daemon: no delivery-log line for it" \
  bash -c "! grep -q 'h1@one.test' '$T/delivery.log'"
check "shaping lists the host scope" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -qE '^$hid +host 127.0.1.1 +suspend +\(operator\) '"
out=$(ctl probe --binding b1 --domain one.test --mx 127.0.1.1 2>&1)
rc=$?
check "probe through that host says it is suspended, until when" \
  grep -qE '^SUSPENDED binding b1 domain one.test host 127.0.1.1 until 2[0-9-]+T[0-9:]+Z \(action [0-9]+, by the operator: mx maintenance\)$' <<<"$out"
check "and fails" test "$rc" -eq 1
check "resume --host ends it" bash -c "'$SLUICECTL' -c '$T/sluice.ini' resume --host 127.0.1.1 | grep -qx 'OK 1 suspension(s) ended'"
check "and the host's mail goes" wait_for 20 got 127.0.1.1 $((delivered + 1))

check "an unknown binding is refused" bash -c "! '$SLUICECTL' -c '$T/sluice.ini' suspend --binding nosuch 2>&1 | grep -q OK"
check "a scope is required" bash -c "'$SLUICECTL' -c '$T/sluice.ini' suspend --reason x 2>/dev/null; test \$? -eq 2"
check "a bad duration is refused" bash -c "'$SLUICECTL' -c '$T/sluice.ini' suspend --domain x.test --for soon 2>&1 | grep -q 'duration'"
stop
