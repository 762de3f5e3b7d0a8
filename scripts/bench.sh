#!/usr/bin/env bash
# bench.sh - run the counter-table benchmark (make bench): bench.sh BENCHDIR
# Prints the figures of bench_shm, one per line, and fails when the program fails (a refused
# reservation, a count left behind, a missing binary); then the delivery parts
# (bench_delivery.sh), and the rescan of a big spool (bench_rescan: BENCH_RESCAN_N messages,
# default 200,000, about 1 GB of disk for a minute; part "rescan" of BENCH_PARTS).
set -euo pipefail
dir=${1:?usage: bench.sh BENCHDIR}
bin=$dir/bench_shm
[ -x "$bin" ] || { echo "bench.sh: $bin is missing (make bench builds it)" >&2; exit 1; }
echo "bench_shm ($(uname -m), $(nproc) cores)"
"$bin"
"$(dirname "$0")/bench_delivery.sh" "$dir"
# last: the spool it removes (200,000 files) would slow the file creations of the submit part
# for minutes (see bench_delivery.sh)
if [ -z "${BENCH_PARTS:-}" ] || [[ " $BENCH_PARTS " == *" rescan "* ]]; then
  echo "bench_rescan (the master's rescan of a big spool)"
  "$dir/bench_rescan" "${BENCH_RESCAN_N:-200000}"
fi
