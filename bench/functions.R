# Benchmark workloads for mirai and its peers (parallel, future, callr).
#
# Sourced by bench/run.R (full run, rewrites bench/RESULTS.md) and by
# bench/smoke.R (tiny sizes, writes to a temporary file). Every workload is a
# function returning a data.frame of rows made by `row()`; each tears down
# what it started (daemons, clusters, future plans) even when it fails.

# Settings ----------------------------------------------------------------------

env_num <- function(name, default) {
  v <- Sys.getenv(name, "")
  if (!nzchar(v)) return(default)
  x <- suppressWarnings(as.numeric(v))
  if (is.na(x) || x <= 0) stop(sprintf("%s must be a positive number, not '%s'", name, v))
  x
}

# All sizes follow BENCH_SIZE (1 = the full run); BENCH_TASKS overrides the
# number of throughput tasks; BENCH_BIG=1 adds a 1 GB payload.
bench_config <- function(size = env_num("BENCH_SIZE", 1)) {
  sc <- function(n, min = 1L) max(as.integer(min), as.integer(round(n * size)))
  big <- identical(Sys.getenv("BENCH_BIG"), "1")
  payload_bytes <- c(`1 KB` = 1024, `1 MB` = 1024^2, `100 MB` = 100 * 1024^2)
  if (big) payload_bytes <- c(payload_bytes, `1 GB` = 1024^3)
  if (size < 1) {
    # a smoke run keeps the shape but not the size of the large payloads
    payload_bytes <- pmax(1024, pmin(payload_bytes, round(payload_bytes * size / 8) * 8))
    names(payload_bytes) <- vapply(payload_bytes, fmt_bytes, "")
  }
  list(
    size = size,
    rt_reps = sc(1000, 5),
    rt_warmup = sc(50, 2),
    future_rt_reps = sc(50, 2),
    callr_reps = sc(20, 1),
    tasks = if (nzchar(Sys.getenv("BENCH_TASKS"))) as.integer(env_num("BENCH_TASKS", 1e4)) else sc(1e4, 20),
    tput_reps = sc(3, 1),
    future_tasks = sc(200, 4),
    setup_reps = sc(5, 1),
    payload_bytes = payload_bytes,
    # repetitions per payload size: many for small, few for large
    payload_reps = vapply(payload_bytes, function(b) {
      if (b <= 1024) sc(500, 3) else if (b <= 1024^2) sc(50, 2) else if (b <= 200 * 1024^2) sc(5, 1) else 2L
    }, 1L)
  )
}

fmt_bytes <- function(b) {
  if (b >= 1024^3) sprintf("%g GB", signif(b / 1024^3, 3))
  else if (b >= 1024^2) sprintf("%g MB", signif(b / 1024^2, 3))
  else sprintf("%g KB", signif(b / 1024, 3))
}

# Timing -----------------------------------------------------------------------

# Wall clock with microsecond resolution (proc.time() has only milliseconds).
clock <- function() as.numeric(Sys.time())

# Time each of `reps` calls of `f` after `warmup` untimed calls; seconds.
time_each <- function(f, reps, warmup = 0L) {
  for (i in seq_len(warmup)) f()
  out <- numeric(reps)
  for (i in seq_len(reps)) {
    t0 <- clock()
    f()
    out[i] <- clock() - t0
  }
  out
}

q95 <- function(x) unname(stats::quantile(x, 0.95, type = 7))

# One result row. `secs` are the per-repetition times in seconds; `per` turns
# a repetition into a rate (items per repetition) when the figure is a rate.
row <- function(section, workload, impl, secs, unit = c("us", "ms", "tasks/s"),
                per = NA_real_, note = "") {
  unit <- match.arg(unit)
  scale <- switch(unit, us = 1e6, ms = 1e3, `tasks/s` = NA)
  if (unit == "tasks/s") {
    rates <- per / secs
    med <- stats::median(rates)
    p95 <- NA_real_            # a rate has no meaningful tail here
  } else {
    med <- stats::median(secs) * scale
    p95 <- if (length(secs) >= 5) q95(secs) * scale else NA_real_
  }
  data.frame(section = section, workload = workload, implementation = impl,
             reps = length(secs), median = med, p95 = p95, unit = unit,
             note = note, stringsAsFactors = FALSE)
}

error_row <- function(section, workload, impl, err) {
  data.frame(section = section, workload = workload, implementation = impl,
             reps = 0L, median = NA_real_, p95 = NA_real_, unit = "",
             note = paste("ERROR:", gsub("[\r\n|]+", " ", conditionMessage(err))),
             stringsAsFactors = FALSE)
}

# Run one workload, turning a failure into an error row so the rest goes on.
run_workload <- function(section, workload, impl, fun, ...) {
  cat(sprintf("  %-12s %-40s %-32s ", section, workload, impl))
  t0 <- clock()
  res <- tryCatch(fun(...), error = function(e) error_row(section, workload, impl, e))
  cat(sprintf("%6.1f s  %s\n", clock() - t0,
              if (any(grepl("^ERROR", res$note))) res$note[1] else
                paste(sprintf("%.4g %s", res$median, res$unit), collapse = ", ")))
  gc(verbose = FALSE)
  res
}

# Cleanup helpers ---------------------------------------------------------------

mirai_reset <- function() try(mirai::daemons(0), silent = TRUE)

mirai_label <- function(dispatcher, tag = "mirai") {
  sprintf("%s (dispatcher=%s)", tag, if (dispatcher) "TRUE" else "FALSE")
}

# Number of connected daemons, where status() tells it (else NA).
mirai_connections <- function() {
  s <- tryCatch(mirai::status(), error = function(e) NULL)
  if (is.list(s) && !is.null(s$connections)) as.integer(s$connections) else NA_integer_
}

# Wait until `n` daemons are connected (the package's daemons() should already
# have waited; the original mirai returns before they connect).
mirai_wait_connected <- function(n, timeout = 30) {
  t0 <- clock()
  repeat {
    k <- mirai_connections()
    if (is.na(k) || k >= n) return(invisible(k))
    if (clock() - t0 > timeout) stop(sprintf("only %d of %d daemons connected within %g s", k, n, timeout))
    Sys.sleep(0.005)
  }
}

mirai_start <- function(n, dispatcher) {
  mirai::daemons(n, dispatcher = dispatcher)
  mirai_wait_connected(n)
  # one task per daemon so every link is warm before timing
  ms <- lapply(seq_len(n), function(i) mirai::mirai(i, i = i))
  invisible(mirai::collect_mirai(ms))
}

check_value <- function(got, want, what) {
  if (!identical(got, want)) {
    stop(sprintf("%s returned a wrong value: %s", what,
                 paste(utils::capture.output(utils::str(got, max.level = 1, list.len = 3)), collapse = " ")))
  }
}

# 1. Round trip of one trivial task ----------------------------------------------

wl_rt_mirai <- function(cfg, dispatcher, tag = "mirai") {
  on.exit(mirai_reset(), add = TRUE)
  mirai_start(1L, dispatcher)
  check_value(mirai::mirai(1)[], 1, "mirai(1)[]")
  secs <- time_each(function() mirai::mirai(1)[], cfg$rt_reps, cfg$rt_warmup)
  row("round trip", "mirai(1)[] on 1 daemon", mirai_label(dispatcher, tag), secs, "us")
}

wl_rt_psock <- function(cfg) {
  cl <- parallel::makePSOCKcluster(1L)
  on.exit(parallel::stopCluster(cl), add = TRUE)
  f <- function() 1
  secs <- time_each(function() parallel::clusterCall(cl, f), cfg$rt_reps, cfg$rt_warmup)
  row("round trip", "clusterCall(cl, function() 1), 1 worker", "parallel PSOCK", secs, "us")
}

wl_rt_future <- function(cfg) {
  future::plan(future::multisession, workers = 1L)
  on.exit(future::plan(future::sequential), add = TRUE)
  secs <- time_each(function() future::value(future::future(1)), cfg$future_rt_reps, 2L)
  row("round trip", "value(future(1)), multisession 1 worker", "future", secs, "us")
}

wl_rt_callr <- function(cfg) {
  secs <- time_each(function() {
    p <- callr::r_bg(function() 1)
    on.exit(if (p$is_alive()) p$kill(), add = TRUE)
    p$wait()
    check_value(p$get_result(), 1, "callr::r_bg")
  }, cfg$callr_reps, 1L)
  row("round trip", "callr::r_bg(function() 1) + wait", "callr (new process each)", secs, "us")
}

# 2. Throughput: N trivial tasks on 2 workers ------------------------------------

wl_tput_mirai <- function(cfg, dispatcher, tag = "mirai") {
  on.exit(mirai_reset(), add = TRUE)
  mirai_start(2L, dispatcher)
  N <- cfg$tasks
  secs <- numeric(cfg$tput_reps)
  for (r in seq_len(cfg$tput_reps)) {
    gc(verbose = FALSE)
    t0 <- clock()
    ms <- lapply(seq_len(N), function(i) mirai::mirai(i, i = i))
    res <- mirai::collect_mirai(ms)
    secs[r] <- clock() - t0
    check_value(unlist(res), seq_len(N), "collect_mirai")
    rm(ms, res)
  }
  row("throughput", sprintf("%d tasks, 2 daemons, submit all then collect", N),
      mirai_label(dispatcher, tag), secs, "tasks/s", per = N)
}

wl_tput_psock <- function(cfg, lb) {
  cl <- parallel::makePSOCKcluster(2L)
  on.exit(parallel::stopCluster(cl), add = TRUE)
  N <- cfg$tasks
  secs <- numeric(cfg$tput_reps)
  for (r in seq_len(cfg$tput_reps)) {
    t0 <- clock()
    res <- if (lb) parallel::clusterApplyLB(cl, seq_len(N), identity)
           else parallel::parLapply(cl, seq_len(N), identity)
    secs[r] <- clock() - t0
    check_value(unlist(res), seq_len(N), "PSOCK")
  }
  row("throughput",
      sprintf("%d tasks, 2 workers, %s", N, if (lb) "clusterApplyLB (one task per message)" else "parLapply (2 chunks)"),
      "parallel PSOCK", secs, "tasks/s", per = N)
}

wl_tput_future <- function(cfg) {
  future::plan(future::multisession, workers = 2L)
  on.exit(future::plan(future::sequential), add = TRUE)
  invisible(future::value(future::future(0)))
  N <- cfg$future_tasks
  t0 <- clock()
  fs <- lapply(seq_len(N), function(i) future::future(i, globals = list(i = i)))
  res <- future::value(fs)
  secs <- clock() - t0
  check_value(unlist(res), seq_len(N), "future")
  row("throughput", sprintf("%d futures, multisession 2 workers (scaled to per s)", N),
      "future", secs, "tasks/s", per = N)
}

# 3. Set-up and tear-down of 2 workers --------------------------------------------

wl_setup_mirai <- function(cfg, dispatcher, tag = "mirai") {
  on.exit(mirai_reset(), add = TRUE)
  up <- down <- numeric(cfg$setup_reps)
  for (r in seq_len(cfg$setup_reps)) {
    t0 <- clock()
    mirai::daemons(2L, dispatcher = dispatcher)
    mirai_wait_connected(2L)
    up[r] <- clock() - t0
    t0 <- clock()
    mirai::daemons(0)
    down[r] <- clock() - t0
    Sys.sleep(0.2)  # let the old daemons exit before the next round
  }
  rbind(
    row("set-up", "daemons(2) until both connected", mirai_label(dispatcher, tag), up, "ms"),
    row("set-up", "daemons(0)", mirai_label(dispatcher, tag), down, "ms")
  )
}

wl_setup_psock <- function(cfg) {
  up <- down <- numeric(cfg$setup_reps)
  for (r in seq_len(cfg$setup_reps)) {
    t0 <- clock()
    cl <- parallel::makePSOCKcluster(2L)
    up[r] <- clock() - t0
    t0 <- clock()
    parallel::stopCluster(cl)
    down[r] <- clock() - t0
  }
  rbind(
    row("set-up", "makeCluster(2)", "parallel PSOCK", up, "ms"),
    row("set-up", "stopCluster(cl)", "parallel PSOCK", down, "ms")
  )
}

wl_setup_future <- function(cfg) {
  on.exit(future::plan(future::sequential), add = TRUE)
  up <- down <- numeric(cfg$setup_reps)
  for (r in seq_len(cfg$setup_reps)) {
    t0 <- clock()
    future::plan(future::multisession, workers = 2L)
    up[r] <- clock() - t0
    t0 <- clock()
    future::plan(future::sequential)
    down[r] <- clock() - t0
  }
  rbind(
    row("set-up", "plan(multisession, workers = 2)", "future", up, "ms"),
    row("set-up", "plan(sequential)", "future", down, "ms")
  )
}

# 4. Payload round trip -------------------------------------------------------------

payload <- function(bytes) stats::runif(max(1, bytes / 8))

wl_payload_floor <- function(cfg) {
  do.call(rbind, lapply(names(cfg$payload_bytes), function(nm) {
    x <- payload(cfg$payload_bytes[[nm]])
    secs <- time_each(function() unserialize(serialize(x, NULL)), cfg$payload_reps[[nm]], 1L)
    row("payload", sprintf("%s numeric vector", nm), "R unserialize(serialize(x, NULL)) (floor)", secs, "ms")
  }))
}

wl_payload_mirai <- function(cfg, dispatcher, tag = "mirai") {
  on.exit(mirai_reset(), add = TRUE)
  mirai_start(1L, dispatcher)
  do.call(rbind, lapply(names(cfg$payload_bytes), function(nm) {
    x <- payload(cfg$payload_bytes[[nm]])
    check_value(mirai::mirai(x, x = x)[], x, "mirai(x, x = x)[]")
    secs <- time_each(function() mirai::mirai(x, x = x)[], cfg$payload_reps[[nm]], 0L)
    row("payload", sprintf("%s numeric vector", nm), mirai_label(dispatcher, tag), secs, "ms")
  }))
}

wl_payload_psock <- function(cfg) {
  cl <- parallel::makePSOCKcluster(1L)
  on.exit(parallel::stopCluster(cl), add = TRUE)
  do.call(rbind, lapply(names(cfg$payload_bytes), function(nm) {
    x <- payload(cfg$payload_bytes[[nm]])
    check_value(parallel::clusterCall(cl, identity, x)[[1]], x, "clusterCall(cl, identity, x)")
    secs <- time_each(function() parallel::clusterCall(cl, identity, x), cfg$payload_reps[[nm]], 0L)
    row("payload", sprintf("%s numeric vector", nm), "parallel PSOCK clusterCall", secs, "ms")
  }))
}

# Suites -----------------------------------------------------------------------------

# The mirai workloads alone: run here, and in a separate process against the
# peer library (MIRAI_PEER_LIB) with `tag` naming that package.
mirai_suite <- function(cfg, tag = "mirai") {
  out <- list()
  add <- function(...) out[[length(out) + 1L]] <<- run_workload(...)
  for (d in c(TRUE, FALSE)) add("round trip", "mirai(1)[]", mirai_label(d, tag), wl_rt_mirai, cfg, d, tag)
  for (d in c(TRUE, FALSE)) add("throughput", "mirai tasks", mirai_label(d, tag), wl_tput_mirai, cfg, d, tag)
  for (d in c(TRUE, FALSE)) add("set-up", "daemons(2) / daemons(0)", mirai_label(d, tag), wl_setup_mirai, cfg, d, tag)
  for (d in c(TRUE, FALSE)) add("payload", "mirai(x, x = x)[]", mirai_label(d, tag), wl_payload_mirai, cfg, d, tag)
  do.call(rbind, out)
}

peer_suite <- function(cfg) {
  out <- list()
  add <- function(...) out[[length(out) + 1L]] <<- run_workload(...)
  has <- function(p) requireNamespace(p, quietly = TRUE)
  add("round trip", "clusterCall", "parallel PSOCK", wl_rt_psock, cfg)
  if (has("future")) add("round trip", "value(future(1))", "future", wl_rt_future, cfg)
  if (has("callr")) add("round trip", "callr::r_bg", "callr", wl_rt_callr, cfg)
  add("throughput", "parLapply", "parallel PSOCK", wl_tput_psock, cfg, FALSE)
  add("throughput", "clusterApplyLB", "parallel PSOCK", wl_tput_psock, cfg, TRUE)
  if (has("future")) add("throughput", "futures", "future", wl_tput_future, cfg)
  add("set-up", "makeCluster(2)", "parallel PSOCK", wl_setup_psock, cfg)
  if (has("future")) add("set-up", "plan(multisession)", "future", wl_setup_future, cfg)
  add("payload", "serialize floor", "R", wl_payload_floor, cfg)
  add("payload", "clusterCall(identity)", "parallel PSOCK", wl_payload_psock, cfg)
  do.call(rbind, out)
}

# The original package, in its own R process -------------------------------------------

# Runs this file's mirai_suite() under R_LIBS=<peer lib>; NULL when unset.
run_peer_mirai <- function(cfg, bench_dir, peer_lib = Sys.getenv("MIRAI_PEER_LIB")) {
  if (!nzchar(peer_lib)) {
    cat("\nMIRAI_PEER_LIB is not set: skipping the comparison with another mirai build",
        "(set it to a library holding e.g. mirai from CRAN).\n")
    return(NULL)
  }
  if (!dir.exists(file.path(peer_lib, "mirai"))) {
    cat(sprintf("\nMIRAI_PEER_LIB='%s' holds no 'mirai' package: skipping the comparison.\n", peer_lib))
    return(NULL)
  }
  out <- tempfile(fileext = ".rds")
  on.exit(unlink(out), add = TRUE)
  cat(sprintf("\nRunning the mirai workloads with the package in MIRAI_PEER_LIB=%s ...\n", peer_lib))
  rscript <- file.path(R.home("bin"), "Rscript")
  libs <- paste(c(normalizePath(peer_lib), Sys.getenv("R_LIBS")), collapse = ":")
  status <- system2(rscript, c(shQuote(file.path(bench_dir, "peer.R")), shQuote(out)),
                    env = c(sprintf("R_LIBS=%s", shQuote(sub(":$", "", libs))),
                            sprintf("BENCH_SIZE=%s", cfg$size),
                            sprintf("BENCH_TASKS=%d", cfg$tasks)))
  if (status != 0L || !file.exists(out)) {
    cat(sprintf("The peer run failed (exit status %s): no comparison.\n", status))
    return(NULL)
  }
  readRDS(out)
}

# Ratios of this package's figures to the peer's: > 1 means this package is
# faster (time: peer / ours; rate: ours / peer).
peer_ratios <- function(ours, peer) {
  key <- function(d) paste(d$section, d$workload, sub("^[^(]*", "", d$implementation), sep = "|")
  m <- ours[grepl("^mirai \\(", ours$implementation), ]
  p <- peer$results
  i <- match(key(m), key(p))
  ok <- !is.na(i)
  m <- m[ok, ]
  p <- p[i[ok], ]
  speedup <- ifelse(m$unit == "tasks/s", m$median / p$median, p$median / m$median)
  data.frame(section = m$section, workload = m$workload,
             mode = sub("^[^(]*\\((.*)\\)$", "\\1", m$implementation),
             this = m$median, peer = p$median, unit = m$unit,
             speedup = speedup, stringsAsFactors = FALSE)
}

# Payload rows: how many times R's own serialize + unserialize each one took.
# (A round trip serializes and unserializes twice: once each way.)
add_floor_notes <- function(res) {
  is_floor <- res$section == "payload" & grepl("floor", res$implementation)
  for (i in which(res$section == "payload" & !is_floor & !is.na(res$median))) {
    f <- which(is_floor & res$workload == res$workload[i] & !is.na(res$median))
    if (length(f)) {
      note <- sprintf("%.2fx floor", res$median[i] / res$median[f[1]])
      res$note[i] <- if (nzchar(res$note[i])) paste(res$note[i], note, sep = "; ") else note
    }
  }
  res
}

# Machine and report ---------------------------------------------------------------------

machine_info <- function() {
  cpu <- tryCatch({
    l <- grep("^model name", readLines("/proc/cpuinfo", warn = FALSE), value = TRUE)
    if (length(l)) trimws(sub("^[^:]*:", "", l[1])) else "unknown"
  }, error = function(e) "unknown")
  nproc <- tryCatch(as.integer(system2("nproc", stdout = TRUE)), error = function(e) NA_integer_, warning = function(w) NA_integer_)
  if (is.na(nproc)) nproc <- parallel::detectCores()
  mem <- tryCatch({
    l <- grep("^MemTotal", readLines("/proc/meminfo", warn = FALSE), value = TRUE)
    sprintf("%.1f GiB", as.numeric(gsub("[^0-9]", "", l)) / 1024^2)
  }, error = function(e) "unknown")
  ver <- function(p) tryCatch(as.character(utils::packageVersion(p)), error = function(e) "not installed")
  list(
    nproc = nproc, cpu = cpu, memory = mem,
    os = paste(Sys.info()[["sysname"]], Sys.info()[["release"]]),
    r = R.version.string,
    mirai = sprintf("%s (%s; built %s%s)", ver("mirai"),
                    tryCatch(dirname(find.package("mirai")), error = function(e) "?"),
                    tryCatch(sub(".*; ([0-9-]+ [0-9:]+ [A-Z]*);.*", "\\1", utils::packageDescription("mirai")$Built),
                             error = function(e) "?"),
                    tryCatch({
                      h <- system2("git", c("rev-parse", "--short", "HEAD"), stdout = TRUE, stderr = FALSE)
                      d <- system2("git", c("status", "--porcelain", "--", "R", "src"), stdout = TRUE, stderr = FALSE)
                      if (length(h)) sprintf(", work tree at %s%s", h, if (length(d)) " with local changes" else "") else ""
                    }, error = function(e) "", warning = function(w) "")),
    future = ver("future"), callr = ver("callr"),
    date = format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"),
    load = tryCatch(paste(strsplit(readLines("/proc/loadavg", warn = FALSE), " ")[[1]][1:3], collapse = " "),
                    error = function(e) "unknown")
  )
}

fmt_num <- function(x) {
  ifelse(is.na(x), "", ifelse(abs(x) >= 100, formatC(x, format = "f", digits = 0, big.mark = ","),
                              ifelse(abs(x) >= 10, sprintf("%.1f", x), sprintf("%.3g", x))))
}

md_table <- function(df) {
  esc <- function(x) gsub("|", "\\|", as.character(x), fixed = TRUE)
  c(paste0("| ", paste(names(df), collapse = " | "), " |"),
    paste0("|", paste(rep(" --- ", ncol(df)), collapse = "|"), "|"),
    apply(df, 1, function(r) paste0("| ", paste(esc(r), collapse = " | "), " |")))
}

# The targets the project aims for, checked against what was measured.
targets_table <- function(res) {
  pick <- function(section, impl_re, workload_re = ".") {
    r <- res[res$section == section & grepl(impl_re, res$implementation) & grepl(workload_re, res$workload), ]
    if (nrow(r)) r$median[1] else NA_real_
  }
  rows <- list()
  for (d in c("TRUE", "FALSE")) {
    impl <- sprintf("^mirai \\(dispatcher=%s\\)", d)
    rt <- pick("round trip", impl)
    rows[[length(rows) + 1]] <- c(sprintf("round trip, dispatcher=%s", d), "<= 150 us",
                                  sprintf("%s us", fmt_num(rt)), if (is.na(rt)) "n/a" else if (rt <= 150) "met" else "missed")
    tp <- pick("throughput", impl)
    rows[[length(rows) + 1]] <- c(sprintf("throughput, dispatcher=%s", d), ">= 8,000 tasks/s",
                                  sprintf("%s tasks/s", fmt_num(tp)), if (is.na(tp)) "n/a" else if (tp >= 8000) "met" else "missed")
    big <- "100 MB"
    pm <- pick("payload", impl, paste0("^", big))
    fl <- pick("payload", "floor", paste0("^", big))
    ratio <- pm / fl
    rows[[length(rows) + 1]] <- c(sprintf("100 MB round trip / R serialize+unserialize, dispatcher=%s", d), "<= 1.5x",
                                  if (is.na(ratio)) "n/a (not run at this size)" else sprintf("%.2fx (%s ms vs %s ms)", ratio, fmt_num(pm), fmt_num(fl)),
                                  if (is.na(ratio)) "n/a" else if (ratio <= 1.5) "met" else "missed")
  }
  df <- as.data.frame(do.call(rbind, rows), stringsAsFactors = FALSE)
  names(df) <- c("target", "goal", "measured (median)", "verdict")
  df
}

results_for_print <- function(res) {
  data.frame(section = res$section, workload = res$workload, implementation = res$implementation,
             reps = res$reps, median = fmt_num(res$median), p95 = fmt_num(res$p95),
             unit = res$unit, note = res$note, stringsAsFactors = FALSE)
}

write_report <- function(path, res, info, cfg, ratios, peer, elapsed) {
  n_err <- sum(grepl("^ERROR", res$note))
  lines <- c(
    "# Benchmark results",
    "",
    "Written by `bench/run.R`; do not edit by hand. Re-run with:",
    "",
    "```sh",
    "make bench                                  # builds and installs into ./lib first",
    "R_LIBS=$PWD/lib Rscript bench/run.R         # the same, with the package already installed",
    "```",
    "",
    sprintf("This run: `%s`%s, %.0f s in all.",
            paste(c("Rscript", sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), collapse = " "),
            {
              ev <- Sys.getenv(c("BENCH_SIZE", "BENCH_TASKS", "BENCH_BIG", "MIRAI_PEER_LIB"))
              ev <- ev[nzchar(ev)]
              if (length(ev)) paste0(" with ", paste(sprintf("`%s=%s`", names(ev), ev), collapse = ", ")) else ""
            }, elapsed),
    "",
    "## Machine",
    "",
    "Other processes may share this machine (`load average` below is read at the start",
    "of the run); figures move by ±30% between runs here.",
    "",
    md_table(data.frame(item = c("date", "cores (nproc)", "CPU", "memory", "load average", "OS", "R", "mirai", "future", "callr"),
                        value = c(info$date, info$nproc, info$cpu, info$memory, info$load, info$os, info$r,
                                  info$mirai, info$future, info$callr))),
    "",
    "## Targets",
    "",
    md_table(targets_table(res)),
    "",
    "## All figures",
    "",
    "Times are per repetition (median and 95th percentile over `reps`); rates are",
    "tasks per second (median over `reps` runs of the whole batch). `us` is microseconds.",
    "Round trips are timed one call at a time with `Sys.time()` (about 2 us of the",
    "figure is the clock itself). Every workload checks the values it gets back. In the payload",
    "section, `floor` is R's own `unserialize(serialize(x, NULL))` in this process; a",
    "round trip to a daemon has to serialize and unserialize the vector twice (there and back).",
    "",
    md_table(results_for_print(res)),
    ""
  )
  if (n_err) lines <- c(lines, sprintf("**%d workload(s) failed**: see the rows marked ERROR.", n_err), "")
  lines <- c(lines, "## Against another mirai build", "")
  if (is.null(ratios)) {
    lines <- c(lines, "Not run: set `MIRAI_PEER_LIB` to a library holding another `mirai` (for example",
               "the original from CRAN) to run the same mirai workloads with it in a separate R",
               "process and print the ratios here.", "")
  } else {
    lines <- c(lines,
               sprintf("Peer: mirai %s from `%s`. `speedup` > 1 means this package is faster.",
                       peer$version, peer$lib), "",
               md_table(transform(ratios, this = fmt_num(this), peer = fmt_num(peer),
                                  speedup = sprintf("%.2f", speedup))), "")
  }
  lines <- c(lines,
             "## Workloads",
             "",
             sprintf("- round trip: %d sequential `mirai(1)[]` on one daemon after %d warm-up calls; PSOCK `clusterCall(cl, function() 1)` on a cluster of 1, as many times; `value(future(1))` with `plan(multisession, workers = 1)`, %d times; `callr::r_bg(function() 1)` then `$wait()`, %d time(s).",
                     cfg$rt_reps, cfg$rt_warmup, cfg$future_rt_reps, cfg$callr_reps),
             sprintf("- throughput: %d tasks on 2 daemons, `lapply(1:N, function(i) mirai(i, i = i))` then `collect_mirai()`, %d run(s); PSOCK `parLapply` and `clusterApplyLB` over `1:N` with `identity` on 2 workers; `future` multisession with 2 workers over %d futures, scaled to per second.",
                     cfg$tasks, cfg$tput_reps, cfg$future_tasks),
             sprintf("- set-up: `daemons(2)` until `status()` shows both connected, then `daemons(0)`, %d time(s); `makeCluster(2)` / `stopCluster()`; `plan(multisession, workers = 2)` / `plan(sequential)`.", cfg$setup_reps),
             sprintf("- payload: `mirai(x, x = x)[]` on one daemon with a numeric vector of %s; floor: `unserialize(serialize(x, NULL))` in this process; PSOCK `clusterCall(cl, identity, x)` on a cluster of 1. Repetitions: %s.",
                     paste(names(cfg$payload_bytes), collapse = ", "),
                     paste(sprintf("%s x%d", names(cfg$payload_reps), cfg$payload_reps), collapse = ", ")),
             "")
  writeLines(lines, path)
  invisible(path)
}

# Entry point --------------------------------------------------------------------------

bench_main <- function(bench_dir, out_md = file.path(bench_dir, "RESULTS.md"),
                       cfg = bench_config(), peers = TRUE) {
  suppressPackageStartupMessages(library(mirai))
  t_start <- clock()
  info <- machine_info()
  cat(sprintf("mirai benchmarks: %s, %d cores, %s\nmirai %s\nBENCH_SIZE=%g, %d tasks\n\n",
              info$cpu, info$nproc, info$r, info$mirai, cfg$size, cfg$tasks))
  on.exit({
    mirai_reset()
    if (requireNamespace("future", quietly = TRUE)) try(future::plan(future::sequential), silent = TRUE)
  }, add = TRUE)
  res <- mirai_suite(cfg)
  if (peers) res <- rbind(res, peer_suite(cfg))
  size_key <- match(sub(" numeric vector$", "", res$workload), names(cfg$payload_bytes))
  size_key[res$section != "payload" | is.na(size_key)] <- 0L
  ord <- order(match(res$section, c("round trip", "throughput", "set-up", "payload")),
               size_key, seq_len(nrow(res)))
  res <- res[ord, ]
  rownames(res) <- NULL
  res <- add_floor_notes(res)

  peer <- run_peer_mirai(cfg, bench_dir)
  ratios <- if (!is.null(peer)) peer_ratios(res, peer) else NULL

  elapsed <- clock() - t_start
  op <- options(width = 250)
  on.exit(options(op), add = TRUE)
  cat("\nResults:\n")
  print(results_for_print(res), right = FALSE, row.names = FALSE)
  cat("\nTargets:\n")
  print(targets_table(res), right = FALSE, row.names = FALSE)
  if (!is.null(ratios)) {
    cat(sprintf("\nAgainst mirai %s (%s); speedup > 1 means this package is faster:\n", peer$version, peer$lib))
    print(transform(ratios, this = fmt_num(this), peer = fmt_num(peer), speedup = sprintf("%.2f", speedup)),
          right = FALSE, row.names = FALSE)
  }
  if (!is.null(out_md)) {
    write_report(out_md, res, info, cfg, ratios, peer, elapsed)
    cat(sprintf("\nWrote %s (%.0f s in all)\n", out_md, elapsed))
  }
  invisible(res)
}

# Directory holding this script, when run with Rscript (--file=) or source().
bench_dir_of <- function(default = "bench") {
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f)) return(dirname(normalizePath(f[1])))
  for (i in rev(seq_len(sys.nframe()))) {
    of <- sys.frame(i)$ofile
    if (!is.null(of)) return(dirname(normalizePath(of)))
  }
  default
}
