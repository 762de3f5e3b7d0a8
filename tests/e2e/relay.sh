#!/usr/bin/env bash
# relay.sh - sluice relaying through sluice: instance A's workers deliver a backlog to
# instance B's listener, which offers CHUNKING, so A sends BDAT runs (many transactions per
# write) to a server that is also ours; B delivers to the scripted sink.  Asserted: every
# message arrives once and byte for byte (dot-led lines, a body of several 64 KB pieces);
# B logs with=BDAT for each (with=DATA for the domain with chunking = off); the 452 B gives
# to recipients past its max_recipients inside a run leaves them deferred at A, which
# delivers them on its retry; both queues end empty.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

N=40 # messages to sink.test: more than two runs of 16

peer_start sink '{}' 127.0.1.32
sport=$(peer_port sink)
lport=$(peer_free_port 127.0.1.31)
mkdir -p "$T/a" "$T/b" "$T/msgs"

cat >"$T/b.ini" <<INI
[global]
workers = 2
shm_name = /sluice-e2e-relay-b-$$
spool_dir = $T/b/spool
delivery_log = $T/b/delivery.log
ehlo_hostname = relay-b.test
tls = disabled

[binding "out"]
bind_address = 127.0.0.4

[domain "/^(plain\\.)?sink\\.test\$/"]
route = 127.0.1.32:$sport

[listener "in"]
address = 127.0.1.31:$lport
binding = out
relay_networks = 127.0.0.2/32
max_sessions = 4
max_recipients = 3
INI

cat >"$T/a.ini" <<INI
[global]
workers = 2
shm_name = /sluice-e2e-relay-a-$$
spool_dir = $T/a/spool
delivery_log = $T/a/delivery.log
ehlo_hostname = relay-a.test
idle_timeout = 1s
retry_interval = 1s
max_retry_interval = 2s

[binding "b1"]
bind_address = 127.0.0.2

[domain "sink.test"]
route = 127.0.1.31:$lport

[domain "plain.sink.test"]
route = 127.0.1.31:$lport
chunking = off
INI

# The messages, each with its own Date and Message-ID (so B adds only its Received):
# every fourth with lines a receiver must not take for the end of data, message 7 of 300 KB.
python3 - "$T/msgs" "$N" <<'PY'
import sys
out, n = sys.argv[1], int(sys.argv[2])
def write(name, tag, body):
    head = (f"From: app@sender.test\r\nTo: r@sink.test\r\nSubject: relay {tag}\r\n"
            f"Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{tag}@sender.test>\r\n"
            f"X-Relay: {tag}\r\n\r\n")
    with open(f"{out}/{name}.eml", "wb") as f:
        f.write((head + body).encode())
for i in range(n):
    body = f"message {i}\r\n"
    if i % 4 == 0:
        body += ".\r\n..\r\n.leading dot\r\n. \r\nend\r\n"
    if i == 7:
        body += "".join(f"{j:06d} " + "y" * 70 + "\r\n" for j in range(4000))
    write(f"m{i}", f"m{i}", body)
write("multi", "multi", "five recipients, three per transaction at B\r\n")
for i in range(3):
    write(f"p{i}", f"p{i}", f"plain {i}\r\n.\r\n")
PY

# The backlog is queued while A is stopped, so its workers find runs' worth of it at start.
inject() { "$SLUICECTL" -c "$T/a.ini" inject --binding b1 -f app@sender.test "$@"; }
ok_inject=0
for i in $(seq 0 $((N - 1))); do
  inject "m$i@sink.test" <"$T/msgs/m$i.eml" >/dev/null && ok_inject=$((ok_inject + 1))
done
inject r1@sink.test r2@sink.test r3@sink.test r4@sink.test r5@sink.test \
  <"$T/msgs/multi.eml" >/dev/null && ok_inject=$((ok_inject + 1))
for i in 0 1 2; do
  inject "p$i@plain.sink.test" <"$T/msgs/p$i.eml" >/dev/null && ok_inject=$((ok_inject + 1))
done
check "the backlog is queued at A ($N + 1 + 3 messages)" [ "$ok_inject" -eq $((N + 4)) ]

"$SLUICED" -c "$T/b.ini" >"$T/b.log" 2>&1 &
started $!
check "B's listener answers" wait_for 10 python3 -c \
  "import socket; socket.create_connection(('127.0.1.31', $lport), 1)"
"$SLUICED" -c "$T/a.ini" >"$T/a.log" 2>&1 &
started $!

# at the sink: N messages, the multi-recipient one in two transactions (3 + 2), 3 plain
sink_count() { peer_true sink "len(messages()) >= $1"; }
check "every message reaches the sink through B" wait_for 30 sink_count $((N + 2 + 3))
queue_empty() { [ -d "$1" ] && [ -z "$(find "$1" -type f -print -quit)" ]; }
check "A's and B's queues end empty" \
  wait_for 10 eval 'queue_empty "$T/a/spool/queue" && queue_empty "$T/b/spool/queue"'

# Byte for byte: each message at the sink is B's Received header, then exactly what was
# injected at A; and each arrives once.
python3 - "$(peer_dir sink)/maildir" "$T/msgs" "$N" >"$T/compare.out" 2>&1 <<'PY'
import json, os, re, sys
md, msgs, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = {}
for name in sorted(os.listdir(md)):
    if not name.endswith(".msg"):
        continue
    env, _, body = open(os.path.join(md, name), "rb").read().partition(b"\n")
    m = re.search(rb"\r\nX-Relay: (\S+)\r\n", body)
    tag = m.group(1).decode() if m else "?"
    seen.setdefault(tag, []).append((json.loads(env), body))
bad = []
for tag, got in seen.items():
    orig = open(os.path.join(msgs, f"{tag}.eml"), "rb").read()
    for env, body in got:
        head = body[: len(body) - len(orig)]
        if not body.endswith(orig) or not head.startswith(b"Received: from ") \
                or not re.fullmatch(rb"Received: from [^\r\n]*\r\n(\t[^\r\n]*\r\n)+", head):
            bad.append(tag)
once = all(len(seen.get(f"m{i}", [])) == 1 for i in range(n))
once = once and all(len(seen.get(f"p{i}", [])) == 1 for i in range(3))
rcpts = sorted(r for env, b in seen.get("multi", []) for r in env["rcpt_to"])
print("intact" if not bad else "damaged: " + " ".join(sorted(set(bad))))
print("once" if once else "missing or twice: " + json.dumps({t: len(g) for t, g in seen.items()}))
print("multi " + " ".join(rcpts) + " in %d" % len(seen.get("multi", [])))
PY
check "every message arrives byte for byte after B's Received header" grep -qx intact "$T/compare.out"
check "every message arrives once" grep -qx once "$T/compare.out"
check "the five recipients arrive, in two transactions (B takes three at a time)" \
  grep -qx "multi r1@sink.test r2@sink.test r3@sink.test r4@sink.test r5@sink.test in 2" \
  "$T/compare.out"

# What B's listener saw: BDAT for sink.test, DATA where A has chunking = off.
nqueued() { grep -cE "info: queued [A-Za-z0-9]+: listener=in client=127.0.0.2 .* with=$1 " "$T/b.log"; }
check "B took each sink.test transaction with BDAT ($N + 2)" [ "$(nqueued BDAT)" -eq $((N + 2)) ]
check "and each plain.sink.test one with DATA (chunking = off at A)" [ "$(nqueued DATA)" -eq 3 ]

# The 452 inside a run: A logged r4 and r5 deferred with B's reply, then delivered.
line_of() { grep -F "\"$1\"" "$T/a/delivery.log" | grep -F "\"outcome\":\"$2\""; }
check "A logged B's 452 for the recipients past max_recipients, deferred" \
  eval 'line_of r4@sink.test deferred | grep -q "452 4.5.3"'
check "and delivered them on its retry" \
  eval 'line_of r4@sink.test delivered | grep -qF r5@sink.test'
check "A logged each delivery once ($N, 3 + 2 of the five recipients, 3 plain)" \
  [ "$(grep -c '"outcome":"delivered"' "$T/a/delivery.log")" -eq $((N + 2 + 3)) ]
check "neither daemon logged a failure" \
  eval '! grep -qE ": (fatal|panic): |warning: worker|AddressSanitizer|runtime error" "$T/a.log" "$T/b.log"'

echo "1..$_n"
