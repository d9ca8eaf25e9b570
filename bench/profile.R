# The workloads profiled by bench/profile.sh, each in a steady loop:
#   Rscript bench/profile.R roundtrip   20,000 sequential mirai(1)[] on 1 daemon
#   Rscript bench/profile.R payload     10 round trips of a 100 MB vector
# Prints the process ids of the host and of its daemon, so that perf's
# samples can be told apart (both are named "R", their I/O threads "mirai-io").
workload <- commandArgs(trailingOnly = TRUE)[1L]
stopifnot(workload %in% c("roundtrip", "payload"))
suppressPackageStartupMessages(library(mirai))
daemons(1, dispatcher = TRUE)
while (status()$connections < 1L) Sys.sleep(0.01)
daemon_pid <- mirai(Sys.getpid())[]
cat(sprintf("host pid %d, daemon pid %d\n", Sys.getpid(), daemon_pid))
if (workload == "roundtrip") {
  for (i in 1:500) mirai(1)[]
  n <- 20000L
  started <- Sys.time()
  for (i in seq_len(n)) stopifnot(mirai(1)[] == 1)
  cat(sprintf("%d round trips, %.1f us each\n", n,
              as.numeric(Sys.time() - started, units = "secs") / n * 1e6))
} else {
  x <- stats::runif(100 * 1024^2 / 8)
  times <- vapply(1:10, function(i) {
    started <- Sys.time()
    y <- mirai(x, x = x)[]
    elapsed <- as.numeric(Sys.time() - started, units = "secs") * 1e3
    # spot checks: a full identical() would add its own 100 ms to the profile
    stopifnot(length(y) == length(x), y[1L] == x[1L], y[length(x)] == x[length(x)])
    elapsed
  }, numeric(1))
  cat(sprintf("100 MB round trips (ms): %s\n", paste(round(times), collapse = " ")))
}
daemons(0)
