#!/usr/bin/env bash
# Fails unless an R CMD check log reports no ERROR and no WARNING.
set -euo pipefail
log="$1"
status=$(grep -E '^Status:' "$log" || true)
echo "R CMD check ${status:-Status: (none)}"
if [ -z "$status" ] || echo "$status" | grep -Eq 'ERROR|WARNING'; then
  grep -nE -A12 '\.\.\. (ERROR|WARNING)' "$log" || true
  for f in "$(dirname "$log")"/tests/*.Rout.fail; do [ -f "$f" ] && tail -n 60 "$f"; done
  exit 1
fi

# The testthat summary, as a plain closing line: "R tests: N passed, N failed".
rout="$(dirname "$log")/tests/testthat.Rout"
summary=$(grep -E '^\[ FAIL [0-9]+ \| WARN [0-9]+ \| SKIP [0-9]+ \| PASS [0-9]+ \]' "$rout" | tail -n 1)
if [ -z "$summary" ]; then
  echo "no testthat summary in $rout" >&2
  exit 1
fi
failed=$(echo "$summary" | sed -E 's/.*FAIL ([0-9]+).*/\1/')
skipped=$(echo "$summary" | sed -E 's/.*SKIP ([0-9]+).*/\1/')
passed=$(echo "$summary" | sed -E 's/.*PASS ([0-9]+).*/\1/')
echo "R: $passed passed, $failed failed, $skipped skipped"
