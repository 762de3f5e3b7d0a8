#!/usr/bin/env bash
# batch_crash.sh - a message whose recipients go in several transactions (more of them than
# max_recipients_per_batch) records those delivered after each transaction, before the next
# body goes: a worker killed with -9 in its third transaction leaves the first two recipients
# delivered on disk, and the retry sends only the third (at most one accepted message is ever
# unrecorded, as for one transaction).  The recipients asked for success notices (NOTIFY=
# SUCCESS) of a receiver without DSN: the "relayed" report of the first two is queued before
# they are written delivered, so the crash loses none; each recipient is reported once.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

# r3's RCPT waits 30 s the first time: the worker is in its third transaction when killed
peer_start mx '{"rcpt": [{"match": "^r3@", "stall": 30, "times": 1}]}' 127.0.1.1
shm=/sluice-e2e-bcrash-$$
lport=$(peer_free_port 127.0.0.1)
{
  ini_global 1
  cat <<INI
tls = disabled
retry_interval = 1s

[binding "b1"]
bind_address = 127.0.0.2

[domain "/.*[.]test$/"]
route = 127.0.1.1:$(peer_port mx)

[domain "batch.test"]
route = 127.0.1.1:$(peer_port mx)
max_recipients_per_batch = 1

[listener "in"]
address = 127.0.0.1:$lport
binding = b1
max_sessions = 1
INI
} >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
listening() { python3 -c "import smtplib; smtplib.SMTP('127.0.0.1', $lport).quit()" 2>/dev/null; }
check "the daemon comes up" wait_for 10 listening

id=$(python3 - "$lport" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("client.test")
s.mail("s@sender.test")
for r in ("r1@batch.test", "r2@batch.test", "r3@batch.test"):
    s.rcpt(r, ["NOTIFY=SUCCESS,FAILURE"])
code, text = s.data(b"Subject: t\r\n\r\nbody\r\n")
print(text.decode().split()[-1] if code == 250 else "")
s.quit()
PY
)
check "the message is queued ($id)" test -n "$id"
two_recorded() { [ "$(grep -c '^done [0-9]* D$' "$T/spool/state/$id.0" 2>/dev/null)" -eq 2 ]; }
check "two transactions delivered and recorded, the third waits at its RCPT" \
  wait_for 20 eval 'two_recorded && peer_true mx "events.get(\"rcpt_rule:^r3@\", 0) == 1"'
for p in $(children_of "$daemon"); do
  grep -q 'sluiced: worker' "/proc/$p/cmdline" 2>/dev/null && kill -9 "$p"
done
check "the retry delivers the message" wait_for 30 eval '! test -f "$T/spool/queue/$id"'
got() { peer_stat mx "sum(1 for e, b in messages() if e['rcpt_to'] == ['$1'])"; }
check "the receiver got each recipient once ($(got r1@batch.test) $(got r2@batch.test) $(got r3@batch.test))" \
  test "$(got r1@batch.test) $(got r2@batch.test) $(got r3@batch.test)" = "1 1 1"
delivered() { grep -c "\"rcpt\":\[\"$1@batch.test\"\].*\"outcome\":\"delivered\"" "$T/delivery.log"; }
check "the delivery log says so: r1, r2, r3 delivered once each" \
  test "$(delivered r1) $(delivered r2) $(delivered r3)" = "1 1 1"
reported() { # the relayed reports to the sender naming recipient $1
  peer_stat mx "sum(1 for e, b in messages() if e['rcpt_to'] == ['s@sender.test'] and b'Final-Recipient: rfc822; $1' in b)"
}
all_reported() { [ "$(reported r1@batch.test)$(reported r2@batch.test)$(reported r3@batch.test)" = 111 ]; }
check "each recipient's success is reported to the sender once" wait_for 20 all_reported
check "the master survived it" alive "$daemon"
kill -TERM "$daemon"
wait "$daemon"
check "and stops cleanly" test $? -eq 0
echo "1..$_n"
