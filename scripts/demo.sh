#!/usr/bin/env bash
# demo.sh - sluice's main job on the embedded default (conf/demo.ini).
#
# Starts a real DNS server (nsd) and an SMTP sink on loopback (the receiving
# side), then sluiced on a private counter table and spool; shows how the seed
# pages' limits resolve, takes connection slots through real workers until the
# small orange/wanadoo limit (3) refuses, kills the workers that hold them and
# shows the slots reclaimed.  Then it injects a few thousand messages while the
# daemon runs, shows the inspector's live view while they flow, and ends with a
# summary: delivered, time, and per scope the peak connections the sink saw
# A third of the messages is submitted over SMTP to the listener (conf/demo.ini's
# [listener "apps"]) by Python's smtplib, one by swaks for show; the rest by inject.
# against each limit.  Exit 0 only when everything was delivered and no peak
# went over its limit.  Everything it starts, it ends; its temp dir goes too.
# Environment: SLUICE_BIN (default bin/), DEMO_MESSAGES (default 3000).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
export SLUICE_BIN=${SLUICE_BIN:-$top/bin}
bin=$SLUICE_BIN
. "$top/tests/e2e/lib/tap.sh" # $T, and the clean-up of what is started here
. "$top/tests/e2e/lib/dns.sh"
. "$top/tests/e2e/lib/peer.sh"
dir=$T
cfg=$dir/demo.ini
daemon=

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "A DNS server and an SMTP sink on loopback (the receiving side)"
dns_zone com <<'ZONE'
example     MX 10 mx.example
mx.example  A  127.0.1.1
mx1.example A  127.0.1.5
aol         MX 10 mx.aol
mx.aol      A  127.0.1.2
yahoo       MX 10 mx.yahoo
mx.yahoo    A  127.0.1.3
ZONE
dns_zone fr <<'ZONE'
orange      MX 10 mx.orange
wanadoo     MX 10 mx.orange
mx.orange   A  127.0.1.4
ZONE
dns_zone net <<'ZONE'
example     MX 10 mx1.example.com.
ZONE
dns_start >/dev/null
PEER_MAILDIR=0 peer_start mx '{"hold": 0.1}' 127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4 127.0.1.5
echo "nsd on $DNS_SERVER; sink on 127.0.1.1-5 port $PEER_PORT (each reply to DATA held 0.1 s)"

lport=$(peer_free_port 127.0.0.1)
{ echo "shm_name = /sluice-demo-$$"; echo "spool_dir = $dir/spool"; echo "delivery_log = $dir/delivery.log"
  echo "dns_server = $DNS_SERVER"; echo "smtp_port = $PEER_PORT"
  sed "s/^address = 127.0.0.1:2525\$/address = 127.0.0.1:$lport/" "$top/conf/demo.ini"; } >"$cfg"
ctl() { "$bin/sluicectl" -c "$cfg" "$@"; }

step "The configuration (conf/demo.ini) is valid"
ctl config check || exit 1

step "How the limits resolve (seed pages' worked examples)"
for b in example other outside; do
  printf '%-28s ' "binding $b, example.com:"; ctl config eval --binding $b --domain example.com max_outbound_connections
done
printf '%-28s ' "yahoofriends, yahoo.com:"; ctl config eval --binding yahoofriends --domain yahoo.com max_outbound_connections
printf '%-28s ' "outside, yahoo.com:"; ctl config eval --binding outside --domain yahoo.com max_outbound_connections
printf '%-28s ' "host mx1.example.com:"; ctl config eval --host mx1.example.com max_outbound_connections
ctl config eval --explain --binding example --domain aol.com max_outbound_connections

step "Starting sluiced"
"$bin/sluiced" -c "$cfg" 2>"$dir/sluiced.log" &
daemon=$!
started "$daemon"
for _ in $(seq 100); do ctl counters >/dev/null 2>&1 && break; sleep 0.1; done
ctl counters

step "Orange takes 3 connections for wanadoo.fr and orange.fr together"
for d in orange.fr wanadoo.fr orange.fr wanadoo.fr; do
  printf '%s -> ' "$d"; ctl probe --binding outside --domain $d --hold 30
done
step "The live view: 3 of 3 in use, one refusal counted"
ctl counters | grep -E 'SCOPE|wanadoo|orange|^server'

step "kill -9 of every worker: the master reaps them and returns their slots"
for p in $(ps -o pid= --ppid "$daemon"); do kill -KILL "$p"; done
sleep 1
ctl counters | grep -E 'sluiced pid|reclaimed|SCOPE|wanadoo|orange|^server'
grep -c 'killed by signal 9' "$dir/sluiced.log" | sed 's/^/workers reaped: /'
echo "(they are replaced with a back-off, as after any burst of crashes: the queue fills meanwhile)"

step "An application submits over SMTP: swaks to the listener on 127.0.0.1:$lport"
swaks --server 127.0.0.1 --port "$lport" --from app@sluice.test --to swaks@example.com \
  --header 'X-Sluice-Binding: example' --body 'submitted with swaks' 2>&1 |
  grep -E '^ *(->|<-) *(EHLO|MAIL|RCPT|250 2.0.0|250 2.1|221)' || echo "swaks failed" >&2

total=${DEMO_MESSAGES:-3000}
step "Queueing $total messages while sluiced runs; the live view while they flow"
# One line per message: binding, domain (the seed pages' cases, every limit busy
# at once), shuffled so that every scope fills from the start.
plan() {
  local n=$1
  awk -v n="$n" 'BEGIN {
    split("example example.com 20|other example.com 10|outside example.com 24|example orange.fr 5|other wanadoo.fr 5|outside orange.fr 2|outside aol.com 12|outside yahoo.com 8|yahoofriends yahoo.com 8|example example.net 3|outside example.net 3", mix, "|")
    for (i in mix) { split(mix[i], f, " "); w += f[3] }
    for (i in mix) { split(mix[i], f, " "); k = int(n * f[3] / w + 0.5)
      for (j = 0; j < k; j++) print f[1], f[2] }
  }' | shuf
}
printf 'Subject: sluice demo\r\nFrom: demo@sluice.test\r\n\r\nhello from the demo\r\n' >"$dir/msg.eml"
plan "$total" | nl -w1 -s' ' >"$dir/plan" # N BINDING DOMAIN
total=$(wc -l <"$dir/plan")
export DEMO_CTL=$bin/sluicectl DEMO_CFG=$cfg DEMO_MSG=$dir/msg.eml
inject_all() { # six at a time: each inject waits for its fsyncs; every third line by SMTP
  awk 'NR % 3 != 0' "$dir/plan" | xargs -P 6 -L 1 sh -c 'exec "$DEMO_CTL" -c "$DEMO_CFG" \
    inject --binding "$1" -f demo@sluice.test "u$0@$2" <"$DEMO_MSG" >/dev/null' \
    2>>"$dir/inject.err" &
  awk 'NR % 3 == 0' "$dir/plan" >"$dir/plan.smtp"
  submit_smtp "$dir/plan.smtp" 2>>"$dir/inject.err"
  wait
}
submit_smtp() { # FILE of lines "N BINDING DOMAIN", over 4 SMTP sessions to the listener
  python3 - "$lport" "$1" <<'PY'
import smtplib, sys, threading
port, lines = int(sys.argv[1]), [l.split() for l in open(sys.argv[2])]
def send(part):
    s = smtplib.SMTP("127.0.0.1", port)
    for n, binding, domain in part:
        msg = ("Subject: sluice demo\r\nFrom: demo@sluice.test\r\nX-Sluice-Binding: %s\r\n"
               "\r\nhello from the demo, over SMTP\r\n" % binding)
        s.sendmail("demo@sluice.test", ["u%s@%s" % (n, domain)], msg)
    s.quit()
threads = [threading.Thread(target=send, args=(lines[i::4],)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
PY
}
start_s=$(date +%s.%N)
inject_all &
injector=$!
started "$injector"
delivered() { cat "$dir/delivery.log" 2>/dev/null | grep -c '"outcome":"delivered"'; }
queued() { find "$dir/spool/queue" -type f 2>/dev/null | wc -l; }
while :; do
  sleep 2
  printf '\n-- %s s: %s delivered, %s in the queue\n' \
    "$(python3 -c "print(round($(date +%s.%N) - $start_s))")" "$(delivered)" "$(queued)"
  ctl counters | grep -E 'open connections|SCOPE|example.com|example.net|orange|aol|yahoo|^server'
  if ! alive "$injector" && [ "$(queued)" -eq 0 ]; then break; fi
  if python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $start_s > 300 else 1)"; then
    echo "demo: still not delivered after 300 s" >&2; break
  fi
done
wait "$injector"
took=$(python3 -c "print(round($(date +%s.%N) - $start_s, 1))")
ndelivered=$(delivered)

ndelivered=$((ndelivered - 1)) # the swaks message
step "Summary: $ndelivered of $total delivered in $took s ($((total / 3)) of them by SMTP); peak connections the sink saw"
peak() { peer_stat mx "$1['peak']"; }
bad=0
row() { # WHAT LIMIT PEAK
  local mark=ok
  [ "$3" -le "$2" ] || { mark="OVER THE LIMIT"; bad=1; }
  printf '%-50s %6s %6s  %s\n' "$1" "$2" "$3" "$mark"
}
printf '%-50s %6s %6s\n' "scope (seed page)" limit peak
row "binding example -> example.com (000)" 15 "$(peak "pair('127.0.0.2', '127.0.1.1')")"
row "binding other -> example.com (000, group1)" 5 "$(peak "pair('127.0.0.3', '127.0.1.1')")"
row "binding outside -> example.com (000, global)" 30 "$(peak "pair('127.0.0.4', '127.0.1.1')")"
row "wanadoo.fr + orange.fr, every binding (002)" 3 "$(peak "dest('127.0.1.4')")"
row "aol.com (002: a regex is not shared)" 5 "$(peak "dest('127.0.1.2')")"
row "outside -> yahoo.com (literal stanza beats regex)" 10 "$(peak "pair('127.0.0.4', '127.0.1.3')")"
row "yahoofriends -> yahoo.com (binding::domain)" 30 "$(peak "pair('127.0.0.5', '127.0.1.3')")"
row "host mx1.example.com (example.net), every binding" 8 "$(peak "dest('127.0.1.5')")"
row "binding outside, all domains (server_max)" 50 "$(peak "source('127.0.0.4')")"
row "the whole server (server_max)" 200 "$(peer_stat mx "total['peak']")"
if [ "$ndelivered" -lt "$total" ]; then
  echo "not everything was delivered: $ndelivered of $total (see $dir/delivery.log)"; bad=1
fi
failed_inject=$(wc -l <"$dir/inject.err")
[ "$failed_inject" -eq 0 ] || { echo "inject failures:"; head -5 "$dir/inject.err"; bad=1; }

step "Stopping (SIGTERM)"
kill -TERM "$daemon"; wait "$daemon"; echo "sluiced exited with status $?"
[ "$bad" -eq 0 ] && echo "demo: every message delivered, every peak within its limit"
exit "$bad"
