#!/usr/bin/env bash
# Fails unless an R CMD check log reports no ERROR, no WARNING and no use of
# R's non-API entry points; prints the R version, the NOTEs and the testthat
# summary.
set -euo pipefail
log="$1"
status=$(grep -E '^Status:' "$log" || true)
echo "R CMD check ($(grep -m1 -oE 'R version [0-9.]+' "$log" || echo 'R version ?')) ${status:-Status: (none)}"
grep -nE -A6 '\.\.\. NOTE' "$log" || true
if grep -qiE 'non-API' "$log"; then
  grep -niE -B2 -A4 'non-API' "$log"
  echo "R CMD check: the package calls non-API entry points of R" >&2
  exit 1
fi
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
