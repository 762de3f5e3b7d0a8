#!/usr/bin/env bash
# systemd.sh - sluiced as systemd runs it: the unit and its snippets pass
# systemd's own checks; the notify sequence at start, reload, watchdog and stop,
# with STATUS lines following the queue and the connections; log lines carry the
# journal's priority only when stderr is the journal; started as root with
# `user`, master and workers run as that user and still deliver; root without
# `user` warns, a non-root start asking for another user fails; SIGUSR1 reopens
# the delivery log without losing or doubling a line.  The start scan runs as the
# user, and root's sluicectl becomes the user: what the user planted in the spool
# never lends it root's rights.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

conf=$SLUICE_TOP/conf
shm=/sluice-e2e-systemd-$$

# --- the unit, as systemd reads it
# verify_unit FILE: systemd-analyze verify succeeds and has nothing to say
verify_unit() {
  local out rc
  out=$(cd "$(dirname "$1")" && systemd-analyze verify --man=no "./$(basename "$1")" 2>&1); rc=$?
  [ -n "$out" ] && printf '    %s\n' "$out" >&2
  [ "$rc" -eq 0 ] && [ -z "$out" ]
}
mkdir -p "$T/unit"
# The installed unit runs /usr/local/sbin/sluiced (make install rewrites the
# prefix); verify checks the binary exists, so point a copy at the built one.
check "the unit names the binary under the /usr/local prefix the install rewrites" \
  grep -qx 'ExecStart=/usr/local/sbin/sluiced -c /etc/sluice/sluice.ini' "$conf/sluice.service"
sed "s|/usr/local/sbin/sluiced|$SLUICED|" "$conf/sluice.service" >"$T/unit/sluice.service"
check "systemd-analyze verify passes on the unit" verify_unit "$T/unit/sluice.service"
# The same check catches a broken unit: a misspelt key, a bad value, a missing binary.
sed 's/^WatchdogSec=/WatchdogSecs=/' "$T/unit/sluice.service" >"$T/unit/typo.service"
check "a misspelt key fails the same check" eval '! verify_unit "$T/unit/typo.service" 2>/dev/null'
sed 's/^Type=notify/Type=notifying/' "$T/unit/sluice.service" >"$T/unit/badtype.service"
check "a bad Type= fails the same check" eval '! verify_unit "$T/unit/badtype.service" 2>/dev/null'
sed "s|$SLUICED|$T/no/sluiced|" "$T/unit/sluice.service" >"$T/unit/nobin.service"
check "a missing binary fails the same check" eval '! verify_unit "$T/unit/nobin.service" 2>/dev/null'

unit_key() { sed -n "s/^$1=//p" "$conf/sluice.service"; }
usec() { systemd-analyze timespan "$1" | sed -n 's/^ *μs: //p'; }
check "Type=notify with NotifyAccess=main" test "$(unit_key Type)/$(unit_key NotifyAccess)" = notify/main
check "ExecReload sends SIGHUP to the master" test "$(unit_key ExecReload)" = '/bin/kill -HUP $MAINPID'
check "a watchdog is set" test "$(usec "$(unit_key WatchdogSec)")" -gt 0
# The drain lasts the longest phase timeout + 5 s, then 1 s to SIGKILL: the stop
# timeout must cover it for the shipped config's data_timeout.
data=$("$SLUICECTL" -c "$conf/sluice.ini" config eval data_timeout | sed 's/.*= *//')
check "TimeoutStopSec covers the drain (data_timeout $data + 6 s)" \
  test "$(usec "$(unit_key TimeoutStopSec)")" -ge $(($(usec "$data") + 6000000))
check "the unit runs as user and group sluice" test "$(unit_key User):$(unit_key Group)" = sluice:sluice
check "the spool and the logs are the writable paths" \
  test "$(unit_key ReadWritePaths)" = "/var/lib/sluice /var/log/sluice"

# sysusers.d then tmpfiles.d into an empty root: the account and its directories
mkdir -p "$T/root/etc"
systemd-sysusers --root="$T/root" "$conf/sluice.sysusers" >/dev/null 2>&1
uid=$(awk -F: '$1 == "sluice" { print $3 }' "$T/root/etc/passwd" 2>/dev/null)
gid=$(awk -F: '$1 == "sluice" { print $3 }' "$T/root/etc/group" 2>/dev/null)
check "sysusers creates the system user sluice and its group" test -n "$uid" -a -n "$gid" -a "${uid:-1000}" -lt 1000
systemd-tmpfiles --create --root="$T/root" "$conf/sluice.tmpfiles" >/dev/null 2>&1
for d in /var/lib/sluice /var/lib/sluice/spool /var/log/sluice; do
  check "tmpfiles creates $d, sluice's, mode 0750" \
    test "$(stat -c %u:%g:%a "$T/root$d" 2>/dev/null)" = "$uid:$gid:750"
done

# --- a sink, and a config routing mail to it
peer_start sink '{"hold": 0.2}' 127.0.1.61
write_config() { # write_config FILE WORKERS [USER]
  cat >"$1" <<INI
[global]
workers = $2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/log/delivery.log
audit_interval = 10s
idle_timeout = 1s
retry_interval = 1h
${3:+user = $3}

[binding "b1"]
bind_address = 127.0.0.2

[domain "sink.test"]
route = 127.0.1.61:$(peer_port sink)
INI
}
mkdir -p "$T/log"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
# inject N FIRST [AS]: messages to uFIRST.. uFIRST+N-1@sink.test, 4 at a time
inject() {
  local as=()
  [ -n "${3:-}" ] && as=(setpriv --reuid="$3" --regid="$(id -g "$3")" --init-groups)
  seq "$2" $(($2 + $1 - 1)) | xargs -P 4 -I{} sh -c "printf 'Subject: {}\r\n\r\nbody {}\r\n' |
    ${as[*]} '$SLUICECTL' -c '$T/sluice.ini' inject --binding b1 -f s@sender.test u{}@sink.test >/dev/null"
}
queued() { find "$T/spool/queue" -type f 2>/dev/null | wc -l; }
queue_empty() { test "$(queued)" -eq 0; }

# --- the notify sequence, with the watchdog on
# A notify socket that stamps each line with the monotonic time it arrived.
python3 -u - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        msg, now = s.recv(4096).decode(), time.monotonic()
        for line in msg.split("\n"):
            f.write(f"{now:.3f} {line}\n")
PY
started $!
wait_for 5 test -S "$T/notify.sock"
write_config "$T/sluice.ini" 2
: >"$T/daemon.log"
# stderr is a file named by JOURNAL_STREAM: sluiced must take it for the journal
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=500000 JOURNAL_STREAM=$(stat -c %d:%i "$T/daemon.log") \
  "$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
lines() { sed 's/^[0-9.]* //' "$T/notify.log"; }
readies() { lines | grep -c '^READY=1$'; }
readies_are() { test "$(readies)" -ge "$1"; }
check "READY=1 once the workers are up" wait_for 15 readies_are 1
check "two workers run at READY" test "$(children_of "$daemon" | wc -l)" -eq 2
check "READY comes with a STATUS line" grep -Eq '^[0-9.]+ STATUS=2 workers, .* 0 messages queued, 0 connections open$' "$T/notify.log"

# Watchdog: WATCHDOG_USEC=500000, so a ping every 250 ms, 4 a second.
sleep 4
rate=$(python3 - "$T/notify.log" <<'PY'
import sys
t = [float(l.split()[0]) for l in open(sys.argv[1]) if l.split()[1:] == ["WATCHDOG=1"]]
t = t[1:]  # from the second ping on: the first is sent at start
print(f"{(len(t) - 1) / (t[-1] - t[0]):.2f}" if len(t) > 2 and t[-1] > t[0] else 0)
PY
)
check "WATCHDOG=1 about 4 times a second (got $rate/s)" \
  python3 -c "import sys; sys.exit(0 if 2.5 <= float('$rate') <= 4.6 else 1)"
check "the master logged the watchdog" grep -q 'watchdog: 500 ms, pinged every 250 ms' "$T/daemon.log"

# STATUS follows the queue and the connections: 20 messages, 0.2 s each on 2 workers
inject 20 1
check "every message is delivered" wait_for 40 queue_empty
check "STATUS showed messages queued and connections open while mail flowed" \
  grep -Eq 'STATUS=.* [1-9][0-9]* messages queued, [12] connections open$' "$T/notify.log"
last_status() { grep 'STATUS=' "$T/notify.log" | tail -1 | sed 's/.*STATUS=//'; }
status_idle() { last_status | grep -Eq '^2 workers, config generation 1, [0-9]+ counters, 0 messages queued, 0 connections open$'; }
check "STATUS returns to no queue and no connection" wait_for 10 status_idle

# reload, stop
kill -HUP "$daemon"
check "a reload ends with READY=1 again" wait_for 15 readies_are 2
kill -TERM "$daemon"
wait "$daemon"; rc=$?
check "SIGTERM exits 0" test "$rc" -eq 0
seq_seen=$(lines | grep -Ev '^(STATUS=.*|WATCHDOG=1|)$' | tr '\n' ' ')
check "the sequence is READY, RELOADING, READY, STOPPING ($seq_seen)" \
  test "$seq_seen" = "READY=1 RELOADING=1 READY=1 STOPPING=1 "
ping_gap=$(python3 - "$T/notify.log" <<'PY'
t = [float(l.split()[0]) for l in open(__import__("sys").argv[1]) if l.split()[1:] == ["WATCHDOG=1"]]
print(f"{max(b - a for a, b in zip(t, t[1:])):.3f}" if len(t) > 1 else 99)
PY
)
# systemd would act after 0.5 s; other timers wake the loop every second at most
check "the pings went on through the mail, the reload and the stop (longest gap $ping_gap s)" \
  python3 -c "import sys; sys.exit(0 if float('$ping_gap') < 0.75 else 1)"

# logs: the journal's priority prefix, the root warning
check "log lines carry the journal priority when stderr is the journal" \
  grep -Eq "^<6>sluiced\[$daemon\]: info: ready" "$T/daemon.log"
check "started as root without user: one warning, at priority 4" \
  test "$(grep -c "^<4>sluiced\[$daemon\]: warning: running as root: set \`user\`" "$T/daemon.log")" -eq 1
check "every line carries a priority" test -z "$(grep -v '^<[0-7]>' "$T/daemon.log")"

# --- started as root with user = nobody
nobody_gid=$(id -g nobody)
chmod 0711 "$T" # nobody reaches the spool and the log below $T
chown nobody "$T/log"
mv "$T/log/delivery.log" "$T/log/notify-run.log"
write_config "$T/sluice.ini" 3 nobody
chmod 0644 "$T/sluice.ini"
# Root hands the spool over: entries planted there must not make it give away
# another file (a hard link, a symbolic link to files outside the spool).
echo secret >"$T/secret"
echo secret >"$T/secret2"
ln "$T/secret" "$T/spool/tmp/planted-hard"
ln -s "$T/secret2" "$T/spool/tmp/planted-sym"
# state/ a symbolic link to a directory of root's, holding what looks like the state of a
# message no longer queued: the start scan removes such orphans, and as root it would remove
# root's file; it runs as the user, once the privileges are dropped
mkdir -m 0755 "$T/rootstate"
echo root >"$T/rootstate/08EBTusy4xRfhKc0NDPs.0"
mv "$T/spool/state" "$T/state.real"
ln -s "$T/rootstate" "$T/spool/state"
chown -h nobody "$T/spool/state"
: >"$T/nobody.log"
# stderr is not JOURNAL_STREAM's file: plain lines
JOURNAL_STREAM=$(stat -c %d:%i "$T/daemon.log") "$SLUICED" -c "$T/sluice.ini" 2>>"$T/nobody.log" &
daemon=$!
started "$daemon"
said_ready() { grep -q 'info: ready' "$T/nobody.log"; }
check "the daemon with user = nobody is ready" wait_for 15 said_ready
# ids PID: "Uid: r e s fs / Gid: r e s fs" from /proc
ids() { awk '/^Uid:/ { u = $2 " " $3 " " $4 " " $5 } /^Gid:/ { g = $2 " " $3 " " $4 " " $5 } END { print u " / " g }' "/proc/$1/status"; }
want="65534 65534 65534 65534 / $nobody_gid $nobody_gid $nobody_gid $nobody_gid"
check "the master runs as nobody, every uid and gid ($(ids "$daemon"))" test "$(ids "$daemon")" = "$want"
workers=$(children_of "$daemon")
check "three workers" test "$(echo "$workers" | wc -w)" -eq 3
all_nobody=1
for w in $workers; do [ "$(ids "$w")" = "$want" ] || all_nobody=0; done
check "every worker runs as nobody" test "$all_nobody" -eq 1
check "no supplementary group is left from root" \
  test -z "$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$daemon/status" | tr -d ' ' | tr -d "$nobody_gid")"
check "the segment is nobody's, group $nobody_gid, mode 0640" \
  test "$(stat -c %u:%g:%a "/dev/shm$shm")" = "65534:$nobody_gid:640"
check "the spool and its subdirectories are nobody's" \
  test -z "$(find "$T/spool" ! -user nobody ! -name 'planted-*' | head -1)"
check "a hard link planted in the spool is left alone, its target root's" \
  test "$(stat -c %u "$T/secret")" -eq 0
check "and the master said so" grep -q "planted-hard has 2 links: left to its owner" "$T/nobody.log"
check "the start scan through a planted state/ link leaves root's file alone (it runs as nobody)" \
  test -f "$T/rootstate/08EBTusy4xRfhKc0NDPs.0"
rm "$T/spool/state"
mv "$T/state.real" "$T/spool/state"
check "a symbolic link is not followed: its target stays root's" \
  test "$(stat -c %u:%u "$T/secret2" "$T/spool/tmp/planted-sym" | tr '\n' ' ')" = "0:0 0:0 "
# The inspector reads the segment through its group: a member can, others cannot.
counters_as() { # counters_as GID: sluicectl counters as user daemon with that group only
  setpriv --reuid=daemon --regid="$1" --clear-groups "$SLUICECTL" -c "$T/sluice.ini" counters \
    >"$T/counters-$1.out" 2>&1
}
check "a member of the segment's group runs sluicectl counters" counters_as "$nobody_gid"
check "the table it prints names the daemon's counters" grep -q '^server ' "$T/counters-$nobody_gid.out"
check "another user cannot: permission denied" \
  eval '! counters_as "$(id -g daemon)" && grep -q "Permission denied" "$T/counters-$(id -g daemon).out"'
check "the control socket is nobody's" test "$(stat -c %U "$T/spool/control.sock")" = nobody
check "the master logged the drop" grep -q "info: running as user nobody (uid 65534, gid $nobody_gid)" "$T/nobody.log"
check "log lines are plain when stderr is not the journal" test -z "$(grep '^<' "$T/nobody.log")"
check "no root warning when a user is set" test -z "$(grep 'running as root' "$T/nobody.log")"

# --- mail still flows; SIGUSR1 while it does: no line lost, none doubled
sent_before=$(peer_stat sink "total['messages']")
inject 300 1001 nobody &
injector=$!
started "$injector"
dlog_lines() { test "$(wc -l <"$T/log/delivery.log" 2>/dev/null || echo 0)" -ge "$1"; }
check "the dropped workers write the delivery log" wait_for 30 dlog_lines 20
mv "$T/log/delivery.log" "$T/log/delivery.log.1"
kill -USR1 "$daemon"
wait "$injector"
all_sent() { peer_true sink "total['messages'] >= $sent_before + 300"; }
check "all 300 messages reach the sink" wait_for 90 all_sent
check "the queue is empty" wait_for 10 queue_empty
check "the master logged the reopen" grep -q 'delivery log .*: reopened by 3 workers' "$T/nobody.log"
check "the new file is created and gets lines" dlog_lines 1
check "the new file is nobody's" test "$(stat -c %U "$T/log/delivery.log")" = nobody
verdict=$(python3 - "$T/log/delivery.log.1" "$T/log/delivery.log" <<'PY'
import json, sys
seen = {}
for path in sys.argv[1:]:
    for line in open(path):
        rec = json.loads(line)  # a torn line would not parse
        for r in rec["rcpt"]:
            seen.setdefault(r, []).append((path, rec["outcome"]))
want = {f"u{i}@sink.test" for i in range(1001, 1301)}
lost, double = want - set(seen), [r for r in want if len(seen.get(r, [])) > 1]
bad = [r for r in want & set(seen) if seen[r][0][1] != "delivered"]
print(f"lost={len(lost)} double={len(double)} undelivered={len(bad)}")
PY
)
check "every message is in exactly one of the two files, delivered ($verdict)" \
  test "$verdict" = "lost=0 double=0 undelivered=0"

# --- root injects into the dropped daemon's spool: the file is given to the spool's owner
sent_before=$(peer_stat sink "total['messages']")
inject 1 2001
check "a message root injected is nobody's, like the spool" \
  test -z "$(find "$T/spool/queue" -type f ! -user nobody | head -1)"
root_sent() { peer_true sink "total['messages'] >= $sent_before + 1"; }
check "and the dropped daemon delivers it" wait_for 30 root_sent

# --- root's sluicectl becomes the config's user before it touches the daemon's files (what
# nobody planted in the spool lends nobody root's rights); passwd and config stay root
# watch_as CONFIG OUT: root's sluicectl counters --watch, left running; its pid in watcher
watch_as() {
  "$SLUICECTL" -c "$1" counters --watch 1 --count 6 >"$2" 2>&1 &
  watcher=$!
  started "$watcher"
}
is_nobody() { test "$(ids "$watcher" 2>/dev/null)" = "$want"; }
watch_as "$T/sluice.ini" "$T/watch.out"
check "root's sluicectl counters runs as nobody, every uid and gid" wait_for 5 is_nobody
wait "$watcher"
check "and prints the daemon's counters" grep -q '^server ' "$T/watch.out"
printf 'PW-root\n' | "$SLUICECTL" -c "$T/sluice.ini" passwd --file "$T/rootauth" someone
check "root's sluicectl passwd stays root: a new auth file is root's" \
  test "$(stat -c %u "$T/rootauth")" -eq 0

kill -TERM "$daemon"
wait "$daemon"; rc=$?
check "the dropped master stops with 0" test "$rc" -eq 0
check "and removed its segment" test ! -e "/dev/shm$shm"

# --- the delivery log: one an earlier root run left is handed over; one nobody cannot write
# is a start error, not a warning per worker
mv "$T/log/delivery.log" "$T/log/dropped-run.log" 2>/dev/null
: >"$T/log/delivery.log" # as root, mode 0600: the workers as nobody could not append
chmod 0600 "$T/log/delivery.log"
: >"$T/nobody2.log"
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/nobody2.log" &
daemon=$!
started "$daemon"
said_ready2() { grep -q 'info: ready' "$T/nobody2.log"; }
check "a root-owned delivery log does not stop the start" wait_for 15 said_ready2
check "it was handed to the user" test "$(stat -c %U "$T/log/delivery.log")" = nobody
kill -TERM "$daemon"
wait "$daemon"
mkdir -p "$T/rootlog"
chmod 0755 "$T/rootlog"
sed "s|^delivery_log = .*|delivery_log = $T/rootlog/delivery.log|" "$T/sluice.ini" >"$T/rootlog.ini"
chmod 0644 "$T/rootlog.ini"
"$SLUICED" -c "$T/rootlog.ini" >"$T/rootlog.out" 2>&1; rc=$?
check "a delivery log nobody cannot create stops the start: exit 1" test "$rc" -eq 1
check "with one line naming the log" \
  grep -q "fatal: delivery log $T/rootlog/delivery.log cannot be written as uid 65534" "$T/rootlog.out"
check "and leaves no segment behind" test ! -e "/dev/shm$shm"
# a FIFO nobody reads as the delivery log: the same one line, at once (opening it to write
# would wait for a reader for ever)
mkfifo "$T/log/fifo.log"
chown nobody "$T/log/fifo.log"
sed "s|^delivery_log = .*|delivery_log = $T/log/fifo.log|" "$T/sluice.ini" >"$T/fifolog.ini"
chmod 0644 "$T/fifolog.ini"
timeout 20 "$SLUICED" -c "$T/fifolog.ini" >"$T/fifolog.out" 2>&1; rc=$?
check "a FIFO nobody reads as the delivery log stops the start at once: exit 1 ($rc)" \
  test "$rc" -eq 1
check "with one line naming it" grep -q "fatal: delivery log $T/log/fifo.log cannot be written as uid 65534: a FIFO that nobody reads" "$T/fifolog.out"

# --- not root, asking for another user: one line, exit 1, nothing created
write_config "$T/other.ini" 1 daemon
chmod 0644 "$T/other.ini"
setpriv --reuid=nobody --regid="$nobody_gid" --clear-groups "$SLUICED" -c "$T/other.ini" \
  >"$T/other.out" 2>&1; rc=$?
check "a non-root start with user = daemon exits 1" test "$rc" -eq 1
check "with one clear line" test "$(wc -l <"$T/other.out")" -eq 1
check "that says why" grep -q 'fatal: user = daemon: only root can become another user' "$T/other.out"
check "and created no segment" test ! -e "/dev/shm$shm"
write_config "$T/nouser.ini" 1 no-such-user-$$
"$SLUICED" -c "$T/nouser.ini" >"$T/nouser.out" 2>&1; rc=$?
check "an unknown user exits 1 with one line" test "$rc:$(wc -l <"$T/nouser.out")" = 1:1
check "naming the user" grep -q "fatal: user = no-such-user-$$: no such user" "$T/nouser.out"
"$SLUICECTL" -c "$T/nouser.ini" queue >"$T/nouser-ctl.out" 2>&1; rc=$?
check "root's sluicectl with an unknown user: exit 1, naming it" \
  eval '[ "$rc" -eq 1 ] && grep -q "sluicectl: user = no-such-user-$$: no such user" "$T/nouser-ctl.out"'

# --- as under systemd: the daemon started as nobody, no user in the file; root's sluicectl
# becomes the spool's owner
write_config "$T/unit.ini" 1
chmod 0644 "$T/unit.ini"
: >"$T/unit.log"
setpriv --reuid=nobody --regid="$nobody_gid" --clear-groups "$SLUICED" -c "$T/unit.ini" \
  2>>"$T/unit.log" &
daemon=$!
started "$daemon"
said_ready3() { grep -q 'info: ready' "$T/unit.log"; }
check "the daemon started as nobody without user is ready" wait_for 15 said_ready3
watch_as "$T/unit.ini" "$T/watch-unit.out"
check "root's sluicectl counters runs as the spool's owner, nobody" wait_for 5 is_nobody
wait "$watcher"
check "and prints the daemon's counters" grep -q '^server ' "$T/watch-unit.out"
kill -TERM "$daemon"
wait "$daemon"
check "that daemon stops with 0" test $? -eq 0
