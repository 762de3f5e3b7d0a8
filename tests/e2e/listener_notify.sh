#!/usr/bin/env bash
# listener_notify.sh - the master hears of a message a listener queued at once, even when a
# signal cuts the listener's notice short (EINTR, as its command timer or a SIGTERM can while
# the notice waits for room on a busy master's socket): the notice is sent again, and the
# message does not wait for the master's next rescan of the queue (a minute).
# strace makes the listener's first sendto(2), the notice, fail with EINTR.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/listener.sh"
shm=/sluice-e2e-lnotify-$$

peer_start mx '{}' 127.0.1.1
port=$(peer_free_port 127.0.0.1)
{
  ini_global 1
  cat <<INI
tls = disabled

[binding "default"]
bind_address = 127.0.0.2

[domain "notify.test"]
route = 127.0.1.1:$(peer_port mx)

[listener "in"]
address = 127.0.0.1:$port
max_sessions = 1
INI
} >"$T/sluice.ini"
"$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
daemon=$!
started "$daemon"
_listener_port[in]=$port
check "the listener serves" wait_for 15 listener_serves in
pid=$(listener_pid in)
check "one listener process ($pid)" test -n "$pid"
[ -n "$pid" ] || exit 1
strace -qq -o "$T/strace.out" -e trace=sendto -e inject=sendto:error=EINTR:when=1 -p "$pid" &
tracer=$!
started "$tracer"
traced() { ! grep -q '^TracerPid:[[:space:]]*0$' "/proc/$pid/status"; }
check "strace holds the listener" wait_for 10 traced
python3 - "$(listener_port in)" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.sendmail("app@sender.test", ["r@notify.test"], "Subject: notify\r\n\r\nbody\r\n")
s.quit()
PY
check "the message is queued (250)" test $? -eq 0
delivered() { grep -q '"outcome":"delivered"' "$T/delivery.log" 2>/dev/null; }
check "and delivered at once, not at the next rescan" wait_for 15 delivered
kill "$tracer" 2>/dev/null
wait "$tracer" 2>/dev/null
check "the notice's first sendto was cut short (EINTR, injected)" \
  grep -q 'sendto(.*= -1 EINTR .*(INJECTED)' "$T/strace.out"
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
echo "1..$_n"
