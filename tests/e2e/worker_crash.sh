#!/usr/bin/env bash
# worker_crash.sh - a worker that dies of its own doing (SIGSEGV here, as a bug would) in the
# middle of a delivery: the parts of its job are not handed out again at once, where a message
# that kills its worker would kill the next one and the next (each time perhaps after the
# receiver took it, so its recipients would get it again and again), but wait five minutes,
# and the master names them; the message stays queued, and `sluicectl flush` sends it at once.
# A job of many parts (up to 128) is named whole, its list continued over several warning lines.
# From then on each of those parts goes alone, so a message that kills workers (a "poison")
# takes no other down with it.
# A worker killed from outside (kill -9, the OOM killer) gives its parts back at once: crash.sh.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
ulimit -c 0 # the crash dumps no core

# the 354 comes only after 30 s: the worker is in the middle of the message when it dies
peer_start mx '{"stall": {"data": 30}}' 127.0.1.1
shm=/sluice-e2e-wcrash-$$
{
  ini_global 2
  cat <<INI
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2

[domain "crash.test"]
route = 127.0.1.1:$(peer_port mx)
INI
} >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
up() { ctl counters >/dev/null 2>&1; }
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "the daemon comes up" wait_for 10 up

id=$(printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test r@crash.test)
check "the message is queued" test -n "$id"
check "a worker is in the middle of it" wait_for 10 peer_true mx "total['connections'] == 1"
for p in $(children_of "$daemon"); do kill -SEGV "$p"; done
check "the master says the worker died with it, and names it" \
  wait_for 10 grep -q "died of its own doing with job .*: its 1 parts wait 300 s.*$id" "$T/daemon.log"
check "the replacements come up" wait_for 10 eval 'test "$(children_of "$daemon" | wc -l)" -eq 2'
sleep 3 # time enough for a replacement to take the message again, were it handed out
check "nobody took the message again" peer_true mx "total['connections'] == 1"
check "it is still queued" test -f "$T/spool/queue/$id"
check "the queue shows it waiting" eval 'ctl queue | grep -q "$id"'
peer_script mx '{}' # the receiver is well again
ctl flush "$id" >/dev/null
check "sluicectl flush sends it at once" wait_for 10 eval '! test -f "$T/spool/queue/$id"'
check "and the receiver has it, once" peer_true mx "total['messages'] == 1"
check "the master survived it" alive "$daemon"
kill -TERM "$daemon"
wait "$daemon"
check "and stops cleanly" test $? -eq 0

# A job of many parts: the warning names every one of them, over several lines if need be
# (one line would be cut at the log's line length, and the last parts left unnamed).
M=120
sed -i 's/^workers = .*/workers = 1/' "$T/sluice.ini"
printf '\n[domain "many.test"]\nroute = 127.0.1.1:%s\nchunking = off\n' "$(peer_port mx)" \
  >>"$T/sluice.ini"
peer_script mx '{"stall": {"data": 30}}'
for i in $(seq $M); do
  printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test "r$i@many.test"
done >"$T/many.ids"
check "$M messages are queued while the daemon is stopped" [ "$(wc -l <"$T/many.ids")" -eq $M ]
: >"$T/daemon2.log"
before=$(peer_stat mx "total['connections']")
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon2.log" &
daemon=$!
started "$daemon"
check "the one worker takes them in one job and is in the middle of the first" \
  wait_for 10 peer_true mx "total['connections'] == $before + 1"
for p in $(children_of "$daemon"); do kill -SEGV "$p"; done
check "the master names the job's $M parts" \
  wait_for 10 grep -q "died of its own doing with job .*: its $M parts wait 300 s" "$T/daemon2.log"
named() {
  local id
  while read -r id; do grep -q "$id" "$T/daemon2.log" || return 1; done <"$T/many.ids"
}
check "every one of them is in its warning lines" wait_for 5 named
kill -TERM "$daemon"
wait "$daemon"

# A message that kills workers takes no other down with it: after the crash, each part of
# the job goes in a job of its own, so the innocent ones are delivered while the guilty one
# (here the receiver stalls on its recipient, as it would make a worker die) keeps the
# worker it is in; sent together again, those behind it in its job would wait with it, and
# die with it at every retry.  Two workers: one for the poison, one for the rest.
ctl delete --domain many.test >/dev/null # phase 2's mail, out of the way
sed -i 's/^workers = .*/workers = 2/' "$T/sluice.ini"
printf '\n[domain "poison.test"]\nroute = 127.0.1.1:%s\nchunking = off\n' "$(peer_port mx)" \
  >>"$T/sluice.ini"
peer_script mx '{"rcpt": [{"match": "^poison@", "stall": 60}]}'
poison=$(printf 'Subject: p\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test poison@poison.test)
for i in $(seq 9); do
  printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test "r$i@poison.test"
done >"$T/innocent.ids"
check "the poison and 9 other messages are queued while the daemon is stopped" \
  eval 'test -n "$poison" && [ "$(wc -l <"$T/innocent.ids")" -eq 9 ]'
: >"$T/daemon3.log"
delivered() { test "$(grep -c '"domain":"poison.test".*"outcome":"delivered"' "$T/delivery.log")" -ge "$1"; }
# replaced PIDS: the workers named are reaped and two new ones run (ps lists a dead worker
# until the master reaps it, and only then does it start the replacement)
replaced() {
  local now
  now=$(children_of "$daemon")
  [ "$(wc -w <<<"$now")" -eq 2 ] && ! grep -qxF -f <(tr ' ' '\n' <<<"$1") <<<"$now"
}
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon3.log" &
daemon=$!
started "$daemon"
stalled() { peer_true mx "events.get('rcpt_rule:^poison@', 0) >= $1"; }
check "a worker is stuck on the poison's recipient" wait_for 10 stalled 1
check "the other worker delivers the rest of the first jobs" wait_for 10 delivered 5
old=$(children_of "$daemon" | tr '\n' ' ')
for p in $old; do kill -SEGV "$p"; done
check "the master names the poison's crashed job" \
  wait_for 10 grep -q "died of its own doing with job .*: its [0-9]* parts wait 300 s.*$poison" \
  "$T/daemon3.log"
held=$(sed -n "s/.*died of its own doing with job .*: its \([0-9]*\) parts wait 300 s.*$poison.*/\1/p" \
  "$T/daemon3.log")
check "others were in the poison's job (${held:-?} parts)" test "${held:-0}" -ge 2
check "and says each goes alone from now on" \
  grep -q "each of its $held parts goes in a job of its own from now on" "$T/daemon3.log"
check "both workers are replaced" wait_for 20 replaced "$old"
ctl flush --domain poison.test >/dev/null
check "after a flush, the poison is stuck again" wait_for 10 stalled 2
check "while every other message is delivered" wait_for 15 delivered 9
check "the poison is still queued" test -f "$T/spool/queue/$poison"
check "and only its state file is in the spool (the delivered suspects' went with them)" \
  test "$(ls -A "$T/spool/state")" = "$poison.0"
old=$(children_of "$daemon" | tr '\n' ' ')
for p in $old; do kill -SEGV "$p"; done
check "its second crash names it alone" \
  wait_for 10 grep -q "part $poison.0 was alone in it, and has now been in 2 crashed jobs" \
  "$T/daemon3.log"
check "both workers are replaced again" wait_for 20 replaced "$old"
metric() { ctl metrics | sed -n "s/^$1 //p"; } # both reaped by now: counted
check "metrics count the 4 crashed workers" test "$(metric sluice_worker_crashes_total)" = 4
parts=$(metric sluice_crashed_job_parts_total)
check "and the parts of their jobs (${parts:-?}: the poison's job of $held, then the poison)" \
  test "${parts:-0}" -ge $((held + 1))
# The suspicion is on disk (the worker records it before each attempt): sluicectl queue shows
# it, and a master started again still sends the poison alone.
check "sluicectl queue shows the poison as a suspect" \
  eval 'ctl queue "$poison" | grep -q "suspect: in at least 1 crashed job; it goes in jobs of its own"'
check "and so does its JSON" eval 'ctl queue --json "$poison" | grep -q "\"crashes\":1,"'
kill -TERM "$daemon"
wait "$daemon"
for i in 1 2; do
  printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test "late$i@poison.test"
done >/dev/null
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon4.log" &
daemon=$!
started "$daemon"
check "started again, the master sends the poison alone: stuck again" wait_for 10 stalled 3
check "while the two messages queued after it are delivered" wait_for 15 delivered 11
old=$(children_of "$daemon" | tr '\n' ' ')
for p in $old; do kill -SEGV "$p"; done
peer_script mx '{}'
check "both workers are replaced a third time" wait_for 20 replaced "$old"
ctl flush "$poison" >/dev/null
check "once the cause is gone, the poison is delivered too" wait_for 10 delivered 12
check "and nothing of poison.test is left in the queue" \
  wait_for 10 eval '! ctl queue --domain poison.test | grep -q "poison.test"'
kill -TERM "$daemon"
wait "$daemon"

# A suspect past message_expiration is bounced when it is taken next, without another try: a
# crash ends no attempt, so the limits were never looked at, and the poison crashed a worker
# every five minutes for ever.  (max_retries counts each crash as an attempt the same way.)
printf '\n[domain "old.test"]\nroute = 127.0.1.1:%s\nchunking = off\nmessage_expiration = 3s\n' \
  "$(peer_port mx)" >>"$T/sluice.ini"
peer_script mx '{"stall": {"data": 30}}'
: >"$T/daemon5.log"
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon5.log" &
daemon=$!
started "$daemon"
check "the daemon comes up again" wait_for 10 up
before=$(peer_stat mx "total['connections']")
old_id=$(printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f '' r@old.test)
check "a worker is in the middle of a message that expires in 3 s" \
  wait_for 10 peer_true mx "total['connections'] == $before + 1"
old=$(children_of "$daemon" | tr '\n' ' ')
for p in $old; do kill -SEGV "$p"; done
check "its job's worker crashed with it" \
  wait_for 10 grep -q "died of its own doing with job .*$old_id" "$T/daemon5.log"
check "the workers are replaced" wait_for 20 replaced "$old"
sleep 3 # past its message_expiration
ctl flush "$old_id" >/dev/null
bounced_unsent() { grep "\"id\":\"$old_id\"" "$T/delivery.log" | grep -q '"outcome":"bounced".*message expired after 0 attempts and 1 crashed jobs'; }
check "taken again past its expiration, it is bounced, naming the crash" wait_for 10 bounced_unsent
check "without another try (the receiver saw no new connection)" \
  peer_true mx "total['connections'] == $before + 1"
check "and it is gone from the queue" wait_for 10 test ! -f "$T/spool/queue/$old_id"
kill -TERM "$daemon"
wait "$daemon"
