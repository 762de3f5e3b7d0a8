#!/usr/bin/env bash
# dns_cache.sh - a worker's memory of DNS answers lasts no longer than any record in them: an
# MX host whose address moves (its A record's TTL short, the MX record's long, as providers
# set them before a move) is followed once the old address is out of date, not when the MX
# record is.  One worker, so that the second message meets the first one's answer; one
# delivery per connection, so that it opens a connection of its own.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-dnscache-$$

# zone ADDRESS: moving.test's MX for an hour, its host's address for 2 s
zone() {
  dns_zone test <<EOF
moving       3600 MX 10 mx.moving
mx.moving    2    A  $1
EOF
}
zone 127.0.1.41
dns_start
peer_start sink '{}' 127.0.1.41 127.0.1.42
{
  ini_global 1
  cat <<INI
dns_server = $DNS_SERVER
smtp_port = $(peer_port sink)

[binding "b1"]
bind_address = 127.0.0.2

[domain "moving.test"]
max_deliveries_per_connection = 1
INI
} >"$T/sluice.ini"
sluiced_start

inject() { printf 'Subject: %s\r\n\r\nthe body\r\n' "$1" |
  "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test r@moving.test; }
at() { peer_true sink "dest('$1')['messages'] == $2"; }

inject first >/dev/null
check "the first message goes to the host's address" wait_for 20 at 127.0.1.41 1

# the host moves: the same server, the same port, the new address
kill -TERM "$DNS_PID"
wait "$DNS_PID" 2>/dev/null
zone 127.0.1.42
dns_start "$DNS_IP" "$DNS_PORT"
check "the DNS server now gives the new address" \
  test "$(dig +short @"$DNS_IP" -p "$DNS_PORT" mx.moving.test A)" = 127.0.1.42
sleep 3 # the old address's TTL (2 s) is over; the MX record's (an hour) is not

inject second >/dev/null
check "the next message, after the address's TTL, goes to the new address" \
  wait_for 20 at 127.0.1.42 1
check "and not to the old one" at 127.0.1.41 1
echo "1..$_n"
