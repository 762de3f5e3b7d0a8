#!/usr/bin/env bash
# peers.sh - the SMTP peers the other end-to-end tests rely on do what they claim: the
# scripted sink (tests/peer/sink.py via lib/peer.sh) records exact peak concurrency per
# (source, destination), keeps un-stuffed messages, and its stalls, replies, drops and
# protocol faults take effect, live after a SIGHUP; a private Postfix (lib/postfix.sh)
# receives into Maildirs and relays to the sink.  Clients are python's smtplib and sockets.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
. "$(dirname "$0")/lib/postfix.sh"

A=127.0.1.1 B=127.0.1.2
peer_start mx '{}' $A $B || { not_ok "the sink starts"; exit 1; }
ok "the sink prints READY on $A and $B (port $PEER_PORT)"

# py CODE: run CODE with the helpers below; a failed assert fails the check
cat >"$T/prelude.py" <<'PY'
import json, os, smtplib, socket, sys, threading, time
PORT = int(os.environ["PEER_PORT"])
A, B = "127.0.1.1", "127.0.1.2"

def smtp(dst=A, src="127.0.0.1"):
    return smtplib.SMTP(dst, PORT, source_address=(src, 0), timeout=10)

def raw(dst=A, src="127.0.0.1"):
    s = socket.create_connection((dst, PORT), timeout=10, source_address=(src, 0))
    return s, s.makefile("rb")

def reply(f):
    """One whole SMTP reply: (code, [lines])."""
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            return line[:3], lines

def expect(what, cond):
    if not cond:
        print("failed:", what, file=sys.stderr)
        sys.exit(1)
PY
export T
py() { python3 -c "exec(open('$T/prelude.py').read())
$1"; }
stat_is() { test "$(peer_stat mx "$1")" = "$2"; }

# --- concurrency: sessions held open at once from two sources to two destinations
py '
spec = {("127.0.0.2", A): 3, ("127.0.0.2", B): 2, ("127.0.0.3", A): 4}
n = sum(spec.values())
opened, release = threading.Barrier(n + 1), threading.Event()
def hold(src, dst):
    c = smtp(dst, src); c.ehlo("holder.test")
    opened.wait(); release.wait(); c.quit()
threads = [threading.Thread(target=hold, args=k) for k, v in spec.items() for _ in range(v)]
for t in threads: t.start()
opened.wait(); time.sleep(0.3); release.set()
for t in threads: t.join()
' || not_ok "the holding clients ran"
check "sessions are back to 0 once the clients quit" wait_for 5 stat_is "total['sessions']" 0
check "peak 127.0.0.2>$A is the 3 sessions held" stat_is "pair('127.0.0.2', '$A')['peak']" 3
check "peak 127.0.0.2>$B is 2" stat_is "pair('127.0.0.2', '$B')['peak']" 2
check "peak 127.0.0.3>$A is 4" stat_is "pair('127.0.0.3', '$A')['peak']" 4
check "peak per destination $A is 7" stat_is "dest('$A')['peak']" 7
check "peak per source 127.0.0.2 is 5" stat_is "source('127.0.0.2')['peak']" 5
check "overall peak is 9 and 9 connections were counted" \
  stat_is "(total['peak'], total['connections'])" "[9, 9]"
check "the EHLO name is recorded" stat_is "d['helo']['holder.test']" 9
py '
def churn(src):
    for _ in range(30):
        s, f = raw(A, src); reply(f); f.close(); s.close()   # no QUIT: only the close
threads = [threading.Thread(target=churn, args=("127.0.0.6",)) for _ in range(5)]
for t in threads: t.start()
for t in threads: t.join()
' || not_ok "the reconnecting clients ran"
# Each client is in at most one session at a time, so the peak can never pass 5 (a
# session is over once its client has closed); how close it comes is up to the threads.
churned() { peer_true mx "source('127.0.0.6')['connections'] == 150"; }
check "5 clients reconnecting 30 times each without QUIT: 150 connections" wait_for 5 churned
check "and never more than 5 counted at once (peak $(peer_stat mx "source('127.0.0.6')['peak']"))" \
  peer_true mx "1 <= source('127.0.0.6')['peak'] <= 5"

# --- messages: three on one connection, dot-stuffed content kept un-stuffed
py '
c = smtp(A, "127.0.0.4")
body = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end\r\n"
for i in range(3):
    expect("accepted", c.sendmail("s@src.test", ["r1@dst.test", "r2@dst.test"], body) == {})
c.quit()
open(os.environ["T"] + "/body", "wb").write(body)
' || not_ok "three messages sent"
check "3 messages and 6 recipients accepted from 127.0.0.4" \
  wait_for 5 stat_is "(source('127.0.0.4')['messages'], source('127.0.0.4')['recipients'])" "[3, 6]"
check "max messages on one connection is 3" stat_is "total['max_per_connection']" 3
check "the per-connection histogram has one connection with 3" stat_is "d['per_connection']['3']" 1
check "the stored body is the DATA un-dot-stuffed" \
  stat_is "messages()[-1][1] == open('$T/body', 'rb').read()" true
check "the stored envelope has the sender, recipients, source and destination" \
  stat_is "[messages()[-1][0][k] for k in ('mail_from', 'rcpt_to', 'src', 'dst', 'n_on_conn')]" \
  '["s@src.test", ["r1@dst.test", "r2@dst.test"], "127.0.0.4", "127.0.1.1", 3]'

# --- pipelining: a group answered in order; none counted as a violation
check "a pipelined MAIL/RCPT/RCPT/DATA group gets 4 replies in order" py '
s, f = raw()
reply(f); s.sendall(b"EHLO p.test\r\n"); reply(f)
s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n")
codes = [reply(f)[0] for _ in range(4)]
s.sendall(b"hi\r\n.\r\nQUIT\r\n")
codes += [reply(f)[0], reply(f)[0]]
expect(codes, codes == ["250", "250", "250", "354", "250", "221"])'
check "no protocol error was recorded so far" stat_is "errors" "{}"
check "pipelining after HELO (not advertised) is recorded" py '
s, f = raw()
reply(f); s.sendall(b"HELO p.test\r\n"); reply(f)
s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"); reply(f); reply(f)
s.sendall(b"QUIT\r\n"); reply(f)'
check "... as unadvertised_pipelining" wait_for 5 stat_is "errors.get('unadvertised_pipelining')" 1

# --- stall: 1 s on RCPT TO for $B only, changed live with SIGHUP
check "peer_script loads a new script" peer_script mx \
  '{"127.0.1.2": {"stall": {"rcpt_to": 1}}, "reply": {"rset": "250 2.0.0 scripted"}}'
check "RCPT TO on $B takes at least 1 s" py '
c = smtp(B); c.ehlo(); c.mail("a@x")
t = time.monotonic(); code, _ = c.rcpt("b@y"); dt = time.monotonic() - t
expect(dt, code == 250 and dt >= 1.0)'
check "RCPT TO on $A is not stalled, and the default rule applies there" py '
c = smtp(A); c.ehlo(); c.mail("a@x")
t = time.monotonic(); code, _ = c.rcpt("b@y"); dt = time.monotonic() - t
expect(dt, code == 250 and dt < 0.5)
expect("rset", c.rset() == (250, b"2.0.0 scripted"))'
check "a stall does not hold up other sessions" py '
c = smtp(B); c.ehlo(); c.mail("a@x")
t = threading.Thread(target=c.rcpt, args=("b@y",)); t.start()
time.sleep(0.1)
start = time.monotonic(); d = smtp(A); d.ehlo(); d.quit()
expect("parallel", time.monotonic() - start < 0.5)
t.join()'
check "a client that hangs up during a stall stops counting at once, not after the stall" py '
c = smtp(B); c.ehlo(); c.mail("a@x"); c.sock.settimeout(0.2)
try:
    c.rcpt("b@y"); expect("timeout", False)
except OSError:
    pass
c.close()
t = time.monotonic()
stats = lambda: json.load(open(os.environ["T"] + "/peer.mx/stats.json"))
while stats()["by_dest"][B]["sessions"] != 0:
    expect("still counted", time.monotonic() - t < 0.6)
    time.sleep(0.02)'
check "a bad script is refused and the old one kept" \
  eval '! peer_script mx "{not json" && peer_true mx "d[\"script_errors\"] == 1"'

# --- replies: per phase, per recipient, limited in count
peer_script mx '{"reply": {"mail_from": {"text": "451 4.3.0 try later", "times": 1}},
  "rcpt": [{"match": "^bad", "reply": "550 5.1.1 no such user"}]}' || not_ok "script"
check "MAIL FROM gets the scripted 451 once, then 250" py '
c = smtp()
c.ehlo()
expect("first", c.mail("a@x") == (451, b"4.3.0 try later"))
expect("second", c.mail("a@x")[0] == 250)'
check "a recipient matching ^bad gets 550, the others 250" py '
c = smtp()
refused = c.sendmail("a@x", ["bad1@y", "good@y"], b"Subject: r\r\n\r\nx\r\n")
expect(refused, refused == {"bad1@y": (550, b"5.1.1 no such user")})'
check "only the good recipient is stored" wait_for 5 stat_is "messages()[-1][0]['rcpt_to']" '["good@y"]'
check "the refused recipient is counted" stat_is "total['rcpt_rejected']" 1

# --- drops and broken replies
peer_script mx '{"127.0.1.1": {"drop": "data_end"}, "127.0.1.2": {"drop": "data_body"}}' ||
  not_ok "script"
before=$(peer_stat mx "total['messages']")
for dst in $A $B; do
  check "drop on $dst: the client sees the connection close during DATA" py "
try:
    smtp('$dst').sendmail('a@x', ['b@y'], b'Subject: d\r\n\r\n' + b'line\r\n' * 1000)
    expect('no error', False)
except smtplib.SMTPServerDisconnected:
    pass"
done
check "dropped messages are not counted as accepted" stat_is "total['messages']" "$before"
check "the drops are counted" wait_for 5 stat_is "(events['drop:data_end'], events['drop:data_body'])" "[1, 1]"

peer_script mx '{"garbage": "ehlo", "badcode": "mail_from", "ehlo_reject": false,
  "127.0.1.2": {"ehlo_reject": true, "garbage": []}}' || not_ok "script"
check "garbage: a non-SMTP line instead of the EHLO reply" py '
s, f = raw(); reply(f); s.sendall(b"EHLO g.test\r\n")
line = f.readline(); expect(line, not line[:3].isdigit())'
check "badcode: MAIL FROM answered 999" py '
s, f = raw(B); reply(f); s.sendall(b"HELO g.test\r\n"); reply(f)
s.sendall(b"MAIL FROM:<a@x>\r\n"); code, _ = reply(f); expect(code, code == "999")'
check "ehlo_reject: EHLO gets 5xx on $B, HELO 250" py '
s, f = raw(B); reply(f); s.sendall(b"EHLO g.test\r\n"); c1, _ = reply(f)
s.sendall(b"HELO g.test\r\n"); c2, _ = reply(f)
expect((c1, c2), c1[0] == "5" and c2 == "250")'

peer_script mx '{"trickle": "greeting", "127.0.1.2": {"trickle": [], "endless": "ehlo"}}' ||
  not_ok "script"
check "trickle: the greeting comes one byte per second" py '
s, f = raw(); t = time.monotonic()
first = s.recv(1); second = s.recv(1); dt = time.monotonic() - t
expect(dt, first + second == b"22" and 0.9 <= dt < 3)'
check "endless: 200 kB of 250- lines and no last line" py '
s, f = raw(B); reply(f); s.sendall(b"EHLO e.test\r\n")
n = 0
while n < 200000:
    line = f.readline(); n += len(line)
    expect(line, line.startswith(b"250-"))
s.close()'
peer_script mx '{"hugeline": "mail_from"}' || not_ok "script"
check "hugeline: MAIL FROM answered with 1 MB without a newline" py '
s, f = raw(B); reply(f); s.sendall(b"HELO h.test\r\nMAIL FROM:<a@x>\r\n"); reply(f)
got = f.read(1 << 20)
expect(len(got), len(got) == 1 << 20 and b"\n" not in got)
s.close()'
check "the sink still answers and every session ended" wait_for 10 stat_is "total['sessions']" 0

# --- SIZE, hold, and a per-connection message limit
peer_script mx '{"size": 1000, "hold": 0.3, "max_messages": 2}' || not_ok "script"
check "SIZE 1000 is advertised; a bigger message gets 552" py '
c = smtp(); c.ehlo()
expect("size", c.esmtp_features.get("size") == "1000")
try:
    c.sendmail("a@x", ["b@y"], b"x" * 2000); expect("accepted", False)
except smtplib.SMTPSenderRefused as e:
    expect(e.smtp_code, e.smtp_code == 552)'
check "hold: the reply to the final dot waits 0.3 s; the 3rd MAIL on a connection gets 421" py '
c = smtp()
t = time.monotonic(); c.sendmail("a@x", ["b@y"], b"hi\r\n"); dt = time.monotonic() - t
expect(dt, dt >= 0.3)
c.sendmail("a@x", ["b@y"], b"hi\r\n")
try:
    c.sendmail("a@x", ["b@y"], b"hi\r\n"); expect("third", False)
except (smtplib.SMTPSenderRefused, smtplib.SMTPServerDisconnected):
    pass'

# --- throughput: many pipelined sessions at once, on a sink that keeps no files (as in the
# benchmark); judged by the sink's CPU time per message, which the machine's load does not skew
PEER_MAILDIR=0 peer_start fast '{}' $A || not_ok "a sink without maildir starts"
cpu() { awk '{print $14 + $15}' "/proc/$(peer_pid fast)/stat"; }
cpu0=$(cpu)
rate=$(py '
import asyncio
N = 200
async def one(n, greeted, all_in):
    r, w = await asyncio.open_connection(A, PORT)
    async def rep():
        while True:
            line = await r.readline()
            if line[3:4] != b"-": return line
    await rep(); w.write(b"EHLO t.test\r\n"); await rep()
    greeted.append(1)
    if len(greeted) == N: all_in.set()
    await all_in.wait()
    for i in range(n):
        w.write(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
        for _ in range(3): await rep()
        w.write(b"Subject: t\r\n\r\nbody\r\n.\r\n")
        expect("250", (await rep()).startswith(b"250"))
    w.write(b"QUIT\r\n"); await rep(); w.close()
async def main():
    t = time.monotonic()
    greeted, all_in = [], asyncio.Event()
    await asyncio.gather(*(one(20, greeted, all_in) for _ in range(N)))
    print(int(4000 / (time.monotonic() - t)))
asyncio.run(main())')
ticks=$(($(cpu) - cpu0))
per_cpu_s=$((4000 * $(getconf CLK_TCK) / (ticks > 0 ? ticks : 1)))
check "200 concurrent sessions deliver 4000 messages (${rate:-?} msg/s here, $per_cpu_s per CPU-second of the sink)" \
  test "$per_cpu_s" -ge 2000
check "... all accepted" wait_for 5 peer_true fast "total['messages'] == 4000"
check "... and the sink saw 200 at once at its peak" peer_true fast "dest('$A')['peak'] == 200"
peer_stop fast

# --- STARTTLS, with a throw-away certificate
if openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=sink.test \
  -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1; then
  PEER_ARGS="--tls-cert $T/cert.pem --tls-key $T/key.pem" peer_start tls '{"starttls": true}' $A ||
    not_ok "a TLS sink starts"
  check "STARTTLS is advertised and a message goes through over TLS" py '
import ssl
c = smtp(); c.ehlo()
expect("advertised", c.has_extn("starttls"))
c.starttls(context=ssl._create_unverified_context()); c.ehlo()
expect("not again", not c.has_extn("starttls"))
expect("sent", c.sendmail("a@x", ["b@y"], b"Subject: tls\r\n\r\nsecret\r\n") == {})
c.quit()'
  check "the sink counts the TLS session and marks the message" \
    wait_for 5 peer_true tls "total['tls'] == 1 and messages()[0][0]['tls']"
  peer_stop tls
else
  not_ok "openssl makes a test certificate"
fi

# --- SIGTERM: final stats written, exit 0
peer_stop mx; rc=$?
check "SIGTERM: the sink exits" test "$rc" -eq 0
check "the final stats count every message delivered above" \
  stat_is "total['messages']" 7

# --- Postfix: a real receiving server, and a relay to the sink
down() { ! postfix_up "$@"; }
pf_port=$(peer_free_port 127.0.1.3)
if postfix_start 127.0.1.3 "$pf_port" example.test; then
  ok "a private Postfix answers 220 on 127.0.1.3:$pf_port"
  check "Postfix accepts a message for example.test and refuses other domains" py "
c = smtplib.SMTP('127.0.1.3', $pf_port, timeout=10)
expect('ok', c.sendmail('s@src.test', ['joe@example.test'], b'Subject: pf\r\n\r\nhello postfix\r\n') == {})
try:
    c.sendmail('s@src.test', ['joe@elsewhere.test'], b'x\r\n'); expect('relayed', False)
except smtplib.SMTPRecipientsRefused as e:
    expect(e.recipients, e.recipients['joe@elsewhere.test'][0] == 554)"
  delivered() { test "$(postfix_delivered)" -eq 1; }
  check "the message lands in example.test/joe's Maildir" wait_for 10 delivered
  f=$(find "$POSTFIX_MAIL/example.test/joe/new" -type f 2>/dev/null | head -1)
  check "with its content" grep -q '^hello postfix' "${f:-/dev/null}"
  check "and its subject" grep -q '^Subject: pf' "${f:-/dev/null}"
  receiver=$POSTFIX_DIR
else
  not_ok "a private Postfix answers 220"
fi

peer_start relayed '{}' 127.0.1.1 || not_ok "a second sink starts"
rl_port=$(peer_free_port 127.0.1.4)
if postfix_relay_start 127.0.1.4 "$rl_port" 127.0.1.1 "$PEER_PORT" "smtp_bind_address = 127.0.0.5"; then
  ok "a Postfix relay answers 220 on 127.0.1.4:$rl_port"
  py "
c = smtplib.SMTP('127.0.1.4', $rl_port, timeout=10)
expect('ok', c.sendmail('s@src.test', ['x@anywhere.test'], b'Subject: rl\r\n\r\nrelayed\r\n') == {})" ||
    not_ok "the relay accepts a message"
  check "the relay delivers it to the sink from 127.0.0.5" \
    wait_for 20 peer_true relayed "pair('127.0.0.5', '127.0.1.1')['messages'] == 1"
  check "with its content" peer_true relayed "b'relayed' in messages()[0][1]"
  check "the relay's queue is empty" test "$(postfix_queued)" -eq 0
  relay=$POSTFIX_DIR
  postfix_stop "$relay"
  check "postfix_stop ends the relay and only it" down 127.0.1.4 "$rl_port"
else
  not_ok "a Postfix relay answers 220"
fi
if [ -n "${receiver:-}" ]; then
  check "the receiving Postfix still runs" postfix_up 127.0.1.3 "$pf_port"
  postfix_stop "$receiver"
  check "postfix_stop ends it" down 127.0.1.3 "$pf_port"
fi
