#!/usr/bin/env bash
# tls.sh - STARTTLS end to end, as the receiving side sees it: MX names from a real DNS
# server (nsd), so SNI and the name check use them; certificates from a private test CA.
#   Postfix's smtpd with STARTTLS: tls = opportunistic delivers over TLS (the delivery log
#   shows on, the version and the cipher; Postfix's log and Received header agree), and
#   tls = verify with tls_ca_file = the test CA delivers with verified:true, auth pkix.
#   Scripted sinks for the faults: under required/verify, a peer that does not offer
#   STARTTLS, refuses it (454), or shows a certificate for another name or from no trusted
#   CA gets no MAIL (nothing is sent in clear) and the mail is deferred in phase tls;
#   under opportunistic a broken handshake is retried once in clear and delivered, the log
#   saying so; tls = disabled never says STARTTLS; tls_timeout = 2s ends a peer stalling
#   after its 220 in about 2 s, phase tls.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/postfix.sh"
. "$(dirname "$0")/lib/ca.sh"

shm=/sluice-e2e-tls-$$

dns_zone test <<'EOF'
opp         MX 10 mx1.tls
ver         MX 10 mx1.tls
noadv       MX 10 mx2.tls
refuse      MX 10 mx3.tls
refusev     MX 10 mx3.tls
wrong       MX 10 mx4.tls
self        MX 10 mx5.tls
broken      MX 10 mx6.tls
stall       MX 10 mx7.tls
clear       MX 10 mx8.tls
mx1.tls     A  127.0.1.1
mx2.tls     A  127.0.1.2
mx3.tls     A  127.0.1.3
mx4.tls     A  127.0.1.4
mx5.tls     A  127.0.1.5
mx6.tls     A  127.0.1.6
mx7.tls     A  127.0.1.7
mx8.tls     A  127.0.1.8
EOF
dns_start

ca_init
ca_issue mx1 mx1.tls.test
ca_issue faults mx2.tls.test mx3.tls.test mx6.tls.test mx7.tls.test mx8.tls.test
ca_issue other other.tls.test
ca_self self mx5.tls.test

pport=$(peer_free_port 127.0.1.1)
POSTFIX_TLS_CERT=$CA_DIR/mx1.crt POSTFIX_TLS_KEY=$CA_DIR/mx1.key \
  postfix_start 127.0.1.1 "$pport" opp.test ver.test
# One sink for the faults, one per certificate that must not verify.
PEER_ARGS="--tls-cert $CA_DIR/faults.crt --tls-key $CA_DIR/faults.key --timeline" \
  peer_start faults '{"starttls": true,
    "127.0.1.2": {"starttls": false},
    "127.0.1.3": {"reply": {"starttls": "454 4.7.0 TLS not available"}},
    "127.0.1.6": {"tls_fault": "garbage"},
    "127.0.1.7": {"tls_fault": "stall"}}' \
  127.0.1.2 127.0.1.3 127.0.1.6 127.0.1.7 127.0.1.8
PEER_ARGS="--tls-cert $CA_DIR/other.crt --tls-key $CA_DIR/other.key --timeline" \
  peer_start other '{"starttls": true}' 127.0.1.4
PEER_ARGS="--tls-cert $CA_DIR/self.crt --tls-key $CA_DIR/self.key --timeline" \
  peer_start self '{"starttls": true}' 127.0.1.5

cat >"$T/sluice.ini" <<INI
[global]
workers = 6
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
tls_ca_file = $CA_CERT
idle_timeout = 1s
retry_interval = 1h

[binding "b1"]
bind_address = 127.0.0.2

[domain "/^(opp|ver)\.test\$/"]
smtp_port = $pport

[domain "ver.test"]
tls = verify

[domain "/^(noadv|refuse|refusev|broken|stall|clear)\.test\$/"]
smtp_port = $(peer_port faults)

[domain "noadv.test"]
tls = required

[domain "refuse.test"]
tls = required

[domain "refusev.test"]
tls = verify

[domain "broken.test"]
tls = opportunistic

[domain "stall.test"]
tls = required
tls_timeout = 2s

[domain "clear.test"]
tls = disabled

[domain "wrong.test"]
smtp_port = $(peer_port other)
tls = verify

[domain "self.test"]
smtp_port = $(peer_port self)
tls = verify
INI

# log_true DOMAIN PYTHON_EXPR: the expression holds for the last delivery log line of DOMAIN
# (l: that line as a dict)
log_true() {
  python3 - "$T/delivery.log" "$1" "$2" 2>/dev/null <<'PY'
import json, sys
path, domain, expr = sys.argv[1:]
with open(path) as f:
    lines = [json.loads(x) for x in f if x.strip()]
mine = [x for x in lines if x.get("domain") == domain]
sys.exit(0 if mine and eval("(" + expr + ")", {}, {"l": mine[-1]}) else 1)
PY
}
logged() { log_true "$1" "l['outcome'] == '$2'"; }
# no_mail SINK DST: the sink saw a session to DST, and no MAIL or DATA in any
no_mail() {
  peer_true "$1" "dest('$2')['connections'] >= 1 and dest('$2')['transactions'] == 0 and
    not any(e[0] in ('cmd:MAIL', 'cmd:DATA') for s in d['timeline'].values()
            if s['dst'] == '$2' for e in s['events'])"
}
# said SINK DST VERB: some session to DST sent VERB
said() {
  peer_true "$1" "any(e[0] == 'cmd:$3' for s in d['timeline'].values()
    if s['dst'] == '$2' for e in s['events'])"
}

for dom in opp ver noadv refuse refusev wrong self broken stall clear; do
  printf 'Subject: tls %s\r\n\r\nover TLS or not at all\r\n' "$dom" |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test "u@$dom.test" >/dev/null
done

"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"

# --- Postfix with STARTTLS
check "opportunistic: delivered to Postfix" wait_for 30 logged opp.test delivered
check "opportunistic: the log shows TLS on, its version and cipher" \
  log_true opp.test "l['tls']['on'] and l['tls']['need'] == 'try' and
    l['tls']['version'] in ('TLSv1.2', 'TLSv1.3') and len(l['tls']['cipher']) > 0"
check "verify: delivered to Postfix" wait_for 30 logged ver.test delivered
check "verify: verified against the test CA and the MX name (auth pkix)" \
  log_true ver.test "l['tls']['on'] and l['tls']['need'] == 'verify' and
    l['tls']['verified'] is True and l['tls']['auth'] == 'pkix'"
stored() { ls "$POSTFIX_MAIL/$1/u/new/"* 2>/dev/null | head -1; }
tls_received() { grep -q "using TLSv1\.[23] with cipher" "$(stored "$1")"; }
check "Postfix's Received header says the opp.test message came over TLS" tls_received opp.test
check "and the ver.test one" tls_received ver.test
check "Postfix logged TLS sessions from sluice" \
  grep -q "TLS connection established from .*127.0.0.2" "$(postfix_log)"
tls_bdat() { grep 'disconnect from .*127.0.0.2' "$(postfix_log)" | grep -q "starttls=1 .*bdat=1"; }
check "inside TLS the messages went as BDAT (Postfix offers CHUNKING there too)" \
  wait_for 20 tls_bdat

# --- the need not met: deferred in phase tls, nothing sent in clear
deferred_tls() { log_true "$1" "l['outcome'] == 'deferred' and l['phase'] == 'tls' and $2"; }
check "required, STARTTLS not offered: deferred in phase tls" \
  wait_for 30 deferred_tls noadv.test "'STARTTLS not offered' in l['reply']"
check "and the peer got no MAIL" no_mail faults 127.0.1.2
check "required, STARTTLS refused (454): deferred in phase tls, the reply named" \
  wait_for 30 deferred_tls refuse.test "'454 4.7.0' in l['reply']"
check "verify, STARTTLS refused (454): deferred in phase tls" \
  wait_for 30 deferred_tls refusev.test "'454 4.7.0' in l['reply']"
check "and the peer got no MAIL on either" no_mail faults 127.0.1.3
check "verify, a certificate for another name: deferred, the mismatch named" \
  wait_for 30 deferred_tls wrong.test "'certificate not verified' in l['reply'] and
    'mx4.tls.test' in l['reply']"
check "and that peer got no MAIL" no_mail other 127.0.1.4
check "verify, a self-signed certificate: deferred in phase tls" \
  wait_for 30 deferred_tls self.test "'certificate not verified' in l['reply']"
check "and that peer got no MAIL" no_mail self 127.0.1.5
check "none of those sinks accepted a message" \
  test "$(peer_stat faults "dest('127.0.1.2')['messages'] + dest('127.0.1.3')['messages']")$(
    peer_stat other "total['messages']")$(peer_stat self "total['messages']")" = 000

# --- opportunistic: a broken handshake is retried once in clear
check "opportunistic, garbage after the 220: delivered in clear" \
  wait_for 30 logged broken.test delivered
check "the log says the TLS failure and the retry in clear" \
  log_true broken.test "not l['tls']['on'] and 'retried in clear' in l['tls'].get('note', '')"
check "the sink broke a handshake and then accepted the message" \
  peer_true faults "events.get('tls_fault:garbage', 0) >= 1 and dest('127.0.1.6')['messages'] == 1"

# --- tls = disabled: no STARTTLS even when offered
check "disabled: delivered" wait_for 30 logged clear.test delivered
check "disabled: in clear, need none" log_true clear.test "not l['tls']['on'] and l['tls']['need'] == 'none'"
check "disabled: STARTTLS never sent though offered" eval '! said faults 127.0.1.8 STARTTLS'
check "(the sink did see that session's EHLO)" said faults 127.0.1.8 EHLO

# --- tls_timeout = 2s: a peer silent after its 220
check "tls_timeout: deferred in phase tls, a timeout" \
  wait_for 30 deferred_tls stall.test "'timeout' in l['reply']"
waited=$(peer_stat faults "[round(g - s, 2) for x in d['timeline'].values() if x['dst'] == '127.0.1.7'
  for s in [dict(x['events'])['cmd:STARTTLS']] for g in [dict(x['events']).get('gone') or dict(x['events'])['closed']]][0]")
check "the client hung up about 2 s after STARTTLS ($waited s)" \
  python3 -c "import sys; sys.exit(not 1.8 <= $waited <= 6)"
check "and that peer got no MAIL" no_mail faults 127.0.1.7

kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM exits 0" test $? -eq 0
postfix_stop

# --- a tls_ca_file that cannot serve is a config error (FILE:LINE), not deferred mail
printf '[global]\nspool_dir = %s\n\ntls_ca_file = %s\n' "$T/badca-spool" "$T/no-such.pem" >"$T/badca.ini"
out=$("$SLUICECTL" -c "$T/badca.ini" config check 2>&1)
check "config check: a missing tls_ca_file is FILE:LINE and exit 1" \
  test "$?/$out" = "1/$T/badca.ini:4: tls_ca_file $T/no-such.pem: No such file or directory"
echo "not a certificate" >"$T/not.pem"
printf '[global]\ntls_ca_file = %s\n' "$T/not.pem" >"$T/notpem.ini"
out=$("$SLUICECTL" -c "$T/notpem.ini" config check 2>&1)
check "config check: a file without a PEM certificate is refused" \
  test "$?/$out" = "1/$T/notpem.ini:2: tls_ca_file $T/not.pem: no PEM certificate in it"
out=$("$SLUICED" -c "$T/badca.ini" 2>&1)
check "sluiced refuses to start on it, with the same line" \
  test "$?/$out" = "1/$T/badca.ini:4: tls_ca_file $T/no-such.pem: No such file or directory"
