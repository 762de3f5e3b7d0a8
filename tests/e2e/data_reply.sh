#!/usr/bin/env bash
# data_reply.sh - a receiver that answers DATA with something other than 354 or a refusal
# (a 250, as a broken or hostile one may) has not taken the message: sluice sends no body
# then, so the attempt is a protocol error that defers the recipients, never a delivery; the
# retry delivers the message whole.  One command at a time (pipelining off) and pipelined.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-datareply-$$

dns_zone test <<'EOF'
one         MX 10 mx.one
mx.one      A  127.0.1.31
piped       MX 10 mx.piped
mx.piped    A  127.0.1.32
EOF
dns_start
# the first DATA on each address is answered 250 (no 354), the next ones as usual; the sink
# behind 127.0.1.31 offers no PIPELINING, so sluice sends one command at a time there
peer_start sink '{"127.0.1.31": {"pipelining": false, "reply": {"data": {"text": "250 2.0.0 no body wanted", "times": 1}}},
                  "127.0.1.32": {"reply": {"data": {"text": "250 2.0.0 no body wanted", "times": 1}}}}' \
  127.0.1.31 127.0.1.32
{
  ini_global 2
  cat <<INI
dns_server = $DNS_SERVER
smtp_port = $(peer_port sink)
idle_timeout = 1s
retry_interval = 1s
max_retry_interval = 2s

[binding "b1"]
bind_address = 127.0.0.2
INI
} >"$T/sluice.ini"
sluiced_start

inject() { printf 'Subject: %s\r\nX-Test: %s\r\n\r\nthe body\r\n' "$1" "$1" |
  "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f s@sender.test "r@$1.test"; }
log_has() { grep -q "$1" "$T/delivery.log" 2>/dev/null; }
for dom in one piped; do
  id=$(inject "$dom")
  check "$dom: the 250 to DATA defers the recipient (a protocol error, not a delivery)" \
    wait_for 20 log_has "\"id\":\"$id\".*\"outcome\":\"deferred\".*reply 250 to DATA, where 354 was due"
  check "$dom: the retry delivers it" wait_for 20 log_has "\"id\":\"$id\".*\"outcome\":\"delivered\""
  check "$dom: the first attempt was not logged delivered" \
    test "$(grep -c "\"id\":\"$id\".*\"outcome\":\"delivered\"" "$T/delivery.log")" -eq 1
  check "$dom: the sink has the message once, with its body" \
    peer_true sink "sum(1 for e, b in messages() if b'X-Test: $dom' in b and b'the body' in b) == 1"
done
echo "1..$_n"
