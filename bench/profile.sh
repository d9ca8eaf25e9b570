#!/bin/sh
# Where the time goes: CPU profiles (perf, user and kernel) of the round
# trip and of the 100 MB payload workloads of bench/profile.R, summarised by
# process and thread, by library, and by function.
#
#   R_LIBS=$PWD/lib sh bench/profile.sh [output directory, default target/profile]
#
# Needs perf (Debian: linux-perf) and kernel.perf_event_paranoid <= 2.
set -eu
out=${1:-target/profile}
dir=$(dirname "$0")
mkdir -p "$out"
for workload in roundtrip payload; do
  perf record -q -F 1999 -g -o "$out/$workload.data" -- \
    Rscript "$dir/profile.R" "$workload" > "$out/$workload.txt"
  for sort in pid,comm comm,dso sym; do
    perf report -q -i "$out/$workload.data" --no-children --sort "$sort" -g none \
      --percent-limit 0.5 --stdio 2>/dev/null > "$out/$workload-by-$sort.txt"
  done
  echo "== $workload: $(cat "$out/$workload.txt" | tr '\n' ' ')"
  for sort in pid,comm comm,dso sym; do
    echo "-- by $sort"
    head -n 15 "$out/$workload-by-$sort.txt"
  done
done
