#!/usr/bin/env bash
# fairness.sh - the scheduler gives a freed or idle connection slot to waiting mail at once,
# in fair turns, and moves a connection between domains that share an MX host:
#   1. b1 and b2 share d.test's scope limit of 1: b1's 30 messages do not starve b2's one,
#      which arrives before b1's last; the receiver never sees 2 connections;
#   2. server limit 1, idle_timeout 300s, two domains: the second's mail does not wait for the
#      first's idle connection to time out;
#   3. two domains behind one MX host (real DNS): one connection carries both (the delivery
#      log names each message's own domain); a third domain that asks tls = verify, which the
#      connection lacks, gets a new connection of its own; with
#      migrate_connections_between_sibling_domains = false nothing moves;
#   4. 40 domains under a server limit of 2 drain completely, never over 2 at the receiver;
#   5. the waits show: counters (table, JSON), metrics, and queue's "waiting for".
# Every check is on behaviour: which messages arrived, in which order, over how many
# connections, and what the operator's tools say.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-fair-$$
dns_zone test <<'EOF'
one         MX 10 mx.shared
two         MX 10 mx.shared
strict      MX 10 mx.shared
mx.shared   A  127.0.1.41
EOF
dns_start

# d.test's sink holds every final reply 0.15 s, so b1's 30 messages take a few seconds.
peer_start slow '{"hold": 0.15}' 127.0.1.40
peer_start shared '{}' 127.0.1.41
peer_start fast '{"hold": 0.05}' 127.0.1.42

# write_config FILE WORKERS EXTRA: the common config, EXTRA appended to [global]
write_config() {
  cat >"$1" <<INI
[global]
workers = $2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $(peer_port shared)
server_reserve_outbound_connections = 0
retry_interval = 1h
$3

[binding "b1"]
bind_address = 127.0.0.2
[binding "b2"]
bind_address = 127.0.0.3

[domain "d.test"]
scope_max_outbound_connections = 1
route = 127.0.1.40:$(peer_port slow)

[domain "/^d[0-9]+\.test\$/"]
route = 127.0.1.42:$(peer_port fast)

[domain "strict.test"]
tls = verify

[domain "/^h[12]\.test\$/"]
route = 127.0.1.40:$(peer_port slow)
[host "127.0.1.40"]
scope_max_outbound_connections = 1
INI
}

# inject BINDING RCPT...: one message
inject() {
  local b=$1; shift
  printf 'Subject: t\r\n\r\nbody\r\n' |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding "$b" -f s@sender.test "$@" >/dev/null
}
queued() { find "$T/spool/queue" -type f | wc -l; }
queue_empty() { test "$(queued)" -eq 0; }
# start: the daemon on $T/sluice.ini, ready
start() {
  : >"$T/notify.log"
  "$SLUICED" -d -c "$T/sluice.ini" 2>>"$T/daemon.log" &
  daemon=$!
  started "$daemon"
  wait_for 10 grep -q '^READY=1' "$T/notify.log"
}
stop() { kill -TERM "$daemon"; wait "$daemon"; }
# delivered_line N PATTERN: the line number in the delivery log of the Nth delivered line
# that matches PATTERN ("last" for the last)
delivered_lines() { grep -n '"outcome":"delivered"' "$T/delivery.log" | grep -- "$1" | cut -d: -f1; }

notify_listener "$T/notify.log"

# --- 1. fair turns on a shared counter -----------------------------------------------------
write_config "$T/sluice.ini" 4 "idle_timeout = 5s"
start
for i in $(seq 30); do inject b1 "u$i@d.test"; done
sleep 1
inject b2 late@d.test
check "every message to d.test arrives" wait_for 30 peer_true slow "dest('127.0.1.40')['messages'] == 31"
b2_line=$(delivered_lines '"binding":"b2"' | head -1)
b1_last=$(delivered_lines '"binding":"b1"' | tail -1)
check "b2's one message is delivered before b1's 30 are done (lines $b2_line < $b1_last)" \
  test -n "$b2_line" -a -n "$b1_last" -a "${b2_line:-0}" -lt "${b1_last:-0}"
check "the receiver never sees two connections for d.test's limit of 1" \
  peer_true slow "dest('127.0.1.40')['peak'] == 1"
counters_json=$("$SLUICECTL" -c "$T/sluice.ini" counters --json)
check "counters --json shows that mail was held back by d.test's scope" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
c = [c for c in d["counters"] if c["scope"] == "domain" and c["name"] == "d.test"]
sys.exit(0 if c and c[0]["holdbacks"] >= 1 and c[0]["waiting"] == 0 and c[0]["waited_ms"] > 0 else 1)
' "$counters_json"
check "metrics count the hold-backs per scope" \
  sh -c "'$SLUICECTL' -c '$T/sluice.ini' metrics | grep -Eq '^sluice_holdbacks_total\{kind=\"domain\",scope=\"d.test\"\} [1-9]'"
stop
check "the drain left nothing queued" test "$(queued)" -eq 0

# --- 2. an idle connection gives its slot to waiting mail -------------------------------------
# (the bounds are wide: a slow machine costs seconds, a connection kept idle 300 s minutes)
: >"$T/delivery.log"
write_config "$T/sluice.ini" 4 "idle_timeout = 300s
server_max_outbound_connections = 1"
inject b1 a@d1.test
inject b1 b@d2.test
t0=$(date +%s)
start
check "the first domain's mail arrives" wait_for 10 peer_true fast "dest('127.0.1.42')['messages'] >= 1"
check "the second domain's mail arrives long before the 300 s idle_timeout" \
  wait_for 90 peer_true fast "dest('127.0.1.42')['messages'] >= 2"
t1=$(date +%s)
check "both were delivered within 90 s of the start ($((t1 - t0)) s)" test $((t1 - t0)) -lt 90
check "the receiver never saw two connections under the server limit of 1" \
  peer_true fast "dest('127.0.1.42')['peak'] == 1"
stop

# --- 2b. the same under a binding's limit: the slot passes from domain to domain ---------------
# (each domain's connection, handed over rather than opened after a room check of its own, must
# still be known to hold the binding's counter, or the next domain waits for the idle_timeout)
: >"$T/delivery.log"
write_config "$T/sluice.ini" 4 "idle_timeout = 300s"
sed -i '/^bind_address = 127.0.0.2$/a server_max_outbound_connections = 1' "$T/sluice.ini"
before=$(peer_stat fast "dest('127.0.1.42')['messages']")
for i in 1 2 3 4 5 6; do inject b1 "x$i@d$i.test" "y$i@d$i.test"; done
t0=$(date +%s)
start
check "six domains under b1's limit of 1 all arrive long before the 300 s idle_timeout" \
  wait_for 90 peer_true fast "dest('127.0.1.42')['messages'] >= $before + 6"
t1=$(date +%s)
check "all six were delivered within 90 s of the start ($((t1 - t0)) s)" test $((t1 - t0)) -lt 90
check "the receiver never saw two connections under b1's limit of 1" \
  peer_true fast "dest('127.0.1.42')['peak'] == 1"
stop

# --- 3. a connection moves between domains that share an MX host ------------------------------
: >"$T/delivery.log"
write_config "$T/sluice.ini" 1 "idle_timeout = 30s"
start
inject b1 x@one.test
check "one.test's message arrives at the shared MX" \
  wait_for 10 peer_true shared "dest('127.0.1.41')['messages'] == 1"
inject b1 y@two.test
check "two.test's message arrives too" wait_for 10 peer_true shared "dest('127.0.1.41')['messages'] == 2"
check "over the same connection: the MX host saw one connection for both domains" \
  peer_true shared "dest('127.0.1.41')['connections'] == 1"
check "the delivery log names the real domain of each attempt" \
  sh -c "grep '\"rcpt\":\[\"y@two.test\"\]' '$T/delivery.log' | grep -q '\"domain\":\"two.test\".*\"outcome\":\"delivered\"'"
inject b1 z@strict.test
check "strict.test (tls = verify) is tried" wait_for 10 grep -q '"domain":"strict.test"' "$T/delivery.log"
check "but not over the clear-text connection: it was deferred for want of TLS" \
  sh -c "grep '\"domain\":\"strict.test\"' '$T/delivery.log' | grep -q '\"outcome\":\"deferred\",.*\"phase\":\"tls\"'"
check "on a connection of its own (the MX host saw a second one)" \
  wait_for 5 peer_true shared "dest('127.0.1.41')['connections'] == 2"
stop
write_config "$T/sluice.ini" 1 "idle_timeout = 30s
migrate_connections_between_sibling_domains = false"
check "config eval shows the option" \
  sh -c "'$SLUICECTL' -c '$T/sluice.ini' config eval migrate_connections_between_sibling_domains | grep -qi '= false'"
before=$(peer_stat shared "dest('127.0.1.41')['connections']")
start
inject b1 p@one.test
wait_for 10 peer_true shared "dest('127.0.1.41')['messages'] == 3"
inject b1 q@two.test
check "with migration off, two.test's message arrives" \
  wait_for 10 peer_true shared "dest('127.0.1.41')['messages'] == 4"
check "over a connection of its own" peer_true shared "dest('127.0.1.41')['connections'] == $before + 2"
stop
rm -f "$T"/spool/queue/* "$T"/spool/state/* 2>/dev/null

# --- 4. many domains under a small shared limit -------------------------------------------
: >"$T/delivery.log"
write_config "$T/sluice.ini" 8 "idle_timeout = 30s
server_max_outbound_connections = 2"
before=$(peer_stat fast "dest('127.0.1.42')['messages']")
for i in $(seq 40); do inject b1 "m1@d$i.test" "m2@d$i.test"; inject b1 "m3@d$i.test"; done
# shows_wait: queue says the mail waits for the server counter, full at 2 of 2
shows_wait() {
  "$SLUICECTL" -c "$T/sluice.ini" queue | grep -Eq 'waiting for server \* \(2/2\)( since [0-9T:-]+Z)?'
}
start
check "while they drain, queue says which counter the mail is waiting for" wait_for 10 shows_wait
check "80 messages for 40 domains all arrive" \
  wait_for 60 peer_true fast "dest('127.0.1.42')['messages'] == $before + 80"
check "the receiver never saw more than the server limit of 2" \
  peer_true fast "dest('127.0.1.42')['peak'] <= 2"
check "nothing is left in the spool" wait_for 5 queue_empty

# --- 5. a busy counter table stays readable -------------------------------------------------
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
rows() { ctl counters "$@" | sed -n '/^SCOPE/,$p' | tail -n +2; }
order=$(rows --scope binding_domain | awk '{print $3}' | grep -nx 'd2.test\|d19.test' | cut -d: -f1 | tr '\n' ' ')
check "keys sort naturally: d2.test before d19.test (rows $order)" \
  sh -c "set -- $order; [ \$# -eq 2 ] && [ \$1 -lt \$2 ]"
check "--scope server keeps the server's row alone" \
  test "$(rows --scope server | awk '{print $1}' | sort -u)" = server
check "--match keeps the keys that match" \
  test "$(rows --match '*d1?.test' | wc -l)" -eq 10
jq_py() { python3 -c "import json,sys; c=json.load(sys.stdin)['counters']; $1"; }
check "--nonzero drops the idle counters" \
  sh -c "'$SLUICECTL' -c '$T/sluice.ini' counters --json --nonzero | python3 -c \"import json,sys; sys.exit(any(c['in_use'] == 0 and c['waiting'] == 0 for c in json.load(sys.stdin)['counters']))\""
peaks=$(ctl counters --json --sort peak | jq_py "print(' '.join(str(x['peak']) for x in c))")
check "--sort peak puts the highest peaks first (the server's 2 before the domains' 1)" \
  test "$peaks" = "$(tr ' ' '\n' <<<"$peaks" | sort -rn | tr '\n' ' ' | sed 's/ $//')" -a \
  "${peaks%% *}" -gt "${peaks##* }"

# --- 6. a worker's refusal by a host counter is logged as held, not deferred ----------------
inject b1 one@h1.test &
first=$!
inject b1 two@h2.test
wait "$first"
check "both messages behind the host limit of 1 arrive" \
  wait_for 20 peer_true slow "dest('127.0.1.40')['messages'] == 33"
held=$(grep '"domain":"h[12].test"' "$T/delivery.log" | grep -c '"outcome":"held".*"phase":"limits"')
echo "# $held attempts held back by the host counter"
check "a part refused by the full host counter is logged as held (not deferred), naming it" \
  sh -c "! grep '\"domain\":\"h[12].test\"' '$T/delivery.log' | grep -q '\"outcome\":\"deferred\"' &&
         { [ $held -eq 0 ] || grep '\"outcome\":\"held\"' '$T/delivery.log' | grep -q '\"refused\":{\"scope\":\"host 127.0.1.40\"'; }"
ctl counters --watch 0.1 --count 2 >"$T/watch.out"
check "--watch into a pipe writes no terminal codes, a separator per snapshot" \
  sh -c "! grep -q \$(printf '\033') '$T/watch.out' && [ \$(grep -c '^--- ' '$T/watch.out') -eq 2 ]"
check "a bad --sort is a usage error" sh -c "'$SLUICECTL' -c '$T/sluice.ini' counters --sort size >/dev/null 2>&1; [ \$? -eq 2 ]"
stop
