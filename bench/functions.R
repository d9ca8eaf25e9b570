# Benchmark workloads for mirai and its peers (parallel, future, callr).
#
# Sourced by bench/run.R (full run, rewrites bench/RESULTS.md), bench/smoke.R
# (tiny sizes, writes to a temporary file), bench/peer.R (the mirai workloads
# with another mirai library) and bench/queue.R (the queued-task memory
# workload, in a fresh R process). Every workload is a function returning a
# data.frame of rows made by `row()` or `value_row()`; each tears down what it
# started (daemons, clusters, future plans) even when it fails.

# Settings ----------------------------------------------------------------------

env_num <- function(name, default) {
  v <- Sys.getenv(name, "")
  if (!nzchar(v)) return(default)
  x <- suppressWarnings(as.numeric(v))
  if (is.na(x) || x <= 0) stop(sprintf("%s must be a positive number, not '%s'", name, v))
  x
}

# The 1 GB payload is on in a full run (BENCH_SIZE >= 1) and off in a smaller
# one; BENCH_BIG=0 or 1 says so explicitly.
big_payload_on <- function(size) {
  v <- Sys.getenv("BENCH_BIG", "")
  if (nzchar(v)) identical(v, "1") else size >= 1
}

# All sizes follow BENCH_SIZE (1 = the full run); BENCH_TASKS overrides the
# number of throughput tasks.
bench_config <- function(size = env_num("BENCH_SIZE", 1)) {
  sc <- function(n, min = 1L) max(as.integer(min), as.integer(round(n * size)))
  payload_bytes <- c(`1 KB` = 1024, `1 MB` = 1024^2, `100 MB` = 100 * 1024^2)
  if (big_payload_on(size)) payload_bytes <- c(payload_bytes, `1 GB` = 1024^3)
  if (size < 1) {
    # a smaller run keeps the shape but not the size of the large payloads
    payload_bytes <- pmax(1024, pmin(payload_bytes, round(payload_bytes * size / 8) * 8))
    names(payload_bytes) <- vapply(payload_bytes, fmt_bytes, "")
  }
  queue_tasks <- if (size >= 1) 1e6 else max(2000L, as.integer(round(2e5 * size)))
  # timed batches at each end of the queue: their median moves less with the
  # machine's noise the more there are
  queue_batch_reps <- if (size >= 1) 9L else 3L
  list(
    size = size,
    rt_reps = sc(1000, 5),
    rt_warmup = sc(50, 2),
    future_rt_reps = sc(50, 2),
    callr_reps = sc(20, 1),
    tasks = if (nzchar(Sys.getenv("BENCH_TASKS"))) as.integer(env_num("BENCH_TASKS", 1e5)) else sc(1e5, 20),
    tput_reps = sc(3, 1),
    # mirai_map() of 100,000 tasks takes 40 s or more per run here
    map_reps = 1L,
    # clusterApplyLB and one clusterCall per element take ~15 s per 100,000
    slow_tput_reps = 1L,
    future_tasks = sc(200, 4),
    callr_tasks = sc(8, 2),
    setup_daemons = 4L,
    setup_reps = sc(5, 1),
    payload_bytes = payload_bytes,
    # repetitions per payload size: many for small, few for large
    payload_reps = vapply(payload_bytes, function(b) {
      if (b <= 1024) sc(500, 3) else if (b <= 1024^2) sc(50, 2) else if (b <= 200 * 1024^2) sc(11, 1) else 1L
    }, 1L),
    queue_tasks = as.integer(queue_tasks),
    queue_batch = as.integer(min(1000L, queue_tasks %/% (2L * queue_batch_reps))),
    queue_batch_reps = queue_batch_reps
  )
}

fmt_bytes <- function(b) {
  if (b >= 1024^3) sprintf("%g GB", signif(b / 1024^3, 3))
  else if (b >= 1024^2) sprintf("%g MB", signif(b / 1024^2, 3))
  else sprintf("%g KB", signif(b / 1024, 3))
}

fmt_count <- function(n) formatC(n, format = "d", big.mark = ",")

# Timing -----------------------------------------------------------------------

# Wall clock with microsecond resolution (proc.time() has only milliseconds).
clock <- function() as.numeric(Sys.time())

# Time each of `reps` calls of `f` after `warmup` untimed calls; seconds. With
# `keep_last`, the value of the last call is kept as attribute "last" (so that
# it can be checked without one more, untimed, call).
time_each <- function(f, reps, warmup = 0L, keep_last = FALSE) {
  for (i in seq_len(warmup)) f()
  out <- numeric(reps)
  last <- NULL
  for (i in seq_len(reps)) {
    last <- NULL
    t0 <- clock()
    last <- f()
    out[i] <- clock() - t0
  }
  if (keep_last) attr(out, "last") <- last
  out
}

q95 <- function(x) unname(stats::quantile(x, 0.95, type = 7))

# Units: times (us, ms, s, us/task) and bytes are better lower; rates better higher.
lower_is_better <- function(unit) unit != "tasks/s"

# One result row. `secs` are the per-repetition times in seconds; `per` turns
# a repetition into a rate (items per repetition) when the figure is a rate.
row <- function(section, workload, impl, secs, unit = c("us", "ms", "s", "tasks/s"),
                per = NA_real_, note = "") {
  unit <- match.arg(unit)
  if (unit == "tasks/s") {
    med <- stats::median(per / as.numeric(secs))
    p95 <- NA_real_            # a rate has no meaningful tail here
  } else {
    scale <- switch(unit, us = 1e6, ms = 1e3, s = 1)
    med <- stats::median(secs) * scale
    p95 <- if (length(secs) >= 5) q95(secs) * scale else NA_real_
  }
  data.frame(section = section, workload = workload, implementation = impl,
             reps = length(secs), median = med, p95 = p95, unit = unit,
             note = note, stringsAsFactors = FALSE)
}

# A row holding a figure that is not a timing (bytes, or a mean per task).
value_row <- function(section, workload, impl, value, unit, reps = 1L, note = "") {
  data.frame(section = section, workload = workload, implementation = impl,
             reps = as.integer(reps), median = as.numeric(value), p95 = NA_real_, unit = unit,
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

rscript_path <- function() file.path(R.home("bin"), "Rscript")

# `f` as if defined at top level: a closure made inside a workload would
# otherwise carry that workload's frame (cfg, the cluster...) into every task.
top_level <- function(f) {
  environment(f) <- globalenv()
  f
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
  f <- top_level(function() 1)
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
    p <- callr::r_bg(top_level(function() 1))
    on.exit(if (p$is_alive()) p$kill(), add = TRUE)
    p$wait()
    check_value(p$get_result(), 1, "callr::r_bg")
  }, cfg$callr_reps, 1L)
  row("round trip", "callr::r_bg(function() 1) + wait", "callr (new process each)", secs, "us")
}

# 2. Throughput: N trivial tasks on 2 workers ------------------------------------

tput_workload <- function(n, how) sprintf("%s tasks, 2 workers, %s", fmt_count(n), how)

# Time `reps` runs of `run()`, each checked against 1:N.
time_batches <- function(run, reps, N, what) {
  secs <- numeric(reps)
  for (r in seq_len(reps)) {
    gc(verbose = FALSE)
    t0 <- clock()
    res <- run()
    secs[r] <- clock() - t0
    check_value(unlist(res), seq_len(N), what)
    rm(res)
  }
  secs
}

wl_tput_mirai <- function(cfg, dispatcher, tag = "mirai") {
  on.exit(mirai_reset(), add = TRUE)
  mirai_start(2L, dispatcher)
  N <- cfg$tasks
  secs <- time_batches(function() {
    ms <- lapply(seq_len(N), function(i) mirai::mirai(i, i = i))
    mirai::collect_mirai(ms)
  }, cfg$tput_reps, N, "collect_mirai")
  row("throughput", tput_workload(N, "mirai() each, then collect_mirai()"),
      mirai_label(dispatcher, tag), secs, "tasks/s", per = N)
}

wl_tput_mirai_map <- function(cfg, dispatcher, tag = "mirai") {
  on.exit(mirai_reset(), add = TRUE)
  mirai_start(2L, dispatcher)
  N <- cfg$tasks
  f <- top_level(function(i) i)
  secs <- time_batches(function() mirai::mirai_map(seq_len(N), f)[], cfg$map_reps, N, "mirai_map()[]")
  row("throughput", tput_workload(N, "mirai_map(1:N, function(i) i)[]"),
      mirai_label(dispatcher, tag), secs, "tasks/s", per = N)
}

psock_tput_how <- c(
  parLapply = "parLapply(cl, 1:N, identity) (2 chunks)",
  clusterApplyLB = "clusterApplyLB(cl, 1:N, identity) (one message per task)",
  clusterCall = "clusterCall(cl[j], identity, i) per element, nodes alternating, sequential"
)

wl_tput_psock <- function(cfg, how = names(psock_tput_how)) {
  how <- match.arg(how)
  cl <- parallel::makePSOCKcluster(2L)
  on.exit(parallel::stopCluster(cl), add = TRUE)
  N <- cfg$tasks
  one_node <- list(cl[1L], cl[2L])
  run <- switch(how,
    parLapply = function() parallel::parLapply(cl, seq_len(N), identity),
    clusterApplyLB = function() parallel::clusterApplyLB(cl, seq_len(N), identity),
    clusterCall = function() lapply(seq_len(N), function(i)
      parallel::clusterCall(one_node[[i %% 2L + 1L]], identity, i)[[1L]])
  )
  reps <- if (how == "parLapply") cfg$tput_reps else cfg$slow_tput_reps
  secs <- time_batches(run, reps, N, paste("PSOCK", how))
  row("throughput", tput_workload(N, psock_tput_how[[how]]), "parallel PSOCK", secs, "tasks/s", per = N)
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

# callr starts one R process per task: all started at once, then awaited.
wl_tput_callr <- function(cfg) {
  N <- cfg$callr_tasks
  ps <- list()
  on.exit(for (p in ps) if (p$is_alive()) p$kill(), add = TRUE)
  t0 <- clock()
  f <- top_level(function(i) i)
  ps <- lapply(seq_len(N), function(i) callr::r_bg(f, args = list(i = i)))
  for (p in ps) p$wait()
  res <- lapply(ps, function(p) p$get_result())
  secs <- clock() - t0
  check_value(unlist(res), seq_len(N), "callr::r_bg")
  row("throughput", sprintf("%d callr::r_bg(), all started then awaited (scaled to per s)", N),
      "callr (new process each)", secs, "tasks/s", per = N)
}

# 3. Set-up and tear-down of 4 workers --------------------------------------------

setup_up_workload <- function(n) sprintf("daemons(%d) until all connected", n)

# The floor for daemons(n): n Rscript processes started at once, timed until
# the last has exited. `code` is what each runs. Seconds.
run_rscripts <- function(n, code) {
  one <- sprintf("R_LIBS=%s %s -e %s", shQuote(paste(.libPaths(), collapse = ":")),
                 shQuote(rscript_path()), shQuote(code))
  script <- paste(c(paste(rep(one, n), "&"), "wait"), collapse = "\n")
  t0 <- clock()
  status <- system2("sh", c("-c", shQuote(script)), stdout = FALSE)
  secs <- clock() - t0
  if (status != 0L) stop(sprintf("the Rscript processes failed (status %d)", status))
  secs
}

rscript_baseline_workload <- function(n, code, alongside = NULL) {
  sprintf("%d x Rscript -e '%s' in parallel, until all exited%s", n, code,
          if (is.null(alongside)) "" else paste(", timed alternately with", alongside))
}

# daemons(n) up and down; the floor (n plain Rscript at once) is timed just
# before each round, so that both see the same load of a shared machine.
wl_setup_mirai <- function(cfg, dispatcher, tag = "mirai") {
  on.exit(mirai_reset(), add = TRUE)
  n <- cfg$setup_daemons
  label <- mirai_label(dispatcher, tag)
  run_rscripts(n, "invisible(0)")
  floor_secs <- up <- down <- numeric(cfg$setup_reps)
  for (r in seq_len(cfg$setup_reps)) {
    floor_secs[r] <- run_rscripts(n, "invisible(0)")
    t0 <- clock()
    mirai::daemons(n, dispatcher = dispatcher)
    mirai_wait_connected(n)
    up[r] <- clock() - t0
    t0 <- clock()
    mirai::daemons(0)
    down[r] <- clock() - t0
    Sys.sleep(0.3)  # let the old daemons exit before the next round
  }
  rbind(
    row("set-up", rscript_baseline_workload(n, "invisible(0)", label), "R (floor)", floor_secs, "ms"),
    row("set-up", setup_up_workload(n), label, up, "ms"),
    row("set-up", "daemons(0)", label, down, "ms")
  )
}

wl_setup_rscript <- function(cfg, code) {
  n <- cfg$setup_daemons
  secs <- time_each(function() run_rscripts(n, code), cfg$setup_reps, 1L)
  row("set-up", rscript_baseline_workload(n, code), "R (floor)", secs, "ms")
}

wl_setup_psock <- function(cfg) {
  n <- cfg$setup_daemons
  up <- down <- numeric(cfg$setup_reps)
  for (r in seq_len(cfg$setup_reps)) {
    t0 <- clock()
    cl <- parallel::makePSOCKcluster(n)
    up[r] <- clock() - t0
    t0 <- clock()
    parallel::stopCluster(cl)
    down[r] <- clock() - t0
  }
  rbind(
    row("set-up", sprintf("makeCluster(%d)", n), "parallel PSOCK", up, "ms"),
    row("set-up", "stopCluster(cl)", "parallel PSOCK", down, "ms")
  )
}

wl_setup_future <- function(cfg) {
  on.exit(future::plan(future::sequential), add = TRUE)
  n <- cfg$setup_daemons
  up <- down <- numeric(cfg$setup_reps)
  for (r in seq_len(cfg$setup_reps)) {
    t0 <- clock()
    future::plan(future::multisession, workers = n)
    up[r] <- clock() - t0
    t0 <- clock()
    future::plan(future::sequential)
    down[r] <- clock() - t0
  }
  rbind(
    row("set-up", sprintf("plan(multisession, workers = %d)", n), "future", up, "ms"),
    row("set-up", "plan(sequential)", "future", down, "ms")
  )
}

# 4. Payloads, each way ----------------------------------------------------------------

# A numeric vector of `bytes` bytes, made the same way here and on a daemon
# (so that what a daemon sends back can be checked).
payload_vector <- function(bytes) seq_len(max(1, bytes / 8)) * 0.5

# Directions, and how many serialize + unserialize passes each needs (its floor).
payload_directions <- c(to = "host -> daemon", from = "daemon -> host", round = "round trip")
payload_floor_passes <- c(to = 1, from = 1, round = 2)
floor_label <- function(xdr) sprintf("R serialize + unserialize, xdr=%s (floor)", if (xdr) "TRUE" else "FALSE")
payload_workload <- function(nm, dir) sprintf("%s %s", nm, payload_directions[[dir]])
floor_workload <- function(nm) sprintf("%s serialize + unserialize", nm)

# Each payload workload measures one size `nm` (a name of cfg$payload_bytes),
# so that a failure at 1 GB leaves the smaller sizes' rows.
wl_payload_floor <- function(cfg, nm, xdr) {
  x <- payload_vector(cfg$payload_bytes[[nm]])
  reps <- cfg$payload_reps[[nm]]
  ser <- unser <- numeric(reps)
  for (r in seq_len(reps)) {
    t0 <- clock()
    s <- serialize(x, NULL, xdr = xdr)
    t1 <- clock()
    y <- unserialize(s)
    unser[r] <- clock() - t1
    ser[r] <- t1 - t0
    rm(s, y)
  }
  row("payload", floor_workload(nm), floor_label(xdr), ser + unser, "ms",
      note = sprintf("serialize %s ms + unserialize %s ms",
                     fmt_num(stats::median(ser) * 1e3), fmt_num(stats::median(unser) * 1e3)))
}

# Rows of one payload size, each direction timed by `calls[[dir]]()`, whose
# last value `expect[[dir]]` is checked.
payload_rows <- function(nm, reps, impl, calls, expect) {
  do.call(rbind, lapply(names(payload_directions), function(dir) {
    secs <- time_each(calls[[dir]], reps, 0L, keep_last = TRUE)
    check_value(attr(secs, "last"), expect[[dir]], sprintf("%s %s", impl, payload_directions[[dir]]))
    attr(secs, "last") <- NULL
    row("payload", payload_workload(nm, dir), impl, secs, "ms")
  }))
}

# A fresh single daemon, holding `bench_x` (the vector it sends back).
wl_payload_mirai <- function(cfg, nm, dispatcher, tag = "mirai") {
  on.exit(mirai_reset(), add = TRUE)
  bytes <- cfg$payload_bytes[[nm]]
  x <- payload_vector(bytes)
  mirai_start(1L, dispatcher)
  mirai::everywhere(assign("bench_x", seq_len(max(1, bench_bytes / 8)) * 0.5, envir = .GlobalEnv),
                    bench_bytes = bytes)
  check_value(mirai::mirai(length(bench_x))[], length(x), "everywhere(bench_x)")
  payload_rows(nm, cfg$payload_reps[[nm]], mirai_label(dispatcher, tag),
               calls = list(to = function() mirai::mirai(length(x), x = x)[],
                            from = function() mirai::mirai(bench_x)[],
                            round = function() mirai::mirai(x, x = x)[]),
               expect = list(to = length(x), from = x, round = x))
}

wl_payload_psock <- function(cfg, nm) {
  cl <- parallel::makePSOCKcluster(1L)
  on.exit(parallel::stopCluster(cl), add = TRUE)
  get_x <- top_level(function() get("bench_x", envir = globalenv()))
  make_x <- top_level(function(n) { assign("bench_x", seq_len(n) * 0.5, envir = globalenv()); NULL })
  x <- payload_vector(cfg$payload_bytes[[nm]])
  parallel::clusterCall(cl, make_x, length(x))
  payload_rows(nm, cfg$payload_reps[[nm]], "parallel PSOCK clusterCall",
               calls = list(to = function() parallel::clusterCall(cl, length, x)[[1L]],
                            from = function() parallel::clusterCall(cl, get_x)[[1L]],
                            round = function() parallel::clusterCall(cl, identity, x)[[1L]]),
               expect = list(to = length(x), from = x, round = x))
}

# 5. Memory and submit time with many queued tasks -------------------------------------

# Resident set size in bytes of this process and all its descendants (the
# original mirai's dispatcher is a child process; ours runs in this one).
rss_tree <- function(root = Sys.getpid()) {
  stat_files <- Sys.glob("/proc/[0-9]*/stat")
  ppid <- vapply(stat_files, function(f) {
    s <- tryCatch(readLines(f, warn = FALSE), error = function(e) "")
    if (!length(s) || !nzchar(s[1])) return(NA_integer_)
    as.integer(strsplit(sub("^.*\\) ", "", s[1]), " ")[[1]][2])
  }, 1L)
  pid <- as.integer(sub("^/proc/([0-9]+)/stat$", "\\1", stat_files))
  tree <- root
  repeat {
    more <- setdiff(pid[!is.na(ppid) & ppid %in% tree], tree)
    if (!length(more)) break
    tree <- c(tree, more)
  }
  sum(vapply(tree, function(p) {
    l <- tryCatch(grep("^VmRSS:", readLines(sprintf("/proc/%d/status", p), warn = FALSE), value = TRUE),
                  error = function(e) character())
    if (length(l)) as.numeric(gsub("[^0-9]", "", l)) * 1024 else 0
  }, 0))
}

r_heap_bytes <- function() sum(gc(verbose = FALSE)[, 2]) * 1024^2

# The serialized size of the task `mirai(1)`, as this package sends it
# (expression, globals, arguments, random stream; R's native binary format).
# The same figure is used as the payload for any mirai, so that all are held
# to the same allowance.
queue_payload_bytes <- function() length(serialize(list(quote(1), NULL, list(), NULL), NULL, xdr = FALSE))

# Run in a fresh R process (bench/queue.R): the host listens but no daemon
# connects, so every task stays queued. Submits `batch_reps` timed batches of
# `batch` tasks, then the rest up to `n_tasks`, then `batch_reps` more timed
# batches. (The loop stays in this function's body: assigning into the list
# from a closure with `<<-` would copy it at every task.)
queue_measure <- function(dispatcher, n_tasks, batch, batch_reps) {
  suppressPackageStartupMessages(library(mirai))
  daemons(url = "tcp://127.0.0.1:0", dispatcher = dispatcher)
  on.exit(daemons(0), add = TRUE)
  k <- mirai_connections()
  if (!is.na(k) && k != 0L) stop(sprintf("%d daemons connected: tasks would not stay queued", k))
  phase <- c(rep("start", batch_reps), "fill", rep("full", batch_reps))
  count <- c(rep(batch, batch_reps), n_tasks - batch * batch_reps, rep(batch, batch_reps))
  secs <- numeric(length(phase))
  ms <- vector("list", sum(count))
  done <- 0L
  Sys.sleep(0.2)
  gc(verbose = FALSE)
  rss0 <- rss_tree()
  heap0 <- r_heap_bytes()
  rss1 <- heap1 <- NA_real_
  for (p in seq_along(phase)) {
    if (phase[p] == "full" && is.na(rss1)) {
      Sys.sleep(0.2)
      gc(verbose = FALSE)
      rss1 <- rss_tree()
      heap1 <- r_heap_bytes()
    }
    # a timed batch starts after a collection, so that R's collector does not run inside it
    if (phase[p] != "fill") gc(verbose = FALSE)
    t0 <- clock()
    for (i in done + seq_len(count[p])) ms[[i]] <- mirai(1)
    secs[p] <- clock() - t0
    done <- done + count[p]
  }
  s <- tryCatch(status(), error = function(e) NULL)
  awaiting <- if (is.list(s) && "awaiting" %in% names(s$mirai)) unname(s$mirai[["awaiting"]]) else NA
  list(n = n_tasks, batch = batch, rss0 = rss0, rss1 = rss1, heap0 = heap0, heap1 = heap1,
       fill_secs = sum(secs[phase != "full"]),
       at_start = secs[phase == "start"] / batch, at_full = secs[phase == "full"] / batch,
       awaiting = awaiting, submitted = done, payload = queue_payload_bytes(),
       version = as.character(utils::packageVersion("mirai")))
}

queue_workload <- function(what, n) sprintf("%s, %s tasks queued", what, fmt_count(n))

wl_queue_mirai <- function(cfg, dispatcher, tag = "mirai", bench_dir = bench_dir_of()) {
  out <- tempfile(fileext = ".rds")
  on.exit(unlink(out), add = TRUE)
  status <- system2(rscript_path(),
                    c(shQuote(file.path(bench_dir, "queue.R")), dispatcher, cfg$queue_tasks,
                      cfg$queue_batch, cfg$queue_batch_reps, shQuote(out)),
                    env = sprintf("R_LIBS=%s", shQuote(paste(.libPaths(), collapse = ":"))),
                    timeout = 900)
  if (status != 0L || !file.exists(out)) stop(sprintf("bench/queue.R failed (exit status %s)", status))
  q <- readRDS(out)
  if (!is.na(q$awaiting) && q$awaiting != q$submitted)
    stop(sprintf("status() shows %s tasks awaiting, not %s", q$awaiting, q$submitted))
  impl <- mirai_label(dispatcher, tag)
  n <- q$n
  per_task <- (q$rss1 - q$rss0) / n
  heap_per_task <- (q$heap1 - q$heap0) / n
  batch_us <- function(x) stats::median(x) * 1e6
  rbind(
    value_row("queue", queue_workload("host memory per queued task beyond its payload", n), impl,
              per_task - q$payload, "bytes",
              note = sprintf("RSS +%s MB in all; of which R objects %s bytes/task", fmt_num((q$rss1 - q$rss0) / 1024^2),
                             fmt_num(heap_per_task))),
    value_row("queue", queue_workload("payload per task (serialized mirai(1))", n), impl, q$payload, "bytes"),
    value_row("queue", queue_workload("submit time per task, average", n), impl,
              q$fill_secs / n * 1e6, "us/task",
              note = sprintf("%s s to queue all", fmt_num(q$fill_secs))),
    value_row("queue", sprintf("submit time per task, %s submitted with ~%s queued", fmt_count(q$batch), fmt_count(q$batch)),
              impl, batch_us(q$at_start), "us/task", reps = length(q$at_start)),
    value_row("queue", sprintf("submit time per task, %s submitted with %s queued", fmt_count(q$batch), fmt_count(n)),
              impl, batch_us(q$at_full), "us/task", reps = length(q$at_full))
  )
}

# Suites -----------------------------------------------------------------------------

# The mirai workloads alone: run here, and in a separate process against the
# peer library (MIRAI_PEER_LIB) with `tag` naming that package.
mirai_suite <- function(cfg, tag = "mirai", bench_dir = bench_dir_of()) {
  out <- list()
  add <- function(...) out[[length(out) + 1L]] <<- run_workload(...)
  both <- c(TRUE, FALSE)
  for (d in both) add("round trip", "mirai(1)[]", mirai_label(d, tag), wl_rt_mirai, cfg, d, tag)
  for (d in both) add("throughput", "mirai() + collect_mirai()", mirai_label(d, tag), wl_tput_mirai, cfg, d, tag)
  for (d in both) add("throughput", "mirai_map()", mirai_label(d, tag), wl_tput_mirai_map, cfg, d, tag)
  for (d in both) add("set-up", "daemons(4) / daemons(0)", mirai_label(d, tag), wl_setup_mirai, cfg, d, tag)
  for (nm in names(cfg$payload_bytes))
    for (d in both) add("payload", paste(nm, "each way"), mirai_label(d, tag), wl_payload_mirai, cfg, nm, d, tag)
  for (d in both) add("queue", fmt_count(cfg$queue_tasks), mirai_label(d, tag), wl_queue_mirai, cfg, d, tag, bench_dir)
  do.call(rbind, out)
}

peer_suite <- function(cfg) {
  out <- list()
  add <- function(...) out[[length(out) + 1L]] <<- run_workload(...)
  has <- function(p) requireNamespace(p, quietly = TRUE)
  add("round trip", "clusterCall", "parallel PSOCK", wl_rt_psock, cfg)
  if (has("future")) add("round trip", "value(future(1))", "future", wl_rt_future, cfg)
  if (has("callr")) add("round trip", "callr::r_bg", "callr", wl_rt_callr, cfg)
  for (how in names(psock_tput_how)) add("throughput", how, "parallel PSOCK", wl_tput_psock, cfg, how)
  if (has("future")) add("throughput", "futures", "future", wl_tput_future, cfg)
  if (has("callr")) add("throughput", "callr::r_bg", "callr", wl_tput_callr, cfg)
  add("set-up", "Rscript x4 + mirai", "R (floor)", wl_setup_rscript, cfg, "loadNamespace(\"mirai\")")
  add("set-up", "makeCluster(4)", "parallel PSOCK", wl_setup_psock, cfg)
  if (has("future")) add("set-up", "plan(multisession)", "future", wl_setup_future, cfg)
  for (nm in names(cfg$payload_bytes)) {
    for (xdr in c(TRUE, FALSE))
      add("payload", paste(nm, "serialize + unserialize"), floor_label(xdr), wl_payload_floor, cfg, nm, xdr)
    add("payload", paste(nm, "each way"), "parallel PSOCK clusterCall", wl_payload_psock, cfg, nm)
  }
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
  libs <- paste(c(normalizePath(peer_lib), Sys.getenv("R_LIBS")), collapse = ":")
  status <- system2(rscript_path(), c(shQuote(file.path(bench_dir, "peer.R")), shQuote(out)),
                    env = c(sprintf("R_LIBS=%s", shQuote(sub(":$", "", libs))),
                            sprintf("BENCH_SIZE=%s", cfg$size),
                            sprintf("BENCH_TASKS=%d", cfg$tasks),
                            sprintf("BENCH_BIG=%d", as.integer(big_payload_on(cfg$size)))))
  if (status != 0L || !file.exists(out)) {
    cat(sprintf("The peer run failed (exit status %s): no comparison.\n", status))
    return(NULL)
  }
  readRDS(out)
}

# Ratios of this package's figures to the peer's: > 1 means this package is
# better (time, bytes: peer / ours; rate: ours / peer).
peer_ratios <- function(ours, peer) {
  key <- function(d) paste(d$section, d$workload, sub("^[^(]*", "", d$implementation), sep = "|")
  m <- ours[grepl("^mirai \\(", ours$implementation), ]
  p <- peer$results
  i <- match(key(m), key(p))
  ok <- !is.na(i)
  m <- m[ok, ]
  p <- p[i[ok], ]
  speedup <- ifelse(lower_is_better(m$unit), p$median / m$median, m$median / p$median)
  data.frame(section = m$section, workload = m$workload,
             mode = sub("^[^(]*\\((.*)\\)$", "\\1", m$implementation),
             this = m$median, peer = p$median, unit = m$unit,
             speedup = speedup, stringsAsFactors = FALSE)
}

# "100 MB" of "100 MB round trip"; the direction ("round trip") or "" for a floor.
payload_size_of <- function(workload) sub("^(\\S+ \\S+) .*$", "\\1", workload, perl = TRUE)
payload_direction_of <- function(workload) {
  dir <- names(payload_directions)[match(sub("^\\S+ \\S+ ", "", workload, perl = TRUE), payload_directions)]
  ifelse(is.na(dir), "", dir)
}

# Payload rows: how many times R's own serialize + unserialize (the floor) each
# one took. A one-way transfer needs one pass, a round trip two.
add_floor_notes <- function(res) {
  pay <- res$section == "payload"
  is_floor <- pay & grepl("\\(floor\\)$", res$implementation)
  size <- payload_size_of(res$workload)
  dir <- payload_direction_of(res$workload)
  for (i in which(pay & !is_floor & nzchar(dir) & !is.na(res$median))) {
    notes <- character()
    for (xdr in c(TRUE, FALSE)) {
      f <- which(is_floor & size == size[i] & res$implementation == floor_label(xdr) & !is.na(res$median))
      if (length(f))
        notes <- c(notes, sprintf("%.2fx floor xdr=%s", res$median[i] / (res$median[f[1]] * payload_floor_passes[[dir[i]]]),
                                  if (xdr) "TRUE" else "FALSE"))
    }
    if (length(notes)) {
      note <- paste(notes, collapse = ", ")
      res$note[i] <- if (nzchar(res$note[i])) paste(res$note[i], note, sep = "; ") else note
    }
  }
  res
}

# Order: by section, then payload rows by size and direction (floor first), else as run.
order_results <- function(res, cfg) {
  sections <- c("round trip", "throughput", "set-up", "payload", "queue")
  pay <- res$section == "payload"
  size_key <- match(payload_size_of(res$workload), names(cfg$payload_bytes))
  dir_key <- match(payload_direction_of(res$workload), c("", names(payload_directions)))
  size_key[!pay | is.na(size_key)] <- 0L
  dir_key[!pay] <- 0L
  res <- res[order(match(res$section, sections), size_key, dir_key, seq_len(nrow(res))), ]
  rownames(res) <- NULL
  res
}

# Load generator (the Rust bench) ---------------------------------------------------------

# The TSV (metric, value, unit) written by `cargo bench --bench loadgen`;
# NULL when there is none. A first line "metric value unit" is a header.
read_loadgen <- function(path = Sys.getenv("BENCH_LOADGEN")) {
  if (!nzchar(path) || !file.exists(path)) return(NULL)
  d <- utils::read.delim(path, header = FALSE, sep = "\t", quote = "", comment.char = "#",
                         colClasses = "character", col.names = c("metric", "value", "unit"), fill = TRUE)
  d <- d[nzchar(trimws(d$metric)) & tolower(d$metric) != "metric", ]
  d$value <- suppressWarnings(as.numeric(d$value))
  d$unit[is.na(d$unit)] <- ""
  rownames(d) <- NULL
  d
}

loadgen_status <- function(path = Sys.getenv("BENCH_LOADGEN")) {
  if (!nzchar(path)) "not run (BENCH_LOADGEN is not set; `make bench` runs the load generator first)"
  else if (!file.exists(path)) sprintf("not run (no file `%s`: the load generator failed or was not built)", path)
  else sprintf("read from `%s`", path)
}

loadgen_value <- function(lg, metric) {
  if (is.null(lg)) return(NA_real_)
  v <- lg$value[lg$metric == metric]
  if (length(v)) v[1] else NA_real_
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

# Figures of the original mirai 2.7 measured on this kind of machine
# (/work/shared/FACTS.md), for targets relative to it when no peer was run.
original_facts <- list(
  rt_us = c(`TRUE` = 450, `FALSE` = 310),
  rt_text = c(`TRUE` = "400–490 us", `FALSE` = "~310 us"),
  tput = c(`TRUE` = 3000, `FALSE` = 5350),
  tput_text = c(`TRUE` = "2,750–3,700/s", `FALSE` = "4,800–5,900/s"),
  mb100_ms = 670
)

# The targets of the issue, checked against the figures of this run (and of
# the peer mirai, where one was run).
targets_table <- function(res, peer = NULL, loadgen = NULL) {
  pick <- function(section, impl_re, workload_re = ".", d = res) {
    r <- d[d$section == section & grepl(impl_re, d$implementation) & grepl(workload_re, d$workload), ]
    if (nrow(r)) r$median[1] else NA_real_
  }
  ours <- function(d) sprintf("^mirai \\(dispatcher=%s\\)", d)
  theirs <- function(section, d, workload_re = ".")
    if (is.null(peer)) NA_real_ else pick(section, sprintf("\\(dispatcher=%s\\)", d), workload_re, peer$results)
  peer_name <- if (!is.null(peer)) sprintf("peer mirai %s, same run", peer$version)
  rows <- list()
  # whether a workload of ours behind a target failed (its ERROR row)
  failed <- function(section, d, workload_re = ".")
    any(res$section == section & grepl(ours(d), res$implementation) & grepl(workload_re, res$workload) &
          grepl("^ERROR", res$note))
  add <- function(target, goal, measured, ok, failed = FALSE) {
    if (failed) {
      measured <- "ERROR (see All figures)"
      ok <- FALSE
    }
    verdict <- if (is.na(ok)) "not run" else if (ok) "met" else "NOT met"
    rows[[length(rows) + 1L]] <<- c(target, goal, measured, verdict)
  }
  unit_text <- function(x, unit) ifelse(is.na(x), "n/a", sprintf("%s %s", fmt_num(x), unit))

  # Round trip
  rt <- pick("round trip", ours("TRUE"))
  p <- theirs("round trip", "TRUE")
  goal <- if (!is.na(p)) p / 3 else 150
  add("round trip mirai(1)[], dispatcher=TRUE (median)",
      if (!is.na(p)) sprintf("<= 1/3 of original's %s us (%s): <= %s us", fmt_num(p), peer_name, fmt_num(goal))
      else sprintf("<= 1/3 of original's %s (FACTS.md; no peer this run): <= 150 us", original_facts$rt_text[["TRUE"]]),
      unit_text(rt, "us"), if (is.na(rt)) NA else rt <= goal, failed("round trip", "TRUE"))
  ps <- pick("round trip", "^parallel PSOCK")
  for (d in c("TRUE", "FALSE")) {
    rt <- pick("round trip", ours(d))
    add(sprintf("round trip, dispatcher=%s, ahead of PSOCK clusterCall", d),
        sprintf("< PSOCK clusterCall, same run: %s", unit_text(ps, "us")),
        unit_text(rt, "us"), if (is.na(rt) || is.na(ps)) NA else rt < ps, failed("round trip", d))
  }

  # Throughput
  fut <- pick("throughput", "^future")
  lb <- pick("throughput", "^parallel PSOCK", "clusterApplyLB")
  for (how in c("mirai\\(\\) each", "mirai_map")) {
    for (d in c("TRUE", "FALSE")) {
      tp <- pick("throughput", ours(d), how)
      p <- theirs("throughput", d, how)
      label <- sprintf("throughput, %s, dispatcher=%s", if (how == "mirai_map") "mirai_map()" else "mirai() + collect", d)
      goal <- if (!is.na(p)) 3 * p else if (d == "TRUE") 9000 else 3 * original_facts$tput[[d]]
      goal_text <- if (!is.na(p)) sprintf(">= 3x original's %s/s (%s): >= %s/s", fmt_num(p), peer_name, fmt_num(goal))
                   else sprintf(">= 3x original's %s for 10,000 tasks submitted at once (FACTS.md; no peer this run%s): >= %s/s",
                                original_facts$tput_text[[d]], if (how == "mirai_map") "; FACTS.md has no mirai_map figure" else "",
                                fmt_num(goal))
      add(label, goal_text, unit_text(tp, "tasks/s"), if (is.na(tp)) NA else tp >= goal,
          failed("throughput", d, if (how == "mirai_map") "mirai_map" else "collect"))
    }
  }
  for (d in c("TRUE", "FALSE")) {
    tp <- pick("throughput", ours(d), "mirai\\(\\) each")
    add(sprintf("throughput, dispatcher=%s, vs future multisession", d),
        sprintf(">= 200x future, same run: >= %s/s (future: %s/s)", fmt_num(200 * fut), fmt_num(fut)),
        sprintf("%s (%s)", unit_text(tp, "tasks/s"), if (is.na(tp) || is.na(fut)) "n/a" else sprintf("%.0fx", tp / fut)),
        if (is.na(tp) || is.na(fut)) NA else tp >= 200 * fut, failed("throughput", d, "collect"))
    add(sprintf("throughput, dispatcher=%s, ahead of PSOCK clusterApplyLB", d),
        sprintf("> clusterApplyLB, same run: %s", unit_text(lb, "tasks/s")),
        unit_text(tp, "tasks/s"), if (is.na(tp) || is.na(lb)) NA else tp > lb, failed("throughput", d, "collect"))
  }

  # Payloads
  for (d in c("TRUE", "FALSE")) {
    ms <- pick("payload", ours(d), "^100 MB round trip")
    p <- theirs("payload", d, "^100 MB round trip")
    goal <- if (!is.na(p)) p / 2 else original_facts$mb100_ms / 2
    add(sprintf("100 MB round trip, dispatcher=%s", d),
        if (!is.na(p)) sprintf("<= 1/2 of original's %s ms (%s): <= %s ms", fmt_num(p), peer_name, fmt_num(goal))
        else sprintf("<= 1/2 of original's ~670 ms (FACTS.md; no peer this run): <= %s ms", fmt_num(goal)),
        unit_text(ms, "ms"), if (is.na(ms)) NA else ms <= goal, failed("payload", d, "^100 MB "))
  }
  for (d in c("TRUE", "FALSE")) {
    r <- res[res$section == "payload" & grepl(ours(d), res$implementation) & grepl("^1 GB ", res$workload), ]
    ok <- if (!nrow(r)) NA else nrow(r) == 3L && !anyNA(r$median)
    add(sprintf("1 GB each way and round trip, dispatcher=%s", d), "works (values checked)",
        if (!nrow(r)) "not run (BENCH_BIG=0 or a reduced size)"
        else paste(sprintf("%s %s", sub("^1 GB ", "", r$workload), unit_text(r$median, "ms")), collapse = "; "),
        ok, failed("payload", d, "^1 GB "))
  }

  # Set-up
  for (d in c("TRUE", "FALSE")) {
    floor_up <- pick("set-up", "^R \\(floor\\)", sprintf("'invisible\\(0\\)'.*alternately with mirai \\(dispatcher=%s\\)", d))
    up <- pick("set-up", ours(d), "^daemons\\(4\\) until")
    add(sprintf("daemons(4) until all connected, dispatcher=%s", d),
        sprintf("<= 4 Rscript started in parallel, timed alternately (%s) + 50 ms: <= %s ms",
                unit_text(floor_up, "ms"), fmt_num(floor_up + 50)),
        unit_text(up, "ms"), if (is.na(up) || is.na(floor_up)) NA else up <= floor_up + 50, failed("set-up", d))
  }

  # Queue
  for (d in c("TRUE", "FALSE")) {
    b <- pick("queue", ours(d), "memory per queued task")
    n <- res$workload[res$section == "queue" & grepl(ours(d), res$implementation) & grepl("memory per queued task", res$workload)]
    n <- if (length(n)) sub("^.*, ([0-9,]+) tasks queued$", "\\1", n[1]) else "1,000,000"
    add(sprintf("host memory per queued task beyond payload (%s queued), dispatcher=%s", n, d), "<= 1 KB (1,024 bytes)",
        unit_text(b, "bytes"), if (is.na(b)) NA else b <= 1024, failed("queue", d))
    s1 <- pick("queue", ours(d), "submitted with ~")
    s2 <- pick("queue", ours(d), "submitted with [0-9,]+ queued")
    add(sprintf("no slowdown as the queue grows (submit time per task), dispatcher=%s", d),
        "at the full queue <= 1.25x at ~1,000 queued (1.25: allowance for noise)",
        if (is.na(s1) || is.na(s2)) "n/a" else sprintf("%s us at ~1,000, %s us at %s (%.2fx)", fmt_num(s1), fmt_num(s2), n, s2 / s1),
        if (is.na(s1) || is.na(s2)) NA else s2 <= 1.25 * s1, failed("queue", d))
  }

  # Load generator
  held <- loadgen_value(loadgen, "daemons")
  add("load generator: simulated daemons held at once", ">= 10,000", unit_text(held, "daemons"),
      if (is.na(held)) NA else held >= 10000)
  tp <- loadgen_value(loadgen, "throughput")
  add("load generator: tasks through the dispatcher", ">= 200,000 tasks/s", unit_text(tp, "tasks/s"),
      if (is.na(tp)) NA else tp >= 200000)

  df <- as.data.frame(do.call(rbind, rows), stringsAsFactors = FALSE)
  names(df) <- c("target", "goal", "measured (median)", "verdict")
  df
}

results_for_print <- function(res) {
  data.frame(section = res$section, workload = res$workload, implementation = res$implementation,
             reps = res$reps, median = fmt_num(res$median), p95 = fmt_num(res$p95),
             unit = res$unit, note = res$note, stringsAsFactors = FALSE)
}

loadgen_lines <- function(loadgen) {
  c("## Load generator", "",
    sprintf("The Rust bench `cargo bench -p mirai-core --bench loadgen -- --floor` (simulated daemons against the dispatcher): %s.",
            loadgen_status()), "",
    if (!is.na(loadgen_value(loadgen, "floor_throughput")))
      c(paste("The `floor_` rows send the same tasks to fresh simulated daemons through a bare relay with no dispatcher",
              "(each connection sends its next task as soon as its last result is back): what loopback and the",
              "simulated daemons allow on this machine, whatever the dispatcher does."), ""),
    loadgen_ceiling_line(loadgen),
    if (!is.null(loadgen))
      c(md_table(data.frame(metric = loadgen$metric, value = fmt_num(loadgen$value), unit = loadgen$unit,
                            stringsAsFactors = FALSE)), ""))
}

# The simulated daemons share the machine's CPUs with the host: their own CPU
# time per task, and that of the bare relay of the floor phase (one read and
# one write per task, no dispatcher), bound what any dispatcher could reach.
loadgen_ceiling_line <- function(loadgen, cpus = parallel::detectCores()) {
  daemons_us <- loadgen_value(loadgen, "daemons_cpu_us_per_task")
  host_us <- loadgen_value(loadgen, "cpu_us_per_task")
  relay_us <- loadgen_value(loadgen, "floor_cpu_us_per_task")
  if (is.na(daemons_us) || is.na(host_us) || is.na(cpus)) return(NULL)
  per_s <- function(us) fmt_num(cpus * 1e6 / us)
  c(paste0(
    sprintf("The simulated daemons used %s us of CPU per task (one read and one write of a socket), and the host %s us: ",
            fmt_num(daemons_us), fmt_num(host_us)),
    sprintf("on %d CPUs, at most %s tasks/s. ", cpus, per_s(daemons_us + host_us)),
    if (!is.na(relay_us))
      sprintf(paste("A bare relay with no dispatcher (the floor phase) used %s us per task; with the daemons' cost,",
                    "no relay that reads and writes each task once could pass more than %s tasks/s here. "),
              fmt_num(relay_us), per_s(daemons_us + relay_us)),
    sprintf("Even a dispatcher that cost nothing would leave the daemons at most %s tasks/s.", per_s(daemons_us))),
    "")
}

# The hand-written profiles, verbatim, from bench/PROFILE.md.
# A section copied verbatim from a file of bench/ (written by hand, or by a
# script of its own), with a placeholder while the file does not exist.
copied_section <- function(bench_dir, title, file, written_by, placeholder) {
  f <- file.path(bench_dir, file)
  c(sprintf("## %s", title), "",
    sprintf("<!-- This section is copied verbatim from bench/%s (%s); edit or re-run that, not this one. -->",
            file, written_by), "",
    if (file.exists(f)) readLines(f, warn = FALSE) else placeholder,
    "")
}

profile_lines <- function(bench_dir)
  copied_section(bench_dir, "Where the time goes", "PROFILE.md", "written by hand",
                 "*Placeholder: `bench/PROFILE.md` does not exist yet. The profiles written there by hand are copied here at the next run.*")

large_lines <- function(bench_dir)
  copied_section(bench_dir, "Large objects (bench/large.R)", "LARGE.md", "written by bench/large.R",
                 "*Placeholder: `bench/LARGE.md` does not exist yet: run `Rscript bench/large.R`.*")

soak_lines <- function(bench_dir)
  copied_section(bench_dir, "Kill-storm soak", "SOAK.md", "written by bench/soak.R",
                 "*Placeholder: `bench/SOAK.md` does not exist yet: run `Rscript bench/soak.R`.*")

relay_lines <- function(bench_dir)
  copied_section(bench_dir, "Through a standalone dispatcher", "RELAY.md", "written by bench/relay.R",
                 "*Placeholder: `bench/RELAY.md` does not exist yet: run `Rscript bench/relay.R`.*")

workload_lines <- function(cfg) {
  c("## Workloads", "",
    sprintf("- round trip: %s sequential `mirai(1)[]` on one daemon after %d warm-up calls; PSOCK `clusterCall(cl, function() 1)` on a cluster of 1, as many times; `value(future(1))` with `plan(multisession, workers = 1)`, %d times; `callr::r_bg(function() 1)` then `$wait()`, %d time(s).",
            fmt_count(cfg$rt_reps), cfg$rt_warmup, cfg$future_rt_reps, cfg$callr_reps),
    sprintf("- throughput: N = %s trivial tasks on 2 daemons (workers), every value checked. mirai: `lapply(1:N, function(i) mirai(i, i = i))` then `collect_mirai()` (%d run(s)); and `mirai_map(1:N, function(i) i)[]` (%d run(s)); functions sent to workers are defined at top level, as a user's would be. PSOCK on a cluster of 2: `parLapply(cl, 1:N, identity)` (%d run(s)); `clusterApplyLB(cl, 1:N, identity)` (one message per task, %d run); and one `clusterCall(cl[j], identity, i)` per element, sequentially, `j` alternating between the two nodes (each call waits for its reply, so the two never work at once; %d run). `future` multisession with 2 workers over %d futures, and %d `callr::r_bg()` started at once then awaited, both scaled to per second.",
            fmt_count(cfg$tasks), cfg$tput_reps, cfg$map_reps, cfg$tput_reps, cfg$slow_tput_reps, cfg$slow_tput_reps,
            cfg$future_tasks, cfg$callr_tasks),
    sprintf("- set-up: `daemons(%d)` until `status()` shows all connected, then `daemons(0)`, %d time(s), with a pause of 0.3 s between rounds. Floor: %d `Rscript -e 'invisible(0)'` started at once from one `sh -c '... & ... & wait'` until all have exited (a daemon is `Rscript -e 'mirai::daemon(...)'` with R's default packages), timed just before each round of `daemons()` so that both see the same load; also, once, the same with `loadNamespace(\"mirai\")`, which a daemon needs too. For context: `makeCluster(%d)` / `stopCluster()`; `plan(multisession, workers = %d)` / `plan(sequential)`.",
            cfg$setup_daemons, cfg$setup_reps, cfg$setup_daemons, cfg$setup_daemons, cfg$setup_daemons),
    sprintf("- payload: a numeric vector (`seq_len(bytes / 8) * 0.5`) of %s, each on a fresh single daemon. host -> daemon: `mirai(length(x), x = x)[]`; daemon -> host: `mirai(bench_x)[]`, the vector having been made on the daemon beforehand with `everywhere()`; round trip: `mirai(x, x = x)[]`. PSOCK (cluster of 1): `clusterCall(cl, length, x)`, `clusterCall(cl, function() bench_x)`, `clusterCall(cl, identity, x)`. Floor: `serialize(x, NULL, xdr = xdr)` then `unserialize()` of the same vector in this process, once for a one-way transfer and twice for a round trip; `xdr = TRUE` is R's default (and PSOCK's), `xdr = FALSE` R's native format (what this package sends). Repetitions: %s.",
            paste(names(cfg$payload_bytes), collapse = ", "),
            paste(sprintf("%s x%d", names(cfg$payload_reps), cfg$payload_reps), collapse = ", ")),
    sprintf("- queue: in a fresh R process (`bench/queue.R`), `daemons(url = \"tcp://127.0.0.1:0\", dispatcher = ...)` with no daemon connected, so every task stays queued; %s `mirai(1)` kept in a list. Memory: resident set size (VmRSS, of the process and any child, such as the original's dispatcher) after `gc()`, before and after queueing, divided by the number of tasks, less the payload: the serialized task of `mirai(1)` (%d bytes, R's native format, as this package queues it; the same allowance for any mirai). \"of which R objects\" is the growth of R's heap (the `mirai` objects). Submit time: %d batches of %s `mirai(1)`, each after a `gc()` so that R's collector does not run inside it, at the start (queue nearly empty) and once all %s are queued; median per task.",
            fmt_count(cfg$queue_tasks), queue_payload_bytes(), cfg$queue_batch_reps, fmt_count(cfg$queue_batch), fmt_count(cfg$queue_tasks)),
    "")
}

write_report <- function(path, res, info, cfg, ratios, peer, loadgen, bench_dir, elapsed) {
  n_err <- sum(grepl("^ERROR", res$note))
  lines <- c(
    "# Benchmark results",
    "",
    "Written by `bench/run.R`; do not edit by hand. Re-run with:",
    "",
    "```sh",
    "make bench                                  # builds and installs into ./lib, runs the load generator, then this",
    "R_LIBS=$PWD/lib Rscript bench/run.R         # the R suite alone, with the package already installed",
    "```",
    "",
    sprintf("This run: `%s`%s, %.0f s in all.",
            paste(c("Rscript", sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), collapse = " "),
            {
              ev <- Sys.getenv(c("BENCH_SIZE", "BENCH_TASKS", "BENCH_BIG", "MIRAI_PEER_LIB", "BENCH_LOADGEN"))
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
    "Each is computed from the figures below, of this run. Where a goal is relative to the original mirai",
    "and no peer was run (`MIRAI_PEER_LIB`), the figures of the original measured on this kind of machine",
    "(`/work/shared/FACTS.md`) are used, as the goal says.",
    "",
    md_table(targets_table(res, peer, loadgen)),
    "",
    "## All figures",
    "",
    "Times are per repetition (median and 95th percentile over `reps`); rates are",
    "tasks per second (median over `reps` runs of the whole batch). `us` is microseconds.",
    "Round trips are timed one call at a time with `Sys.time()` (about 2 us of the",
    "figure is the clock itself). Every workload checks the values it gets back. In the payload",
    "section, `floor` is R's own `serialize()` + `unserialize()` of the same vector in this process; the",
    "notes give each transfer's time over the floor (one pass for a one-way transfer, two for a round trip).",
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
               sprintf("Peer: mirai %s from `%s`. `speedup` > 1 means this package is better (faster, or less memory).",
                       peer$version, peer$lib), "",
               md_table(transform(ratios, this = fmt_num(this), peer = fmt_num(peer),
                                  speedup = sprintf("%.2f", speedup))), "")
    peer_err <- peer$results[grepl("^ERROR", peer$results$note), ]
    if (nrow(peer_err))
      lines <- c(lines, "Workloads the peer could not run:", "", md_table(results_for_print(peer_err)), "")
  }
  lines <- c(lines, loadgen_lines(loadgen), large_lines(bench_dir), soak_lines(bench_dir), relay_lines(bench_dir), profile_lines(bench_dir),
             workload_lines(cfg))
  writeLines(lines, path)
  invisible(path)
}

# Entry point --------------------------------------------------------------------------

bench_main <- function(bench_dir, out_md = file.path(bench_dir, "RESULTS.md"),
                       cfg = bench_config(), peers = TRUE) {
  suppressPackageStartupMessages(library(mirai))
  t_start <- clock()
  info <- machine_info()
  cat(sprintf("mirai benchmarks: %s, %d cores, %s\nmirai %s\nBENCH_SIZE=%g, %s tasks, payloads %s, %s queued\n\n",
              info$cpu, info$nproc, info$r, info$mirai, cfg$size, fmt_count(cfg$tasks),
              paste(names(cfg$payload_bytes), collapse = "/"), fmt_count(cfg$queue_tasks)))
  on.exit({
    mirai_reset()
    if (requireNamespace("future", quietly = TRUE)) try(future::plan(future::sequential), silent = TRUE)
  }, add = TRUE)
  res <- mirai_suite(cfg, bench_dir = bench_dir)
  if (peers) res <- rbind(res, peer_suite(cfg))
  res <- add_floor_notes(order_results(res, cfg))

  peer <- run_peer_mirai(cfg, bench_dir)
  ratios <- if (!is.null(peer)) peer_ratios(res, peer) else NULL
  loadgen <- tryCatch(read_loadgen(), error = function(e) {
    cat(sprintf("Could not read the load generator's output: %s\n", conditionMessage(e)))
    NULL
  })

  elapsed <- clock() - t_start
  op <- options(width = 250)
  on.exit(options(op), add = TRUE)
  cat("\nResults:\n")
  print(results_for_print(res), right = FALSE, row.names = FALSE)
  cat(sprintf("\nLoad generator: %s\n", loadgen_status()))
  if (!is.null(loadgen)) print(loadgen, right = FALSE, row.names = FALSE)
  cat("\nTargets:\n")
  print(targets_table(res, peer, loadgen), right = FALSE, row.names = FALSE)
  if (!is.null(ratios)) {
    cat(sprintf("\nAgainst mirai %s (%s); speedup > 1 means this package is better:\n", peer$version, peer$lib))
    print(transform(ratios, this = fmt_num(this), peer = fmt_num(peer), speedup = sprintf("%.2f", speedup)),
          right = FALSE, row.names = FALSE)
  }
  if (!is.null(out_md)) {
    write_report(out_md, res, info, cfg, ratios, peer, loadgen, bench_dir, elapsed)
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
