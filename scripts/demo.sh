#!/usr/bin/env bash
# demo.sh - sluice's main job on the embedded default (conf/demo.ini).
#
# Starts sluiced on a private counter table and spool, shows how the seed
# pages' limits resolve, takes connection slots through real workers until the
# small orange/wanadoo limit (3) refuses, shows the live counters, kills a
# worker that holds slots and shows them reclaimed, and stops.  Delivery itself
# arrives with the delivery work; until then the slots are taken by probes
# (the reservation path a delivery uses, without the SMTP session).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${SLUICE_BIN:-$top/bin}
dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-demo.XXXXXX")
cfg=$dir/demo.ini
daemon=

finish() {
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$dir"
}
trap finish EXIT

{ echo "shm_name = /sluice-demo-$$"; echo "spool_dir = $dir/spool"; echo "delivery_log = $dir/delivery.log"
  cat "$top/conf/demo.ini"; } >"$cfg"
ctl() { "$bin/sluicectl" -c "$cfg" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

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

step "Stopping (SIGTERM)"
kill -TERM "$daemon"; wait "$daemon"; echo "sluiced exited with status $?"; daemon=
