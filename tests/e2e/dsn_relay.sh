#!/usr/bin/env bash
# dsn_relay.sh - the RFC 3461 parameters an application gives the listener (RET, ENVID,
# NOTIFY, ORCPT) go on to a receiver that offers DSN, as xtext, so that the success, delay
# or failure it reports later reaches the sender as asked; to a receiver that does not offer
# DSN none is sent (the sink counts any as a protocol error and refuses it), and a message
# submitted without them carries none.  There the sender learns that no report will come
# (RFC 3461 4.1): each recipient that asked NOTIFY=SUCCESS is in a "relayed" report, one per
# message (per part: per destination domain), with ENVID and ORCPT given back and only the
# header returned, even under RET=FULL (RFC 3461 4.3: no failure, no content).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-dsnrelay-$$
# one sink on two addresses: 127.0.1.93 offers DSN, 127.0.1.94 does not
peer_start sink '{"127.0.1.93": {"extensions": ["DSN"]}}' 127.0.1.93 127.0.1.94
sport=$(peer_port sink)
lport=$(peer_free_port 127.0.0.1)
{
  ini_global 1
  cat <<INI
idle_timeout = 1s

[binding "b1"]
bind_address = 127.0.0.2

[domain "dsn.test"]
route = 127.0.1.93:$sport

[domain "plain.test"]
route = 127.0.1.94:$sport

[domain "sender.test"]
route = 127.0.1.94:$sport

[listener "in"]
address = 127.0.0.1:$lport
binding = b1
INI
} >"$T/sluice.ini"
sluiced_start
answers() { swaks --server 127.0.0.1 --port "$lport" --quit-after EHLO >/dev/null 2>&1; }
check "the listener answers" wait_for 10 answers

python3 - "$lport" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
for dom in ("dsn.test", "plain.test"):
    s.sendmail("app@sender.test", ["a@" + dom, "b@" + dom, "c@" + dom],
               "Subject: dsn\r\nX-Test: %s\r\n\r\nbody\r\n" % dom,
               mail_options=["RET=" + ("HDRS" if dom == "dsn.test" else "FULL"),
                             "ENVID=env+2Bid+3D1"],
               rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig+2Ba@example.org"])
s.sendmail("app@sender.test", ["d@dsn.test"], "Subject: none\r\nX-Test: none\r\n\r\nbody\r\n")
s.quit()
PY
# what RFC 3461 forbids is refused at the listener, never passed on: an ENVID over 100
# characters as xtext, an ORCPT address type that is no atom (here it would smuggle a NOTIFY)
python3 - "$lport" "$T/refused.out" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
out = []
try:
    s.sendmail("app@sender.test", ["e@dsn.test"], "Subject: x\r\n\r\nx\r\n",
               mail_options=["RET=HDRS", "ENVID=" + "+2B" * 34])
    out.append("envid accepted")
except smtplib.SMTPSenderRefused as e:
    out.append("envid %d" % e.smtp_code)
s.rset()
try:
    s.sendmail("app@sender.test", ["f@dsn.test"], "Subject: x\r\n\r\nx\r\n",
               rcpt_options=["ORCPT=rfc822+20NOTIFY+3DNEVER;f@dsn.test"])
    out.append("orcpt accepted")
except smtplib.SMTPRecipientsRefused as e:
    out.append("orcpt %d" % list(e.recipients.values())[0][0])
s.quit()
open(sys.argv[2], "w").write(" ".join(out))
PY
check "an ENVID of 102 characters as xtext is refused: 501 ($(cat "$T/refused.out"))" \
  grep -q "envid 501" "$T/refused.out"
check "an ORCPT whose type is no atom is refused: 501" grep -q "orcpt 501" "$T/refused.out"

envelope() { # field $2 of the envelope of message $1 (MAIL's SIZE= left out)
  peer_stat sink "(lambda v: [p for p in v if not p.startswith('SIZE=')] if '$2' == 'mail_params' else v)([e for e, b in messages() if b'X-Test: $1' in b][0]['$2'])"
}
check "the three messages arrive, and the report of plain.test's" \
  wait_for 20 peer_true sink "len(messages()) == 4"
echo "# to dsn.test: MAIL $(envelope dsn.test mail_params), RCPT $(envelope dsn.test rcpt_params)"
check "to a receiver offering DSN, MAIL carries RET=HDRS and ENVID as xtext" \
  test "$(envelope dsn.test mail_params)" = '["RET=HDRS", "ENVID=env+2Bid+3D1"]'
check "and each RCPT its NOTIFY and ORCPT (the type as it is, the address as xtext)" \
  test "$(envelope dsn.test rcpt_params)" = \
  '[["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig+2Ba@example.org"], ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig+2Ba@example.org"], ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig+2Ba@example.org"]]'
check "to a receiver that does not offer DSN, none is sent" \
  test "$(envelope plain.test mail_params)$(envelope plain.test rcpt_params)" = '[][[], [], []]'
check "a message submitted without them carries none" \
  test "$(envelope none mail_params)$(envelope none rcpt_params)" = '[][[]]'
check "the receiver saw no DSN parameter it had not offered" \
  test "$(peer_stat sink "errors.get('unadvertised_dsn', 0)")" -eq 0

# the reports: every message queued has gone (a second report would have too)
queue_empty() { [ -z "$(ls "$T/spool/queue")" ]; }
check "the queue drains" wait_for 20 queue_empty
report() { peer_stat sink "[b.decode() for e, b in messages() if e['mail_from'] == ''][0]"; }
check "one report comes, from the null sender: of the message relayed to plain.test" \
  test "$(peer_stat sink "len([e for e, b in messages() if e['mail_from'] == ''])")" -eq 1
check "it goes to the sender" test "$(peer_stat sink "[e['rcpt_to'] for e, b in messages() if e['mail_from'] == ''][0]")" = '["app@sender.test"]'
report >"$T/report.txt"
check "its three recipients are relayed, 2.0.0, with the receiver's reply" \
  test "$(grep -c -e '^Action: relayed' "$T/report.txt")$(grep -c '^Status: 2\.0\.0' "$T/report.txt")$(grep -c '^Diagnostic-Code: smtp; 250' "$T/report.txt")" = 333
check "each named as given and as the client's ORCPT" \
  test "$(grep -c -E '^Final-Recipient: rfc822; [abc]@plain\.test' "$T/report.txt")$(grep -c '^Original-Recipient: rfc822;orig+a@example.org' "$T/report.txt")" = 33
check "ENVID is given back" grep -q '^Original-Envelope-Id: env+id=1' "$T/report.txt"
check "none of dsn.test (its receiver reports) nor of the message that asked for nothing" \
  test "$(grep -c -e 'dsn\.test' -e 'X-Test: none' "$T/report.txt")" -eq 0
check "the header is returned, not the body" \
  test "$(grep -c -e '^Content-Type: text/rfc822-headers' -e '^X-Test: plain.test' "$T/report.txt")$(grep -c '^body' "$T/report.txt")" = 20
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
echo "1..$_n"
