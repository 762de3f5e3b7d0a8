#!/usr/bin/env bash
# domain_view.sh - `sluicectl domain D` (Momentum's console `domain`), against a real nsd and
# the scripted sink, with golden output (tests/golden/domain_view.txt; UPDATE_GOLDEN=1
# rewrites it): the MX count and the domain's TTL, each MX with its preference, TTL and
# addresses; the limits per binding from the config with no daemon; with the daemon, the
# connections in use while a delivery is held open, then the last reply and the last hour's
# deliveries and failures per address from the delivery log; the shaping in force per binding
# (a suspension, the rate throttles towards the domain and towards each MX host).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/golden.sh"

shm=/sluice-e2e-domview-$$
golden_init "$SLUICE_TOP/tests/golden/domain_view.txt"

dns_zone test <<'EOF2'
multi     86400 MX 10 mx1.multi
multi     86400 MX 20 mx2.multi
mx1.multi 594   A  127.0.1.41
mx2.multi 300   A  127.0.1.42
flaky     3600  MX 10 mx.flaky
mx.flaky  120   A  127.0.1.43
nomail    MX 0 .
EOF2
dns_start
peer_start sink '{"127.0.1.41": {"hold": 3},
  "127.0.1.43": {"reply": {"rcpt_to": "451 4.7.1 greylisted"}}}' 127.0.1.41 127.0.1.42 127.0.1.43
port=$(peer_port sink)

cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $port
retry_interval = 1h
idle_timeout = 1s

[binding "b1"]
bind_address = 127.0.0.2

[binding "b2"]
bind_address = 127.0.0.3

[domain "multi.test"]
max_outbound_connections = 4

[host "mx1.multi.test"]
scope_max_outbound_connections = 7

[binding "b1" host "mx1.multi.test"]
max_outbound_connections = 2

[binding "b2" domain "multi.test"]
outbound_throttle_messages = 10/2

[host "mx2.multi.test"]
outbound_throttle_connections = 3
INI
golden_name "$port" PORT
golden_name "$T" T
golden_name 'queued as [A-Za-z0-9]*' 'queued as X'
inject() {
  printf 'Subject: t\r\n\r\nbody\r\n' |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test "$@"
}

golden "no daemon: MX count, TTLs, addresses; limits from the config" domain multi.test
golden "--binding and --json" domain --binding b1 --json multi.test
golden "a null MX" domain --binding b1 nomail.test
golden "an unknown binding" domain --binding nobody multi.test
golden "no domain: usage" domain
"$SLUICECTL" -c "$T/sluice.ini" suspend --binding b1 --domain multi.test --reason "TSS04 seen" \
  >/dev/null
golden "a suspension of binding b1 towards the domain" domain --binding b1 multi.test
golden "the suspension in JSON" domain --binding b1 --json multi.test
"$SLUICECTL" -c "$T/sluice.ini" resume --binding b1 --domain multi.test >/dev/null

"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
inject u1@multi.test >/dev/null
inject u2@flaky.test >/dev/null
in_data() { peer_true sink "dest('127.0.1.41')['transactions'] >= 1"; }
check "a delivery to mx1 is held open" wait_for 20 in_data
live=$("$SLUICECTL" -c "$T/sluice.ini" domain --binding b1 multi.test)
echo "$live" | sed 's/^/# /'
check "live: the host counter of mx1 shows the open connection (limit 7)" \
  grep -Eq '^    host +mx1.multi.test +in use 1, limit 7$' <<<"$live"
check "live: binding x host (limit 2)" \
  grep -Eq '^    binding_host +b1 mx1.multi.test +in use 1, limit 2$' <<<"$live"
check "live: binding x domain (limit 4)" \
  grep -Eq '^  binding_domain +b1 multi.test +in use 1, limit 4$' <<<"$live"
logged() { grep -q "\"domain\":\"$1\".*\"outcome\":\"$2\"" "$T/delivery.log" 2>/dev/null; }
check "the delivery ends" wait_for 20 logged multi.test delivered
check "the greylisting is logged" wait_for 20 logged flaky.test deferred
idle() { "$SLUICECTL" -c "$T/sluice.ini" domain --binding b1 multi.test | grep -q 'mx1.multi.test +in use 0'; }
wait_for 10 idle
golden "after the delivery: the last reply and the hour's counts per address" \
  domain --binding b1 multi.test
golden "a failing domain: the 4xx and the failure count" domain --binding b1 flaky.test
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
