#!/usr/bin/env bash
# passwd.sh - sluicectl passwd and the auth_file it rewrites, with no daemon (listener.sh
# checks that a listener takes the new password at a reload):
#  - the new file keeps the owner, group and mode of the one it replaces: written by root, it
#    is still readable by the daemon's user at its next reload; a first file is the caller's,
#    mode 0640.
. "$(dirname "$0")/lib/tap.sh"

mkdir "$T/etc"
auth=$T/etc/auth
# pw USER PASSWORD: set it in $auth
pw() { printf '%s\n' "$2" | "$SLUICECTL" passwd --file "$auth" "$1"; }
owner() { stat -c '%U:%G %a' "$1"; }
entries() { grep -c "^$1:\\\$argon2id\\$" "$auth"; }

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
else
  ok "# SKIP the owner kept by a rewrite: only root can give the file to another user"
fi
