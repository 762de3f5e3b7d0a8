#!/usr/bin/env bash
# listener_envelope.sh - the listener's answers to envelopes and commands at the edges, each
# one the client can act on: a recipient past what one message may hold is a 452 at RCPT
# (the client sends it later), never a 451 at the end of data that it would retry for ever;
# a parameter the spool could not keep is a 501 at once; a header field written with a space
# before its colon is still a header field; BDAT and NOTIFY arguments are read strictly.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
raw=$(dirname "$0")/lib/smtp_raw.py
shm=/sluice-e2e-lenv-$$

dns_zone test <<'EOF'
*           MX 10 mx.sink
mx.sink     A  127.0.1.22
EOF
dns_start
peer_start sink '{}' 127.0.1.22
lport=$(peer_free_port 127.0.0.1)
{
  ini_global 2
  cat <<INI
dns_server = $DNS_SERVER
smtp_port = $(peer_port sink)
idle_timeout = 1s

[binding "b1"]
bind_address = 127.0.0.2
[binding "b2"]
bind_address = 127.0.0.3

[listener "local"]
address = 127.0.0.1:$lport
binding = b1
binding_header = X-Sluice-Binding
INI
} >"$T/sluice.ini"
"$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
started $!
listening() { python3 -c "import smtplib, sys; smtplib.SMTP('127.0.0.1', $lport).quit()" 2>/dev/null; }
check "the listener answers" wait_for 10 listening

# session PYTHON: run PYTHON with s = an smtplib session after EHLO; what it prints is kept
session() {
  python3 - "$lport" "$1" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("client.test")
exec(sys.argv[2])
try:
    s.quit()
except smtplib.SMTPException:
    pass
PY
}

# --- 257 recipient domains: the 257th is a 452 at RCPT, the 256 are queued and delivered ---
session '
s.mail("many@sender.test")
replies = [s.rcpt("r@d%03d.test" % i) for i in range(257)]
codes = [c for c, m in replies]
print("rcpt", codes.count(250), codes[-1], s.rcpt("again@d000.test")[0])
print("why", replies[-1][1].decode())
print("data", s.data(b"Subject: many domains\r\nX-Test: many\r\n\r\nbody\r\n")[0])
' >"$T/many.out" 2>&1
check "the first 256 domains get 250, the 257th 452 (and another recipient at a domain the message has, 250)" \
  grep -qx "rcpt 256 452 250" "$T/many.out"
check "the message of 256 domains is accepted at the end of data (250, not 451)" \
  grep -qx "data 250" "$T/many.out"
check "the 452 says why" grep -q "^why 4.5.3 Error: too many recipient domains in one message (256)" "$T/many.out"
all_there() { peer_true sink "sum(len(e['rcpt_to']) for e, b in messages() if b'X-Test: many' in b) >= 257"; }
check "all 257 recipients of the 256 domains reach the sink" wait_for 60 all_there

# --- an ENVID or ORCPT the spool cannot keep (8-bit once decoded) is a 501 at once ---
session '
print("envid", s.docmd("MAIL FROM:<a@sender.test> ENVID=+C3+A9")[0])
s.rset()
print("mail", s.docmd("MAIL FROM:<a@sender.test>")[0])
print("orcpt", s.docmd("RCPT TO:<b@d000.test> ORCPT=rfc822;+FF")[0])
' >"$T/dsn8.out" 2>&1
check "ENVID that decodes to 8-bit: 501" grep -qx "envid 501" "$T/dsn8.out"
check "ORCPT that decodes to 8-bit: 501" grep -qx "orcpt 501" "$T/dsn8.out"

# --- an ORCPT with no address is a 501 (a report could name nothing); RCPT once BDAT chunks
# began is a 503 (RFC 3030: the recipients are set) ---
session '
print("mail", s.docmd("MAIL FROM:<a@sender.test>")[0])
print("empty", s.docmd("RCPT TO:<b@d000.test> ORCPT=rfc822;")[0])
print("rcpt", s.docmd("RCPT TO:<b@d000.test>")[0])
s.send(b"BDAT 10\r\nSubject: x")
print("chunk", s.getreply()[0])
print("late", s.docmd("RCPT TO:<c@d000.test>")[0])
print("rset", s.docmd("RSET")[0])
' >"$T/orcpt.out" 2>&1
check "ORCPT=rfc822; (no address): 501" grep -qx "empty 501" "$T/orcpt.out"
check "RCPT after a BDAT chunk: 503 ($(tr '\n' ' ' <"$T/orcpt.out"))" \
  eval 'grep -qx "chunk 250" "$T/orcpt.out" && grep -qx "late 503" "$T/orcpt.out"'

# --- parameters given twice, and NOTIFY lists that are not lists, are 501 ---
session '
print("size", s.docmd("MAIL FROM:<a@sender.test> SIZE=10 SIZE=20")[0])
print("body", s.docmd("MAIL FROM:<a@sender.test> BODY=8BITMIME BODY=7BIT")[0])
print("utf8", s.docmd("MAIL FROM:<a@sender.test> SMTPUTF8 SMTPUTF8")[0])
print("mail", s.docmd("MAIL FROM:<a@sender.test>")[0])
print("comma", s.docmd("RCPT TO:<b@d000.test> NOTIFY=SUCCESS,")[0])
print("never2", s.docmd("RCPT TO:<b@d000.test> NOTIFY=NEVER,NEVER")[0])
print("twice", s.docmd("RCPT TO:<b@d000.test> NOTIFY=FAILURE NOTIFY=DELAY")[0])
print("good", s.docmd("RCPT TO:<b@d000.test> NOTIFY=FAILURE,DELAY")[0])
' >"$T/params.out" 2>&1
check "SIZE twice: 501" grep -qx "size 501" "$T/params.out"
check "BODY twice: 501" grep -qx "body 501" "$T/params.out"
check "SMTPUTF8 twice: 501" grep -qx "utf8 501" "$T/params.out"
check "NOTIFY ending in a comma: 501" grep -qx "comma 501" "$T/params.out"
check "NOTIFY=NEVER,NEVER: 501" grep -qx "never2 501" "$T/params.out"
check "NOTIFY twice on one RCPT: 501" grep -qx "twice 501" "$T/params.out"
check "a good NOTIFY list: 250" grep -qx "good 250" "$T/params.out"

# --- DATA with no MAIL says so ---
session 'print(s.docmd("DATA"))' >"$T/nomail.out" 2>&1
check "DATA before MAIL: 503 ... need MAIL command" grep -q "503, b'5.5.1 Error: need MAIL command'" "$T/nomail.out"

# --- BDAT arguments, inside a transaction (a chunk read with the wrong size or as the last one
# would be queued, or hold the session until its timeout) ---
# bdat_case NAME COMMAND: a transaction, then COMMAND with a chunk; prints NAME and the reply
bdat_case() {
  session "
s.sock.settimeout(5)
s.mail('$1@sender.test'); s.rcpt('r@d001.test')
s.send(b'$2\\r\\nX: y\\r\\n\\r\\nb\\r\\n')
print('$1', s.getreply()[0])
" >"$T/bdat-$1.out" 2>&1
}
bdat_case glued "BDAT 10LAST"
check "BDAT 10LAST (no space before LAST): 501" grep -qx "glued 501" "$T/bdat-glued.out"
bdat_case huge "BDAT 18446744073709551626 LAST"
check "BDAT with a size past 2^64: 501 at once" grep -qx "huge 501" "$T/bdat-huge.out"
session '
s.mail("bdat@sender.test"); s.rcpt("r@d001.test")
body = b"X-Test: bdat-space\r\n\r\nbody\r\n"
s.send(b"BDAT %d LAST \r\n" % len(body) + body)
print("last", s.getreply()[0])
' >"$T/bdat3.out" 2>&1
check "BDAT N LAST with a space at the end: taken (250)" grep -qx "last 250" "$T/bdat3.out"

# --- a binding header with a space before its colon: used, and removed ---
session '
s.sendmail("spaced@sender.test", ["r@d002.test"],
           b"X-Sluice-Binding : b2\r\nSubject: spaced\r\nX-Test: spaced\r\n\r\nbody\r\n")
' >"$T/spaced.out" 2>&1
spaced_there() { peer_true sink "any(b'X-Test: spaced' in b for e, b in messages())"; }
check "the message with 'X-Sluice-Binding : b2' is delivered" wait_for 30 spaced_there
check "through binding b2 (127.0.0.3), as its header said" \
  peer_true sink "source('127.0.0.3')['messages'] >= 1"
check "and without the header" \
  peer_true sink "not any(b'X-Sluice-Binding' in b for e, b in messages() if b'X-Test: spaced' in b)"

check "no listener crashed" test "$(grep -c 'killed by signal\|dumped core' "$T/daemon.log")" -eq 0
echo "1..$_n"
