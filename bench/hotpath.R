# Small-task hot paths of this build beside other builds, alternating the
# builds in one run so that the machine's drift falls on all of them alike:
# the round trip of mirai(1)[], mirai_map() throughput split into creating
# the map and collecting it, and mirai() submission alone, dispatcher on.
#
#   Rscript bench/hotpath.R LIB [LIB ...]       (each LIB holds a mirai build)
#
# Writes a table to stdout; each figure is the median over ROUNDS rounds.
args <- commandArgs(trailingOnly = TRUE)
rounds <- as.integer(Sys.getenv("ROUNDS", "3"))
worker <- function() {
  suppressPackageStartupMessages(library(mirai))
  daemons(2, dispatcher = TRUE)
  on.exit(daemons(0))
  for (i in 1:500) mirai(1)[]
  time_us <- function(n, f) { s <- proc.time()[[3]]; f(); (proc.time()[[3]] - s) / n * 1e6 }
  n <- 30000L
  rt <- time_us(2000L, function() for (i in 1:2000) mirai(1)[])
  m <- NULL
  create <- time_us(n, function() m <<- mirai_map(seq_len(n), function(x) x))
  collect <- time_us(n, function() m[])
  ms <- vector("list", n)
  submit <- time_us(n, function() for (i in seq_len(n)) ms[[i]] <- mirai(i, i = i))
  collect_mirai(ms)
  c(round_trip_us = rt, map_create_us = create, map_collect_us = collect,
    map_tasks_per_s = 1e6 / (create + collect), mirai_submit_us = submit)
}
if (length(args) && args[[1L]] == "--worker") {
  saveRDS(worker(), args[[2L]])
  quit(save = "no")
}
stopifnot(length(args) >= 1L)
f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
script <- normalizePath(f[1L])
rows <- list()
for (round in seq_len(rounds)) for (lib in args) {
  out <- tempfile(fileext = ".rds")
  status <- system2(file.path(R.home("bin"), "Rscript"), c(shQuote(script), "--worker", out),
                    env = sprintf("R_LIBS=%s", lib))
  if (status != 0L) stop(sprintf("the run with %s failed", lib))
  rows[[length(rows) + 1L]] <- data.frame(lib = lib, t(readRDS(out)))
}
all <- do.call(rbind, rows)
med <- aggregate(. ~ lib, data = all, FUN = median)
med <- med[match(args, med$lib), ]
cat(sprintf("%s, load average %s, %d rounds\n", format(Sys.time(), tz = "UTC", usetz = TRUE),
            paste(readLines("/proc/loadavg", warn = FALSE), collapse = ""), rounds))
cat("| build | round trip us | map create us/task | map collect us/task | map tasks/s | mirai() submit us |\n")
cat("| --- | --- | --- | --- | --- | --- |\n")
for (i in seq_len(nrow(med)))
  with(med[i, ], cat(sprintf("| %s | %.1f | %.1f | %.1f | %.0f | %.1f |\n", lib, round_trip_us,
                             map_create_us, map_collect_us, map_tasks_per_s, mirai_submit_us)))
