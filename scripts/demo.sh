#!/usr/bin/env bash
# demo.sh - sluice's main job on the embedded default (conf/demo.ini).
#
# Starts sluiced on a private counter table and spool, shows how the seed
# pages' limits resolve, takes connection slots through real workers until the
# small orange/wanadoo limit (3) refuses, shows the live counters, kills a
# worker that holds slots and shows them reclaimed; then delivers a few hundred
# messages through a real DNS server (nsd) to a local SMTP sink on loopback,
# shows the live counters while they flow, and ends with, per scope, the peak
# connections the sink saw against each limit.  Everything it starts, it ends.
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
dns_start >/dev/null
PEER_MAILDIR=0 peer_start mx '{"hold": 0.2}' 127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4
echo "nsd on $DNS_SERVER; sink on 127.0.1.1-4 port $PEER_PORT (each reply to DATA held 0.2 s)"

{ echo "shm_name = /sluice-demo-$$"; echo "spool_dir = $dir/spool"; echo "delivery_log = $dir/delivery.log"
  echo "dns_server = $DNS_SERVER"; echo "smtp_port = $PEER_PORT"
  cat "$top/conf/demo.ini"; } >"$cfg"
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
grep -c 'killed by signal 9' "$dir/sluiced.log" | sed 's/^/workers reaped and replaced: /'

step "Stopping (SIGTERM), then queueing 254 messages for the seed domains (no daemon needed)"
kill -TERM "$daemon"; wait "$daemon"; echo "sluiced exited with status $?"
inject_many() { # N BINDING DOMAIN
  seq "$1" | xargs -P 8 -I{} sh -c "printf 'Subject: demo {}\r\n\r\nhello\r\n' |
    '$bin/sluicectl' -c '$cfg' inject --binding $2 -f demo@sluice.test u{}@$3 >/dev/null"
}
inject_many 45 example example.com; inject_many 15 other example.com
inject_many 90 outside example.com; inject_many 16 example orange.fr
inject_many 16 other wanadoo.fr; inject_many 36 outside aol.com; inject_many 36 outside yahoo.com
ctl queue | tail -1

step "Delivering: sluiced again, every limit at once; the live view while mail flows"
start_s=$(date +%s.%N)
"$bin/sluiced" -c "$cfg" 2>>"$dir/sluiced.log" &
daemon=$!
started "$daemon"
for _ in 1 2 3; do
  sleep 0.5
  ctl counters | grep -E 'open connections|SCOPE|example.com|orange|aol|yahoo|^server'
  echo
done
queued() { ls "$dir/spool/queue" | wc -l; }
drained() { test "$(queued)" -eq 0; }
wait_for 120 drained
took=$(python3 -c "print(round($(date +%s.%N) - $start_s, 1))")
delivered=$(grep -c '"outcome":"delivered"' "$dir/delivery.log")

step "Summary: $delivered delivered in about $took s; peak connections seen by the sink"
peak() { peer_stat mx "$1['peak']"; }
row() { printf '%-46s %6s %6s\n' "$@"; }
row "scope (seed page)" limit peak
row "binding example -> example.com (000)" 15 "$(peak "pair('127.0.0.2', '127.0.1.1')")"
row "binding other -> example.com (000, group)" 5 "$(peak "pair('127.0.0.3', '127.0.1.1')")"
row "binding outside -> example.com (000, global)" 30 "$(peak "pair('127.0.0.4', '127.0.1.1')")"
row "wanadoo.fr + orange.fr, all bindings (002)" 3 "$(peak "dest('127.0.1.4')")"
row "aol.com (002: a regex is not shared)" 5 "$(peak "dest('127.0.1.2')")"
row "yahoo.com (its literal stanza beats the regex)" 10 "$(peak "dest('127.0.1.3')")"

step "Stopping (SIGTERM)"
kill -TERM "$daemon"; wait "$daemon"; echo "sluiced exited with status $?"
