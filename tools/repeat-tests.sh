#!/bin/sh
# Runs the installed package's testthat suite N times (default 5), each with
# a time limit, to catch an intermittent failure or hang. testthat's
# LocationReporter prints every expectation as it passes, so the log of a run
# that hangs ends at the test that hung. Logs: target/repeat-tests/run-I.log.
#   make install && sh tools/repeat-tests.sh [N] [LIMIT_SECONDS]
set -u
runs=${1:-5}
limit=${2:-600}
dir=target/repeat-tests
mkdir -p "$dir"
i=1
while [ "$i" -le "$runs" ]; do
  log="$dir/run-$i.log"
  start=$(date +%s)
  timeout "$limit" env NOT_CRAN=true R_LIBS="$PWD/lib" Rscript -e "library(testthat); library(mirai); r <- as.data.frame(test_dir('tests/testthat', reporter = LocationReporter\$new(), package = 'mirai', load_package = 'installed', stop_on_failure = FALSE)); quit(status = as.integer(sum(r\$failed) > 0))" > "$log" 2>&1
  status=$?
  echo "run $i: exit $status after $(( $(date +%s) - start )) s ($log)"
  if [ "$status" -ne 0 ]; then
    echo "last test started: $(grep 'Start test' "$log" | tail -1)"
    exit "$status"
  fi
  i=$((i + 1))
done
