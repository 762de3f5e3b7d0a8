#!/usr/bin/env bash
# body_8bit.sh - RFC 6152: a message whose body has 8-bit octets goes with BODY=8BITMIME to a
# receiver that offers 8BITMIME; a 7-bit one goes without it; a receiver that does not offer
# 8BITMIME is never sent the parameter (it would refuse the MAIL), and still gets the message.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-8bit-$$

dns_zone test <<'EOF2'
eight       MX 10 mx.eight
mx.eight    A  127.0.1.34
seven       MX 10 mx.seven
mx.seven    A  127.0.1.35
EOF2
dns_start
peer_start sink '{"127.0.1.35": {"8bitmime": false}}' 127.0.1.34 127.0.1.35
{
  ini_global 1
  cat <<INI
dns_server = $DNS_SERVER
smtp_port = $(peer_port sink)

[binding "b1"]
bind_address = 127.0.0.2
INI
} >"$T/sluice.ini"
sluiced_start

inject() { printf 'Subject: %s\r\nX-Test: %s\r\n\r\n%s\r\n' "$2" "$2" "$3" |
  "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test "$1" >/dev/null; }
inject r@eight.test latin1 "caf$(printf '\351') cr$(printf '\350')me"
inject r@eight.test ascii "plain text"
inject r@seven.test latin1-to-seven "caf$(printf '\351')"
params() { peer_stat sink "[e['mail_params'] for e, b in messages() if b'X-Test: $1\r' in b]"; }
arrived() { [ "$(peer_stat sink "len(messages())")" -eq 3 ]; }
check "the three messages arrive" wait_for 30 arrived
check "the 8-bit body goes with BODY=8BITMIME ($(params latin1))" \
  peer_true sink "any('BODY=8BITMIME' in e['mail_params'] for e, b in messages() if b'X-Test: latin1\r' in b)"
check "its octets arrive as they were" \
  peer_true sink "any(b'caf\xe9 cr\xe8me' in b for e, b in messages())"
check "the 7-bit body goes without BODY ($(params ascii))" \
  peer_true sink "all(not any(p.startswith('BODY=') for p in e['mail_params']) for e, b in messages() if b'X-Test: ascii' in b)"
check "a receiver without 8BITMIME is not sent BODY= ($(params latin1-to-seven))" \
  peer_true sink "all(not any(p.startswith('BODY=') for p in e['mail_params']) for e, b in messages() if b'X-Test: latin1-to-seven' in b)"
echo "1..$_n"
