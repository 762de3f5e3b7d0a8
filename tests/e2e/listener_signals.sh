#!/usr/bin/env bash
# listener_signals.sh - the listener processes under kill -9, SIGHUP and SIGTERM of sluiced,
# with sessions open: a listener killed in the middle of DATA leaves no half message and
# loses nothing it acknowledged (Python's smtplib submits while every listener process is
# SIGKILLed again and again; each message it got 250 for must reach the sink, whole); the
# master replaces the dead processes; SIGHUP replaces the processes while an old one
# finishes its transaction; SIGTERM lets an open transaction end with 250, then says 421,
# and the daemon exits 0 with the message in the spool.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"
raw=$(dirname "$0")/lib/smtp_raw.py
shm=/sluice-e2e-lsig-$$

dns_zone test <<'EOF'
sink        MX 10 mx.sink
mx.sink     A  127.0.1.24
EOF
dns_start
peer_start sink '{}' 127.0.1.24
sport=$(peer_port sink)
lport=$(peer_free_port 127.0.0.1)

cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $sport
idle_timeout = 1s

[listener "in"]
address = 127.0.0.1:$lport
max_sessions = 4
command_timeout = 20s
INI

"$SLUICED" -c "$T/sluice.ini" >"$T/daemon.log" 2>&1 &
daemon=$!
started "$daemon"
listener_pids() { ps -o pid=,args= --ppid "$daemon" | awk '/sluiced: listener/ {print $1}' | sort; }
nlisteners() { listener_pids | wc -l; }
check "4 listener processes are preforked" wait_for 10 eval '[ "$(nlisteners)" -eq 4 ]'
answers() { swaks --server 127.0.0.1 --port "$lport" --quit-after EHLO >/dev/null 2>&1; }
wait_for 5 answers
messages_with() { peer_true sink "sum(1 for e, b in messages() if $1) >= ${2:-1}"; }
count_with() { peer_stat sink "sum(1 for e, b in messages() if $1)"; }
queue_has() { grep -lq "$1" "$T"/spool/queue/* 2>/dev/null; }

# --- kill -9 in the middle of DATA: no half message ---
python3 "$raw" 127.0.0.1 "$lport" hold a@sink.test half@sink.test 5 >"$T/half.out" 2>&1 &
holder=$!
wait_for 5 grep -q HOLDING "$T/half.out"
for p in $(listener_pids); do kill -KILL "$p"; done
wait "$holder"
check "kill -9 mid-DATA: the client never got 250" eval '! grep -q "^250 2.0.0 Ok: queued" $T/half.out'
check "kill -9 mid-DATA: nothing of it in queue/" eval '! queue_has "Subject: held"'
check "kill -9 mid-DATA: nothing left in tmp/" [ -z "$(ls -A "$T/spool/tmp")" ]
check "the master replaces the killed listener processes" \
  wait_for 10 eval '[ "$(nlisteners)" -eq 4 ] && answers'
check "the daemon logs each killed listener" grep -q 'listener pid .* killed by signal 9' "$T/daemon.log"

# --- kill -9 again and again while smtplib submits: every 250 reaches the sink, whole ---
python3 - 127.0.0.1 "$lport" "$T/acked" <<'PY' &
import smtplib, sys, time
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
acked, deadline, n = [], time.time() + 40, 0
while n < 100 and time.time() < deadline:
    try:
        s = smtplib.SMTP(host, port, timeout=10)
        while n < 100:
            body = "Subject: k%d\r\nX-Test: kill\r\n\r\n" % n + ("line of text %d\r\n" % n) * 300 \
                   + "END-OF-MESSAGE k%d\r\n" % n
            s.sendmail("k@sink.test", ["kill@sink.test"], body)
            acked.append(n)
            n += 1
            time.sleep(0.02)  # spread the submissions over the kills
        s.quit()
    except Exception:
        n += 1  # this one may or may not be queued: it was never acknowledged
        time.sleep(0.05)
open(out, "w").write(" ".join("k%d" % i for i in acked) + "\n")
PY
submitter=$!
for _ in 1 2 3 4 5; do
  sleep 0.4
  for p in $(listener_pids); do kill -KILL "$p" 2>/dev/null; done
done
wait "$submitter"
nacked=$(wc -w <"$T/acked")
check "smtplib got 250 for some messages between the kills ($nacked of 100)" [ "$nacked" -gt 0 ]
check "the kills cut some sessions short" [ "$nacked" -lt 100 ]
all_acked() {
  peer_true sink "set(open('$T/acked').read().split()) <= {b.split(b'Subject: ')[1].split(b'\\r\\n')[0].decode() for e, b in messages() if b'X-Test: kill' in b}"
}
check "every acknowledged message reaches the sink" wait_for 60 all_acked
check "every delivered message is whole (no half message)" \
  peer_true sink "all(b.rstrip().endswith(b'END-OF-MESSAGE ' + b.split(b'Subject: ')[1].split(b'\\r\\n')[0]) for e, b in messages() if b'X-Test: kill' in b)"
check "nothing half-written stays in tmp/ or queue/" \
  wait_for 30 eval '[ -z "$(ls -A $T/spool/queue)" ] && [ -z "$(ls -A $T/spool/tmp)" ]'

# --- SIGHUP with a session open: new processes, the old one finishes its transaction ---
wait_for 10 eval '[ "$(nlisteners)" -eq 4 ]'
old=$(listener_pids | tr '\n' ' ')
python3 "$raw" 127.0.0.1 "$lport" hold a@sink.test hup@sink.test 3 >"$T/hup.out" 2>&1 &
holder=$!
wait_for 5 grep -q HOLDING "$T/hup.out"
kill -HUP "$daemon"
fresh() { local p; for p in $(listener_pids); do case " $old " in *" $p "*) ;; *) echo "$p";; esac; done; }
check "SIGHUP: 4 new listener processes start" wait_for 10 eval '[ "$(fresh | wc -l)" -eq 4 ]'
swaks --server 127.0.0.1 --port "$lport" --from a@sink.test --to afterhup@sink.test \
  --header 'X-Test: after-hup' >"$T/swaks_hup" 2>&1
check "SIGHUP: a new session is served meanwhile" grep -q '250 2.0.0 Ok: queued' "$T/swaks_hup"
wait "$holder"
check "SIGHUP: the open transaction ends with 250" grep -q '^250 2.0.0 Ok: queued' "$T/hup.out"
check "SIGHUP: then the old process says 421 and goes" grep -q '^421 4.3.2' "$T/hup.out"
check "SIGHUP: both messages are delivered" \
  wait_for 20 eval 'messages_with "e[\"rcpt_to\"] == [\"hup@sink.test\"]" && messages_with "b\"X-Test: after-hup\" in b"'
gone() { local p; for p in $old; do alive "$p" && return 1; done; return 0; }
check "SIGHUP: every old listener process has exited" wait_for 10 gone

# --- SIGTERM with a session open: the transaction finishes, 421, exit 0, mail in the spool ---
python3 "$raw" 127.0.0.1 "$lport" hold a@sink.test term@sink.test 3 >"$T/term.out" 2>&1 &
holder=$!
wait_for 5 grep -q HOLDING "$T/term.out"
kill -TERM "$daemon"
wait "$holder"
check "SIGTERM: the open transaction ends with 250" grep -q '^250 2.0.0 Ok: queued' "$T/term.out"
check "SIGTERM: the next command gets 421 4.3.2" grep -q '^421 4.3.2' "$T/term.out"
wait "$daemon"
rc=$?
check "SIGTERM: sluiced exits 0 once the session is over" [ "$rc" -eq 0 ]
check "SIGTERM: no listener process is left" [ -z "$(pgrep -P "$daemon" 2>/dev/null)" ]
delivered_or_queued() {
  queue_has "term@sink.test" || [ "$(count_with "e['rcpt_to'] == ['term@sink.test']")" -ge 1 ]
}
check "SIGTERM: the acknowledged message is in the spool (or delivered)" delivered_or_queued
echo "1..$_n"
