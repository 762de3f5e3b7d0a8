#!/usr/bin/env bash
# limits.sh - every connection limit of semantics.md, end to end, as the
# receiving side sees it: a real DNS server (nsd) with the seed domains, the
# scripted sink on 127.0.1.x holding each session open so concurrency builds
# up, bindings on 127.0.0.x.  The peak concurrency the sink records per
# (source address, MX) must equal each limit and never pass it:
#   seed 000: example 15, other 5 (its group), outside 30 (global)
#   seed 002: wanadoo.fr and orange.fr share 3 (one regex scope), aol.com and
#             yahoo.com 5 each (a regex max_outbound is not shared)
#   host scope: a [host] scope_max across bindings; a full host is skipped
#   for the next MX; mx_limit and multihomed_limit bound what is tried;
#   max_deliveries_per_connection is reached and never passed;
#   server_max with server_reserve: a domain with no open connection still
#   gets one while a big domain holds every server slot.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-limits-$$

dns_zone com <<'EOF'
example     MX 10 mx.example
mx.example  A  127.0.1.1
aol         MX 10 mx.aol
mx.aol      A  127.0.1.2
yahoo       MX 10 mx.yahoo
mx.yahoo    A  127.0.1.3
EOF
dns_zone fr <<'EOF'
orange      MX 10 mx.orange
wanadoo     MX 10 mx.orange
mx.orange   A  127.0.1.4
EOF
# hosts.test: two MX, the first one's host scope is 2, so the rest goes to the second;
# many.test: five MX of three addresses each, none answering, to count what is tried
dns_zone test <<'EOF'
hosts       MX 10 mx1.hosts
hosts       MX 20 mx2.hosts
mx1.hosts   A  127.0.1.5
mx2.hosts   A  127.0.1.6
reuse       MX 10 mx.reuse
mx.reuse    A  127.0.1.7
big         MX 10 mx.big
mx.big      A  127.0.1.8
small       MX 10 mx.small
mx.small    A  127.0.1.9
many        MX 10 a.many
many        MX 20 b.many
many        MX 30 c.many
many        MX 40 d.many
many        MX 50 e.many
a.many      A 127.0.1.11
a.many      A 127.0.1.12
a.many      A 127.0.1.13
b.many      A 127.0.1.21
b.many      A 127.0.1.22
b.many      A 127.0.1.23
c.many      A 127.0.1.31
d.many      A 127.0.1.41
e.many      A 127.0.1.51
EOF
dns_start

# Every final reply waits 0.3 s: sessions overlap and the limits are reached.
peer_start mx '{"hold": 0.3}' 127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4 127.0.1.5 127.0.1.6 127.0.1.7 \
  127.0.1.8 127.0.1.9
# The many.test hosts drop every connection at the greeting.
peer_start dead '{"drop": "greeting"}' 127.0.1.11 127.0.1.12 127.0.1.13 127.0.1.21 127.0.1.22 \
  127.0.1.23 127.0.1.31 127.0.1.41 127.0.1.51
port=$(peer_port mx)

cat >"$T/sluice.ini" <<INI
[global]
workers = 120
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $port
audit_interval = 1s
idle_timeout = 1s
max_outbound_connections = 30
retry_interval = 1h

[binding_group "group1"]
max_outbound_connections = 5

[binding "example"]
binding_group = group1
bind_address = 127.0.0.2
max_outbound_connections = 15

[binding "other"]
binding_group = group1
bind_address = 127.0.0.3

[binding "outside"]
bind_address = 127.0.0.4

[binding "solo"]
bind_address = 127.0.0.5

[domain "/^(wanadoo|orange)\.fr\$/"]
scope_max_outbound_connections = 3

[domain "/^(aol|yahoo)\.com\$/"]
max_outbound_connections = 5

[host "mx1.hosts.test"]
scope_max_outbound_connections = 2

[domain "reuse.test"]
max_deliveries_per_connection = 3
max_outbound_connections = 1

[domain "many.test"]
mx_limit = 2
multihomed_limit = 2
smtp_port = $(peer_port dead)
connect_timeout = 2s
greeting_timeout = 2s
INI

# inject_many N BINDING DOMAIN: N messages, one recipient each, in parallel batches
inject_many() {
  local n=$1 b=$2 dom=$3
  seq "$n" | xargs -P 8 -I{} sh -c "printf 'Subject: {}\r\n\r\nbody {}\r\n' |
    '$SLUICECTL' -c '$T/sluice.ini' inject --binding $b -f s@sender.test u{}@$dom >/dev/null"
}
queued() { ls "$T/spool/queue" | wc -l; }
queue_at_most() { test "$(queued)" -le "$1"; }
peak() { peer_stat mx "pair('$1', '$2')['peak']"; }
dest_peak() { peer_stat mx "dest('$1')['peak']"; }

inject_many 45 example example.com
inject_many 15 other example.com
inject_many 90 outside example.com
inject_many 12 example orange.fr
inject_many 12 other wanadoo.fr
inject_many 12 outside orange.fr
inject_many 20 solo aol.com
inject_many 20 solo yahoo.com
inject_many 30 solo hosts.test
inject_many 10 solo reuse.test
inject_many 1 solo many.test
check "every message is queued before the start" test "$(queued)" -eq 267

"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
check "every message but the undeliverable one is delivered" \
  wait_for 90 queue_at_most 1
check "the sink accepted 266 messages" \
  wait_for 5 peer_true mx "total['messages'] == 266"

# seed 000: one number per binding, by source address
check "binding example (15, its own) peaks at 15 to example.com" test "$(peak 127.0.0.2 127.0.1.1)" -eq 15
check "binding other (5, from its group) peaks at 5" test "$(peak 127.0.0.3 127.0.1.1)" -eq 5
check "binding outside (30, global) peaks at 30" test "$(peak 127.0.0.4 127.0.1.1)" -eq 30
# seed 002: the regex scope_max is one counter for both domains, all bindings
check "wanadoo.fr and orange.fr together peak at 3 across bindings" test "$(dest_peak 127.0.1.4)" -eq 3
check "aol.com peaks at 5" test "$(dest_peak 127.0.1.2)" -eq 5
check "yahoo.com peaks at 5 (not shared with aol)" test "$(dest_peak 127.0.1.3)" -eq 5
# host scope: the first MX takes 2, the rest spill to the second MX
check "the host-scoped MX peaks at its 2" test "$(dest_peak 127.0.1.5)" -eq 2
check "a full host is skipped for the next MX" test "$(peer_stat mx "dest('127.0.1.6')['messages']")" -gt 0
# reuse: 10 messages over connections of at most 3 deliveries
check "a connection carries up to max_deliveries_per_connection (3)" \
  test "$(peer_stat mx "dest('127.0.1.7')['max_per_connection']")" -eq 3
check "and one connection at a time (limit 1)" test "$(dest_peak 127.0.1.7)" -eq 1
check "10 messages took 4 connections" test "$(peer_stat mx "dest('127.0.1.7')['connections']")" -eq 4

# mx_limit 2 of 5 hosts, multihomed_limit 2 of 3 addresses: exactly 4 addresses tried
tried=$(peer_stat dead "sorted(k for k, v in d['by_dest'].items() if v['connections'] > 0)")
check "mx_limit and multihomed_limit: 4 addresses of the first 2 hosts tried ($tried)" \
  test "$tried" = '["127.0.1.11", "127.0.1.12", "127.0.1.21", "127.0.1.22"]'
check "the undeliverable message is deferred, naming the greeting" \
  grep -q '"domain":"many.test".*"outcome":"deferred".*"phase":"greeting"' "$T/delivery.log"

counts_zero() {
  "$SLUICECTL" -c "$T/sluice.ini" counters --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(any(c["in_use"] for c in d["counters"]))'
}
check "every counter is back at 0 once the queue drained" wait_for 10 counts_zero
over=$("$SLUICECTL" -c "$T/sluice.ini" counters --json | python3 -c '
import json,sys
d=json.load(sys.stdin)
print(" ".join(c["scope"]+":"+c["name"] for c in d["counters"] if c["limit"]>=0 and c["peak"]>c["limit"]))')
check "no counter ever went over its limit ($over)" test -z "$over"
check "every delivery was logged once" \
  test "$(grep -c '"outcome":"delivered"' "$T/delivery.log")" -eq 266

kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM exits 0" test $? -eq 0

# --- server_max 2 with a reserve of 1: big.test fills the server, small.test still gets
# a connection (its binding x domain has none open), and big.test never gets the reserve.
sed -i -e 's/^audit_interval = 1s$/audit_interval = 1s\nserver_max_outbound_connections = 2\nserver_reserve_outbound_connections = 1/' \
  "$T/sluice.ini"
peer_script mx '{"hold": 1.0}'
inject_many 12 solo big.test
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon2.log" &
daemon=$!
started "$daemon"
big_busy() { peer_true mx "dest('127.0.1.8')['sessions'] == 2"; }
check "big.test takes both server slots" wait_for 20 big_busy
inject_many 1 solo small.test
small_done() { peer_true mx "dest('127.0.1.9')['messages'] == 1"; }
check "small.test is delivered through the reserve while big.test holds the server" \
  wait_for 10 small_done
check "while big.test still had mail queued" peer_true mx "dest('127.0.1.8')['messages'] < 12"
check "big.test never went past server_max (2)" test "$(dest_peak 127.0.1.8)" -eq 2
check "every message of big.test is delivered in the end (many.test waits on)" wait_for 60 queue_at_most 1
check "the reserve counter is back at 0" wait_for 10 counts_zero
kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM exits 0" test $? -eq 0
