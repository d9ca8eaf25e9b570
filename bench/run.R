# Benchmarks of mirai against parallel (PSOCK), future and callr.
#
#   make bench                              (installs into ./lib, runs the Rust
#                                            load generator, then this)
#   R_LIBS=$PWD/lib Rscript bench/run.R     (package already installed)
#
# Environment: BENCH_SIZE scales every repetition count and size (1 = full run,
# 0.01 = smoke run); BENCH_TASKS sets the number of throughput tasks (100,000);
# BENCH_BIG=0 drops the 1 GB payload of a full run (BENCH_BIG=1 adds it to a
# smaller one); MIRAI_PEER_LIB names a library holding another mirai (the
# original from CRAN) to run the mirai workloads against in a separate R
# process; BENCH_LOADGEN names the TSV written by the load generator
# (`cargo bench -p mirai-core --bench loadgen -- --out FILE`). Rewrites
# bench/RESULTS.md; BENCH_OUT names another file. Takes about 10 minutes.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  dir <- if (length(f)) dirname(normalizePath(f[1])) else "bench"
  source(file.path(dir, "functions.R"), local = FALSE)
})

bench_dir <- bench_dir_of()
out <- Sys.getenv("BENCH_OUT", file.path(bench_dir, "RESULTS.md"))
res <- bench_main(bench_dir, out_md = out)
if (any(grepl("^ERROR", res$note))) {
  message(sprintf("%d workload(s) failed: see the ERROR rows", sum(grepl("^ERROR", res$note))))
  quit(status = 1L)
}
