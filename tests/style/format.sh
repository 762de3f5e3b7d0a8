#!/usr/bin/env bash
# format.sh - every C file is in the project's clang-format style.
n=0
for f in $(git ls-files --cached --others --exclude-standard '*.c' '*.h'); do
  n=$((n + 1))
  if clang-format --style=file:scripts/clang-format --dry-run -Werror "$f" 2>/dev/null; then
    echo "ok $n - $f is formatted"
  else
    echo "not ok $n - $f differs from scripts/clang-format (run: make format)"
  fi
done
