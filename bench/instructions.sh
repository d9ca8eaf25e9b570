#!/bin/sh
# Instructions executed per task, for each mirai build given, counted by
# valgrind's callgrind (a count, so the machine's load does not move it):
# - host: a session starts 2 daemons with the dispatcher and makes 500 round
#   trips; the same session then also sends N tasks by mirai_map() and N by
#   mirai() and collects them. The difference over 2N is the figure.
# - daemon: one daemon, started by hand under callgrind, serves a host
#   (without dispatcher) that sends it nothing, or the same 2N tasks.
#   sh bench/instructions.sh LIB [LIB ...]     (N=5000 unless set)
# Each build's pairs of runs go side by side; about 5 minutes per build.
set -eu
n=${N:-5000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/host.R" <<'R'
suppressPackageStartupMessages(library(mirai))
f <- function(x) x
tasks <- function(n) {
  invisible(mirai_map(seq_len(n), f)[])
  ms <- vector("list", n)
  for (i in seq_len(n)) ms[[i]] <- mirai(i, i = i)
  invisible(collect_mirai(ms))
}
n <- if (Sys.getenv("TASKS") == "yes") as.integer(Sys.getenv("N")) else 0L
if (Sys.getenv("COUNT") == "host") {
  daemons(2, dispatcher = TRUE)
  for (i in 1:500) mirai(1)[]
  if (n) tasks(n)
} else {
  daemons(url = local_url(), dispatcher = FALSE)
  out <- Sys.getenv("OUT")
  daemon_code <- sprintf("mirai::daemon('%s')", status()$daemons)
  system2(file.path(R.home("bin"), "R"),
          c("-d", shQuote(paste0("valgrind --tool=callgrind --callgrind-out-file=", out, ".out")),
            "--vanilla", "--slave", "-e", shQuote(daemon_code)),
          wait = FALSE, stdout = paste0(out, ".log"), stderr = paste0(out, ".log"))
  while (status()$connections < 1L) Sys.sleep(0.2)
  if (n) tasks(n)
  daemons(0)
  # the daemon's count is written when its process ends
  while (!any(grepl("refs:", readLines(paste0(out, ".log"), warn = FALSE)))) Sys.sleep(0.2)
}
daemons(0)
R
refs() { sed -n 's/.*I *refs: *//p' "$1.log" | tr -d , ; }
count_host() { # lib tasks out
  COUNT=host N=$n TASKS=$2 R_LIBS=$1 R -d "valgrind --tool=callgrind --callgrind-out-file=$3.out" \
    --vanilla --slave -f "$work/host.R" > "$3.log" 2>&1
  refs "$3" > "$3.n"
}
count_daemon() { # lib tasks out
  COUNT=daemon OUT=$3 N=$n TASKS=$2 R_LIBS=$1 Rscript "$work/host.R" > "$3.host.log" 2>&1
  refs "$3" > "$3.n"
}
per_task() { echo $(( ($(cat "$1.n") - $(cat "$2.n")) / (2 * n) )); }
echo "| build | instructions per task (host) | instructions per task (daemon) |"
echo "| --- | --- | --- |"
i=0
for lib in "$@"; do
  i=$((i + 1))
  count_host "$lib" no "$work/host0-$i" &
  count_host "$lib" yes "$work/host1-$i"
  wait
  count_daemon "$lib" no "$work/daemon0-$i" &
  count_daemon "$lib" yes "$work/daemon1-$i"
  wait
  echo "| $lib | $(per_task "$work/host1-$i" "$work/host0-$i") | $(per_task "$work/daemon1-$i" "$work/daemon0-$i") |"
done
