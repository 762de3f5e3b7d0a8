#!/usr/bin/env bash
# smtputf8.sh - internationalised mail (RFC 6531) end to end: UTF-8 addresses at IDN domains
# submitted over SMTP with SMTPUTF8 (Python's smtplib) and by `sluicectl inject`, routed by
# their A-label through DNS (nsd) and through a [domain] route written in UTF-8, delivered
# with SMTPUTF8 on MAIL FROM to a sink that offers it; to a sink that does not, a bounce with
# 5.6.7 (no downgrade) and the delivery log saying why; without SMTPUTF8 on MAIL, 553 5.6.7.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-smtputf8-$$

# bücher.test and the sender's domain at the sink that offers SMTPUTF8; plain.test at one
# that does not (same sink process, one rule per listening address)
dns_zone test <<'EOF2'
xn--bcher-kva MX 10 mx.utf
sender        MX 10 mx.utf
xn--sndr-loa  MX 10 mx.utf
plain         MX 10 mx.plain
mx.utf        A  127.0.1.41
mx.plain      A  127.0.1.42
EOF2
dns_start
peer_start sink '{"127.0.1.41": {"smtputf8": true}, "127.0.1.42": {"smtputf8": false}}' \
  127.0.1.41 127.0.1.42
port=$(peer_port sink)
lport=$(peer_free_port 127.0.0.1)

cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $port
idle_timeout = 1s
ehlo_hostname = sluice.test

[binding "b1"]
bind_address = 127.0.0.2

; written in UTF-8, matched by the A-label the queue uses
[domain "München.test"]
route = 127.0.1.41:$port
[domain "bücher.test"]
max_outbound_connections = 3

[listener "local"]
address = 127.0.0.1:$lport
binding = b1
INI
check "config check takes [domain] sections written in UTF-8" "$SLUICECTL" -c "$T/sluice.ini" config check
check "a UTF-8 [domain] section answers for its A-label" \
  eval '"$SLUICECTL" -c "$T/sluice.ini" config eval --binding b1 --domain xn--mnchen-3ya.test route | grep -qx "Route = 127.0.1.41:$port"'
check "config eval --domain in UTF-8 finds that section too" \
  eval '"$SLUICECTL" -c "$T/sluice.ini" config eval --binding b1 --domain münchen.test route | grep -qx "Route = 127.0.1.41:$port"'
printf '[global]\nspool_dir = %s\n[domain "bad\xe2\x80\x8fname.test"]\nroute = 127.0.0.1\n' "$T/x" >"$T/bad.ini"
"$SLUICECTL" -c "$T/bad.ini" config check >"$T/bad.out" 2>&1
check "a [domain] name that is no valid IDN is an error at its line" \
  grep -q 'bad.ini:3: bad domain name .*not a valid internationalised domain name' "$T/bad.out"

"$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
daemon=$!
started "$daemon"
listening() { swaks --server 127.0.0.1 --port "$lport" --quit-after EHLO >/dev/null 2>&1; }
check "the listener answers" wait_for 10 listening

# smtp_utf8 FROM TO,TO MARKER [HEADER-LINE]: a message with SMTPUTF8 through the listener
# (and RET=$RET when set)
smtp_utf8() {
  python3 - 127.0.0.1 "$lport" "$@" <<'PY'
import smtplib, sys
host, port, sender, rcpts, marker = sys.argv[1:6]
extra = sys.argv[6] + "\r\n" if len(sys.argv) > 6 else ""
msg = ("Subject: utf8\r\nX-Test: %s\r\n%s\r\nbody %s\r\n" % (marker, extra, marker)).encode()
s = smtplib.SMTP(host, int(port))
s.ehlo("utf8.test")
import os
ret = ["RET=" + os.environ["RET"]] if os.environ.get("RET") else []
s.sendmail(sender, rcpts.split(","), msg, mail_options=["SMTPUTF8"] + ret)
s.quit()
PY
}
msg_with() { peer_true sink "any(b'X-Test: $1' in b for e, b in messages())"; }
env_of() { peer_stat sink "[e for e, b in messages() if b'X-Test: $1' in b][0]$2"; }
utf8_param() { peer_true sink "'SMTPUTF8' in [e for e, b in messages() if b'X-Test: $1' in b][0]['mail_params']"; }

# --- a UTF-8 recipient at an IDN domain, through DNS, with SMTPUTF8 ---
smtp_utf8 'jörg@sender.test' 'ünï@bücher.test,zoë@XN--BCHER-KVA.test' idn-mx >"$T/utf8.out" 2>&1
check "smtplib: the listener queues a UTF-8 envelope sent with SMTPUTF8" [ $? -eq 0 ]
check "the message reaches the sink that offers SMTPUTF8" wait_for 20 msg_with idn-mx
check "MAIL FROM carried SMTPUTF8" utf8_param idn-mx
check "the sender went out as written" eval '[ "$(env_of idn-mx "[\"mail_from\"]")" = "jörg@sender.test" ]'
check "both spellings of bücher.test were one transaction" \
  eval '[ "$(env_of idn-mx "[\"rcpt_to\"]")" = "[\"\\u00fcn\\u00ef@b\\u00fccher.test\", \"zo\\u00eb@XN--BCHER-KVA.test\"]" ]'
check "the delivery log names the domain by its A-label" \
  grep -q '"domain":"xn--bcher-kva.test".*"outcome":"delivered"' "$T/delivery.log"
check "one counter for the domain, keyed by its A-label" \
  eval '"$SLUICECTL" -c "$T/sluice.ini" counters | grep -q "binding_domain *b1 *xn--bcher-kva.test"'
check "no counter under another spelling" \
  eval '! "$SLUICECTL" -c "$T/sluice.ini" counters | grep -qi "bücher"'

"$SLUICECTL" -c "$T/sluice.ini" resolve --binding b1 'Bücher.test' >"$T/resolve.out" 2>&1
check "sluicectl resolve looks a UTF-8 domain up by its A-label" \
  eval 'grep -q "mx.utf.test" "$T/resolve.out" && grep -q "127.0.1.41" "$T/resolve.out"'

# --- sluicectl inject: UTF-8 addresses, routed by a [domain] section written in UTF-8 ---
printf 'Subject: inject\r\nX-Test: inject-route\r\n\r\nbody\r\n' |
  "$SLUICECTL" -c "$T/sluice.ini" inject -f 'jörg@sender.test' 'Ölaf@münchen.test' >"$T/inject.out" 2>&1
check "inject takes UTF-8 addresses" grep -qE '^[0-9A-Za-z]{20}$' "$T/inject.out"
check "the routed message arrives with SMTPUTF8" wait_for 20 msg_with inject-route
check "... on MAIL FROM" utf8_param inject-route
check "the route was found through the A-label" \
  grep -q '"domain":"xn--mnchen-3ya.test","mx":"127.0.1.41".*"outcome":"delivered"' "$T/delivery.log"
printf 'Subject: x\r\n\r\nbody\r\n' |
  "$SLUICECTL" -c "$T/sluice.ini" inject -f 'a@sender.test' $'bad\xff@bücher.test' >"$T/bad_inject.out" 2>&1
rc=$?
check "inject refuses an address that is not well-formed UTF-8" \
  eval '[ $rc -eq 1 ] && grep -q "bad recipient.*not well-formed UTF-8" "$T/bad_inject.out"'

# --- the operator names the domain in either spelling: one domain ---
"$SLUICECTL" -c "$T/sluice.ini" suspend --domain 'BÜCHER.test' --reason utf8 >/dev/null
check "suspend --domain in UTF-8 suspends the A-label" \
  eval '"$SLUICECTL" -c "$T/sluice.ini" suspended | grep -q "xn--bcher-kva.test"'
printf 'Subject: held\r\nX-Test: held-idn\r\n\r\nbody\r\n' |
  "$SLUICECTL" -c "$T/sluice.ini" inject -f 'a@sender.test' 'held@bücher.test' >/dev/null
check "queue --domain in UTF-8 finds the message queued under the A-label" \
  wait_for 10 eval '"$SLUICECTL" -c "$T/sluice.ini" queue --domain bücher.test | grep -q "held@bücher.test"'
check "queue --json gives the UTF-8 address as it is (not one escape per byte)" python3 -c "
import json, subprocess, sys
d = json.loads(subprocess.run(['$SLUICECTL', '-c', '$T/sluice.ini', 'queue', '--json'],
                              capture_output=True, text=True).stdout)
sys.exit(not any(r['address'] == 'held@bücher.test'
                 for m in d['messages'] for p in m['parts'] for r in p['recipients']))"
"$SLUICECTL" -c "$T/sluice.ini" resume --domain xn--bcher-kva.test >/dev/null
check "resumed under the A-label, it is delivered" wait_for 20 msg_with held-idn

# --- a receiver without SMTPUTF8: the recipient bounces with 5.6.7, nothing is sent ---
smtp_utf8 'jörg@sender.test' 'ülrich@plain.test' no-utf8 >/dev/null 2>&1
check "to a receiver without SMTPUTF8 the recipient bounces" \
  wait_for 20 grep -q '"rcpt":\["ülrich@plain.test"\].*"outcome":"bounced"' "$T/delivery.log"
line=$(grep '"rcpt":\["ülrich@plain.test"\]' "$T/delivery.log")
check "the delivery log says why, with 5.6.7" \
  grep -q '"reply":"550 5.6.7 the message needs SMTPUTF8.*does not offer it"' <<<"$line"
check "... in phase mail_from" grep -q '"phase":"mail_from"' <<<"$line"
check "the message never went to that receiver" \
  eval '[ "$(peer_stat sink "dest(\"127.0.1.42\")[\"transactions\"]")" -eq 0 ]'
bounce_to_sender() { peer_true sink "any(e['rcpt_to'] == ['jörg@sender.test'] and b'5.6.7' in b for e, b in messages())"; }
check "the UTF-8 sender gets the report (itself sent with SMTPUTF8)" wait_for 20 bounce_to_sender
b=$(peer_stat sink "[b for e, b in messages() if e['rcpt_to'] == ['jörg@sender.test'] and b'5.6.7' in b][0].decode()")
check "the report is a global delivery status (RFC 6533)" \
  grep -q '^Content-Type: message/global-delivery-status' <<<"$b"
check "... naming the recipient as utf-8" grep -q '^Final-Recipient: utf-8; ülrich@plain.test' <<<"$b"
check "... and the reply as sluice's own (the receiver sent no 5.6.7)" \
  grep -q '^Diagnostic-Code: X-Sluice; 550 5.6.7 the message needs SMTPUTF8' <<<"$b"
check "... and returning the header as message/global-headers" \
  grep -q '^Content-Type: message/global-headers' <<<"$b"
RET=FULL smtp_utf8 'jörg@sender.test' 'ret@plain.test' utf8-full >/dev/null 2>&1
full_report() { peer_true sink "any(e['rcpt_to'] == ['jörg@sender.test'] and b'body utf8-full' in b for e, b in messages())"; }
check "RET=FULL under SMTPUTF8: the whole message comes back" wait_for 20 full_report
b=$(peer_stat sink "[b for e, b in messages() if e['rcpt_to'] == ['jörg@sender.test'] and b'body utf8-full' in b][0].decode()")
check "... as message/global (RFC 6533)" grep -qE $'^Content-Type: message/global\r?$' <<<"$b"

# an ASCII envelope and header under SMTPUTF8 needs nothing: delivered to that receiver
smtp_utf8 'a@sender.test' 'b@plain.test' ascii-utf8 >/dev/null 2>&1
check "SMTPUTF8 with nothing UTF-8 is delivered to a receiver without it" wait_for 20 msg_with ascii-utf8
check "... without the SMTPUTF8 parameter" eval '! utf8_param ascii-utf8'
# a UTF-8 header under SMTPUTF8 does need it
smtp_utf8 'a@sender.test' 'hdr@plain.test' utf8-header 'X-Name: Jürgen' >/dev/null 2>&1
check "a UTF-8 header under SMTPUTF8 bounces at a receiver without it" \
  wait_for 20 grep -q '"rcpt":\["hdr@plain.test"\].*"reply":"550 5.6.7' "$T/delivery.log"
check "SMTPUTF8 never went to a receiver that did not offer it (the sink would count it)" \
  [ "$(peer_stat sink "errors.get('unadvertised_smtputf8', 0)")" -eq 0 ]

# --- without SMTPUTF8 on MAIL: 553 5.6.7 for a UTF-8 address; bad UTF-8 refused with it ---
python3 - 127.0.0.1 "$lport" >"$T/raw.out" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline().decode("utf-8", "replace").rstrip("\r\n")
        lines.append(l)
        if len(l) < 4 or l[3] != "-":
            return lines[-1]
def cmd(c):
    s.sendall(c.encode("utf-8", "surrogateescape") + b"\r\n")
    return reply()
reply()
cmd("EHLO raw.test")
print("mail-utf8-no-param", cmd("MAIL FROM:<jörg@sender.test>"))
print("mail-ascii", cmd("MAIL FROM:<a@sender.test>"))
print("rcpt-utf8-no-param", cmd("RCPT TO:<ünï@bücher.test>"))
cmd("RSET")
print("mail-bad-utf8", cmd("MAIL FROM:<b\udcffd@sender.test> SMTPUTF8"))
print("mail-c1-control", cmd("MAIL FROM:<b\u0085d@sender.test> SMTPUTF8"))
print("mail-utf8", cmd("MAIL FROM:<jörg@sender.test> SMTPUTF8"))
print("rcpt-bad-idn", cmd("RCPT TO:<x@bad\u200fname.test>"))
print("rcpt-utf8", cmd("RCPT TO:<ünï@bücher.test>"))
cmd("QUIT")
PY
r() { sed -n "s/^$1 //p" "$T/raw.out"; }
check "no SMTPUTF8: a UTF-8 sender gets 553 5.6.7" eval '[[ "$(r mail-utf8-no-param)" == "553 5.6.7 "* ]]'
check "no SMTPUTF8: a UTF-8 recipient gets 553 5.6.7" eval '[[ "$(r rcpt-utf8-no-param)" == "553 5.6.7 "* ]]'
check "SMTPUTF8: an address that is not UTF-8 is refused" eval '[[ "$(r mail-bad-utf8)" == "553 5.1.7 "* ]]'
check "SMTPUTF8: a C1 control character is refused" eval '[[ "$(r mail-c1-control)" == "553 5.1.7 "* ]]'
check "SMTPUTF8: a domain that is no valid IDN is refused" eval '[[ "$(r rcpt-bad-idn)" == "553 5.1.3 "* ]]'
check "SMTPUTF8: a UTF-8 sender and recipient are taken" \
  eval '[[ "$(r mail-utf8)" == "250 "* && "$(r rcpt-utf8)" == "250 "* ]]'

kill -TERM "$daemon"
wait "$daemon"
check "sluiced stops (exit 0)" [ $? -eq 0 ]
echo "1..$_n"
