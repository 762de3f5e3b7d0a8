#!/usr/bin/env bash
# config_cli.sh - `sluicectl config check|show|eval` against golden output.
#
# Each case runs the real binary on a config of tests/golden/ and compares its
# output (stdout, then stderr) and exit status with the block of the same
# command in tests/golden/config_cli.txt; one TAP line per case.
# UPDATE_GOLDEN=1 rewrites that transcript from the current binary (review the diff!).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
ctl=${SLUICE_BIN:-$top/bin}/sluicectl
golden=tests/golden/config_cli.txt
tmp=$(mktemp -d "${TMPDIR:-/tmp}/config_cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0

cases=(
  # seed 000: 15 from binding example, 5 from another binding of group1, 30 outside it
  "seed000.ini config check"
  "seed000.ini config eval --binding example --domain example.com max_outbound_connections"
  "seed000.ini config eval --binding other --domain example.com max_outbound_connections"
  "seed000.ini config eval --binding outside --domain example.com max_outbound_connections"
  "seed000.ini config eval binding example domain example.com Max_Outbound_Connections"
  "seed000.ini config eval --explain --binding example --domain example.com max_outbound_connections"
  "seed000.ini config eval --explain --binding other --domain example.com max_outbound_connections"
  "seed000.ini config eval --explain --binding outside --domain example.com max_outbound_connections"
  "seed000.ini config eval --explain --binding-group group1 --domain example.com max_outbound_connections"
  "seed000.ini config eval --explain --binding example bind_address"
  # seed 000: yahoofriends 30, other bindings 10, other domains the default 32
  "yahoofriends.ini config eval --binding yahoofriends --domain yahoo.com max_outbound_connections"
  "yahoofriends.ini config eval --binding other --domain yahoo.com max_outbound_connections"
  "yahoofriends.ini config eval --explain --binding yahoofriends --domain gmail.com max_outbound_connections"
  # seed 000: the host scope never inherits (-1), the global value is 32
  "host.ini config eval max_outbound_connections"
  "host.ini config eval host example.com max_outbound_connections"
  "host.ini config eval --host example.com max_outbound_connections"
  "host.ini config eval --explain --host example.com max_outbound_connections"
  # seed 002: regex stanzas; seed 001: the cluster chain
  "regex.ini config check"
  "regex.ini config eval --domain aol.com max_outbound_connections"
  "regex.ini config eval --domain yahoo.com max_outbound_connections"
  "regex.ini config eval --explain --domain gmail.com max_outbound_connections"
  "regex.ini config eval --explain --domain orange.fr scope_max_outbound_connections"
  "regex.ini config eval --explain --domain mx3.example mx_limit"
  "regex.ini config eval --explain --domain omniti.com --host edge.omniti.com cluster_max_outbound_connections"
  "regex.ini config eval --explain --domain omniti.com cluster_max_outbound_connections"
  # defaults, aliases, display of durations
  "host.ini config eval --explain body_timeout"
  "host.ini config eval retry_interval"
  "host.ini config eval ehlo_hostname"
  # refusals
  "bad.ini config check"
  "bad.ini config eval max_outbound_connections"
  "seed000.ini config eval no_such_option"
  "seed000.ini config eval --binding nobody max_outbound_connections"
  "seed000.ini config eval --binding outside --binding-group group1 mx_limit"
  "seed000.ini config eval"
  "seed000.ini config eval --bogus mx_limit"
  "seed000.ini config frobnicate"
  "missing.ini config check"
  # a delivery_log no user could append to: a missing directory, through a file, a directory
  "log_nodir.ini config check"
  "log_notdir.ini config check"
  "log_isdir.ini config check"
  "log_ok.ini config check"
  # the linter: hints in errors, warnings that keep exit 0 unless --strict
  "lint_errors.ini config check"
  "lint_warn.ini config check"
  "lint_warn.ini config check --strict"
  "lint_warn.ini config check --bogus"
  "lint_warn.ini config eval --explain --chain --binding b1 --domain yahoo.com max_outbound_connections"
  "lint_warn.ini config eval --explain --chain --binding b3 --domain yahoo.com max_outbound_connections"
  "seed000.ini config eval --explain --chain --binding example --domain example.com max_outbound_connections"
  # the effective configuration: -n only what the file changes (the full list grows with options)
  "lint_warn.ini config show -n"
  "seed000.ini config show -n"
  "host.ini config show -n"
  "host.ini config show --all"
)

# run_case - the transcript block of one case: "$ command", its output, "[exit N]"
run_case() {
  local ini=$1; shift
  echo "\$ sluicectl -c tests/golden/$ini $*"
  "$ctl" -c "tests/golden/$ini" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  cat "$tmp/out" "$tmp/err"
  echo "[exit $rc]"
}

# expected - the golden block whose "$ ..." line is exactly $1
expected() {
  CMD=$1 awk 'substr($0, 1, 2) == "$ " { keep = ($0 == ENVIRON["CMD"]) } keep' "$golden"
}

if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
  for c in "${cases[@]}"; do run_case $c; echo; done >"$golden"
  echo "# rewrote $golden"
fi

for c in "${cases[@]}"; do
  n=$((n + 1))
  run_case $c | grep -v '^$' >"$tmp/got"
  expected "$(head -1 "$tmp/got")" | grep -v '^$' >"$tmp/want"
  if [ -s "$tmp/want" ] && cmp -s "$tmp/want" "$tmp/got"; then
    echo "ok $n - $c"
  else
    echo "not ok $n - $c"
    diff -u "$tmp/want" "$tmp/got" | sed 's/^/#   /'
    failed=$((failed + 1))
  fi
done
# The seeds' numbers, spelled out here too, so that a regenerated transcript cannot hide a
# wrong answer.
seeds=(
  "Max_Outbound_Connections = 15|seed000.ini config eval --binding example --domain example.com max_outbound_connections"
  "Max_Outbound_Connections = 5|seed000.ini config eval --binding other --domain example.com max_outbound_connections"
  "Max_Outbound_Connections = 30|seed000.ini config eval --binding outside --domain example.com max_outbound_connections"
  "Max_Outbound_Connections = 30|yahoofriends.ini config eval --binding yahoofriends --domain yahoo.com max_outbound_connections"
  "Max_Outbound_Connections = 10|yahoofriends.ini config eval --binding other --domain yahoo.com max_outbound_connections"
  "Max_Outbound_Connections = 32|yahoofriends.ini config eval --binding other --domain gmail.com max_outbound_connections"
  "Max_Outbound_Connections = 32|host.ini config eval max_outbound_connections"
  "Max_Outbound_Connections = -1|host.ini config eval host example.com max_outbound_connections"
  "Max_Outbound_Connections = 5|regex.ini config eval --domain aol.com max_outbound_connections"
  "Max_Outbound_Connections = 32|regex.ini config eval --domain gmail.com max_outbound_connections"
)
for s in "${seeds[@]}"; do
  n=$((n + 1))
  want=${s%%|*} c=${s#*|}
  got=$(run_case $c | sed -n 2p)
  if [ "$got" = "$want" ]; then
    echo "ok $n - $c = ${want##* }"
  else
    echo "not ok $n - $c: got \"$got\", want \"$want\""
    failed=$((failed + 1))
  fi
done
n=$((n + 1))
if [ ! -e /tmp/sluice-config-cli-never-created.log ]; then
  echo "ok $n - config check creates no delivery log"
else
  echo "not ok $n - config check created /tmp/sluice-config-cli-never-created.log"
  failed=$((failed + 1))
fi
echo "1..$n"
[ "$failed" -eq 0 ]
