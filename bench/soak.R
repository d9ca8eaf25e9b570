# Kill-storm soak: N tasks (each `Sys.sleep(0.002); i`) submitted at once to
# `daemons(4)`, with and without the dispatcher; every 0.5 s one of the
# connected daemons, chosen at random, is killed (SIGKILL), until every task
# has resolved (or nothing has resolved for 60 s). Counts the tasks whose
# value is right, those that resolved to errorValue 19 (their daemon died
# twice on them, with the default resilience), any other outcome, and those
# left unresolved; with the kills, the deaths status() counted and the
# daemons launched to replace them.
#
#   R_LIBS=$PWD/lib Rscript bench/soak.R                 # 20,000 tasks, writes bench/SOAK.md
#   R_LIBS=$PWD/lib Rscript bench/soak.R 2000 /tmp/x.md  # fewer tasks, elsewhere
#
# bench/run.R copies bench/SOAK.md into bench/RESULTS.md.

args <- commandArgs(trailingOnly = TRUE)
n_tasks <- if (length(args) >= 1L) as.integer(args[[1L]]) else 20000L
f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
bench_dir <- if (length(f)) dirname(normalizePath(f[1L])) else "bench"
out <- if (length(args) >= 2L) args[[2L]] else file.path(bench_dir, "SOAK.md")
suppressPackageStartupMessages(library(mirai))

kill_interval_s <- 0.5
stall_limit_s <- 60
n_daemons <- 4L

# The PIDs of the daemons connected to the default profile now.
connected_pids <- function() {
  s <- mirai:::host_status(mirai:::..[["default"]][["host"]])
  as.integer(s[["pid"]][s[["online"]]])
}

soak <- function(dispatcher) {
  daemons(n_daemons, dispatcher = dispatcher)
  on.exit(daemons(0))
  started <- proc.time()[["elapsed"]]
  tasks <- lapply(seq_len(n_tasks), function(i) mirai({ Sys.sleep(0.002); i }, i = i))
  kills <- 0L
  left <- n_tasks
  progress_at <- proc.time()[["elapsed"]]
  repeat {
    Sys.sleep(kill_interval_s)
    pending <- vapply(tasks, unresolved, logical(1L))
    if (sum(pending) < left) {
      left <- sum(pending)
      progress_at <- proc.time()[["elapsed"]]
    }
    if (!left || proc.time()[["elapsed"]] - progress_at > stall_limit_s) break
    pids <- connected_pids()
    if (length(pids)) {
      tools::pskill(pids[sample.int(length(pids), 1L)], tools::SIGKILL)
      kills <- kills + 1L
    }
  }
  elapsed <- proc.time()[["elapsed"]] - started
  s <- status()
  values <- lapply(tasks, function(m) if (unresolved(m)) NULL else m[["data"]])
  right <- sum(vapply(seq_along(values), function(i) identical(values[[i]], i), logical(1L)))
  reset <- sum(vapply(values, function(v) is_error_value(v) && identical(unclass(v), 19L),
                      logical(1L)))
  unresolved_n <- sum(vapply(values, is.null, logical(1L)))
  data.frame(
    dispatcher = dispatcher, tasks = n_tasks, right = right, errorValue_19 = reset,
    other = n_tasks - right - reset - unresolved_n, unresolved = unresolved_n,
    kills = kills, deaths = if (is.null(s$deaths)) NA_integer_ else s$deaths,
    replacements = nrow(s$workers) - n_daemons,
    healing = if (is.null(s$healing)) "(none)" else s$healing,
    seconds = round(elapsed, 1)
  )
}

res <- do.call(rbind, lapply(c(TRUE, FALSE), soak))
print(res, row.names = FALSE)

build <- tryCatch({
  h <- system2("git", c("-C", bench_dir, "rev-parse", "--short", "HEAD"), stdout = TRUE,
               stderr = FALSE)
  d <- system2("git", c("-C", bench_dir, "status", "--porcelain", "--", "../R", "../src"),
               stdout = TRUE, stderr = FALSE)
  paste0(h, if (length(d)) " with local changes")
}, error = function(e) "?", warning = function(w) "?")
fmt <- function(x) if (is.numeric(x)) format(x, big.mark = ",", trim = TRUE) else as.character(x)
shown <- as.data.frame(lapply(res, fmt))
table <- c(
  paste0("| ", paste(names(res), collapse = " | "), " |"),
  paste0("|", paste(ifelse(vapply(res, is.numeric, logical(1L)), " ---: ", " --- "),
                    collapse = "|"), "|"),
  apply(shown, 1L, function(row) paste0("| ", paste(row, collapse = " | "), " |"))
)
load <- paste(strsplit(readLines("/proc/loadavg", warn = FALSE), " ")[[1L]][1:3],
              collapse = " ")
writeLines(c(
  sprintf("Written by `bench/soak.R` on %s, mirai %s (work tree at %s), %s, load average %s.",
          format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"), utils::packageVersion("mirai"), build,
          R.version.string, load),
  "",
  "```sh",
  "R_LIBS=$PWD/lib Rscript bench/soak.R",
  "```",
  "",
  sprintf(paste("%s tasks (`Sys.sleep(0.002); i`) submitted at once to `daemons(%d)` with the",
                "default resilience (one retry); every %.1f s a connected daemon, chosen at random,",
                "killed with SIGKILL, until every task resolved (or none did for %d s)."),
          fmt(n_tasks), n_daemons, kill_interval_s, stall_limit_s),
  "",
  table,
  "",
  paste("`right`: the task's own value; `errorValue_19`: its daemon died while evaluating it",
        "twice; `deaths`: `status()$deaths`; `replacements`: daemons launched to replace those",
        "killed (rows of `status()$workers` beyond the first 4).")
), out)
cat(sprintf("Wrote %s\n", out))
