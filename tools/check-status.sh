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
