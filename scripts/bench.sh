#!/usr/bin/env bash
# bench.sh - run the counter-table benchmark (make bench): bench.sh BENCHDIR
# Prints the figures of bench_shm, one per line, and fails when the program fails (a refused
# reservation, a count left behind, a missing binary).
set -euo pipefail
dir=${1:?usage: bench.sh BENCHDIR}
bin=$dir/bench_shm
[ -x "$bin" ] || { echo "bench.sh: $bin is missing (make bench builds it)" >&2; exit 1; }
echo "bench_shm ($(uname -m), $(nproc) cores)"
"$bin"
"$(dirname "$0")/bench_delivery.sh" "$dir"
