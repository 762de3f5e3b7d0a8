#!/usr/bin/env bash
# daemon.sh - sluiced and sluicectl together: start, counters, kill -9 of
# workers, SIGHUP with a good and a bad file, SIGTERM, a bad file at start.
. "$(dirname "$0")/lib/tap.sh"

shm=/sluice-e2e-$$
write_config() { # write_config ORANGE_LIMIT
  cat >"$T/sluice.ini" <<INI
[global]
workers = 5
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
audit_interval = 1s
server_max_outbound_connections = 100

[binding "b1"]
bind_address = 127.0.0.2

[domain "/^(wanadoo|orange)\.fr\$/"]
scope_max_outbound_connections = $1

[binding "b1" domain "example.com"]
max_outbound_connections = 15
INI
}
counters_json() { "$SLUICECTL" -c "$T/sluice.ini" counters --json; }
# jq-like: python3 expression over the counters JSON, printed
jget() { counters_json | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
limit_of() { jget "[c['limit'] for c in d['counters'] if c['scope']=='$1' and c['name']==r'$2'][0]"; }
worker_count() { children_of "$daemon" | wc -l; }
# predicates for wait_for, which re-runs them until they hold
workers_are() { test "$(worker_count)" -eq "$1"; }
reports_workers() { test "$(jget "d['daemon']['workers']")" = "$1"; }
orange_limit_is() { test "$(limit_of domain '/^(wanadoo|orange)\.fr$/')" = "$1"; }
readies_at_least() { test "$(grep -c '^READY=1' "$T/notify.log")" -ge "$1"; }

# --- a bad file at start: every error as FILE:LINE, exit 1
cat >"$T/bad.ini" <<'INI'
[global]
workers = many
no_such_option = 1
[binding "x"]
binding_group = nowhere
INI
"$SLUICED" -c "$T/bad.ini" >"$T/bad.out" 2>&1; rc=$?
check "a bad config at start exits 1" test "$rc" -eq 1
check "each error is reported as FILE:LINE" test "$(grep -c "^$T/bad.ini:[0-9]*: " "$T/bad.out")" -ge 3
check "the bad value's line is named" grep -q "^$T/bad.ini:2: " "$T/bad.out"

# --- start under a notify socket
notify_listener "$T/notify.log"
write_config 3
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "sluiced says READY=1 once the workers are up" wait_for 10 grep -q '^READY=1' "$T/notify.log"
check "five workers run" test "$(worker_count)" -eq 5
check "the segment is mode 0640" test "$(stat -c %a /dev/shm${shm})" = 640

# --- the inspector
"$SLUICECTL" -c "$T/sluice.ini" counters >"$T/table.out"; rc=$?
check "counters exits 0 with a daemon" test "$rc" -eq 0
check "the table shows the server limit" grep -Eq '^server +\* +0 +100 ' "$T/table.out"
check "the table shows the regex scope counter and its limit" \
  grep -Eq '^domain +/\^\(wanadoo\|orange\)\\\.fr\$/ +0 +3 ' "$T/table.out"
check "the table shows binding x domain with its resolved limit" \
  grep -Eq '^binding_domain +b1 example.com +0 +15 ' "$T/table.out"
check "--json names the daemon pid" test "$(jget "d['daemon']['pid']")" = "$daemon"
check "--json counts 5 workers" test "$(jget "d['daemon']['workers']")" = 5
check "--json totals show no open connection" test "$(jget "d['totals']['open_connections']")" = 0
scoped() { "$SLUICECTL" -c "$T/sluice.ini" counters --json --scope domain |
  python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
check "--json totals are the whole table's, whatever rows a filter keeps" \
  test "$(scoped "d['totals']")" = "$(jget "d['totals']")" -a "$(scoped "d['totals']['server_limit']")" = 100

# --- limits enforced through real workers: wanadoo and orange share 3
probe() { "$SLUICECTL" -c "$T/sluice.ini" probe --binding b1 "$@"; }
in_use() { jget "[c['in_use'] for c in d['counters'] if c['scope']=='$1' and c['name']==r'$2'][0]"; }
for d in orange.fr wanadoo.fr orange.fr; do
  probe --domain $d --hold 60 >>"$T/probe.out" 2>&1 || echo "probe $d failed" >>"$T/probe.out"
done
check "three probes hold a slot each" test "$(grep -c '^OK held' "$T/probe.out")" -eq 3
check "the answer shows the shared counter filling up" grep -qF 'domain /^(wanadoo|orange)\.fr$/ 3/3' "$T/probe.out"
probe --domain wanadoo.fr >"$T/refused.out" 2>&1; rc=$?
check "a fourth connection to either domain is refused (exit 1)" test "$rc" -eq 1
check "the refusal names the scope, its in-use and its limit" \
  grep -qxF 'REFUSED domain /^(wanadoo|orange)\.fr$/: 3 in use, limit 3' "$T/refused.out"
check "the inspector shows 3 of 3 in use" test "$(in_use domain '/^(wanadoo|orange)\.fr$/')" = 3
check "the inspector counts the refusal" \
  test "$(jget "[c['refused'] for c in d['counters'] if c['scope']=='domain'][0]")" -ge 1
check "systemd's STATUS follows the open connections" \
  wait_for 5 grep -q '^STATUS=.*, 3 connections open$' "$T/notify.log"
check "another domain is not affected" probe --domain example.com

# --- kill -9 of workers: reaped, reclaimed, replaced
victims=$(children_of "$daemon")
for v in $victims; do kill -KILL "$v"; done
replaced() {
  local p; [ "$(worker_count)" -eq 5 ] || return 1
  for p in $victims; do children_of "$daemon" | grep -qx "$p" && return 1; done
  return 0
}
check "killed workers are replaced by new ones" wait_for 10 replaced
check "the master logged each death" test "$(grep -c 'killed by signal 9' "$T/daemon.log")" -eq 5
check "the held slots were reclaimed" test "$(in_use domain '/^(wanadoo|orange)\.fr$/')" = 0
check "every count is back to 0" test "$(jget "sum(c['in_use'] for c in d['counters'])")" = 0
check "the inspector reports the reclaimed units" test "$(jget "d['daemon']['reclaimed']")" -ge 9
check "no zombie is left" test -z "$(ps -o stat= --ppid "$daemon" | grep Z)"
check "the master survives" alive "$daemon"
check "the inspector counts 5 workers" wait_for 5 reports_workers 5
check "a slot is free again after the reclaim" probe --domain orange.fr

# --- SIGHUP with a good file: new limits visible, same process
write_config 5
kill -HUP "$daemon"
check "a good reload shows the new limit" wait_for 10 orange_limit_is 5
check "the config generation went up" test "$(jget "d['daemon']['config_generation']")" -ge 2
check "RELOADING=1 then READY=1" wait_for 5 \
  python3 -c "import sys; l=open('$T/notify.log').read().split(); i=l.index('RELOADING=1'); sys.exit(0 if 'READY=1' in l[i:] else 1)"
check "the master pid is unchanged" test "$(jget "d['daemon']['pid']")" = "$daemon"
check "the workers were renewed for the new config" wait_for 10 workers_are 5
gen=$(jget "d['daemon']['config_generation']")

# --- SIGHUP with a bad file: logged, old config stays
echo "max_outbound_connections = lots" >>"$T/sluice.ini"
kill -HUP "$daemon"
check "a bad reload is logged with FILE:LINE" wait_for 10 grep -q "reload refused: $T/sluice.ini:[0-9]*: " "$T/daemon.log"
check "the old limits stay" orange_limit_is 5
check "the generation is unchanged" test "$(jget "d['daemon']['config_generation']")" = "$gen"
check "the daemon is still alive" alive "$daemon"

# --- the inspector follows a restart (--watch re-attaches)
"$SLUICECTL" -c "$T/sluice.ini" counters --json --watch 0.2 --count 300 >"$T/watch.out" 2>&1 &
watcher=$!
started "$watcher"
sleep 0.5

# --- SIGTERM: workers end, segment removed, exit 0
workers=$(children_of "$daemon")
kill -TERM "$daemon"
wait "$daemon"; rc=$?
check "SIGTERM exits 0" test "$rc" -eq 0
check "STOPPING=1 was sent" grep -q '^STOPPING=1' "$T/notify.log"
check "the segment is removed" test ! -e "/dev/shm${shm}"
gone=1; for p in $workers; do alive "$p" && gone=0; done
check "no worker outlives the master" test $gone -eq 1
"$SLUICECTL" -c "$T/sluice.ini" counters >"$T/none.out" 2>&1; rc=$?
check "counters with no daemon exits 1" test "$rc" -eq 1
check "counters with no daemon says so" grep -q 'no daemon running' "$T/none.out"

sed -i '$d' "$T/sluice.ini" # drop the bad line
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon2=$!
started "$daemon2"
check "the restarted daemon is ready" wait_for 10 readies_at_least 4
check "--watch re-attached to the new daemon" wait_for 10 grep -q "\"pid\":$daemon2" "$T/watch.out"
check "--watch said no daemon while there was none, or caught the restart" \
  grep -Eq "no daemon running|\"pid\":$daemon," "$T/watch.out"
kill -TERM "$daemon2"; wait "$daemon2"
check "the second daemon stops cleanly too" test $? -eq 0

# --- a master killed -9 leaves its counter table behind: --watch says no daemon runs, rather
# than show its frozen counters as live
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon3=$!
started "$daemon3"
check "a third daemon is ready" wait_for 10 readies_at_least 5
kill -KILL "$daemon3"
wait "$daemon3" 2>/dev/null
check "its counter table is left behind" test -e "/dev/shm${shm}"
"$SLUICECTL" -c "$T/sluice.ini" counters --watch 0.2 --count 2 >"$T/dead.out" 2>&1
rc=$?
check "--watch says no daemon runs, both times" \
  test "$(grep -c 'no daemon running' "$T/dead.out")" -eq 2
check "and, with no figures to give, exits 1 (exit $rc)" test "$rc" -eq 1
out=$("$SLUICECTL" -c "$T/sluice.ini" counters --count 2 2>&1)
rc=$?
check "--count without --watch is refused in one line, exit 2 (exit $rc: $out)" \
  eval 'test "$rc" -eq 2 && test "$(wc -l <<<"$out")" -eq 1 && grep -q -- "--watch" <<<"$out"'
rm -f "/dev/shm${shm}"
