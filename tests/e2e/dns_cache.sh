#!/usr/bin/env bash
# dns_cache.sh - a worker's memory of DNS answers lasts no longer than any record in them.
# An MX host whose address moves (its A record's TTL short, the MX record's long, as providers
# set them before a move) is followed once the old address is out of date, not when the MX
# record is; until then the answer is reused.  A record with TTL 0 is never kept, nor is
# an answer that went through a CNAME of TTL 0.  One worker, so that each message meets the
# answers of the ones before; one delivery per connection, so that each opens its own.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-dnscache-$$
KEEP=20 # seconds moving.test's host address may be kept

# zone N: the addresses of step N (1, then 2 once the hosts moved); the MX records for an hour
zone() {
  dns_zone test <<EOF
moving        3600 MX 10 mx.moving
mx.moving     $KEEP A 127.0.1.4$((0 + $1))
zero          3600 MX 10 mx.zero
mx.zero       0    A 127.0.1.4$((4 + $1))
aliased       3600 MX 10 mx.aliased
mx.aliased    0    CNAME host$1.aliased
host1.aliased 3600 A 127.0.1.47
host2.aliased 3600 A 127.0.1.48
EOF
}
zone 1
dns_start
peer_start sink '{}' 127.0.1.41 127.0.1.42 127.0.1.45 127.0.1.46 127.0.1.47 127.0.1.48
{
  ini_global 1
  cat <<INI
dns_server = $DNS_SERVER
smtp_port = $(peer_port sink)

[binding "b1"]
bind_address = 127.0.0.2

[domain "/\.test$/"]
max_deliveries_per_connection = 1
INI
} >"$T/sluice.ini"
sluiced_start

send() { printf 'Subject: %s\r\n\r\nthe body\r\n' "$1" |
  "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test "r@$1.test" >/dev/null; }
at() { peer_true sink "dest('$1')['messages'] == $2"; }
moved() { [ "$(dns_query mx.moving.test A)" = 127.0.1.42 ]; }

send moving
send zero
send aliased
check "moving.test: the first message goes to its host's address" wait_for 20 at 127.0.1.41 1
kept=$SECONDS # its answer is in the worker's memory by now (its TTL began before)
check "zero.test: the first message goes to its host's address" wait_for 20 at 127.0.1.45 1
check "aliased.test: the first message goes to the address the CNAME led to" \
  wait_for 20 at 127.0.1.47 1

# every host moves: the zone file rewritten, nsd reloads it
zone 2
kill -HUP "$DNS_PID"
check "the DNS server gives the new addresses" wait_for 10 moved

send moving
check "moving.test: within its address's TTL the answer kept is used (the old address)" \
  wait_for 20 at 127.0.1.41 2
send zero
check "zero.test: an address of TTL 0 was not kept: the new one at once" \
  wait_for 20 at 127.0.1.46 1
send aliased
check "aliased.test: an answer through a CNAME of TTL 0 was not kept: the new address" \
  wait_for 20 at 127.0.1.48 1

sleep $((kept + KEEP + 2 - SECONDS > 0 ? kept + KEEP + 2 - SECONDS : 0)) # its TTL is over
send moving
check "moving.test: after its address's TTL (the MX record's is an hour) the new address" \
  wait_for 20 at 127.0.1.42 1
check "moving.test: nothing more to the old one" at 127.0.1.41 2
echo "1..$_n"
