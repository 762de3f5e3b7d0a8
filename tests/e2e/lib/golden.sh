# golden.sh - compare sluicectl's output with a golden transcript, block by block.
# Source it after tap.sh.
#
#   golden_init FILE        the transcript (tests/golden/...); UPDATE_GOLDEN=1 rewrites it
#                           from this run at exit (review the diff!)
#   golden_name TEXT NAME   write NAME for TEXT (a queue id, a path) in every block
#   golden DESC ARGS...     run sluicectl -c "$T/sluice.ini" ARGS; its block ("$ sluicectl
#                           ARGS", stdout, stderr, "[exit N]", normalised) must equal the
#                           next block of FILE: one TAP line.  Leaves the raw output in
#                           $GOLDEN_OUT and the exit status in $GOLDEN_RC.
# Times (ISO 8601 UTC) become TIME; sizes and ids are the test's to name.
_golden_file= _golden_n=0 _golden_sed=()

golden_init() {
  _golden_file=$1
  : >"$T/golden.new"
  if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
    trap 'cp "$T/golden.new" "$_golden_file"; echo "# rewrote $_golden_file"; cleanup' EXIT
  fi
}

golden_name() { _golden_sed+=(-e "s|$1|$2|g"); }

_golden_norm() {
  sed "${_golden_sed[@]}" -e 's/[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9:]\{8\}\(\.[0-9]*\)\{0,1\}Z/TIME/g'
}

# _golden_block N: the N-th block of the golden file (blocks end with "[exit N]")
_golden_block() {
  awk -v n="$1" '{ if (b == n - 1) print } /^\[exit [0-9]+\]$/ { b++ }' "$_golden_file"
}

golden() {
  local desc=$1 want got; shift
  _golden_n=$((_golden_n + 1))
  "$SLUICECTL" -c "$T/sluice.ini" "$@" >"$T/golden.out" 2>"$T/golden.err"
  GOLDEN_RC=$?
  GOLDEN_OUT=$(cat "$T/golden.out")
  got=$({ echo "\$ sluicectl $*"; cat "$T/golden.out" "$T/golden.err"; echo "[exit $GOLDEN_RC]"; } | _golden_norm)
  printf '%s\n' "$got" >>"$T/golden.new"
  want=$(_golden_block "$_golden_n")
  if [ "$got" = "$want" ]; then
    ok "$desc"
  else
    not_ok "$desc"
    diff -u <(printf '%s\n' "$want") <(printf '%s\n' "$got") | sed 's/^/#   /'
  fi
}
