#!/usr/bin/env bash
# dane.sh - DANE (RFC 7672) end to end: zones signed with ldns-signzone and
# served by nsd, a real validating resolver (unbound) on loopback as sluice's
# dns_server, STARTTLS sinks with a certificate of the test CA.
#   - signed MX with a matching "3 1 1" TLSA: delivered, tls need/source dane,
#     auth dane-ee, verified; a "2 1 1" TLSA of the issuing CA: dane-ta, and
#     deferred when the certificate does not name the MX host (RFC 7672 3.2.3)
#   - a TLSA that matches no certificate: deferred, no MAIL reaches the sink
#   - TLSA present but STARTTLS not offered: deferred, never in clear
#   - a bogus TLSA (signature fails, unbound answers SERVFAIL): deferred, the
#     host is not even connected to
#   - TLSA records none of which is usable for SMTP (usage 1, PKIX-EE): TLS
#     is required, and tls = verify still verifies (RFC 7672 2.2)
#   - dane = off (for one domain): the mismatched TLSA is ignored
#   - an unsigned zone's TLSA (insecure): ignored, the tls option rules
#   - dns_server pointing at nsd itself (authoritative, no AD bit): no DANE
# And the test bed itself: unbound's replies carry the AD flag for the signed
# zone, SERVFAIL for the tampered record, and nsd's never carry AD.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/dnssec.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/ca.sh"

shm=/sluice-e2e-dane-$$

ca_init
ca_issue mx mx.good.dane.test mx.ta.dane.test
spki=$(ca_spki_sha256 "$CA_DIR/mx.crt")
ca_spki=$(ca_spki_sha256 "$CA_CERT")
cat "$CA_DIR/mx.crt" "$CA_CERT" >"$CA_DIR/mx-chain.crt" # DANE-TA needs the CA in the chain
wrong=$(printf '%s' "not the key" | sha256sum | cut -d' ' -f1)

# One sink, one port, eleven addresses; 127.0.1.3 does not offer STARTTLS.
PEER_ARGS="--tls-cert $CA_DIR/mx-chain.crt --tls-key $CA_DIR/mx.key" \
  peer_start mx '{"starttls": true, "127.0.1.3": {"starttls": false}}' \
  127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4 127.0.1.5 127.0.1.6 127.0.1.7 127.0.1.8 127.0.1.9 \
  127.0.1.10 127.0.1.11
port=$(peer_port mx)

dnssec_zone dane.test <<EOF
good                MX 10 mx.good
mx.good             A  127.0.1.1
_$port._tcp.mx.good TLSA 3 1 1 $spki
wrong               MX 10 mx.wrong
mx.wrong            A  127.0.1.2
_$port._tcp.mx.wrong TLSA 3 1 1 $wrong
clear               MX 10 mx.clear
mx.clear            A  127.0.1.3
_$port._tcp.mx.clear TLSA 3 1 1 $spki
bogus               MX 10 mx.bogus
mx.bogus            A  127.0.1.4
_$port._tcp.mx.bogus TLSA 3 1 1 $spki
off                 MX 10 mx.off
mx.off              A  127.0.1.5
_$port._tcp.mx.off  TLSA 3 1 1 $wrong
direct              MX 10 mx.direct
mx.direct           A  127.0.1.7
_$port._tcp.mx.direct TLSA 3 1 1 $wrong
ta                  MX 10 mx.ta
mx.ta               A  127.0.1.8
_$port._tcp.mx.ta   TLSA 2 1 1 $ca_spki
taname              MX 10 mx.taname
mx.taname           A  127.0.1.9
_$port._tcp.mx.taname TLSA 2 1 1 $ca_spki
unusable            MX 10 mx.unusable
mx.unusable         A  127.0.1.10
_$port._tcp.mx.unusable TLSA 1 1 1 $spki
unverified          MX 10 mx.unverified
mx.unverified       A  127.0.1.11
_$port._tcp.mx.unverified TLSA 1 1 1 $spki
EOF
dnssec_tamper dane.test "_$port._tcp.mx.bogus.dane.test" TLSA
dns_zone plain.test <<EOF
@                   MX 10 mx
mx                  A  127.0.1.6
_$port._tcp.mx      TLSA 3 1 1 $wrong
EOF
if ! dnssec_start; then
  not_ok "the DNSSEC test bed starts (nsd + unbound)"
  exit 1
fi

# --- the test bed validates
check "unbound sets AD on the signed zone's TLSA" dnssec_ad "_$port._tcp.mx.good.dane.test" TLSA
check "and on its MX" dnssec_ad good.dane.test MX
check "the tampered TLSA is bogus: SERVFAIL" \
  test "$(dnssec_rcode "_$port._tcp.mx.bogus.dane.test" TLSA)" = SERVFAIL
check "the rest of that zone still validates" dnssec_ad mx.bogus.dane.test A
check "the unsigned zone answers without AD (insecure)" \
  test "$(dnssec_rcode "_$port._tcp.mx.plain.test" TLSA)" = NOERROR
# answered_without_ad IP PORT NAME: a NOERROR reply to NAME TLSA, AD flag clear
answered_without_ad() {
  local out
  out=$(dig +dnssec +time=2 +tries=2 -p "$2" @"$1" "$3" TLSA) || return 1
  grep -q 'status: NOERROR' <<<"$out" && ! grep -q '^;; flags:[^;]* ad[ ;]' <<<"$out"
}
check "... and is not marked validated" \
  answered_without_ad "$DNSSEC_IP" "$DNSSEC_PORT" "_$port._tcp.mx.plain.test"
check "nsd itself (authoritative) answers the signed TLSA without AD" \
  answered_without_ad "$DNS_IP" "$DNS_PORT" "_$port._tcp.mx.good.dane.test"

# write_ini FILE DNS_SERVER NAME: a configuration with its own spool, log and shm
write_ini() {
  cat >"$1" <<INI
[global]
workers = 4
shm_name = $shm-$3
spool_dir = $T/spool-$3
delivery_log = $T/delivery-$3.log
dns_server = $2
smtp_port = $port
tls_ca_file = $CA_CERT
mta_sts = off
audit_interval = 1s
idle_timeout = 1s
retry_interval = 1h
connect_timeout = 10s
tls_timeout = 20s

[binding "b"]
bind_address = 127.0.0.2

[domain "off.dane.test"]
dane = off

[domain "good.dane.test"]
max_deliveries_per_connection = 1

[domain "unverified.dane.test"]
tls = verify
INI
}

inject() { # INI DOMAIN
  printf 'Subject: dane\r\n\r\nbody\r\n' |
    "$SLUICECTL" -c "$1" inject --binding b -f s@sender.test "u@$2" >/dev/null
}

# tls_of LOG DOMAIN KEY: the first attempt's tls.KEY for DOMAIN ("" when none)
tls_of() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("domain") == sys.argv[2]:
        v = r.get("tls", {}).get(sys.argv[3], "")
        print(json.dumps(v) if isinstance(v, bool) else v)
        break
PY
}
# outcome_of LOG DOMAIN: the first attempt's outcome
outcome_of() { grep -m1 "\"domain\":\"$2\"" "$1" | sed -n 's/.*"outcome":"\([a-z]*\)".*/\1/p'; }
logged_all() { # LOG DOMAIN...
  local log=$1 dom; shift
  for dom in "$@"; do grep -q "\"domain\":\"$dom\"" "$log" 2>/dev/null || return 1; done
}
dest_stat() { peer_stat mx "dest('$1')['$2']"; }

# --- through the validating resolver
ini=$T/unbound.ini
write_ini "$ini" "$DNSSEC_SERVER" unbound
domains=(good.dane.test ta.dane.test taname.dane.test wrong.dane.test clear.dane.test bogus.dane.test off.dane.test plain.test unusable.dane.test unverified.dane.test)
for dom in "${domains[@]}"; do inject "$ini" "$dom"; done
"$SLUICED" -c "$ini" 2>"$T/daemon-unbound.log" &
daemon=$!
started "$daemon"
log=$T/delivery-unbound.log
check "every domain had its first attempt" wait_for 60 logged_all "$log" "${domains[@]}"

check "matching 3 1 1 TLSA: delivered" test "$(outcome_of "$log" good.dane.test)" = delivered
check "... need dane" test "$(tls_of "$log" good.dane.test need)" = dane
check "... source dane" test "$(tls_of "$log" good.dane.test source)" = dane
check "... auth dane-ee" test "$(tls_of "$log" good.dane.test auth)" = dane-ee
check "... verified" test "$(tls_of "$log" good.dane.test verified)" = true
check "... over TLS" test "$(tls_of "$log" good.dane.test on)" = true
check "... the sink got it, encrypted" \
  test "$(dest_stat 127.0.1.1 messages)/$(dest_stat 127.0.1.1 tls)" = 1/1

check "a 2 1 1 TLSA of the issuing CA: delivered" test "$(outcome_of "$log" ta.dane.test)" = delivered
check "... auth dane-ta, verified" \
  test "$(tls_of "$log" ta.dane.test auth)/$(tls_of "$log" ta.dane.test verified)" = dane-ta/true
check "DANE-TA, but the certificate names another host: deferred" \
  test "$(outcome_of "$log" taname.dane.test)" = deferred
check "... after a TLS handshake" test "$(dest_stat 127.0.1.9 tls)" -ge 1
check "... and no MAIL reached the sink" test "$(dest_stat 127.0.1.9 transactions)" -eq 0

check "TLSA matching no certificate: deferred" test "$(outcome_of "$log" wrong.dane.test)" = deferred
check "... after a TLS handshake" test "$(dest_stat 127.0.1.2 tls)" -ge 1
check "... and no MAIL reached the sink" test "$(dest_stat 127.0.1.2 transactions)" -eq 0
check "... logged as dane, not verified" \
  test "$(tls_of "$log" wrong.dane.test source)/$(tls_of "$log" wrong.dane.test verified)" = dane/false

check "STARTTLS not offered under DANE: deferred" test "$(outcome_of "$log" clear.dane.test)" = deferred
check "... the host was reached" test "$(dest_stat 127.0.1.3 connections)" -ge 1
check "... and no MAIL went in clear" test "$(dest_stat 127.0.1.3 transactions)" -eq 0

check "bogus TLSA (SERVFAIL): deferred" test "$(outcome_of "$log" bogus.dane.test)" = deferred
check "... the host was not used at all" test "$(dest_stat 127.0.1.4 connections)" -eq 0
check "... the log says the TLSA lookup failed" \
  grep -q '"domain":"bogus.dane.test".*TLSA' "$log"

check "TLSA records, none usable: delivered" test "$(outcome_of "$log" unusable.dane.test)" = delivered
check "... encryption required, from DANE" \
  test "$(tls_of "$log" unusable.dane.test need)/$(tls_of "$log" unusable.dane.test source)" = encrypt/dane
check "... over TLS" test "$(tls_of "$log" unusable.dane.test on)" = true
check "TLSA records, none usable, under tls = verify: the certificate must still verify" \
  test "$(tls_of "$log" unverified.dane.test need)" = verify
check "... it names another host: deferred" test "$(outcome_of "$log" unverified.dane.test)" = deferred
check "... and no MAIL reached the sink" test "$(dest_stat 127.0.1.11 transactions)" -eq 0

check "dane = off: the mismatched TLSA is ignored, delivered" \
  test "$(outcome_of "$log" off.dane.test)" = delivered
check "... under the config's opportunistic TLS" \
  test "$(tls_of "$log" off.dane.test source)/$(tls_of "$log" off.dane.test need)" = config/try
check "... still encrypted" test "$(tls_of "$log" off.dane.test on)" = true

check "an unsigned zone's TLSA is not used: delivered" test "$(outcome_of "$log" plain.test)" = delivered
check "... under the config" test "$(tls_of "$log" plain.test source)" = config

# --- a worker keeps TLSA answers for their TTL: one message per connection
# (max_deliveries_per_connection = 1) costs no TLSA query per message
tlsa_queries() { grep -c "_$port._tcp.mx.good.dane.test. TLSA IN" "$T/dnssec/unbound.log"; }
before=$(tlsa_queries)
for i in $(seq 1 12); do inject "$ini" good.dane.test; done
good_delivered() { test "$(grep -c '"domain":"good.dane.test".*"outcome":"delivered"' "$log")" -ge 13; }
check "12 more messages to the DANE domain, one connection each: delivered" wait_for 60 good_delivered
asked=$(($(tlsa_queries) - before))
check "... over 12 connections, at most one TLSA query per worker (4): $asked" test "$asked" -le 4

# --- what the operator sees: sluicectl tls, deciding as a worker would
tls_line() { "$SLUICECTL" -c "$ini" tls --binding b "$1" | grep "^$2"; }
check "sluicectl tls: DANE is on with this resolver" \
  test "$(tls_line good.dane.test dane:)" = "dane: on (TLSA records are looked up for each MX host)"
check "... the good MX needs dane, from 1 usable TLSA record" python3 -c "
import json, subprocess, sys
r = json.loads(subprocess.run(['$SLUICECTL', '-c', '$ini', 'tls', '--binding', 'b', '--json',
                               'good.dane.test'], capture_output=True, text=True).stdout)
h = r['hosts'][0]
sys.exit(not (r['dane'] == {'option': True, 'trusted': True} and h['need'] == 'dane'
              and h['source'] == 'dane' and h['tlsa'] == 1 and h['used']))"
check "... the bogus MX is shown as not used, and why" \
  bash -c "'$SLUICECTL' -c '$ini' tls --binding b bogus.dane.test | grep -q '^mx mx.bogus.dane.test: not used: TLSA lookup'"
check "... a UTF-8 domain is looked at by its A-label, as the workers do" \
  bash -c "'$SLUICECTL' -c '$ini' tls --binding b bücher.dane.test | head -1 | grep -qx 'domain xn--bcher-kva.dane.test, binding b'"
check "... dane = off for a domain shows the config's need" \
  bash -c "'$SLUICECTL' -c '$ini' tls --binding b off.dane.test | grep -qx 'dane: off (dane = off)'"

kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM exits 0" test $? -eq 0

# --- dns_server is nsd: authoritative answers carry no AD, so no DANE.  The
# same kind of mismatched TLSA that was deferred above is now ignored.
ini=$T/nsd.ini
write_ini "$ini" "$DNS_SERVER" nsd
inject "$ini" direct.dane.test
"$SLUICED" -c "$ini" 2>"$T/daemon-nsd.log" &
daemon=$!
started "$daemon"
log=$T/delivery-nsd.log
check "without a validated answer: first attempt logged" wait_for 60 logged_all "$log" direct.dane.test
check "... no DANE: delivered despite the mismatched TLSA" \
  test "$(outcome_of "$log" direct.dane.test)" = delivered
check "... under the config" test "$(tls_of "$log" direct.dane.test source)" = config
kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM exits 0" test $? -eq 0

