# Tasks through a standalone dispatcher: a host with `dispatcher = FALSE`,
# and `Rscript -e 'mirai::dispatcher(url, n = 2)'` dialled into it over TCP
# on loopback, serving 2 daemons of its own. N trivial tasks
# (`mirai(i, i = i)`, every value checked) are submitted at once, then
# collected; tasks/s is N over that time. CPU per task is read from
# /proc (user + system) for the dispatcher's process, for its daemons, and
# for the host's R process, over the same interval.
#
# Two builds are run side by side in the same run, alternating, each in a
# process of its own with only its library on R_LIBS: this work tree's
# (./lib: the relay in the core) and a previous build's (the R relay).
#
#   R_LIBS=$PWD/lib Rscript bench/relay.R [N] [previous lib] [out.md]
#   # defaults: 5000, /work/wt/baseline/lib (main at a247955), bench/RELAY.md
#
# bench/run.R copies bench/RELAY.md into bench/RESULTS.md.

args <- commandArgs(trailingOnly = TRUE)
f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
script <- normalizePath(f[1L])
rscript <- file.path(R.home("bin"), "Rscript")

# /proc/<pid>/stat: user + system CPU seconds of a process.
cpu_s <- function(pid) {
  stat <- tryCatch(readLines(sprintf("/proc/%d/stat", pid), warn = FALSE), error = function(e) "")
  if (!nzchar(stat)) return(NA_real_)
  fields <- strsplit(sub("^.*\\) ", "", stat), " ", fixed = TRUE)[[1L]]
  sum(as.numeric(fields[12:13])) / 100
}

children_of <- function(pid) {
  stats <- Sys.glob("/proc/[0-9]*/stat")
  ppid <- vapply(stats, function(s) {
    line <- tryCatch(readLines(s, warn = FALSE), error = function(e) "")
    if (!nzchar(line)) return(NA_integer_)
    as.integer(strsplit(sub("^.*\\) ", "", line), " ", fixed = TRUE)[[1L]][2L])
  }, integer(1L))
  as.integer(basename(dirname(stats[!is.na(ppid) & ppid == pid])))
}

# One measurement, in a process whose R_LIBS holds one build only.
child <- function(n, reps, out) {
  suppressPackageStartupMessages(library(mirai))
  daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE)
  on.exit(daemons(0))
  url <- status()$daemons
  code <- sprintf("mirai::dispatcher(\"%s\", n = 2L)", url)
  system2(rscript, c("-e", shQuote(code)), wait = FALSE)
  host <- mirai:::..[["default"]][["host"]]
  pid <- NA_integer_
  for (i in 1:400) {
    s <- mirai:::host_status(host)
    if (any(s[["online"]])) {
      pid <- as.integer(s[["pid"]][s[["online"]]][1L])
      break
    }
    Sys.sleep(0.05)
  }
  stopifnot(!is.na(pid))
  daemons_of <- function() children_of(pid)
  # warm-up, until both of the dispatcher's daemons have connected and run
  for (i in 1:40) {
    ms <- lapply(1:500, function(i) mirai(i, i = i))
    collect_mirai(ms)
    if (length(daemons_of()) >= 2L) break
  }
  local <- daemons_of()
  rows <- lapply(seq_len(reps), function(r) {
    cpu0 <- c(cpu_s(pid), sum(vapply(local, cpu_s, numeric(1L))), sum(proc.time()[c(1L, 2L)]))
    t0 <- proc.time()[["elapsed"]]
    ms <- lapply(seq_len(n), function(i) mirai(i, i = i))
    values <- collect_mirai(ms)
    elapsed <- proc.time()[["elapsed"]] - t0
    cpu1 <- c(cpu_s(pid), sum(vapply(local, cpu_s, numeric(1L))), sum(proc.time()[c(1L, 2L)]))
    stopifnot(identical(unlist(values), seq_len(n)))
    us <- (cpu1 - cpu0) / n * 1e6
    data.frame(tasks_per_s = n / elapsed, dispatcher_us = us[1L], daemons_us = us[2L],
               host_us = us[3L])
  })
  saveRDS(list(rows = do.call(rbind, rows),
               version = as.character(utils::packageVersion("mirai")),
               lib = dirname(find.package("mirai"))), out)
}

if (length(args) >= 1L && args[[1L]] == "--child") {
  child(as.integer(args[[2L]]), as.integer(args[[3L]]), args[[4L]])
  quit(save = "no")
}

n <- if (length(args) >= 1L) as.integer(args[[1L]]) else 5000L
previous <- if (length(args) >= 2L) args[[2L]] else "/work/wt/baseline/lib"
out <- if (length(args) >= 3L) args[[3L]] else file.path(dirname(script), "RELAY.md")
current <- normalizePath(file.path(dirname(script), "..", "lib"))
builds <- c("core relay (this tree)" = current, "R relay (previous build)" = previous)
rounds <- 3L
reps <- 3L

load <- tryCatch(paste(strsplit(readLines("/proc/loadavg", warn = FALSE), " ")[[1L]][1:3], collapse = " "),
                 error = function(e) "")
started <- Sys.time()
results <- list()
for (round in seq_len(rounds)) {
  for (label in names(builds)) {
    rds <- tempfile(fileext = ".rds")
    status <- system2(rscript, c(shQuote(script), "--child", n, reps, rds),
                      env = sprintf("R_LIBS=%s", builds[[label]]))
    if (status != 0L || !file.exists(rds)) stop(sprintf("%s: the measurement failed", label))
    res <- readRDS(rds)
    results[[label]] <- rbind(results[[label]], res$rows)
    attr(results[[label]], "version") <- res$version
    cat(sprintf("round %d, %s: %.0f tasks/s\n", round, label, stats::median(res$rows$tasks_per_s)))
  }
}

med <- function(x) stats::median(x, na.rm = TRUE)
fmt <- function(x, digits = 0) formatC(x, format = "f", digits = digits, big.mark = ",")
table <- vapply(names(results), function(label) {
  r <- results[[label]]
  sprintf("| %s | %s | %s | %s | %s | %s | %s |", label, builds[[label]],
          fmt(med(r$tasks_per_s)), paste(fmt(range(r$tasks_per_s)), collapse = "-"),
          fmt(med(r$dispatcher_us), 1), fmt(med(r$daemons_us), 1), fmt(med(r$host_us), 1))
}, character(1L))
ratio <- med(results[[1L]]$tasks_per_s) / med(results[[2L]]$tasks_per_s)
cpu_ratio <- med(results[[2L]]$dispatcher_us) / med(results[[1L]]$dispatcher_us)
lines <- c(
  sprintf("Written by `bench/relay.R`: `R_LIBS=$PWD/lib Rscript bench/relay.R %d %s` on %s UTC (load average at the start: %s), %.0f s in all.",
          n, previous, format(started, "%Y-%m-%d %H:%M:%S", tz = "UTC"), load,
          as.numeric(difftime(Sys.time(), started, units = "secs"))),
  "",
  sprintf(paste("A host with `dispatcher = FALSE`; `mirai::dispatcher(url, n = 2)` in its own `Rscript`, dialled in over TCP on loopback;",
                "%s trivial tasks `mirai(i, i = i)` submitted at once, then collected (values checked). %d rounds, alternating the builds,",
                "of %d runs each: %d runs per build. CPU (user + system, from /proc, 10 ms ticks) per task, medians."),
          formatC(n, format = "d", big.mark = ","), rounds, reps, rounds * reps),
  "",
  "| build | library | tasks/s (median) | tasks/s (range) | dispatcher CPU us/task | its daemons' CPU us/task | host CPU us/task |",
  "| --- | --- | --- | --- | --- | --- | --- |",
  table,
  "",
  sprintf("The core relay passes %.2f times as many tasks per second, and its dispatcher process uses %.2f times less CPU per task.",
          ratio, cpu_ratio))
writeLines(lines, out)
cat(lines, sep = "\n")
