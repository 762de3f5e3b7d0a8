#!/usr/bin/env bash
# passwd.sh - sluicectl passwd and the auth_file it rewrites, with no daemon (listener.sh
# checks that a listener takes the new password at a reload):
#  - the new file keeps the owner, group and mode of the one it replaces: written by root, it
#    is still readable by the daemon's user at its next reload; written by a member of the
#    file's group, the group and mode stay; a first file is the caller's, mode 0640;
#  - passwd run at once for different users take turns: every one's entry is in the file, and
#    no temporary file is left beside it (with one temporary name and no turns, they lost
#    each other's entries or the file); the new file a killed passwd left is replaced by the
#    next one's;
#  - a password of 1,023 bytes is taken whole; a longer one is refused in one line, exit 1,
#    the file unchanged (it was cut to 1,023 bytes, so the client's password never matched);
#  - an auth file that is a symbolic link or a FIFO is refused in one line, at once: root
#    never copies the lines of a file a link names, nor waits on a FIFO.
. "$(dirname "$0")/lib/tap.sh"

mkdir "$T/etc"
auth=$T/etc/auth
# pw USER PASSWORD: set it in $auth
pw() { printf '%s\n' "$2" | "$SLUICECTL" passwd --file "$auth" "$1"; }
owner() { stat -c '%U:%G %a' "$1"; }
entries() { grep -c "^$1:\\\$argon2id\\$" "$auth"; }
# verifies USER PASSWORD: the file's hash for USER is that password's, checked by libsodium as
# the listener checks it
verifies() {
  python3 - "$auth" "$1" "$2" <<'PY'
import ctypes, ctypes.util, sys
sodium = ctypes.CDLL(ctypes.util.find_library("sodium"))
path, user, password = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
for line in open(path, "rb"):
    name, _, stored = line.rstrip(b"\n").partition(b":")
    if name == user:
        sys.exit(sodium.crypto_pwhash_str_verify(stored, password, ctypes.c_ulonglong(len(password))))
sys.exit(1)
PY
}

# --- owner, group and mode
(umask 022 && pw app1 first-PW)
check "a first file is the caller's, mode 0640" test "$(owner "$auth")" = "$(id -un):$(id -gn) 640"
if [ "$(id -u)" -eq 0 ]; then
  group=$(id -gn nobody)
  chown "nobody:$group" "$auth"
  chmod 0440 "$auth"
  was=$(cat "$auth")
  pw app1 second-PW
  check "as root, the rewritten file keeps its owner, group and mode (nobody:$group 440)" \
    test "$(owner "$auth")" = "nobody:$group 440"
  check "and the user's new entry in place of the old" \
    test "$(entries app1)" -eq 1 -a "$(cat "$auth")" != "$was"
  # a caller who is not root but is in the file's group (the daemon's): the group and mode
  # stay, the caller becomes the owner (it may not give the file to root)
  mkdir "$T/shared"
  chmod 0711 "$T"
  chmod 0777 "$T/shared"
  printf 'app1:x\n' >"$T/shared/auth"
  chown "0:4242" "$T/shared/auth"
  chmod 0660 "$T/shared/auth"
  out=$(printf 'member-PW\n' | setpriv --reuid=65534 --regid=65534 --groups=4242 \
    "$SLUICECTL" passwd --file "$T/shared/auth" app2 2>&1)
  rc=$?
  check "a member of the file's group may rewrite it (exit $rc: $out)" test "$rc" -eq 0
  check "the group and mode stay, the caller owns it" \
    test "$(stat -c '%u:%g %a' "$T/shared/auth")" = "65534:4242 660"
  check "with both entries" eval "grep -q '^app1:x$' '$T/shared/auth' && grep -q '^app2:' '$T/shared/auth'"
else
  ok "# SKIP the owner kept by a rewrite: only root can give the file to another user"
fi

# --- passwd run at once: a long file (each copies it) and eight users set together
seq 1 20000 | sed 's/.*/filler&:$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g/' >>"$auth"
pids=()
for i in 1 2 3 4 5 6 7 8; do
  pw "many$i" "PW-$i" 2>>"$T/many.err" &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
check "eight passwd run at once all succeed" test "$failed" -eq 0
check "every one's entry is in the file, once" \
  test "$(grep -c '^many[1-8]:\$argon2id\$' "$auth")" -eq 8 -a \
  "$(grep -o '^many[1-8]:' "$auth" | sort -u | wc -l)" -eq 8
check "and the other entries are all kept" \
  test "$(grep -c '^filler' "$auth")" -eq 20000 -a "$(entries app1)" -eq 1
check "no temporary file is left beside it" test "$(ls -A "$T/etc")" = auth

# --- a passwd killed between making its new file and renaming it leaves that file: the next
# one replaces it (one name for all, under the turns), so none stays beside the file for ever
printf 'half:$argon2id$cut' >"$auth.sluicectl-new"
pw after-kill "PW-after"
check "after a killed passwd, the next leaves no file but the auth file" \
  test "$(ls -A "$T/etc")" = auth
check "and its entry is in place, the half-written one not" \
  eval 'verifies after-kill PW-after && ! grep -q "^half:" "$auth"'

# --- the longest password, and one byte more
long=$(printf 'p%.0s' $(seq 1 1023))
pw longest "$long"
check "a password of 1,023 bytes is taken whole" verifies longest "$long"
check "(and the check tells a password cut by one byte)" eval '! verifies longest "${long%p}"'
cp "$auth" "$T/before"
pw longer "${long}q" >"$T/long.out" 2>"$T/long.err"
check "one of 1,024 bytes is refused (exit 1)" test $? -eq 1
check "in one line saying why" \
  test "$(cat "$T/long.err")" = "sluicectl: passwd: the password is over 1023 bytes: nothing changed"
check "and the file is unchanged" cmp -s "$auth" "$T/before"

# --- the auth file a symbolic link (to a file whose lines the link's owner wants to read) or
# a FIFO: refused in one line, at once; nothing of the linked file is copied
mv "$auth" "$T/auth.real"
echo 'root:secret-line' >"$T/secret"
ln -s "$T/secret" "$auth"
timeout 20 "$SLUICECTL" passwd --file "$auth" linked \
  <<<"PW-linked" >"$T/link.out" 2>"$T/link.err"
check "a symbolic link as the auth file is refused (exit 1)" test $? -eq 1
check "in one line naming it" grep -q "passwd: $auth: a symbolic link" "$T/link.err"
check "and no copy of the linked file is made" \
  test -z "$(grep -rl 'secret-line' "$T/etc")" -a -L "$auth"
rm "$auth"
mkfifo "$auth"
timeout 20 "$SLUICECTL" passwd --file "$auth" piped \
  <<<"PW-piped" >"$T/fifo.out" 2>"$T/fifo.err"
check "a FIFO as the auth file is refused at once (exit 1, not a wait for a writer)" test $? -eq 1
check "in one line saying why" grep -q "passwd: $auth: not a regular file" "$T/fifo.err"
rm "$auth"
mv "$T/auth.real" "$auth"
