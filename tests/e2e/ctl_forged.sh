#!/usr/bin/env bash
# ctl_forged.sh - sluicectl takes its answer from the daemon alone: while the master is stopped
# (SIGSTOP), another local process finds sluicectl's socket (its autobound name is listed in
# /proc/net/unix) and sends it a made-up answer; sluicectl must not report it, and once the
# master runs again it reports the master's own answer.
. "$(dirname "$0")/lib/tap.sh"

shm=/sluice-e2e-forged-$$
ini_global 1 >"$T/sluice.ini"
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }

sluiced_stopped
"$SLUICECTL" -c "$T/sluice.ini" suspend --domain forged.test >"$T/out" 2>"$T/err" &
ctlpid=$!
# forge - the name of the socket ctlpid holds, from /proc, and a made-up answer sent to it;
# prints what the send did (sent, or the kernel's refusal)
forge() {
  python3 - "$ctlpid" <<'PY'
import os, socket, sys, time
pid = sys.argv[1]
for _ in range(100):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    names = [l.split()[7] for l in open("/proc/net/unix").read().splitlines()[1:]
             if len(l.split()) >= 8 and l.split()[6] in inodes]
    if names:
        break
    time.sleep(0.1)
else:
    print("no socket found"); sys.exit(1)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.sendto(b"OK suspended by a forger", "\0" + names[0][1:])
    print("sent")
except OSError as e:
    print("refused: " + e.strerror)
PY
}
forged=$(forge)
check "the other process found sluicectl's socket ($forged)" test -n "$forged" -a "$forged" != "no socket found"
check "the kernel refuses its made-up answer ($forged)" eval '[[ "$forged" == refused:* ]]'
sleep 0.5
kill -CONT "$daemon"
wait "$ctlpid"; rc=$?
check "sluicectl waited for the daemon's answer, exit 0 (rc $rc)" test "$rc" -eq 0
check "and reports the daemon's, not the forger's ($(head -c 200 "$T/out"))" \
  eval '! grep -q forger "$T/out" && grep -q "^OK" "$T/out"'
check "the suspension is in force" eval 'ctl suspended | grep -q forged.test'
echo "1..$_n"
