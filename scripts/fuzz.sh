#!/usr/bin/env bash
# fuzz.sh - run every libFuzzer target (make fuzz): fuzz.sh FUZZDIR [SECONDS]
#
# For each FUZZDIR/fuzz_NAME, one after the other: its seeds (tests/fuzz/corpus/NAME) and
# its regression inputs (tests/fuzz/regress/NAME) are copied into a private directory
# (under /dev/shm when it can be written: the spool target fsyncs), and the target runs
# there for SECONDS (60) with ASan and UBSan; what it adds to the corpus stays in that
# directory and goes with it, so tests/fuzz/ is never written.  A crash, a leak, a
# sanitizer report (but a library's own leak named in tests/fuzz/lsan.supp), an input slower
# than 10 s or a run that does not end is a failure: the
# input is kept in build/fuzz/crashes/NAME/ and the log in build/fuzz/logs/NAME.log.
# Prints one TAP line per target with the runs executed and the coverage reached
# (libFuzzer's final "cov:" and "ft:" figures, and the corpus it ended with), then
# "N passed, N failed".  FUZZ_ONLY="a b" runs only those targets.
set -u
dir=$(cd "${1:?usage: fuzz.sh FUZZDIR [SECONDS]}" && pwd) || exit 1
secs=${2:-60}
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/build/fuzz
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/sluice-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/logs"
passed=0 failed=0 n=0

for bin in "$dir"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=${bin##*/fuzz_}
  if [ -n "${FUZZ_ONLY:-}" ]; then
    case " $FUZZ_ONLY " in *" $name "*) ;; *) continue ;; esac
  fi
  n=$((n + 1))
  corpus=$work/$name/corpus tmp=$work/$name/tmp art=$out/crashes/$name log=$out/logs/$name.log
  mkdir -p "$corpus" "$tmp" "$art"
  for src in "$top/tests/fuzz/corpus/$name" "$top/tests/fuzz/regress/$name"; do
    [ -d "$src" ] && find "$src" -maxdepth 1 -type f -exec cp {} "$corpus/" \;
  done
  # a library's own leak is suppressed by the function it happens in (tests/fuzz/lsan.supp);
  # naming that function needs the whole stack at each allocation, slower: only for dns
  unwind=
  [ "$name" = dns ] && unwind=fast_unwind_on_malloc=0
  # -timeout: one input slower than 10 s is a hang; timeout(1): a run that never ends
  (cd "$work/$name" && ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}$unwind \
    LSAN_OPTIONS=suppressions=$top/tests/fuzz/lsan.supp \
    TMPDIR=$tmp timeout -k 10 $((secs + 120)) "$bin" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art/" "$corpus") </dev/null >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  what="fuzz $name: ${runs:-?} runs in ${secs}s, cov: ${cov:-?}, ft: ${ft:-?}, corpus: ${corp:-?}"
  if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
    passed=$((passed + 1)); echo "ok $n - $what"
  else
    failed=$((failed + 1)); echo "not ok $n - $what (exit $rc; log: $log)"
    grep -E 'ERROR|SUMMARY|broken:|runtime error|Test unit written' "$log" | head -8 | sed 's/^/    /'
  fi
done

[ "$n" -gt 0 ] || { echo "fuzz.sh: no fuzz target in $dir" >&2; failed=1; }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
