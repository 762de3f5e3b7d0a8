#!/usr/bin/env bash
# listener.sh - mail submitted over SMTP to sluice's listener, end to end, with clients nobody
# here wrote: swaks (plain, STARTTLS, AUTH PLAIN and LOGIN), Postfix's smtp-source (parallel
# sessions), Python's smtplib (DSN parameters) and a private Postfix relaying through
# sluice; and what no honest client sends, byte for byte (tests/e2e/lib/smtp_raw.py): SMTP
# smuggling, commands pipelined before STARTTLS, BDAT chunks, over-long lines.  Every accepted
# message is checked at the sink it is delivered to; every refused one is checked absent.
# Also: `config check` of listener sections, relay refusal, binding_header, Received,
# Message-ID and Date, the spool file a listener writes, max_sessions_per_client.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/postfix.sh"
raw=$(dirname "$0")/lib/smtp_raw.py
shm=/sluice-e2e-listener-$$

# --- config check: listener sections, every error with FILE:LINE ---
cat >"$T/bad.ini" <<EOF
[global]
spool_dir = $T/badspool
[listener "a"]
address = 127.0.0.1:99999
relay_networks = 10.0.0.0/40
max_sessions = 0
binding = nope
tls_cert_file = $T/none.pem
bogus = 1
[listener "b"]
binding_group = g
[listener "a"]
[listener "c"]
address = 127.0.0.1:2525
auth_failure_window = 500ms
max_auth_failures = -1
EOF
cat >>"$T/bad.ini" <<EOF
[listener "w"]
address = 0.0.0.0:2701
[listener "x"]
address = 127.0.0.1:2701
[listener "y"]
address = [::]:2702
[listener "y2"]
address = [::1]:2702
[listener "z"]
address = 0.0.0.0:2702
[listener "z2"]
address = 127.0.0.2:2702
[listener "p1"]
address = 127.0.0.1:2703
[listener "p2"]
address = 127.0.0.2:2703
EOF
port=2601
for n in d e f g h; do # 5 x 1024 sessions: more processes than a reload's board can hold
  printf '[listener "%s"]\naddress = 127.0.0.1:%s\nmax_sessions = 1024\n' "$n" $((port++)) >>"$T/bad.ini"
done
"$SLUICECTL" -c "$T/bad.ini" config check >"$T/check.out" 2>&1
rc=$?
check "config check refuses bad listener sections (exit 1)" [ "$rc" -eq 1 ]
has() { grep -qF -- "$1" "$T/check.out"; }
check "a bad address is reported at its line" has "bad.ini:4: bad value \"127.0.0.1:99999\" for address"
check "a bad relay network is reported at its line" has "bad.ini:5: bad network \"10.0.0.0/40\""
check "max_sessions 0 is reported at its line" has "bad.ini:6: bad value \"0\" for max_sessions"
check "an unknown key is reported at its line" has "bad.ini:9: unknown option \"bogus\" in [listener \"a\"]"
check "an undeclared binding is reported" has "bad.ini:3: [listener \"a\"]: binding \"nope\" is not declared"
check "a certificate without its key is reported" has "tls_cert_file and tls_key_file go together"
check "a listener without address is reported" has "bad.ini:10: [listener \"b\"]: no address"
check "an undeclared binding_group is reported" has "binding_group \"g\" is not declared"
check "a listener defined twice is reported" has "bad.ini:12: listener \"a\" already defined on line 3"
check "an auth_failure_window under a second is reported at its line" \
  has "bad.ini:15: bad value \"500ms\" for auth_failure_window: at least 1s"
check "a negative max_auth_failures is reported at its line" has "bad.ini:16: bad value \"-1\" for max_auth_failures"
check "a wildcard address and another on its port are reported: they cannot both be bound" \
  has "[listener \"x\"]: address 127.0.0.1:2701 and listener \"w\"'s 0.0.0.0:2701 (line"
check "... so in IPv6 ([::] and [::1])" has "[listener \"y2\"]: address [::1]:2702 and listener \"y\""
check "... but an IPv6 wildcard leaves IPv4 alone (its socket is IPv6 only): [::] beside 0.0.0.0" \
  eval '! grep -q "listener \"z\"\]: address 0.0.0.0:2702 and listener \"y\"" "$T/check.out"'
check "... and the IPv4 wildcard still takes 127.0.0.2 on its port" \
  has "[listener \"z2\"]: address 127.0.0.2:2702 and listener \"z\"'s 0.0.0.0:2702"
check "... two addresses on one port, no wildcard, are fine" eval '! grep -q "listener \"p2\"" "$T/check.out"'
check "listeners whose max_sessions add up to over 4096 are reported, once" \
  eval '[ "$(grep -c "max_sessions of the listeners add up to more than 4096" "$T/check.out")" -eq 1 ]'

# --- the peers: DNS, a sink for the destinations, a CA for STARTTLS ---
dns_zone test <<'EOF'
sink        MX 10 mx.sink
sender      MX 10 mx.sink
mx.sink     A  127.0.1.21
EOF
dns_start
peer_start sink '{"rcpt": [{"match": "^nobody@", "reply": "550 5.1.1 no such user"}]}' 127.0.1.21
sport=$(peer_port sink)
. "$(dirname "$0")/lib/ca.sh"
ca_init
ca_issue listener listener.test

lport=$(peer_free_port 127.0.0.1)
aport=$(peer_free_port 127.0.0.1)
v6port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0)); print(s.getsockname()[1])')
while [ "$aport" = "$lport" ]; do aport=$(peer_free_port 127.0.0.1); done
gport=$(peer_free_port 127.0.0.1)
while [ "$gport" = "$lport" ] || [ "$gport" = "$aport" ]; do gport=$(peer_free_port 127.0.0.1); done
iport=$(peer_free_port 127.0.0.1)
while [ "$iport" = "$lport" ] || [ "$iport" = "$aport" ] || [ "$iport" = "$gport" ]; do
  iport=$(peer_free_port 127.0.0.1)
done
echo 'sekret-PW' | "$SLUICECTL" passwd --file "$T/auth" app1
echo 'other-PW' | "$SLUICECTL" passwd --file "$T/auth" app2
check "sluicectl passwd writes USER:argon2id hashes" grep -q '^app1:\$argon2id\$' "$T/auth"

cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $sport
idle_timeout = 1s
ehlo_hostname = sluice.test
max_message_size = 200000

[binding_group "g"]
[binding "b1"]
bind_address = 127.0.0.2
binding_group = g
[binding "b2"]
bind_address = 127.0.0.3
binding_group = g

; applications on this host: loopback may relay
[listener "local"]
address = 127.0.0.1:$lport
binding = b1
binding_header = X-Sluice-Binding
max_sessions = 6
max_recipients = 3
data_timeout = 3s
tls_cert_file = $CA_DIR/listener.crt
tls_key_file = $CA_DIR/listener.key

; the outside: nobody relays without AUTH, which needs STARTTLS
[listener "auth"]
address = 127.0.0.1:$aport
relay_networks = 10.99.0.0/16
max_sessions = 3
max_sessions_per_client = 2
command_timeout = 2s
tls_cert_file = $CA_DIR/listener.crt
tls_key_file = $CA_DIR/listener.key
auth_file = $T/auth

; AUTH from the outside, for the lockout by address (3 failed within 5 minutes)
[listener "guard"]
address = 127.0.0.1:$gport
relay_networks = 10.99.0.0/16, 127.0.0.9/32
max_sessions = 4
tls_cert_file = $CA_DIR/listener.crt
tls_key_file = $CA_DIR/listener.key
auth_file = $T/auth
max_auth_failures = 3
auth_failure_window = 5m

; the same limits, but 127.0.0.5 is trusted here: sluicectl lockouts must not name it
[listener "inside"]
address = 127.0.0.1:$iport
relay_networks = 127.0.0.5/32
max_sessions = 1
tls_cert_file = $CA_DIR/listener.crt
tls_key_file = $CA_DIR/listener.key
auth_file = $T/auth
max_auth_failures = 3
auth_failure_window = 5m

[listener "v6"]
address = [::1]:$v6port
max_sessions = 1
INI
"$SLUICECTL" -c "$T/sluice.ini" config check >"$T/check_ok.out" 2>&1
rc=$?
check "config check accepts the listener sections" [ "$rc" -eq 0 ]
check "config check's summary counts the listeners (5)" \
  grep -q "OK (.*, 5 listeners)" "$T/check_ok.out"

"$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
daemon=$!
started "$daemon"
listening() { swaks --server 127.0.0.1 --port "$1" --quit-after EHLO >/dev/null 2>&1; }
check "both listeners answer" wait_for 10 eval 'listening $lport && listening $aport'
nlisteners() { ps -o args= --ppid "$daemon" | grep -c 'sluiced: listener'; }
check "max_sessions processes per listener are preforked (6 + 3 + 4 + 1 + 1)" wait_for 5 eval '[ "$(nlisteners)" -eq 15 ]'

messages_with() { peer_true sink "sum(1 for e, b in messages() if $1) >= ${2:-1}"; }
count_with() { peer_stat sink "sum(1 for e, b in messages() if $1)"; }

# --- plain submission with swaks, delivered to the sink ---
swaks --server 127.0.0.1 --port "$lport" --from app@sender.test --to r1@sink.test \
  --header 'X-Test: plain' --body 'hello over SMTP' >"$T/swaks1" 2>&1
check "swaks: a plain submission gets 250 queued as ID" grep -q '<-  250 2.0.0 Ok: queued as ' "$T/swaks1"
# queued_line FILE: the daemon's log line for the message swaks' transcript FILE got 250 for
queued_line() {
  local id
  id=$(sed -n 's/.*<[-~]  250 2.0.0 Ok: queued as \([A-Za-z0-9]*\).*/\1/p' "$1" | head -1)
  [ -n "$id" ] && grep -E "^listener [a-z0-9]+\[[0-9]+\]: info: queued $id: " "$T/daemon.log"
}
line=$(queued_line "$T/swaks1")
check "the accepted message is logged at info, one line, with its queue ID ($line)" \
  [ "$(wc -l <<<"$line")" -eq 1 -a -n "$line" ]
check "the queued line names listener, client, sender, recipients, size, DATA, binding, no TLS" \
  eval '[[ $line == *": listener=local client=127.0.0.1 from=<app@sender.test> nrcpt=1 size="[1-9]*" with=DATA binding=b1 tls=no" ]]'
check "the message reaches the sink" wait_for 15 messages_with "b'X-Test: plain' in b"
body() { peer_stat sink "[b for e, b in messages() if $1][0].decode()"; }
b=$(body "b'X-Test: plain' in b")
check "a Received header names the client and the listener" \
  grep -q 'Received: from .*(\[127.0.0.1\])' <<<"$b"
check "delivered through the listener's binding (b1: 127.0.0.2)" \
  peer_true sink "[e for e, b in messages() if b'X-Test: plain' in b][0]['src'] == '127.0.0.2'"

# Date and Message-ID are added when the message has none, kept when it has them.
printf 'Subject: bare\r\nX-Test: bare\r\n\r\nno date, no id\r\n' >"$T/bare.eml"
swaks --server 127.0.0.1 --port "$lport" --from app@sender.test --to r2@sink.test \
  --data "$T/bare.eml" >/dev/null 2>&1
check "a message without Date and Message-ID arrives" wait_for 15 messages_with "b'X-Test: bare' in b"
b=$(body "b'X-Test: bare' in b")
check "Date is added" grep -q '^Date: ' <<<"$b"
check "Message-ID is added" grep -q '^Message-ID: <.*@sluice.test>' <<<"$b"
b=$(body "b'X-Test: plain' in b")
check "swaks' own Message-Id is kept, none added" [ "$(grep -ci '^Message-ID:' <<<"$b")" -eq 1 ]

# A message that starts with text, no header field: the fields added in front of it are
# followed by a blank line, so its first line stays body (else it is a broken header line).
# smtplib_send HOST PORT RCPT TEXT: one message from app@sender.test by Python's smtplib, TEXT
# with its \r\n written as escapes
smtplib_send() {
  python3 -c 'import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
s.sendmail("app@sender.test", [sys.argv[3]], sys.argv[4].encode().decode("unicode_escape"))
s.quit()' "$@"
}
smtplib_send 127.0.0.1 "$lport" headless@sink.test 'Hello, no header here\r\nsecond line\r\n'
check "a message with no header arrives" wait_for 15 messages_with "b'Hello, no header here' in b"
b=$(body "b'Hello, no header here' in b")
check "its text follows a blank line after the fields sluice added" \
  python3 -c 'import sys; h, sep, rest = sys.argv[1].partition("\r\n\r\n"); sys.exit(not (sep and rest.startswith("Hello, no header here") and "Message-ID:" in h))' "$b"

# A message that has passed more than 100 hops is looping: refused with 554 5.4.6.
python3 - "$lport" "$T/loop.out" <<'PY'
import smtplib, sys
hops = "".join("Received: from h%d.example by h%d.example; Thu, 3 Dec 2026 00:00:00 +0000\r\n"
               % (i, i + 1) for i in range(101))
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
try:
    s.sendmail("app@sender.test", ["loop@sink.test"], hops + "Subject: loop\r\n\r\nround\r\n")
    out = "accepted"
except smtplib.SMTPDataError as e:
    out = "%d %s" % (e.smtp_code, e.smtp_error.decode())
s.quit()
open(sys.argv[2], "w").write(out)
PY
check "a message with 101 Received fields is refused: 554 5.4.6 ($(cat "$T/loop.out"))" \
  grep -q '^554 5.4.6' "$T/loop.out"
python3 - "$lport" <<'PY'
import smtplib, sys
hops = "".join("Received: from h%d.example by h%d.example; Thu, 3 Dec 2026 00:00:00 +0000\r\n"
               % (i, i + 1) for i in range(100))
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.sendmail("app@sender.test", ["hops@sink.test"], hops + "X-Test: hops100\r\n\r\nround\r\n")
s.quit()
PY
check "one with 100 is delivered" wait_for 15 messages_with "b'X-Test: hops100' in b"

# binding_header picks the binding per message and is removed before delivery.
swaks --server 127.0.0.1 --port "$lport" --from app@sender.test --to r3@sink.test \
  --header 'X-Test: bh' --header 'X-Sluice-Binding: b2' --header 'X-Sluice-Binding: b1' \
  >/dev/null 2>&1
check "binding_header: the message reaches the sink" wait_for 15 messages_with "b'X-Test: bh' in b"
check "binding_header: delivered through binding b2 (127.0.0.3)" \
  peer_true sink "[e for e, b in messages() if b'X-Test: bh' in b][0]['src'] == '127.0.0.3'"
check "binding_header: the first one counts, every one is removed" \
  peer_true sink "b'X-Sluice-Binding' not in [b for e, b in messages() if b'X-Test: bh' in b][0]"
swaks --server 127.0.0.1 --port "$lport" --from app@sender.test --to r3@sink.test \
  --header 'X-Test: bh-group' --header 'X-Sluice-Binding: g' >"$T/swaks_bhg" 2>&1
line=$(queued_line "$T/swaks_bhg")
check "binding_header naming a group: the queued line gives the binding drawn and its group" \
  eval '[[ $line == *" binding=b"[12]" binding_group=g tls=no" ]]'
swaks --server 127.0.0.1 --port "$lport" --from app@sender.test --to r3@sink.test \
  --header 'X-Sluice-Binding: nosuch' >"$T/swaks_bh" 2>&1
check "binding_header naming no binding is refused with 554 5.7.0" grep -q '<\*\* *554 5.7.0' "$T/swaks_bh"
check "and the refusal is logged with the client and the name" \
  grep -q 'info: 127.0.0.1: message refused: X-Sluice-Binding names no binding or binding group: nosuch' "$T/daemon.log"

# max_recipients: the fourth RCPT gets 452, the message goes to the first three.
swaks --server 127.0.0.1 --port "$lport" --from app@sender.test \
  --to m1@sink.test,m2@sink.test,m3@sink.test,m4@sink.test --header 'X-Test: maxrcpt' \
  >"$T/swaks_max" 2>&1
check "max_recipients: the 4th recipient gets 452 4.5.3" grep -q '452 4.5.3' "$T/swaks_max"
line=$(queued_line "$T/swaks_max")
check "the queued line counts the 3 recipients taken" eval '[[ $line == *" nrcpt=3 "* ]]'

# IPv6: a listener on [::1], loopback relays there too.
smtplib_send ::1 "$v6port" v6@sink.test 'Subject: v6\r\nX-Test: v6\r\n\r\nover IPv6\r\n'
check "a message over IPv6 ([::1]) reaches the sink" wait_for 15 messages_with "b'X-Test: v6' in b"
b=$(body "b'X-Test: v6' in b")
check "its Received header names the IPv6 client as an IPv6 literal (RFC 5321 4.1.3)" \
  grep -q 'Received: from .*(\[IPv6:::1\])' <<<"$b"

# --- relay control: outside relay_networks without AUTH: 5.7.1, nothing queued ---
swaks --server 127.0.0.1 --port "$aport" --from app@sender.test --to r4@sink.test \
  --header 'X-Test: relay' >"$T/swaks_relay" 2>&1
check "a client outside relay_networks gets 554 5.7.1 at RCPT" \
  grep -q '<\*\* *554 5.7.1 <r4@sink.test>: Relay access denied' "$T/swaks_relay"
check "the relay refusal is logged at info with the client and the recipient" \
  grep -q '^listener auth\[[0-9]*\]: info: 127.0.0.1: relay refused for <r4@sink.test>$' "$T/daemon.log"
swaks --server 127.0.0.1 --port "$aport" --from app@sender.test --to r4@sink.test \
  -a PLAIN -au app1 -ap sekret-PW >"$T/swaks_noauth" 2>&1
check "AUTH is not offered before STARTTLS" grep -q 'Host did not advertise authentication' "$T/swaks_noauth"

# --- STARTTLS and AUTH with swaks ---
swaks --server 127.0.0.1 --port "$aport" --from app@sender.test --to r5@sink.test -tls \
  -a PLAIN -au app1 -ap sekret-PW --header 'X-Test: authplain' >"$T/swaks_plain" 2>&1
check "STARTTLS + AUTH PLAIN: 235, then 250 queued" \
  eval "grep -q '235 2.7.0' $T/swaks_plain && grep -q '250 2.0.0 Ok: queued' $T/swaks_plain"
swaks --server 127.0.0.1 --port "$aport" --from app@sender.test --to r6@sink.test -tls \
  -a LOGIN -au app2 -ap other-PW --header 'X-Test: authlogin' >"$T/swaks_login" 2>&1
check "STARTTLS + AUTH LOGIN: 250 queued" grep -q '250 2.0.0 Ok: queued' "$T/swaks_login"
swaks --server 127.0.0.1 --port "$aport" --from app@sender.test --to r7@sink.test -tls \
  -a PLAIN -au app1 -ap wrong --header 'X-Test: authbad' >"$T/swaks_bad" 2>&1
check "a wrong password gets 535 5.7.8" grep -q '535 5.7.8' "$T/swaks_bad"
check "authenticated mail reaches the sink (PLAIN and LOGIN)" \
  wait_for 15 eval 'messages_with "b\"X-Test: authplain\" in b" && messages_with "b\"X-Test: authlogin\" in b"'
b=$(body "b'X-Test: authplain' in b")
check "Received says ESMTPSA (TLS and AUTH)" grep -q 'with ESMTPSA' <<<"$b"
line=$(queued_line "$T/swaks_plain")
check "the queued line names the AUTH user and the TLS version ($line)" \
  eval '[[ $line == *": listener=auth client=127.0.0.1 user=app1 from=<app@sender.test> nrcpt=1 size="*" binding=default tls=TLSv1."[0-9] ]]'
check "no password is ever logged" eval '! grep -q "sekret-PW\|other-PW" $T/daemon.log'
swaks --server 127.0.0.1 --port "$lport" --from app@sender.test --to r8@sink.test -tls \
  --header 'X-Test: tlsonly' >"$T/swaks_tls" 2>&1
check "STARTTLS on the loopback listener: 250 queued" grep -q '250 2.0.0 Ok: queued' "$T/swaks_tls"

# A new password counts once sluiced is reloaded (the new listener processes read it).
echo 'renewed-PW' | "$SLUICECTL" passwd --file "$T/auth" app1
kill -HUP "$daemon"
auth_ok() {
  swaks --server 127.0.0.1 --port "$aport" --from app@sender.test --to r10@sink.test -tls \
    -a PLAIN -au app1 -ap renewed-PW --header 'X-Test: renewed' 2>&1 | grep -q '235 2.7.0'
}
check "after sluicectl passwd and SIGHUP, the new password is accepted" wait_for 10 auth_ok
swaks --server 127.0.0.1 --port "$aport" --from app@sender.test --to r7@sink.test -tls \
  -a PLAIN -au app1 -ap sekret-PW >"$T/swaks_old" 2>&1
check "and the old one is refused" grep -q '535 5.7.8' "$T/swaks_old"

# --- SMTP smuggling: <LF>.<LF>, <CR>.<CR> and <CRLF>.<LF> never end a message ---
for c in smuggle-lf smuggle-cr smuggle-crlf-lf; do
  python3 "$raw" 127.0.0.1 "$lport" "$c" >"$T/$c.out" 2>&1
  check "$c: the message is refused with 554 5.6.0" grep -q '^554 5.6.0' "$T/$c.out"
  check "$c: only one 354 (the smuggled DATA was never a command)" [ "$(grep -c '^354' "$T/$c.out")" -eq 1 ]
done
check "each smuggling refusal is logged at info with the client (3)" \
  [ "$(grep -c 'info: 127.0.0.1: message refused: bare CR or LF' "$T/daemon.log")" -eq 3 ]
python3 "$raw" 127.0.0.1 "$lport" longline >"$T/longline.out" 2>&1
check "a body line over 998 octets is refused with 554 5.6.0" grep -q '^554 5.6.0.*998' "$T/longline.out"
python3 "$raw" 127.0.0.1 "$lport" longcmd 2048 >"$T/longcmd.out" 2>&1
check "a command of 2,048 characters is taken (250 to its NOOP)" \
  eval "tail -2 '$T/longcmd.out' | head -1 | grep -q '^250 '"
python3 "$raw" 127.0.0.1 "$lport" longcmd 2049 >"$T/longcmd.out" 2>&1
check "one of 2,049 is refused as too long" grep -q '^500 5.5.2 Error: line too long' "$T/longcmd.out"
python3 "$raw" 127.0.0.1 "$lport" longcmd 2049 lf >"$T/longcmd.out" 2>&1
check "and so is one of 2,049 ended by a bare LF" \
  grep -q '^500 5.5.2 Error: line too long' "$T/longcmd.out"

# --- STARTTLS command injection: what was pipelined after STARTTLS is dropped ---
python3 "$raw" 127.0.0.1 "$lport" starttls-inject >"$T/inject.out" 2>&1
check "starttls-inject: the handshake is done" grep -qx TLS "$T/inject.out"
check "starttls-inject: the first reply under TLS is EHLO's, not the injected RSET's" \
  [ "$(sed -n '/^TLS$/{n;p}' "$T/inject.out")" = "250-sluice.test" ]

# --- BDAT (CHUNKING): two chunks, the second LAST ---
python3 "$raw" 127.0.0.1 "$lport" bdat app@sender.test r9@sink.test >"$T/bdat.out" 2>&1
check "BDAT: the first chunk is acknowledged, the last queued" \
  eval "grep -q '^250 2.0.0 .* octets received' $T/bdat.out && grep -q '^250 2.0.0 Ok: queued' $T/bdat.out"
check "BDAT: the message reaches the sink whole" \
  wait_for 15 messages_with "b'X-Test: bdat' in b and b'second chunk' in b"
bdat_id=$(sed -n 's/^250 2.0.0 Ok: queued as \([A-Za-z0-9]*\).*/\1/p' "$T/bdat.out" | head -1)
check "BDAT: its queued line says with=BDAT" \
  grep -qE "info: queued ${bdat_id:-none}: .* with=BDAT binding=" "$T/daemon.log"

# --- DSN parameters (Python's smtplib): ENVID/ORCPT in the bounce, NOTIFY=NEVER none ---
python3 - 127.0.0.1 "$lport" <<'PY'
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
s.ehlo("dsn.test")
s.sendmail("dsn-sender@sender.test", ["nobody@sink.test"],
           "Subject: dsn\r\nX-Test: dsn-failure\r\n\r\nbody\r\n",
           mail_options=["RET=HDRS", "ENVID=env+2Bid-42"],
           rcpt_options=["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;original+40example.org"])
s.sendmail("dsn-never@sender.test", ["nobody@sink.test"],
           "Subject: dsn\r\nX-Test: dsn-never\r\n\r\nbody\r\n",
           rcpt_options=["NOTIFY=NEVER"])
s.quit()
PY
check "the bounce (NOTIFY=FAILURE) reaches the sender" \
  wait_for 20 messages_with "e['rcpt_to'] == ['dsn-sender@sender.test']"
b=$(peer_stat sink "[b for e, b in messages() if e['rcpt_to'] == ['dsn-sender@sender.test']][0].decode()")
check "the bounce gives ENVID back as Original-Envelope-Id" grep -q '^Original-Envelope-Id: env+id-42' <<<"$b"
check "the bounce gives ORCPT back as Original-Recipient" grep -q '^Original-Recipient: rfc822;original@example.org' <<<"$b"
check "both messages were tried and bounced" \
  wait_for 10 eval '[ "$(grep -c "\"rcpt\":\[\"nobody@sink.test\"\].*\"outcome\":\"bounced\"" $T/delivery.log)" -ge 2 ]'
sleep 2
check "NOTIFY=NEVER: no bounce to its sender" [ "$(count_with "e['rcpt_to'] == ['dsn-never@sender.test']")" -eq 0 ]

# --- sluicectl bounce honours NOTIFY too: a report for the default, none for NOTIFY=NEVER ---
"$SLUICECTL" -c "$T/sluice.ini" suspend --domain opbounce.test --reason "held for bounce" >/dev/null
python3 - 127.0.0.1 "$lport" <<'PY'
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
s.ehlo("dsn.test")
s.sendmail("op-default@sender.test", ["x@opbounce.test"], "Subject: op\r\n\r\nbody\r\n")
s.sendmail("op-never@sender.test", ["y@opbounce.test"], "Subject: op\r\n\r\nbody\r\n",
           rcpt_options=["NOTIFY=NEVER"])
s.quit()
PY
"$SLUICECTL" -c "$T/sluice.ini" bounce --domain opbounce.test --reason "by the test" >"$T/opbounce.out" 2>&1
check "operator bounce: the sender who did not say NOTIFY gets a report" \
  wait_for 20 messages_with "e['rcpt_to'] == ['op-default@sender.test']"
sleep 2
check "operator bounce: NOTIFY=NEVER gets none" \
  [ "$(count_with "e['rcpt_to'] == ['op-never@sender.test']")" -eq 0 ]
"$SLUICECTL" -c "$T/sluice.ini" resume --domain opbounce.test >/dev/null

# --- max_message_size: a body over it gets 552 5.3.4 and nothing is queued ---
python3 -c "import sys; sys.stdout.write(('y' * 76 + '\n') * 4000)" >"$T/big.txt"
swaks --server 127.0.0.1 --port "$lport" --from app@sender.test --to big@sink.test \
  --header 'X-Test: big' --body "$T/big.txt" >"$T/swaks_big" 2>&1
check "a message over max_message_size gets 552 5.3.4" grep -q '<\*\* *552 5.3.4' "$T/swaks_big"
check "the oversize refusal is logged at info with the client and the limit" \
  grep -q 'info: 127.0.0.1: message refused: larger than max_message_size (200000 bytes)' "$T/daemon.log"
# The limit is on the message as SIZE= declares it (RFC 1870), without the dots of the
# stuffing: 66,500 lines of ".." are 199,514 octets unstuffed (limit 200,000), 266,000 as sent.
stuffed() { # LINES: the reply to the end of a body of LINES dot-stuffed lines ("..")
  python3 - "$lport" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline().decode()
        if line[3:4] != "-":
            return line.strip()
reply()
n = int(sys.argv[2])
for cmd in ("EHLO c", "MAIL FROM:<a@sender.test> SIZE=%d" % min(14 + 3 * n, 200000), "RCPT TO:<dots@sink.test>",
            "DATA"):
    s.sendall(cmd.encode() + b"\r\n")
    reply()
s.sendall(b"Subject: a\r\n\r\n" + b"..\r\n" * n + b".\r\n")
print(reply())
s.sendall(b"QUIT\r\n")
PY
}
out=$(stuffed 66500)
check "a body within max_message_size once unstuffed is taken, however many dots ($out)" \
  eval '[[ $out == "250 2.0.0 "* ]]'
out=$(stuffed 66663)
check "one over it by the unstuffed count gets 552 5.3.4 ($out)" eval '[[ $out == "552 5.3.4"* ]]'
exec 6<>/dev/tcp/127.0.0.1/"$lport"
printf 'EHLO c\r\nMAIL FROM:<a@sender.test> SIZE=999999999\r\nQUIT\r\n' >&6
sizeout=$(timeout 5 cat <&6)
exec 6>&-
check "MAIL with SIZE= over max_message_size gets 552 5.3.4" grep -q '^552 5.3.4' <<<"$sizeout"
check "and is logged at info with the client and the limit" \
  grep -q 'info: 127.0.0.1: refused: SIZE=999999999 over max_message_size (200000 bytes)' "$T/daemon.log"

# --- per-command timeouts (auth listener: command_timeout 2s; local: data_timeout 3s) ---
idle_session() { # PORT STEPS: the last reply of a session that says STEPS then falls silent
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
if sys.argv[2]:
    s.sendall(sys.argv[2].encode().replace(b"|", b"\r\n"))
t0, out = time.time(), b""
while True:
    d = s.recv(4096)
    if not d:
        break
    out += d
print(out.decode(errors="replace").splitlines()[-1], "after %.1f s" % (time.time() - t0))
PY
}
out=$(idle_session "$aport" "")
check "a silent client gets 421 4.4.2 after command_timeout ($out)" \
  eval '[[ $out == "421 4.4.2"*"after "[2-4]* ]]'
out=$(idle_session "$aport" "EHLO c|MAIL FROM:<a@sender.test>|RCPT TO:<r@example.test>|")
check "a refused RCPT, then silence: 421 after command_timeout ($out)" eval '[[ $out == "421 4.4.2"* ]]'
out=$(idle_session "$lport" "EHLO c|MAIL FROM:<a@sender.test>|RCPT TO:<stall@sink.test>|DATA|X-Test: stall||half a body|")
check "a body that stops: 421 4.4.2 after data_timeout ($out)" \
  eval '[[ $out == "421 4.4.2"*"after "[3-5]* ]]'

# AUTH after STARTTLS, byte by byte: each LINE sent in turn ("": send nothing, just wait) and
# its reply printed, " / " between them, with the seconds the last one took; then QUIT, so the
# session is over at the listener too before the next test counts sessions
tls_auth_replies() { # PORT LINE... (the client's address: $SRC, else 127.0.0.1)
  PYTHONPATH="$(dirname "$0")/lib" python3 - "$@" <<'PY'
import os, sys, time
from tls_session import Session
s = Session(int(sys.argv[1]), os.environ.get("SRC", "127.0.0.1"))
out = []
for line in sys.argv[2:]:
    t0 = time.time()
    out.append(s.say(line))
print(" / ".join(out), "after %.1f s" % (time.time() - t0))
s.quit()
PY
}
# AUTH LOGIN, then silence at the password prompt: a timeout (421), not a failed AUTH (535)
out=$(tls_auth_replies "$aport" "AUTH LOGIN dXNlcg==" "")
check "AUTH with no answer to its challenge: 421 4.4.2 after command_timeout, not 535 ($out)" \
  eval '[[ $out == "334 "*" / 421 4.4.2"*"after "[2-4]"."[0-9]" s" ]]'
for steps in "AUTH LOGIN|*" "AUTH LOGIN dXNlcg==|*" "AUTH PLAIN|*"; do
  IFS='|' read -r -a step <<<"$steps"
  out=$(tls_auth_replies "$aport" "${step[@]}")
  check "AUTH cancelled with \"*\" after ${step[0]}: 501, not 535 ($out) (RFC 4954 4)" \
    eval '[[ $out == "334"*" / 501 5.7.0"* ]]'
done
out=$(tls_auth_replies "$aport" "AUTH PLAIN not*base64" "NOOP")
check "an AUTH answer that is not base64: 501 5.5.2, not 535, and the session goes on ($out)" \
  eval '[[ $out == "501 5.5.2"*" / 250 "* ]]'
out=$(tls_auth_replies "$aport" "AUTH PLAIN $(printf 'QUFB%.0s' $(seq 350))")
check "valid base64 that decodes past the buffer: 500 5.5.6 (${out:0:60}) (RFC 4954 6)" \
  eval '[[ $out == "500 5.5.6"* ]]'
out=$(tls_auth_replies "$aport" "AUTH LOGIN" "$(printf '%01500d' 0)")
check "an AUTH answer over the line limit: 500 5.5.6 (${out:0:60}) (RFC 4954 6)" \
  eval '[[ $out == "334"*" / 500 5.5.6"* ]]'
check "neither the silent nor the cancelled AUTH is logged as a failed one" \
  eval '! grep -q "authentication failed for \"\(user\)\?\"" $T/daemon.log'
check "and the AUTH silence is logged as a timeout, not as a failed AUTH" \
  grep -q '^listener auth\[[0-9]*\]: info: 127.0.0.1: timeout waiting for an AUTH answer$' "$T/daemon.log"
# (after the checks of the log above: this one is a failed AUTH, of user "")
out=$(SRC=127.0.0.8 tls_auth_replies "$aport" "AUTH" "AUTH " "NOOP")
check "AUTH with no mechanism: 501, a syntax error (RFC 4954 4), the session goes on ($out)" \
  eval '[[ $out == "501 5.5.4"*" / 501 5.5.4"*" / 250 "* ]]'
out=$(tls_auth_replies "$aport" "AUTH PLAIN =")
check "AUTH PLAIN = is an empty initial response, not a request for a challenge ($out)" \
  eval '[[ $out == "535 5.7.8"* ]]'
# A user name that is nobody's is refused no sooner than a wrong password: its password is
# hashed too (Argon2, tens of milliseconds), so the time of a 535 does not tell a client which
# names exist.  A lower bound only: a busy machine makes it longer, never shorter.
out=$(PYTHONPATH="$(dirname "$0")/lib" python3 - "$aport" <<'PY'
import base64, sys, time
from tls_session import Session
s = Session(int(sys.argv[1]), "127.0.0.7")
plain = base64.b64encode(b"\0nosuchuser\0guess").decode()
t0 = time.monotonic()
r = s.say("AUTH PLAIN " + plain)
print(r[:9], int((time.monotonic() - t0) * 1000))
s.quit()
PY
)
check "an unknown user's AUTH takes a password hash's time before its 535 ($out ms)" \
  eval '[[ $out == "535 5.7.8 "* ]] && [ "${out##* }" -ge 10 ]'

# --- max_auth_failures (3 within 5 minutes on the guard listener), by client address ---
good=$(printf '\0app1\0renewed-PW' | base64 -w0)
bad=$(printf '\0app1\0guess' | base64 -w0)
# Session A from 127.0.0.5 fails 3 times and stays open, so session B from the same address is
# served by another process: the count is shared, not per process.
out=$(PYTHONPATH="$(dirname "$0")/lib" python3 - "$gport" "$bad" "$good" <<'PY'
import sys
from tls_session import Session
port, bad, good = int(sys.argv[1]), sys.argv[2], sys.argv[3]
a = Session(port, "127.0.0.5")
out = [a.say("AUTH PLAIN " + bad) for _ in range(3)]
b = Session(port, "127.0.0.5")
out.append(b.say("AUTH PLAIN " + good))
out += [a.say("QUIT"), b.say("QUIT")]
print(" / ".join(out))
PY
)
check "3 failed AUTH from one address; then, from another process, the right password gets 454 4.7.0 ($out)" \
  eval '[[ $out == "535 "*" / 535 "*" / 535 "*" / 454 4.7.0 "*" / 221 "*" / 221 "* ]]'
failed_pid=$(sed -n 's/^listener guard\[\([0-9]*\)\]: info: 127.0.0.5: authentication failed .*/\1/p' "$T/daemon.log" | sort -u)
refused_pid=$(sed -n 's/^listener guard\[\([0-9]*\)\]: info: 127.0.0.5: AUTH refused: .*/\1/p' "$T/daemon.log" | sort -u)
check "the failures and the refusal were in two processes ($failed_pid, $refused_pid), the refusal logged once" \
  eval '[ -n "$failed_pid" ] && [ -n "$refused_pid" ] && [ "$failed_pid" != "$refused_pid" ] && [ "$(grep -c "127.0.0.5: AUTH refused: 3 failed from this address within auth_failure_window (max_auth_failures 3)$" "$T/daemon.log")" -eq 1 ]'
out=$(SRC=127.0.0.6 tls_auth_replies "$gport" "AUTH PLAIN $good")
check "another address is not locked out ($out)" eval '[[ $out == "235 "* ]]'
# the lockout outlives a reload: the new processes see the same table
old_guard=$(ps -o pid=,args= --ppid "$daemon" | awk '/listener guard/ {print $1}')
kill -HUP "$daemon"
guard_renewed() {
  local p
  for p in $old_guard; do alive "$p" && return 1; done
  [ "$(ps -o args= --ppid "$daemon" | grep -c 'sluiced: listener guard')" -eq 4 ]
}
check "SIGHUP replaces the guard listener's processes" wait_for 10 guard_renewed
out=$(SRC=127.0.0.5 tls_auth_replies "$gport" "AUTH PLAIN $good")
check "after the reload, the address is still locked out ($out)" eval '[[ $out == "454 4.7.0 "* ]]'
# the operator's view, and unlock
"$SLUICECTL" -c "$T/sluice.ini" lockouts >"$T/lockouts" 2>&1
check "sluicectl lockouts: 127.0.0.5, 3 failures in a 5m window, locked at guard alone, not at inside, which trusts it ($(grep 127.0.0.5 "$T/lockouts"))" \
  grep -qE '^127\.0\.0\.5 +3  5m +[0-9]{4}-[0-9-]+T[0-9:]+Z  guard$' "$T/lockouts"
check "sluicectl lockouts: an address whose AUTH succeeded has nothing counted" \
  eval '! grep -q "^127\.0\.0\.6 " "$T/lockouts"'
"$SLUICECTL" -c "$T/sluice.ini" lockouts --json >"$T/lockouts.json" 2>&1
check "sluicectl lockouts --json: the same address, failures and listener" python3 -c '
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if r["address"] == "127.0.0.5"]
assert len(rows) == 1 and rows[0]["failures"] == 3 and rows[0]["locked_at"] == ["guard"], rows
assert rows[0]["window_seconds"] == 300 and 0 <= rows[0]["age_seconds"] < 300, rows
' "$T/lockouts.json"
"$SLUICECTL" -c "$T/sluice.ini" unlock 127.0.0.5 >"$T/unlock" 2>&1
rc=$?
check "sluicectl unlock 127.0.0.5: exit 0, its 3 failures forgotten ($(cat "$T/unlock"))" \
  eval '[ "$rc" -eq 0 ] && grep -qx "127.0.0.5: 3 failed AUTH forgotten" "$T/unlock"'
out=$(SRC=127.0.0.5 tls_auth_replies "$gport" "AUTH PLAIN $good")
check "once unlocked, the address authenticates at once, well within its window ($out)" \
  eval '[[ $out == "235 "* ]]'
"$SLUICECTL" -c "$T/sluice.ini" unlock 127.0.0.5 >"$T/unlock2" 2>&1
rc=$?
check "sluicectl unlock of an address with nothing counted: exit 1, said so" \
  eval '[ "$rc" -eq 1 ] && grep -q "127.0.0.5: no failed AUTH is counted" "$T/unlock2"'
"$SLUICECTL" -c "$T/sluice.ini" unlock 127.0.0.300 >"$T/unlock3" 2>&1
rc=$?
check "sluicectl unlock of what is not an address: exit 1, said so" \
  eval '[ "$rc" -eq 1 ] && grep -q "not an IPv4 or IPv6 address: 127.0.0.300" "$T/unlock3"'
for a in 2001:db8::7 2001:db8::/64; do
  "$SLUICECTL" -c "$T/sluice.ini" unlock "$a" >"$T/unlock4" 2>&1
  rc=$?
  check "sluicectl unlock $a (an IPv6 address, or its /64): taken as an address, nothing counted" \
    eval '[ "$rc" -eq 1 ] && grep -q "no failed AUTH is counted" "$T/unlock4"'
done
for a in 127.0.0.5/32 2001:db8::/48 2001:db8::/064; do
  "$SLUICECTL" -c "$T/sluice.ini" unlock "$a" >"$T/unlock5" 2>&1
  rc=$?
  check "sluicectl unlock $a (a block other than an IPv6 /64): not an address" \
    eval '[ "$rc" -eq 1 ] && grep -q "not an IPv4 or IPv6 address" "$T/unlock5"'
done
out=$(SRC=127.0.0.5 tls_auth_replies "$gport" "AUTH PLAIN $bad" "AUTH PLAIN $bad" "AUTH PLAIN $good")
out2=$(SRC=127.0.0.5 tls_auth_replies "$gport" "AUTH PLAIN $bad" "AUTH PLAIN $good")
check "a success neither counts nor clears (2 failed, 235; then the 3rd failure locks: 454) ($out; $out2)" \
  eval '[[ $out == "535 "*" / 535 "*" / 235 "* && $out2 == "535 "*" / 454 4.7.0 "* ]]'
# Sessions waiting at a prompt check nothing, so they hold no count: 3 of them from 127.0.0.8
# sit at AUTH LOGIN's password prompt while a 4th, from the same address, logs in.
out=$(PYTHONPATH="$(dirname "$0")/lib" python3 - "$gport" "$good" <<'PY'
import sys
from tls_session import Session
port, good = int(sys.argv[1]), sys.argv[2]
waiting = [Session(port, "127.0.0.8") for _ in range(3)]
out = [w.say("AUTH LOGIN YXBwMQ==") for w in waiting]  # the user, then the password prompt
out.append(Session(port, "127.0.0.8").say("AUTH PLAIN " + good))
out += [w.say("*") for w in waiting]
print(" / ".join(out))
PY
)
check "3 sessions waiting at a password prompt do not lock their address out: the 4th logs in ($out)" \
  eval '[[ $out == "334 "*" / 334 "*" / 334 "*" / 235 "*" / 501 "*" / 501 "*" / 501 "* ]]'
out=$(SRC=127.0.0.9 tls_auth_replies "$gport" "AUTH PLAIN $bad" "AUTH PLAIN $bad" "AUTH PLAIN $bad" "AUTH PLAIN $bad" "AUTH PLAIN $good")
check "a client in relay_networks is not counted: 4 failures, then 235 ($out)" \
  eval '[[ $out == "535 "*" / 535 "*" / 535 "*" / 535 "*" / 235 "* ]]'
out=$(SRC=127.0.0.6 tls_auth_replies "$gport" "AUTH PLAIN" "*" "AUTH PLAIN not*base64" "AUTH PLAIN $bad" "AUTH PLAIN $bad" "AUTH PLAIN $good")
check "cancelled and undecodable AUTH do not count: 2 failures after them do not lock ($out)" \
  eval '[[ $out == "334"*" / 501 5.7.0"*" / 501 5.5.2"*" / 535 "*" / 535 "*" / 235 "* ]]'

# --- max_sessions_per_client (2 on the auth listener) ---
exec 7<>/dev/tcp/127.0.0.1/"$aport"
exec 8<>/dev/tcp/127.0.0.1/"$aport"
read -r -t 5 g7 <&7
read -r -t 5 g8 <&8
exec 9<>/dev/tcp/127.0.0.1/"$aport"
read -r -t 5 g9 <&9
check "two sessions from one client are greeted" eval '[[ $g7 == 220* && $g8 == 220* ]]'
check "a third from the same client gets 421 4.7.0" eval '[[ $g9 == "421 4.7.0"* ]]'
exec 7>&- 8>&- 9>&-

# --- sessions open, as sluicectl metrics shows them (the master counts them once a second;
# the local listener's command_timeout is the default 5 minutes: these sessions stay) ---
metric() { "$SLUICECTL" -c "$T/sluice.ini" metrics | awk -v k="$1" '$1 == k {print $2}'; }
open_at() { metric "sluice_listener_sessions_open{listener=\"$1\"}"; }
exec 7<>/dev/tcp/127.0.0.1/"$lport"
exec 8<>/dev/tcp/127.0.0.1/"$lport"
read -r -t 5 g7 <&7
read -r -t 5 g8 <&8
check "metrics: the local listener has the 2 sessions open" wait_for 5 eval '[ "$(open_at local)" = 2 ]'
killed=$(ss -Htnp state established "( sport = :$lport )" | sed -n 's/.*pid=\([0-9]*\),.*/\1/p' | head -1)
check "one of those sessions is served by a listener process of ours ($killed)" \
  eval '[ -n "$killed" ] && [ "$(ps -o ppid= -p $killed | tr -d " ")" = "$daemon" ]'
kill -KILL "$killed"
check "metrics: a listener killed mid-session leaves no session counted, the other stays" \
  wait_for 5 eval '[ "$(open_at local)" = 1 ]'
sleep 1.5 # a count or two later: still the one
check "metrics: the surviving session is still counted" [ "$(open_at local)" = 1 ]
exec 7>&- 8>&-
check "metrics: no session counted once the clients are gone" wait_for 5 eval '[ "$(open_at local)" = 0 ]'

# --- smtp-source: 200 messages over 10 parallel sessions ---
before=$(peer_stat sink "sum(1 for e, b in messages() if e['rcpt_to'] == ['bulk@sink.test'])")
smtp-source -c -m 200 -s 10 -l 2048 -f bulk-from@sender.test -t bulk@sink.test \
  127.0.0.1:"$lport" >"$T/source.out" 2>&1
rc=$?
check "smtp-source: 200 messages over 10 parallel sessions, no error" \
  eval '[ $rc -eq 0 ] && ! grep -qi "error\|fatal" $T/source.out'
check "smtp-source: all 200 reach the sink" \
  wait_for 60 messages_with "e['rcpt_to'] == ['bulk@sink.test']" $((before + 200))

# --- a private Postfix relaying through sluice (relayhost = the listener) ---
pfport=$(peer_free_port 127.0.0.1)
postfix_relay_start 127.0.0.1 "$pfport" 127.0.0.1 "$lport"
swaks --server 127.0.0.1 --port "$pfport" --from app@sender.test --to viapf@sink.test \
  --header 'X-Test: via-postfix' >"$T/swaks_pf" 2>&1
check "Postfix takes the message" grep -q '250 2.0.0 Ok: queued' "$T/swaks_pf"
check "Postfix -> sluice -> sink: delivered" wait_for 30 messages_with "b'X-Test: via-postfix' in b"
b=$(body "b'X-Test: via-postfix' in b")
check "Postfix's hop and sluice's are both in the Received chain" \
  eval "grep -q 'by sluice.test (sluice) with ESMTP' <<<\"\$b\" && grep -q 'by postfix-127-0-0-1.test' <<<\"\$b\""
postfix_stop

# --- nothing refused was ever delivered ---
check "no smuggled message was delivered" [ "$(count_with "b'smuggled' in b or e['mail_from'] == 'evil@evil.test'")" -eq 0 ]
check "no timed-out or oversize message was delivered" \
  [ "$(count_with "b'X-Test: stall' in b or b'X-Test: big' in b")" -eq 0 ]
check "no relay-refused or failed-AUTH message was delivered" \
  [ "$(count_with "e['rcpt_to'] in (['r4@sink.test'], ['r7@sink.test'])")" -eq 0 ]
check "the listeners logged no crash (but the one killed above)" \
  eval '! grep "killed by signal" $T/daemon.log | grep -vq "listener pid $killed killed by signal 9"'

# --- sluicectl metrics: each listener's figures agree with what it logged ---
"$SLUICECTL" -c "$T/sluice.ini" metrics >"$T/metrics" 2>&1
got() { awk -v k="$1{listener=\"$2\"${3:-}}" '$1 == k {print $2}' "$T/metrics"; }
logged() { grep -c "^listener $1\[[0-9]*\]: info: $2" "$T/daemon.log"; }
logged_sum() { # LISTENER FIELD: the sum of FIELD=N over its queued lines
  sed -n "s/^listener $1\[[0-9]*\]: info: queued .* $2=\([0-9]*\).*/\1/p" "$T/daemon.log" |
    awk '{s += $1} END {print s + 0}'
}
same() { # WHAT LISTENER METRIC LABELS EXPECTED
  local m
  m=$(got "$3" "$2" "$4")
  check "metrics: $2's $1 ($m) is what it logged ($5)" [ -n "$m" -a "$m" = "$5" ]
}
for l in local auth guard v6; do
  same "messages" $l sluice_listener_messages_total "" "$(logged $l 'queued ')"
  same "recipients" $l sluice_listener_recipients_total "" "$(logged_sum $l nrcpt)"
  same "octets" $l sluice_listener_bytes_total "" "$(logged_sum $l size)"
  same "relay refusals" $l sluice_listener_rejections_total ',reason="relay"' "$(logged $l '.*: relay refused for ')"
  same "timeouts" $l sluice_listener_timeouts_total "" "$(logged $l '.*: timeout ')"
done
for l in local auth; do
  same "accept-time observations (one per message queued)" $l sluice_listener_accept_seconds_count "" \
    "$(got sluice_listener_messages_total $l)"
done
check "metrics: the accept time of local's messages is counted in seconds, above 0 and below their count times 30" \
  awk -v n="$(got sluice_listener_messages_total local)" \
  '$1 == "sluice_listener_accept_seconds_sum{listener=\"local\"}" {ok = $2 > 0 && $2 < n * 30} END {exit !ok}' "$T/metrics"
same "AUTH successes" auth sluice_listener_auth_total ',result="ok"' "$(logged auth '.*: authenticated as ')"
same "AUTH failures" auth sluice_listener_auth_total ',result="failed"' "$(logged auth '.*: authentication failed ')"
check "metrics: guard's AUTH refused during a lockout (454s: 3) are counted" \
  [ "$(got sluice_listener_auth_total guard ',result="locked"')" -eq 3 ]
same "AUTH failures" guard sluice_listener_auth_total ',result="failed"' "$(logged guard '.*: authentication failed ')"
same "clients turned away" auth sluice_listener_turned_away_total "" "$(logged auth '.*: refused: more than ')"
same "refused contents" local sluice_listener_rejections_total ',reason="content"' \
  "$(logged local '.*: message refused: \(bare CR\|a line longer\|NUL\|empty\|[0-9]* Received fields\)')"
same "oversize messages (at MAIL or after the data)" local sluice_listener_rejections_total \
  ',reason="size"' "$(logged local '.*: \(message refused: larger than\|refused: SIZE=\)')"
same "unknown bindings" local sluice_listener_rejections_total ',reason="binding"' \
  "$(logged local '.*: message refused: X-Sluice-Binding names no binding')"
check "metrics: every kind of event above happened at least once" eval '
  [ "$(got sluice_listener_messages_total local)" -ge 200 ] &&
  [ "$(got sluice_listener_rejections_total auth ",reason=\"relay\"")" -ge 1 ] &&
  [ "$(got sluice_listener_timeouts_total auth)" -ge 2 ] &&
  [ "$(got sluice_listener_timeouts_total local)" -ge 1 ] &&
  [ "$(got sluice_listener_rejections_total local ",reason=\"content\"")" -ge 1 ] &&
  [ "$(got sluice_listener_rejections_total local ",reason=\"size\"")" -ge 2 ]'
msgs=$(awk '$1 ~ /^sluice_listener_messages_total\{/ {s += $2} END {print s + 0}' "$T/metrics")
check "metrics: the group commit's syncs covered every message the listeners queued ($msgs)" \
  wait_for 5 eval '[ "$(metric sluice_listener_spool_synced_messages_total)" = "$msgs" ]'
syncs=$(metric sluice_listener_spool_syncs_total)
check "metrics: in at least one sync and at most one per message ($syncs)" \
  [ "$syncs" -ge 1 -a "$syncs" -le "$msgs" ]
check "metrics: TLS sessions are counted (STARTTLS with swaks: 3 at auth at least)" \
  [ "$(got sluice_listener_tls_sessions_total auth)" -ge 3 ]
"$SLUICECTL" -c "$T/sluice.ini" status >"$T/status" 2>&1
refused_local=$(awk '$1 ~ /^sluice_listener_rejections_total\{listener="local",/ {s += $2} END {print s + 0}' "$T/metrics")
check "sluicectl status: a line per listener, with the figures of metrics" \
  grep -qEx "  listener local: sessions open [0-9]+, messages queued $(got sluice_listener_messages_total local), refused $refused_local" "$T/status"
check "metrics: sessions are counted (at local, more than smtp-source's 10 at once)" \
  [ "$(got sluice_listener_sessions_total local)" -gt 10 ]

kill -TERM "$daemon"
wait "$daemon"
check "sluiced stops with listeners (exit 0)" [ $? -eq 0 ]
echo "1..$_n"
