#!/usr/bin/env bash
# queue_ops.sh - the operator's queue commands, end to end, with golden output
# (tests/golden/queue_ops.txt; UPDATE_GOLDEN=1 rewrites it):
#  - queue --summary, queue ID, --domain, --binding read the spool with or without a daemon;
#  - with no daemon, hold/flush/delete change the spool directly and bounce is refused;
#  - a held message is never attempted, and stays held across a restart until released;
#  - flush retries a deferred message at once; delete --domain removes without a report;
#  - bounce --reason sends an RFC 3464 report naming the reason;
#  - racing a delivery in flight (the sink holds its DATA reply): a delete of a message whose
#    attempt then succeeds leaves it delivered once and logs no deletion; a bounce and a hold
#    of one whose attempt then defers are applied when the outcome comes back.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/golden.sh"

shm=/sluice-e2e-qops-$$
golden_init "$SLUICE_TOP/tests/golden/queue_ops.txt"

# .31: accepts, but 451 for "defer*" recipients; .32: holds every DATA reply 4 s;
# .33: holds the DATA reply 4 s, then 451
peer_start sink '{
  "rcpt": [{"match": "^defer", "reply": "451 4.2.0 not now"}],
  "127.0.1.32": {"hold": 4},
  "127.0.1.33": {"stall": {"data_end": 4}, "reply": {"data_end": "451 4.3.0 try later"}}}' \
  127.0.1.31 127.0.1.32 127.0.1.33
port=$(peer_port sink)

cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
retry_interval = 1h
max_retry_interval = 1h
idle_timeout = 1s

[binding "b1"]
bind_address = 127.0.0.2

[binding "b2"]
bind_address = 127.0.0.3

[domain "ok.test"]
route = 127.0.1.31:$port

[domain "sender.test"]
route = 127.0.1.31:$port

[domain "slow.test"]
route = 127.0.1.32:$port

[domain "fail.test"]
route = 127.0.1.33:$port
INI

inject() {
  local b=$1; shift
  printf "Subject: test\r\n\r\nbody\r\n" |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding "$b" -f alice@sender.test "$@"
}
in_queue() { test -e "$T/spool/queue/$1"; }
gone() { ! in_queue "$1"; }
logged() { grep -c "\"id\":\"$1\".*\"outcome\":\"$2\"" "$T/delivery.log" 2>/dev/null || true; }
got_rcpt() { peer_stat sink "sum(1 for e, b in messages() for r in e['rcpt_to'] if r == '$1')"; }
got_n() { test "$(got_rcpt "$1")" -eq "$2"; }     # for wait_for: evaluated on every poll
logged_n() { test "$(logged "$1" "$2")" -eq "$3"; }
defer_tries() { peer_stat sink "d['events'].get('rcpt_rule:^defer', 0)"; }
more_tries() { test "$(defer_tries)" -gt "$1"; }
state_held() { test -e "$T/spool/state/$1.0" && grep -qx 'held 1' "$T/spool/state/$1.0"; }
start() {
  "$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
  daemon=$!
  started "$daemon"
  wait_for 10 test -S "$T/spool/control.sock"
}
stop() { kill -TERM "$daemon"; wait "$daemon"; }

# --- no daemon: the queue's views, and commands on the spool itself
m1=$(inject b1 defer1@ok.test)
m2=$(inject b1 held@ok.test)
m3=$(inject b2 c@ok.test defer3@slow.test)
golden_name "$m1" M1; golden_name "$m2" M2; golden_name "$m3" M3; golden_name "$T" T
golden "queue --summary: messages per domain and age, with totals" queue --summary
golden "queue --summary --json" queue --summary --json
golden "queue ID shows that message only" queue "$m3"
golden "queue --domain shows the messages with a part for it" queue --domain slow.test
golden "queue --binding shows that binding's messages" queue --binding b1
golden "a queue id that is not queued is named, exit 1" queue 00000000000000000000
golden "hold with no daemon: done on the spool" hold "$m2"
golden "queue shows the hold" queue "$m2"
golden "bounce with no daemon is refused: the daemon composes the report" bounce "$m1"
golden "delete of an id not queued: exit 1" delete 00000000000000000000
golden "ids and --domain together: a usage error" delete "$m1" --domain ok.test
check "the hold is in the part's state file" grep -qx 'held 1' "$T/spool/state/$m2.0"

# --- the daemon: a held message is never attempted
start
check "the other messages are delivered" wait_for 20 got_n c@ok.test 1
check "the deferral of defer1 is logged" wait_for 20 logged_n "$m1" deferred 1
sleep 1
check "the held message was not attempted" test "$(got_rcpt held@ok.test)" -eq 0

# flush: the deferred message (next attempt in an hour) is tried again now
before=$(defer_tries)
golden "flush ID retries a deferred message now" flush "$m1"
check "flush: a second attempt at once" wait_for 20 more_tries "$before"
golden "flush of the held message leaves it held" flush "$m2"

# restart: the hold survives
stop
start
sleep 2
check "after a restart the held message is still not attempted" test "$(got_rcpt held@ok.test)" -eq 0
golden "release" release "$m2"
check "released, it is delivered" wait_for 20 got_n held@ok.test 1
check "and leaves the queue" wait_for 10 gone "$m2"

# delete --domain: the parts for that domain only; no report
golden "delete --domain selects the parts for that domain" delete --domain slow.test
check "m3 leaves the queue (its ok.test part was delivered)" wait_for 10 gone "$m3"
check "the delivery log says deleted, phase operator" \
  grep -q "\"id\":\"$m3\",\"rcpt\":\[\"defer3@slow.test\"\].*\"outcome\":\"deleted\",\"reply\":\"deleted by the operator\",\"phase\":\"operator\"" "$T/delivery.log"

# bounce --reason: an RFC 3464 report to the sender, naming the reason
golden "bounce --reason" bounce --reason "spam complaint from the recipient" "$m1"
check "bounced: it leaves the queue" wait_for 10 gone "$m1"
dsn_for() { peer_stat sink "sum(1 for e, b in messages() if e['rcpt_to'] == ['alice@sender.test'] and b'$1' in b)"; }
dsn_arrived() { test "$(dsn_for "$1")" -ge 1; }
check "the sender gets a delivery-status report naming the recipient" \
  wait_for 20 dsn_arrived 'Final-Recipient: rfc822; defer1@ok.test'
check "with the operator's reason" test "$(dsn_for 'bounced by the operator: spam complaint from the recipient')" -ge 1
check "the delivery log has the bounce, phase operator" \
  grep -q "\"id\":\"$m1\".*\"outcome\":\"bounced\",\"reply\":\"bounced by the operator: spam complaint from the recipient\",\"phase\":\"operator\"" "$T/delivery.log"

# --- racing a delivery in flight
# in_data ADDR N: more than N transactions (MAIL accepted) at ADDR: an attempt is in its DATA
txns() { peer_stat sink "dest('$1')['transactions']"; }
in_data() { peer_true sink "dest('$1')['transactions'] > $2"; }
# delete while the DATA reply is held; the attempt succeeds: delivered once, nothing deleted
t=$(txns 127.0.1.32)
m4=$(inject b1 race@slow.test)
golden_name "$m4" M4
check "m4's DATA is in flight" wait_for 20 in_data 127.0.1.32 "$t"
golden "delete of a message being delivered: applied when that attempt ends" delete "$m4"
check "the attempt delivers it" wait_for 20 got_n race@slow.test 1
check "it leaves the queue" wait_for 10 gone "$m4"
check "delivered once, no deletion logged" \
  test "$(logged "$m4" delivered)" -eq 1 -a "$(logged "$m4" deleted)" -eq 0
check "the daemon's log says the attempt made it final" \
  wait_for 5 grep -q "delete $m4.0: the attempt in flight made it final" "$T/daemon.log"

# bounce while the DATA reply is held; the attempt defers: the bounce follows it
t=$(txns 127.0.1.33)
m5=$(inject b1 racefail@fail.test)
golden_name "$m5" M5
check "m5's DATA is in flight" wait_for 20 in_data 127.0.1.33 "$t"
golden "bounce of a message being delivered" bounce --reason "race" "$m5"
check "the attempt defers, then the bounce applies" wait_for 20 logged_n "$m5" bounced 1
check "after the one deferral" logged_n "$m5" deferred 1
check "it leaves the queue" wait_for 10 gone "$m5"
check "the sender gets the report" wait_for 20 dsn_arrived 'racefail@fail.test'
check "the sink never accepted it" test "$(got_rcpt racefail@fail.test)" -eq 0

# hold while the DATA reply is held; the attempt defers: held, and a restart keeps it
t=$(txns 127.0.1.33)
m6=$(inject b1 racehold@fail.test)
golden_name "$m6" M6
check "m6's DATA is in flight" wait_for 20 in_data 127.0.1.33 "$t"
golden "hold of a message being delivered" hold "$m6"
check "the attempt defers, then the hold is written" wait_for 20 state_held "$m6"
stop
start
golden "flush --binding after a restart: the held message stays held" flush --binding b1
sleep 2
check "held across the restart: one attempt only" test "$(txns 127.0.1.33)" -eq $((t + 1))
golden "the queue shows it held" queue "$m6"
# a request longer than the control socket takes (1023 bytes) is refused whole: cut, its
# last token would be read short (part 12 as part 1) and acted on, its reason lost
python3 - "$T/spool/control.sock" "$T/client.sock" "$m6" >"$T/long.ans" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[2])
s.settimeout(10)
s.sendto(("O delete %s.0 -- %s" % (sys.argv[3], "x" * 1100)).encode(), sys.argv[1])
print(s.recv(1024).decode())
PY
check "an over-long request is refused: $(cat "$T/long.ans")" grep -q "^ERROR request too long" "$T/long.ans"
check "and nothing of it is done: m6 is still queued" in_queue "$m6"
golden "delete --binding" delete --binding b1
queue_empty() { test -z "$(ls "$T/spool/queue")"; }
check "the queue is empty" wait_for 10 queue_empty
golden "an empty summary" queue --summary
stop
check "the daemon stops cleanly" test $? -eq 0
