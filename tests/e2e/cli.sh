#!/usr/bin/env bash
# cli.sh - the command line helps: --help on standard output with exit 0 for sluicectl, each of
# its subcommands and sluiced, describing what each does; --version on both; a missing config
# file named as missing, not as "does not validate".
. "$(dirname "$0")/lib/tap.sh"

out=$("$SLUICECTL" --help 2>/dev/null); rc=$?
check "sluicectl --help: exit 0 on standard output" test "$rc" -eq 0 -a -n "$out"
for sub in config counters metrics probe inject queue delete bounce hold release flush domain \
    status reload resolve tls; do
  check "sluicectl --help describes $sub" sh -c "printf '%s\n' \"\$1\" | grep -q '^$sub\$'" _ "$out"
  sout=$("$SLUICECTL" "$sub" --help 2>/dev/null); rc=$?
  check "sluicectl $sub --help: exit 0, its usage on standard output" \
    sh -c "[ $rc -eq 0 ] && printf '%s\n' \"\$1\" | grep -q '^usage: sluicectl \[-c CONFIG\] $sub'" _ "$sout"
done
out=$("$SLUICED" --help 2>/dev/null); rc=$?
check "sluiced --help: exit 0 on standard output, naming the signals" \
  sh -c "[ $rc -eq 0 ] && printf '%s' \"\$1\" | grep -q SIGHUP" _ "$out"
check "sluiced -x: a usage error, exit 2" sh -c "'$SLUICED' -x >/dev/null 2>&1; [ \$? -eq 2 ]"
check "sluicectl --version" sh -c "'$SLUICECTL' --version | grep -Eq '^sluicectl [0-9]+\.[0-9]+\.[0-9]+\$'"
check "sluiced --version" sh -c "'$SLUICED' --version | grep -Eq '^sluiced [0-9]+\.[0-9]+\.[0-9]+\$'"
err=$("$SLUICECTL" -c "$T/missing.ini" queue 2>&1); rc=$?
check "a missing config file is named as missing ($err)" \
  sh -c "[ $rc -ne 0 ] && printf '%s' \"\$1\" | grep -q 'missing.ini: cannot read: No such file or directory'" _ "$err"
