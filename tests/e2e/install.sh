#!/usr/bin/env bash
# install.sh - `make install` into a DESTDIR, the installed tree, `make uninstall`;
# and the documentation is complete: every option of the option table is in the
# sample config (conf/sluice.ini) and in sluice.ini(5), with its scopes and its
# default as the code has them.
#
# The option names come from the table (config/config_options.c); each option's
# default is what `config eval` reports on an empty file, and its valid scopes
# are what `config check` says when the option is put where it is not valid.
# The binaries under test ($SLUICE_BIN) are installed as they are (BIN=...):
# nothing is rebuilt.
. "$(dirname "$0")/lib/tap.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
root=$T/root
prefix=/usr

# --- the option table, as the code sees it -----------------------------------
names=$(sed -nE 's/^ *(OPT|TIMEOUT|ENGINE)\(([A-Z_]+), "([a-z_]+)".*/\3/p' "$top/config/config_options.c")
count=$(echo "$names" | wc -l)
nenum=$(sed -n '/^enum sl_opt {/,/SL_OPT__COUNT/p' "$top/config/sl_config.h" | grep -c '^ *SL_OPT_[A-Z_]*,')
check "the option table lists $count options, as many as enum sl_opt ($nenum)" test "$count" -eq "$nenum"

printf '[global]\n' >"$T/empty.ini"
# default NAME: the built-in default as config eval prints it
default() { "$SLUICECTL" -c "$T/empty.ini" config eval "$1" | sed 's/^[^=]* = //'; }
# eval_as NAME VALUE: what config eval prints for NAME = VALUE in [global]
eval_as() {
  printf '[global]\n%s = %s\n' "$1" "$2" >"$T/one.ini"
  "$SLUICECTL" -c "$T/one.ini" config eval "$1" 2>/dev/null | sed 's/^[^=]* = //'
}
# Scopes: each option set in three sections where some options are not valid;
# config check names the valid scopes of each misplaced one.
{
  for s in '[global]' '[binding "b" host "h"]' '[binding_group "g" host "h"]'; do
    echo "$s"; for n in $names; do echo "$n = x"; done
  done
} >"$T/scopes.ini"
"$SLUICECTL" -c "$T/scopes.ini" config check 2>&1 |
  sed -nE 's/.*: ([a-z_]+) is not valid in .*valid in: ([a-z_:, ]+).*$/\1|\2/p' | sort -u >"$T/scopes.txt"
all_scopes="global, binding_group, binding, domain, host, binding::domain, binding_group::domain, binding::host, binding_group::host"
# scopes NAME: the valid scopes of an option, as config check lists them
scopes() {
  local s; s=$(grep "^$1|" "$T/scopes.txt" | head -1 | cut -d'|' -f2)
  echo "${s:-$all_scopes}"
}

# sample_field NAME FIELD: "scopes" or "default" of the option's block in the
# sample (continuation lines joined), or "setting": the value of its first
# ";NAME = V" or "NAME = V" line after the block's title
sample_field() {
  python3 - "$top/conf/sluice.ini" "$1" "$2" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
name, field = sys.argv[2], sys.argv[3]
title = [i for i, l in enumerate(lines) if re.match(r"^; %s( \(.*\))?$" % name, l)]
if not title:
    sys.exit(1)
i = title[0] + 1
if field == "setting":
    for l in lines[i:]:
        m = re.match(r"^;?%s = (.*)$" % name, l)
        if m:
            print(m.group(1)); sys.exit(0)
    sys.exit(1)
while i < len(lines) and lines[i].startswith(";   "):
    m = re.match(r"^;   %s:\s+(.*)$" % field, lines[i])
    if m:
        val = m.group(1)
        while i + 1 < len(lines) and re.match(r"^;\s{12}\S", lines[i + 1]):
            i += 1; val += " " + lines[i][1:].strip()
        print(val); sys.exit(0)
    i += 1
sys.exit(1)
PY
}

missing=() wrong=()
for n in $names; do
  d=$(default "$n")
  s=$(sample_field "$n" scopes) || { missing+=("$n"); continue; }
  [ "$s" = "$(scopes "$n")" ] || wrong+=("$n scopes: '$s' != '$(scopes "$n")'")
  sd=$(sample_field "$n" default) || { wrong+=("$n: no default line"); continue; }
  if [ "$d" = unset ]; then
    [ "$sd" = unset ] || wrong+=("$n default: '$sd' != unset")
  else
    [ "$(eval_as "$n" "$sd")" = "$d" ] || wrong+=("$n default: '$sd' != '$d'")
  fi
  v=$(sample_field "$n" setting) || { wrong+=("$n: no setting line"); continue; }
  if [ "$d" != unset ] && grep -q "^;$n = " "$top/conf/sluice.ini"; then
    [ "$(eval_as "$n" "$v")" = "$d" ] || wrong+=("$n: commented-out '$v' is not the default '$d'")
  fi
done
check "every option of the table has a block in conf/sluice.ini${missing[*]:+ (missing: ${missing[*]})}" \
  test ${#missing[@]} -eq 0
check "each block gives the option's scopes and default as the code has them" test ${#wrong[@]} -eq 0
for w in "${wrong[@]}"; do echo "#   $w"; done

# sluice.ini(5): each option is a tagged paragraph ".B name" with its scopes and default
man_missing=() man_wrong=()
for n in $names; do
  block=$(sed -n 2>/dev/null "/^\.B $n\$/,/^\.\(TP\|SS\|SH\)/p" "$top/man/sluice.ini.5" | tr '\n' ' ' | sed 's/\\//g')
  [ -n "$block" ] || { man_missing+=("$n"); continue; }
  d=$(sample_field "$n" default)
  case "$block" in *"Scopes: $(scopes "$n")."*) ;; *) man_wrong+=("$n scopes");; esac
  case "$block" in *"Default: $d."*) ;; *) man_wrong+=("$n default");; esac
done
check "sluice.ini(5) documents every option${man_missing[*]:+ (missing: ${man_missing[*]})}" \
  test ${#man_missing[@]} -eq 0
check "sluice.ini(5) gives each option's scopes and default${man_wrong[*]:+ (wrong: ${man_wrong[*]})}" \
  test ${#man_wrong[@]} -eq 0

check "the sample config passes config check" "$SLUICECTL" -c "$top/conf/sluice.ini" config check

# --- make install -----------------------------------------------------------
inst() { make -s -C "$top" BIN="$SLUICE_BIN" DESTDIR="$root" PREFIX=$prefix "$@" >>"$T/make.log" 2>&1; }
check "make install DESTDIR=... PREFIX=/usr succeeds" inst install
sed 's/^/# /' "$T/make.log"
check "sluiced installed executable in /usr/sbin" test -x "$root/usr/sbin/sluiced"
check "sluicectl installed executable in /usr/bin" test -x "$root/usr/bin/sluicectl"
check "installed sluiced runs (-h)" bash -c "'$root/usr/sbin/sluiced' -h | grep -q usage"
"$root/usr/bin/sluicectl" --help >"$T/help.txt"
check "installed sluicectl runs (--help lists its subcommands)" grep -q 'counters' "$T/help.txt"

compl=$root/usr/share/bash-completion/completions/sluicectl
check "bash completion installed in /usr/share/bash-completion/completions" test -s "$compl"
words() { bash -c ". '$compl'; COMP_WORDS=(sluicectl $1); COMP_CWORD=$2; _sluicectl; echo \"\${COMPREPLY[*]}\""; }
check "completion offers the subcommands" bash -c '[[ " $1 " == *" delete "* ]]' _ "$(words de 1)"
check "completion offers a subcommand's options" bash -c "[[ \"\$1\" == *--reason* ]]" _ "$(words 'bounce --' 2)"
unit=$root/usr/lib/systemd/system/sluice.service
check "the systemd unit is in /usr/lib/systemd/system" test -f "$unit"
check "its ExecStart runs /usr/sbin/sluiced" grep -Eq '^ExecStart=/usr/sbin/sluiced( |$)' "$unit"
check "no /usr/local path left in the unit's settings" bash -c "! grep -v '^#' '$unit' | grep -q /usr/local"
check "sysusers.d snippet installed" test -s "$root/usr/lib/sysusers.d/sluice.conf"
check "tmpfiles.d snippet installed" test -s "$root/usr/lib/tmpfiles.d/sluice.conf"
if [ -f "$top/conf/sluice.logrotate" ]; then
  check "logrotate snippet installed in /etc/logrotate.d" test -s "$root/etc/logrotate.d/sluice"
fi
cfg=$root/etc/sluice/sluice.ini
check "the sample config is /etc/sluice/sluice.ini" cmp -s "$top/conf/sluice.ini" "$cfg"
check "the installed config passes config check" "$root/usr/bin/sluicectl" -c "$cfg" config check
# The settings a working install needs agree with the unit's directories.
state=$(sed -n 's/^StateDirectory=//p' "$unit") logs=$(sed -n 's/^LogsDirectory=//p' "$unit")
spool=$("$SLUICECTL" -c "$cfg" config eval spool_dir | sed 's/^[^=]* = //')
dlog=$("$SLUICECTL" -c "$cfg" config eval delivery_log | sed 's/^[^=]* = //')
check "spool_dir ($spool) is in the unit's StateDirectory ($state)" \
  test -n "$state" -a "${spool#/var/lib/"$state"}" != "$spool"
check "delivery_log ($dlog) is in the unit's LogsDirectory ($logs)" \
  test -n "$logs" -a "${dlog#/var/log/"$logs"/}" != "$dlog"
check "the unit's ReadWritePaths cover the spool and the log" \
  bash -c "grep '^ReadWritePaths=' '$unit' | grep -q '/var/lib/$state' && grep '^ReadWritePaths=' '$unit' | grep -q '/var/log/$logs'"
check "the unit runs as the config's user" \
  grep -qx "User=$("$SLUICECTL" -c "$cfg" config eval user | sed 's/^[^=]* = //')" "$unit"
for m in man8/sluiced.8 man8/sluicectl.8 man5/sluice.ini.5; do
  page=$root/usr/share/man/$m.gz
  if [ -f "$page" ]; then
    MANWIDTH=80 man --warnings -l "$page" >"$T/page.txt" 2>"$T/page.err"
    check "$m renders without warnings" test ! -s "$T/page.err" -a -s "$T/page.txt"
    sed 's/^/#   /' "$T/page.err"
  else
    not_ok "$m installed (gzipped)"
  fi
done

# --- a second install keeps the operator's config --------------------------
echo "workers = 8" >>"$cfg"
cp "$cfg" "$T/mine.ini"
check "a second make install succeeds" inst install
check "it kept the modified sluice.ini" cmp -s "$T/mine.ini" "$cfg"
check "and put the new sample next to it as sluice.ini.dist" cmp -s "$top/conf/sluice.ini" "$cfg.dist"

# --- make uninstall ---------------------------------------------------------
check "make uninstall succeeds" inst uninstall
left=$(cd "$root" && find . -type f -o -type l | sort)
check "only the operator's changed config is left (left: ${left//$'\n'/ })" test "$left" = "./etc/sluice/sluice.ini"
rm -f "$cfg"
check "install then uninstall on a fresh tree leaves no file" bash -c "
  make -s -C '$top' BIN='$SLUICE_BIN' DESTDIR='$T/fresh' PREFIX=/usr/local install >/dev/null 2>&1 &&
  grep -q '^ExecStart=/usr/local/sbin/sluiced' '$T/fresh/usr/local/lib/systemd/system/sluice.service' &&
  make -s -C '$top' BIN='$SLUICE_BIN' DESTDIR='$T/fresh' PREFIX=/usr/local uninstall >/dev/null 2>&1 &&
  test -z \"\$(find '$T/fresh' -type f -o -type l)\""
