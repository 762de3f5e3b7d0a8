#!/usr/bin/env bash
# counter_table.sh - the counter table's slots are kept, one per destination seen since the
# start, until the daemon starts again: the master warns as the table passes 75 % and 90 %
# full, once each, naming shm_capacity, and `sluicectl status` shows how full it is.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"
shm=/sluice-e2e-ctable-$$
peer_start mx '{}' 127.0.1.1
{
  ini_global 2
  cat <<INI
shm_capacity = 64
audit_interval = 1s
tls = disabled

[binding "b1"]
bind_address = 127.0.0.2

[domain "/.*[.]test$/"]
route = 127.0.1.1:$(peer_port mx)
INI
} >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }
"$SLUICED" -c "$T/sluice.ini" 2>>"$T/daemon.log" &
daemon=$!
started "$daemon"
up() { ctl counters >/dev/null 2>&1; }
check "the daemon comes up" wait_for 10 up
check "status shows the table's size" eval 'ctl status | grep -q "counters [0-9]* of 64$"'
inject() { # FROM TO: one message to each of dFROM.test .. dTO.test (a slot each)
  for i in $(seq "$1" "$2"); do
    printf 'Subject: t\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test "r@d$i.test" >/dev/null
  done
}
inject 1 50
check "the master warns as the table passes 75 %" \
  wait_for 20 grep -q "warning: counter table [0-9]* of 64 slots used (7[5-9]%\|8[0-9]%)" "$T/daemon.log"
inject 51 60
check "and again past 90 %, naming shm_capacity" \
  wait_for 20 grep -q "warning: counter table [0-9]* of 64 slots used (\(9[0-9]\|100\)%).*raise shm_capacity and restart" "$T/daemon.log"
sleep 2 # two more audits
check "each warning once ($(grep -c 'counter table' "$T/daemon.log"))" \
  test "$(grep -c 'warning: counter table' "$T/daemon.log")" -eq 2
kill -TERM "$daemon"
wait "$daemon"
check "the daemon stops cleanly" test $? -eq 0
echo "1..$_n"
