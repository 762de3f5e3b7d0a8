#!/usr/bin/env bash
# mta_sts.sh - MTA-STS (RFC 8461) end to end: the TXT records, MX records and
# policy host addresses in nsd, the policies served over HTTPS by
# tests/peer/https.py on 127.0.2.1 with a certificate of the test CA, STARTTLS
# sinks on 127.0.1.x (one with a CA-issued certificate, one self-signed).
#   - enforce, MX listed, certificate verifies: delivered, tls source
#     mta-sts, need verify, verified; the policy is fetched once and cached
#     in spool_dir/mta-sts (more mail costs no fetch)
#   - enforce, the MX is not in the policy: deferred, the host never reached
#   - enforce, the certificate does not verify: deferred, no MAIL sent
#   - testing, the same bad certificate: delivered, the failure noted
#   - an invalid policy body, and no TXT record at all: no policy, the
#     config's tls applies
#   - across a restart, with the policy server slower than mta_sts_timeout
#     (2s) and a new policy id: the fetch times out near 2 s and the cached
#     enforce policy still rules (a new, unlisted MX is not used)
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/ca.sh"

shm=/sluice-e2e-mta-sts-$$
https_py=$(cd "$(dirname "$0")/../peer" && pwd)/https.py

ca_init
ca_issue mx mx.enforce.sts.test mx.invalid.sts.test mx.plain.sts.test mx.slow.sts.test \
  mx2.slow.sts.test
ca_self bad mx.badcert.sts.test mx.testing.sts.test
names=()
for d in enforce unlisted badcert testing invalid slow; do names+=("mta-sts.$d.sts.test"); done
ca_issue web "${names[@]}"

# Good sink (127.0.1.1, .2, .5, .6, .7) and self-signed sink (127.0.1.3, .4), both STARTTLS.
PEER_ARGS="--tls-cert $CA_DIR/mx.crt --tls-key $CA_DIR/mx.key" \
  peer_start good '{"starttls": true}' 127.0.1.1 127.0.1.2 127.0.1.5 127.0.1.6 127.0.1.7 127.0.1.8
PEER_ARGS="--tls-cert $CA_DIR/bad.crt --tls-key $CA_DIR/bad.key" \
  peer_start bad '{"starttls": true}' 127.0.1.3 127.0.1.4

# The policy server: DIR/HOST/.well-known/mta-sts.txt, per-host .delay.
www=$T/www
policy() { # DOMAIN MODE MX... : an STSv1 policy body for DOMAIN
  local dom=$1 mode=$2 mx; shift 2
  mkdir -p "$www/mta-sts.$dom/.well-known"
  {
    printf 'version: STSv1\r\nmode: %s\r\n' "$mode"
    for mx in "$@"; do printf 'mx: %s\r\n' "$mx"; done
    printf 'max_age: 86400\r\n'
  } >"$www/mta-sts.$dom/.well-known/mta-sts.txt"
}
policy enforce.sts.test enforce mx.enforce.sts.test
policy unlisted.sts.test enforce mx.elsewhere.sts.test
policy badcert.sts.test enforce '*.badcert.sts.test'
policy testing.sts.test testing mx.testing.sts.test
policy invalid.sts.test enforce mx.invalid.sts.test
printf '<html>moved</html>\n' >"$www/mta-sts.invalid.sts.test/.well-known/mta-sts.txt"
policy slow.sts.test enforce mx.slow.sts.test
python3 "$https_py" --listen 127.0.2.1:0 --cert "$CA_DIR/web.crt" --key "$CA_DIR/web.key" \
  --dir "$www" --stats "$T/https.json" >"$T/https.out" 2>"$T/https.err" &
started $!
wait_for 10 grep -q '^READY' "$T/https.out" || { cat "$T/https.err" >&2; exit 1; }
https_port=$(sed -n 's/^READY port=//p' "$T/https.out")

# zone SLOW_MX SLOW_ID: the sts.test zone (the slow domain's MX and policy id vary)
zone() {
  dns_zone sts.test <<EOF
enforce               MX 10 mx.enforce
mx.enforce            A  127.0.1.1
_mta-sts.enforce      TXT "v=STSv1; id=e1;"
mta-sts.enforce       A  127.0.2.1
unlisted              MX 10 mx.unlisted
mx.unlisted           A  127.0.1.2
_mta-sts.unlisted     TXT "v=STSv1; id=u1;"
mta-sts.unlisted      A  127.0.2.1
badcert               MX 10 mx.badcert
mx.badcert            A  127.0.1.3
_mta-sts.badcert      TXT "v=STSv1; id=b1;"
mta-sts.badcert       A  127.0.2.1
testing               MX 10 mx.testing
mx.testing            A  127.0.1.4
_mta-sts.testing      TXT "v=STSv1; id=t1;"
mta-sts.testing       A  127.0.2.1
invalid               MX 10 mx.invalid
mx.invalid            A  127.0.1.5
_mta-sts.invalid      TXT "v=STSv1; id=i1;"
mta-sts.invalid       A  127.0.2.1
plain                 MX 10 mx.plain
mx.plain              A  127.0.1.8
slow                  MX 10 $1
mx.slow               A  127.0.1.6
mx2.slow              A  127.0.1.7
_mta-sts.slow         TXT "v=STSv1; id=$2;"
mta-sts.slow          A  127.0.2.1
EOF
}
zone mx.slow s1
dns_start

ini=$T/sluice.ini
cat >"$ini" <<INI
[global]
workers = 4
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $(peer_port good)
tls_ca_file = $CA_CERT
mta_sts_port = $https_port
mta_sts_timeout = 2s
dane = off
audit_interval = 1s
idle_timeout = 1s
retry_interval = 1h
connect_timeout = 10s
tls_timeout = 20s

[binding "b"]
bind_address = 127.0.0.2

[domain "badcert.sts.test"]
smtp_port = $(peer_port bad)

[domain "testing.sts.test"]
smtp_port = $(peer_port bad)
INI

inject() { # DOMAIN
  printf 'Subject: sts\r\n\r\nbody\r\n' |
    "$SLUICECTL" -c "$ini" inject --binding b -f s@sender.test "u@$1" >/dev/null
}
# attempt DOMAIN N KEY [SUBKEY]: the Nth logged attempt's KEY (or tls.SUBKEY) for DOMAIN
attempt() {
  python3 - "$T/delivery.log" "$@" <<'PY'
import json, sys
log, dom, n, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = [r for r in map(json.loads, open(log)) if r.get("domain") == dom]
v = rows[n - 1].get(key, "") if len(rows) >= n else ""
if len(sys.argv) > 5:
    v = v.get(sys.argv[5], "") if isinstance(v, dict) else ""
print(json.dumps(v) if isinstance(v, (bool, dict, list)) else v)
PY
}
logged() { # DOMAIN N: DOMAIN has at least N logged attempts
  local n
  n=$(grep -c "\"domain\":\"$1\"" "$T/delivery.log" 2>/dev/null)
  test "${n:-0}" -ge "$2"
}
logged_all() { local d; for d in "$@"; do logged "$d" 1 || return 1; done; }
fetches() { # HOST: policy requests the HTTPS server got for HOST
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"].get(sys.argv[2], 0))' \
    "$T/https.json" "$1"
}
dest_stat() { peer_stat "$1" "dest('$2')['$3']"; }

# --- first start: every case once
domains=(enforce.sts.test unlisted.sts.test badcert.sts.test testing.sts.test invalid.sts.test
  plain.sts.test slow.sts.test)
for d in "${domains[@]}"; do inject "$d"; done
"$SLUICED" -c "$ini" 2>"$T/daemon1.log" &
daemon=$!
started "$daemon"
check "every domain had its first attempt" wait_for 60 logged_all "${domains[@]}"

check "enforce, listed MX, good certificate: delivered" \
  test "$(attempt enforce.sts.test 1 outcome)" = delivered
check "... tls source mta-sts, need verify" \
  test "$(attempt enforce.sts.test 1 tls source)/$(attempt enforce.sts.test 1 tls need)" = mta-sts/verify
check "... verified, auth pkix, encrypted" \
  test "$(attempt enforce.sts.test 1 tls verified)/$(attempt enforce.sts.test 1 tls auth)/$(attempt enforce.sts.test 1 tls on)" = true/pkix/true
got_over_tls() { test "$(dest_stat good 127.0.1.1 messages)/$(dest_stat good 127.0.1.1 tls)" = 1/1; }
check "... the sink got it over TLS" wait_for 5 got_over_tls
check "... the policy was fetched once" test "$(fetches mta-sts.enforce.sts.test)" -eq 1
check "... and cached under spool_dir/mta-sts" \
  grep -q '^mode: enforce' "$T/spool/mta-sts/enforce.sts.test"

check "enforce, MX not in the policy: deferred" \
  test "$(attempt unlisted.sts.test 1 outcome)" = deferred
check "... the host was never connected to" test "$(dest_stat good 127.0.1.2 connections)" -eq 0
check "... the log says why" grep -q '"domain":"unlisted.sts.test".*not an MX host of the MTA-STS' \
  "$T/delivery.log"
check "... tls source mta-sts" test "$(attempt unlisted.sts.test 1 tls source)" = mta-sts

check "enforce, the certificate does not verify: deferred" \
  test "$(attempt badcert.sts.test 1 outcome)" = deferred
handshaken() { test "$(dest_stat bad 127.0.1.3 tls)" -ge 1; }
check "... after a TLS handshake" wait_for 5 handshaken
check "... and no MAIL reached the sink" test "$(dest_stat bad 127.0.1.3 transactions)" -eq 0
check "... logged as mta-sts, need verify, not verified" \
  test "$(attempt badcert.sts.test 1 tls source)/$(attempt badcert.sts.test 1 tls need)/$(attempt badcert.sts.test 1 tls verified)" = mta-sts/verify/false

check "testing, the same bad certificate: delivered" \
  test "$(attempt testing.sts.test 1 outcome)" = delivered
check "... encrypted, not verified, source mta-sts" \
  test "$(attempt testing.sts.test 1 tls on)/$(attempt testing.sts.test 1 tls verified)/$(attempt testing.sts.test 1 tls source)" = true/false/mta-sts
check "... the failure is noted" \
  grep -q '"domain":"testing.sts.test".*"note":"[^"]*MTA-STS testing' "$T/delivery.log"

check "an invalid policy body: no policy, delivered" \
  test "$(attempt invalid.sts.test 1 outcome)" = delivered
check "... under the config's tls (opportunistic)" \
  test "$(attempt invalid.sts.test 1 tls source)/$(attempt invalid.sts.test 1 tls need)" = config/try
check "... the note says the policy is invalid" \
  grep -q '"domain":"invalid.sts.test".*"note":"[^"]*policy invalid' "$T/delivery.log"
check "... and nothing was cached" test ! -e "$T/spool/mta-sts/invalid.sts.test"

check "no TXT record: delivered under the config" \
  test "$(attempt plain.sts.test 1 outcome)/$(attempt plain.sts.test 1 tls source)" = delivered/config
check "... no policy fetch was tried" test "$(fetches mta-sts.plain.sts.test)" -eq 0

check "the slow domain's policy (not slow yet) is fetched: delivered" \
  test "$(attempt slow.sts.test 1 outcome)/$(attempt slow.sts.test 1 tls source)" = delivered/mta-sts
check "... and cached" test -s "$T/spool/mta-sts/slow.sts.test"
check "the cache directory is 0750" test "$(stat -c %a "$T/spool/mta-sts")" = 750

# More mail to enforce.sts.test: the policy comes from the memo or the cache, not the server.
inject enforce.sts.test
inject enforce.sts.test
check "two more messages to the enforce domain are logged" wait_for 30 logged enforce.sts.test 3
check "... delivered" test "$(attempt enforce.sts.test 2 outcome)/$(attempt enforce.sts.test 3 outcome)" = delivered/delivered
check "... without another policy fetch" test "$(fetches mta-sts.enforce.sts.test)" -eq 1

# --- what the operator sees: sluicectl tls decides as a worker would (the cache serves it)
tls_text() { "$SLUICECTL" -c "$ini" tls --binding b "$1"; }
check "sluicectl tls: enforce policy from the cache, its mx listed" \
  bash -c "$(declare -f tls_text); SLUICECTL=$SLUICECTL ini=$ini tls_text enforce.sts.test" \
  | grep -q '^mta-sts: enforce (cached, id e1'
check "... the MX host would need verify, source mta-sts" \
  test "$(tls_text enforce.sts.test | grep '^mx mx.enforce.sts.test:')" = \
  "mx mx.enforce.sts.test: verify (source mta-sts)"
check "... an MX the policy does not list is shown as not used, and why" \
  bash -c "'$SLUICECTL' -c '$ini' tls --binding b unlisted.sts.test | grep -q '^mx mx.unlisted.sts.test: not used: .*not an MX host of the MTA-STS policy'"
check "... a domain without a policy: the config's tls and where it comes from" \
  test "$(tls_text plain.sts.test | sed -n 2,3p | tr '\n' '|')" = \
  "tls: opportunistic (from default)|mta-sts: no policy|"
check "... --json carries the same decision" python3 -c "
import json, subprocess, sys
r = json.loads(subprocess.run(['$SLUICECTL', '-c', '$ini', 'tls', '--binding', 'b', '--json',
                               'testing.sts.test'], capture_output=True, text=True).stdout)
h = r['hosts'][0]
sys.exit(not (r['mta_sts']['mode'] == 'testing' and r['mta_sts']['source'] == 'cached'
              and h['need'] == 'try' and h['source'] == 'mta-sts' and h['used']))"
check "... no policy fetch was needed for it" test "$(fetches mta-sts.enforce.sts.test)" -eq 1

kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM exits 0" test $? -eq 0

# --- restart: the slow domain publishes a new id and moves to an MX its cached
# policy does not list, and its policy server now answers after 8 s.
echo 8 >"$www/mta-sts.slow.sts.test/.delay"
zone mx2.slow s2
kill -HUP "$DNS_PID"
new_id() { dns_query _mta-sts.slow.sts.test TXT | grep -q 'id=s2'; }
check "nsd serves the new policy id" wait_for 10 new_id
inject slow.sts.test
"$SLUICED" -c "$ini" 2>"$T/daemon2.log" &
daemon=$!
started "$daemon"
check "the slow domain's attempt is logged" wait_for 30 logged slow.sts.test 2
check "the new id made sluice fetch again" test "$(fetches mta-sts.slow.sts.test)" -eq 2
check "the fetch timed out: the cached enforce policy rules, deferred" \
  test "$(attempt slow.sts.test 2 outcome)" = deferred
check "... the unlisted new MX was never connected to" \
  test "$(dest_stat good 127.0.1.7 connections)" -eq 0
check "... the note says the fetch timed out after 2s and the cache was used" \
  grep -q '"domain":"slow.sts.test".*fetch timed out after 2s, using the cached policy' \
  "$T/delivery.log"
# how long the worker waited: from the request's arrival (after the TLS
# handshake, which the 2 s include) to the logged attempt; the server's 8 s
# would show as more than 5
waited=$(python3 - "$T/https.json" "$T/delivery.log" <<'PY'
import datetime, json, sys
t0 = json.load(open(sys.argv[1]))["times"]["mta-sts.slow.sts.test"][1]
rows = [r for r in map(json.loads, open(sys.argv[2])) if r["domain"] == "slow.sts.test"]
t1 = datetime.datetime.fromisoformat(rows[1]["time"].replace("Z", "+00:00")).timestamp()
print(f"{t1 - t0:.2f}")
PY
)
check "... after about 2 s ($waited s)" python3 -c "import sys; sys.exit(not 1.0 <= $waited <= 5)"
kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM exits 0" test $? -eq 0
