#!/usr/bin/env bash
# dsn_ret.sh - RFC 3461 RET in the bounces sluice writes, end to end: mail submitted over
# SMTP (Python's smtplib) to the listener, refused 5xx by the sink, and the report that comes
# back to the sender through the same sink.  RET=FULL returns the whole message as
# message/rfc822 up to bounce_size_limit, its header (with a note) above it; RET=HDRS and no
# RET return the header only, as text/rfc822-headers; `sluicectl bounce` follows RET too.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-dsnret-$$

dns_zone test <<'EOF2'
sink        MX 10 mx.sink
sender      MX 10 mx.sink
mx.sink     A  127.0.1.31
EOF2
dns_start
peer_start sink '{"rcpt": [{"match": "^nobody@", "reply": "550 5.1.1 no such user"}]}' 127.0.1.31
lport=$(peer_free_port 127.0.0.1)

cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $(peer_port sink)
idle_timeout = 1s
ehlo_hostname = sluice.test
bounce_size_limit = 2000

[binding "b1"]
bind_address = 127.0.0.2

[listener "local"]
address = 127.0.0.1:$lport
binding = b1
INI
check "config check takes bounce_size_limit" "$SLUICECTL" -c "$T/sluice.ini" config check
check "config eval shows it" \
  eval '"$SLUICECTL" -c "$T/sluice.ini" config eval bounce_size_limit | grep -qx "Bounce_Size_Limit = 2000"'

"$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
started $!
listening() { swaks --server 127.0.0.1 --port "$lport" --quit-after EHLO >/dev/null 2>&1; }
check "the listener answers" wait_for 10 listening

# submit SENDER RCPT RET BODY-MARKER [PAD-LINES]: one message through the listener
submit() {
  python3 - 127.0.0.1 "$lport" "$@" <<'PY'
import smtplib, sys
host, port, sender, rcpt, ret, marker = sys.argv[1:7]
pad = int(sys.argv[7]) if len(sys.argv) > 7 else 0
body = ("Subject: ret test\r\nX-Test: %s\r\n\r\nthe body line %s\r\n" % (marker, marker)
        + ".a line that starts with a dot\r\n" + ("padding " * 8 + "\r\n") * pad)
s = smtplib.SMTP(host, int(port))
s.ehlo("dsn.test")
s.sendmail(sender, [rcpt], body, mail_options=[ret] if ret else [])
s.quit()
PY
}
report_to() { peer_stat sink "[b for e, b in messages() if e['rcpt_to'] == ['$1']][0].decode()"; }
reports_to() { peer_true sink "sum(1 for e, b in messages() if e['rcpt_to'] == ['$1']) >= 1"; }

submit full@sender.test nobody@sink.test RET=FULL mark-full
submit hdrs@sender.test nobody@sink.test RET=HDRS mark-hdrs
submit none@sender.test nobody@sink.test "" mark-none
submit big@sender.test nobody@sink.test RET=FULL mark-big 60

check "RET=FULL: the report reaches the sender" wait_for 20 reports_to full@sender.test
b=$(report_to full@sender.test)
check "RET=FULL: the third part is message/rfc822" grep -q '^Content-Type: message/rfc822' <<<"$b"
check "RET=FULL: the original body is in the report" grep -q '^the body line mark-full' <<<"$b"
check "RET=FULL: the original header too" grep -q '^X-Test: mark-full' <<<"$b"
check "RET=FULL: the body comes back as written (a leading dot, once)" \
  grep -q '^\.a line that starts with a dot' <<<"$b"
check "RET=FULL: no text/rfc822-headers part" eval '! grep -q "text/rfc822-headers" <<<"$b"'
check "the report is from MAILER-DAEMON at ehlo_hostname, not the system's host name" \
  grep -q '^From: Mail Delivery System <MAILER-DAEMON@sluice.test>' <<<"$b"
check "... and names it the Reporting-MTA (RFC 3464 2.2.2)" grep -q '^Reporting-MTA: dns; sluice.test' <<<"$b"

check "RET=HDRS: the report reaches the sender" wait_for 20 reports_to hdrs@sender.test
b=$(report_to hdrs@sender.test)
check "RET=HDRS: the header comes back as text/rfc822-headers" \
  eval 'grep -q "^Content-Type: text/rfc822-headers" <<<"$b" && grep -q "^X-Test: mark-hdrs" <<<"$b"'
check "RET=HDRS: the body does not" eval '! grep -q "the body line" <<<"$b"'

check "no RET: the report reaches the sender" wait_for 20 reports_to none@sender.test
b=$(report_to none@sender.test)
check "no RET: the header only, as before" \
  eval 'grep -q "^Content-Type: text/rfc822-headers" <<<"$b" && ! grep -q "the body line" <<<"$b"'

check "RET=FULL over bounce_size_limit: a report" wait_for 20 reports_to big@sender.test
b=$(report_to big@sender.test)
check "RET=FULL over bounce_size_limit: the header only" \
  eval 'grep -q "^Content-Type: text/rfc822-headers" <<<"$b" && ! grep -q "the body line" <<<"$b"'
check "RET=FULL over bounce_size_limit: the text says why" \
  grep -q 'larger than 2000 bytes: only its header is returned' <<<"$b"

# --- sluicectl bounce: the operator's report follows RET=FULL too ---
"$SLUICECTL" -c "$T/sluice.ini" suspend --domain opbounce.test --reason "held" >/dev/null
submit op@sender.test x@opbounce.test RET=FULL mark-op
check "the message waits in the queue" \
  wait_for 10 eval '"$SLUICECTL" -c "$T/sluice.ini" queue | grep -q "x@opbounce.test"'
"$SLUICECTL" -c "$T/sluice.ini" bounce --domain opbounce.test --reason "by the test" >/dev/null 2>&1
check "operator bounce with RET=FULL: a report" wait_for 20 reports_to op@sender.test
b=$(report_to op@sender.test)
check "operator bounce with RET=FULL: the whole message as message/rfc822" \
  eval 'grep -q "^Content-Type: message/rfc822" <<<"$b" && grep -q "^the body line mark-op" <<<"$b"'

echo "1..$_n"
