#!/usr/bin/env bash
# bdat_close.sh - a receiver that closes while a BDAT run is still being written to it (here a
# 421 at its limit of messages per connection, as large providers do): every message it took
# before is recorded delivered, and none is sent twice, over TLS as in clear.  The run's
# replies are read between its pieces as they arrive, and those that arrive while the write
# fails are still read (in clear and over TLS) before the session ends.
# Whether a close lands in the middle of a write depends on the socket buffers (ten receivers,
# eight over TLS, make it likely, not certain); the cases that do not depend on them are
# test_smtp's test_chunked_write_fails_tls and test_chunked_replies_between_pieces.  This is
# the whole path: worker, spool and a real TLS receiver that takes BDAT (tests/peer/sink.py).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/ca.sh"
ca_init
ca_issue mx mx.test

PEER_ARGS="--tls-cert $CA_DIR/mx.crt --tls-key $CA_DIR/mx.key" \
  peer_start mx '{"starttls": true, "chunking": true, "max_messages": 3}' \
  127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4 127.0.1.5 127.0.1.6 127.0.1.7 127.0.1.8 127.0.1.9 \
  127.0.1.10
port=$(peer_port mx)
shm=/sluice-e2e-bdatclose-$$
D=10 M=12 # domains, messages of about 300 KB each
{
  ini_global 4
  cat <<INI
tls = opportunistic
retry_interval = 1s
max_retry_interval = 2s
idle_timeout = 1s

[binding "b1"]
bind_address = 127.0.0.2
INI
  for d in $(seq 1 $D); do
    printf '\n[domain "d%d.test"]\nroute = 127.0.1.%d:%d\n' "$d" "$d" "$port"
    [ "$d" -gt 8 ] && printf 'tls = disabled\n'
  done
} >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
python3 -c "import sys; sys.stdout.write('Subject: big\r\n\r\n' + ('x' * 70 + '\r\n') * 4200)" >"$T/msg"
for d in $(seq 1 $D); do
  for m in $(seq 1 $M); do ctl inject --binding b1 -f s@sender.test "r$m@d$d.test" <"$T/msg" >/dev/null; done
done
check "$((D * M)) messages queued" test "$(find "$T/spool/queue" -type f | wc -l)" -eq $((D * M))
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
empty() { [ -z "$(find "$T/spool/queue" -type f)" ]; }
check "the queue drains" wait_for 120 empty
delivered=$(grep -c '"outcome":"delivered"' "$T/delivery.log")
took=$(peer_stat mx "total['messages']")
check "every message is logged delivered once ($delivered)" test "$delivered" -eq $((D * M))
check "the receivers took each once: $took for $((D * M))" test "$took" -eq $((D * M))
check "... over TLS for d1..d8" test "$(peer_stat mx "sum(dest('127.0.1.%d' % i)['tls'] > 0 for i in range(1, 9))")" -eq 8
check "the receivers closed connections at their limit (421)" \
  grep -q '"outcome":"deferred".*421 4.7.0 Too many messages on this connection' "$T/delivery.log"
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
echo "1..$_n"
