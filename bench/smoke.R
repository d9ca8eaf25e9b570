# A quick check that the benchmark scripts run: the same workloads as
# bench/run.R with tiny sizes, written to a temporary file (RESULTS.md is left
# alone). Exits non-zero if a workload failed.
#   R_LIBS=$PWD/lib Rscript bench/smoke.R
# or, from R: source("bench/smoke.R") (returns the results data.frame).
local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  dir <- if (length(f)) dirname(normalizePath(f[1])) else {
    of <- NULL
    for (i in rev(seq_len(sys.nframe()))) if (!is.null(sys.frame(i)$ofile)) { of <- sys.frame(i)$ofile; break }
    if (is.null(of)) "bench" else dirname(normalizePath(of))
  }
  source(file.path(dir, "functions.R"), local = FALSE)
  assign("bench_dir", dir, envir = globalenv())
})

if (!nzchar(Sys.getenv("BENCH_SIZE"))) Sys.setenv(BENCH_SIZE = "0.01")
smoke_out <- tempfile("mirai-bench-", fileext = ".md")
smoke_res <- bench_main(bench_dir, out_md = smoke_out, cfg = bench_config())
stopifnot(file.exists(smoke_out), nrow(smoke_res) > 0L)
smoke_failed <- grepl("^ERROR", smoke_res$note)
if (any(smoke_failed)) {
  print(smoke_res[smoke_failed, c("workload", "implementation", "note")])
  if (!interactive() && sys.nframe() == 0L) quit(status = 1L)
  stop(sprintf("%d benchmark workload(s) failed", sum(smoke_failed)))
}
cat("bench smoke run: OK\n")
invisible(smoke_res)
