#!/bin/bash
# Runs the examples of every page in man/ as a user would at the console:
# each in a fresh R process, with the parts shown only in interactive
# sessions (`if (interactive())`) run as well. The package must be installed
# in ./lib (make install). Fails, naming the pages, if any example fails.
# Usage: bash tools/run-examples.sh [page.Rd ...]
set -u
cd "$(dirname "$0")/.."
export R_LIBS="$PWD/lib"
unset R_TESTS
pages=("$@")
if [ ${#pages[@]} -eq 0 ]; then pages=(man/*.Rd); fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for page in "${pages[@]}"; do
  name=$(basename "$page" .Rd)
  script="$work/$name.R"
  Rscript -e 'args <- commandArgs(TRUE)
              tools::Rd2ex(args[1], args[2], commentDontrun = FALSE, commentDonttest = FALSE)
              if (file.exists(args[2])) {
                code <- readLines(args[2])
                code <- gsub("if (interactive())", "if (TRUE)", code, fixed = TRUE)
                writeLines(c("library(mirai)", code), args[2])
              }' "$page" "$script"
  if [ ! -f "$script" ]; then continue; fi
  if (cd "$work" && timeout 120 Rscript "$script" > "$work/$name.out" 2>&1); then
    echo "ok      $name"
  else
    echo "FAILED  $name"
    sed 's/^/    /' "$work/$name.out" | tail -20
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "examples failed: ${failed[*]}"
  exit 1
fi
echo "all examples ran"
