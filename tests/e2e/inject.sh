#!/usr/bin/env bash
# inject.sh - `sluicectl inject` and `sluicectl queue` through the real binary,
# with no daemon: what lands in the spool, what is refused (one line, non-zero
# exit, nothing left behind), how a binding group spreads its mail, what the
# queue listing shows, and the "N <id>" datagram a running master would get.
. "$(dirname "$0")/lib/tap.sh"

spool=$T/spool rspool=$T/rspool
cat >"$T/main.ini" <<EOF
[global]
spool_dir = $spool
[binding_group "g"]
[binding "a"]
binding_group = g
[binding "b"]
binding_group = g
[binding "solo"]
EOF
# Refusals go to their own spool, which must stay empty.
cat >"$T/refuse.ini" <<EOF
[global]
spool_dir = $rspool
max_message_size = 2000
[binding_group "g"]
[binding "a"]
binding_group = g
EOF

inject() { "$SLUICECTL" -c "$T/main.ini" inject "$@"; }
files_in() { find "$1" -type f 2>/dev/null | wc -l; }
is_id() { [[ $1 =~ ^[0-9A-Za-z]{20}$ ]]; }

# --- a message is queued and its id printed ---
id=$(printf 'Subject: hello\n\n.hidden line\nlast line without end' |
  inject -f 'sender@example.org' a@Example.COM b@example.com a@EXAMPLE.com c@other.net)
rc=$?
check "inject exits 0" [ "$rc" -eq 0 ]
check "inject prints a queue id ($id)" is_id "$id"
check "the message is in queue/" test -f "$spool/queue/$id"
check "nothing is left in tmp/" [ "$(files_in "$spool/tmp")" -eq 0 ]
check "mail without a binding goes to binding default" grep -qx 'binding default' "$spool/queue/$id"
check "recipients grouped by domain into parts, duplicates kept once" \
  [ "$(grep '^rcpt ' "$spool/queue/$id" | tr '\n' '|')" = \
    'rcpt 0 a@Example.COM|rcpt 0 b@example.com|rcpt 1 c@other.net|' ]
check "the body is stored CRLF-normalised and dot-stuffed" python3 - "$spool/queue/$id" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
body = data.split(b"\n\n", 1)[1]
sys.exit(body != b"Subject: hello\r\n\r\n..hidden line\r\nlast line without end\r\n")
PY

id_null=$(echo hi | inject --binding solo -f '' postmaster@example.net)
check "the null sender (-f '') is accepted" grep -qx 'from ' "$spool/queue/$id_null"
check "--binding picks that binding" grep -qx 'binding solo' "$spool/queue/$id_null"

# --- refusals: one line on stderr, non-zero exit, nothing in the spool ---
# refused DESCRIPTION WORD STDIN-FILE ARGS...: the refusal names WORD
refused() {
  local what=$1 word=$2 input=$3 rc lines; shift 3
  "$SLUICECTL" -c "$T/refuse.ini" inject "$@" <"$input" >"$T/out" 2>"$T/err"; rc=$?
  lines=$(wc -l <"$T/err")
  if [ "$rc" -ne 0 ] && [ "$lines" -eq 1 ] && [ ! -s "$T/out" ] &&
    grep -q "^sluicectl: inject: .*$word" "$T/err" && [ "$(files_in "$rspool")" -eq 0 ]; then
    ok "refused: $what ($(cat "$T/err"))"
  else
    not_ok "refused: $what: rc=$rc, stderr: $(cat "$T/err"), stdout: $(cat "$T/out"), files: $(files_in "$rspool")"
  fi
}
printf 'Subject: x\n\nbody\n' >"$T/good.txt"
: >"$T/empty.txt"
printf 'Subject: x\n\nbad\0byte\n' >"$T/nul.txt"
head -c 3000 /dev/zero | tr '\0' 'x' | fold -w 50 >"$T/big.txt"
{ printf 'Subject: x\n\n'; head -c 999 /dev/zero | tr '\0' 'y'; echo; } >"$T/longline.txt"

refused "bad sender" "bad sender" "$T/good.txt" -f 'no spaces@example.org' r@example.com
refused "recipient with CR" "CR" "$T/good.txt" -f s@example.org $'r\r@example.com'
refused "recipient without domain" "bad recipient" "$T/good.txt" -f s@example.org plainuser
refused "no recipient" "no recipient" "$T/good.txt" -f s@example.org
refused "unknown binding" "unknown binding \"nope\"" "$T/good.txt" --binding nope -f s@example.org r@example.com
refused "unknown binding group" "unknown binding group \"nope\"" "$T/good.txt" --binding-group nope -f s@example.org r@example.com
refused "empty message" "empty message" "$T/empty.txt" -f s@example.org r@example.com
refused "message over max_message_size" "max_message_size" "$T/big.txt" -f s@example.org r@example.com
refused "NUL byte in the message" "NUL" "$T/nul.txt" -f s@example.org r@example.com
"$SLUICECTL" -c "$T/refuse.ini" inject -f s@example.org r@example.com <"$T/good.txt" >/dev/null
check "the same spool accepts a good message" [ "$(files_in "$rspool/queue")" -eq 1 ]
rm -rf "$rspool"
refused "line over 998 octets" "998" "$T/longline.txt" -f s@example.org r@example.com
# a queue id that cannot be printed (stdout full): the caller would send again, so nothing
# stays queued
"$SLUICECTL" -c "$T/refuse.ini" inject -f s@example.org r@example.com <"$T/good.txt" \
  >/dev/full 2>"$T/err"
rc=$?
check "an id that cannot be printed: exit $rc, one line, nothing queued ($(cat "$T/err"))" \
  test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a "$(files_in "$rspool/queue")" -eq 0
"$SLUICECTL" -c "$T/refuse.ini" inject -f s@example.org r@example.com <"$T/good.txt" \
  >&- 2>"$T/err"
rc=$?
check "nor with stdout closed: exit $rc, nothing queued ($(cat "$T/err"))" \
  test "$rc" -eq 1 -a "$(files_in "$rspool/queue")" -eq 0
"$SLUICECTL" -c "$T/refuse.ini" inject r@example.com <"$T/good.txt" >/dev/null 2>&1
check "inject without -f is a usage error (exit 2)" [ $? -eq 2 ]

# --- a binding group spreads its mail evenly ---
for _ in $(seq 200); do
  inject --binding-group g -f s@example.org r@spread.example <"$T/good.txt" >>"$T/spread.ids" || break
done
na=$(cd "$spool/queue" && grep -lx 'binding a' $(cat "$T/spread.ids") | wc -l)
nb=$(cd "$spool/queue" && grep -lx 'binding b' $(cat "$T/spread.ids") | wc -l)
spread_ok() { [ "$((na + nb))" -eq 200 ] && [ "$na" -ge 60 ] && [ "$nb" -ge 60 ]; }
check "200 injects into group g: binding a got $na, b got $nb (each >= 60)" spread_ok

# --- sluicectl queue, text and JSON ---
"$SLUICECTL" -c "$T/main.ini" queue >"$T/queue.txt" 2>"$T/queue.err"
check "queue exits 0" [ $? -eq 0 ]
check "queue lists the message with its parts" \
  grep -q "^$id .* binding default  from <sender@example.org>" "$T/queue.txt"
check "queue shows part 1 other.net pending, due now" \
  grep -q "part 1 other.net: 1 pending, 0 done, 0 attempts, next now" "$T/queue.txt"
check "queue counts every message" grep -qx '202 messages queued' "$T/queue.txt"
"$SLUICECTL" -c "$T/main.ini" queue --json >"$T/queue.json"
check "queue --json parses and shows the parts" python3 - "$T/queue.json" "$id" "$id_null" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
msgs = {m["id"]: m for m in doc["messages"]}
assert doc["total"] == len(doc["messages"]) == 202, doc["total"]
m = msgs[sys.argv[2]]
assert m["sender"] == "sender@example.org" and m["binding"] == "default" and not m["dsn"]
assert [p["domain"] for p in m["parts"]] == ["example.com", "other.net"]
p0 = m["parts"][0]
assert p0["pending"] == 2 and p0["done"] == 0 and p0["attempts"] == 0 and p0["next"] == "now"
assert [r["address"] for r in p0["recipients"]] == ["a@Example.COM", "b@example.com"]
assert all(r["status"] == "pending" for r in p0["recipients"])
assert msgs[sys.argv[3]]["sender"] == ""
assert m["arrival"].endswith("Z")
PY
"$SLUICECTL" -c "$T/refuse.ini" queue --json >"$T/empty.json"
check "queue --json of an empty spool" python3 -c \
  'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d != {"messages": [], "total": 0, "corrupt": []})' \
  "$T/empty.json"

# --- a listening master is told "N <id>" ---
python3 -u - "$spool/control.sock" "$T/dgrams" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(1024).decode() + "\n")
PY
started $!
wait_for 5 test -S "$spool/control.sock"
id_n=$(echo hi | inject -f s@example.org r@example.com)
check "the control socket receives \"N $id_n\"" wait_for 5 grep -qx "N $id_n" "$T/dgrams"

# --- a busy master: its socket holds few datagrams (net.unix.max_dgram_qlen), so a
# burst of injects must wait for room rather than drop notifications (a dropped one
# leaves the message to the next rescan, a minute or more later).  This listener takes one
# datagram, then reads nothing for 300 ms while 25 injects run at once.
busy=$T/busy-spool
mkdir -p "$busy"
sed "s|^spool_dir = .*|spool_dir = $busy|" "$T/main.ini" >"$T/busy.ini"
python3 -u - "$busy/control.sock" "$T/busy-dgrams" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    f.write(s.recv(1024).decode() + "\n")
    time.sleep(0.3)
    while True:
        f.write(s.recv(1024).decode() + "\n")
PY
started $!
wait_for 5 test -S "$busy/control.sock"
seq 1 26 | xargs -P 26 -I{} sh -c \
  "echo hi | '$SLUICECTL' -c '$T/busy.ini' inject -f s@example.org r{}@example.com >/dev/null"
all_told() { test "$(grep -c '^N ' "$T/busy-dgrams")" -eq 26; }
check "a burst of 26 injects against a master that pauses: every one is told" wait_for 5 all_told
