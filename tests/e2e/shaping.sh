#!/usr/bin/env bash
# shaping.sh - [shaping] rules driven by the receiver's replies:
#   a rule that suspends a domain after 3 matching 421 replies within a minute takes its
#   action at the third (listed by `shaping` with rule, reply, since and until; logged;
#   counted in metrics), no connection is opened while it is in force, delivery resumes by
#   itself after its duration, and at once after `shaping cancel`;
#   a reply sluice made up itself (connection refused, a message over the peer's SIZE) never
#   matches a rule, unless the rule says match_local = yes;
#   a rule's outbound_throttle_messages action paces the domain's mail;
#   a rule's action is kept across a restart;
#   config check reports a bad rule with FILE:LINE.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-shaping-$$
tss04='421 4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume'
peer_start mx "{\"127.0.1.1\": {\"reply\": {\"mail_from\": {\"text\": \"$tss04\", \"times\": 3}}},
                \"127.0.1.3\": {\"reply\": {\"mail_from\": {\"text\": \"421 4.7.0 slow down S3150\", \"times\": 1}}},
                \"127.0.1.4\": {\"size\": 200}}" \
  127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4
closed=$(peer_free_port 127.0.1.9)
cat >"$T/sluice.ini" <<INI
[global]
workers = 2
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
retry_interval = 1h
connect_timeout = 2s

[binding "b1"]
bind_address = 127.0.0.2

[domain "one.test"]
route = 127.0.1.1:$PEER_PORT
[domain "two.test"]
route = 127.0.1.9:$closed
[domain "local.test"]
route = 127.0.1.9:$closed
[domain "slow.test"]
route = 127.0.1.3:$PEER_PORT
[domain "big.test"]
route = 127.0.1.4:$PEER_PORT
[domain "unsaved.test"]
route = 127.0.1.9:$closed

[shaping "tss04"]
domain = /^one\.test$/
match = /TSS04/
trigger = 3/60s
action = suspend
duration = 15s
scope = domain

; a rule that would match anything, but only the receiver's replies
[shaping "anything"]
domain = two.test
match = /.*/
trigger = immediate
action = suspend
duration = 1h

; sluice's own 552 for a message over the peer's SIZE is not the receiver's
[shaping "size"]
domain = big.test
match = /5\.3\.4/
trigger = immediate
action = suspend
duration = 1h

[shaping "local"]
domain = local.test
match = /refused/
match_local = yes
action = suspend
duration = 1h

[shaping "s3150"]
domain = slow.test
match = /S3150/
action = outbound_throttle_messages = 2/2
duration = 1h
INI
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
inject() { printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test "$@" >/dev/null; }
conns() { peer_stat mx "dest('$1')['connections']"; }

check "the rules validate" bash -c "'$SLUICECTL' -c '$T/sluice.ini' config check >/dev/null"
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
wait_for 10 test -S "$T/spool/control.sock"

for i in 1 2 3; do inject "r$i@one.test"; done
check "three 421 [TSS04] replies reach the rule" \
  wait_for 10 peer_true mx "d['events'].get('reply:mail_from', 0) >= 3"
check "the third takes the rule's action" wait_for 5 grep -q 'shaping rule tss04: action [0-9]* suspend for domain one.test' "$T/daemon.log"
check "the log line names the reply" grep -q "shaping rule tss04: .*reply from b1 one.test via .*TSS04" "$T/daemon.log"
list=$(ctl shaping)
check "shaping lists the action: scope, action, rule, reply, since, until" \
  grep -qE '^[0-9]+ +domain one.test +suspend +tss04 +[0-9T:-]+Z +[0-9T:-]+Z +421 4.7.0 \[TSS04\]' <<<"$list"
check "metrics counts the actions by rule" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' metrics --shm $shm | grep -qx 'sluice_shaping_actions{rule=\"tss04\",action=\"suspend\"} 1'"
before=$(conns 127.0.1.1)
inject r4@one.test
sleep 2
check "no connection while the domain is suspended" test "$(conns 127.0.1.1)" -eq "$before"
check "its mail waits in the master: no delivery-log line for it" \
  bash -c "! grep -q 'r4@one.test' '$T/delivery.log'"
check "delivery resumes by itself when the action ends" \
  wait_for 25 peer_true mx "dest('127.0.1.1')['messages'] >= 1"
check "the end is logged with the action and its scope" \
  grep -q 'action [0-9]* (suspend, rule tss04) over domain one.test ended: its time is up' "$T/daemon.log"
check "the ended action is gone from the list" wait_for 3 bash -c "! '$SLUICECTL' -c '$T/sluice.ini' shaping | grep -q tss04"

# again, and this time shaping cancel ends it at once
peer_script mx "{\"127.0.1.1\": {\"reply\": {\"mail_from\": {\"text\": \"$tss04\", \"times\": 3}}},
                 \"127.0.1.3\": {\"reply\": {\"mail_from\": {\"text\": \"421 4.7.0 slow down S3150\", \"times\": 1}}},
                 \"127.0.1.4\": {\"size\": 200}}"
for i in 5 6 7; do inject "r$i@one.test"; done
check "the rule acts again on three more" \
  wait_for 10 bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -q ' tss04 '"
check "metrics counts the actions each rule took, ended ones too" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' metrics --shm $shm | grep -qx 'sluice_shaping_actions_taken_total{rule=\"tss04\"} 2'"
id=$(ctl shaping | awk '$5 == "tss04" {print $1; exit}')
inject r8@one.test
sleep 1
check "still suspended" peer_true mx "dest('127.0.1.1')['messages'] == 1"
check "shaping cancel ends it" bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping cancel $id | grep -q cancelled"
check "and the mail goes at once" wait_for 20 peer_true mx "dest('127.0.1.1')['messages'] >= 2"

# replies sluice made up itself
inject a@two.test
inject a@local.test
check "a refused connection is deferred" wait_for 10 grep -q '"rcpt":\["a@two.test"\].*"outcome":"deferred"' "$T/delivery.log"
check "the rule that only matches receivers' replies does not act on it" \
  bash -c "! '$SLUICECTL' -c '$T/sluice.ini' shaping | grep -q ' anything '"
check "the rule with match_local = yes does" \
  wait_for 10 bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -qE ' domain local.test +suspend +local '"
python3 -c 'print("Subject: big\r\n\r\n" + "x" * 300 + "\r")' | ctl inject --binding b1 -f '' a@big.test >/dev/null
check "a message over the peer's SIZE bounces with sluice's own 552 5.3.4" \
  wait_for 10 grep -q '"rcpt":\["a@big.test"\].*"outcome":"bounced","reply":"552 5.3.4' "$T/delivery.log"
sleep 1 # the reply reached the master, had it been told as the receiver's
check "which a rule without match_local does not act on" \
  bash -c "! '$SLUICECTL' -c '$T/sluice.ini' shaping | grep -q ' size '"

# a throttle action: 2 messages per 2 s for slow.test once its receiver said S3150
inject s0@slow.test
check "the S3150 reply sets a throttle" \
  wait_for 10 bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -qE 'outbound_throttle_messages = 2/2 +s3150'"
for i in $(seq 1 8); do inject "s$i@slow.test"; done
check "the throttled domain's mail arrives" wait_for 30 peer_true mx "dest('127.0.1.3')['messages'] >= 8"
peak=$(peer_stat mx "' '.join(str(e['time']) for e, b in messages() if e['dst'] == '127.0.1.3')" |
  python3 -c '
import sys
ts = sorted(float(x) for x in sys.stdin.read().split()); best = j = 0
for i, t in enumerate(ts):
    while ts[i] - ts[j] >= 2: j += 1
    best = max(best, i - j + 1)
print(best)')
check "at most 2 of them in any 2 s (peak $peak)" test "$peak" -le 2
check "counters shows the throttle action's bucket" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' counters --shm $shm | grep -qE '^messages +action [0-9]+ +2/2 '"
tid=$(ctl shaping | awk '/ s3150 / {print $1; exit}')
# a cancel the daemon cannot save is undone: the throttle stays listed and enforced (its
# bucket is not retired, which no later change could undo)
mkdir "$T/spool/tmp/actions.tmp"
out=$(ctl shaping cancel "$tid" 2>&1); rc=$?
rmdir "$T/spool/tmp/actions.tmp"
check "a throttle's cancel that cannot be saved is refused (rc $rc: $out)" test "$rc" -eq 1
check "and its bucket is still in force" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' counters --shm $shm | grep -qE '^messages +action $tid +2/2 '"
ctl shaping cancel "$tid" >/dev/null
check "once the action is cancelled its bucket is no longer shown" \
  wait_for 5 bash -c "! '$SLUICECTL' -c '$T/sluice.ini' counters --shm $shm | grep -qE '^messages +action '"
check "nor in the JSON view" \
  bash -c "! '$SLUICECTL' -c '$T/sluice.ini' counters --json --shm $shm | grep -q '\"bucket\":\"action '"

# a rule's action is kept across a restart
kill -TERM "$daemon"
wait "$daemon"
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon2.log" &
daemon=$!
started "$daemon"
check "the restarted daemon restores the rules' actions" \
  wait_for 10 grep -q 'shaping action(s) in force' "$T/daemon2.log"
inject b@local.test
sleep 2
check "and the suspension a rule took still holds: no attempt for its domain" \
  bash -c "! grep -q 'b@local.test' '$T/delivery.log'"
check "shaping still lists it" \
  bash -c "'$SLUICECTL' -c '$T/sluice.ini' shaping | grep -qE ' domain local.test +suspend +local '"

# a change the daemon cannot save (its actions file cannot be written: a directory stands
# where its temporary file goes, which even root cannot open for writing) is refused and
# undone: the file is what `suspended` shows and what the workers read
ctl suspend --domain kept.test >/dev/null
mkdir "$T/spool/tmp/actions.tmp"
out=$(ctl suspend --domain unsaved.test 2>&1); rc=$?
check "a suspension that cannot be saved is refused, exit 1 (rc $rc)" test "$rc" -eq 1
check "saying why, in one line ($out)" \
  eval '[[ $(wc -l <<<"$out") -eq 1 && "$out" == "sluicectl: not saved (cannot write "*"actions.tmp: Is a directory): nothing changed" ]]'
check "the daemon's log says why" grep -q "warning: shaping actions not saved: .*actions.tmp" "$T/daemon2.log"
kid=$(ctl suspended | awk '/kept.test/ {print $1; exit}')
out=$(ctl shaping cancel "$kid" 2>&1); rc=$?
check "a cancel that cannot be saved is refused too (rc $rc: $out)" test "$rc" -eq 1
out=$(ctl resume --domain kept.test 2>&1); rc=$?
check "and a resume (rc $rc: $out)" test "$rc" -eq 1
rmdir "$T/spool/tmp/actions.tmp"
inject c@unsaved.test
check "the refused suspension is not in force: its domain's mail goes" \
  wait_for 10 grep -q '"rcpt":\["c@unsaved.test"\]' "$T/delivery.log"
check "the suspension whose resume was refused still holds" eval 'ctl suspended | grep -q kept.test'
out=$(ctl resume --domain kept.test 2>&1)
check "once the file can be written, the resume goes through ($out)" test "$out" = "OK 1 suspension(s) ended"
check "and the file says so" eval '! grep -q kept.test "$T/spool/actions"'
check "the daemon's log names the action the resume ended" \
  grep -q "info: action $kid ended: resumed by the operator" "$T/daemon2.log"

printf '[global]\nspool_dir = %s/x\n[shaping "x"]\nmatch = /(/\naction = pause\n' "$T" >"$T/bad.ini"
out=$("$SLUICECTL" -c "$T/bad.ini" config check 2>&1)
check "config check: a bad match regex at its line" grep -q "^$T/bad.ini:4: bad match regex" <<<"$out"
check "config check: a bad action at its line" grep -q "^$T/bad.ini:5: bad value \"pause\" for action" <<<"$out"
check "config check: a rule without duration at its header" grep -q "^$T/bad.ini:3: \[shaping \"x\"\] has no duration" <<<"$out"
