#!/usr/bin/env bash
# fuzz_regress.sh - the inputs that once broke a parser stay fixed.
#
# Each fuzz target (tests/fuzz/fuzz_NAME.c) is linked by every build with a plain main
# ($SLUICE_TESTS/replay_NAME, tests/fuzz/replay.c) that runs the files it is given once.
# Here each one replays its regression inputs (tests/fuzz/regress/NAME/: every input that
# made a parser crash, hang or trip a sanitizer, kept after the fix) and its seed
# corpus (tests/fuzz/corpus/NAME/).  The targets check the parsers' promises themselves,
# so a fixed bug that comes back aborts the replay even without sanitizers (under SAN=1
# they watch too), and one that hangs runs into a time limit.  One TAP line per target
# and kind of input; a target without a corpus or without its replay program fails.
# No clang or libFuzzer needed.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
t=${SLUICE_TESTS:?SLUICE_TESTS names the unit-test directory of the build}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_regress.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $*"; }

for src in tests/fuzz/fuzz_*.c; do
  name=${src#tests/fuzz/fuzz_}; name=${name%.c}
  bin=$t/replay_$name
  if [ ! -x "$bin" ]; then not_ok "$name: $bin is missing (make tests builds it)"; continue; fi
  for kind in regress corpus; do
    d=tests/fuzz/$kind/$name
    count=$(find "$d" -maxdepth 1 -type f 2>/dev/null | wc -l)
    if [ "$count" -eq 0 ]; then
      if [ $kind = corpus ]; then not_ok "$name: no seed corpus in $d"; fi
      continue
    fi
    # a bug that hangs comes back as a replay that does not end: 120 s is far beyond any
    if TMPDIR=$tmp timeout -k 5 120 "$bin" "$d" >"$tmp/$name.$kind.log" 2>&1; then
      ok "$name: the $count inputs of $d replay cleanly"
    else
      not_ok "$name: replaying $d failed"
      tail -20 "$tmp/$name.$kind.log" | sed 's/^/    /'
    fi
  done
done
