#!/usr/bin/env bash
# delivery.sh - what happens to mail, end to end, against real parts: Postfix's
# smtpd receives it intact (dot-stuffing, several domains in one message); the
# scripted sink answers 4xx and 5xx; a 5xx bounces with an RFC 3464 report to
# the sender (never a bounce of a bounce); a null MX and a domain that does not
# exist bounce at once; a deferral is retried on retry_interval and delivered;
# max_retries and message_expiration bounce; a message too big for the peer's
# SIZE bounces without being sent; max_recipients_per_batch splits a message
# into transactions; `sluicectl queue` shows attempts and the last reply.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/postfix.sh"

shm=/sluice-e2e-delivery-$$

dns_zone test <<'EOF'
pf          MX 10 mx.pf
pf2         MX 10 mx.pf
mx.pf       A  127.0.1.20
sink        MX 10 mx.sink
mx.sink     A  127.0.1.21
sender      MX 10 mx.sender
mx.sender   A  127.0.1.22
nullmx      MX 0 .
v6          MX 10 mx.v6
mx.v6       AAAA ::1
mx.v6       A  127.0.1.23
EOF
dns_start

pport=$(peer_free_port 127.0.1.20)
postfix_start 127.0.1.20 "$pport" pf.test pf2.test
# the sink: 550 for "nobody", 451 once for "later" then 250, always 451 for "never"
peer_start sink '{
  "rcpt": [{"match": "^nobody@", "reply": "550 5.1.1 no such user"},
           {"match": "^later@", "reply": "451 4.2.0 try again later", "times": 1},
           {"match": "^never@", "reply": "451 4.2.0 not today"}],
  "127.0.1.22": {"size": 2000}}' 127.0.1.21 127.0.1.22 ::1
sport=$(peer_port sink)

cat >"$T/sluice.ini" <<INI
[global]
workers = 4
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $sport
idle_timeout = 1s
retry_interval = 2s
max_retry_interval = 4s

[binding "b1"]
bind_address = 127.0.0.2

[binding "v6"]
bind_address = ::1

[domain "/^pf2?\.test\$/"]
smtp_port = $pport

[domain "pf2.test"]
chunking = off

[domain "sink.test"]
max_recipients_per_batch = 3

[binding "b1" domain "noretry.sink.test"]
route = 127.0.1.21:$sport
max_retries = none

[domain "old.sink.test"]
route = 127.0.1.21:$sport
message_expiration = 1s

[domain "secret.test"]
route = 127.0.1.21:$sport
tls = required
INI

inject() { "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 "$@"; }
queued() { ls "$T/spool/queue" | wc -l; }
logged() { grep -c "$1" "$T/delivery.log" 2>/dev/null || true; }
logged_at_least() { test "$(logged "$2")" -ge "$1"; }
log_has() { grep -q "$1" "$T/delivery.log" 2>/dev/null; }
queue_json() { "$SLUICECTL" -c "$T/sluice.ini" queue --json; }
sink_has() { peer_true sink "$1"; }

"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"

# --- to Postfix: intact content, two domains in one message
printf 'Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n' >"$T/dots.eml"
id=$(inject -f alice@sender.test bob@pf.test carol@pf2.test <"$T/dots.eml")
delivered_pf() { test -n "$(ls "$POSTFIX_MAIL/$1/$2/new" 2>/dev/null)"; }
check "Postfix's smtpd receives the message for pf.test" wait_for 20 delivered_pf pf.test bob
check "and for pf2.test (the message's second part)" wait_for 20 delivered_pf pf2.test carol
got=$(cat "$POSTFIX_MAIL"/pf.test/bob/new/* | sed -n '/^Subject: dots/,$p' | tr -d '\r')
want=$(printf 'Subject: dots\n\n.leading dot\n..two dots\n.\nlast line')
check "the body arrives byte for byte (dot-stuffing undone by the peer)" test "$got" = "$want"
# Postfix counts each session's commands when it ends: pf.test's message went as BDAT
# (CHUNKING offered), pf2.test's with DATA (chunking = off), on one session or two
pf_used() { grep 'disconnect from' "$(postfix_log)" | grep -q " $1=1"; }
check "Postfix took pf.test's part with BDAT (its offer of CHUNKING used)" wait_for 10 pf_used bdat
check "and pf2.test's with DATA (chunking = off for that domain)" wait_for 10 pf_used data
check "the message leaves the spool once both parts are delivered" \
  wait_for 10 test ! -e "$T/spool/queue/$id"
check "the delivery log has one delivered line per part, with MX and IP" \
  test "$(grep -c "\"id\":\"$id\".*\"mx\":\"mx.pf.test\",\"ip\":\"127.0.1.20\",\"outcome\":\"delivered\"" "$T/delivery.log")" -eq 2

# --- 5xx: bounce, with a report to the sender; the bounce of a bounce never happens
id=$(printf 'Subject: to nobody\r\nMessage-ID: <m1@sender.test>\r\n\r\nhello\r\n' |
  inject -f alice@sender.test nobody@sink.test ok1@sink.test)
check "a 550 recipient is bounced, naming rcpt_to" \
  wait_for 20 log_has "\"id\":\"$id\",\"rcpt\":\[\"nobody@sink.test\"\].*\"outcome\":\"bounced\",\"reply\":\"550 5.1.1 no such user\",\"phase\":\"rcpt_to\""
check "the other recipient of the same message is delivered" \
  log_has "\"id\":\"$id\",\"rcpt\":\[\"ok1@sink.test\"\].*\"outcome\":\"delivered\""
dsn_arrived() { sink_has "any(e['rcpt_to'] == ['alice@sender.test'] for e, b in messages())"; }
check "a delivery status notification reaches the sender" wait_for 20 dsn_arrived
dsn=$(peer_stat sink "[b.decode() for e, b in messages() if e['rcpt_to'] == ['alice@sender.test']][0]")
dsn_from=$(peer_stat sink "[e['mail_from'] for e, b in messages() if e['rcpt_to'] == ['alice@sender.test']][0]")
check "it comes from the null sender" test -z "$dsn_from"
check "it is a multipart/report of delivery-status" \
  grep -q 'multipart/report; report-type=delivery-status' <<<"$dsn"
check "it names the recipient, the status and the remote MTA's reply" \
  bash -c 'grep -q "Final-Recipient: rfc822; nobody@sink.test" <<<"$1" &&
           grep -q "Status: 5.1.1" <<<"$1" && grep -q "Diagnostic-Code: smtp; 550 5.1.1 no such user" <<<"$1" &&
           grep -q "Action: failed" <<<"$1"' _ "$dsn"
check "it carries the original header" grep -q 'Message-ID: <m1@sender.test>' <<<"$dsn"
printf 'Subject: bounce\r\n\r\nx\r\n' | inject -f '' nobody@sink.test >/dev/null
check "a message from the null sender is bounced" \
  wait_for 20 logged_at_least 2 '"rcpt":\["nobody@sink.test"\].*"bounced"'
sleep 2
check "and no report is sent for it (one report in all)" \
  test "$(peer_stat sink "sum(1 for e, b in messages() if e['mail_from'] == '')")" -eq 1

# --- DNS: null MX and no such domain bounce at once, naming dns
printf 'Subject: x\r\n\r\nx\r\n' | inject -f dave@sink.test a@nullmx.test >/dev/null
printf 'Subject: x\r\n\r\nx\r\n' | inject -f '' a@nowhere.test >/dev/null
check "a null MX (RFC 7505) bounces at once" \
  wait_for 20 log_has '"rcpt":\["a@nullmx.test"\].*"outcome":"bounced".*"phase":"dns"'
check "a domain that does not exist bounces" \
  wait_for 20 log_has '"rcpt":\["a@nowhere.test"\].*"outcome":"bounced".*"phase":"dns"'
check "the null MX's bounce carries 556 5.1.10 (RFC 7505), for the log and the report" \
  log_has '"rcpt":\["a@nullmx.test"\].*"reply":"556 5.1.10 nullmx.test accepts no mail (null MX)"'
check "the missing domain's carries 550 5.1.2" \
  log_has '"rcpt":\["a@nowhere.test"\].*"reply":"550 5.1.2 nowhere.test does not exist'
nullmx_dsn() { peer_stat sink "[b.decode() for e, b in messages() if e['rcpt_to'] == ['dave@sink.test']]"; }
nullmx_dsn_says() { nullmx_dsn | grep -q "$1"; }
check "the null MX's report gives the reply as sluice's own (no server sent it)" \
  wait_for 20 nullmx_dsn_says "Diagnostic-Code: X-Sluice; 556 5.1.10 nullmx.test accepts no mail"
check "with its Status and no Remote-MTA" \
  bash -c 'grep -q "Status: 5.1.10" <<<"$1" && ! grep -q "Remote-MTA" <<<"$1"' _ "$(nullmx_dsn)"

# --- 4xx: deferred, shown in the queue, retried on retry_interval, then delivered
id=$(printf 'Subject: later\r\n\r\nx\r\n' | inject -f '' later@sink.test)
check "a 451 defers the recipient" \
  wait_for 20 log_has "\"id\":\"$id\".*\"outcome\":\"deferred\",\"reply\":\"451 4.2.0 try again later\""
attempts() { queue_json | python3 -c "
import json,sys
m=[m for m in json.load(sys.stdin)['messages'] if m['id']=='$1']
print(m[0]['parts'][0]['attempts'] if m else 'gone')"; }
attempt_recorded() { a=$(attempts "$1"); test "$a" = 1 || test "$a" = gone; }
check "sluicectl queue shows the attempt (the state is written after the log line)" \
  wait_for 10 attempt_recorded "$id"
check "the retry after retry_interval delivers it" \
  wait_for 20 log_has "\"id\":\"$id\".*\"outcome\":\"delivered\""
t1=$(grep "\"id\":\"$id\".*deferred" "$T/delivery.log" | python3 -c 'import json,sys,datetime as d; print(d.datetime.fromisoformat(json.loads(sys.stdin.readline())["time"].replace("Z","+00:00")).timestamp())')
t2=$(grep "\"id\":\"$id\".*delivered" "$T/delivery.log" | python3 -c 'import json,sys,datetime as d; print(d.datetime.fromisoformat(json.loads(sys.stdin.readline())["time"].replace("Z","+00:00")).timestamp())')
check "not before retry_interval (2 s): $(python3 -c "print(round($t2-$t1,2))") s" \
  python3 -c "import sys; sys.exit(not ($t2 - $t1 >= 1.9))"

# --- a deferral keeps the message, with its attempts, until max_retries/expiration
id=$(printf 'Subject: never\r\n\r\nx\r\n' | inject -f '' never@sink.test)
check "a recipient that is always deferred stays queued with its attempts counted" \
  wait_for 20 bash -c "test \"\$('$SLUICECTL' -c '$T/sluice.ini' queue --json | python3 -c \"import json,sys; m=[m for m in json.load(sys.stdin)['messages'] if m['id']=='$id']; print(m[0]['parts'][0]['attempts'] if m else 0)\")\" -ge 2"
reply=$(queue_json | python3 -c "import json,sys; print([m for m in json.load(sys.stdin)['messages'] if m['id']=='$id'][0]['parts'][0]['reply'])")
check "with its last reply ($reply)" test "$reply" = "451 4.2.0 not today"
id=$(printf 'Subject: once\r\n\r\nx\r\n' | inject -f '' never@noretry.sink.test)
check "max_retries = none: the first deferral bounces" \
  wait_for 20 log_has "\"id\":\"$id\".*\"outcome\":\"bounced\".*too many retries"
id=$(printf 'Subject: old\r\n\r\nx\r\n' | inject -f carol@sink.test never@old.sink.test)
check "message_expiration: a deferred message past its age bounces" \
  wait_for 20 log_has "\"id\":\"$id\".*\"outcome\":\"bounced\".*message expired"
expired_dsn_says() { # the report to the sender of the expired message has the line $1
  peer_stat sink "[b.decode() for e, b in messages() if e['rcpt_to'] == ['carol@sink.test']]" |
    grep -q "$1"
}
check "its report says Status: 5.4.7 (delivery time expired), not the last reply's 4.2.0" \
  wait_for 20 expired_dsn_says "Status: 5.4.7"
check "and the reply that gave up, as sluice's own (X-Sluice), not a server's (smtp)" \
  expired_dsn_says "Diagnostic-Code: X-Sluice; 554 5.4.7 message expired"
check "the bounced messages leave the spool" wait_for 10 test ! -e "$T/spool/queue/$id"

# --- SIZE: a message bigger than the peer announces bounces without being sent
big=$(python3 -c 'print("x" * 70)')
id=$( { printf 'Subject: big\r\n\r\n'; for i in $(seq 60); do echo "$big"; done; } |
  inject -f erin@sink.test a@sender.test)
check "a message over the peer's SIZE bounces with 5.3.4, naming mail_from" \
  wait_for 20 log_has "\"id\":\"$id\".*\"outcome\":\"bounced\",\"reply\":\"552 5.3.4"
check "without being sent" test "$(peer_stat sink "dest('127.0.1.22')['transactions']")" -eq 1
size_dsn_says() {
  peer_stat sink "[b.decode() for e, b in messages() if e['rcpt_to'] == ['erin@sink.test']]" |
    grep -q "$1"
}
size_dsn_ok() {
  size_dsn_says 'Remote-MTA: dns; mx.sender.test' &&
    size_dsn_says 'Diagnostic-Code: X-Sluice; 552 5.3.4 message of'
}
check "its report names the host, and the reply as sluice's own (the host sent no 552)" \
  wait_for 20 size_dsn_ok

# --- max_recipients_per_batch = 3: 7 recipients in 3 transactions
id=$(printf 'Subject: many\r\n\r\nx\r\n' | inject -f '' r1@sink.test r2@sink.test r3@sink.test \
  r4@sink.test r5@sink.test r6@sink.test r7@sink.test)
check "7 recipients are delivered" \
  wait_for 20 logged_at_least 3 "\"id\":\"$id\".*delivered"
sizes=$(peer_stat sink "sorted(len(e['rcpt_to']) for e, b in messages() if b'Subject: many' in b)")
check "in 3 transactions of at most 3 recipients ($sizes)" test "$sizes" = "[1, 3, 3]"

# --- IPv6: a binding on ::1 takes the MX host's AAAA, never its A
id=$(printf 'Subject: six\r\n\r\nx\r\n' | "$SLUICECTL" -c "$T/sluice.ini" inject --binding v6 -f '' a@v6.test)
check "a binding with an IPv6 bind_address delivers over IPv6" \
  wait_for 20 log_has "\"id\":\"$id\".*\"binding\":\"v6\".*\"ip\":\"::1\",\"outcome\":\"delivered\""
check "the peer saw it from ::1 on ::1" wait_for 5 peer_true sink "pair('::1', '::1')['messages'] == 1"

# --- tls = required: never in clear (this peer offers no STARTTLS, so the mail waits)
id=$(printf 'Subject: secret\r\n\r\nx\r\n' | inject -f '' a@secret.test)
check "tls = required defers, naming tls" \
  wait_for 20 log_has "\"id\":\"$id\".*\"outcome\":\"deferred\".*\"phase\":\"tls\""
check "and the message never reached the peer" \
  peer_true sink "not any(b'Subject: secret' in b for e, b in messages())"
check "it stays queued" test -e "$T/spool/queue/$id"

check "every delivery-log line is valid JSON with the documented keys" python3 -c "
import json, sys
keys = {'time','id','rcpt','binding','domain','mx','ip','outcome','reply','phase'}
for line in open('$T/delivery.log'):
    d = json.loads(line)
    assert keys <= d.keys(), d
    assert d['outcome'] in ('delivered','deferred','bounced'), d
"
kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM exits 0" test $? -eq 0
