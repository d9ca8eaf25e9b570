# Large objects: round trips of 8 B (small tasks: no loss), 256 KB, 1 MB and
# 50 MB numeric vectors, against the physical floor measured in the same run,
# and 1 GB both ways.
#
#   R_LIBS=$PWD/lib MIRAI_BASE_LIB=/work/wt/baseline/lib Rscript bench/large.R
#
# Each build (the package in R_LIBS's first library, and, if MIRAI_BASE_LIB is
# set, the one installed there) runs in its own R process, dispatcher on and
# off, one after the other, so both see the same machine. A round trip is
# `mirai(x, x = x)[]` with `x <- seq_len(n) * 0.5`; every call counts,
# garbage collections included (median and p95). The floor is bench/echo.c
# (compiled here with `cc`): a socketpair echo of the same size into freshly
# mapped memory, default socket buffers and 4 MiB ones. 1 GB: one round trip
# with dispatcher on, the value checked with identical(), then the resident
# memory (VmRSS) of the daemon and the host, at once and after idle seconds.
#
# Environment: LARGE_REPS (21) round trips of 50 MB, LARGE_REPS_1MB (51) of
# 256 KB and of 1 MB (ten times as many of 8 B), LARGE_GB=0 skips the 1 GB
# round trip, LARGE_IDLE (12) seconds of idle (the buffer pool drops what it
# holds beyond 512 MiB 10 s after use).
# Writes bench/LARGE.md (copied into bench/RESULTS.md; LARGE_OUT names another
# file) and splices it into bench/RESULTS.md.

args <- commandArgs(TRUE)
reps50 <- as.integer(Sys.getenv("LARGE_REPS", "21"))
reps1 <- as.integer(Sys.getenv("LARGE_REPS_1MB", "51"))
idle <- as.numeric(Sys.getenv("LARGE_IDLE", "12"))

rss_mb <- function(pid) {
  f <- sprintf("/proc/%d/status", as.integer(pid))
  if (!file.exists(f)) return(NA_real_)
  line <- grep("^VmRSS:", readLines(f), value = TRUE)
  as.numeric(gsub("[^0-9]", "", line)) / 1024
}

now <- function() as.numeric(Sys.time())

# Worker: one build, one dispatcher setting --------------------------------------

if (length(args) && args[1L] == "--worker") {
  mode <- args[2L]
  dispatcher <- as.logical(args[3L])
  out <- args[4L]
  suppressPackageStartupMessages(library(mirai))
  mirai::daemons(1, dispatcher = dispatcher)
  stopifnot(identical(mirai::mirai(1)[], 1))
  daemon_pid <- mirai::mirai(Sys.getpid())[]
  res <- list(version = as.character(packageVersion("mirai")),
              lib = dirname(find.package("mirai")))
  round_trips <- function(bytes, reps) {
    x <- seq_len(bytes / 8) * 0.5
    for (i in 1:2) stopifnot(identical(mirai::mirai(x, x = x)[], x))
    gc_host <- gc.time()[1L]
    gc_daemon <- mirai::mirai(gc.time()[1L])[]
    ms <- numeric(reps)
    for (i in seq_len(reps)) {
      t0 <- now()
      y <- mirai::mirai(x, x = x)[]
      ms[i] <- (now() - t0) * 1000
      if (!identical(y, x)) stop("round trip of ", bytes, " bytes: value differs")
    }
    list(ms = ms, gc_host = (gc.time()[1L] - gc_host) * 1000 / reps,
         gc_daemon = (mirai::mirai(gc.time()[1L])[] - gc_daemon) * 1000 / reps)
  }
  if (mode == "sizes") {
    res$b8 <- round_trips(8, 10L * reps1)
    res$kb256 <- round_trips(256 * 1024, reps1)
    res$mb1 <- round_trips(1024^2, reps1)
    res$mb50 <- round_trips(50 * 1024^2, reps50)
  } else {
    res$rss_before <- c(daemon = rss_mb(daemon_pid), host = rss_mb(Sys.getpid()))
    x <- seq_len(2^30 / 8) * 0.5
    t0 <- now()
    y <- mirai::mirai(x, x = x)[]
    res$gb_ms <- (now() - t0) * 1000
    res$gb_ok <- identical(y, x)
    rm(x, y)
    invisible(gc())
    res$rss_after <- c(daemon = rss_mb(daemon_pid), host = rss_mb(Sys.getpid()))
    Sys.sleep(idle)
    res$rss_idle <- c(daemon = rss_mb(daemon_pid), host = rss_mb(Sys.getpid()))
  }
  mirai::daemons(0)
  saveRDS(res, out)
  quit(save = "no")
}

# Driver ---------------------------------------------------------------------------

script <- normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1L]))
bench_dir <- dirname(script)
ours <- strsplit(Sys.getenv("R_LIBS"), ":", fixed = TRUE)[[1L]][1L]
base <- Sys.getenv("MIRAI_BASE_LIB")
libs <- c(this = normalizePath(ours), if (nzchar(base)) c(previous = normalizePath(base)))
load_avg <- function() paste(scan("/proc/loadavg", what = "", n = 3L, quiet = TRUE), collapse = " ")
load_start <- load_avg()
started <- now()

run_worker <- function(lib, mode, dispatcher) {
  out <- tempfile(fileext = ".rds")
  status <- system2(file.path(R.home("bin"), "Rscript"),
                    c(shQuote(script), "--worker", mode, dispatcher, shQuote(out)),
                    env = sprintf("R_LIBS=%s", shQuote(lib)))
  if (status != 0L || !file.exists(out)) return(list(error = sprintf("exit status %d", status)))
  readRDS(out)
}

echo_floor <- function(bytes, reps, sndbuf = 0L) {
  exe <- file.path(tempdir(), "echo")
  if (!file.exists(exe) &&
      system2("cc", c("-O2", "-o", shQuote(exe), shQuote(file.path(bench_dir, "echo.c")))) != 0L)
    return(NA_real_)
  as.numeric(system2(exe, c(format(bytes, scientific = FALSE), reps, sndbuf), stdout = TRUE))
}

rows <- list()
add_row <- function(build, dispatcher, size, ms, gc_host = NA, gc_daemon = NA) {
  rows[[length(rows) + 1L]] <<- data.frame(
    build = build, dispatcher = dispatcher, size = size, calls = length(ms),
    median_ms = median(ms), p95_ms = unname(quantile(ms, 0.95)),
    gc_host_ms = gc_host, gc_daemon_ms = gc_daemon)
}

# The floor is measured before and after the builds' runs, with what else the
# machine was doing then: the lower median of the two stands.
floors <- function(when) {
  add_row(sprintf("floor: socketpair echo (%s)", when), NA, "256 KB", echo_floor(256 * 1024, reps1))
  add_row(sprintf("floor: socketpair echo (%s)", when), NA, "1 MB", echo_floor(1024^2, reps1))
  add_row(sprintf("floor: socketpair echo (%s)", when), NA, "50 MB", echo_floor(50 * 1024^2, reps50))
  add_row(sprintf("floor: socketpair echo, 4 MiB buffers (%s)", when), NA, "50 MB",
          echo_floor(50 * 1024^2, reps50, 4194304L))
}

workers <- list()
floors("before")
for (d in c(TRUE, FALSE)) for (b in names(libs)) {
  r <- run_worker(libs[[b]], "sizes", d)
  workers[[sprintf("%s/%s", b, d)]] <- r
  if (!is.null(r$error)) {
    message(sprintf("%s, dispatcher = %s: %s", b, d, r$error))
    next
  }
  add_row(b, d, "8 B", r$b8$ms, r$b8$gc_host, r$b8$gc_daemon)
  add_row(b, d, "256 KB", r$kb256$ms, r$kb256$gc_host, r$kb256$gc_daemon)
  add_row(b, d, "1 MB", r$mb1$ms, r$mb1$gc_host, r$mb1$gc_daemon)
  add_row(b, d, "50 MB", r$mb50$ms, r$mb50$gc_host, r$mb50$gc_daemon)
}
floors("after")
table <- do.call(rbind, rows)

gb <- list()
if (Sys.getenv("LARGE_GB", "1") != "0")
  for (b in names(libs)) gb[[b]] <- run_worker(libs[[b]], "gb", TRUE)
load_end <- load_avg()

# Report ---------------------------------------------------------------------------

fmt <- function(x) vapply(x, function(v) if (is.na(v)) "" else sprintf(if (v < 1) "%.3f" else if (v < 10) "%.2f" else "%.1f", v), "")
md <- function(df) {
  c(paste0("| ", paste(names(df), collapse = " | "), " |"),
    paste0("|", strrep(" --- |", ncol(df))),
    apply(df, 1L, function(r) paste0("| ", paste(r, collapse = " | "), " |")))
}
shown <- transform(table, dispatcher = ifelse(is.na(dispatcher), "", as.character(dispatcher)),
                   median_ms = fmt(median_ms), p95_ms = fmt(p95_ms),
                   gc_host_ms = fmt(gc_host_ms), gc_daemon_ms = fmt(gc_daemon_ms))
names(shown)[6:8] <- c("p95_ms", "GC ms/call, host", "GC ms/call, daemon")
ratio_lines <- character()
if ("previous" %in% names(libs)) for (d in c(TRUE, FALSE)) for (s in c("8 B", "256 KB", "1 MB", "50 MB")) {
  this <- table$median_ms[table$build == "this" & table$dispatcher %in% d & table$size == s]
  prev <- table$median_ms[table$build == "previous" & table$dispatcher %in% d & table$size == s]
  if (length(this) && length(prev))
    ratio_lines <- c(ratio_lines, sprintf("- %s, dispatcher = %s: this / previous = %.2f", s, d, this / prev))
}
floor50 <- min(table$median_ms[startsWith(table$build, "floor: socketpair echo (") & table$size == "50 MB"])
this50 <- table$median_ms[table$build == "this" & table$dispatcher %in% TRUE & table$size == "50 MB"]
gb_lines <- unlist(lapply(names(gb), function(b) {
  r <- gb[[b]]
  if (!is.null(r$error)) return(sprintf("| %s | failed: %s | | | |", b, r$error))
  sprintf("| %s | %.0f | %s | %s | %s |", b, r$gb_ms, r$gb_ok,
          sprintf("%.0f / %.0f", r$rss_before[["daemon"]], r$rss_before[["host"]]),
          sprintf("%.0f / %.0f, after %g s idle: %.0f / %.0f", r$rss_after[["daemon"]], r$rss_after[["host"]],
                  idle, r$rss_idle[["daemon"]], r$rss_idle[["host"]]))
}))
versions <- vapply(names(libs), function(b) {
  w <- workers[[sprintf("%s/TRUE", b)]]
  sprintf("%s: mirai %s from `%s`", b, if (is.null(w$version)) "?" else w$version, libs[[b]])
}, "")

lines <- c(
  sprintf("Run: `%s` on %s UTC, %.0f s; load average %s at the start, %s at the end (2 cores, shared).",
          paste(c(if (nzchar(base)) sprintf("MIRAI_BASE_LIB=%s", base), sprintf("R_LIBS=%s", ours),
                  "Rscript bench/large.R"), collapse = " "),
          format(Sys.time(), tz = "UTC", "%Y-%m-%d %H:%M"), now() - started, load_start, load_end),
  "", paste0("- ", versions),
  "- The original mirai (2.7) is not installed on this machine; measured side by side with our build of",
  "  2026-12-04 (`/work/shared/FACTS.md`), it took 299 ms for the 50 MB round trip where we took 209 ms.",
  "", "Round trips of `mirai(x, x = x)[]` (`x <- seq_len(bytes / 8) * 0.5`), after 2 warm-up calls;",
  "every call counts, garbage collections included. GC: R's `gc.time()` per call, in each process.", "",
  md(shown), "",
  if (length(floor50) && length(this50))
    sprintf("50 MB, dispatcher on: %.1f x the floor measured in this run (the lower of its two medians, default buffers).",
            this50 / floor50),
  ratio_lines, "",
  "1 GB round trip (dispatcher on), value checked with `identical()`; resident memory (VmRSS, MB) of",
  "daemon / host, before, and after the round trip with the values dropped and `gc()` on the host:", "",
  "| build | ms | identical | RSS before | RSS after |", "| --- | --- | --- | --- | --- |", gb_lines, "")

out <- Sys.getenv("LARGE_OUT", file.path(bench_dir, "LARGE.md"))
writeLines(lines, out)
cat(lines, sep = "\n")

# The same section in bench/RESULTS.md, as bench/run.R copies it there.
results <- file.path(bench_dir, "RESULTS.md")
if (file.exists(results) && out == file.path(bench_dir, "LARGE.md")) {
  source(file.path(bench_dir, "functions.R"), local = TRUE)
  old <- readLines(results, warn = FALSE)
  section <- large_lines(bench_dir)
  heads <- grep("^## ", old)
  at <- which(old == section[1L])
  if (length(at)) {
    end <- c(heads[heads > at], length(old) + 1L)[1L]
    new <- c(old[seq_len(at - 1L)], section, old[seq.int(end, length.out = length(old) - end + 1L)])
  } else {
    before <- grep("^## Where the time goes$", old)
    if (!length(before)) before <- length(old) + 1L
    new <- c(old[seq_len(before - 1L)], section, old[seq.int(before, length.out = length(old) - before + 1L)])
  }
  writeLines(new, results)
}
