#!/usr/bin/env bash
# listener_retire.sh - a listener process a reload retired goes within the grace even when its
# client keeps a transaction open for ever (MAIL, then a NOOP every second, each within
# command_timeout): past the longest timeout plus 5 s the master kills it, says so, and the
# client never got 250 for anything, so nothing is lost; a new session is served meanwhile.
# The grace is that of the config the process runs, not the reload's.
# A reload's SIGTERM that reaches a process in a STARTTLS handshake does not break it.  A
# client sending only NOOP, VRFY or RSET is ended after 100 and max_errors more.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/ca.sh"
shm=/sluice-e2e-lretire-$$
lport=$(peer_free_port 127.0.0.1)
ca_init
ca_issue listener listener.test

cat >"$T/sluice.ini" <<INI
[global]
workers = 1
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log

[listener "in"]
address = 127.0.0.1:$lport
max_sessions = 2
command_timeout = 10s
data_timeout = 2s
tls_cert_file = $CA_DIR/listener.crt
tls_key_file = $CA_DIR/listener.key
INI
sluiced_start
answers() { swaks --server 127.0.0.1 --port "$lport" --quit-after EHLO >/dev/null 2>&1; }
check "the listener answers" wait_for 10 answers

# the client: MAIL, then NOOP every second for up to 40 s; it writes when the server closed
python3 - 127.0.0.1 "$lport" "$T/client.out" <<'PY' &
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
f = s.makefile("rb")
out = open(sys.argv[3], "w", buffering=1)
def reply():
    while True:
        line = f.readline()
        if not line:
            return None
        if line[3:4] != b"-":
            return line.decode().strip()
reply()
s.sendall(b"EHLO client.test\r\n"); reply()
s.sendall(b"MAIL FROM:<a@sender.test>\r\n"); out.write("MAIL %s\n" % reply())
out.write("IN TRANSACTION\n")
start = time.time()
try:
    while time.time() - start < 40:
        time.sleep(1)
        s.sendall(b"NOOP\r\n")
        r = reply()
        if r is None:
            break
except OSError:
    pass
out.write("CLOSED after %.1f s\n" % (time.time() - start))
PY
client=$!
started "$client"
wait_for 5 grep -qs "IN TRANSACTION" "$T/client.out"
# the new config's timeouts are shorter: the old process keeps the grace of its own config
sed -i 's/^command_timeout = 10s$/command_timeout = 3s/' "$T/sluice.ini"
t0=$(date +%s)
kill -HUP "$daemon"
wait "$client"
t1=$(date +%s)
echo "# $(tail -1 "$T/client.out")"
check "the retired process is killed after its grace (10 s + 5 s), not kept by the client: $((t1 - t0)) s" \
  test $((t1 - t0)) -lt 30
check "nor before it, by the new config's shorter one (3 s + 5 s): $((t1 - t0)) s" \
  test $((t1 - t0)) -ge 12
check "the master says why" grep -q "listener pid .* of an older config did not finish its session in 15000 ms: killing it" \
  "$T/daemon.log"
check "the new processes serve" answers
check "nothing was queued" test -z "$(ls -A "$T/spool/queue")"

# A reload during a STARTTLS handshake: the signal does not break the handshake; the
# session then ends with 421 at its next command, as any session a reload retires.
python3 - 127.0.0.1 "$lport" "$CA_DIR/ca.crt" "$T/tls.out" <<'PY' &
import socket, ssl, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10)
f = s.makefile("rb")
out = open(sys.argv[4], "w", buffering=1)
def reply(f):
    while True:
        line = f.readline()
        if not line or line[3:4] != b"-":
            return line.decode().strip()
reply(f)
s.sendall(b"EHLO client.test\r\n"); reply(f)
s.sendall(b"STARTTLS\r\n"); out.write("STARTTLS %s\n" % reply(f))
out.write("BEFORE HANDSHAKE\n")
time.sleep(2)  # the reload's SIGTERM reaches the process waiting in the handshake
ctx = ssl.create_default_context(cafile=sys.argv[3])
ctx.check_hostname = False
try:
    t = ctx.wrap_socket(s, server_hostname="listener.test")
    out.write("HANDSHAKE OK\n")
    g = t.makefile("rb")
    t.sendall(b"EHLO client.test\r\n")
    out.write("AFTER %s\n" % reply(g))
except (OSError, ssl.SSLError) as e:
    out.write("HANDSHAKE FAILED %s\n" % e)
PY
client=$!
started "$client"
wait_for 5 grep -qs "BEFORE HANDSHAKE" "$T/tls.out"
sleep 0.5
kill -HUP "$daemon"
wait "$client"
check "a reload does not break a STARTTLS handshake ($(grep HANDSHAKE "$T/tls.out" | tail -1))" \
  grep -q "HANDSHAKE OK" "$T/tls.out"
check "the session then gets 421 ($(grep AFTER "$T/tls.out"))" grep -q "^AFTER 421" "$T/tls.out"
# Nor can a client hold a current process for ever with commands that move no mail: past
# 100 NOOP, VRFY or RSET since its last message each counts as an error, and max_errors (10)
# ends the session; a message sent resets the count.  The count is the session's: three more
# sessions of 90 NOOPs each, on two processes (so one serves at least two of them, one after
# the other), are all answered 250.
python3 - 127.0.0.1 "$lport" "$T/junk.out" "$T/junk2.out" <<'PY'
import socket, sys

class Session:
    def __init__(self):
        self.s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10)
        self.f = self.s.makefile("rb")
        self.reply()
        self.say(b"EHLO client.test")
    def reply(self):
        while True:
            line = self.f.readline()
            if not line or line[3:4] != b"-":
                return line.decode().strip()
    def say(self, cmd):
        self.s.sendall(cmd + b"\r\n")
        return self.reply()
    def noops(self, n):
        for i in range(n):
            r = self.say(b"NOOP")
            if not r.startswith("250"):
                return i, "after %d: %s" % (i + 1, r)
        return n, "all %d 250" % n

a = Session()
out = [a.noops(90)[1]]
for cmd in (b"MAIL FROM:<a@sender.test>", b"RCPT TO:<r@local.test>", b"DATA"):
    a.say(cmd)
out.append("message " + a.say(b"Subject: between\r\n\r\nx\r\n.")[:3])
out.append(a.noops(90)[1])
out.append(a.noops(40)[1])
open(sys.argv[3], "w").write("\n".join(out) + "\n")
later = []
for _ in range(3):
    b = Session()
    later.append(str(b.noops(90)[0]))
    b.say(b"QUIT")
    b.s.close()
open(sys.argv[4], "w").write(" ".join(later) + "\n")
PY
echo "# $(tr '\n' ';' <"$T/junk.out")"
check "90 NOOPs, a message, 90 more: all answered 250" \
  test "$(head -3 "$T/junk.out" | tr '\n' ';')" = "all 90 250;message 250;all 90 250;"
check "then the 110th since the message ends the session with 421" \
  grep -qx "after 20: 421 4.7.0 .* Too many errors, closing connection" "$T/junk.out"
check "later sessions start with no NOOP counted ($(cat "$T/junk2.out"))" \
  test "$(cat "$T/junk2.out")" = "90 90 90"
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
echo "1..$_n"
