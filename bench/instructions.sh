#!/bin/sh
# Instructions the host R process executes per task, for each mirai build
# given, counted by valgrind's callgrind (a count, so the machine's load does
# not move it). A session starts 2 daemons with the dispatcher and makes 500
# round trips; the same session then also sends N tasks by mirai_map() and N
# by mirai() and collects them. The difference over 2N is the figure.
#   sh bench/instructions.sh LIB [LIB ...]     (N=5000 unless set)
# Each build's two sessions run side by side; about 3 minutes per build.
set -eu
n=${N:-5000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/session.R" <<'R'
suppressPackageStartupMessages(library(mirai))
daemons(2, dispatcher = TRUE)
for (i in 1:500) mirai(1)[]
if (Sys.getenv("TASKS") == "yes") {
  n <- as.integer(Sys.getenv("N"))
  invisible(mirai_map(seq_len(n), function(x) x)[])
  ms <- vector("list", n)
  for (i in seq_len(n)) ms[[i]] <- mirai(i, i = i)
  invisible(collect_mirai(ms))
}
daemons(0)
R
count() { # lib tasks out
  N=$n TASKS=$2 R_LIBS=$1 R -d "valgrind --tool=callgrind --callgrind-out-file=$3.out" \
    --vanilla --slave -f "$work/session.R" > "$3.log" 2>&1
  sed -n 's/.*I *refs: *//p' "$3.log" | tr -d ,
}
echo "| build | instructions per task (host) |"
echo "| --- | --- |"
i=0
for lib in "$@"; do
  i=$((i + 1))
  count "$lib" no "$work/base$i" > "$work/base$i.n" &
  count "$lib" yes "$work/tasks$i" > "$work/tasks$i.n"
  wait
  echo "| $lib | $(( ($(cat "$work/tasks$i.n") - $(cat "$work/base$i.n")) / (2 * n) )) |"
done
